"""The simulator's HTTP surface: an ASGI (Starlette) app speaking the OpenAI chat API.

Owns the routes, response framing (JSON and SSE streaming) and putting faults on the wire
(hangs, resets, cut streams, broken JSON). Parsing a request and its OpenAI-shaped 400/404 is
``sim.requests``; the bodies it sends are ``sim.wire``; decisions and counters live in
``sim.state``; running the server in a thread is ``sim.server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from llm_routing.sim.refusals import RATE_LIMIT_FAULTS, SERVER_FAULTS, fault_rejection
from llm_routing.sim.requests import BadRequest, not_found_body, parse_chat_request
from llm_routing.sim.state import Admission, SimState
from llm_routing.sim.wire import (
    ChatRequest,
    Rejection,
    completion_body,
    error_body,
    stream_frames,
)

__all__ = ["ShutdownSignal", "create_app"]

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
            return JSONResponse(not_found_body(name), status_code=404)
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
                raise BadRequest(
                    "We could not parse the JSON body of your request. The OpenAI API expects a "
                    "JSON payload, but what was sent was not valid JSON."
                ) from None
            request = parse_chat_request(data, state)
        except BadRequest as exc:
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
        if fault in SERVER_FAULTS or fault in RATE_LIMIT_FAULTS:
            refusal = fault_rejection(
                fault,
                admission.completion.model,
                admission.completion.id,
                admission.headers,
                retry_after=admission.retry_after,
                rpd=_model(self.state, request).rpd,
            )
            await _send_json(send, refusal.status, refusal.body, refusal.headers)
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
        payload = json.dumps(completion_body(completion)).encode()
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
        frames = stream_frames(completion, include_usage=request.include_usage)
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
