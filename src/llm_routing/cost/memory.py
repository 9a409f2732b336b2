"""The in-process ledger: reservations, spend, totals and records of this process.

Owns `MemoryLedger`, the `Ledger` of ``cost.ledger`` behind one lock held only for arithmetic
and dict updates; its summaries are read from running totals (``cost._totals``), its records
kept compact (``cost._compact``). Holds are leased like the Redis ledger's, so both drop a
forgotten hold the same way.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import sys
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from llm_routing.cost._compact import EPOCH, HOUR, Interned, Row, pack_fields, unpack
from llm_routing.cost._holds import OpenHold, refusal_for
from llm_routing.cost._totals import TOKEN_KEYS, Cells, Group, count_call, group_in
from llm_routing.cost._waiting import Waiters, Wake, check_lease, hold_key, lease_renewer
from llm_routing.cost.budget import Bucket, BucketChange, period_keys
from llm_routing.cost.ledger import (
    _CONTEXT,
    _SYSTEM_CLOCK,
    _ZERO,
    DEFAULT_HOLD_LEASE,
    DEFAULT_MAX_RECORDS,
    CostRecord,
    Ledger,
    Refusal,
    Reservation,
)
from llm_routing.cost.record import Fields, _record, fields_of, fields_total
from llm_routing.schedule.clock import Clock

__all__ = ["MemoryLedger"]

_PENDING_KEPT = 64
"""Records charged but not yet packed (`MemoryLedger._flush`): at most this many."""


class MemoryLedger(Ledger):
    """The in-process ledger: one lock, held only for arithmetic and dict updates.

    Keeps the newest ``max_records`` records (``None``: all); the totals, by-model, by-tag and
    by-period summaries always cover every call since the last ``reset()``. Holds are leased
    like the Redis ledger's (``hold_lease`` seconds, renewed while their `Reservation` lives),
    so both drop a forgotten hold the same way; ``clock`` (a ``llm_routing.schedule`` clock,
    e.g. ``VirtualClock``) times leases and waits.
    """

    blocks = False  # one lock held for arithmetic: the event loop may call it

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
        self.hold_lease = check_lease(hold_lease, "MemoryLedger")
        self._clock: Clock = clock if clock is not None else _SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._generation = 0
        self._waiters = Waiters()
        self._renewer = lease_renewer(self.renew, self.hold_lease, "llm_routing-ledger-leases")
        self._clear()

    def _clear(self) -> None:
        self._spent: dict[str, Decimal] = {}
        self._reserved: dict[str, Decimal] = {}
        self._open: dict[int, OpenHold] = {}
        self._expiry: list[tuple[float, int]] = []  # (expires, id); stale entries skipped
        self._expired: set[int] = set()
        self._records: deque[Row] = deque(maxlen=self.max_records)
        self._interned = Interned()
        self._total = Group()
        self._by_model: dict[str, Group] = {}
        self._by_tag: dict[str, Group] = {}
        self._by_period: dict[str, dict[str, Group]] = {"hour": {}, "day": {}, "month": {}}
        self._by_status: dict[str, int] = {}
        self._cells = Cells()
        self._refused = 0
        self._pending: list[Fields] = []  # charged, not yet packed nor counted

    def __repr__(self) -> str:
        with self._lock:
            self._flush()
            self._fold()
            calls = self._total.calls
        return f"MemoryLedger(calls={calls}, max_records={self.max_records})"

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
                self._open[ident] = OpenHold(amount, tuple(buckets), expires)
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
            self._renewer.add(hold_key(outcome), outcome)
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
        self._renewer.discard(hold_key(reservation))
        with self._lock:
            self._unhold(reservation, "settle")
            changes = self._charge(fields_of(record), reservation.buckets)
        self._waiters.wake_all()
        return changes

    def release(self, reservation: Reservation) -> None:
        """Drop the hold; nothing is recorded."""
        self._renewer.discard(hold_key(reservation))
        with self._lock:
            self._unhold(reservation, "release")
        self._waiters.wake_all()

    def add(self, record: CostRecord, buckets: Sequence[Bucket] = ()) -> list[BucketChange]:
        """Record a call without a reservation."""
        with self._lock:
            return self._charge(fields_of(record), buckets)

    def add_fields(self, fields: Fields) -> list[BucketChange]:
        """`add` of a tracker's call without a budget, as its record's `Fields`.

        The `CostRecord` itself is built only if someone reads it (`records`).
        """
        with self._lock:
            return self._charge(fields, ())

    def _listen(self, wake: Wake) -> bool:
        self._waiters.add(wake)
        return True

    def _unlisten(self, wake: Wake) -> None:
        self._waiters.discard(wake)

    def _charge(self, fields: Fields, buckets: Iterable[Bucket]) -> list[BucketChange]:
        changes: list[BucketChange] = []
        for bucket in buckets:  # only a budget needs the cost now (a record prices when read)
            amount = fields_total(fields)
            amount = _ZERO if amount is None else amount
            before = self._spent.get(bucket.key, _ZERO)
            after = _CONTEXT.add(before, amount)
            self._spent[bucket.key] = after
            changes.append(BucketChange(bucket, before, after))
        pending = self._pending
        pending.append(fields)
        if len(pending) >= _PENDING_KEPT:
            self._flush()
        return changes

    def _flush(self) -> None:
        """Pack the pending records and count them in their cells (lock held).

        A call's money (its buckets' spend) is charged at once; its record is packed and
        counted here, a batch at a time, and before anything reads records or totals. One loop
        over a batch runs the same code as one call per record, on a warm cache: in a
        decorated call, between a model's callbacks, the same work takes twice as long.
        """
        pending = self._pending
        if not pending:
            return
        self._pending = []
        interned, keep, cells = self._interned, self.max_records != 0, self._cells
        append = self._records.append
        for fields in pending:
            row = pack_fields(fields, interned)
            if keep:
                append(row)
            micros, who, tokens, extra = row[0], row[1], row[2], row[5]
            total = fields_total(fields)
            if type(micros) is int:  # a UTC time: counted in its cell, folded when read
                tags = extra[2] if extra is not None else ()
                if cells.count(who, micros, tags, total, fields[5], tokens):
                    self._fold()
            else:
                record = _record(*fields)
                self._count(record.key, record.tags, record.time, record.status, fields)

    def _fold(self) -> None:
        """Add the cells' calls to the summary's groups (lock held)."""
        for ((provider, model, _, status), hour, tags), cell in self._cells.take():
            self._count(f"{provider}:{model}", tags, EPOCH + hour * HOUR, status, cell)

    def _count(
        self,
        key: str,
        tags: Iterable[str],
        when: datetime,
        status: str,
        calls: Group | Fields,
    ) -> None:
        """Count ``calls`` (one cell, or one record) in every group they belong to (lock held)."""
        groups = [self._total, group_in(self._by_model, key)]
        groups += [group_in(self._by_tag, tag) for tag in dict.fromkeys(tags)]
        groups += [
            group_in(self._by_period[period], period_key)
            for period, period_key in period_keys(when).items()
        ]
        if isinstance(calls, Group):
            for group in groups:
                group.merge(calls)
            self._by_status[status] = self._by_status.get(status, 0) + calls.calls
        else:
            count_call(groups, fields_total(calls), calls[5], calls[3])
            self._by_status[status] = self._by_status.get(status, 0) + 1

    # --- reading ---------------------------------------------------------------------------

    def records(self) -> list[CostRecord]:
        """The kept records, oldest first (a copy)."""
        with self._lock:
            self._flush()
            rows = list(self._records)
        return [unpack(row) for row in rows]

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
            self._flush()
            self._fold()
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
                **{key: total[key] for key in TOKEN_KEYS},
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
