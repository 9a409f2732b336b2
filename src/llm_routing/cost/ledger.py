"""The ledger contract: what a call costs (`CostRecord`), what it holds, and where money lives.

Owns `CostRecord`, `Reservation`, `Refusal`, the `Ledger` interface (reserve, settle, release,
add, records, summary) and the waiting every ledger shares: a call refused only because of
other calls' holds (its own worst case fits beside the settled spend) can wait for them to
settle, `Ledger.reserve_within`. `MemoryLedger` (``cost.memory``) keeps the money in this
process; ``RedisLedger`` (``cost.redis``) in Redis, with atomic scripts. Pricing is
``cost.pricing``; what a budget is, ``cost.budget``.

Holds are leases: each expires ``hold_lease`` seconds after it was taken or last renewed, and
a background thread of the process that took it renews it while its `Reservation` is alive and
unsettled. A process killed mid-call stops renewing, so its holds stop shrinking the budget
within one lease.
"""

from __future__ import annotations

import asyncio
import dataclasses
import decimal
import math
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llm_routing.cost._holds import Refusal, Reservation, refusal_for  # noqa: F401 (re-exported)
from llm_routing.cost._waiting import Wake
from llm_routing.cost.budget import Bucket, BucketChange
from llm_routing.cost.pricing import Cost, TokenUsage
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


class _Epoch(float):
    """A record's time as seconds since the epoch (UTC) until it is first read (`_Time`)."""

    __slots__ = ()


# The time slot itself, under `_Time` below; and the slots' setters for `_record`.
_TIME_SLOT: Any = CostRecord.__dict__["time"]
_RECORD_SLOTS: tuple[Any, ...] = tuple(
    CostRecord.__dict__[f.name].__set__ for f in fields(CostRecord)
)


class _Time:
    """`CostRecord.time`: the ``time`` slot, always read as a ``datetime``.

    The tracker records every call, and most records are packed by the ledger and read
    rarely or never, so it stores the call's start as it got it (an `_Epoch` float) and the
    UTC ``datetime`` is made the first time ``time`` is read, then kept in the slot. Equality,
    ``repr``, ``replace`` and pickling all read ``time``, so they see the ``datetime``; a
    ``time=`` given to the constructor is kept as it is, as before.
    """

    def __get__(self, record: CostRecord | None, owner: type | None = None) -> Any:
        if record is None:
            return self
        value = _TIME_SLOT.__get__(record, owner)
        if type(value) is _Epoch:
            value = datetime.fromtimestamp(value, UTC)
            _TIME_SLOT.__set__(record, value)
        return value

    def __set__(self, record: CostRecord, value: Any) -> None:
        _TIME_SLOT.__set__(record, value)  # the frozen class's __setattr__ still refuses users


setattr(CostRecord, "time", _Time())  # noqa: B010 (mypy keeps reading the field as datetime)


def raw_time(record: CostRecord) -> datetime | float:
    """The time slot as stored: an `_Epoch` float while nobody has read ``record.time``."""
    value: datetime | float = _TIME_SLOT.__get__(record, CostRecord)
    return value


def _record(
    started: datetime | _Epoch,
    provider: str,
    model: str,
    tokens: TokenUsage,
    cost: Cost,
    estimated: bool,
    status: str,
    run_id: str | None,
    parent_run_id: str | None,
    tags: tuple[str, ...],
    metadata: Mapping[str, Any],
    duration_s: float | None,
) -> CostRecord:
    """``CostRecord(...)`` with every field given, built through its slots (see `_Time`).

    A frozen dataclass's constructor sets each of its 12 fields by name through
    ``object.__setattr__`` (about 2 µs); the tracker builds one record per call. ``started``:
    a ``datetime``, or an `_Epoch` (seconds since the epoch), read back as the UTC ``datetime``.
    """
    record = _NEW(CostRecord)
    (s_time, s_provider, s_model, s_tokens, s_cost, s_est, s_status, s_run, s_parent, s_tags,
     s_meta, s_duration) = _RECORD_SLOTS  # fmt: skip
    s_time(record, started)
    s_provider(record, provider)
    s_model(record, model)
    s_tokens(record, tokens)
    s_cost(record, cost)
    s_est(record, estimated)
    s_status(record, status)
    s_run(record, run_id)
    s_parent(record, parent_run_id)
    s_tags(record, tags)
    s_meta(record, metadata)
    s_duration(record, duration_s)
    return record


_NEW = object.__new__


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


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
