"""The async hooks never call a ledger that does I/O (``Ledger.blocks``) on the event loop.

A Redis round trip on the loop stalls every other task for its duration (a second, when
Redis is unreachable). The tracker and ``Ledger.areserve_within`` run such a ledger's
operations in worker threads; the in-memory ledger, which only takes a lock, runs inline.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from test_cost_tracker import COST_10_20, Fake, tracker, usage

from llm_routing.cost import MemoryLedger
from llm_routing.errors import BudgetExceededError


class Blocking(MemoryLedger):
    """A MemoryLedger that says it blocks and notes the thread of every operation."""

    blocks = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[tuple[str, int]] = []

    def _attempt(self, amount, buckets, *, final):
        self.threads.append(("attempt", threading.get_ident()))
        return super()._attempt(amount, buckets, final=final)

    def _listen(self, wake):
        self.threads.append(("listen", threading.get_ident()))
        return super()._listen(wake)

    def settle(self, reservation, record):
        self.threads.append(("settle", threading.get_ident()))
        return super().settle(reservation, record)

    def add(self, record, buckets=()):
        self.threads.append(("add", threading.get_ident()))
        return super().add(record, buckets)

    def release(self, reservation):
        self.threads.append(("release", threading.get_ident()))
        super().release(reservation)


def _loop_thread_calls(ledger: Blocking, loop_thread: int) -> list[str]:
    return [name for name, thread in ledger.threads if thread == loop_thread]


async def test_a_blocking_ledger_is_never_called_on_the_event_loop():
    ledger = Blocking()
    t = tracker(budget_usd=COST_10_20 * 100, backend=ledger)
    unbudgeted = tracker(backend=Blocking())
    ok = t | Fake(usage=usage())
    failing = t | Fake(error=RuntimeError("boom"))
    await ok.ainvoke("hi")
    await (unbudgeted | Fake(usage=usage())).ainvoke("hi")
    with pytest.raises(RuntimeError):
        await failing.ainvoke("hi")
    loop_thread = threading.get_ident()
    names = {name for name, _ in ledger.threads}
    assert {"attempt", "settle", "release"} <= names
    assert _loop_thread_calls(ledger, loop_thread) == []
    assert t.summary()["calls"] == 1
    assert unbudgeted.summary()["calls"] == 1


async def test_a_wait_for_holds_on_a_blocking_ledger_attempts_off_the_loop():
    ledger = Blocking()
    budget = COST_10_20 * 4  # one hold (~$0.0101) fits, two do not; a hold beside $0.005 does
    t = tracker(budget_usd=budget, backend=ledger, max_wait=5)
    release = asyncio.Event()

    class Slow(Fake):
        async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
            await release.wait()
            return self._generate(messages, stop, run_manager, **kwargs)

    model = t | Slow(usage=usage(), max_tokens=50)
    first = asyncio.create_task(model.ainvoke("hi"))
    while not t.summary()["in_flight_calls"]:
        await asyncio.sleep(0.001)
    second = asyncio.create_task(model.ainvoke("hi"))
    while not any(name == "listen" for name, _ in ledger.threads):
        await asyncio.sleep(0.001)
    release.set()
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert not any(isinstance(o, BudgetExceededError) for o in outcomes), outcomes
    assert t.summary()["calls"] == 2
    assert _loop_thread_calls(ledger, threading.get_ident()) == []


def test_the_in_memory_ledger_says_it_does_not_block():
    assert MemoryLedger.blocks is False
    assert tracker().ledger.blocks is False
