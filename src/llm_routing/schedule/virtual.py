"""Deterministic time for tests and simulations: the ``VirtualClock``.

Time moves only when told to (``advance``) or when every waiter is idle, so a simulated hour
runs in milliseconds and the same run always gives the same times. Real time lives in
``schedule.clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import threading
from typing import Any

from llm_routing.schedule.clock import _check_timeout

__all__ = ["VirtualClock"]


class _Timer:
    __slots__ = ("cancelled", "due", "future", "loop")

    def __init__(
        self, due: float, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
    ) -> None:
        self.due = due
        self.loop = loop
        self.future = future
        self.cancelled = False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# Without a readable ready queue (not a standard asyncio loop), the loop counts as idle after
# this many consecutive turns in which the driver ran; a heuristic, hence documented.
_IDLE_TURNS_FALLBACK = 8


class VirtualClock:
    """Deterministic time for tests and simulations: it only moves when told to, or when idle.

    * ``advance(seconds)`` moves time forward, firing every async timer that falls due, in
      order of due time (time stands at each timer's due time while it fires).
    * Sync ``wait(event, timeout)`` is for a single-threaded simulation: nothing else can set the
      event while we block, so if it is not set the clock advances to the deadline and returns
      ``event.is_set()``. An unset event with an infinite timeout raises ``RuntimeError``
      instead of hanging forever.
    * Async ``await_(future, timeout)`` registers a timer. A driver task on that event loop
      advances the clock to the earliest timer whenever the loop is idle, so ten simulated
      minutes of many tasks run in milliseconds. Idle means: the driver is running and the
      loop's ready queue (``loop._ready`` of the standard asyncio loops) is empty, i.e. every
      other task is waiting on something. Only in-process waits should be pending: a task
      waiting on real I/O counts as idle, and sees virtual time jump.

    ``wall()`` is ``now() + epoch`` (epoch 0.0: virtual time 0 is 1970-01-01 00:00 UTC), for
    calendar-day limits.
    """

    def __init__(self, start: float = 0.0, *, epoch: float = 0.0) -> None:
        if not math.isfinite(start) or not math.isfinite(epoch):
            raise ValueError(f"VirtualClock start and epoch must be finite, got {start}, {epoch}")
        self._now = float(start)
        self._epoch = float(epoch)
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._live: dict[asyncio.AbstractEventLoop, int] = {}
        self._cancelled = 0
        self._drivers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    def now(self) -> float:
        """The virtual time."""
        return self._now

    def wall(self) -> float:
        """Virtual UTC epoch seconds."""
        return self._now + self._epoch

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing the timers that fall due on the way."""
        if not seconds >= 0:
            raise ValueError(f"VirtualClock.advance needs seconds >= 0, got {seconds!r}")
        self._advance_to(self._now + seconds)

    def advance_to(self, when: float) -> None:
        """Move time forward to ``when`` (no-op when it is already later)."""
        if when != when:
            raise ValueError("VirtualClock.advance_to needs a time, got nan")
        self._advance_to(when)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Single-threaded wait: advance to the deadline unless the event is already set."""
        timeout = _check_timeout(timeout)
        if event.is_set():
            return True
        if timeout <= 0:
            return False
        if math.isinf(timeout):
            raise RuntimeError(
                "VirtualClock.wait with no timeout on an unset event would block forever: in a "
                "single-threaded simulation nothing else can set it; pass a finite deadline"
            )
        self._advance_to(self._after(timeout))
        return event.is_set()

    async def await_(self, future: asyncio.Future[Any], timeout: float) -> bool:
        """Wait for ``future`` or ``timeout`` virtual seconds; never cancels ``future``."""
        timeout = _check_timeout(timeout)
        if future.done():
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()

        def on_done(_: asyncio.Future[Any]) -> None:
            _resolve(wake)

        future.add_done_callback(on_done)
        timer = None if math.isinf(timeout) else self._add_timer(self._after(timeout), loop, wake)
        try:
            await wake
        finally:
            future.remove_done_callback(on_done)
            if timer is not None:
                self._cancel_timer(timer)
        return future.done()

    def sleep(self, seconds: float) -> None:
        """Sync sleep for a single-threaded simulation: time just moves on."""
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        """Async sleep in virtual time (auto-advanced when the loop is idle)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self.await_(asyncio.get_running_loop().create_future(), seconds)

    def pending_timers(self) -> int:
        """Async waits with a deadline that have not fired yet (for tests and diagnostics)."""
        with self._lock:
            return sum(self._live.values())

    # ------------------------------------------------------------------ internals

    def _after(self, timeout: float) -> float:
        due = self._now + timeout
        # A tiny timeout can round to "now"; waiting must still make progress.
        return due if due > self._now else math.nextafter(self._now, math.inf)

    def _add_timer(
        self, due: float, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
    ) -> _Timer:
        timer = _Timer(due, loop, future)
        with self._lock:
            heapq.heappush(self._timers, (due, next(self._seq), timer))
            self._live[loop] = self._live.get(loop, 0) + 1
            if loop not in self._drivers:
                self._drivers[loop] = loop.create_task(self._drive(loop))
        return timer

    def _cancel_timer(self, timer: _Timer) -> None:
        with self._lock:
            if timer.cancelled:
                return
            timer.cancelled = True
            self._forget(timer.loop)
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._timers):
                self._timers = [item for item in self._timers if not item[2].cancelled]
                heapq.heapify(self._timers)
                self._cancelled = 0

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        left = self._live[loop] - 1
        if left:
            self._live[loop] = left
        else:
            del self._live[loop]

    def _advance_to(self, target: float) -> None:
        while True:
            with self._lock:
                timer = None
                while self._timers and self._timers[0][0] <= target:
                    _, _, candidate = heapq.heappop(self._timers)
                    if candidate.cancelled:
                        self._cancelled -= 1
                        continue
                    candidate.cancelled = True  # fired: a later cancel is a no-op
                    self._forget(candidate.loop)
                    self._now = max(self._now, candidate.due)
                    timer = candidate
                    break
                if timer is None:
                    self._now = max(self._now, target)
                    return
            self._fire(timer)

    @staticmethod
    def _fire(timer: _Timer) -> None:
        running = asyncio._get_running_loop()
        if running is timer.loop:
            _resolve(timer.future)
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to wake
            timer.loop.call_soon_threadsafe(_resolve, timer.future)

    def _earliest_due(self) -> float | None:
        with self._lock:
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
                self._cancelled -= 1
            return self._timers[0][0] if self._timers else None

    async def _drive(self, loop: asyncio.AbstractEventLoop) -> None:
        me = asyncio.current_task()
        idle_turns = 0
        try:
            while True:
                await asyncio.sleep(0)
                with self._lock:
                    if not self._live.get(loop):
                        # Exit under the lock, so a new timer either sees this driver gone
                        # (and starts another) or was counted before we looked.
                        del self._drivers[loop]
                        return
                ready = getattr(loop, "_ready", None)
                if ready is not None:
                    if len(ready):
                        continue
                else:
                    idle_turns += 1
                    if idle_turns < _IDLE_TURNS_FALLBACK:
                        continue
                    idle_turns = 0
                due = self._earliest_due()
                if due is not None:
                    self._advance_to(due)
        finally:
            with self._lock:
                if self._drivers.get(loop) is me:
                    del self._drivers[loop]
