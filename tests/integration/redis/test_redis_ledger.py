"""RedisLedger against a real redis-server: the same answers as MemoryLedger, shared and atomic."""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

import hypothesis.strategies as st
import pytest
import redis_workers
from hypothesis import HealthCheck, given, settings

from llm_routing.cost import Budget, CostRecord, CostTracker, MemoryLedger, Refusal, Reservation
from llm_routing.cost.pricing import Cost, TokenUsage
from llm_routing.cost.redis_ledger import RedisLedger, RedisLedgerUnavailableError
from llm_routing.sim import SimModel, SimulatedProvider
from tests.support.sim import chat

WHEN = datetime(2025, 6, 1, 13, 30, tzinfo=UTC)


def _record(cost, *, tags=(), model="fake-model", estimated=False, status="ok", when=WHEN):
    known = cost is not None
    return CostRecord(
        time=when,
        provider="fake",
        model=model,
        tokens=TokenUsage(input=7, cached_input=3, cache_write=2, output=5, reasoning=1),
        cost=Cost(cost, D(0), D(0), D(0), D(0), cost) if known else Cost.unknown(),
        estimated=estimated,
        status=status,
        run_id="run-1",
        tags=tags,
        metadata={"user": "u1", "n": 3},
        duration_s=0.25,
    )


@pytest.fixture
def ledger(redis_server):
    built = RedisLedger(redis_server.url, prefix=f"led-{uuid.uuid4().hex[:8]}")
    yield built
    built.reset()
    built.close()


def test_url_or_client_is_required_but_not_both():
    with pytest.raises(TypeError, match="exactly one of url"):
        RedisLedger()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prefix": ""}, "prefix"),
        ({"max_records": -1}, "max_records"),
        ({"hold_lease": 0}, "hold_lease"),
        ({"hold_lease": float("inf")}, "hold_lease"),
    ],
)
def test_bad_arguments_name_themselves(redis_server, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RedisLedger(redis_server.url, **kwargs)


records = st.builds(
    _record,
    st.none() | st.sampled_from([D("0.000150"), D("0.0123456789"), D(0), D("1.5")]),
    tags=st.sampled_from([(), ("a",), ("a", "b"), ("b", "b")]),
    model=st.sampled_from(["m1", "m2"]),
    estimated=st.booleans(),
    status=st.sampled_from(["ok", "error", "cancelled"]),
    when=st.sampled_from([WHEN, datetime(2025, 7, 2, 1, tzinfo=UTC)]),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.sampled_from([D("0.001"), D("0.0025"), D("0.4")])),
        st.tuples(st.just("settle"), st.integers(0, 20), records),
        st.tuples(st.just("release"), st.integers(0, 20)),
        st.tuples(st.just("add"), records),
    ),
    max_size=30,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_every_answer_matches_the_memory_ledger(redis_server, ops):
    budgets = [Budget(D("1.0")).bucket(WHEN), Budget(D("0.5"), "day").bucket(WHEN)]
    memory = MemoryLedger()
    shared = RedisLedger(redis_server.url, prefix=f"eq-{uuid.uuid4().hex[:8]}")
    holds: list[tuple[Reservation, Reservation]] = []
    try:
        for op in ops:
            if op[0] == "reserve":
                ours, theirs = memory.reserve(op[1], budgets), shared.reserve(op[1], budgets)
                assert type(ours) is type(theirs)
                if isinstance(ours, Refusal):
                    assert ours == theirs
                else:
                    assert (ours.amount, ours.buckets) == (theirs.amount, theirs.buckets)
                    holds.append((ours, theirs))
            elif op[0] in ("settle", "release") and holds:
                ours, theirs = holds.pop(op[1] % len(holds))
                if op[0] == "settle":
                    assert memory.settle(ours, op[2]) == shared.settle(theirs, op[2])
                else:
                    memory.release(ours)
                    shared.release(theirs)
            elif op[0] == "add":
                assert memory.add(op[1], budgets) == shared.add(op[1], budgets)
        keys = [b.key for b in budgets]
        assert shared.bucket_usage(keys) == memory.bucket_usage(keys)
        assert shared.summary() == memory.summary()
        assert shared.records() == memory.records()
    finally:
        shared.reset()
        shared.close()


def test_a_hold_cannot_be_settled_twice(ledger):
    hold = ledger.reserve(D("0.001"), [])
    ledger.settle(hold, _record(D("0.001")))
    with pytest.raises(RuntimeError, match="charged once"):
        ledger.settle(hold, _record(D("0.001")))
    with pytest.raises(RuntimeError, match="charged once"):
        ledger.release(hold)


