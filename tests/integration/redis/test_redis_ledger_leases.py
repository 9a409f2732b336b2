"""Budget holds are leases, on a real redis-server: a SIGKILLed worker frees its budget.

Also the wait for room: a call refused only because of other calls' holds waits for them to
settle, woken through pub/sub by a settlement in another ledger instance (another worker).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import ledger_workers
import pytest
import redis

from llm_routing.cost import Budget, CostRecord, Refusal, Reservation
from llm_routing.cost.pricing import Cost, TokenUsage
from llm_routing.cost.redis_ledger import RedisLedger

WHEN = datetime(2025, 6, 1, 13, 30, tzinfo=UTC)
LEASE = 2.0  # short, so the test takes seconds; the renewal runs every third of it


def _record(cost: D) -> CostRecord:
    return CostRecord(
        time=WHEN,
        provider="fake",
        model="fake-model",
        tokens=TokenUsage(input=1),
        cost=Cost(cost, D(0), D(0), D(0), D(0), cost),
    )


def _redis_time(client: Any) -> float:
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6


@pytest.fixture
def prefix() -> str:
    return f"lease-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ledgers(redis_server: Any, prefix: str) -> Iterator[list[RedisLedger]]:
    built: list[RedisLedger] = []
    yield built
    if built:
        built[0].reset()
    for ledger in built:
        ledger.close()


@pytest.mark.slow
def test_a_sigkilled_worker_frees_its_budget_hold_within_the_lease(redis_server, prefix, ledgers):
    raw = redis.Redis.from_url(redis_server.url)
    expiry = f"{prefix}:{{ledger}}:expiry"
    budget = D("0.11")  # the worker's call holds $0.1008: no room for another $0.01
    bucket = Budget(budget).bucket(WHEN)
    context = multiprocessing.get_context("spawn")
    started = context.Queue()
    worker = context.Process(
        target=ledger_workers.call_and_hang,
        args=(redis_server.url, prefix, LEASE, float(budget), started),
    )
    worker.start()
    try:
        assert started.get(timeout=120) == "in flight"
        ledger = RedisLedger(redis_server.url, prefix=prefix)
        ledgers.append(ledger)
        [(hold_id, first_expiry)] = raw.zrange(expiry, 0, -1, withscores=True)
        held = ledger.bucket_usage([bucket.key])[bucket.key][1]
        assert held == D("0.1008")
        # While the worker lives, it renews: its hold outlives the lease it was taken with.
        deadline = time.monotonic() + 60
        while _redis_time(raw) <= first_expiry + LEASE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _redis_time(raw) > first_expiry + LEASE
        assert ledger.bucket_usage([bucket.key])[bucket.key][1] == held
        assert raw.zscore(expiry, hold_id) > first_expiry
        refused = ledger.reserve(D("0.01"), [bucket])
        assert isinstance(refused, Refusal) and refused.held_only

        os.kill(worker.pid, signal.SIGKILL)
        worker.join(30)
        killed_at = _redis_time(raw)
        assert worker.exitcode == -signal.SIGKILL
        # Nobody renews it now: it expires at most one lease after the kill (Redis time).
        last_expiry = raw.zscore(expiry, hold_id)
        assert last_expiry is not None
        assert last_expiry - killed_at <= LEASE
        # A caller waiting for room gets it when the lease runs out (nothing announces that:
        # the waiter wakes at the hold's expiry, which the refusal told it).
        outcome = ledger.reserve_within(D("0.01"), [bucket], timeout=10 * LEASE)
        freed_after = _redis_time(raw) - killed_at
        print(f"budget hold of the SIGKILLed worker freed {freed_after:.2f}s after the kill")
        assert isinstance(outcome, Reservation)
        assert raw.zscore(expiry, hold_id) is None
        ledger.release(outcome)
        assert ledger.bucket_usage([bucket.key])[bucket.key] == (D(0), D(0))
        assert ledger.summary()["in_flight_calls"] == 0
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join(30)
        raw.close()


def test_a_settlement_in_another_worker_wakes_a_waiting_caller(redis_server, prefix, ledgers):
    ours = RedisLedger(redis_server.url, prefix=prefix)
    theirs = RedisLedger(redis_server.url, prefix=prefix)
    ledgers += [ours, theirs]
    bucket = Budget(D("1")).bucket(WHEN)
    hold = theirs.reserve(D("0.9"), [bucket])
    assert isinstance(hold, Reservation)
    got: list[Reservation | Refusal] = []
    waiter = threading.Thread(
        target=lambda: got.append(ours.reserve_within(D("0.5"), [bucket], timeout=120))
    )
    waiter.start()
    # Settle once the waiter is listening (the subscriber thread is its sign of life).
    deadline = time.monotonic() + 60
    while ours._subscriber is None and time.monotonic() < deadline:
        time.sleep(0.01)
    theirs.settle(hold, _record(D("0.3")))
    waiter.join(120)
    [outcome] = got
    assert isinstance(outcome, Reservation)
    assert ours.bucket_usage([bucket.key])[bucket.key] == (D("0.3"), D("0.5"))
    ours.release(outcome)
    summary = ours.summary()
    assert (summary["refused_calls"], summary["calls"]) == (0, 1)
    # The listener leaves once nobody waits: no thread lingers.
    deadline = time.monotonic() + 60
    while ours._subscriber is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ours._subscriber is None


async def test_an_async_waiter_is_woken_by_another_worker_release(redis_server, prefix, ledgers):
    ours = RedisLedger(redis_server.url, prefix=prefix)
    theirs = RedisLedger(redis_server.url, prefix=prefix)
    ledgers += [ours, theirs]
    bucket = Budget(D("1")).bucket(WHEN)
    hold = theirs.reserve(D("0.9"), [bucket])
    assert isinstance(hold, Reservation)
    waiting = asyncio.create_task(ours.areserve_within(D("0.5"), [bucket], timeout=120))
    while ours._subscriber is None:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(theirs.release, hold)
    outcome = await asyncio.wait_for(waiting, 120)
    assert isinstance(outcome, Reservation)
    ours.release(outcome)


def test_settled_spend_refuses_at_once_and_counts_once(redis_server, prefix, ledgers):
    ledger = RedisLedger(redis_server.url, prefix=prefix)
    ledgers.append(ledger)
    bucket = Budget(D("1")).bucket(WHEN)
    ledger.add(_record(D("0.8")), [bucket])
    outcome = ledger.reserve_within(D("0.3"), [bucket], timeout=3600)
    assert isinstance(outcome, Refusal)
    assert (outcome.held_only, outcome.waited, outcome.spent) == (False, 0.0, D("0.8"))
    assert ledger._subscriber is None  # never listened: nothing to wait for
    assert ledger.summary()["refused_calls"] == 1


def test_a_wait_that_runs_out_is_counted_once_with_its_reason(redis_server, prefix, ledgers):
    ledger = RedisLedger(redis_server.url, prefix=prefix)
    ledgers.append(ledger)
    bucket = Budget(D("1")).bucket(WHEN)
    hold = ledger.reserve(D("0.9"), [bucket])
    outcome = ledger.reserve_within(D("0.5"), [bucket], timeout=0.2)
    assert isinstance(outcome, Refusal)
    assert outcome.held_only and outcome.waited >= 0.2
    assert (outcome.spent, outcome.reserved) == (D(0), D("0.9"))
    assert ledger.summary()["refused_calls"] == 1
    assert isinstance(hold, Reservation)
    ledger.release(hold)
