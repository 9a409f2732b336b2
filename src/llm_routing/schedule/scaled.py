"""A real clock that runs faster: minute windows pass in seconds, with real threads and sockets.

For demos and integration tests that talk to the simulated provider over real HTTP: give the
simulator ``clock=scaled.now`` and the scheduler ``clock=scaled``, and both agree on a time in
which a 60-second window lasts ``60 / factor`` real seconds. Unlike `VirtualClock`, nothing
needs to be idle for time to move, so it works with any number of threads and event loops.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

from llm_routing.schedule.clock import _precise_wait

__all__ = ["ScaledClock"]


class ScaledClock:
    """``time.monotonic`` sped up ``factor`` times; waits shrink by the same factor.

    Network latency is scaled too, as seen by this clock: a 2 ms round trip looks like
    ``2 ms × factor``. Keep ``factor`` small enough (30 to 60) that latencies stay well below
    the windows being tested.
    """

    __slots__ = ("_start", "factor")

    def __init__(self, factor: float = 60.0) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise TypeError(f"ScaledClock(factor=…) must be a number, got {factor!r}")
        if not 0 < factor < math.inf:
            raise ValueError(
                f"ScaledClock(factor=…) must be a finite number > 0 (how many times faster "
                f"than real time), got {factor!r}"
            )
        self.factor = float(factor)
        self._start = time.monotonic()

    def __repr__(self) -> str:
        return f"ScaledClock(factor={self.factor:g})"

    def now(self) -> float:
        """Scaled seconds since this clock was made."""
        return (time.monotonic() - self._start) * self.factor

    def wall(self) -> float:
        """UTC epoch seconds at the scaled rate, for calendar-day limits."""
        return time.time() + self.now()

    def _real(self, timeout: float) -> float | None:
        if timeout != timeout:
            raise ValueError("timeout must be a number of seconds (or math.inf), got nan")
        return None if math.isinf(timeout) else max(0.0, timeout) / self.factor

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """``event.wait`` for ``timeout`` scaled seconds."""
        if event.is_set():
            return True
        real = self._real(timeout)
        if real == 0:
            return False
        return event.wait(real)

    async def await_(self, future: asyncio.Future[Any], timeout: float) -> bool:
        """Wait for ``future`` (never cancelling it) for ``timeout`` scaled seconds."""
        if future.done():
            return True
        real = self._real(timeout)
        if real == 0:
            return False
        if real is None:
            await asyncio.wait((future,))
            return True
        return await _precise_wait(future, real)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` scaled seconds."""
        time.sleep(self._real(seconds) or 0.0)

    async def asleep(self, seconds: float) -> None:
        """Async sleep of ``seconds`` scaled seconds."""
        await asyncio.sleep(self._real(seconds) or 0.0)
