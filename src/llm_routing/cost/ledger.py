"""The ledger: where reservations, spend and cost records live, behind a small interface.

Owns `CostRecord`, the `Ledger` interface (reserve, settle, release, add, records, summary) and
`MemoryLedger`, the in-process implementation. A shared (Redis) ledger implements the same
interface with atomic scripts. Pricing is ``cost.pricing``; what a budget is, ``cost.budget``.
"""

from __future__ import annotations

import decimal
import itertools
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from llm_routing.cost.budget import Bucket, BucketChange, first_exceeded, period_keys
from llm_routing.cost.pricing import Cost, TokenUsage

__all__ = [
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


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one call in flight, in the buckets its budgets name."""

    id: int
    amount: Decimal
    buckets: tuple[Bucket, ...]
    generation: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused: the bucket, its spend, what was asked."""

    bucket: Bucket
    spent: Decimal
    reserved: Decimal
    requested: Decimal


class Ledger(ABC):
    """Where a tracker keeps money: reservations, committed spend per bucket, and records.

    Every method is atomic with respect to the others (one lock in memory, one script in
    Redis), so N callers reserving at once can never together pass a limit.
    """

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


class MemoryLedger(Ledger):
    """The in-process ledger: one lock, held only for arithmetic and dict updates.

    Keeps the newest ``max_records`` records (``None``: all); the totals, by-model, by-tag and
    by-period summaries always cover every call since the last ``reset()``.
    """

    def __init__(self, max_records: int | None = DEFAULT_MAX_RECORDS) -> None:
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
        self.max_records = max_records
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._generation = 0
        self._clear()

    def _clear(self) -> None:
        self._spent: dict[str, Decimal] = {}
        self._reserved: dict[str, Decimal] = {}
        self._open: dict[int, Reservation] = {}
        self._records: deque[CostRecord] = deque(maxlen=self.max_records)
        self._total = _Group()
        self._by_model: dict[str, _Group] = {}
        self._by_tag: dict[str, _Group] = {}
        self._by_period: dict[str, dict[str, _Group]] = {"hour": {}, "day": {}, "month": {}}
        self._by_status: dict[str, int] = {}
        self._refused = 0

    def __repr__(self) -> str:
        return f"MemoryLedger(calls={self._total.calls}, max_records={self.max_records})"

    # --- money -----------------------------------------------------------------------------

    def _used(self, key: str) -> Decimal:
        return _CONTEXT.add(self._spent.get(key, _ZERO), self._reserved.get(key, _ZERO))

    def reserve(self, amount: Decimal, buckets: Sequence[Bucket]) -> Reservation | Refusal:
        """Hold ``amount`` in every bucket at once, or refuse (counted as a refused call)."""
        with self._lock:
            over = first_exceeded(buckets, self._used, amount)
            if over is not None:
                self._refused += 1
                return Refusal(
                    bucket=over,
                    spent=self._spent.get(over.key, _ZERO),
                    reserved=self._reserved.get(over.key, _ZERO),
                    requested=amount,
                )
            for bucket in buckets:
                self._reserved[bucket.key] = _CONTEXT.add(
                    self._reserved.get(bucket.key, _ZERO), amount
                )
            reservation = Reservation(next(self._ids), amount, tuple(buckets), self._generation)
            self._open[reservation.id] = reservation
            return reservation

    def _unhold(self, reservation: Reservation, action: str) -> None:
        """Drop a hold (lock held). A hold from before ``reset()`` is already gone."""
        if reservation.generation != self._generation:
            return
        if self._open.pop(reservation.id, None) is None:
            raise RuntimeError(
                f"reservation {reservation.id} was already settled or released; cannot {action} "
                "it again (a call must be charged once)"
            )
        for bucket in reservation.buckets:
            left = _CONTEXT.subtract(self._reserved.get(bucket.key, _ZERO), reservation.amount)
            if left > 0:
                self._reserved[bucket.key] = left
            else:
                self._reserved.pop(bucket.key, None)

    def settle(self, reservation: Reservation, record: CostRecord) -> list[BucketChange]:
        """Swap the hold for the record's cost (an unknown cost charges nothing)."""
        with self._lock:
            self._unhold(reservation, "settle")
            return self._charge(record, reservation.buckets)

    def release(self, reservation: Reservation) -> None:
        """Drop the hold; nothing is recorded."""
        with self._lock:
            self._unhold(reservation, "release")

    def add(self, record: CostRecord, buckets: Sequence[Bucket] = ()) -> list[BucketChange]:
        """Record a call without a reservation."""
        with self._lock:
            return self._charge(record, buckets)

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
            total = self._total.as_dict()
            reserved = _ZERO
            for reservation in self._open.values():
                reserved = _CONTEXT.add(reserved, reservation.amount)
            return {
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

    def bucket_usage(self, keys: Iterable[str]) -> dict[str, tuple[Decimal, Decimal]]:
        """``{key: (committed, reserved)}``; unknown keys are ``(0, 0)``."""
        with self._lock:
            return {k: (self._spent.get(k, _ZERO), self._reserved.get(k, _ZERO)) for k in keys}

    def reset(self) -> None:
        """Start over; calls still in flight settle into the new totals without a hold."""
        with self._lock:
            self._generation += 1
            self._clear()
