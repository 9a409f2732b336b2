"""A redis-server restarted without persistence: the ledger and the scheduler notice the loss.

Each test runs its own redis-server (``own_redis``: no AOF, no RDB) and kills it, so the
restart is the real thing: the server comes back empty on the same port.
"""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
import redis

from llm_routing.cost import Budget, CostRecord, Refusal, Reservation
from llm_routing.cost.pricing import Cost, TokenUsage
from llm_routing.cost.redis_ledger import (
    RedisLedger,
    RedisLedgerStateLostError,
    RedisLedgerStateLostWarning,
    RedisLedgerUnavailableError,
)
from llm_routing.schedule.policy import RateLimits, Request
from llm_routing.schedule.redis import RedisBackend, RedisUnavailableError, RedisUnavailableWarning

WHEN = datetime(2025, 6, 1, 13, 30, tzinfo=UTC)
BUDGET = Budget(D("1"))
DAY = Budget(D("1"), period="day")


def _record(cost: D) -> CostRecord:
    return CostRecord(
        time=WHEN,
        provider="fake",
        model="fake-model",
        tokens=TokenUsage(input=7, output=5),
        cost=Cost(cost, D(0), D(0), D(0), D(0), cost),
        estimated=False,
        status="ok",
    )


def _ledger(url: str, prefix: str, **kwargs):
    return RedisLedger(url, prefix=prefix, socket_timeout=0.5, **kwargs)


def test_a_first_use_is_not_a_loss_and_the_epoch_never_expires(own_redis):
    raw = redis.Redis.from_url(own_redis.url, decode_responses=True)
    prefix = f"first-{uuid.uuid4().hex[:6]}"
    # A ledger that predates the epoch key (data but no epoch) is not a loss either.
    raw.hset(f"{prefix}:{{ledger}}:spent", "total", str(400_000_000_000))  # $0.40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ledger = _ledger(own_redis.url, prefix)
        hold = ledger.reserve(D("0.5"), [BUDGET.bucket(WHEN)])
        assert isinstance(hold, Reservation)
        assert isinstance(ledger.reserve(D("0.2"), [BUDGET.bucket(WHEN)]), Refusal)
        other = _ledger(own_redis.url, prefix)
        assert other.bucket_usage(["total"]) == {"total": (D("0.4"), D("0.5"))}
    assert raw.get(ledger.epoch_key)
    assert raw.ttl(ledger.epoch_key) == -1  # no expiry: only a loss removes it
    ledger.close()
    other.close()
    raw.close()


def test_fail_closed_refuses_every_worker_until_the_spend_is_re_seeded(own_redis, caplog):
    prefix = f"fail-{uuid.uuid4().hex[:6]}"
    ledger = _ledger(own_redis.url, prefix)
    buckets = [BUDGET.bucket(WHEN), DAY.bucket(WHEN)]
    ledger.add(_record(D("0.9")), buckets)
    hold = ledger.reserve(D("0.05"), buckets)
    assert isinstance(hold, Reservation)
    own_redis.restart()

    with pytest.raises(RedisLedgerStateLostError) as lost:
        ledger.reserve(D("0.05"), buckets)
    message = str(lost.value)
    assert isinstance(lost.value, RedisLedgerUnavailableError)  # caught where outages are
    for named in (
        "restart without persistence",
        ledger.epoch_key,
        "'total'",
        "'day:2025-06-01'",
        "spent totals",
        "AOF or RDB",
        "acknowledge_loss",
    ):
        assert named in message
    assert "lost the shared budget ledger" in caplog.text  # logged once, too
    # A worker started after the restart never saw the old epoch; the tombstone tells it.
    late = _ledger(own_redis.url, prefix)
    with pytest.raises(RedisLedgerStateLostError):
        late.reserve(D("0.05"), buckets)
    # The call in flight during the restart still settles: charged, its lost hold ignored.
    ledger.settle(hold, _record(D("0.04")))
    assert ledger.bucket_usage(["total"]) == {"total": (D("0.04"), D(0))}

    # The operator re-seeds what was spent before the loss; every worker resumes on it.
    late.acknowledge_loss(spent={"total": D("0.9"), "day:2025-06-01": "0.9"})
    assert ledger.bucket_usage(["total"]) == {"total": (D("0.94"), D(0))}
    refusal = ledger.reserve(D("0.1"), buckets)
    assert isinstance(refusal, Refusal) and not refusal.held_only  # nothing over budget
    resumed = ledger.reserve(D("0.05"), buckets)
    assert isinstance(resumed, Reservation)
    ledger.release(resumed)
    ledger.close()
    late.close()


