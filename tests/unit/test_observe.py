"""llm_routing.observe: the enriched Langfuse handler, attach, refusals and bounded flushing.

A real Langfuse client records into an in-memory span exporter; chat models are LangChain's
fakes or the handler's callbacks driven directly with the results a chat model produces.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableLambda
from langfuse.langchain import CallbackHandler

from llm_routing._decorator import Call, Decorator
from llm_routing.catalog import ModelSpec, Price, default_catalog
from llm_routing.cost.pricing import price, usage_details
from llm_routing.errors import (
    ContextLengthExceededError,
    ProviderUnavailableError,
    RateLimitExhaustedError,
)
from llm_routing.guard import ContextGuard
from llm_routing.observe import (
    INSTALL_HINT,
    LangfuseExport,
    RefusalRecorder,
    RoutingCallbackHandler,
    attach,
    flush,
    is_langfuse_handler,
    langfuse_handler,
    shutdown,
)
from llm_routing.observe.refusals import _refused_before_run
from tests.support.otel import LangfuseMemory, langfuse_memory

GPT = default_catalog().get("openai:gpt-4o-mini")
USAGE = {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150}
SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


@pytest.fixture
def memory() -> Iterator[LangfuseMemory]:
    with langfuse_memory("pk-unit", secret_key="sk-unit") as recorder:
        yield recorder


def run_model(
    handler: Any,
    message: AIMessage,
    *,
    ls_model_name: str = "gpt-4o-mini",
    llm_output: dict[str, Any] | None = None,
) -> None:
    """Drive the handler through one chat model run, as BaseChatModel would."""
    run_id = uuid.uuid4()
    handler.on_chat_model_start(
        {"id": ["langchain", "chat_models", "openai", "ChatOpenAI"]},
        [[HumanMessage("hi")]],
        run_id=run_id,
        metadata={"ls_provider": "openai", "ls_model_name": ls_model_name},
        invocation_params={"model_name": ls_model_name},
        name="ChatOpenAI",
    )
    handler.on_llm_end(
        LLMResult(generations=[[ChatGeneration(message=message)]], llm_output=llm_output),
        run_id=run_id,
    )


def small_model(**kw: Any) -> FakeListChatModel:
    """A fake chat model with a 60-token window: a long input is refused by the guard."""
    return FakeListChatModel(responses=["ok"], profile={"max_input_tokens": 60}, **kw)


LONG = "word " * 200


# --- the handler: cost and usage ------------------------------------------------------------


def test_handler_is_a_langfuse_callback_handler(memory):
    handler = langfuse_handler(memory.client)
    assert isinstance(handler, CallbackHandler)
    assert isinstance(handler, RoutingCallbackHandler)
    assert handler.langfuse_client is memory.client


def test_generation_carries_cost_details_from_our_pricing(memory):
    run_model(langfuse_handler(memory.client), AIMessage("hello", usage_metadata=USAGE))

    (generation,) = memory.generations()
    assert generation["cost_details"] == price(USAGE, GPT).as_langfuse()
    assert generation["metadata"]["llm_routing.priced_as"] == "openai:gpt-4o-mini"


def test_generation_carries_usage_details_from_our_pricing(memory):
    run_model(langfuse_handler(memory.client), AIMessage("hello", usage_metadata=USAGE))

    (generation,) = memory.generations()
    assert generation["usage_details"] == usage_details(USAGE)
    assert generation["usage_details"] == {"input": 120, "output": 30, "total": 150}


def test_cached_input_is_priced_and_reported_apart(memory):
    usage = {**USAGE, "input_token_details": {"cache_read": 100}}
    run_model(langfuse_handler(memory.client), AIMessage("hello", usage_metadata=usage))

    (generation,) = memory.generations()
    assert generation["usage_details"]["cache_read_input_tokens"] == 100
    assert generation["usage_details"]["input"] == 20
    assert generation["cost_details"] == price(usage, GPT).as_langfuse()


def test_model_is_priced_by_the_served_name_when_the_requested_one_is_unknown(memory):
    message = AIMessage("hello", usage_metadata=USAGE)
    run_model(
        langfuse_handler(memory.client),
        message,
        ls_model_name="my-azure-deployment",
        llm_output={"model_name": "gpt-4o-mini-2024-07-18"},
    )

    (generation,) = memory.generations()
    assert generation["cost_details"] == price(USAGE, GPT).as_langfuse()


def test_unknown_model_leaves_cost_unset_and_says_it_is_unknown(memory):
    message = AIMessage("hello", usage_metadata=USAGE)
    run_model(langfuse_handler(memory.client), message, ls_model_name="no-such-model-xyz")

    (generation,) = memory.generations()
    assert "cost_details" not in generation
    assert generation["metadata"]["llm_routing.cost"].startswith("unknown: model not in")
    assert generation["usage_details"] == usage_details(USAGE)


def test_model_without_a_price_leaves_cost_unset(memory):
    catalog = default_catalog().copy()
    catalog.register(ModelSpec(provider="openai", name="priceless-1", context_window=8_000))
    message = AIMessage("hello", usage_metadata=USAGE)
    run_model(
        langfuse_handler(memory.client, catalog=catalog), message, ls_model_name="priceless-1"
    )

    (generation,) = memory.generations()
    assert "cost_details" not in generation
    assert generation["metadata"]["llm_routing.priced_as"] == "openai:priceless-1"
    assert generation["metadata"]["llm_routing.cost"].startswith("unknown")


def test_handler_prices_with_the_catalogue_it_was_given(memory):
    catalog = default_catalog().copy()
    catalog.register(
        ModelSpec(
            provider="openai",
            name="house-model",
            context_window=8_000,
            price=Price(input=Decimal("1"), output=Decimal("2")),
        )
    )
    message = AIMessage("hello", usage_metadata=USAGE)
    run_model(
        langfuse_handler(memory.client, catalog=catalog), message, ls_model_name="house-model"
    )

    (generation,) = memory.generations()
    assert generation["cost_details"]["total"] == pytest.approx((120 * 1 + 30 * 2) / 1e6)


def test_message_without_usage_leaves_usage_and_cost_unset(memory):
    run_model(langfuse_handler(memory.client), AIMessage("hello"))

    (generation,) = memory.generations()
    assert "cost_details" not in generation
    reason = generation["metadata"]["llm_routing.cost"]
    assert reason == "unknown: the provider reported no usage"


def test_run_metadata_with_llm_routing_keys_reaches_the_generation(memory):
    model = FakeListChatModel(responses=["ok"])
    model.invoke(
        "hi",
        config={
            "callbacks": [langfuse_handler(memory.client)],
            "metadata": {"llm_routing.wait_s": 1.5, "llm_routing.attempt": 2},
        },
    )

    (generation,) = memory.generations()
    assert generation["metadata"]["llm_routing.wait_s"] == 1.5
    assert generation["metadata"]["llm_routing.attempt"] == 2


# --- the handler: errors --------------------------------------------------------------------


def fail_run(handler: Any, error: BaseException) -> None:
    run_id = uuid.uuid4()
    handler.on_chat_model_start(
        {"id": ["ChatOpenAI"]},
        [[HumanMessage("hi")]],
        run_id=run_id,
        metadata={"ls_provider": "openai", "ls_model_name": "gpt-4o-mini"},
        invocation_params={},
    )
    handler.on_llm_error(error, run_id=run_id)


def test_failed_run_is_an_error_generation_naming_the_exception_type(memory):
    fail_run(langfuse_handler(memory.client), ProviderUnavailableError("gpt down", model="m"))

    (generation,) = memory.generations()
    assert generation["level"] == "ERROR"
    assert generation["status_message"] == "ProviderUnavailableError: gpt down"
    assert generation["metadata"]["llm_routing.error_kind"] == "transient"


def test_failed_run_marks_the_error_as_recorded(memory):
    error = ValueError("boom")
    fail_run(langfuse_handler(memory.client), error)
    assert getattr(error, "_llm_routing_observed", False) is True


def test_error_mapped_from_a_recorded_one_is_not_a_refusal():
    mapped = ContextLengthExceededError("mapped")
    mapped.__cause__ = ContextLengthExceededError("inner")
    setattr(mapped.__cause__, "_llm_routing_observed", True)  # noqa: B010
    assert _refused_before_run(mapped) is False


# --- refusals -------------------------------------------------------------------------------


def test_refusal_without_a_cause_counts_as_refused_before_the_run():
    assert _refused_before_run(ContextLengthExceededError("too big")) is True


def test_error_caused_by_a_provider_error_is_not_a_refusal():
    error = ContextLengthExceededError("mapped")
    error.__cause__ = RuntimeError("provider said 400")
    assert _refused_before_run(error) is False


def test_error_raised_while_handling_a_provider_error_is_not_a_refusal():
    try:
        try:
            raise RuntimeError("429")
        except RuntimeError:
            raise RateLimitExhaustedError("gave up") from None
    except RateLimitExhaustedError as exc:
        suppressed = exc
    try:
        try:
            raise RuntimeError("429")
        except RuntimeError:
            raise RateLimitExhaustedError("gave up")  # noqa: B904
    except RateLimitExhaustedError as exc:
        chained = exc
    assert _refused_before_run(suppressed) is True
    assert _refused_before_run(chained) is False


def test_foreign_errors_are_never_refusals():
    assert _refused_before_run(ValueError("bad request")) is False


def test_guard_refusal_is_recorded_as_an_error_generation(memory):
    model = RefusalRecorder() | ContextGuard() | small_model()
    with pytest.raises(ContextLengthExceededError):
        model.invoke(LONG, config={"callbacks": [langfuse_handler(memory.client)]})

    (generation,) = memory.generations()
    assert generation["level"] == "ERROR"
    assert generation["status_message"].startswith("ContextLengthExceededError: input needs")
    assert generation["metadata"]["llm_routing.refused"] is True
    assert generation["metadata"]["llm_routing.token_limit"] == 54
    assert generation["metadata"]["llm_routing.required_tokens"] > 54
    assert generation["input"]  # the refused messages, as a real run would show them


class Full(Decorator):
    """Refuses every call the way the scheduler does when the wait would pass max_wait."""

    def before(self, call: Call) -> None:
        raise RateLimitExhaustedError(model="fake:m", wait_s=120.0)


def test_scheduler_refusal_is_recorded_with_the_wait_it_would_need(memory):
    model = RefusalRecorder() | Full() | small_model()
    with pytest.raises(RateLimitExhaustedError):
        model.invoke("hi", config={"callbacks": [langfuse_handler(memory.client)]})

    (generation,) = memory.generations()
    assert generation["status_message"].startswith("RateLimitExhaustedError: ")
    assert generation["metadata"]["llm_routing.needed_wait_s"] == 120.0
    assert generation["metadata"]["llm_routing.error_kind"] == "rate_limit"


@pytest.mark.asyncio
async def test_async_refusal_is_recorded(memory):
    model = RefusalRecorder() | ContextGuard() | small_model()
    with pytest.raises(ContextLengthExceededError):
        await model.ainvoke(LONG, config={"callbacks": [langfuse_handler(memory.client)]})

    (generation,) = memory.generations()
    assert generation["level"] == "ERROR"


def test_stream_refusal_is_recorded(memory):
    model = RefusalRecorder() | ContextGuard() | small_model()
    with pytest.raises(ContextLengthExceededError):
        list(model.stream(LONG, config={"callbacks": [langfuse_handler(memory.client)]}))

    assert [g["level"] for g in memory.generations()] == ["ERROR"]


def test_refusal_reaches_the_sdks_own_handler_too(memory):
    handler = CallbackHandler(public_key=memory.public_key)
    model = RefusalRecorder() | ContextGuard() | small_model()
    with pytest.raises(ContextLengthExceededError):
        model.invoke(LONG, config={"callbacks": [handler]})

    (generation,) = memory.generations()
    assert generation["level"] == "ERROR"


def test_refusal_inside_a_chain_nests_under_the_chains_span(memory):
    model = RefusalRecorder() | ContextGuard() | small_model()

    def call_model(text: str) -> Any:
        try:
            return model.invoke(text)
        except ContextLengthExceededError:
            return "refused"

    RunnableLambda(call_model).invoke(LONG, config={"callbacks": [langfuse_handler(memory.client)]})

    spans = memory.spans()
    (chain,) = [s for s in spans if s.attributes.get("langfuse.observation.type") == "chain"]
    (generation,) = [
        s for s in spans if s.attributes.get("langfuse.observation.type") == "generation"
    ]
    assert generation.parent.span_id == chain.context.span_id


class Starts(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.starts += 1


def test_refusal_is_not_reported_to_other_callback_handlers():
    other = Starts()
    model = RefusalRecorder() | ContextGuard() | small_model()
    with pytest.raises(ContextLengthExceededError):
        model.invoke(LONG, config={"callbacks": [other]})
    assert other.starts == 0


def test_recorder_leaves_the_error_unchanged():
    recorder = RefusalRecorder()
    error = ContextLengthExceededError("too big")
    call = Call("hi", {"callbacks": None}, {}, small_model(), {}, False)
    assert recorder.on_error(call, error) is None


def test_provider_error_is_recorded_once_not_again_by_the_recorder(memory):
    class Broken(FakeListChatModel):
        def _call(self, *args: Any, **kwargs: Any) -> str:
            raise ProviderUnavailableError("503 from the provider")

    # The model raises our error itself (no foreign cause): only the handler's mark tells
    # the recorder its run already reported it.
    model = RefusalRecorder() | Broken(responses=["x"], profile={"max_input_tokens": 1000})
    with pytest.raises(ProviderUnavailableError):
        model.invoke("hi", config={"callbacks": [langfuse_handler(memory.client)]})

    assert len(memory.generations()) == 1


# --- attach -------------------------------------------------------------------------------


def test_attach_to_no_config_gives_a_config_with_the_handler():
    handler = Starts()
    assert attach(None, handler) == {"callbacks": [handler]}


def test_attach_appends_without_changing_the_callers_list():
    first, handler = Starts(), Starts()
    callers = [first]
    config = attach({"callbacks": callers, "tags": ["x"]}, handler)
    assert config["callbacks"] == [first, handler]
    assert config["tags"] == ["x"]
    assert callers == [first]


def test_attach_does_not_add_a_handler_twice():
    handler = Starts()
    config = attach(attach(None, handler), handler)
    assert config["callbacks"] == [handler]


def test_attach_leaves_a_config_that_already_has_a_langfuse_handler(memory):
    theirs = CallbackHandler(public_key=memory.public_key)
    config = attach({"callbacks": [theirs]}, langfuse_handler(memory.client))
    assert config["callbacks"] == [theirs]


def test_attach_adds_to_a_callback_manager_as_an_inheritable_copy():
    manager = CallbackManager(handlers=[], parent_run_id=uuid.uuid4())
    handler = Starts()
    config = attach({"callbacks": manager}, handler)
    assert config["callbacks"] is not manager
    assert handler in config["callbacks"].inheritable_handlers
    assert config["callbacks"].parent_run_id == manager.parent_run_id
    assert manager.handlers == []


def test_attach_sees_a_langfuse_handler_inside_a_callback_manager(memory):
    ours = langfuse_handler(memory.client)
    manager = CallbackManager(handlers=[ours], inheritable_handlers=[ours])
    config = attach({"callbacks": manager}, langfuse_handler(memory.client))
    assert config["callbacks"] is manager


def test_attach_gives_our_handler_a_per_request_copy_on_the_same_client(memory):
    handler = langfuse_handler(memory.client)
    (attached,) = attach(None, handler)["callbacks"]
    assert attached is not handler
    assert isinstance(attached, RoutingCallbackHandler)
    assert attached.langfuse_client is memory.client


def test_attached_requests_get_one_trace_each(memory):
    handler = langfuse_handler(memory.client)
    model = FakeListChatModel(responses=["a", "b", "c"])
    first = attach(None, handler)
    model.invoke("one", config=first)
    model.invoke("two", config=first)
    model.invoke("three", config=attach(None, handler))

    traces = [g["trace_id"] for g in memory.generations()]
    assert traces[0] == traces[1] != traces[2]


def test_attached_request_nests_under_an_active_langfuse_span(memory):
    handler = langfuse_handler(memory.client)
    with memory.client.start_as_current_observation(name="request") as outer:
        FakeListChatModel(responses=["a"]).invoke("one", config=attach(None, handler))

    (generation,) = memory.generations()
    assert format(generation["trace_id"], "032x") == outer.trace_id


def test_attach_rejects_a_non_handler():
    with pytest.raises(TypeError, match="handler must be a LangChain callback handler"):
        attach(None, object())  # type: ignore[arg-type]


def test_attach_rejects_callbacks_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"config\['callbacks'\] must be"):
        attach({"callbacks": "handler"}, Starts())  # type: ignore[typeddict-item]


def test_is_langfuse_handler_knows_ours_and_the_sdks(memory):
    assert is_langfuse_handler(langfuse_handler(memory.client))
    assert is_langfuse_handler(CallbackHandler(public_key=memory.public_key))
    assert not is_langfuse_handler(Starts())


# --- LangfuseExport -------------------------------------------------------------------------


def test_export_bundles_handler_recorder_and_client(memory):
    export = LangfuseExport(memory.client)
    assert export.client is memory.client
    assert isinstance(export.recorder, RefusalRecorder)
    assert isinstance(export.handler, RoutingCallbackHandler)
    (attached,) = export.attach(None)["callbacks"]
    assert attached.langfuse_client is memory.client


def test_export_flush_and_shutdown_report_success(memory):
    export = LangfuseExport(memory.client)
    assert export.flush(timeout_s=10) is True
    assert export.shutdown(timeout_s=10) is True


# --- flush and shutdown ---------------------------------------------------------------------


def test_flush_returns_false_when_the_sdk_does_not_finish_in_time(memory, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(memory.client, "flush", lambda: release.wait(30))
    try:
        assert flush(memory.client, timeout_s=0.05) is False
    finally:
        release.set()


def test_shutdown_returns_false_when_the_sdk_raises(memory, monkeypatch):
    def broken() -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(memory.client, "shutdown", broken)
    assert shutdown(memory.client, timeout_s=5) is False


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_flush_rejects_a_timeout_that_bounds_nothing(timeout, memory):
    with pytest.raises(ValueError, match=r"flush\(timeout_s=…\) must be > 0"):
        flush(memory.client, timeout_s=timeout)


def test_shutdown_rejects_a_timeout_that_is_not_a_number(memory):
    with pytest.raises(TypeError, match=r"shutdown\(timeout_s=…\) must be a number"):
        shutdown(memory.client, timeout_s="5")  # type: ignore[arg-type]


def test_handler_rejects_a_client_that_is_not_a_langfuse_client():
    with pytest.raises(TypeError, match=r"client must be a langfuse\.Langfuse client"):
        langfuse_handler(client="pk-123")


def test_export_rejects_a_client_that_is_not_a_langfuse_client():
    with pytest.raises(TypeError, match=r"client must be a langfuse\.Langfuse client"):
        LangfuseExport(client=object())


def test_observe_has_no_other_lazy_attribute():
    import llm_routing.observe as observe

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        observe.Nope  # noqa: B018


# --- without the SDK, and from the environment ---------------------------------------------


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": SRC, **env},
        check=False,
    )


WITHOUT_SDK = """
import sys
sys.modules["langfuse"] = None  # what an uninstalled package looks like to import
import llm_routing.observe as observe
for attempt in (observe.langfuse_handler, observe.LangfuseExport,
                lambda: observe.RoutingCallbackHandler, lambda: observe.shutdown()):
    try:
        attempt()
    except ImportError as exc:
        print("ImportError:", exc)
    else:
        print("no error")
