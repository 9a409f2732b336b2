"""Where the scheduler's state lives: the ``Backend`` contract every store implements.

A backend applies the pure policy atomically per key (memory: a lock; Redis: a Lua script).
It never waits and keeps no queue: FIFO waiting belongs to ``schedule.admission.Admission``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from llm_routing.schedule.clock import Clock
    from llm_routing.schedule.limits import Decision, RateLimitHeaders, RateLimits, Request

__all__ = ["DEFAULT_LEASE_S", "Backend", "check_lease"]

DEFAULT_LEASE_S = 30.0
"""How long an in-flight slot outlives a worker that stopped renewing it (killed mid-call)."""


def check_lease(value: object, owner: str) -> float | None:
    """``lease_s`` validated: a finite number of seconds > 0, or None (never expires)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}(lease_s=…) must be a number of seconds or None, got {value!r}")
    if not 0 < value < math.inf:
        raise ValueError(
            f"{owner}(lease_s=…) must be a finite number of seconds > 0 (how long an in-flight "
            f"slot outlives a worker killed mid-call), or None, got {value!r}"
        )
    return float(value)


class Backend(ABC):
    """State of every key; each method is atomic.

    The async twins default to the sync methods, which is right for a backend that does no I/O
    (``in_process = True``); a networked backend overrides them.
    """

    in_process: ClassVar[bool] = False
    """True when every method is quick CPU work with no I/O, so a caller may run it under its
    own lock and from an event loop without awaiting. ``try_acquire`` and ``project`` of such a
    backend must not call listeners themselves (``Admission`` calls them under its lock)."""

    lease_s: float | None = None
    """Seconds an in-flight slot outlives an owner that stopped renewing it (``renew``): how
    long a worker killed mid-call keeps holding a ``max_concurrency`` slot. None: held until
    settled or released (a backend written before leases)."""

    def renew(self, key: str, rids: Sequence[str]) -> int:
        """Push the lease of these in-flight requests ``lease_s`` past now; how many were held.

        The scheduler's queue calls it for its live calls every third of a lease.
        """
        return 0

    async def arenew(self, key: str, rids: Sequence[str]) -> int:
        """Async twin of ``renew``."""
        return self.renew(key, rids)

    def own(self, key: str, rid: str, owner: object) -> bool:
        """Tie ``rid``'s lease to ``owner`` (weakly); False when the caller must renew it.

        An in-process backend can see its owners directly: a lease whose owner is still
        alive is renewed when it runs out, whatever the clock (a virtual clock may jump a
        whole lease between two ticks of a renewal thread); one whose owner is gone frees
        its slot. A shared backend cannot, and relies on ``renew``.
        """
        return False

    def close(self) -> None:  # noqa: B027 (optional hook: most backends hold nothing)
        """Release what this backend holds (threads, connections); idempotent."""

    async def aclose(self) -> None:
        """Async ``close``."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def clock(self) -> Clock | None:
        """The clock this backend reads, when it is a local one (``None`` for a server's time)."""
        return None

    @abstractmethod
    def now(self) -> float:
        """The backend's time: the scale of ``Decision.at`` and of deadlines."""

    @abstractmethod
    def try_acquire(self, key: str, limits: RateLimits, request: Request, rid: str) -> Decision:
        """Decide and, when admissible, reserve for ``rid``, as one atomic step."""

    @abstractmethod
    def settle(
        self,
        key: str,
        limits: RateLimits,
        rid: str,
        input_tokens: int,
        output_tokens: int,
        *,
        answered_at: float | None = None,
    ) -> bool:
        """Real usage replaces the estimate; True (and listeners called) when capacity freed.

        ``answered_at`` (backend time) counts the request from its answer: `policy.settle`.
        """

    @abstractmethod
    def release(self, key: str, rid: str, *, keep_request: bool = False) -> bool:
        """Give back the reservation of ``rid``; True (and listeners called) when it was held."""

    @abstractmethod
    def cooldown(self, key: str, until: float) -> None:
        """Admit nobody on ``key`` before ``until`` (backend time)."""

    @abstractmethod
    def correct(
        self,
        key: str,
        limits: RateLimits,
        headers: RateLimitHeaders,
    ) -> None:
        """Tighten our view with the provider's remaining-capacity headers (never loosens)."""

    @abstractmethod
    def project(
        self, key: str, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        """When ``request`` would be admitted after the queue ahead of it; for the max-wait rule.

        Every ``pending`` request (FIFO ahead) is taken as admitted first, at its earliest
        time. Changes nothing. Concurrency is ignored (when a slot frees is an event, not a
        time) and pending requests that could never be admitted are skipped.
        """

    @abstractmethod
    def add_listener(self, key: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (outside any backend lock) whenever capacity on ``key`` frees."""

    @abstractmethod
    def remove_listener(self, key: str, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""

    @abstractmethod
    def snapshot(self, key: str) -> dict[str, Any]:
        """For stats and debugging: the usage in the windows, cooldown and in-flight count."""

    async def atry_acquire(
        self, key: str, limits: RateLimits, request: Request, rid: str
    ) -> Decision:
        """Async twin of ``try_acquire``."""
        return self.try_acquire(key, limits, request, rid)

    async def asettle(
        self,
        key: str,
        limits: RateLimits,
        rid: str,
        input_tokens: int,
        output_tokens: int,
        *,
        answered_at: float | None = None,
    ) -> bool:
        """Async twin of ``settle``."""
        return self.settle(key, limits, rid, input_tokens, output_tokens, answered_at=answered_at)

    async def arelease(self, key: str, rid: str, *, keep_request: bool = False) -> bool:
        """Async twin of ``release``."""
        return self.release(key, rid, keep_request=keep_request)

    async def acooldown(self, key: str, until: float) -> None:
        """Async twin of ``cooldown``."""
        self.cooldown(key, until)

    async def acorrect(
        self,
        key: str,
        limits: RateLimits,
        headers: RateLimitHeaders,
    ) -> None:
        """Async twin of ``correct``."""
        self.correct(
            key,
            limits,
            headers,
        )

    async def aproject(
        self, key: str, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        """Async twin of ``project``."""
        return self.project(key, limits, pending, request)
