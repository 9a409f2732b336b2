"""Time for the scheduler: the ``Clock`` protocol, the real ``SystemClock`` and a ``ScaledClock``.

A clock reads the time and waits, sync (``threading.Event``) or async (an ``asyncio`` future),
until something is signalled or a timeout passes. It decides nothing about rate limits.
``ScaledClock`` is real time sped up (minute windows pass in seconds, with real threads and
sockets: give the simulator ``clock=scaled.now`` and the scheduler ``clock=scaled``); the
deterministic ``VirtualClock`` lives in ``schedule.virtual`` and is re-exported here.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from llm_routing.schedule.virtual import VirtualClock

__all__ = ["Clock", "ScaledClock", "SystemClock", "VirtualClock"]


@runtime_checkable
class Clock(Protocol):
    """Monotonic seconds, and waits that end early when signalled."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
        ...

    async def await_(self, future: asyncio.Future[Any], timeout: float) -> bool:
        """Wait until ``future`` is done or ``timeout`` passes; True if done. Never cancels it."""
        ...


def _check_timeout(timeout: float) -> float:
    if timeout != timeout:
        raise ValueError("timeout must be a number of seconds (or math.inf), got nan")
    return timeout


class SystemClock:
    """Real time: ``time.monotonic`` and real waits."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        # Every SystemClock reads the same time, so any two are interchangeable.
        return isinstance(other, SystemClock)

    def __hash__(self) -> int:
        return hash(SystemClock)

    # ``time.monotonic`` itself (no frame of ours): read twice per scheduled call.
    now = staticmethod(time.monotonic)

    def wall(self) -> float:
        """UTC epoch seconds, for calendar-day limits."""
        return time.time()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """``event.wait(timeout)``; an infinite timeout waits for the event alone."""
        timeout = _check_timeout(timeout)
        if event.is_set():
            return True
        if timeout <= 0:
            return False
        return event.wait(None if math.isinf(timeout) else timeout)

    async def await_(self, future: asyncio.Future[Any], timeout: float) -> bool:
        """Wait for ``future`` without cancelling it when the timeout passes or we are cancelled."""
        timeout = _check_timeout(timeout)
        if future.done():
            return True
        if timeout <= 0:
            return False
        if math.isinf(timeout):
            await asyncio.wait((future,))
            return True
        return await _precise_wait(future, timeout)

    def sleep(self, seconds: float) -> None:
        """``time.sleep``."""
        time.sleep(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(0.0, seconds))


async def _precise_wait(future: asyncio.Future[Any], timeout: float) -> bool:
    """``asyncio.wait`` for ``timeout`` seconds, without the kernel's timer slack.

    An epoll timeout fires about 0.1 % late (a 60 s wait for the next window wakes ~60 ms
    late), so sleep a little short, then the remainder against the same deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    early = timeout - min(0.1, 0.002 * timeout)
    done, _ = await asyncio.wait((future,), timeout=early)
    if done:
        return True
    left = deadline - loop.time()
    if left > 0:
        done, _ = await asyncio.wait((future,), timeout=left)
    return bool(done)


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


def __getattr__(name: str) -> Any:
    # ``schedule.clock.VirtualClock`` was its home before ``schedule.virtual``; imported on
    # first use, since ``virtual`` itself builds on this module.
    if name == "VirtualClock":
        from llm_routing.schedule.virtual import VirtualClock

        return VirtualClock
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