def test_records_are_capped_but_totals_cover_every_call(redis_server):
    ledger = RedisLedger(redis_server.url, prefix=f"cap-{uuid.uuid4().hex[:8]}", max_records=3)
    try:
        for n in range(5):
            ledger.add(_record(D(n)))
        assert [r.cost.total for r in ledger.records()] == [D(2), D(3), D(4)]
        assert ledger.summary()["calls"] == 5
        assert ledger.summary()["total_cost"] == D(10)
    finally:
        ledger.reset()
        ledger.close()


def test_reset_forgets_everything_and_old_holds_settle_without_one(ledger):
    bucket = Budget(D("0.01")).bucket(WHEN)
    hold = ledger.reserve(D("0.004"), [bucket])
    ledger.add(_record(D("0.002")), [bucket])
    ledger.reset()
    assert ledger.summary()["calls"] == 0
    assert ledger.bucket_usage([bucket.key])[bucket.key] == (D(0), D(0))
    ledger.settle(hold, _record(D("0.003")))
    assert ledger.bucket_usage([bucket.key])[bucket.key] == (D("0.003"), D(0))


def test_holds_nobody_renews_expire_and_their_call_still_settles_once(redis_server):
    prefix = f"exp-{uuid.uuid4().hex[:8]}"
    bucket = Budget(D("0.01")).bucket(WHEN)
    worker = RedisLedger(redis_server.url, prefix=prefix, hold_lease=0.2)
    hold = worker.reserve(D("0.01"), [bucket])
    assert isinstance(hold, Reservation)
    worker.close()  # stops renewing, as a dead worker does (the test keeps the hold object)
    ledger = RedisLedger(redis_server.url, prefix=prefix)
    try:
        # A waiting reservation wakes when the hold's lease runs out: nobody announces it.
        outcome = ledger.reserve_within(D("0.001"), [bucket], timeout=30.0)
        assert isinstance(outcome, Reservation)
        ledger.release(outcome)
        assert ledger.bucket_usage([bucket.key])[bucket.key] == (D(0), D(0))
        # A call slower than its lease still settles (charged, without a hold to drop)...
        ledger.settle(hold, _record(D("0.002")))
        assert ledger.bucket_usage([bucket.key])[bucket.key] == (D("0.002"), D(0))
        # ... once.
        with pytest.raises(RuntimeError, match="charged once"):
            ledger.settle(hold, _record(D("0.002")))
    finally:
        ledger.reset()
        ledger.close()


def test_hold_timeout_s_is_the_former_name_of_hold_lease(redis_server):
    with pytest.warns(DeprecationWarning, match="hold_lease"):
        ledger = RedisLedger(redis_server.url, hold_timeout_s=5)
    assert ledger.hold_lease == ledger.hold_timeout_s == 5.0
    ledger.close()
    with pytest.raises(TypeError, match="not both"):
        RedisLedger(redis_server.url, hold_timeout_s=5, hold_lease=6)


def test_a_tracker_on_the_redis_ledger_records_calls(sim, ledger):
    tracker = CostTracker(budget_usd=1.0, backend=ledger)
    llm = tracker | chat(sim, "gpt-4o-mini", max_tokens=20)
    llm.invoke("hello")
    summary = tracker.summary()
    assert summary["calls"] == 1
    assert summary["total_cost"] > 0
    assert ledger.records()[0].model == "gpt-4o-mini"


def test_dead_redis_refuses_reservations_and_never_fails_a_settle(own_redis):
    ledger = RedisLedger(own_redis.url, socket_timeout=0.5)
    bucket = Budget(D("1")).bucket(WHEN)
    hold = ledger.reserve(D("0.1"), [bucket])
    own_redis.stop()
    with pytest.raises(RedisLedgerUnavailableError, match="unreachable"):
        ledger.reserve(D("0.1"), [bucket])
    assert ledger.settle(hold, _record(D("0.05"))) == []
    ledger.close()


@pytest.mark.slow
def test_four_processes_sharing_a_budget_never_pass_it(redis_server):
    budget = 0.01
    prefix = f"budget-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results = context.Queue()
    with SimulatedProvider([SimModel(name="gpt-4o", reply_tokens=150)], seed=0) as sim:
        processes = [
            context.Process(
                target=redis_workers.spend,
                args=(redis_server.url, prefix, sim.base_url, budget, 25, barrier, results),
            )
            for _ in range(4)
        ]
        for process in processes:
            process.start()
        tallies = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(60)
    ledger = RedisLedger(redis_server.url, prefix=prefix)
    try:
        summary = ledger.summary()
        assert [p.exitcode for p in processes] == [0] * 4
        assert [t["other"] for t in tallies] == [[]] * 4
        served = sum(t["served"] for t in tallies)
        assert summary["calls"] == served
        assert sum(t["over_budget"] for t in tallies) == 100 - served > 0
        # Holds are the worst case (max_tokens at the output price): spend never passes.
        assert summary["total_cost"] <= D(str(budget))
        assert summary["reserved_cost"] == 0
    finally:
        ledger.reset()
        ledger.close()
