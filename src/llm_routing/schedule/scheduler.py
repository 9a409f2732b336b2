"""The rate scheduler decorator: wait for capacity instead of collecting 429s, and give up early.

Owns the per-call lifecycle (estimate, acquire, retry, settle), the reaction to each provider
error kind, the max-wait budget and the scheduler's statistics. Window arithmetic belongs to
``policy``, waiting to ``admission.Admission``, which limits apply to ``limits``.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from llm_routing._decorator import Call, Decorator
from llm_routing._model import as_messages, call_max_tokens, model_max_tokens
from llm_routing._urls import scheme_of
from llm_routing.catalog import Catalog, ModelSpec
from llm_routing.catalog.enforcement import enforcement_for
from llm_routing.errors import (
    ErrorKind,
    LLMRoutingError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitExhaustedError,
    classify,
    retry_after,
)
from llm_routing.schedule.admission import Admission, Ticket
from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import Clock, SystemClock
from llm_routing.schedule.headers import error_headers, parse_ratelimit_headers
from llm_routing.schedule.limits import RateLimits, Request
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.resolve import LimitResolver, api_key_fingerprint, check_pacing
from llm_routing.tokens import count_tokens

__all__ = ["DEFAULT_RESERVE_OUTPUT", "RateScheduler"]

_T = TypeVar("_T")

DEFAULT_RESERVE_OUTPUT = 1024
"""Output tokens a request reserves against TPM when neither the call nor the model sets
``max_tokens`` (capped at the model's output limit). Settling with the real usage gives the
difference back, so this only decides how many calls can be in flight at once near the limit;
OpenAI itself counts ``max_tokens`` against TPM when it is sent.
"""

_WAIT_SAMPLES = 10_000
_SPEC_CACHE_SIZE = 256


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class _Resolved:
    """A model's spec, scheduling key and limits, looked up once per model object."""

    __slots__ = ("key", "limits", "model", "model_max_tokens", "spec")

    def __init__(
        self, model: Any, spec: ModelSpec, key: str, limits: RateLimits, max_tokens: int | None
    ) -> None:
        self.model = model  # held so the id() key cannot be reused while cached
        self.spec = spec
        self.key = key
        self.limits = limits
        self.model_max_tokens = max_tokens


class _Pending:
    """One call's progress through the scheduler (``call.state``)."""

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
    )

    def __init__(self, resolved: _Resolved, request: Request) -> None:
        self.resolved = resolved
        self.request = request
        self.ticket: Ticket | None = None
        self.waited = 0.0
        self.attempts = 0
        self.rate_limit_retries = 0
        self.transient_retries = 0
        self.explicit_max_tokens = False
        self.answered_at: float | None = None
        # The stats counter ("retries" or "transient_retries") the next admission counts in:
        # a retry is counted when it is sent, not when decided, since the wait before it may
        # still pass max_wait and end the attempt instead.
        self.retrying: str | None = None