def test_reset_acknowledges_a_loss(own_redis):
    prefix = f"reset-{uuid.uuid4().hex[:6]}"
    ledger = _ledger(own_redis.url, prefix)
    other = _ledger(own_redis.url, prefix)
    assert isinstance(other.reserve(D("0.1"), [BUDGET.bucket(WHEN)]), Reservation)
    ledger.reserve(D("0.1"), [BUDGET.bucket(WHEN)])
    own_redis.restart()
    with pytest.raises(RedisLedgerStateLostError):
        ledger.reserve(D("0.1"), [BUDGET.bucket(WHEN)])
    ledger.reset()
    assert isinstance(ledger.reserve(D("0.1"), [BUDGET.bucket(WHEN)]), Reservation)
    assert isinstance(other.reserve(D("0.1"), [BUDGET.bucket(WHEN)]), Reservation)
    ledger.close()
    other.close()


def test_warn_carries_on_from_zero_warning_once_and_naming_what_was_lost(own_redis):
    prefix = f"warn-{uuid.uuid4().hex[:6]}"
    ledger = _ledger(own_redis.url, prefix, on_state_lost="warn")
    bucket = BUDGET.bucket(WHEN)
    ledger.add(_record(D("0.9")), [bucket])
    assert isinstance(ledger.reserve(D("0.2"), [bucket]), Refusal)
    old = ledger.reserve(D("0.05"), [bucket])
    assert isinstance(old, Reservation)
    own_redis.restart()
    with pytest.warns(RedisLedgerStateLostWarning) as caught:
        fresh = ledger.reserve(D("0.2"), [bucket])
    assert isinstance(fresh, Reservation)  # $0 spent now: what the warning is about
    assert len(caught) == 1
    text = str(caught[0].message)
    for named in ("restart without persistence", "spent totals", "'total'", "AOF or RDB"):
        assert named in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per loss
        again = ledger.reserve(D("0.2"), [bucket])
        # A hold from before the restart has the same id as a new one; it must not drop it.
        assert old.id in (fresh.id, again.id)
        ledger.release(old)
    assert ledger.bucket_usage(["total"]) == {"total": (D(0), D("0.4"))}
    ledger.close()


def test_the_scheduler_warns_that_its_windows_were_lost(own_redis):
    limits = RateLimits(rpm=100_000)
    backend = RedisBackend(
        own_redis.url,
        prefix=f"s-{uuid.uuid4().hex[:6]}",
        socket_timeout=0.5,
        retry_interval_s=0.01,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend.now()  # first use: the epoch is noted, no warning
        assert backend.try_acquire("m", limits, Request(10, 10), "r1").admit
    own_redis.stop()
    with pytest.raises(RedisUnavailableError):
        backend.try_acquire("m", limits, Request(10, 10), "r2")
    own_redis.start()
    with pytest.warns(RedisUnavailableWarning) as caught:
        while True:  # until the retry interval has passed and Redis answers again
            try:
                backend.try_acquire("m", limits, Request(10, 10), "r3")
                break
            except RedisUnavailableError:
                continue
    text = " ".join(str(w.message) for w in caught)
    assert "lost the shared rate-limit windows" in text and "AOF or RDB" in text
    backend.close()
