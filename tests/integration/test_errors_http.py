"""classify() on the exceptions the real LangChain clients raise for real HTTP error responses.

A tiny canned-response server on loopback stands in for the provider: the exceptions come out of
the real openai/anthropic SDKs and the real langchain-openai/langchain-anthropic wrappers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.exceptions import ContextOverflowError, ModelRateLimitError
from langchain_openai import ChatOpenAI

from llm_routing import FALLBACK_ERRORS, ErrorKind, classify, retry_after


class _Canned:
    status = 200
    headers: dict[str, str] = {}
    body: dict = {}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        payload = json.dumps(_Canned.body).encode()
        self.send_response(_Canned.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in _Canned.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def canned() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _respond(status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    _Canned.status, _Canned.body, _Canned.headers = status, body, headers or {}


def _openai(base: str) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", base_url=f"{base}/v1", api_key="sk-test", max_retries=0)


def _anthropic(base: str) -> ChatAnthropic:
    return ChatAnthropic(
        model="claude-haiku-4-5", base_url=base, api_key="sk-ant-test", max_retries=0
    )


def test_openai_rate_limit_via_chat_openai(canned):
    _respond(
        429,
        {
            "error": {
                "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        },
        {"retry-after": "2", "retry-after-ms": "1500"},
    )
    with pytest.raises(ModelRateLimitError) as info:
        _openai(canned).invoke("hi")
    assert classify(info.value) is ErrorKind.RATE_LIMIT
    assert retry_after(info.value) == pytest.approx(1.5)
    assert isinstance(info.value, FALLBACK_ERRORS)


def test_openai_insufficient_quota_via_chat_openai(canned):
    _respond(
        429,
        {
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        },
    )
    with pytest.raises(ModelRateLimitError) as info:
        _openai(canned).invoke("hi")
    assert classify(info.value) is ErrorKind.QUOTA


def test_openai_context_length_via_chat_openai(canned):
    _respond(
        400,
        {
            "error": {
                "message": "This model's maximum context length is 128000 tokens.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
    )
    # langchain-openai 1.7 recognises a context overflow only by words in the message, so this
    # real OpenAI body comes out as a plain invalid-request error; the error code still says it.
    with pytest.raises(Exception) as info:
        _openai(canned).invoke("hi")
    assert classify(info.value) is ErrorKind.CONTEXT


def test_openai_context_overflow_worded_as_langchain_expects(canned):
    _respond(
        400,
        {
            "error": {
                "message": "context_length_exceeded: input is too long",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
    )
    with pytest.raises(ContextOverflowError) as info:
        _openai(canned).invoke("hi")
    assert classify(info.value) is ErrorKind.CONTEXT


async def test_openai_server_error_async(canned):
    _respond(
        503, {"error": {"message": "The engine is currently overloaded", "type": "server_error"}}
    )
    with pytest.raises(Exception) as info:
        await _openai(canned).ainvoke("hi")
    assert classify(info.value) is ErrorKind.TRANSIENT
    assert isinstance(info.value, FALLBACK_ERRORS)


def test_anthropic_overloaded_529_via_chat_anthropic(canned):
    _respond(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(Exception) as info:
        _anthropic(canned).invoke("hi")
    assert classify(info.value) is ErrorKind.TRANSIENT
    assert isinstance(info.value, FALLBACK_ERRORS)


def test_anthropic_rate_limit_with_retry_after(canned):
    _respond(
        429,
        {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "Number of request tokens has exceeded your per-minute rate limit",
            },
        },
        {"retry-after": "9"},
    )
    with pytest.raises(ModelRateLimitError) as info:
        _anthropic(canned).invoke("hi")
    assert classify(info.value) is ErrorKind.RATE_LIMIT
    assert retry_after(info.value) == 9.0


def test_auth_error_is_not_a_fallback_error(canned):
    _respond(
        401,
        {"error": {"message": "Incorrect API key provided: sk-test", "code": "invalid_api_key"}},
    )
    with pytest.raises(Exception) as info:
        _openai(canned).invoke("hi")
    assert classify(info.value) is ErrorKind.AUTH
    assert not isinstance(info.value, FALLBACK_ERRORS)
