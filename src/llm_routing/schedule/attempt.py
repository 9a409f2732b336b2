"""One call's passage through the scheduler: its reservation, its steps, what the backend hears.

Values and pure functions only: ``RateScheduler`` decides which step comes next and its two
runners do the steps' I/O (``Apply`` through the backend's sync or async methods). Usage is
read here as the provider counts it against the windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_routing._waiting import Waiting, current
from llm_routing.catalog import ModelSpec
from llm_routing.catalog.enforcement import enforcement_for
from llm_routing.schedule.admission import Ticket
from llm_routing.schedule.headers import parse_ratelimit_headers
from llm_routing.schedule.limits import RateLimitHeaders, RateLimits, Request
from llm_routing.tokens import count_tokens

__all__ = [
    "Acquire",
    "Apply",
    "Backoff",
    "Failure",
    "Pending",
    "Proceed",
    "Resolved",
    "Step",
    "broken",
    "caused",
    "correction",
    "finished",
    "first_line",
    "response_headers",
    "usage",
]


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none), for messages."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Resolved:
    """A model's spec, scheduling key and limits, looked up once per model object."""

    __slots__ = (
        "key",
        "limits",
        "model",
        "model_max_tokens",
        "output_estimate",
        "spec",
        "tokens_counted",
    )

    def __init__(
        self,
        model: Any,
        spec: ModelSpec,
        key: str,
        limits: RateLimits,
        max_tokens: int | None,
        output_estimate: int,
    ) -> None:
        self.model = model  # held so the id() key cannot be reused while cached
        self.spec = spec
        self.key = key
        self.limits = limits
        self.model_max_tokens = max_tokens
        # What a call that sends no max_tokens reserves: a fact of the model (and of the
        # scheduler's reserve_output), not of the call, so it is worked out once here.
        self.output_estimate = output_estimate
        # Per provider, not per call: read at every settle.
        self.tokens_counted = enforcement_for(spec.provider).tokens_counted


class Pending:
    """One call's progress through the scheduler (``call.state``).

    ``waiting`` is the router call's (`llm_routing._waiting`) when this attempt runs inside
    one: its waits count there too, and what is left of ``max_wait`` is read there, so the
    request's earlier attempts (other models) have used their part of it already.
    """

    __slots__ = (
        "answered_at",
        "attempts",
        "explicit_max_tokens",
        "rate_limit_retries",
        "request",
        "resolved",
        "retrying",
        "ticket",
        "transient_retries",
        "waited",
        "waiting",
    )

    def __init__(
        self, resolved: Resolved, request: Request, explicit_max_tokens: bool = False
    ) -> None:
        self.resolved = resolved
        self.request = request
        self.ticket: Ticket | None = None
        self.waited = 0.0
        self.waiting: Waiting | None = current()
        self.attempts = 0
        self.rate_limit_retries = 0
        self.transient_retries = 0
        # The call sends ``max_tokens`` (settlement then never charges less: see ``usage``).
        self.explicit_max_tokens = explicit_max_tokens
        self.answered_at: float | None = None
        # The stats counter ("retries" or "transient_retries") the next admission counts in:
        # a retry is counted when it is sent, not when decided, since the wait before it may
        # still pass max_wait and end the attempt instead.
        self.retrying: str | None = None

    def wait(self, seconds: float) -> None:
        """Count ``seconds`` of waiting for this attempt and for the router call it is part of."""
        self.waited += seconds
        if self.waiting is not None:
            self.waiting.add(seconds)

    def left(self, max_wait: float) -> float:
        """What is left of ``max_wait``: of the router call's when inside one, else this call's."""
        if self.waiting is not None:
            return self.waiting.left(max_wait)
        return max(0.0, max_wait - self.waited)


@dataclass(frozen=True, slots=True)
class Acquire:
    """Step: wait in line for capacity until ``deadline``; answers a `Ticket`."""

    pending: Pending
    deadline: float

    def arguments(self) -> dict[str, Any]:
        """``Admission.acquire``'s arguments."""
        resolved = self.pending.resolved
        return {
            "key": resolved.key,
            "limits": resolved.limits,
            "request": self.pending.request,
            "deadline": self.deadline,
            "model": resolved.key,
        }


