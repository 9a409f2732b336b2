"""Ledger holds as leases, and waiting for holds to settle, in virtual time (no real sleeps).

The Redis ledger's equivalents run against a real redis-server (and a SIGKILLed worker) in
tests/integration/redis/test_redis_ledger_leases.py; tests/integration/redis/
test_redis_ledger.py holds the two ledgers' answers equal.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llm_routing._decorator import Decorator
from llm_routing.catalog import Catalog, ModelSpec, Price
from llm_routing.cost import (
    Budget,
    Cost,
    CostRecord,
    CostTracker,
    MemoryLedger,
    Refusal,
    Reservation,
    TokenUsage,
    estimate_cost,
)
from llm_routing.errors import BudgetExceededError
from llm_routing.schedule import VirtualClock
from llm_routing.tokens import count_tokens

D = Decimal
WHEN = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
SPEC = ModelSpec(
    provider="fake",
    name="fake-model",
    context_window=100_000,
    max_output_tokens=1_000,
    price=Price(input=100, output=200),
)
COST = D("0.005")  # 10 input + 20 output tokens at $100 / $200 per 1M
HOLD = estimate_cost(SPEC, count_tokens([("user", "hi")], SPEC), 50)  # $0.0108 at max_tokens 50


def _record(cost: Decimal) -> CostRecord:
    return CostRecord(
        time=WHEN,
        provider="fake",
        model="fake-model",
        tokens=TokenUsage(input=1),
        cost=Cost(cost, D(0), D(0), D(0), D(0), cost),
    )


def _bucket(limit: str = "1", tag: str | None = None) -> Any:
    return Budget(D(limit), tag=tag).bucket(WHEN)


def _held(ledger: MemoryLedger, bucket: Any) -> Decimal:
    return ledger.bucket_usage([bucket.key])[bucket.key][1]


# --------------------------------------------------------------------------- leases


def test_a_hold_nobody_renews_is_dropped_one_lease_after_it_was_taken():
    clock = VirtualClock()
    ledger = MemoryLedger(clock=clock, hold_lease=30)
    bucket = _bucket()
    assert isinstance(ledger.reserve(D("0.9"), [bucket]), Reservation)
    gc.collect()  # the owner is gone: nothing renews the hold
    clock.advance(29.5)
    refused = ledger.reserve(D("0.5"), [bucket])
    assert isinstance(refused, Refusal) and refused.held_only
    assert refused.retry_in == pytest.approx(0.5)
    clock.advance(0.5)
    assert isinstance(ledger.reserve(D("0.5"), [bucket]), Reservation)
    assert ledger.summary()["refused_calls"] == 1


def test_a_renewed_hold_lives_one_lease_past_its_last_renewal():
    clock = VirtualClock()
    ledger = MemoryLedger(clock=clock, hold_lease=30)
    bucket = _bucket()
    hold = ledger.reserve(D("0.9"), [bucket])
    assert isinstance(hold, Reservation)
    for _ in range(5):  # what the lease thread does every 10 s while the call runs
        clock.advance(20)
        ledger.renew([hold])
    assert _held(ledger, bucket) == D("0.9")
    clock.advance(29.9)
    assert _held(ledger, bucket) == D("0.9")
    clock.advance(0.1)
    assert _held(ledger, bucket) == 0


def test_a_call_that_outlived_its_hold_is_still_charged_exactly_once():
    clock = VirtualClock()
    ledger = MemoryLedger(clock=clock, hold_lease=1)
    bucket = _bucket()
    hold = ledger.reserve(D("0.9"), [bucket])
    assert isinstance(hold, Reservation)
    clock.advance(2)
    assert ledger.summary()["in_flight_calls"] == 0
    ledger.renew([hold])  # too late: an expired hold is not revived
    assert _held(ledger, bucket) == 0
    ledger.settle(hold, _record(D("0.4")))
    assert ledger.bucket_usage([bucket.key])[bucket.key] == (D("0.4"), D(0))
    with pytest.raises(RuntimeError, match="charged once"):
        ledger.settle(hold, _record(D("0.4")))


def test_the_lease_thread_renews_live_holds_and_leaves_when_none_is_left():
    ledger = MemoryLedger(hold_lease=0.03)  # real time: renewed every 10 ms
    bucket = _bucket()
    hold = ledger.reserve(D("0.1"), [bucket])
    assert isinstance(hold, Reservation)
    first = ledger._open[hold.id].expires
    deadline = time.monotonic() + 30
    while hold.id in ledger._open and ledger._open[hold.id].expires == first:
        assert time.monotonic() < deadline, "the hold was never renewed"
        time.sleep(0.005)
    ledger.release(hold)
    thread = ledger._renewer._thread
    if thread is not None:
        thread.join(30)
        assert not thread.is_alive()


def test_the_lease_thread_stops_renewing_a_hold_whose_reservation_was_dropped():
    ledger = MemoryLedger(hold_lease=0.03)
    assert isinstance(ledger.reserve(D("0.1"), [_bucket()]), Reservation)
    gc.collect()
    thread = ledger._renewer._thread
    if thread is not None:
        thread.join(30)
        assert not thread.is_alive()
    assert ledger._renewer.live() == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"hold_lease": 0}, ValueError), ({"hold_lease": "30"}, TypeError), ({"clock": 1}, TypeError)],
)
def test_bad_lease_arguments_name_themselves(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        MemoryLedger(**kwargs)


# --------------------------------------------------------------------------- refusals


def test_settled_spend_alone_refuses_hard_even_when_another_bucket_is_only_held_full():
    ledger = MemoryLedger(clock=VirtualClock())
    held, spent = _bucket(tag="a"), _bucket(tag="b")
    assert isinstance(ledger.reserve(D("0.9"), [held]), Reservation)
    ledger.add(_record(D("0.8")), [spent])
    refused = ledger.reserve(D("0.3"), [held, spent])
    assert isinstance(refused, Refusal)
    assert (refused.bucket, refused.held_only, refused.spent) == (spent, False, D("0.8"))
    only_held = ledger.reserve(D("0.15"), [held, spent])
    assert isinstance(only_held, Refusal)
    assert (only_held.bucket, only_held.held_only, only_held.reserved) == (held, True, D("0.9"))


def test_a_hard_refusal_does_not_wait():
    clock = VirtualClock()
    ledger = MemoryLedger(clock=clock)
    bucket = _bucket()
    ledger.add(_record(D("0.8")), [bucket])
    refused = ledger.reserve_within(D("0.3"), [bucket], timeout=90)
    assert isinstance(refused, Refusal)
    assert (refused.held_only, refused.waited, clock.now()) == (False, 0.0, 0.0)


def test_a_sync_wait_ends_when_a_dead_call_hold_expires():
    clock = VirtualClock()  # single-threaded: the wait advances time to the hold's expiry
    ledger = MemoryLedger(clock=clock, hold_lease=30)
    bucket = _bucket()
    assert isinstance(ledger.reserve(D("0.9"), [bucket]), Reservation)
    gc.collect()
    clock.advance(10)
    assert isinstance(ledger.reserve_within(D("0.5"), [bucket], timeout=90), Reservation)
    assert clock.now() == 30
    assert ledger.summary()["refused_calls"] == 0


def test_a_sync_wait_gives_up_after_its_timeout_counted_once():
    clock = VirtualClock()
    ledger = MemoryLedger(clock=clock, hold_lease=300)
    bucket = _bucket()
    hold = ledger.reserve(D("0.9"), [bucket])
    refused = ledger.reserve_within(D("0.5"), [bucket], timeout=90)
    assert isinstance(refused, Refusal) and refused.held_only
    assert refused.waited == pytest.approx(90)
    assert ledger.summary()["refused_calls"] == 1
    assert isinstance(hold, Reservation)


def test_a_waiting_thread_is_woken_by_a_settlement_in_another_thread():
    ledger = MemoryLedger()
    bucket = _bucket()
    hold = ledger.reserve(D("0.9"), [bucket])
    assert isinstance(hold, Reservation)
    got: list[Any] = []
    waiter = threading.Thread(
        target=lambda: got.append(ledger.reserve_within(D("0.5"), [bucket], timeout=600))
    )
    waiter.start()
    deadline = time.monotonic() + 30
    while not len(ledger._waiters) and time.monotonic() < deadline:
        time.sleep(0.001)
    ledger.settle(hold, _record(D("0.2")))
    waiter.join(60)
    [outcome] = got
    assert isinstance(outcome, Reservation)
    assert ledger.bucket_usage([bucket.key])[bucket.key] == (D("0.2"), D("0.5"))


async def test_async_waiters_get_in_as_holds_settle_and_never_pass_the_limit():
    clock = VirtualClock()
    # The lease thread renews on real time, which barely passes here: a lease longer than
    # the virtual wait keeps the admitted holds alive without it.
    ledger = MemoryLedger(clock=clock, hold_lease=600)
    bucket = _bucket()
    holds = [ledger.reserve(D("0.25"), [bucket]) for _ in range(4)]
    assert all(isinstance(h, Reservation) for h in holds)

    async def settle_later(hold: Any, at: float) -> None:
        await clock.asleep(at)
        ledger.settle(hold, _record(D("0.05")))

    waiters = [
        asyncio.create_task(ledger.areserve_within(D("0.25"), [bucket], timeout=90))
        for _ in range(6)
    ]
    await asyncio.gather(*(settle_later(h, 1 + i) for i, h in enumerate(holds)))
    outcomes = await asyncio.gather(*waiters)
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    # 4 x $0.05 settled leaves $0.80: three $0.25 holds, the other three wait out max_wait.
    assert len(admitted) == 3
    assert all(isinstance(o, Refusal) and o.held_only for o in outcomes if o not in admitted)
    spent, held = ledger.bucket_usage([bucket.key])[bucket.key]
    assert (spent, held) == (D("0.2"), D("0.75"))
    assert ledger.summary()["refused_calls"] == 3


async def test_reset_wakes_the_waiters():
    clock = VirtualClock()
    ledger = MemoryLedger(clock=clock)
    bucket = _bucket()
    assert isinstance(ledger.reserve(D("0.9"), [bucket]), Reservation)
    waiting = asyncio.create_task(ledger.areserve_within(D("0.5"), [bucket], timeout=90))
    await asyncio.sleep(0)
    ledger.reset()
    assert isinstance(await waiting, Reservation)
    assert clock.now() == 0


# --------------------------------------------------------------------------- the tracker


class Slow(BaseChatModel):
    """Answers after ``latency`` virtual seconds, reporting 10 input + 20 output tokens."""

    model: str = "fake-model"
    max_tokens: int = 50
    latency: float = 1.0
    clock: Any = None

    @property
    def _llm_type(self) -> str:
        return "slow"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        raise NotImplementedError

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        await self.clock.asleep(self.latency)
        usage = {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
        message = AIMessage(content="three word reply", usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


async def _burst(max_wait: float, callers: int = 200, budget: Decimal = 50 * HOLD) -> dict:
    clock = VirtualClock()
    tracker = CostTracker(
        budget_usd=budget,
        catalog=Catalog([SPEC]),
        backend=MemoryLedger(clock=clock),
        max_wait=max_wait,
    )
    model = tracker | Slow(clock=clock)
    first: list[Decimal] = []

    async def one() -> bool:
        try:
            await model.ainvoke("hi")
        except BudgetExceededError:
            if not first:
                first.append(tracker.summary(exact=True)["total_cost"])
            return False
        return True

    served = sum(await asyncio.gather(*(one() for _ in range(callers))))
    summary = tracker.summary(exact=True)
    return {
        "served": served,
        "first_refusal_share": first[0] / budget if first else None,
        "spent": summary["total_cost"],
        "refused": summary["refused_calls"],
        "held": summary["reserved_cost"],
    }


@pytest.mark.filterwarnings("ignore::llm_routing.cost.BudgetWarning")
async def test_a_burst_of_200_spends_most_of_the_budget_before_the_first_refusal():
    budget = 50 * HOLD  # room for 50 worst cases; 200 calls would really cost 200 x $0.005
    waited = await _burst(max_wait=90, budget=budget)
    assert waited["first_refusal_share"] >= D("0.9")
    assert waited["spent"] <= budget
    assert waited["served"] == waited["spent"] / COST
    assert waited["refused"] == 200 - waited["served"] > 0
    assert waited["held"] == 0
    # Without waiting, the 51st caller is refused while nothing has been spent yet.
    at_once = await _burst(max_wait=0, budget=budget)
    assert at_once["first_refusal_share"] == 0
    assert at_once["served"] == 50


async def test_a_call_that_waited_out_max_wait_says_so():
    clock = VirtualClock()
    ledger = MemoryLedger(clock=clock, hold_lease=600)
    tracker = CostTracker(budget_usd=HOLD * 3 / 2, catalog=Catalog([SPEC]), backend=ledger)
    tracker.max_wait = 5.0
    model = tracker | Slow(clock=clock, latency=60)
    first = asyncio.create_task(model.ainvoke("hi"))
    await asyncio.sleep(0)
    with pytest.raises(BudgetExceededError, match=r"held .* for the 5\.0s this call could wait"):
        await model.ainvoke("hi")
    assert clock.now() == 5.0
    await first


def test_the_scheduler_wait_counts_against_max_wait():
    class Waited(Decorator):
        def before(self, call):
            call.metadata["llm_routing.wait_s"] = 7.5

    clock = VirtualClock()
    ledger = MemoryLedger(clock=clock, hold_lease=600)
    tracker = CostTracker(
        budget_usd=HOLD * 3 / 2, catalog=Catalog([SPEC]), backend=ledger, max_wait=10
    )
    hold = ledger.reserve(HOLD, [Budget(HOLD * 3 / 2).bucket(datetime.now(UTC))])
    with pytest.raises(BudgetExceededError, match=r"2\.5s this call could wait"):
        (Waited() | tracker | Slow(clock=clock)).invoke("hi")
    assert clock.now() == 2.5
    assert isinstance(hold, Reservation)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"max_wait": -1}, ValueError, "max_wait"),
        ({"max_wait": float("inf")}, ValueError, "max_wait"),
        ({"max_wait": "90"}, TypeError, "max_wait"),
        ({"hold_lease": 0}, ValueError, "hold_lease"),
        ({"hold_lease": True}, TypeError, "hold_lease"),
        ({"hold_lease": 5, "backend": MemoryLedger()}, ValueError, "set it there"),
    ],
)
def test_bad_wait_and_lease_arguments_name_themselves(kwargs, error, words):
    with pytest.raises(error, match=words):
        CostTracker(**kwargs)


def test_hold_lease_reaches_the_ledger_the_tracker_builds():
    assert CostTracker(hold_lease=5).ledger.hold_lease == 5.0
    assert CostTracker().ledger.hold_lease == 30.0
    assert CostTracker().max_wait == 90.0
