"""Redis ``TIME`` as a `Clock`: the one time scale every host's windows and deadlines share.

``RedisBackend.server_clock`` hands it to the scheduler; the backend itself estimates Redis
time between reads (``RedisBackend.now``). Waits are real.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from llm_routing.schedule.clock import SystemClock

if TYPE_CHECKING:
    from llm_routing.schedule.redis.backend import RedisBackend

__all__ = ["RedisClock"]


class RedisClock:
    """The Redis server's time as a `Clock`: ``now()`` is the backend's time, waits are real.

    Give it to code that takes a clock and hands times to the backend
    (``RateScheduler(backend=rb, clock=rb.server_clock)``), so deadlines, cooldowns and answer
    times share one scale with the windows every host sees.
    """

    __slots__ = ("_backend", "_system")

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._system = SystemClock()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RedisClock) and other._backend is self._backend

    def __hash__(self) -> int:
        return hash((RedisClock, id(self._backend)))

    def now(self) -> float:
        """Redis ``TIME`` (UTC epoch seconds), as the backend estimates it between reads."""
        return self._backend.now()

    def wall(self) -> float:
        """UTC epoch seconds: Redis time is already on that scale."""
        return self.now()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set or ``timeout`` real seconds pass."""
        return self._system.wait(event, timeout)

    async def await_(self, future: asyncio.Future[Any], timeout: float) -> bool:
        """Wait for ``future`` at most ``timeout`` real seconds, without cancelling it."""
        return await self._system.await_(future, timeout)


class _EstimatedClock(RedisClock):
    """Redis time advanced locally from the last reading, never asking Redis (for the fallback)."""

    __slots__ = ()

    def now(self) -> float:
        """The last ``TIME`` reading plus the local time since."""
        return self._backend._estimate()