@dataclass(frozen=True, slots=True)
class Proceed:
    """Step: make the call (the inner decorators and the model); answers its result."""


@dataclass(slots=True)
class Apply:
    """Step: what the backend is told about a call that ended, decided before any I/O.

    Settle with ``tokens`` (None: release the reservation, keeping its request slot when
    ``keep_request``), then believe the provider's ``correction``, then cool the model down
    until ``cooldown_until``.
    """

    ticket: Ticket
    tokens: tuple[int, int] | None = None
    answered_at: float | None = None
    keep_request: bool = False
    correction: RateLimitHeaders | None = None
    cooldown_until: float | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Step: sleep ``delay`` seconds before retrying (a transient error's backoff)."""

    delay: float


Step = Acquire | Proceed | Apply | Backoff


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt: what the backend is told, then raise ``error`` or retry.

    The retry comes after ``delay`` seconds (0: at once; a 429's wait is the cooldown set).
    """

    effects: Apply
    error: BaseException | None = None
    delay: float = 0.0


def caused(error: BaseException, cause: BaseException) -> BaseException:
    """``error`` as ``raise error from cause`` would raise it."""
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


def finished(pending: Pending, output: Any) -> Apply | None:
    """The settlement of a call that answered: real usage, and the provider's headers."""
    ticket, pending.ticket = pending.ticket, None
    if ticket is None:
        return None
    tokens = usage(pending, output)
    headers = correction(pending, response_headers(output))
    return Apply(ticket, tokens, pending.answered_at, correction=headers)


def broken(pending: Any, partial: Any, *, cancelled: bool) -> Apply | None:
    """The settlement of a call that ended after it was sent (an error, a cancellation)."""
    if not isinstance(pending, Pending) or pending.ticket is None:
        return None
    ticket, pending.ticket = pending.ticket, None
    tokens = pending.request.input_tokens, 0
    if cancelled or partial is not None:
        tokens = usage(pending, partial, reserve=False)
    return Apply(ticket, tokens, pending.answered_at)


def usage(pending: Pending, output: Any, *, reserve: bool = True) -> tuple[int, int]:
    """What ``output`` used, on the scale the provider counts it against the windows."""
    reported = getattr(output, "usage_metadata", None)
    if type(reported) is dict and "input_tokens" in reported:  # `_reported`'s first case, inline
        input_tokens = int(reported.get("input_tokens") or 0)
        output_tokens = int(reported.get("output_tokens") or 0)
    else:
        input_tokens, output_tokens = _reported(pending, output, reserve=reserve)
    if pending.explicit_max_tokens and pending.resolved.tokens_counted == "input+max_output":
        # OpenAI counts a request's max_tokens against TPM when it arrives and never gives
        # the unused part back; settling lower would let us send more than it admits.
        output_tokens = max(output_tokens, pending.request.output_tokens)
    return input_tokens, output_tokens


def _reported(pending: Pending, output: Any, *, reserve: bool) -> tuple[int, int]:
    usage = getattr(output, "usage_metadata", None)
    # LangChain's usage is a plain dict: tested first, since an ABC check costs more.
    if (type(usage) is dict or isinstance(usage, Mapping)) and "input_tokens" in usage:
        return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    text = getattr(output, "content", None)
    if isinstance(text, str) and text:
        return pending.request.input_tokens, count_tokens(text, pending.resolved.spec)
    output_tokens = pending.request.output_tokens if reserve and output is None else 0
    return pending.request.input_tokens, output_tokens


def correction(pending: Pending, headers: Mapping[str, Any] | None) -> RateLimitHeaders | None:
    """The provider's ``x-ratelimit-*`` counts, to win over ours where they are lower."""
    if not headers:
        return None
    return parse_ratelimit_headers(headers, pending.resolved.spec.provider)


def response_headers(output: Any) -> Mapping[str, Any] | None:
    """The HTTP headers LangChain kept in ``output.response_metadata``, if any."""
    metadata = getattr(output, "response_metadata", None)
    if type(metadata) is dict or isinstance(metadata, Mapping):  # a dict first: cheaper
        headers = metadata.get("headers")
        if headers is not None and isinstance(headers, Mapping):
            return headers
    return None