class _Stats:
    """Counters and a bounded sample of waits, shared by every model the scheduler wraps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waits: deque[float] = deque(maxlen=_WAIT_SAMPLES)
        self.wait_count = 0
        self.wait_total = 0.0
        self.counts = dict.fromkeys(
            (
                "admitted",
                "rate_limit_errors",
                "retries",
                "transient_retries",
                "refused_max_wait",
                "refused_too_large",
                "refused_quota",
            ),
            0,
        )
        self.by_model: dict[str, dict[str, float]] = {}

    def add(self, key: str, name: str, amount: float = 1) -> None:
        with self._lock:
            self.counts[name] += int(amount)
            entry = self.by_model.setdefault(key, {"admitted": 0, "rate_limit_errors": 0})
            if name in entry:
                entry[name] += amount

    def waited(self, key: str, seconds: float) -> None:
        with self._lock:
            self.counts["admitted"] += 1
            self.wait_count += 1
            self.wait_total += seconds
            self.waits.append(seconds)
            entry = self.by_model.setdefault(key, {"admitted": 0, "rate_limit_errors": 0})
            entry["admitted"] += 1
            entry["wait_total_s"] = entry.get("wait_total_s", 0.0) + seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            sample = list(self.waits)
            return {
                "waits": {
                    "count": self.wait_count,
                    "total_s": round(self.wait_total, 6),
                    "p50_s": round(_percentile(sample, 0.50), 6),
                    "p95_s": round(_percentile(sample, 0.95), 6),
                    "max_s": round(max(sample, default=0.0), 6),
                },
                **self.counts,
                "by_model": {key: dict(entry) for key, entry in self.by_model.items()},
            }


class RateScheduler(Decorator):
    """Per-model RPM/TPM/RPD scheduling: wait for capacity, retry 429s, give up after ``max_wait``.

    Before a call it reserves 1 request and the call's tokens (the guard's input count when a
    guard runs outside it, else its own count, plus reserved output) for this model, waiting
    in FIFO order until every limit has room. A wait longer than what is left of ``max_wait``
    is not started: `RateLimitExhaustedError` is raised at once so a fallback chain moves on.
    After the call the reservation is settled with the real usage.

    Provider errors: a 429 cools the model down for every caller (Retry-After when given, else
    tenacity's jittered exponential backoff) and is retried while waiting fits in
    ``max_wait`` (proactive and reactive waits share that budget), then
    `RateLimitExhaustedError`. A quota error (``insufficient_quota``, a daily limit) is not
    retried: `QuotaExceededError` now, and the model is refused without a request for
    ``quota_cooldown`` seconds (or the provider's Retry-After). Transient errors (5xx,
    timeouts, connection) are retried ``max_retries`` times, then `ProviderUnavailableError`.
    Other errors propagate untouched.

    ``tier`` names the catalogue's limits (``"tier1"`` or per provider
    ``{"openai": "tier2", "google": "free"}``); ``limits`` overrides per model
    (``{"openai:gpt-4o-mini": {"rpm": 30, "tpm": 200_000, "rpd": 10_000}}``, options such as
    ``smoothing`` too). ``clock`` makes time injectable (`VirtualClock` in tests and in
    ``llm-routing simulate``). One scheduler can wrap any number of models; each model has its
    own windows, and all threads and event loops of the process share them.

    Example:
        >>> from llm_routing import RateScheduler
        >>> scheduler = RateScheduler(tier="tier1", max_wait=30)
        >>> limits = scheduler.limits_for("openai:gpt-4o-mini")
        >>> limits.rpm, limits.effective_rpm, limits.effective_tpm
        (500, 498, 196000)
        >>> RateScheduler(tier="tier7")
        Traceback (most recent call last):
        ...
        ValueError: RateScheduler(tier=…): unknown tier 'tier7' (did you mean 'tier5'?)...
    """

    def __init__(
        self,
        tier: str | Mapping[str, str] = "tier1",
        limits: Mapping[str, Any] | None = None,
        max_wait: float = 90.0,
        backend: Literal["memory"] | Backend | str = "memory",
        clock: Clock | None = None,
        *,
        catalog: Catalog | None = None,
        request_margin: int = 2,
        token_headroom: float = 0.02,
        pacing: Literal["auto", "paced", "burst"] = "auto",
        smoothing: bool | None = None,
        rpd_reset: Literal["rolling", "calendar"] = "rolling",
        reserve_output: int | None = None,
        max_retries: int = 2,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        quota_cooldown: float = 60.0,
        per_api_key: bool = False,
        count_from: Literal["auto", "response", "admission"] = "auto",
    ) -> None:
        _check_seconds("max_wait", max_wait)
        _check_seconds("backoff_initial", backoff_initial)
        _check_seconds("backoff_max", backoff_max)
        _check_seconds("quota_cooldown", quota_cooldown)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(
                f"RateScheduler(max_retries=…) must be an int >= 0 (retries of transient "
                f"errors), got {max_retries!r}"
            )
        if reserve_output is not None and (
            isinstance(reserve_output, bool)
            or not isinstance(reserve_output, int)
            or reserve_output < 0
        ):
            raise ValueError(
                "RateScheduler(reserve_output=…) must be an int >= 0 (output tokens to reserve "
                f"when max_tokens is not set) or None, got {reserve_output!r}"
            )
        if clock is not None and not callable(getattr(clock, "now", None)):
            raise TypeError(
                "RateScheduler(clock=…) must be a Clock (SystemClock, VirtualClock) or None, "
                f"got {type(clock).__name__}"
            )
        if count_from not in ("auto", "response", "admission"):
            raise ValueError(
                "RateScheduler(count_from=…) must be 'auto' (from admission where requests are "
                "paced, from the answer where they burst), 'response' (count a request in the "
                "minute window from when its answer came: safe when sending lags admission) or "
                f"'admission' (exact for in-process providers), got {count_from!r}"
            )
        check_pacing(pacing, "RateScheduler(pacing=…)")
        if smoothing is not None:
            if not isinstance(smoothing, bool):
                raise TypeError(f"RateScheduler(smoothing=…) must be a bool, got {smoothing!r}")
            warnings.warn(
                "RateScheduler(smoothing=…) is deprecated: pacing now follows how each provider "
                "enforces its limits (pacing='auto', the default, paces providers that enforce "
                "per second). Write pacing='paced' for smoothing=True, pacing='burst' for "
                "smoothing=False.",
                DeprecationWarning,
                stacklevel=2,
            )
            if pacing == "auto":
                pacing = "paced" if smoothing else "burst"
        self.pacing = pacing
        self.count_from = count_from
        self.max_wait = float(max_wait)
        self.max_retries = max_retries
        self.reserve_output = reserve_output
        self.quota_cooldown = float(quota_cooldown)
        self.per_api_key = bool(per_api_key)
        self.tier = tier
        self._limits = LimitResolver(
            tier,
            limits,
            catalog,
            {
                "request_margin": request_margin,
                "token_headroom": token_headroom,
                "pacing": pacing,
                "day": rpd_reset,
            },
        )
        self.backend: Backend = _make_backend(backend, clock or SystemClock())
        if clock is None:
            # A shared backend keeps its own time (Redis TIME): waits are measured on it.
            clock = getattr(self.backend, "server_clock", None) or self.backend.clock
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.admission = Admission(self.backend, self.clock)
        self._backoff = wait_exponential_jitter(
            initial=backoff_initial, max=backoff_max, jitter=backoff_initial
        )
        self._retrying = Retrying()
        self._quota_until: dict[str, tuple[float, str]] = {}
        self._specs: dict[int, _Resolved] = {}
        self._lock = threading.Lock()
        self._stats = _Stats()

    def __repr__(self) -> str:
        return f"RateScheduler(tier={self.tier!r}, max_wait={self.max_wait:g})"

    # --- per model -------------------------------------------------------------------------

    def limits_for(self, model: Any) -> RateLimits:
        """The limits this scheduler applies to ``model`` (a chat model or a name).

        Raises the configuration error a call would raise (unknown tier for the model, unknown
        model), so a builder can check every model up front.
        """
        if isinstance(model, str):
            return self._limits.for_name(model)[1]
        return self._resolve(model).limits

    def _resolve(self, model: Any) -> _Resolved:
        key = id(model)
        entry = self._specs.get(key)
        if entry is not None and entry.model is model:
            return entry
        catalog = self._limits.catalog
        try:
            spec = catalog.for_model(model)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"RateScheduler cannot find the limits of {type(model).__name__}: {exc} "
                "Or pass limits={'<model name>': {'rpm': …, 'tpm': …}} for a registered model."
            ) from None
        schedule_key = spec.key
        if self.per_api_key:
            fingerprint = api_key_fingerprint(model)
            if fingerprint is not None:
                schedule_key = f"{spec.key}@{fingerprint}"
        entry = _Resolved(
            model, spec, schedule_key, self._limits.for_spec(spec), model_max_tokens(model)
        )
        with self._lock:
            if len(self._specs) >= _SPEC_CACHE_SIZE:
                self._specs.clear()
            self._specs[key] = entry
        return entry

    def _pending(self, call: Call, resolved: _Resolved) -> _Pending:
        kwargs = call.invocation_kwargs
        tokens = call.upstream.get("llm_routing.input_tokens")
        if not isinstance(tokens, int):
            tools = kwargs.get("tools") or None
            tokens = count_tokens(as_messages(call.input), resolved.spec, tools=tools)
        reserved, explicit = self._reserved(resolved, kwargs)
        pending = _Pending(resolved, Request(input_tokens=tokens, output_tokens=reserved))
        pending.explicit_max_tokens = explicit
        return pending

    def _reserved(self, resolved: _Resolved, kwargs: Mapping[str, Any]) -> tuple[int, bool]:
        found = call_max_tokens(kwargs)
        if found is not None:
            return found, True
        if resolved.model_max_tokens is not None:
            return resolved.model_max_tokens, True
        default = self.reserve_output if self.reserve_output is not None else DEFAULT_RESERVE_OUTPUT
        cap = resolved.spec.max_output_tokens
        return (default if cap is None else min(default, cap)), False

    # --- hooks -----------------------------------------------------------------------------

    def before(self, call: Call) -> None:
        """Estimate the call and refuse it at once if its model's quota is known to be spent."""
        resolved = self._resolve(call.model)
        self._check_quota(resolved.key)
        call.state = self._pending(call, resolved)

    def around(self, call: Call, proceed: Callable[[], _T]) -> _T:
        """Acquire capacity, call, and retry 429s and transient errors within ``max_wait``."""
        pending: _Pending = call.state
        while True:
            ticket = self._acquire(pending)
            self._annotate(call, pending)
            try:
                result = proceed()
            except Exception as exc:
                delay = self._failed(pending, ticket, exc)
                if delay > 0:
                    self.clock.wait(threading.Event(), delay)
                continue
            except BaseException:
                # Interrupted while the request was out: on_cancel settles the ticket.
                self._answered(pending, ticket)
                raise
            self._answered(pending, ticket)
            return result

    async def aaround(self, call: Call, proceed: Callable[[], Awaitable[_T]]) -> _T:
        """Async `around`: waits on the event loop, never blocking it."""
        pending: _Pending = call.state
        while True:
            ticket = await self._aacquire(pending)
            self._annotate(call, pending)
            try:
                result = await proceed()
            except Exception as exc:
                delay = self._failed(pending, ticket, exc)
                if delay > 0:
                    await self.clock.await_(asyncio.get_running_loop().create_future(), delay)
                continue
            except BaseException:
                # Cancelled while the request was out: on_cancel settles the ticket.
                self._answered(pending, ticket)
                raise
            self._answered(pending, ticket)
            return result

    def _answered(self, pending: _Pending, ticket: Ticket) -> None:
        # proceed() returns when the answer (a stream's first chunk) is here: the provider
        # has counted the request by now.
        pending.ticket = ticket
        # Paced requests reach the provider spread out, so the minute window never fills at
        # its edge and counting from admission is exact; a burst reaches it seconds after its
        # admission, and counting from the answer is what keeps its window's edge safe.
        count_from = self.count_from
        if count_from == "auto":
            count_from = "admission" if pending.resolved.limits.smoothing else "response"
        if count_from == "response":
            pending.answered_at = self.admission.now()

    def after(self, call: Call, output: Any) -> None:
        """Settle the reservation with the real usage, and learn from rate-limit headers."""
        pending: _Pending = call.state
        ticket, pending.ticket = pending.ticket, None
        if ticket is None:
            return
        input_tokens, output_tokens = self._usage(pending, output)
        self.admission.settle(ticket, input_tokens, output_tokens, answered_at=pending.answered_at)
        self._correct(pending, _response_headers(output))

    async def aafter(self, call: Call, output: Any) -> None:
        """Async `after`."""
        pending: _Pending = call.state
        ticket, pending.ticket = pending.ticket, None
        if ticket is None:
            return
        input_tokens, output_tokens = self._usage(pending, output)
        await self.admission.asettle(
            ticket, input_tokens, output_tokens, answered_at=pending.answered_at
        )
        self._correct(pending, _response_headers(output))

    def on_error(self, call: Call, error: Exception) -> Exception | None:
        """A stream that failed after its first chunk: the request was sent and counted.

        The provider counts what it generated against the TPM window, so the chunks that
        arrived (``call.partial``) are settled as output, as for a stream the caller closed.
        """
        pending = call.state
        if isinstance(pending, _Pending) and pending.ticket is not None:
            ticket, pending.ticket = pending.ticket, None
            input_tokens, output_tokens = pending.request.input_tokens, 0
            if call.partial is not None:
                input_tokens, output_tokens = self._usage(pending, call.partial, reserve=False)
            self.admission.settle(
                ticket, input_tokens, output_tokens, answered_at=pending.answered_at
            )
        return None

    def on_cancel(self, call: Call, partial: Any) -> None:
        """The caller stopped after the request was sent: settle with what is known of it."""
        pending = call.state
        if isinstance(pending, _Pending) and pending.ticket is not None:
            ticket, pending.ticket = pending.ticket, None
            input_tokens, output_tokens = self._usage(pending, partial, reserve=False)
            self.admission.settle(
                ticket, input_tokens, output_tokens, answered_at=pending.answered_at
            )

    # --- the pieces of a call --------------------------------------------------------------

    def _check_quota(self, key: str) -> None:
        blocked = self._quota_until.get(key)
        if blocked is None:
            return
        until, reason = blocked
        left = until - self.admission.now()
        if left <= 0:
            self._quota_until.pop(key, None)
            return
        self._stats.add(key, "refused_quota")
        raise QuotaExceededError(
            f"{key}: quota exhausted ({reason}); not sending requests for another {left:.0f}s. "
            "The router falls back to the next model.",
            model=key,
            reason=reason,
        )

    def _remaining(self, pending: _Pending) -> float:
        return max(0.0, self.max_wait - pending.waited)

    def _acquire(self, pending: _Pending) -> Ticket:
        resolved = pending.resolved
        try:
            ticket = self.admission.acquire(
                resolved.key,
                resolved.limits,
                pending.request,
                deadline=self.admission.now() + self._remaining(pending),
                model=resolved.key,
            )
        except RateLimitExhaustedError as exc:
            self._refused(resolved.key, exc)
            raise
        except QuotaExceededError:
            self._stats.add(resolved.key, "refused_quota")
            raise
        return self._admitted(pending, ticket)

    async def _aacquire(self, pending: _Pending) -> Ticket:
        resolved = pending.resolved
        try:
            ticket = await self.admission.aacquire(
                resolved.key,
                resolved.limits,
                pending.request,
                deadline=self.admission.now() + self._remaining(pending),
                model=resolved.key,
            )
        except RateLimitExhaustedError as exc:
            self._refused(resolved.key, exc)
            raise
        except QuotaExceededError:
            self._stats.add(resolved.key, "refused_quota")
            raise
        return self._admitted(pending, ticket)

    def _refused(self, key: str, exc: RateLimitExhaustedError) -> None:
        too_large = "larger than the limit" in exc.reason
        self._stats.add(key, "refused_too_large" if too_large else "refused_max_wait")

    def _admitted(self, pending: _Pending, ticket: Ticket) -> Ticket:
        pending.attempts += 1
        pending.waited += ticket.waited_s
        self._stats.waited(pending.resolved.key, ticket.waited_s)
        if pending.retrying is not None:
            self._stats.add(pending.resolved.key, pending.retrying)
            pending.retrying = None
        return ticket

    @staticmethod
    def _annotate(call: Call, pending: _Pending) -> None:
        call.metadata["llm_routing.wait_s"] = round(pending.waited, 3)
        call.metadata["llm_routing.attempt"] = pending.attempts
        call.metadata["llm_routing.reserved_tokens"] = pending.request.tokens

    def _failed(self, pending: _Pending, ticket: Ticket, exc: Exception) -> float:
        """React to a failed attempt: the delay before retrying, or raise what the caller sees."""
        key = pending.resolved.key
        if isinstance(exc, LLMRoutingError):
            # An inner decorator refused before anything was sent (a budget, a guard).
            self.admission.release(ticket)
            raise exc
        kind = classify(exc)
        if kind in (ErrorKind.TRANSIENT, ErrorKind.UNKNOWN):
            # A timeout, a dropped connection or an unknown failure may come after the
            # provider counted the request and its tokens: keep all of it counted.
            request = pending.request
            self.admission.settle(
                ticket,
                request.input_tokens,
                request.output_tokens,
                answered_at=self.admission.now(),
            )
        else:
            # Refused at the door (429, quota, bad request): no tokens were processed. The
            # request slot stays where the provider says refusals count (OpenAI: "unsuccessful
            # requests contribute to your per-minute limit"), and is given back elsewhere, so
            # a burst of refusals does not fill our window with requests the provider forgot.
            counts = enforcement_for(pending.resolved.spec.provider).failed_requests_count
            self.admission.release(ticket, keep_request=counts)
        if kind is ErrorKind.RATE_LIMIT:
            return self._rate_limited(pending, exc)
        if kind is ErrorKind.QUOTA:
            hint = retry_after(exc)
            reason = _first_line(exc)
            until = self.admission.now() + (hint if hint is not None else self.quota_cooldown)
            with self._lock:
                self._quota_until[key] = (until, reason)
            self._stats.add(key, "refused_quota")
            raise QuotaExceededError(
                f"{key}: {reason}. Not retried (waiting does not restore a quota); the router "
                "falls back to the next model.",
                model=key,
                reason=reason,
            ) from exc
        if kind is ErrorKind.TRANSIENT:
            attempts = pending.transient_retries + 1
            delay = self._delay(exc, pending.transient_retries)
            if pending.transient_retries >= self.max_retries or delay > self._remaining(pending):
                raise ProviderUnavailableError(
                    f"{key} failed {attempts} time(s) with a transient error: {_first_line(exc)}",
                    model=key,
                    attempts=attempts,
                ) from exc
            pending.transient_retries += 1
            pending.waited += delay
            pending.retrying = "transient_retries"
            return delay
        raise exc

    def _rate_limited(self, pending: _Pending, exc: Exception) -> float:
        key = pending.resolved.key
        self._stats.add(key, "rate_limit_errors")
        self._correct(pending, error_headers(exc))
        hint = retry_after(exc)
        # A Retry-After of 0 is no advice: retrying at once would resend at full speed for as
        # long as the provider keeps refusing, so it backs off like a 429 without a hint.
        delay = hint or self._delay(None, pending.rate_limit_retries)
        # Every caller of this model waits out the cooldown, whether this one retries or not.
        self.admission.cooldown(key, self.admission.now() + delay)
        left = self._remaining(pending)
        if delay > left:
            self._stats.add(key, "refused_max_wait")
            said = f"Retry-After {hint:g}s" if hint else f"a backoff of {delay:.1f}s"
            raise RateLimitExhaustedError(
                f"{key} answered 429 and {said} would pass max_wait "
                f"({self.max_wait:g}s, {left:.1f}s left); falling back instead of waiting",
                model=key,
                wait_s=delay,
                reason="provider rate limit",
            ) from exc
        pending.rate_limit_retries += 1
        pending.retrying = "retries"
        return 0.0

    def _delay(self, exc: Exception | None, retries: int) -> float:
        hint = retry_after(exc) if exc is not None else None
        if hint is not None:
            return hint
        state = RetryCallState(self._retrying, None, (), {})
        state.attempt_number = retries + 1
        return float(self._backoff(state))

    def _usage(self, pending: _Pending, output: Any, *, reserve: bool = True) -> tuple[int, int]:
        input_tokens, output_tokens = self._reported(pending, output, reserve=reserve)
        counted = enforcement_for(pending.resolved.spec.provider).tokens_counted
        if pending.explicit_max_tokens and counted == "input+max_output":
            # OpenAI counts a request's max_tokens against TPM when it arrives and never gives
            # the unused part back; settling lower would let us send more than it admits.
            output_tokens = max(output_tokens, pending.request.output_tokens)
        return input_tokens, output_tokens

    def _reported(self, pending: _Pending, output: Any, *, reserve: bool) -> tuple[int, int]:
        usage = getattr(output, "usage_metadata", None)
        if isinstance(usage, Mapping) and "input_tokens" in usage:
            return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        text = getattr(output, "content", None)
        if isinstance(text, str) and text:
            return pending.request.input_tokens, count_tokens(text, pending.resolved.spec)
        output_tokens = pending.request.output_tokens if reserve and output is None else 0
        return pending.request.input_tokens, output_tokens

    def _correct(self, pending: _Pending, headers: Mapping[str, Any] | None) -> None:
        """Let the provider's ``x-ratelimit-*`` count win over ours when it is lower."""
        if not headers:
            return
        found = parse_ratelimit_headers(headers, pending.resolved.spec.provider)
        if found is not None:
            resolved = pending.resolved
            self.admission.correct(resolved.key, resolved.limits, found)

    # --- LangChain's rate limiter interface ------------------------------------------------

    def limiter_for(self, model: Any) -> BaseRateLimiter:
        """A LangChain ``BaseRateLimiter`` pacing requests to ``model`` with this scheduler.

        For ``ChatOpenAI(rate_limiter=…)``-style use when only request pacing is wanted: it
        counts requests (not tokens, which the limiter interface never sees) in the same
        windows the decorator uses, and raises `RateLimitExhaustedError` instead of waiting
        longer than ``max_wait``.
        """
        if isinstance(model, str):
            key, limits = self._limits.for_name(model)
        elif isinstance(model, Runnable):
            resolved = self._resolve(model)
            key, limits = resolved.key, resolved.limits
        else:
            raise TypeError(
                "limiter_for(model) needs a chat model or a model name such as "
                f"'openai:gpt-4o-mini', got {type(model).__name__}"
            )
        return _SchedulerLimiter(self, key, limits)

    # --- stats -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Waits (count, total, p50/p95/max seconds), 429s seen, retries and refusals.

        ``rate_limit_errors`` counts provider 429s, ``retries`` the 429 retries sent,
        ``transient_retries`` the 5xx/timeout retries sent (a retry whose wait ran past
        ``max_wait`` is a refusal, not a retry), ``refused_max_wait`` /
        ``refused_too_large`` / ``refused_quota`` the calls refused without a request.
        """
        return self._stats.snapshot()

    def snapshot(self, model: Any) -> dict[str, Any]:
        """The current window state of ``model`` (requests and tokens in the window, cooldown)."""
        key = model if isinstance(model, str) else self._resolve(model).key
        return self.backend.snapshot(key)


class _SchedulerLimiter(BaseRateLimiter):
    """``BaseRateLimiter`` over a scheduler: one request, no tokens, per acquire."""

    def __init__(self, scheduler: RateScheduler, key: str, limits: RateLimits) -> None:
        self._scheduler = scheduler
        self._key = key
        self._limits = limits

    def acquire(self, *, blocking: bool = True) -> bool:
        """Wait for a request slot (``blocking=False``: take one only if free now)."""
        scheduler = self._scheduler
        wait = scheduler.max_wait if blocking else 0.0
        try:
            ticket = scheduler.admission.acquire(
                self._key,
                self._limits,
                Request(input_tokens=0, output_tokens=0),
                deadline=scheduler.admission.now() + wait,
                model=self._key,
            )
        except RateLimitExhaustedError:
            if blocking:
                raise
            return False
        scheduler.admission.settle(ticket, 0, 0)
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        """Async `acquire`."""
        scheduler = self._scheduler
        wait = scheduler.max_wait if blocking else 0.0
        try:
            ticket = await scheduler.admission.aacquire(
                self._key,
                self._limits,
                Request(input_tokens=0, output_tokens=0),
                deadline=scheduler.admission.now() + wait,
                model=self._key,
            )
        except RateLimitExhaustedError:
            if blocking:
                raise
            return False
        await scheduler.admission.asettle(ticket, 0, 0)
        return True


# --------------------------------------------------------------------------- helpers


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"RateScheduler({name}=…) must be a number of seconds, got {value!r}")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"RateScheduler({name}=…) must be a finite number >= 0, got {value!r}")


def _make_backend(backend: Any, clock: Clock) -> Backend:
    if isinstance(backend, Backend):
        return backend
    if backend == "memory" or backend is None:
        return MemoryBackend(clock)
    if isinstance(backend, str) and backend.startswith(("redis://", "rediss://", "unix://")):
        try:
            from llm_routing.schedule.redis import RedisBackend
        except ImportError:
            raise ImportError(
                "RateScheduler(backend='redis://…') needs the redis extra: "
                "pip install 'llm-routing[redis]'"
            ) from None
        return RedisBackend(backend)
    raise ValueError(
        "RateScheduler(backend=…) must be 'memory', a 'redis://…' URL or a Backend instance, "
        f"got {scheme_of(backend)}"
    )


def _response_headers(output: Any) -> Mapping[str, Any] | None:
    metadata = getattr(output, "response_metadata", None)
    if isinstance(metadata, Mapping):
        headers = metadata.get("headers")
        if isinstance(headers, Mapping):
            return headers
    return None
