"""The ledger contract: what a call holds, what it spent, and where money lives.

Owns the `Ledger` interface (reserve, settle, release,
add, records, summary) and the waiting every ledger shares: a call refused only because of
other calls' holds (its own worst case fits beside the settled spend) can wait for them to
settle, `Ledger.reserve_within`. `MemoryLedger` (``cost.memory``) keeps the money in this
process; ``RedisLedger`` (``cost.redis``) in Redis, with atomic scripts. Pricing is
``cost.pricing``; what a budget is, ``cost.budget``; a priced call, `CostRecord`, is
``cost.record`` (re-exported here, its old home), and `Reservation`/`Refusal` ``cost._holds``.

Holds are leases: each expires ``hold_lease`` seconds after it was taken or last renewed, and
a background thread of the process that took it renews it while its `Reservation` is alive and
unsettled. A process killed mid-call stops renewing, so its holds stop shrinking the budget
within one lease.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llm_routing.cost._holds import Refusal, Reservation, refusal_for  # noqa: F401 (re-exported)
from llm_routing.cost._waiting import Wake
from llm_routing.cost.amounts import _CONTEXT as _CONTEXT
from llm_routing.cost.amounts import _ZERO as _ZERO
from llm_routing.cost.budget import Bucket, BucketChange
from llm_routing.cost.record import (  # noqa: F401 (re-exported: their old home)
    RECORD_COLUMNS,
    CostRecord,
    _Epoch,
    _record,
    raw_time,
)
from llm_routing.schedule.clock import Clock, SystemClock

if TYPE_CHECKING:
    from llm_routing.cost.memory import MemoryLedger

__all__ = [
    "DEFAULT_HOLD_LEASE",
    "DEFAULT_MAX_RECORDS",
    "RECORD_COLUMNS",
    "CostRecord",
    "Ledger",
    "MemoryLedger",
    "Refusal",
    "Reservation",
]

DEFAULT_MAX_RECORDS = 100_000
"""Records a `MemoryLedger` keeps (the newest); totals and summaries always cover every call."""

DEFAULT_HOLD_LEASE = 30.0
"""Seconds a hold lives without renewal: how long a killed worker's holds shrink a budget."""


