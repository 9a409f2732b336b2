"""What a failed attempt means: give back, cool down, retry after a delay, or raise now.

The scheduler's reaction to each provider error kind (a 429, a spent quota, a transient
failure, a refusal of an inner decorator), and the quota blocks it leaves behind. Decisions
only, as `attempt.Failure` values: the scheduler's runners tell the backend (sync or async)
and sleep. A mixin of `RateScheduler`, whose attributes it reads.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from tenacity import RetryCallState, Retrying

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
from llm_routing.schedule.attempt import Apply, Failure, Pending, caused, correction, first_line
from llm_routing.schedule.headers import error_headers
from llm_routing.schedule.stats import SchedulerStats

if TYPE_CHECKING:
    from collections.abc import Callable

__all__: list[str] = []


class _Reactions:
    """The retry half of `RateScheduler`: its settings and state are the scheduler's."""

    max_wait: float
    max_retries: int
    quota_cooldown: float
    admission: Admission
    _stats: SchedulerStats
    _lock: threading.Lock
    _quota_until: dict[str, tuple[float, str]]
    _backoff: Callable[[RetryCallState], Any]
    _retrying: Retrying

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

    def _remaining(self, pending: Pending) -> float:
        # Inside a router call, what the call's other attempts waited counts too: max_wait
        # bounds the request, not each model.
        return pending.left(self.max_wait)

    def _failed(self, pending: Pending, ticket: Ticket, exc: Exception) -> Failure:
        """React to a failed attempt: what the backend is told, then the delay or the error."""
        key = pending.resolved.key
        if isinstance(exc, LLMRoutingError):
            # An inner decorator refused before anything was sent (a budget, a guard).
            return Failure(Apply(ticket), error=exc)
        kind = classify(exc)
        if kind in (ErrorKind.TRANSIENT, ErrorKind.UNKNOWN):
            # A timeout, a dropped connection or an unknown failure may come after the
            # provider counted the request and its tokens: keep all of it counted.
            request = pending.request
            tokens = request.input_tokens, request.output_tokens
            effects = Apply(ticket, tokens, self.admission.now())
        else:
            # Refused at the door (429, quota, bad request): no tokens were processed. The
            # request slot stays where the provider says refusals count (OpenAI: "unsuccessful
            # requests contribute to your per-minute limit"), and is given back elsewhere, so
            # a burst of refusals does not fill our window with requests the provider forgot.
            counts = enforcement_for(pending.resolved.spec.provider).failed_requests_count
            effects = Apply(ticket, keep_request=counts)
        if kind is ErrorKind.RATE_LIMIT:
            return self._rate_limited(pending, exc, effects)
        if kind is ErrorKind.QUOTA:
            hint = retry_after(exc)
            reason = first_line(exc)
            until = self.admission.now() + (hint if hint is not None else self.quota_cooldown)
            with self._lock:
                self._quota_until[key] = (until, reason)
            self._stats.add(key, "refused_quota")
            refusal = QuotaExceededError(
                f"{key}: {reason}. Not retried (waiting does not restore a quota); the router "
                "falls back to the next model.",
                model=key,
                reason=reason,
            )
            return Failure(effects, error=caused(refusal, exc))
        if kind is ErrorKind.TRANSIENT:
            attempts = pending.transient_retries + 1
            delay = self._delay(exc, pending.transient_retries)
            if pending.transient_retries >= self.max_retries or delay > self._remaining(pending):
                unavailable = ProviderUnavailableError(
                    f"{key} failed {attempts} time(s) with a transient error: {first_line(exc)}",
                    model=key,
                    attempts=attempts,
                )
                return Failure(effects, error=caused(unavailable, exc))
            pending.transient_retries += 1
            pending.wait(delay)
            pending.retrying = "transient_retries"
            return Failure(effects, delay=delay)
        return Failure(effects, error=exc)

    def _rate_limited(self, pending: Pending, exc: Exception, effects: Apply) -> Failure:
        key = pending.resolved.key
        self._stats.add(key, "rate_limit_errors")
        effects.correction = correction(pending, error_headers(exc))
        hint = retry_after(exc)
        # A Retry-After of 0 is no advice: retrying at once would resend at full speed for as
        # long as the provider keeps refusing, so it backs off like a 429 without a hint.
        delay = hint or self._delay(None, pending.rate_limit_retries)
        # Every caller of this model waits out the cooldown, whether this one retries or not.
        effects.cooldown_until = self.admission.now() + delay
        left = self._remaining(pending)
        if delay > left:
            self._stats.add(key, "refused_max_wait")
            said = f"Retry-After {hint:g}s" if hint else f"a backoff of {delay:.1f}s"
            refusal = RateLimitExhaustedError(
                f"{key} answered 429 and {said} would pass max_wait "
                f"({self.max_wait:g}s, {left:.1f}s left); falling back instead of waiting",
                model=key,
                wait_s=delay,
                reason="provider rate limit",
            )
            return Failure(effects, error=caused(refusal, exc))
        pending.rate_limit_retries += 1
        pending.retrying = "retries"
        return Failure(effects)

    def _delay(self, exc: Exception | None, retries: int) -> float:
        hint = retry_after(exc) if exc is not None else None
        if hint is not None:
            return hint
        state = RetryCallState(self._retrying, None, (), {})
        state.attempt_number = retries + 1
        return float(self._backoff(state))
