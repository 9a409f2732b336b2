"""LangChain's own standard chat-model suite against a `Router` and a decorated model.

``langchain_tests``' ``ChatModelIntegrationTests`` is what LangChain asks of every chat model
integration (invoke, stream, ``stream_events(version="v3")``, batch, tools, structured output,
usage). Here it runs against a router over ``guard | scheduler | tracker | ChatOpenAI`` models,
and against one such decorated model, talking over real HTTP to the simulated provider, so
the router and the decorators are held to the same contract as the models they wrap. Where a
test checks what the model answered, the simulator answers from recorded replies
(``SUITE_REPLIES``), so the whole suite runs: nothing is marked as expected to fail.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

pytest.importorskip("langchain_tests")
pytest.importorskip("langchain_openai")

from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from llm_routing import ContextGuard, CostTracker, RateScheduler
from llm_routing._decorated import Decorated
from llm_routing.router import Router, build_router
from llm_routing.sim import Reply, SimModel, SimulatedProvider

PRIMARY, FALLBACK = "gpt-4o-mini", "gpt-4o"

# The simulator cannot read a prompt: it invents text and tool arguments. The suite's tests that
# check *what* was answered get recorded replies, as LangChain's own integration tests replay
# VCR cassettes: the answers their prompts ask for (langchain_tests' integration_tests/
# chat_models.py), given when the last user message contains the quoted words.
SUITE_REPLIES = [
    # test_tool_calling(_async): "What is the value of magic_function(3)? Use the tool."
    Reply(when="magic_function(3)", tool_calls=[{"name": "magic_function", "args": {"input": 3}}]),
    # test_unicode_tool_call_integration: a customer named in Chinese, then in Japanese.
    Reply(
        when="customer named '你好啊集团'",
        tool_calls=[
            {
                "name": "unicode_customer",
                "args": {"customer_name": "你好啊集团", "description": "中国科技公司"},
            }
        ],
    ),
    Reply(
        when="customer named 'こんにちは株式会社'",
        tool_calls=[
            {
                "name": "unicode_customer",
                "args": {"customer_name": "こんにちは株式会社", "description": "日本の会社"},
            }
        ],
    ),
    # test_json_mode: "Return the result as a JSON with 'setup' and 'punchline' keys."
    Reply(
        when="JSON with 'setup' and 'punchline' keys",
        content={
            "setup": "Why did the cat sit on the computer?",
            "punchline": "To keep an eye on the mouse.",
        },
    ),
]


@pytest.fixture(scope="module", autouse=True)
def sim_server() -> Iterator[SimulatedProvider]:
    """One simulator for the module; the model classes below read its address."""
    models = [SimModel(name=name, replies=SUITE_REPLIES) for name in (PRIMARY, FALLBACK)]
    with SimulatedProvider(models, seed=0) as sim:
        _Sim.base_url = sim.base_url
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # v3 is beta in langchain-core
            yield sim


class _Sim:
    base_url: ClassVar[str] = ""


def _openai(model: str, params: dict[str, Any]) -> ChatOpenAI:
    # Its own async client: langchain-openai otherwise shares one per base_url across event
    # loops, and each async test of the suite runs on a fresh loop.
    return ChatOpenAI(
        **{**params, "model": model, "base_url": _Sim.base_url, "api_key": "sim"},
        http_async_client=httpx.AsyncClient(),
    )


class SimRouter(Router):
    """What the suite instantiates: ``SimRouter(**params)`` is a router over the simulator.

    The suite builds its model from a class and keyword arguments (model, temperature,
    max_tokens, stop, timeout, max_retries); each model of the chain gets them.
    """

    def __init__(self, **params: Any) -> None:
        params.pop("model", None)
        built = build_router(
            _openai(PRIMARY, params),
            [_openai(FALLBACK, params)],
            guard=ContextGuard(),
            scheduler=RateScheduler(),
            tracker=CostTracker(),
        )
        super().__init__(built.models, built.names, settings=built.settings)


class SimDecorated(Decorated[Any, Any]):
    """``SimDecorated(**params)``: ``guard | scheduler | tracker | ChatOpenAI`` on the simulator."""

    __slots__ = ()

    def __init__(self, **params: Any) -> None:
        model = params.pop("model", PRIMARY)
        super().__init__(_openai(model, params), (ContextGuard(), RateScheduler(), CostTracker()))


class _OnTheSimulator(ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        # ChatOpenAI streams usage by default only from api.openai.com.
        return {"model": PRIMARY, "stream_usage": True}

    @property
    def model_override_value(self) -> str:
        return FALLBACK

    @property
    def supports_json_mode(self) -> bool:
        return True


class TestRouterStandard(_OnTheSimulator):
    @property
    def chat_model_class(self) -> type[Any]:
        return SimRouter


class TestDecoratedStandard(_OnTheSimulator):
    @property
    def chat_model_class(self) -> type[Any]:
        return SimDecorated
