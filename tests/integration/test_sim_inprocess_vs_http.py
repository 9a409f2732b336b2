"""The in-process model and ``ChatOpenAI`` over HTTP, against one simulator state each.

Same models, same clock (frozen), same requests: the errors must classify the same, carry the
same Retry-After and status, and the answers the same usage.
"""

from __future__ import annotations

import pytest
from langchain_core.exceptions import ModelError
from langchain_openai import ChatOpenAI

from llm_routing.errors import classify, retry_after
from llm_routing.sim import FaultPlan, SimChatModel, SimModel, SimulatedProvider
from llm_routing.sim.state import SimState


class Frozen:
    """A clock that never moves, so the HTTP and in-process windows see the same times."""

    def now(self) -> float:
        return 1_000.0

    def sleep(self, seconds: float) -> None:
        pass

    async def asleep(self, seconds: float) -> None:
        pass


MODELS = [
    SimModel(
        name="gpt-4o-mini", rpm=3, tpm=2_000, enforcement="sliding", failed_requests_count=False
    ),
    SimModel(name="quota", quota_requests=1),
    SimModel(name="spend", quota_requests=1, quota_error="spend_limit"),
    SimModel(name="daily", quota_requests=1, quota_error="daily_quota"),
    SimModel(name="small", context_window=60, max_output_tokens=50),
    SimModel(name="faulty", faults=FaultPlan(schedule={1: "429", 2: "503"}, retry_after=3.0)),
]

# (model, request kwargs) in order: answers, then each refusal the state can make.
CALLS = [
    ("gpt-4o-mini", {"max_tokens": 400}),
    ("gpt-4o-mini", {"max_tokens": 400}),
    ("gpt-4o-mini", {"max_tokens": 1_500}),  # tokens: 2,000 TPM counts max_tokens
    ("gpt-4o-mini", {"max_tokens": 10}),
    ("gpt-4o-mini", {"max_tokens": 10}),  # requests: the fourth in a minute
    ("quota", {}),
    ("quota", {}),
    ("spend", {}),
    ("spend", {}),
    ("daily", {}),
    ("daily", {}),
    ("small", {"max_tokens": 51}),
    ("small", {"max_tokens": 50}),
    ("faulty", {}),
    ("faulty", {}),
    ("faulty", {}),
    ("nope", {}),
]


def _outcome(llm, kwargs):
    try:
        message = llm.invoke("tell me about rate limits", **kwargs)
    except ModelError as exc:
        return {
            "kind": classify(exc),
            "retry_after": retry_after(exc, now=0.0),
            "status": exc.status_code,  # type: ignore[attr-defined]
            "langchain_class": next(
                c for c in type(exc).__mro__ if c.__module__.startswith("langchain_core")
            ),
        }
    usage = message.usage_metadata
    assert usage is not None
    return {"input": usage["input_tokens"], "output": usage["output_tokens"]}


def test_in_process_and_http_answer_and_refuse_alike():
    clock = Frozen()
    state = SimState(MODELS, clock=clock.now)
    via_http = []
    with SimulatedProvider(MODELS, clock=clock.now) as sim:
        for name, kwargs in CALLS:
            llm = ChatOpenAI(model=name, base_url=sim.base_url, api_key="sim", max_retries=0)
            via_http.append(_outcome(llm, kwargs))
    in_process = [
        _outcome(SimChatModel(state=state, model_name=name, clock=clock), kwargs)
        for name, kwargs in CALLS
    ]
    assert in_process == via_http
    kinds = [o.get("kind") for o in in_process]
    assert [k.value for k in kinds if k is not None] == [
        "rate_limit",
        "rate_limit",
        "quota",
        "quota",
        "quota",
        "bad_request",
        "context",
        "rate_limit",
        "transient",
        "bad_request",
    ]
    assert in_process[2]["retry_after"] == pytest.approx(60.0)
    assert in_process[13]["retry_after"] == pytest.approx(3.0)
