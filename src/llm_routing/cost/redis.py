"""The shared ledger: reservations, budget spend, totals and records in Redis, for N workers.

Owns `RedisLedger`'s money operations: the `Ledger` whose every operation is one Lua script
(``cost._redis_script``), so workers on many hosts reserving at once never together pass a
budget. Its connection, epoch and errors (Redis unreachable, Redis lost the ledger) are
``cost._redis_epoch``, re-exported here; the arguments and answers are encoded in
``cost._redis_codec``, the wake-ups of waiters run in ``cost._redis_wakeups``. Pricing and
budget rules stay in ``cost.pricing`` and ``cost.budget``; this module only keeps the money.

Money is held as integer picodollars (1e-12 USD: exact for every catalogue price, which has
at most six decimals per million tokens) and added in the script with two 12-digit limbs, since
Lua numbers are doubles. Reservations round up to the next picodollar, charges half-even.
Holds are leases on Redis ``TIME``: the worker that took one renews it every third of
``hold_lease`` while the call runs, so a killed worker's holds stop shrinking a budget within
one lease. Every dropped hold is published on ``{prefix}:{ledger}:released``, which wakes the
callers of every worker waiting for room (`Ledger.reserve_within`). Records (JSON) sit in a
list capped at ``max_records``; totals cover every call.
"""

from __future__ import annotations

import decimal
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from llm_routing._redis import UNREACHABLE
from llm_routing.cost._redis_codec import charge_args, pico, record_from, summary_from, text, usd
from llm_routing.cost._redis_epoch import (
    RedisConnection,
    RedisLedgerStateLostError,
    RedisLedgerStateLostWarning,
    RedisLedgerUnavailableError,
)
from llm_routing.cost._redis_wakeups import ReleasedListener
from llm_routing.cost._waiting import Waiters, Wake, hold_key, lease_renewer
from llm_routing.cost.budget import Bucket, BucketChange
from llm_routing.cost.ledger import CostRecord, Ledger, Refusal, Reservation

__all__ = [
    "RedisLedger",
    "RedisLedgerStateLostError",
    "RedisLedgerStateLostWarning",
    "RedisLedgerUnavailableError",
]

_log = logging.getLogger(__name__)

# A waiter looks again at least this often: a net under a wake-up lost while the subscriber
# reconnected (settlements are announced; this only bounds the damage of a missed one).
_MAX_PAUSE_S = 2.0


