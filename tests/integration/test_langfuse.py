"""Langfuse export with real ChatOpenAI clients over HTTP against the simulated provider.

Spans go to the SDK's exporter of the test's choosing: an in-memory exporter (what the SDK
would send), a local OTLP/HTTP receiver (the bytes on the wire), or a closed port (an
unreachable host). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from langfuse import Langfuse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider

from llm_routing.catalog import default_catalog
from llm_routing.cost.pricing import price, usage_details
from llm_routing.guard import ContextGuard
from llm_routing.observe import LangfuseExport, RefusalRecorder, flush, langfuse_handler, shutdown
from llm_routing.router import build_router
from llm_routing.sim import FaultPlan, SimulatedProvider
from llm_routing.tokens import count_tokens
from tests.support.otel import LangfuseMemory, decoded, langfuse_memory, observation
from tests.support.ports import free_port
from tests.support.sim import chat

GPT = default_catalog().get("openai:gpt-4o-mini")
PROMPT = "Tell me one fact about otters."
LONG = "word " * 400  # too big for tiny-window (300 tokens), fine for gpt-4o-mini


def tiny(sim: SimulatedProvider) -> ChatOpenAI:
    return chat(sim, "tiny-window", profile={"max_input_tokens": 300})


@pytest.fixture
def memory() -> Iterator[LangfuseMemory]:
    with langfuse_memory("pk-test") as recorder:
        yield recorder


# --- (a) a guarded call ---------------------------------------------------------------------


def test_guarded_call_exports_one_generation_with_our_cost_and_usage(sim, memory):
    model = ContextGuard() | chat(sim, "gpt-4o-mini")
    answer = model.invoke(PROMPT, config={"callbacks": [langfuse_handler(memory.client)]})

    generations = memory.generation_spans()
    assert len(generations) == 1
    fields = observation(generations[0])
    assert fields["cost_details"] == price(answer.usage_metadata, GPT).as_langfuse()
    assert fields["cost_details"]["total"] > 0
    assert fields["usage_details"] == usage_details(answer.usage_metadata)
    assert fields["metadata"]["llm_routing.priced_as"] == "openai:gpt-4o-mini"


def test_guarded_call_generation_carries_the_guards_token_estimate(sim, memory):
    model = ContextGuard() | chat(sim, "gpt-4o-mini")
    model.invoke(PROMPT, config={"callbacks": [langfuse_handler(memory.client)]})

    (generation,) = memory.generation_spans()
    metadata = observation(generation)["metadata"]
    assert metadata["llm_routing.input_tokens"] == count_tokens([("user", PROMPT)], GPT)
    assert metadata["llm_routing.context_window"] == GPT.context_window


def test_usage_details_match_the_simulators_token_counts(sim, memory):
    model = ContextGuard() | chat(sim, "gpt-4o-mini")
    model.invoke(PROMPT, config={"callbacks": [langfuse_handler(memory.client)]})

    (generation,) = memory.generation_spans()
    served = sim.stats()["models"]["gpt-4o-mini"]
    usage = observation(generation)["usage_details"]
    assert usage["input"] == served["prompt_tokens"]
    assert usage["output"] == served["completion_tokens"]


@pytest.mark.asyncio(loop_scope="session")
async def test_async_guarded_call_exports_one_generation_with_our_cost(sim, memory):
    model = ContextGuard() | chat(sim, "gpt-4o-mini")
    answer = await model.ainvoke(PROMPT, config={"callbacks": [langfuse_handler(memory.client)]})

    (generation,) = memory.generation_spans()
    assert (
        observation(generation)["cost_details"] == price(answer.usage_metadata, GPT).as_langfuse()
    )


def test_batch_exports_one_priced_generation_per_input(sim, memory):
    model = ContextGuard() | chat(sim, "gpt-4o-mini")
    handler = langfuse_handler(memory.client)
    answers = model.batch([PROMPT, "And one about seals?"], config={"callbacks": [handler]})

    costs = sorted(observation(g)["cost_details"]["total"] for g in memory.generation_spans())
    assert costs == sorted(price(a.usage_metadata, GPT).as_langfuse()["total"] for a in answers)


# --- (c) streams ------------------------------------------------------------------------------


def test_stream_with_stream_usage_gets_cost(sim, memory):
    model = ContextGuard() | chat(sim, "gpt-4o-mini", stream_usage=True)
    total = None
    for chunk in model.stream(PROMPT, config={"callbacks": [langfuse_handler(memory.client)]}):
        total = chunk if total is None else total + chunk

    (generation,) = memory.generation_spans()
    fields = observation(generation)
    assert fields["cost_details"] == price(total.usage_metadata, GPT).as_langfuse()
    assert fields["usage_details"] == usage_details(total.usage_metadata)


@pytest.mark.asyncio(loop_scope="session")
async def test_async_stream_with_stream_usage_gets_cost(sim, memory):
    model = ContextGuard() | chat(sim, "gpt-4o-mini", stream_usage=True)
    total = None
    config = {"callbacks": [langfuse_handler(memory.client)]}
    async for chunk in model.astream(PROMPT, config=config):
        total = chunk if total is None else total + chunk

    (generation,) = memory.generation_spans()
    assert observation(generation)["cost_details"] == price(total.usage_metadata, GPT).as_langfuse()


def test_stream_without_usage_says_the_cost_is_unknown_not_zero(sim, memory):
    model = ContextGuard() | chat(sim, "gpt-4o-mini", stream_usage=False)
    for _chunk in model.stream(PROMPT, config={"callbacks": [langfuse_handler(memory.client)]}):
        pass

    (generation,) = memory.generation_spans()
    fields = observation(generation)
    assert "cost_details" not in fields
    assert fields["metadata"]["llm_routing.cost"].startswith("unknown")


# --- (b) the router -----------------------------------------------------------------------


def routed(sim: SimulatedProvider, export: LangfuseExport) -> Any:
    """tiny-window first (its guard refuses LONG), then gpt-4o-mini, both recorded."""
    stack = export.recorder | ContextGuard()
    return build_router(
        stack | tiny(sim),
        [stack | chat(sim, "gpt-4o-mini")],
        guard=False,
        scheduler=False,
        tracker=False,
    )


def test_router_shows_one_generation_per_attempt(sim, memory):
    export = LangfuseExport(memory.client)
    routed(sim, export).invoke(LONG, config=export.attach(None))

    generations = memory.generation_spans()
    assert sorted(observation(g)["model.name"] for g in generations) == [
        "gpt-4o-mini",
        "tiny-window",
    ]


def test_router_refused_attempt_is_an_error_generation_naming_the_refusal(sim, memory):
    export = LangfuseExport(memory.client)
    routed(sim, export).invoke(LONG, config=export.attach(None))

    (refused,) = [
        g for g in memory.generation_spans() if observation(g)["model.name"] == "tiny-window"
    ]
    fields = observation(refused)
    assert fields["level"] == "ERROR"
    assert fields["status_message"].startswith("ContextLengthExceededError: ")
    assert fields["metadata"]["llm_routing.error_kind"] == "context"
    assert fields["metadata"]["llm_routing.token_limit"] == 270
    assert sim.stats()["models"]["tiny-window"]["requests_served"] == 0


def test_router_served_attempt_carries_its_cost(sim, memory):
    export = LangfuseExport(memory.client)
    answer = routed(sim, export).invoke(LONG, config=export.attach(None))

    (served,) = [
        g for g in memory.generation_spans() if observation(g)["model.name"] == "gpt-4o-mini"
    ]
    fields = observation(served)
    assert "level" not in fields
    assert fields["cost_details"] == price(answer.usage_metadata, GPT).as_langfuse()
    assert answer.response_metadata["llm_routing.model"] == "openai:gpt-4o-mini"


def test_router_attempts_of_one_request_share_one_trace(sim, memory):
    export = LangfuseExport(memory.client)
    router = routed(sim, export)
    router.invoke(LONG, config=export.attach(None))
    router.invoke(LONG, config=export.attach(None))

    traces = [g.context.trace_id for g in memory.generation_spans()]
    assert len(traces) == 4
    assert len(set(traces)) == 2


@pytest.mark.asyncio(loop_scope="session")
async def test_async_router_records_the_refusal_and_the_served_attempt(sim, memory):
    export = LangfuseExport(memory.client)
    await routed(sim, export).ainvoke(LONG, config=export.attach(None))

    levels = {
        observation(g)["model.name"]: observation(g).get("level") for g in memory.generation_spans()
    }
    assert levels == {"tiny-window": "ERROR", "gpt-4o-mini": None}


def test_streamed_router_records_the_refusal_and_prices_the_stream(sim, memory):
    export = LangfuseExport(memory.client)
    stack = export.recorder | ContextGuard()
    router = build_router(
        stack | tiny(sim),
        [stack | chat(sim, "gpt-4o-mini", stream_usage=True)],
        guard=False,
        scheduler=False,
        tracker=False,
    )
    total = None
    for chunk in router.stream(LONG, config=export.attach(None)):
        total = chunk if total is None else total + chunk

    by_model = {observation(g)["model.name"]: observation(g) for g in memory.generation_spans()}
    assert by_model["tiny-window"]["level"] == "ERROR"
    assert by_model["gpt-4o-mini"]["cost_details"] == (
        price(total.usage_metadata, GPT).as_langfuse()
    )


def test_provider_error_is_recorded_once_at_level_error(sim, memory):
    sim.set_faults("faulty", FaultPlan.always(503))
    model = (
        RefusalRecorder()
        | ContextGuard()
        | chat(sim, "faulty", profile={"max_input_tokens": 128_000})
    )
    with pytest.raises(Exception) as raised:
        model.invoke(PROMPT, config={"callbacks": [langfuse_handler(memory.client)]})

    (generation,) = memory.generation_spans()
    fields = observation(generation)
    assert fields["level"] == "ERROR"
    assert fields["status_message"].startswith(f"{type(raised.value).__name__}: ")
    assert fields["metadata"]["llm_routing.error_kind"] == "transient"


# --- (d) on the wire ------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps each decoded request, answers 200."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.received.append(
            (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )  # type: ignore[attr-defined]
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def wire_spans(received: list[tuple[str, dict[str, str], bytes]]) -> list[dict[str, Any]]:
    """Every span of every OTLP request, as {attribute: value}."""
    spans = []
    for _path, _headers, body in received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans += [{kv.key: _value(kv.value) for kv in s.attributes} for s in scope.spans]
    return spans


def test_cost_arrives_on_the_wire_as_otlp_protobuf(sim, otlp_receiver):
    host, port = otlp_receiver.server_address[:2]
    provider = TracerProvider()
    public_key = f"pk-wire-{uuid.uuid4().hex}"
    client = Langfuse(
        public_key=public_key,
        secret_key="sk-wire",
        base_url=f"http://{host}:{port}",
        tracer_provider=provider,
    )
    try:
        model = ContextGuard() | chat(sim, "gpt-4o-mini")
        answer = model.invoke(PROMPT, config={"callbacks": [langfuse_handler(client)]})
        assert flush(client, timeout_s=10)
    finally:
        shutdown(client, timeout_s=10)
        provider.shutdown()

    paths = {path for path, _headers, _body in otlp_receiver.received}
    assert paths == {"/api/public/otel/v1/traces"}
    auth = {headers["authorization"] for _path, headers, _body in otlp_receiver.received}
    assert auth == {"Basic " + base64.b64encode(f"{public_key}:sk-wire".encode()).decode()}
    (generation,) = [
        s
        for s in wire_spans(otlp_receiver.received)
        if s.get("langfuse.observation.type") == "generation"
    ]
    assert json.loads(generation["langfuse.observation.cost_details"]) == (
        price(answer.usage_metadata, GPT).as_langfuse()
    )
    assert json.loads(generation["langfuse.observation.usage_details"]) == (
        usage_details(answer.usage_metadata)
    )
    assert decoded(generation["langfuse.observation.metadata.llm_routing.input_tokens"]) > 0


# --- (e) an unreachable host ------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def unreachable(closed_port: int) -> Iterator[Langfuse]:
    provider = TracerProvider()
    client = Langfuse(
        public_key=f"pk-down-{uuid.uuid4().hex}",
        secret_key="sk-down",
        base_url=f"http://127.0.0.1:{closed_port}",
        tracer_provider=provider,
        timeout=1,
    )
    yield client
    shutdown(client, timeout_s=0.2)


def test_call_succeeds_with_the_langfuse_host_unreachable(sim, unreachable):
    model = ContextGuard() | chat(sim, "gpt-4o-mini")
    answer = model.invoke(PROMPT, config={"callbacks": [langfuse_handler(unreachable)]})
    assert answer.content
    assert answer.usage_metadata["output_tokens"] > 0


def test_flush_returns_within_its_timeout_with_the_host_unreachable(sim, unreachable):
    model = ContextGuard() | chat(sim, "gpt-4o-mini")
    model.invoke(PROMPT, config={"callbacks": [langfuse_handler(unreachable)]})
    assert flush(unreachable, timeout_s=0.2) in (True, False)


def test_shutdown_returns_within_its_timeout_with_the_host_unreachable(sim, unreachable):
    model = ContextGuard() | chat(sim, "gpt-4o-mini")
    model.invoke(PROMPT, config={"callbacks": [langfuse_handler(unreachable)]})
    assert shutdown(unreachable, timeout_s=0.2) in (True, False)


def test_build_router_langfuse_client_records_every_attempt_and_why_it_fell_back(sim, memory):
    router = build_router(
        tiny(sim),
        [chat(sim, "gpt-4o-mini")],
        scheduler=False,
        tracker=False,
        langfuse=memory.client,
    )
    answer = router.invoke(LONG)

    by_model = {observation(g)["model.name"]: observation(g) for g in memory.generation_spans()}
    assert set(by_model) == {"tiny-window", "gpt-4o-mini"}
    assert by_model["tiny-window"]["level"] == "ERROR"
    served = by_model["gpt-4o-mini"]
    assert served["cost_details"] == price(answer.usage_metadata, GPT).as_langfuse()
    assert served["metadata"]["llm_routing.router_attempt"] == 2
    assert served["metadata"]["llm_routing.fallback_from"] == ["openai:tiny-window (context)"]
