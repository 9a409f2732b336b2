"""What the simulator says on the wire: request and answer values, error bodies, headers.

Plain values and OpenAI-, Anthropic- and Gemini-shaped bodies, apart from the decisions that
choose them (``sim.state``) and from HTTP framing (``sim.app``): the state composes them, the
app sends them, and neither needs the other's module to read what a 429 looks like.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_routing.sim.limiter import WindowState

__all__ = [
    "QUOTA_MESSAGE",
    "RATE_LIMIT_DOCS",
    "ChatRequest",
    "Completion",
    "Rejection",
    "ToolCall",
    "completion_body",
    "daily_quota_body",
    "error_body",
    "format_duration",
    "ratelimit_headers",
    "spend_limit_body",
    "stream_frames",
]

_CHUNK = "chat.completion.chunk"

#: The sentence every OpenAI rate-limit message ends with.
RATE_LIMIT_DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)


def error_body(
    message: str,
    type_: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An OpenAI-shaped error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def spend_limit_body(request_id: str, *, now: float | None = None) -> dict[str, Any]:
    """Anthropic's spend-cap 429 body (sent without ``retry-after``: waiting cannot help).

    Shape from https://docs.anthropic.com/en/api/rate-limits ("Reaching your spend cap"): error
    type ``rate_limit_error`` like a rate limit, told apart by ``error.details.error_code``
    ``enforced_spend_limit_reached``. Access resumes on the first day of the next month (UTC).
    """
    today = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC).date()
    resume = dt.date(today.year + today.month // 12, today.month % 12 + 1, 1)
    message = (
        "You have reached your API usage limits: your organization has crossed its monthly API "
        "usage threshold, set based on your organization's API tier. You will regain access on "
        f"{resume.isoformat()} at 00:00 UTC."
    )
    return {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": message,
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
        "request_id": request_id,
    }


def daily_quota_body(model: str, limit: int | None) -> dict[str, Any]:
    """A Gemini-shaped per-day quota 429 (``RESOURCE_EXHAUSTED``, a ``...PerDay...`` quota id).

    Sent without ``retry-after``: Gemini's RPD resets at midnight Pacific time, so waiting
    within any sane deadline cannot help.
    """
    metric = "generativelanguage.googleapis.com/generate_content_requests"
    shown = "unknown" if limit is None else str(limit)
    return {
        "error": {
            "code": 429,
            "message": (
                "You exceeded your current quota, please check your plan and billing details. "
                f"Quota exceeded for metric: {metric}, limit: {shown}, model: {model}"
            ),
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": metric,
                            "quotaId": "GenerateRequestsPerDayPerProjectPerModel",
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": shown,
                        }
                    ],
                }
            ],
        }
    }


def format_duration(seconds: float) -> str:
    """Format like OpenAI's ``x-ratelimit-reset-*`` headers (Go durations): ``1s``, ``6m0s``.

    Rounded to the millisecond: ``0s``, ``120ms``, ``17.28s``, ``1m26.4s``, ``2h0m0s``.
    """
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class Rejection(Exception):
    """A request answered with an HTTP error (raised inside the simulator, sent by the app)."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = list(headers)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated ``/v1/chat/completions`` body (only what the simulator acts on)."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    #: How long a plain-text answer is, instead of the model's ``reply_tokens``. Not part of
    #: the HTTP API (a real provider decides); an in-process caller replaying a workload whose
    #: answer lengths it knows sets it (``sim.inprocess.ANSWER_TOKENS``).
    reply_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call of a simulated answer; ``pieces`` are its arguments' streamed deltas."""

    id: str
    name: str
    arguments: str
    pieces: tuple[str, ...] = ()

    def deltas(self) -> tuple[str, ...]:
        """The argument deltas to stream: ``pieces``, else the arguments whole."""
        if self.pieces:
            return self.pieces
        return (self.arguments,) if self.arguments else ()


@dataclass(frozen=True, slots=True)
class Completion:
    """A complete answer, composed before any byte is sent (so usage is known up front)."""

    id: str
    created: int
    model: str
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    pieces: list[str]
    #: Whether a scripted reply (``SimModel.replies``) answered, rather than invented text.
    scripted: bool = False

    @property
    def tool_call(self) -> ToolCall | None:
        """The first tool call, or ``None`` (the simulator's invented answers make one)."""
        return self.tool_calls[0] if self.tool_calls else None

    def usage(self) -> dict[str, Any]:
        """Usage in the OpenAI shape."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def ratelimit_headers(
    windows: Mapping[str, WindowState], requests: str = "rpm"
) -> list[tuple[str, str]]:
    """OpenAI's ``x-ratelimit-*`` headers; ``requests="rpd"`` reports the day (as Groq does).

    ``remaining`` is what would be admitted now (under ``quantized``, at most the per-second
    share's room); ``reset`` is the time until the window is back to its initial state.
    """
    headers: list[tuple[str, str]] = []
    for window, suffix in ((requests, "requests"), ("tpm", "tokens")):
        state = windows.get(window)
        if state is None:
            continue
        headers += [
            (f"x-ratelimit-limit-{suffix}", str(state.limit)),
            (f"x-ratelimit-remaining-{suffix}", str(state.remaining)),
            (f"x-ratelimit-reset-{suffix}", format_duration(state.reset_after)),
        ]
    return headers


def _message(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.content,
        "refusal": None,
        "annotations": [],
    }
    if completion.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in completion.tool_calls
        ]
    return message


def completion_body(completion: Completion) -> dict[str, Any]:
    """The ``chat.completion`` JSON body of a non-streamed answer."""
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


def stream_frames(completion: Completion, *, include_usage: bool) -> list[bytes]:
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

    if not completion.tool_calls:
        frames = [frame({"role": "assistant", "content": "", "refusal": None})]
        frames += [frame({"content": piece}) for piece in completion.pieces]
    else:
        # As OpenAI streams tool calls: each call opens with its id, name and empty arguments
        # (the first also carries the role), then its arguments arrive in pieces, by index.
        frames = []
        for index, call in enumerate(completion.tool_calls):
            opening: dict[str, Any] = {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
            if index == 0:
                opening = {"role": "assistant", "content": None, **opening}
            frames.append(frame(opening))
            frames += [
                frame({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in call.deltas()
            ]
    frames.append(frame({}, completion.finish_reason))
    if include_usage:
        usage = {**base, "choices": [], "usage": completion.usage()}
        frames.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames
