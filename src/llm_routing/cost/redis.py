"""The shared ledger: reservations, budget spend, totals and records in Redis, for N workers.

Owns `RedisLedger` and its errors: the `Ledger` whose every operation is one Lua script
(``cost._redis_script``), so workers on many hosts reserving at once never together pass a
budget. The arguments and answers are encoded in ``cost._redis_codec``, the wake-ups of
waiters run in ``cost._redis_wakeups``, connecting is ``llm_routing._redis``. Pricing and
budget rules stay in ``cost.pricing`` and ``cost.budget``; this module only keeps the money.
Just over 400 lines, kept whole: every operation meets the same three outcomes (answered,
Redis unreachable, Redis lost the ledger) and their handling reads best side by side.

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
import math
import threading
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import redis

from llm_routing._redis import UNREACHABLE, Script, check_prefix, check_target, connect
from llm_routing._urls import redact_url
from llm_routing.cost._redis_codec import (
    charge_args,
    pico,
    record_from,
    summary_from,
    text,
    usd,
)
from llm_routing.cost._redis_script import LEDGER_LUA
from llm_routing.cost._redis_wakeups import ReleasedListener
from llm_routing.cost._waiting import Waiters, Wake, check_lease, hold_key, lease_renewer
from llm_routing.cost.budget import Bucket, BucketChange
from llm_routing.cost.ledger import (
    DEFAULT_HOLD_LEASE,
    DEFAULT_MAX_RECORDS,
    CostRecord,
    Ledger,
    Refusal,
    Reservation,
)
from llm_routing.errors import LLMRoutingError

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


class RedisLedgerUnavailableError(LLMRoutingError, ConnectionError):
    """Redis could not be reached, so a budget could not be checked: the call is refused."""


class RedisLedgerStateLostError(RedisLedgerUnavailableError):
    """Redis lost the ledger (a restart without persistence): its $0 cannot be trusted.

    A subclass of `RedisLedgerUnavailableError` because it means the same to a caller: the
    shared budget cannot be checked, so the call is refused.
    """


class RedisLedgerStateLostWarning(UserWarning):
    """Redis lost the ledger and ``on_state_lost="warn"`` carries on from $0 spent."""


class RedisLedger(Ledger):
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

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "llm_routing",
        max_records: int | None = DEFAULT_MAX_RECORDS,
        hold_lease: float = DEFAULT_HOLD_LEASE,
        socket_timeout: float = 1.0,
        hold_timeout_s: float | None = None,
        on_state_lost: Literal["fail", "warn"] = "fail",
    ) -> None:
        check_target("RedisLedger", url, client)
        check_prefix("RedisLedger", prefix)
        if max_records is not None and (
            isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 0
        ):
            raise ValueError(
                f"RedisLedger(max_records=…) must be an int >= 0 or None (keep all), got "
                f"{max_records!r}"
            )
        if hold_timeout_s is not None:
            if hold_lease != DEFAULT_HOLD_LEASE:
                raise TypeError(
                    "RedisLedger takes hold_lease=… or its former name hold_timeout_s=…, not both"
                )
            warnings.warn(
                "RedisLedger(hold_timeout_s=…) is now hold_lease=… (renewed while a call runs)",
                DeprecationWarning,
                stacklevel=2,
            )
            hold_lease = hold_timeout_s
        if (
            isinstance(socket_timeout, bool)
            or not isinstance(socket_timeout, int | float)
            or not 0 < socket_timeout < math.inf
        ):
            raise ValueError(
                "RedisLedger(socket_timeout=…) must be a finite number of seconds > 0, got "
                f"{socket_timeout!r}"
            )
        if on_state_lost not in ("fail", "warn"):
            raise ValueError(
                "RedisLedger(on_state_lost=…) must be 'fail' (refuse calls once Redis lost the "
                "spend) or 'warn' (warn and carry on from $0), got "
                f"{on_state_lost!r}"
            )
        try:
            self.hold_lease = check_lease(hold_lease, "RedisLedger")
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        self.prefix = prefix
        self.on_state_lost = on_state_lost
        # The epoch this client saw at its first use; None until then.
        self._epoch: str | None = None
        self._noticed: str | None = None
        self.max_records = max_records
        self._url = url
        self._where = redact_url(url) if url is not None else None
        self._owns_client = client is None
        self._client: redis.Redis = (
            client if client is not None else connect(url, float(socket_timeout))  # type: ignore[arg-type]
        )
        self._script = Script(LEDGER_LUA, self._client)
        self._root = f"{prefix}:{{ledger}}:"
        self._channel = self._root + "released"
        self._renewer = lease_renewer(self.renew, self.hold_lease, f"llm_routing-leases-{prefix}")
        self._waiters = Waiters()
        self._wakeups = ReleasedListener(
            self._client, self._channel, f"llm_routing-ledger-{prefix}", self._waiters
        )

    def __repr__(self) -> str:
        where = self._where if self._where is not None else repr(self._client)
        return f"RedisLedger({where!r}, prefix={self.prefix!r})"

    @property
    def hold_timeout_s(self) -> float:
        """The former name of ``hold_lease``."""
        return self.hold_lease

    def _run(self, op: str, *args: str) -> Any:
        if self._epoch is None:
            self._use_epoch("use")
        return self._script([self._root], [op, self._epoch or "", *args])

    def _use_epoch(self, mode: str, *args: str) -> bool:
        """Run the epoch operation and adopt its answer; True when the ledger was lost."""
        raw = self._script(
            [self._root], ["epoch", self._epoch or "", uuid.uuid4().hex, mode, *args]
        )
        self._epoch = text(raw[0])
        return int(raw[1]) == 1

    @property
    def epoch_key(self) -> str:
        """The Redis key whose absence shows that Redis lost this ledger."""
        return self._root + "epoch"

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
            where = self._where if self._where is not None else "the given client"
            raise RedisLedgerUnavailableError(
                f"Redis at {where} is unreachable ({exc}); the shared budget cannot be checked, "
                "so this call is refused. Start or reach Redis, or use an in-memory ledger "
                "(CostTracker(backend=None)) for budgets per process."
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

    def _state_lost(self, buckets: Sequence[Bucket], found: str) -> None:
        """Refuse (``"fail"``), or warn once and carry on from $0 (``"warn"``)."""
        where = self._where if self._where is not None else "the given client"
        named = ", ".join(f"{b.label} [{b.key!r}]" for b in buckets) or "every budget"
        lost = (
            f"Redis at {where} lost the shared budget ledger {self._root!r} (its epoch key "
            f"{self.epoch_key!r} is gone: a restart without persistence, a FLUSHALL or an "
            f"eviction). Lost: the spent totals of {named} and of every other budget, the holds "
            "of calls in flight, the call totals and records; Redis now reads $0 spent"
        )
        first = self._noticed != found
        self._noticed = found
        if self.on_state_lost == "fail":
            if first:
                _log.warning("%s; refusing calls (on_state_lost='fail')", lost)
            raise RedisLedgerStateLostError(
                f"{lost}, so this call is refused rather than let spend pass the budget "
                "(on_state_lost='fail'). Enable AOF or RDB persistence on Redis (appendonly "
                "yes) so budgets survive a restart, then re-seed what was spent and resume: "
                "ledger.acknowledge_loss(spent={bucket key: usd}) (or start over with "
                "ledger.reset()); RedisLedger(on_state_lost='warn') warns and carries on instead."
            )
        try:
            self._use_epoch("carry")
        except UNREACHABLE as exc:
            raise RedisLedgerUnavailableError(
                f"Redis at {where} is unreachable ({exc}); the shared budget cannot be checked, "
                "so this call is refused."
            ) from exc
        if first:
            message = (
                f"{lost}; carrying on from $0 (on_state_lost='warn'), so spend may now pass a "
                "budget by what was lost. Enable AOF or RDB persistence on Redis so budgets "
                "survive a restart."
            )
            _log.warning("%s", message)
            warnings.warn(message, RedisLedgerStateLostWarning, stacklevel=5)

    def acknowledge_loss(self, spent: Mapping[str, Decimal | float | str] | None = None) -> None:
        """Resume every worker after Redis lost the ledger, re-seeding what was spent.

        ``spent`` maps bucket keys (``"total"``, ``"day:2025-06-01"``… as the error named
        them) to the USD spent before the loss, taken from the provider's billing; it is added
        to what was spent since. Every worker adopts the new epoch at its next call.
        """
        args: list[str] = []
        for key, value in (spent or {}).items():
            amount = Decimal(str(value))
            if not isinstance(key, str) or not amount.is_finite() or amount < 0:
                raise ValueError(
                    "RedisLedger.acknowledge_loss(spent=…) maps bucket keys (str) to USD >= 0, "
                    f"got {key!r}: {value!r}"
                )
            args += [key, pico(amount, decimal.ROUND_CEILING)]
        self._use_epoch("ack", *args)
        self._noticed = None

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
