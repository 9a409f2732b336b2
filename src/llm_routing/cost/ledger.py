"""The ledger: where reservations, spend and cost records live, behind a small interface.

Owns `CostRecord`, the `Ledger` interface (reserve, settle, release, add, records, summary),
the waiting and lease machinery every ledger shares, and `MemoryLedger`, the in-process
implementation. A shared (Redis) ledger implements the same interface with atomic scripts.
Pricing is ``cost.pricing``; what a budget is, ``cost.budget``.

Holds are leases: each expires ``hold_lease`` seconds after it was taken or last renewed, and
a background thread of the process that took it renews it while its `Reservation` is alive and
unsettled. A process killed mid-call stops renewing, so its holds stop shrinking the budget
within one lease. A call refused only because of other calls' holds (its own worst case fits
beside the settled spend) can wait for them to settle: `Ledger.reserve_within`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import decimal
import heapq
import itertools
import logging
import math
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from llm_routing._lease import LeaseRenewer
from llm_routing.cost.budget import Bucket, BucketChange, first_exceeded, period_keys
from llm_routing.cost.pricing import Cost, TokenUsage
from llm_routing.schedule.clock import Clock, SystemClock

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

_log = logging.getLogger(__name__)

_Renewer = LeaseRenewer["Reservation"]

RECORD_COLUMNS: tuple[str, ...] = (
    "time",
    "provider",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "input_cost_usd",
    "cached_input_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "reasoning_cost_usd",
    "estimated",
    "status",
    "duration_s",
    "run_id",
    "parent_run_id",
    "tags",
    "metadata",
)
"""The keys of `CostRecord.as_row`, in order: the columns of ``CostTracker.to_dataframe()``."""

_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CostRecord:
    """One priced call: who, when, how many tokens of each kind, what it cost.

    ``estimated`` is true when the provider reported no usage and the tokens were counted
    locally. ``status`` is ``"ok"``, ``"error"`` (the provider answered, then the call failed:
    only what it reported is charged) or ``"cancelled"`` (a stream closed early: the part
    received is charged, estimated). ``tags`` and ``metadata`` come from the call's config, so
    cost can be attributed to a feature or a user.
    """

    time: datetime
    provider: str
    model: str
    tokens: TokenUsage
    cost: Cost
    estimated: bool = False
    status: str = "ok"
    run_id: str | None = None
    parent_run_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    duration_s: float | None = None

    @property
    def key(self) -> str:
        """``provider:model``, the key of ``summary()["by_model"]``."""
        return f"{self.provider}:{self.model}"

    @property
    def cost_usd(self) -> float | None:
        """The total as a float, ``None`` when the price is unknown."""
        return None if self.cost.total is None else float(self.cost.total)

    @property
    def input_tokens(self) -> int:
        """The whole prompt, cached part included."""
        return self.tokens.prompt_tokens

    @property
    def output_tokens(self) -> int:
        """The whole answer, reasoning included."""
        return self.tokens.completion_tokens

    @property
    def cached_input_tokens(self) -> int:
        """Prompt tokens read from the provider's cache."""
        return self.tokens.cached_input

    @property
    def cache_write_tokens(self) -> int:
        """Prompt tokens written to the provider's cache (5-minute and 1-hour)."""
        return self.tokens.cache_write + self.tokens.cache_write_1h

    @property
    def reasoning_tokens(self) -> int:
        """Output tokens spent thinking."""
        return self.tokens.reasoning

    def as_row(self) -> dict[str, Any]:
        """A flat dict (floats for USD) for tables and data frames."""
        cost = self.cost
        return {
            "time": self.time,
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "input_cost_usd": _float(cost.input),
            "cached_input_cost_usd": _float(cost.cached_input),
            "cache_write_cost_usd": _float(cost.cache_write),
            "output_cost_usd": _float(cost.output),
            "reasoning_cost_usd": _float(cost.reasoning),
            "estimated": self.estimated,
            "status": self.status,
            "duration_s": self.duration_s,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
        }


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Reservation:
    """Money held for one call in flight, in the buckets its budgets name.

    The ledger renews the hold while this object is alive and unsettled (weakly referenced:
    a call that vanished without settling stops renewing, and its hold expires).
    """

    id: int
    amount: Decimal
    buckets: tuple[Bucket, ...]
    generation: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused: the bucket, its spend, what was asked.

    ``held_only`` is true when the settled spend leaves room for ``requested`` in every
    bucket and only other calls' holds are in the way: waiting for them to settle can help.
    ``retry_in`` is when the earliest of those holds expires unless renewed (seconds), and
    ``waited`` how long `Ledger.reserve_within` waited before giving up; neither takes part in
    equality, since they depend on when the answer was given.
    """

    bucket: Bucket
    spent: Decimal
    reserved: Decimal
    requested: Decimal
    held_only: bool = False
    retry_in: float | None = field(default=None, compare=False)
    waited: float = field(default=0.0, compare=False)


def _check_lease(value: Any, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}(hold_lease=…) must be a number of seconds, got {value!r}")
    if not 0 < value < math.inf:
        raise ValueError(
            f"{owner}(hold_lease=…) must be a finite number of seconds > 0 (how long a hold "
            f"outlives a worker that stopped renewing it), got {value!r}"
        )
    return float(value)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Wake:
    """One waiting caller: a ``threading.Event`` (sync) or a future on its loop (async)."""

    __slots__ = ("event", "future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.event = threading.Event()
        self.future: asyncio.Future[None] | None = None

    def arm(self) -> None:
        """Forget earlier wake-ups: called before each attempt, so none after it is lost."""
        self.event.clear()
        if self.loop is not None:
            self.future = self.loop.create_future()

    def set(self) -> None:
        self.event.set()
        future, loop = self.future, self.loop
        if future is None or loop is None or future.done():
            return
        if asyncio._get_running_loop() is loop:
            future.set_result(None)
            return
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is left to wake
            loop.call_soon_threadsafe(_resolve, future)


class _Waiters:
    """The callers of this process waiting for a hold to be dropped; all woken at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[_Wake] = set()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, wake: _Wake) -> None:
        with self._lock:
            self._waiting.add(wake)

    def discard(self, wake: _Wake) -> None:
        with self._lock:
            self._waiting.discard(wake)

    def wake_all(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
        for wake in waiting:
            wake.set()


def _renewer(renew: Callable[[list[Reservation]], object], lease: float, name: str) -> _Renewer:
    """The lease renewer of a ledger: every third of a lease, so two ticks may be missed."""
    return LeaseRenewer(renew, lease / 3, name, "budget hold(s)")


def _hold_key(reservation: Reservation) -> tuple[int, int]:
    return (reservation.generation, reservation.id)


class Ledger(ABC):
    """Where a tracker keeps money: reservations, committed spend per bucket, and records.

    Every method is atomic with respect to the others (one lock in memory, one script in
    Redis), so N callers reserving at once can never together pass a limit.

    Subclasses written before leases and waiting keep working: ``renew`` does nothing and
    `reserve_within` refuses at once unless ``_listen`` is implemented.
    """

    hold_lease: float = DEFAULT_HOLD_LEASE
    """Seconds a hold lives without renewal."""

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

    def _listen(self, wake: _Wake) -> bool:
        """Wake ``wake`` whenever a hold is dropped from now on; False if this ledger cannot."""
        return False

    def _unlisten(self, wake: _Wake) -> None:  # noqa: B027 (optional hook)
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
        clock = self.clock
        start = clock.now()
        wake = _Wake(None)
        if not self._listen(wake):
            return self._attempt(amount, buckets, final=True)
        try:
            while True:
                wake.arm()
                left = start + timeout - clock.now()
                outcome = self._attempt(amount, buckets, final=left <= 0)
                if not _waitable(outcome) or left <= 0:
                    return _waited(outcome, clock.now() - start)
                assert isinstance(outcome, Refusal)
                clock.wait(wake.event, self._pause(outcome, left))
        finally:
            self._unlisten(wake)

    async def areserve_within(
        self, amount: Decimal, buckets: Sequence[Bucket], timeout: float
    ) -> Reservation | Refusal:
        """Async `reserve_within`: waits on the event loop, never blocking it."""
        outcome = self._attempt(amount, buckets, final=timeout <= 0)
        if not _waitable(outcome) or timeout <= 0:
            return outcome
        clock = self.clock
        start = clock.now()
        wake = _Wake(asyncio.get_running_loop())
        if not self._listen(wake):
            return self._attempt(amount, buckets, final=True)
        try:
            while True:
                wake.arm()
                left = start + timeout - clock.now()
                outcome = self._attempt(amount, buckets, final=left <= 0)
                if not _waitable(outcome) or left <= 0:
                    return _waited(outcome, clock.now() - start)
                assert isinstance(outcome, Refusal) and wake.future is not None
                await clock.await_(wake.future, self._pause(outcome, left))
        finally:
            self._unlisten(wake)


_SYSTEM_CLOCK = SystemClock()


def _waitable(outcome: Reservation | Refusal) -> bool:
    return isinstance(outcome, Refusal) and outcome.held_only


def _waited(outcome: Reservation | Refusal, seconds: float) -> Reservation | Refusal:
    if isinstance(outcome, Refusal):
        return dataclasses.replace(outcome, waited=max(0.0, seconds))
    return outcome


def refusal_for(
    buckets: Sequence[Bucket],
    spent: Callable[[str], Decimal],
    reserved: Callable[[str], Decimal],
    amount: Decimal,
) -> Refusal | None:
    """Why ``amount`` cannot be held now, or ``None`` when it fits every bucket.

    The settled spend is checked first over every bucket: a bucket it alone fills is a hard
    refusal (``held_only`` false) even when another bucket is only held full.
    """
    hard = first_exceeded(buckets, spent, amount)
    if hard is not None:
        return Refusal(hard, spent(hard.key), reserved(hard.key), amount)
    soft = first_exceeded(buckets, lambda key: _CONTEXT.add(spent(key), reserved(key)), amount)
    if soft is not None:
        return Refusal(soft, spent(soft.key), reserved(soft.key), amount, held_only=True)
    return None


class _Group:
    """Running totals of one group of calls (a model, a tag, a period, or all)."""

    __slots__ = (
        "cache_write_tokens",
        "cached_input_tokens",
        "calls",
        "cost",
        "estimated_calls",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "unpriced_calls",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.unpriced_calls = 0
        self.estimated_calls = 0
        self.cost = _ZERO
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0

    def add(self, record: CostRecord) -> None:
        self.calls += 1
        if record.cost.total is None:
            self.unpriced_calls += 1
        else:
            self.cost = _CONTEXT.add(self.cost, record.cost.total)
        if record.estimated:
            self.estimated_calls += 1
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.cached_input_tokens += record.cached_input_tokens
        self.cache_write_tokens += record.cache_write_tokens
        self.reasoning_tokens += record.reasoning_tokens

    def as_dict(self) -> dict[str, Any]:
        # A group whose every call is unpriced has an unknown cost, not $0.
        priced = self.calls - self.unpriced_calls
        return {
            "calls": self.calls,
            "cost": self.cost if priced > 0 or self.calls == 0 else None,
            "unpriced_calls": self.unpriced_calls,
            "estimated_calls": self.estimated_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


class _Hold:
    """An open hold in memory: what it holds, where, and until when unless renewed."""

    __slots__ = ("amount", "buckets", "expires")

    def __init__(self, amount: Decimal, buckets: tuple[Bucket, ...], expires: float) -> None:
        self.amount = amount
        self.buckets = buckets
        self.expires = expires


class MemoryLedger(Ledger):
    """The in-process ledger: one lock, held only for arithmetic and dict updates.

    Keeps the newest ``max_records`` records (``None``: all); the totals, by-model, by-tag and
    by-period summaries always cover every call since the last ``reset()``. Holds are leased
    like the Redis ledger's (``hold_lease`` seconds, renewed while their `Reservation` lives),
    so both drop a forgotten hold the same way; ``clock`` (a ``llm_routing.schedule`` clock,
    e.g. ``VirtualClock``) times leases and waits.
    """

    def __init__(
        self,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        *,
        hold_lease: float = DEFAULT_HOLD_LEASE,
        clock: Clock | None = None,
    ) -> None:
        if max_records is not None and (
            isinstance(max_records, bool) or not isinstance(max_records, int)
        ):
            raise TypeError(
                f"MemoryLedger(max_records=…) must be an int or None, got {max_records!r}"
            )
        if max_records is not None and not 0 <= max_records <= sys.maxsize:
            raise ValueError(
                f"MemoryLedger(max_records=…) must be between 0 and {sys.maxsize} or None "
                f"(keep all), got {max_records}"
            )
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(
                "MemoryLedger(clock=…) must be a llm_routing.schedule clock (SystemClock, "
                f"VirtualClock), got {clock!r}"
            )
        self.max_records = max_records
        self.hold_lease = _check_lease(hold_lease, "MemoryLedger")
        self._clock: Clock = clock if clock is not None else _SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._generation = 0
        self._waiters = _Waiters()
        self._renewer = _renewer(self.renew, self.hold_lease, "llm_routing-ledger-leases")
        self._clear()

    def _clear(self) -> None:
        self._spent: dict[str, Decimal] = {}
        self._reserved: dict[str, Decimal] = {}
        self._open: dict[int, _Hold] = {}
        self._expiry: list[tuple[float, int]] = []  # (expires, id); stale entries skipped
        self._expired: set[int] = set()
        self._records: deque[CostRecord] = deque(maxlen=self.max_records)
        self._total = _Group()
        self._by_model: dict[str, _Group] = {}
        self._by_tag: dict[str, _Group] = {}
        self._by_period: dict[str, dict[str, _Group]] = {"hour": {}, "day": {}, "month": {}}
        self._by_status: dict[str, int] = {}
        self._refused = 0

    def __repr__(self) -> str:
        return f"MemoryLedger(calls={self._total.calls}, max_records={self.max_records})"

    @property
    def clock(self) -> Clock:
        """The clock leases and waits run on."""
        return self._clock

    # --- money -----------------------------------------------------------------------------

    def _used(self, key: str) -> Decimal:
        return _CONTEXT.add(self._spent.get(key, _ZERO), self._reserved.get(key, _ZERO))

    def _expire(self) -> bool:
        """Drop the holds whose lease ran out (lock held); True if any was dropped."""
        now = self._clock.now()
        dropped = False
        heap = self._expiry
        while heap and heap[0][0] <= now:
            expires, ident = heapq.heappop(heap)
            hold = self._open.get(ident)
            if hold is None or hold.expires != expires:
                continue  # settled, or renewed since (a later entry stands for it)
            self._drop(ident)
            self._expired.add(ident)
            dropped = True
        return dropped

    def _retry_in(self) -> float | None:
        """Seconds until the earliest hold expires unless renewed (lock held)."""
        heap = self._expiry
        while heap:
            expires, ident = heap[0]
            hold = self._open.get(ident)
            if hold is not None and hold.expires == expires:
                return expires - self._clock.now()
            heapq.heappop(heap)
        return None

    def reserve(self, amount: Decimal, buckets: Sequence[Bucket]) -> Reservation | Refusal:
        """Hold ``amount`` in every bucket at once, or refuse (counted as a refused call)."""
        return self._attempt(amount, buckets, final=True)

    def _attempt(
        self, amount: Decimal, buckets: Sequence[Bucket], *, final: bool
    ) -> Reservation | Refusal:
        with self._lock:
            dropped = self._expire()
            refusal = refusal_for(
                buckets,
                lambda key: self._spent.get(key, _ZERO),
                lambda key: self._reserved.get(key, _ZERO),
                amount,
            )
            if refusal is None:
                for bucket in buckets:
                    self._reserved[bucket.key] = _CONTEXT.add(
                        self._reserved.get(bucket.key, _ZERO), amount
                    )
                ident = next(self._ids)
                expires = self._clock.now() + self.hold_lease
                self._open[ident] = _Hold(amount, tuple(buckets), expires)
                heapq.heappush(self._expiry, (expires, ident))
                outcome: Reservation | Refusal = Reservation(
                    ident, amount, tuple(buckets), self._generation
                )
            else:
                if final or not refusal.held_only:
                    self._refused += 1
                if refusal.held_only:
                    refusal = dataclasses.replace(refusal, retry_in=self._retry_in())
                outcome = refusal
        if dropped:
            self._waiters.wake_all()
        if isinstance(outcome, Reservation):
            self._renewer.add(_hold_key(outcome), outcome)
        return outcome

    def renew(self, reservations: Sequence[Reservation]) -> None:
        """Push these holds' expiry to ``hold_lease`` from now; settled or expired are skipped."""
        with self._lock:
            expires = self._clock.now() + self.hold_lease
            for reservation in reservations:
                if reservation.generation != self._generation:
                    continue
                hold = self._open.get(reservation.id)
                if hold is not None and expires > hold.expires:
                    hold.expires = expires
                    heapq.heappush(self._expiry, (expires, reservation.id))

    def _drop(self, ident: int) -> None:
        """Remove an open hold from its buckets (lock held)."""
        hold = self._open.pop(ident)
        for bucket in hold.buckets:
            left = _CONTEXT.subtract(self._reserved.get(bucket.key, _ZERO), hold.amount)
            if left > 0:
                self._reserved[bucket.key] = left
            else:
                self._reserved.pop(bucket.key, None)

    def _unhold(self, reservation: Reservation, action: str) -> None:
        """Drop a hold (lock held). A hold from before ``reset()`` is already gone.

        A hold whose lease ran out was dropped already: its call still settles (charged once),
        like on the Redis ledger.
        """
        if reservation.generation != self._generation:
            return
        if reservation.id in self._open:
            self._drop(reservation.id)
        elif reservation.id in self._expired:
            self._expired.discard(reservation.id)
        else:
            raise RuntimeError(
                f"reservation {reservation.id} was already settled or released; cannot {action} "
                "it again (a call must be charged once)"
            )

    def settle(self, reservation: Reservation, record: CostRecord) -> list[BucketChange]:
        """Swap the hold for the record's cost (an unknown cost charges nothing)."""
        self._renewer.discard(_hold_key(reservation))
        with self._lock:
            self._unhold(reservation, "settle")
            changes = self._charge(record, reservation.buckets)
        self._waiters.wake_all()
        return changes

    def release(self, reservation: Reservation) -> None:
        """Drop the hold; nothing is recorded."""
        self._renewer.discard(_hold_key(reservation))
        with self._lock:
            self._unhold(reservation, "release")
        self._waiters.wake_all()

    def add(self, record: CostRecord, buckets: Sequence[Bucket] = ()) -> list[BucketChange]:
        """Record a call without a reservation."""
        with self._lock:
            return self._charge(record, buckets)

    def _listen(self, wake: _Wake) -> bool:
        self._waiters.add(wake)
        return True

    def _unlisten(self, wake: _Wake) -> None:
        self._waiters.discard(wake)

    def _charge(self, record: CostRecord, buckets: Iterable[Bucket]) -> list[BucketChange]:
        amount = record.cost.total if record.cost.total is not None else _ZERO
        changes: list[BucketChange] = []
        for bucket in buckets:
            before = self._spent.get(bucket.key, _ZERO)
            after = _CONTEXT.add(before, amount)
            self._spent[bucket.key] = after
            changes.append(BucketChange(bucket, before, after))
        self._records.append(record)
        self._total.add(record)
        self._group(self._by_model, record.key).add(record)
        for tag in dict.fromkeys(record.tags):
            self._group(self._by_tag, tag).add(record)
        for period, key in period_keys(record.time).items():
            self._group(self._by_period[period], key).add(record)
        self._by_status[record.status] = self._by_status.get(record.status, 0) + 1
        return changes

    @staticmethod
    def _group(groups: dict[str, _Group], key: str) -> _Group:
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        return group

    # --- reading ---------------------------------------------------------------------------

    def records(self) -> list[CostRecord]:
        """The kept records, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def summary(self) -> dict[str, Any]:
        """Exact totals: ``Decimal`` USD, ``None`` for a group whose every call is unpriced.

        Keys: ``total_cost``, ``calls``, ``unpriced_calls``, ``estimated_calls``,
        ``refused_calls``, ``error_calls``, ``cancelled_calls``, ``reserved_cost`` (held by calls in
        flight), the token totals, ``by_model`` / ``by_tag`` (``{key: group}``) and
        ``by_period`` (``{"hour"|"day"|"month": {period: group}}``), each group shaped like
        ``{"calls", "cost", "unpriced_calls", "estimated_calls", "input_tokens", …}``.
        """
        with self._lock:
            dropped = self._expire()
            total = self._total.as_dict()
            reserved = _ZERO
            for hold in self._open.values():
                reserved = _CONTEXT.add(reserved, hold.amount)
            summary: dict[str, Any] = {
                "total_cost": self._total.cost,
                "calls": total["calls"],
                "unpriced_calls": total["unpriced_calls"],
                "estimated_calls": total["estimated_calls"],
                "refused_calls": self._refused,
                "error_calls": self._by_status.get("error", 0),
                "cancelled_calls": self._by_status.get("cancelled", 0),
                "in_flight_calls": len(self._open),
                "reserved_cost": reserved,
                "input_tokens": total["input_tokens"],
                "output_tokens": total["output_tokens"],
                "cached_input_tokens": total["cached_input_tokens"],
                "cache_write_tokens": total["cache_write_tokens"],
                "reasoning_tokens": total["reasoning_tokens"],
                "by_model": {k: g.as_dict() for k, g in sorted(self._by_model.items())},
                "by_tag": {k: g.as_dict() for k, g in sorted(self._by_tag.items())},
                "by_period": {
                    p: {k: g.as_dict() for k, g in sorted(groups.items())}
                    for p, groups in self._by_period.items()
                },
            }
        if dropped:
            self._waiters.wake_all()
        return summary

    def bucket_usage(self, keys: Iterable[str]) -> dict[str, tuple[Decimal, Decimal]]:
        """``{key: (committed, reserved)}``; unknown keys are ``(0, 0)``."""
        with self._lock:
            dropped = self._expire()
            usage = {k: (self._spent.get(k, _ZERO), self._reserved.get(k, _ZERO)) for k in keys}
        if dropped:
            self._waiters.wake_all()
        return usage

    def reset(self) -> None:
        """Start over; calls still in flight settle into the new totals without a hold."""
        with self._lock:
            self._generation += 1
            self._clear()
        self._waiters.wake_all()