class RedisLedger(RedisConnection, Ledger):
    """A `Ledger` in Redis: N workers share one budget and one set of totals and records.

    ``RedisLedger("redis://localhost:6379/0")`` or ``RedisLedger(client=redis.Redis(...))``,
    then ``CostTracker(budget_usd=5, backend=ledger)`` in every worker. Keys live under
    ``{prefix}:{ledger}:``; they do not expire (a budget lasts until ``reset()``), except
    holds: each is a lease of ``hold_lease`` seconds (30 by default) that this process renews
    every third of it while the call runs, so the holds of a worker killed mid-call are dropped
    within one lease. ``hold_timeout_s`` is the former name of ``hold_lease``.

    When Redis cannot be reached within ``socket_timeout``, ``reserve`` raises
    `RedisLedgerUnavailableError` (no budget check, no call); settling a call already made
    logs a warning instead of raising, and that call's cost is missing from the shared totals.

    A Redis restarted without persistence (AOF or RDB) comes back empty: every budget would
    read $0 spent. Each client remembers the ledger's epoch key, written at its first use and
    never expiring, and a missing or replaced epoch tells it the spend was lost. Then
    ``on_state_lost="fail"`` (the default, like an unreachable Redis) makes ``reserve`` raise
    `RedisLedgerStateLostError` in every worker until someone re-seeds the spend with
    ``acknowledge_loss(spent={...})`` or starts over with ``reset()``; ``"warn"`` emits one
    `RedisLedgerStateLostWarning` naming what was lost and carries on from $0. Calls already
    made still settle (charged, without their lost holds). Workers that all start after the
    wipe cannot tell it from a first use: nothing remembers the old epoch.
    """

    def _start(self) -> None:
        self._renewer = lease_renewer(
            self.renew, self.hold_lease, f"llm_routing-leases-{self.prefix}"
        )
        self._waiters = Waiters()
        self._wakeups = ReleasedListener(
            self._client, self._channel, f"llm_routing-ledger-{self.prefix}", self._waiters
        )

    # --- money -----------------------------------------------------------------------------

    def reserve(self, amount: Decimal, buckets: Sequence[Bucket]) -> Reservation | Refusal:
        """Hold ``amount`` in every bucket in one script, or refuse (counted as refused)."""
        return self._attempt(amount, buckets, final=True)

    def _attempt(
        self, amount: Decimal, buckets: Sequence[Bucket], *, final: bool
    ) -> Reservation | Refusal:
        args = [
            pico(amount, decimal.ROUND_CEILING),
            repr(self.hold_lease),
            "1" if final else "0",
            str(len(buckets)),
        ]
        for bucket in buckets:
            args += [bucket.key, pico(bucket.limit, decimal.ROUND_FLOOR)]
        try:
            raw = self._run("reserve", *args)
        except UNREACHABLE as exc:
            raise self._unreachable(
                exc,
                " Start or reach Redis, or use an in-memory ledger (CostTracker(backend=None)) "
                "for budgets per process.",
            ) from exc
        if int(raw[0]) == -1:
            self._state_lost(buckets, text(raw[1]))
            return self._attempt(amount, buckets, final=final)
        if int(raw[0]) == 0:
            bucket = buckets[int(raw[1]) - 1]
            retry = text(raw[5])
            return Refusal(
                bucket=bucket,
                spent=usd(raw[2]),
                reserved=usd(raw[3]),
                requested=amount,
                held_only=int(raw[4]) == 1,
                retry_in=float(retry) if retry else None,
            )
        reservation = Reservation(int(raw[1]), amount, tuple(buckets), int(raw[2]))
        self._renewer.add(hold_key(reservation), reservation)
        return reservation

    def renew(self, reservations: Sequence[Reservation]) -> None:
        """Push these holds' expiry to ``hold_lease`` from now (Redis time), in one script."""
        if not reservations:
            return
        args = ["renew", repr(self.hold_lease)]
        for reservation in reservations:
            args += [str(reservation.id), str(reservation.generation)]
        self._run(*args)

    def settle(self, reservation: Reservation, record: CostRecord) -> list[BucketChange]:
        """Swap the hold for the record's cost, atomically (an unknown cost charges nothing)."""
        self._renewer.discard(hold_key(reservation))
        return self._charge(record, reservation.buckets, reservation)

    def release(self, reservation: Reservation) -> None:
        """Drop the hold; nothing is recorded."""
        self._renewer.discard(hold_key(reservation))
        try:
            raw = self._run("unhold", str(reservation.id), str(reservation.generation))
        except UNREACHABLE as exc:
            _log.warning("Redis unreachable (%s): hold %s not released", exc, reservation.id)
            return
        if int(raw) == 0:
            raise RuntimeError(
                f"reservation {reservation.id} was already settled or released; cannot release "
                "it again (a call must be charged once)"
            )

    def add(self, record: CostRecord, buckets: Sequence[Bucket] = ()) -> list[BucketChange]:
        """Record a call without a reservation."""
        return self._charge(record, buckets, None)

    def _charge(
        self, record: CostRecord, buckets: Sequence[Bucket], reservation: Reservation | None
    ) -> list[BucketChange]:
        args = charge_args(record, buckets, reservation, self.max_records)
        try:
            raw = self._run("charge", *args)
        except UNREACHABLE as exc:
            _log.warning(
                "Redis unreachable (%s): the cost of a %s call is missing from the shared ledger",
                exc,
                record.key,
            )
            return []
        if int(raw[0]) == -1:
            assert reservation is not None
            raise RuntimeError(
                f"reservation {reservation.id} was already settled or released; cannot settle "
                "it again (a call must be charged once)"
            )
        return [
            BucketChange(bucket, usd(raw[1 + 2 * i]), usd(raw[2 + 2 * i]))
            for i, bucket in enumerate(buckets)
        ]

    # --- reading ---------------------------------------------------------------------------

    def records(self) -> list[CostRecord]:
        """The kept records (the newest ``max_records``), oldest first."""
        return [record_from(item) for item in self._client.lrange(self._root + "records", 0, -1)]

    def summary(self) -> dict[str, Any]:
        """Exact totals over every worker, shaped like `MemoryLedger.summary`."""
        return summary_from(self._run("summary"))

    def bucket_usage(self, keys: Iterable[str]) -> dict[str, tuple[Decimal, Decimal]]:
        """``{key: (committed, reserved)}``; unknown keys are ``(0, 0)``."""
        wanted = list(keys)
        if not wanted:
            return {}
        raw = self._run("usage", *wanted)
        return {k: (usd(raw[2 * i]), usd(raw[2 * i + 1])) for i, k in enumerate(wanted)}

    def reset(self) -> None:
        """Start over for every worker; holds of calls in flight are dropped.

        Starting over also acknowledges a loss of the ledger (every worker resumes).
        """
        self._epoch = text(self._run("reset", uuid.uuid4().hex))
        self._noticed = None

    # --- waiting -------------------------------------------------------------------------

    def _max_pause(self) -> float:
        return _MAX_PAUSE_S

    def _listen(self, wake: Wake) -> bool:
        return self._wakeups.listen(wake)

    def _unlisten(self, wake: Wake) -> None:
        self._wakeups.unlisten(wake)

    @property
    def _subscriber(self) -> threading.Thread | None:
        """The pub/sub thread while someone of this process waits, else ``None``."""
        return self._wakeups.subscriber

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop renewing and listening, and close the client this ledger opened.

        Holds still open stop being renewed: they expire within ``hold_lease``.
        """
        self._wakeups.closing.set()
        self._renewer.close()
        self._wakeups.join()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> RedisLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
