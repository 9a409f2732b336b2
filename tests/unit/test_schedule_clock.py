"""Clocks: real waits that never cancel what they wait on, and deterministic virtual time."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest

from llm_routing.schedule.clock import Clock, SystemClock, VirtualClock

# --------------------------------------------------------------------------- SystemClock


def test_system_clock_is_a_clock_and_monotonic():
    clock = SystemClock()
    assert isinstance(clock, Clock)
    first = clock.now()
    assert clock.now() >= first


def test_system_clocks_are_interchangeable():
    assert SystemClock() == SystemClock()
    assert hash(SystemClock()) == hash(SystemClock())


def test_system_wait_returns_true_at_once_for_a_set_event():
    event = threading.Event()
    event.set()
    assert SystemClock().wait(event, math.inf) is True


def test_system_wait_with_no_time_left_returns_false_without_blocking():
    assert SystemClock().wait(threading.Event(), 0.0) is False


def test_system_wait_wakes_when_another_thread_sets_the_event():
    event = threading.Event()
    threading.Timer(0.01, event.set).start()
    assert SystemClock().wait(event, math.inf) is True


async def test_system_await_times_out_without_cancelling_the_future():
    future = asyncio.get_running_loop().create_future()
    assert await SystemClock().await_(future, 0.001) is False
    assert not future.cancelled()


async def test_system_await_returns_true_when_the_future_completes():
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_soon(future.set_result, None)
    assert await SystemClock().await_(future, math.inf) is True


async def test_cancelling_a_system_await_leaves_the_future_alone():
    future = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(SystemClock().await_(future, math.inf))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not future.done()


def test_clock_waits_reject_nan():
    with pytest.raises(ValueError, match="nan"):
        SystemClock().wait(threading.Event(), math.nan)


# --------------------------------------------------------------------------- VirtualClock, sync


def test_virtual_clock_starts_where_told_and_only_moves_when_advanced():
    clock = VirtualClock(start=100.0)
    assert clock.now() == 100.0
    clock.advance(2.5)
    assert clock.now() == 102.5
    clock.advance_to(50.0)
    assert clock.now() == 102.5


def test_virtual_clock_refuses_to_go_backwards():
    with pytest.raises(ValueError, match="seconds >= 0"):
        VirtualClock().advance(-1.0)


def test_virtual_wall_time_is_now_plus_epoch():
    assert VirtualClock(10.0, epoch=1_000.0).wall() == 1_010.0


def test_virtual_sync_wait_on_an_unset_event_advances_to_the_deadline():
    clock = VirtualClock()
    assert clock.wait(threading.Event(), 42.0) is False
    assert clock.now() == 42.0


def test_virtual_sync_wait_on_a_set_event_does_not_move_time():
    clock = VirtualClock()
    event = threading.Event()
    event.set()
    assert clock.wait(event, 42.0) is True
    assert clock.now() == 0.0


def test_virtual_sync_wait_forever_raises_instead_of_hanging():
    with pytest.raises(RuntimeError, match="forever"):
        VirtualClock().wait(threading.Event(), math.inf)


def test_virtual_sync_sleep_moves_time():
    clock = VirtualClock()
    clock.sleep(3.0)
    assert clock.now() == 3.0


# --------------------------------------------------------------------------- VirtualClock, async


async def test_an_idle_loop_auto_advances_to_the_earliest_timer():
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.asleep(seconds)
        woke.append((name, clock.now()))

    await asyncio.gather(sleeper("b", 20.0), sleeper("a", 5.0), sleeper("c", 600.0))
    assert woke == [("a", 5.0), ("b", 20.0), ("c", 600.0)]


async def test_virtual_await_returns_when_the_future_completes_before_the_timeout():
    clock = VirtualClock()
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    async def resolver() -> None:
        await clock.asleep(3.0)
        future.set_result(None)

    task = asyncio.ensure_future(resolver())
    assert await clock.await_(future, 100.0) is True
    assert clock.now() == 3.0
    await task
    assert clock.pending_timers() == 0


async def test_virtual_await_times_out_without_cancelling_the_future():
    clock = VirtualClock()
    future = asyncio.get_running_loop().create_future()
    assert await clock.await_(future, 7.0) is False
    assert clock.now() == 7.0
    assert not future.cancelled()


async def test_virtual_await_with_no_time_left_does_not_move_time():
    clock = VirtualClock()
    assert await clock.await_(asyncio.get_running_loop().create_future(), 0.0) is False
    assert clock.now() == 0.0


async def test_time_does_not_advance_while_other_tasks_are_runnable():
    clock = VirtualClock()
    seen: list[float] = []

    async def busy() -> None:
        for _ in range(100):
            seen.append(clock.now())
            await asyncio.sleep(0)

    sleeper = asyncio.ensure_future(clock.asleep(10.0))
    await busy()
    assert seen == [0.0] * 100
    await sleeper
    assert clock.now() == 10.0


async def test_cancelling_a_virtual_wait_removes_its_timer():
    clock = VirtualClock()
    task = asyncio.ensure_future(clock.asleep(50.0))
    await asyncio.sleep(0)
    assert clock.pending_timers() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending_timers() == 0
    assert clock.now() == 0.0


async def test_manual_advance_fires_due_timers_in_order():
    clock = VirtualClock()
    order: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.asleep(seconds)
        order.append(name)

    tasks = [asyncio.ensure_future(sleeper(n, s)) for n, s in (("late", 9.0), ("early", 1.0))]
    await asyncio.sleep(0)
    clock.advance(10.0)
    await asyncio.gather(*tasks)
    assert order == ["early", "late"]
    assert clock.now() == 10.0


async def test_many_virtual_sleeps_run_ten_simulated_minutes():
    clock = VirtualClock()

    async def ticker() -> int:
        ticks = 0
        while clock.now() < 600.0:
            await clock.asleep(1.0)
            ticks += 1
        return ticks

    results = await asyncio.gather(*(ticker() for _ in range(50)))
    assert results == [600] * 50


def test_one_virtual_clock_serves_successive_event_loops():
    clock = VirtualClock()
    asyncio.run(clock.asleep(5.0))
    asyncio.run(clock.asleep(5.0))
    assert clock.now() == 10.0
