"""The simulator's HTTP surface: an ASGI (Starlette) app speaking the OpenAI chat API.

Owns request parsing and validation (OpenAI-shaped 400/404), response framing (JSON and SSE
streaming) and putting faults on the wire (hangs, resets, cut streams, broken JSON). Decisions
and counters live in ``sim.state``; running the server in a thread is ``sim.server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import struct
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.model import SimModel
from llm_routing.sim.state import (
    QUOTA_MESSAGE,
    Admission,
    ChatRequest,
    Completion,
    Rejection,
    SimState,
    daily_quota_body,
    error_body,
    spend_limit_body,
)

__all__ = ["ShutdownSignal", "create_app"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_CHUNK = "chat.completion.chunk"
_OFFLOAD_BYTES = 64 * 1024


class ShutdownSignal:
    """Lets another thread wake every request the simulator is holding open (``timeout``).

    Bound to the server's event loop at startup; ``trigger`` is thread-safe.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self) -> None:
        """Attach to the running loop (called from the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def trigger(self) -> None:
        """Wake every waiter; thread-safe, and a no-op before startup or after the loop ends."""
        loop, event = self._loop, self._event
        if loop is None or event is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        """Return once ``trigger`` has been called."""
        if self._event is None:
            self.bind()
        assert self._event is not None
        await self._event.wait()


def create_app(state: SimState, shutdown: ShutdownSignal | None = None) -> Starlette:
    """The ASGI app serving ``state``'s models.

    Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/models/{model}``,
    ``GET /sim/stats`` and ``POST /sim/reset``.
    """
    signal = shutdown or ShutdownSignal()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        signal.bind()
        yield
        signal.trigger()

    async def list_models(_request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [_model_card(m.name) for m in state.models]})

    async def get_model(request: Request) -> Response:
        name = str(request.path_params["model"])
        model = state.resolve(name)
        if model is None:
            return JSONResponse(_not_found_body(name), status_code=404)
        return JSONResponse(_model_card(model.name))

    async def stats(_request: Request) -> Response:
        return JSONResponse(state.stats())

    async def reset(_request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = f"Invalid URL ({request.method} {request.url.path})"
        return JSONResponse(error_body(message), status_code=status)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", _ChatCompletions(state, signal), methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/sim/stats", stats, methods=["GET"]),
            Route("/sim/reset", reset, methods=["POST"]),
        ],
        exception_handlers={404: http_error, 405: http_error},
        lifespan=lifespan,
    )


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "llm-routing-sim"}


def _not_found_body(name: str) -> dict[str, Any]:
    return error_body(
        f"The model `{name}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


# -- validation -------------------------------------------------------------------------------


class _BadRequest(Rejection):
    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        model: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(status, error_body(message, param=param, code=code))
        self.model = model


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_type(param: str, expected: str, value: Any, model: str | None) -> _BadRequest:
    return _BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
        model=model,
    )


def parse_chat_request(data: Any, state: SimState) -> ChatRequest:
    """Validate a decoded request body the way OpenAI does (400s), resolving the model (404)."""
    if not isinstance(data, dict):
        raise _invalid_type("body", "an object", data, None)
    name = data.get("model")
    if name is None:
        raise _BadRequest(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if not isinstance(name, str):
        raise _invalid_type("model", "a string", name, None)
    model = state.resolve(name)
    if model is None:
        raise _BadRequest(
            _not_found_body(name)["error"]["message"],
            param="model",
            code="model_not_found",
            status=404,
        )
    m = model.name
    state.note_received(m)
    messages = _messages(data.get("messages", _MISSING), m)

    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean", stream, m)
    include_usage = False
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _invalid_type("stream_options", "an object", options, m)
        if not stream:
            raise _BadRequest(
                "Invalid value for 'stream_options': Setting stream_options is only allowed when "
                "'stream' is enabled.",
                param="stream_options",
                code="invalid_value",
                model=m,
            )
        include_usage = bool(options.get("include_usage", False))

    max_tokens = _max_tokens(data, model.max_output_tokens, m)
    n = data.get("n", 1)
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int):
            raise _invalid_type("n", "an integer", n, m)
        if n != 1:
            raise _BadRequest(
                f"Invalid value for 'n': the simulator serves one choice per request (n=1), got "
                f"n={n}. Send separate requests instead.",
                param="n",
                code="invalid_value",
                model=m,
            )
    stop = _stop(data.get("stop"), m)
    tools = _tools(data.get("tools"), m)
    tool_choice = _tool_choice(data.get("tool_choice"), tools, m)
    response_format = _response_format(data.get("response_format"), m)
    return ChatRequest(
        model=m,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        stop=stop,
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
    )


_MISSING: Any = object()


def _messages(value: Any, m: str) -> list[dict[str, Any]]:
    if value is _MISSING or value is None:
        raise _BadRequest(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
            model=m,
        )
    if not isinstance(value, list):
        raise _invalid_type("messages", "an array", value, m)
    if not value:
        raise _BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
            model=m,
        )
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid_type(where, "an object", message, m)
        role = message.get("role")
        if role not in _ROLES:
            raise _BadRequest(
                f"Invalid value for '{where}.role': expected one of {', '.join(sorted(_ROLES))}, "
                f"got {role!r}.",
                param=f"{where}.role",
                code="invalid_value",
                model=m,
            )
        content = message.get("content")
        if content is None and role not in ("assistant", "function"):
            raise _BadRequest(
                f"Missing required parameter: '{where}.content'.",
                param=f"{where}.content",
                code="missing_required_parameter",
                model=m,
            )
        if content is not None and not isinstance(content, str | list):
            raise _invalid_type(f"{where}.content", "a string or array", content, m)
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _invalid_type(f"{where}.content[{j}]", "an object with a 'type'", part, m)
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _BadRequest(
                f"Missing required parameter: '{where}.tool_call_id'.",
                param=f"{where}.tool_call_id",
                code="missing_required_parameter",
                model=m,
            )
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise _invalid_type(f"{where}.tool_calls", "an array", calls, m)
    return value


def _max_tokens(data: Mapping[str, Any], cap: int | None, m: str) -> int | None:
    given = {k: data[k] for k in ("max_completion_tokens", "max_tokens") if data.get(k) is not None}
    if len(given) == 2:
        raise _BadRequest(
            "max_tokens and max_completion_tokens cannot both be set; use max_completion_tokens.",
            param="max_tokens",
            code="invalid_value",
            model=m,
        )
    if not given:
        return None
    param, value = next(iter(given.items()))
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(param, "an integer", value, m)
    if value < 1:
        raise _BadRequest(
            f"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got "
            f"{value} instead.",
            param=param,
            code="integer_below_min_value",
            model=m,
        )
    if cap is not None and value > cap:
        raise _BadRequest(
            f"{param} is too large: {value}. This model supports at most {cap} completion "
            f"tokens, whereas you provided {value}.",
            param=param,
            code="invalid_value",
            model=m,
        )
    return value


def _stop(value: Any, m: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _invalid_type("stop", "a string or an array of strings", value, m)
    if len(value) > 4:
        raise _BadRequest(
            f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got "
            f"an array with length {len(value)} instead.",
            param="stop",
            code="array_above_max_length",
            model=m,
        )
    return tuple(value)


def _tools(value: Any, m: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid_type("tools", "an array", value, m)
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _BadRequest(
                f"Invalid value for '{where}': expected a function tool "
                "({'type': 'function', 'function': {...}}).",
                param=where,
                code="invalid_value",
                model=m,
            )
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _BadRequest(
                f"Missing required parameter: '{where}.function.name'.",
                param=f"{where}.function.name",
                code="missing_required_parameter",
                model=m,
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _invalid_type(f"{where}.function.parameters", "an object", parameters, m)
    return value


def _tool_choice(
    value: Any, tools: Sequence[Mapping[str, Any]], m: str
) -> str | dict[str, Any] | None:
    if value is None:
        return None
    if not tools:
        raise _BadRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
            "'tools' are specified.",
            param="tool_choice",
            code="invalid_value",
            model=m,
        )
    if value in ("none", "auto", "required"):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        name = value["function"].get("name")
        if name in {t["function"]["name"] for t in tools}:
            return value
        raise _BadRequest(
            f"Invalid value for 'tool_choice': function {name!r} not found in 'tools'.",
            param="tool_choice",
            code="invalid_value",
            model=m,
        )
    raise _BadRequest(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        param="tool_choice",
        code="invalid_value",
        model=m,
    )


def _response_format(value: Any, m: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid_type("response_format", "an object", value, m)
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return value
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise _BadRequest(
                "Missing required parameter: 'response_format.json_schema'.",
                param="response_format.json_schema",
                code="missing_required_parameter",
                model=m,
            )
        return value
    raise _BadRequest(
        f"Invalid value for 'response_format.type': {kind!r}; expected 'text', "
        "'json_object' or 'json_schema'.",
        param="response_format.type",
        code="invalid_value",
        model=m,
    )


# -- the endpoint ---------------------------------------------------------------------------


class _ChatCompletions:
    """``POST /v1/chat/completions`` as a raw ASGI endpoint.

    Raw ASGI (not a request -> response function) because some faults must answer nothing at
    all: hold the connection open, or reset it, which a Response object cannot express.
    """

    def __init__(self, state: SimState, shutdown: ShutdownSignal) -> None:
        self.state = state
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        state.note_received()
        try:
            body = await Request(scope, receive).body()
        except ClientDisconnect:
            return
        try:
            try:
                data = json.loads(body)
            except ValueError:
                raise _BadRequest(
                    "We could not parse the JSON body of your request. The OpenAI API expects a "
                    "JSON payload, but what was sent was not valid JSON."
                ) from None
            request = parse_chat_request(data, state)
        except _BadRequest as exc:
            if exc.status == 404:
                state.note_not_found()
            else:
                state.note_bad_request(exc.model)
            await _send_json(send, exc.status, exc.body, exc.headers)
            return
        model = _model(state, request)
        try:
            if len(body) > _OFFLOAD_BYTES:
                # Counting a long document takes milliseconds; tiktoken releases the GIL, so a
                # worker thread keeps the loop accepting connections meanwhile.
                prompt_tokens = await asyncio.to_thread(
                    sim_tokens.count_prompt, request.messages, request.tools, model
                )
            else:
                prompt_tokens = sim_tokens.count_prompt(request.messages, request.tools, model)
        except (ValueError, TypeError) as exc:
            state.note_bad_request(request.model)
            await _send_json(send, 400, error_body(f"Invalid 'messages': {exc}", param="messages"))
            return
        try:
            state.check_context(request, prompt_tokens)
            admission = state.admit(request, prompt_tokens)
        except Rejection as exc:
            await _send_json(send, exc.status, exc.body, exc.headers)
            return
        await self._answer(request, admission, receive, send)

    async def _answer(
        self, request: ChatRequest, admission: Admission, receive: Receive, send: Send
    ) -> None:
        fault = admission.fault
        if fault == "reset":
            await _abort(receive)
            return
        if fault == "timeout":
            await self._hang(receive, admission.hang)
            return
        if fault in ("500", "502", "503", "529"):
            status, body = _server_error(fault)
            await _send_json(send, status, body, admission.headers)
            return
        if fault in ("429", "quota", "spend_limit", "daily_quota"):
            body, headers = _rate_limit_fault(fault, admission, _model(self.state, request).rpd)
            await _send_json(send, 429, body, headers)
            return
        if request.stream:
            await self._stream(request, admission, receive, send)
        else:
            await self._complete(admission, receive, send)

    async def _hang(self, receive: Receive, limit: float | None) -> None:
        # Hold the request until the client gives up, the server stops, or ``limit`` passes;
        # then close without answering, as an overloaded upstream that never replies.
        waiters = [
            asyncio.ensure_future(receive()),
            asyncio.ensure_future(self.shutdown.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        await _abort(receive)

    async def _complete(self, admission: Admission, receive: Receive, send: Send) -> None:
        completion = admission.completion
        delay = admission.ttft + admission.per_token * completion.completion_tokens
        if delay:
            await asyncio.sleep(delay)
        payload = json.dumps(_completion_body(completion)).encode()
        if admission.fault == "malformed":
            await _send_bytes(send, 200, payload[: len(payload) // 2], admission.headers)
            return
        if admission.fault == "drop":
            await _start(send, 200, admission.headers, length=len(payload))
            await send(
                {
                    "type": "http.response.body",
                    "body": payload[: len(payload) // 2],
                    "more_body": True,
                }
            )
            await _abort(receive)
            return
        self.state.note_served(completion)
        await _send_bytes(send, 200, payload, admission.headers)

    async def _stream(
        self, request: ChatRequest, admission: Admission, receive: Receive, send: Send
    ) -> None:
        completion = admission.completion
        frames = _stream_frames(completion, include_usage=request.include_usage)
        if admission.ttft:
            await asyncio.sleep(admission.ttft)
        await _start(send, 200, admission.headers, content_type="text/event-stream; charset=utf-8")
        cut = min(admission.drop_after, len(frames) - 1)
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            if i == cut and admission.fault == "drop":
                await _abort(receive)
                return
            if i == cut and admission.fault == "malformed":
                # The stream ends with the broken frame: the client stops reading there, and
                # writing on to a socket it closed only makes asyncio log send() errors.
                broken = frame[: max(8, len(frame) // 2)].rstrip(b"\n") + b"\n\n"
                await send({"type": "http.response.body", "body": broken, "more_body": False})
                return
            if i == last and admission.fault is None:
                self.state.note_served(completion)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            if admission.per_token and 0 < i <= len(completion.pieces):
                await asyncio.sleep(admission.per_token)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _model(state: SimState, request: ChatRequest) -> SimModel:
    model = state.resolve(request.model)
    assert model is not None  # parse_chat_request resolved it
    return model


# -- bodies ---------------------------------------------------------------------------------


def _rate_limit_fault(
    kind: str, admission: Admission, rpd: int | None = None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    if kind == "quota":
        return error_body(QUOTA_MESSAGE, "insufficient_quota", code="insufficient_quota"), list(
            admission.headers
        )
    if kind == "spend_limit":  # never a retry-after: waiting cannot help
        return spend_limit_body(f"req_{admission.completion.id}"), list(admission.headers)
    if kind == "daily_quota":
        return daily_quota_body(admission.completion.model, rpd), list(admission.headers)
    headers = list(admission.headers)
    wait = admission.retry_after
    hint = ""
    if wait is not None:
        headers = [
            ("retry-after", str(max(0, math.ceil(wait - 1e-9)))),
            ("retry-after-ms", str(max(0, math.ceil(wait * 1000 - 1e-6)))),
            *headers,
        ]
        hint = f" Please try again in {wait:g}s."
    message = f"Rate limit reached for {admission.completion.model} (simulated fault).{hint}"
    return error_body(message, "requests", code="rate_limit_exceeded"), headers


def _server_error(kind: str) -> tuple[int, dict[str, Any]]:
    if kind == "529":
        overloaded = {"type": "overloaded_error", "message": "Overloaded"}
        return 529, {"type": "error", "error": overloaded}
    messages = {
        "500": ("The server had an error while processing your request. Sorry about that!", None),
        "502": ("Bad gateway.", "bad_gateway"),
        "503": ("The engine is currently overloaded, please try again later.", None),
    }
    message, code = messages[kind]
    return int(kind), error_body(message, "server_error", code=code)


def _message(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.content,
        "refusal": None,
        "annotations": [],
    }
    call = completion.tool_call
    if call is not None:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
        ]
    return message


def _completion_body(completion: Completion) -> dict[str, Any]:
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": _message(completion),
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": completion.usage(),
        "service_tier": "default",
        "system_fingerprint": "fp_sim",
    }


def _stream_frames(completion: Completion, *, include_usage: bool) -> list[bytes]:
    """Every SSE frame of a streamed answer, in order, ending with ``data: [DONE]``."""
    base = {
        "id": completion.id,
        "object": _CHUNK,
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": "fp_sim",
        "service_tier": "default",
    }
    if include_usage:
        base["usage"] = None

    def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

    call = completion.tool_call
    if call is None:
        frames = [frame({"role": "assistant", "content": "", "refusal": None})]
        frames += [frame({"content": piece}) for piece in completion.pieces]
    else:
        frames = [
            frame(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ],
                }
            )
        ]
        frames += [
            frame({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in completion.pieces
        ]
    frames.append(frame({}, completion.finish_reason))
    if include_usage:
        usage = {**base, "choices": [], "usage": completion.usage()}
        frames.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


# -- wire helpers ---------------------------------------------------------------------------


def _encode_headers(
    headers: Sequence[tuple[str, str]], content_type: str, length: int | None
) -> list[tuple[bytes, bytes]]:
    raw = [(b"content-type", content_type.encode())]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    raw += [(k.encode(), v.encode()) for k, v in headers]
    return raw


async def _start(
    send: Send,
    status: int,
    headers: Sequence[tuple[str, str]],
    *,
    content_type: str = "application/json",
    length: int | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _encode_headers(headers, content_type, length),
        }
    )


async def _send_bytes(
    send: Send, status: int, payload: bytes, headers: Sequence[tuple[str, str]] = ()
) -> None:
    await _start(send, status, headers, length=len(payload))
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _send_json(
    send: Send, status: int, body: Mapping[str, Any], headers: Sequence[tuple[str, str]] = ()
) -> None:
    await _send_bytes(send, status, json.dumps(body).encode(), headers)


class _ConnectionAbortedError(Exception):
    """Raised to make a server without a reachable transport drop the connection."""


async def _abort(receive: Receive) -> None:
    """Close the client's connection at once, without (the rest of) a response.

    ASGI has no "abort" message, so this reaches the transport uvicorn's request cycle holds
    (the owner of the ``receive`` callable; true of its h11 and httptools protocols) and aborts
    it with SO_LINGER 0, which the client sees as a reset. Then it waits until the server has
    noticed the disconnect, so the server does not try to send an error page itself.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise _ConnectionAbortedError("simulated connection fault")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(receive(), timeout=1.0)