class Ledger(ABC):
    """Where a tracker keeps money: reservations, committed spend per bucket, and records.

    Every method is atomic with respect to the others (one lock in memory, one script in
    Redis), so N callers reserving at once can never together pass a limit.

    Subclasses written before leases and waiting keep working: ``renew`` does nothing and
    `reserve_within` refuses at once unless ``_listen`` is implemented.
    """

    hold_lease: float = DEFAULT_HOLD_LEASE
    """Seconds a hold lives without renewal."""

    blocks: bool = True
    """Whether its operations may block on I/O (Redis: yes; in memory: no). The tracker's async
    hooks call a blocking ledger from a worker thread, never on the event loop."""

    @property
    def clock(self) -> Clock:
        """The clock waits are measured on (and, in memory, hold expiry)."""
        return _SYSTEM_CLOCK

    @abstractmethod
    def reserve(self, amount: Decimal, buckets: Sequence[Bucket]) -> Reservation | Refusal:
        """Hold ``amount`` in every bucket, or refuse if any would pass its limit."""

    @abstractmethod
    def settle(self, reservation: Reservation, record: CostRecord) -> list[BucketChange]:
        """Replace the hold by the record's real cost; return the buckets' spend changes."""

    @abstractmethod
    def release(self, reservation: Reservation) -> None:
        """Drop the hold of a call that cost nothing (failed before the provider answered)."""

    @abstractmethod
    def add(self, record: CostRecord, buckets: Sequence[Bucket] = ()) -> list[BucketChange]:
        """Record a call that had no reservation, charging ``buckets``."""

    @abstractmethod
    def records(self) -> list[CostRecord]:
        """The kept records, oldest first."""

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """Totals with exact ``Decimal`` amounts (see `MemoryLedger.summary` for the shape)."""

    @abstractmethod
    def bucket_usage(self, keys: Iterable[str]) -> dict[str, tuple[Decimal, Decimal]]:
        """``{key: (committed, reserved)}`` for the given bucket keys."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every record, total and hold; holds of calls in flight are dropped."""

    def renew(self, reservations: Sequence[Reservation]) -> None:  # noqa: B027 (optional hook)
        """Push the expiry of these holds to ``hold_lease`` from now (dropped holds are skipped)."""

    # --- waiting for holds to settle -------------------------------------------------------

    def _attempt(
        self, amount: Decimal, buckets: Sequence[Bucket], *, final: bool
    ) -> Reservation | Refusal:
        """One reservation attempt; a refusal counts as refused only when ``final`` or hard."""
        return self.reserve(amount, buckets)

    def _listen(self, wake: Wake) -> bool:
        """Wake ``wake`` whenever a hold is dropped from now on; False if this ledger cannot."""
        return False

    def _unlisten(self, wake: Wake) -> None:  # noqa: B027 (optional hook)
        """Stop waking ``wake``."""

    def _max_pause(self) -> float:
        """The longest a waiter sleeps between attempts (a net under lost wake-ups)."""
        return math.inf

    def _pause(self, refusal: Refusal, left: float) -> float:
        pause = min(left, self._max_pause())
        if refusal.retry_in is not None:
            # A hold whose owner died expires then, and nothing announces it: look again.
            pause = min(pause, max(refusal.retry_in, 0.001))
        return pause

    def reserve_within(
        self, amount: Decimal, buckets: Sequence[Bucket], timeout: float
    ) -> Reservation | Refusal:
        """`reserve`, but a refusal due only to other calls' holds waits up to ``timeout`` s.

        A refusal the settled spend alone causes is returned at once: no settlement can make
        room. Waiting holds nothing, so a waiter never blocks the calls it waits for.
        """
        outcome = self._attempt(amount, buckets, final=timeout <= 0)
        if not _waitable(outcome) or timeout <= 0:
            return outcome
        wake = Wake(None)
        steps = self._waits(amount, buckets, timeout, wake)
        try:
            while True:
                self.clock.wait(wake.event, next(steps))
        except StopIteration as done:
            result: Reservation | Refusal = done.value
            return result
        finally:
            steps.close()

    async def areserve_within(
        self, amount: Decimal, buckets: Sequence[Bucket], timeout: float
    ) -> Reservation | Refusal:
        """Async `reserve_within`: waits on the event loop, never blocking it.

        A ledger that does I/O (``blocks``: Redis) makes each attempt from a worker thread,
        so the loop only ever sleeps; the in-memory ledger attempts inline.
        """
        final = timeout <= 0
        if self.blocks:
            outcome = await asyncio.to_thread(self._attempt, amount, buckets, final=final)
        else:
            outcome = self._attempt(amount, buckets, final=final)
        if not _waitable(outcome) or final:
            return outcome
        wake = Wake(asyncio.get_running_loop())
        steps = self._waits(amount, buckets, timeout, wake)
        running: asyncio.Future[tuple[bool, Any]] | None = None
        try:
            while True:
                if self.blocks:  # shielded: a step already in its thread runs to its end
                    running = asyncio.ensure_future(asyncio.to_thread(_step, steps))
                    done, value = await asyncio.shield(running)
                else:
                    done, value = _step(steps)
                if done:
                    result: Reservation | Refusal = value
                    return result
                assert wake.future is not None
                await self.clock.await_(wake.future, value)
        finally:  # cancelled mid-wait: stop listening (once a running step is over)
            if running is not None and not running.done():
                running.add_done_callback(lambda _: steps.close())
            else:
                steps.close()

    def _waits(
        self, amount: Decimal, buckets: Sequence[Bucket], timeout: float, wake: Wake
    ) -> Generator[float, None, Reservation | Refusal]:
        """The waiting rule once for both colours: yields how long to sleep on ``wake``.

        Each attempt is made after ``wake`` is armed, so a hold dropped between the attempt
        and the sleep still ends the sleep. Returns the outcome, with how long it waited.
        """
        clock = self.clock
        start = clock.now()
        if not self._listen(wake):
            return self._attempt(amount, buckets, final=True)
        try:
            while True:
                wake.arm()
                left = start + timeout - clock.now()
                outcome = self._attempt(amount, buckets, final=left <= 0)
                if not isinstance(outcome, Refusal) or not outcome.held_only or left <= 0:
                    return _waited(outcome, clock.now() - start)
                yield self._pause(outcome, left)
        finally:
            self._unlisten(wake)


_SYSTEM_CLOCK = SystemClock()


def _step(steps: Generator[float, None, Reservation | Refusal]) -> tuple[bool, Any]:
    """One step of the waiting rule: ``(False, pause)``, or ``(True, outcome)`` at its end.

    (A future cannot carry ``StopIteration``, so a step run in a thread answers a pair.)
    """
    try:
        return False, next(steps)
    except StopIteration as done:
        return True, done.value


def _waitable(outcome: Reservation | Refusal) -> bool:
    return isinstance(outcome, Refusal) and outcome.held_only


def _waited(outcome: Reservation | Refusal, seconds: float) -> Reservation | Refusal:
    if isinstance(outcome, Refusal):
        return dataclasses.replace(outcome, waited=max(0.0, seconds))
    return outcome


def __getattr__(name: str) -> Any:
    # MemoryLedger lives in cost.memory, which imports this module: loaded on first use.
    if name == "MemoryLedger":
        from llm_routing.cost.memory import MemoryLedger

        return MemoryLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
