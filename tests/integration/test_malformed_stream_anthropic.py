"""A malformed Anthropic stream is typed and routed like a malformed OpenAI one.

The anthropic SDK, like openai's, lets a bare ``json.JSONDecodeError`` out of an SSE frame that
is not valid JSON, and langchain-anthropic does not wrap it. The simulator speaks only the
OpenAI shape, so a small loopback server sends Anthropic's events (valid ones, then
``data: {not json``) to the real ChatAnthropic; the fallback is a real ChatOpenAI on the
simulator.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic

from llm_routing import ProviderUnavailableError
from llm_routing.cost import CostTracker
from llm_routing.router import Router, build_router
from llm_routing.sim import SimModel, SimulatedProvider

MODEL = "claude-haiku-4-5"
_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
]


class _Server(ThreadingHTTPServer):
    valid_events = 0  # how many of _EVENTS go out before the malformed frame


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b"".join(
            f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            for event in _EVENTS[: self.server.valid_events]
        )
        body += b"event: content_block_delta\ndata: {not json\n\n"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedProvider]:
    with SimulatedProvider([SimModel(name="gpt-4o-mini")]) as provider:
        yield provider


def routed(server: _Server, sim: SimulatedProvider) -> tuple[Router, CostTracker]:
    anthropic = ChatAnthropic(
        model_name=MODEL,
        base_url=f"http://127.0.0.1:{server.server_address[1]}",
        api_key="sk-ant-test",
        max_retries=0,
        timeout=None,
        stop=None,
    )
    tracker = CostTracker(budget_usd=1.0)
    chain = build_router(
        anthropic,
        ["openai:gpt-4o-mini"],
        scheduler=False,
        tracker=tracker,
        init_kwargs={"base_url": sim.base_url, "api_key": "sim"},
    )
    return chain, tracker


def test_malformed_anthropic_stream_before_its_first_chunk_falls_back(server, sim):
    server.valid_events = 0
    chain, tracker = routed(server, sim)
    chunks = list(chain.stream("hi"))
    assert chunks[0].response_metadata["llm_routing.model"] == "openai:gpt-4o-mini"
    [attempt] = chunks[0].response_metadata["llm_routing.attempts"]
    assert attempt["kind"] == "transient"
    assert attempt["error"].startswith(
        f"ProviderUnavailableError: anthropic:{MODEL} sent a malformed stream: not valid JSON"
    )
    assert tracker.summary()["budgets"][0]["reserved"] == 0


def test_malformed_anthropic_stream_after_its_first_chunk_raises_it_typed(server, sim):
    server.valid_events = len(_EVENTS)
    chain, tracker = routed(server, sim)
    chunks = []
    with pytest.raises(ProviderUnavailableError) as info:
        for chunk in chain.stream("hi"):
            chunks.append(chunk)
    assert "".join(c.text for c in chunks) == "Hello"
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    assert f"the stream from anthropic:{MODEL} failed after its first chunk" in " ".join(
        info.value.__notes__
    )
    assert chain.stats()["broken_streams"] == 1
    [record] = tracker.records()
    assert (record.status, record.estimated) == ("error", True)
    assert tracker.summary()["budgets"][0]["reserved"] == 0
