"""What the simulator answers when it refuses or fails a request: status, body and headers.

Pure builders, no counting: ``sim.state`` decides that a request is refused (and counts it),
``sim.app`` sends the result over HTTP and ``sim.inprocess`` raises it as the exception an SDK
client would. Kept in one place so both faces of the simulator refuse with the same words,
codes and ``retry-after`` headers, and an error classifier reading one reads the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from llm_routing.sim.limiter import Decision, per_second_share
from llm_routing.sim.model import SimModel
from llm_routing.sim.wire import (
    QUOTA_MESSAGE,
    RATE_LIMIT_DOCS,
    Rejection,
    daily_quota_body,
    error_body,
    format_duration,
    spend_limit_body,
)

__all__ = [
    "RATE_LIMIT_FAULTS",
    "SERVER_FAULTS",
    "context_rejection",
    "fault_rejection",
    "quota_rejection",
    "rate_limit_rejection",
    "retry_headers",
]

#: Faults answered with a 429 body (``fault_rejection``).
RATE_LIMIT_FAULTS = frozenset({"429", "quota", "spend_limit", "daily_quota"})
#: Faults answered with a server error body (``fault_rejection``).
SERVER_FAULTS = frozenset({"500", "502", "503", "529"})

Headers = Sequence[tuple[str, str]]


def retry_headers(wait: float, *, minimum: int = 1) -> list[tuple[str, str]]:
    """``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``, as OpenAI sends them."""
    return [
        ("retry-after", str(max(minimum, math.ceil(wait - 1e-9)))),
        ("retry-after-ms", str(max(minimum, math.ceil(wait * 1000 - 1e-6)))),
    ]


def context_rejection(
    window: int, prompt_tokens: int, max_tokens: int | None, headers: Headers
) -> Rejection:
    """OpenAI's 400 ``context_length_exceeded`` for a request the window cannot hold."""
    completion = max_tokens or 0
    if max_tokens is None:
        message = (
            f"This model's maximum context length is {window} tokens. However, your "
            f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the "
            "messages."
        )
    else:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt_tokens + completion} tokens ({prompt_tokens} in the messages, "
            f"{completion} in the completion). Please reduce the length of the messages or "
            "completion."
        )
    # OpenAI's current wording too: langchain-openai (with openai>=2) recognises only it,
    # because the SDK no longer puts the error code into the exception text.
    message += f" Input tokens exceed the configured limit of {window} tokens."
    return Rejection(
        400,
        error_body(message, param="messages", code="context_length_exceeded"),
        headers,
    )


def rate_limit_rejection(model: str, decision: Decision, headers: Headers) -> Rejection:
    """The 429 for a request a window refused: OpenAI's words, and when to retry."""
    binding = decision.binding
    assert binding is not None  # a refused decision always names its window
    where = f"{model} in organization org-sim on {binding.label}"
    if binding.cause == "per_second":
        rate, _ = per_second_share(binding.limit)
        where += f" (enforced per second: {_share_text(rate)} per 1s)"
    sent = list(headers)
    if math.isinf(decision.retry_after):
        message = (
            f"Request too large for {where}: Limit {binding.limit}, Requested "
            f"{binding.requested}. The input or output tokens must be reduced in order to "
            f"run successfully. {RATE_LIMIT_DOCS}"
        )
    else:
        wait = decision.retry_after
        message = (
            f"Rate limit reached for {where}: Limit {binding.limit}, Used {binding.used}, "
            f"Requested {binding.requested}. Please try again in {format_duration(wait)}. "
            f"{RATE_LIMIT_DOCS}"
        )
        sent = [*retry_headers(wait), *sent]
    return Rejection(429, error_body(message, binding.kind, code="rate_limit_exceeded"), sent)


def quota_rejection(model: SimModel, request_id: str, headers: Headers) -> Rejection:
    """The 429 of a spent quota, in the shape ``model.quota_error`` names (no retry-after)."""
    if model.quota_error == "spend_limit":
        return Rejection(429, spend_limit_body(request_id), headers)
    if model.quota_error == "daily_quota":
        return Rejection(429, daily_quota_body(model.name, model.quota_requests), headers)
    return Rejection(
        429,
        error_body(QUOTA_MESSAGE, "insufficient_quota", code="insufficient_quota"),
        headers,
    )


def fault_rejection(
    kind: str,
    model: str,
    completion_id: str,
    headers: Headers,
    *,
    retry_after: float | None = None,
    rpd: int | None = None,
) -> Rejection:
    """What an injected ``429``/quota or ``5xx``/``529`` fault answers."""
    if kind in SERVER_FAULTS:
        status, body = _server_error(kind)
        return Rejection(status, body, headers)
    if kind == "quota":
        body = error_body(QUOTA_MESSAGE, "insufficient_quota", code="insufficient_quota")
        return Rejection(429, body, headers)
    if kind == "spend_limit":  # never a retry-after: waiting cannot help
        return Rejection(429, spend_limit_body(f"req_{completion_id}"), headers)
    if kind == "daily_quota":
        return Rejection(429, daily_quota_body(model, rpd), headers)
    sent = list(headers)
    hint = ""
    if retry_after is not None:
        sent = [*retry_headers(retry_after, minimum=0), *sent]
        hint = f" Please try again in {retry_after:g}s."
    message = f"Rate limit reached for {model} (simulated fault).{hint}"
    return Rejection(429, error_body(message, "requests", code="rate_limit_exceeded"), sent)


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


def _share_text(rate: Fraction) -> str:
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.6g}"