"""


def test_without_the_sdk_import_works_and_every_entry_point_names_the_extra():
    result = run_python(WITHOUT_SDK)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert all(line.startswith("ImportError:") and INSTALL_HINT in line for line in lines)


FROM_ENV = """
from langchain_core.language_models import FakeListChatModel
import llm_routing.observe as observe
handler = observe.langfuse_handler()
FakeListChatModel(responses=["hi"]).invoke("hello", config={"callbacks": [handler]})
print(observe.shutdown(timeout_s=10))
"""


class _OtlpSink(BaseHTTPRequestHandler):
    """Answers every OTLP export with 200 and keeps the request's path and headers."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, self.headers.get("Authorization")))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_handler_without_a_client_uses_langfuses_environment_configuration():
    # What the SDK does with its environment, seen where it matters: the export reaches
    # LANGFUSE_BASE_URL, signed with LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY.
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
    sink.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_python(
            FROM_ENV,
            LANGFUSE_PUBLIC_KEY="pk-from-env",
            LANGFUSE_SECRET_KEY="sk-from-env",
            LANGFUSE_BASE_URL=f"http://127.0.0.1:{sink.server_address[1]}",
        )
    finally:
        sink.shutdown()
        sink.server_close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]
    expected = "Basic " + base64.b64encode(b"pk-from-env:sk-from-env").decode()
    traces = [auth for path, auth in sink.received if path.endswith("/otel/v1/traces")]  # type: ignore[attr-defined]
    assert traces
    assert set(traces) == {expected}
