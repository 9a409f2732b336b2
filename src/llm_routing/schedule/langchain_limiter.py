"""LangChain's rate-limiter interface over a `RateScheduler`: ``ChatOpenAI(rate_limiter=…)``.

One request and no tokens per ``acquire`` (the interface never sees tokens), in the same
windows and FIFO queue the decorator uses; ``RateScheduler.limiter_for`` builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.rate_limiters import BaseRateLimiter

from llm_routing.errors import RateLimitExhaustedError
from llm_routing.schedule.limits import RateLimits, Request

if TYPE_CHECKING:
    from llm_routing.schedule.scheduler import RateScheduler

__all__ = ["SchedulerLimiter"]


class SchedulerLimiter(BaseRateLimiter):
    """``BaseRateLimiter`` over a scheduler: one request, no tokens, per acquire."""

    def __init__(self, scheduler: RateScheduler, key: str, limits: RateLimits) -> None:
        self._scheduler = scheduler
        self._key = key
        self._limits = limits

    def _ask(self, blocking: bool) -> dict[str, Any]:
        """The admission arguments: wait up to ``max_wait``, or not at all."""
        admission = self._scheduler.admission
        wait = self._scheduler.max_wait if blocking else 0.0
        return {
            "key": self._key,
            "limits": self._limits,
            "request": Request(input_tokens=0, output_tokens=0),
            "deadline": admission.now() + wait,
            "model": self._key,
        }

    def acquire(self, *, blocking: bool = True) -> bool:
        """Wait for a request slot (``blocking=False``: take one only if free now)."""
        admission = self._scheduler.admission
        try:
            ticket = admission.acquire(**self._ask(blocking))
        except RateLimitExhaustedError:
            if blocking:
                raise
            return False
        admission.settle(ticket, 0, 0)
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        """Async `acquire`."""
        admission = self._scheduler.admission
        try:
            ticket = await admission.aacquire(**self._ask(blocking))
        except RateLimitExhaustedError:
            if blocking:
                raise
            return False
        await admission.asettle(ticket, 0, 0)
        return True
