"""Admission: FIFO per key across threads and event loops, the max-wait rule, cancellation."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

import pytest

from llm_routing.errors import QuotaExceededError, RateLimitExhaustedError
from llm_routing.schedule.clock import SystemClock, VirtualClock
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.policy import RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.queue import Admission, Ticket

KEY = "openai:gpt-4o-mini"
NOTHING = Request(0, 0)
ONE_AT_A_TIME = RateLimits(max_concurrency=1)
ONE_PER_MINUTE = RateLimits(rpm=1, request_margin=0)


def virtual() -> tuple[VirtualClock, MemoryBackend, Admission]:
    clock = VirtualClock()
    backend = MemoryBackend(clock)
    return clock, backend, Admission(backend)


async def spin(turns: int = 5) -> None:
    """Let other tasks run; virtual time cannot advance while this task stays runnable."""
    for _ in range(turns):
        await asyncio.sleep(0)


def wait_until(condition: Callable[[], bool]) -> None:
    """Wait for another thread to reach a state (a safety cap, not a timing assertion)."""
    give_up = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < give_up, "the other thread never got there"
        time.sleep(0.001)


# --------------------------------------------------------------------------- admission


def test_an_uncontended_request_is_admitted_at_once():
    clock, backend, admission = virtual()
    clock.advance(5.0)
    ticket = admission.acquire(KEY, ONE_PER_MINUTE, Request(3, 4), deadline=5.0, model="m")
    assert isinstance(ticket, Ticket)
    assert (ticket.key, ticket.admitted_at, ticket.computed_at, ticket.waited_s) == (
        KEY,
        5.0,
        5.0,
        0.0,
    )
    assert ticket.request == Request(3, 4)
    assert (ticket.limits, ticket.model) == (ONE_PER_MINUTE, "m")
    assert backend.snapshot(KEY)["in_flight"] == 1


def test_a_sync_waiter_sleeps_until_the_computed_time():
    clock, _, admission = virtual()
    admission.acquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=0.0, model="m")
    ticket = admission.acquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=100.0, model="m")
    assert (ticket.admitted_at, ticket.computed_at, ticket.waited_s) == (60.0, 60.0, 60.0)
    assert clock.now() == 60.0


def test_rids_are_unique():
    _, _, admission = virtual()
    rids = {
        admission.acquire(KEY, RateLimits(), NOTHING, deadline=0.0, model="m").rid
        for _ in range(100)
    }
    assert len(rids) == 100


def test_settle_and_release_reach_the_backend():
    _, backend, admission = virtual()
    limits = RateLimits(tpm=1_000, token_headroom=0)
    first = admission.acquire(KEY, limits, Request(100, 400), deadline=0.0, model="m")
    second = admission.acquire(KEY, limits, Request(100, 400), deadline=0.0, model="m")
    admission.settle(first, 100, 50)
    admission.release(second)
    snapshot = backend.snapshot(KEY)
    assert (snapshot["tokens_in_window"], snapshot["in_flight"]) == (150, 0)


# --------------------------------------------------------------------------- refusals


def test_the_max_wait_rule_raises_at_once_without_sleeping():
    clock, _, admission = virtual()
    admission.acquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=0.0, model="gpt-4o-mini")
    with pytest.raises(RateLimitExhaustedError) as caught:
        admission.acquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=30.0, model="gpt-4o-mini")
    assert clock.now() == 0.0
    assert (caught.value.wait_s, caught.value.reason, caught.value.model) == (
        60.0,
        "rpm",
        "gpt-4o-mini",
    )
    assert "RPM 1" in str(caught.value) and "60.0s" in str(caught.value)
    assert admission.waiting(KEY) == 0


async def test_the_max_wait_rule_counts_the_queue_ahead():
    clock, _, admission = virtual()
    await admission.aacquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=0.0, model="m")
    ahead = asyncio.ensure_future(
        admission.aacquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=1_000.0, model="m")
    )
    await spin()
    with pytest.raises(RateLimitExhaustedError) as caught:
        await admission.aacquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=100.0, model="m")
    assert caught.value.wait_s == 120.0
    assert "1 request(s) queued ahead" in str(caught.value)
    assert clock.now() == 0.0
    assert admission.waiting(KEY) == 1
    assert (await ahead).admitted_at == 60.0


def test_a_non_blocking_acquire_with_deadline_now_takes_a_free_slot_or_raises():
    _, _, admission = virtual()
    admission.acquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=0.0, model="m")
    with pytest.raises(RateLimitExhaustedError):
        admission.acquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=0.0, model="m")


def test_a_request_larger_than_the_limit_raises_at_once_with_the_numbers():
    clock, _, admission = virtual()
    limits = RateLimits(tpm=100_000)
    with pytest.raises(RateLimitExhaustedError) as caught:
        admission.acquire(KEY, limits, Request(150_000, 4_000), deadline=1e9, model="gpt-x")
    assert caught.value.reason == "request larger than the limit"
    assert caught.value.wait_s is None
    message = str(caught.value)
    assert "154,000 tokens" in message and "TPM 100,000" in message and "98,000" in message
    assert clock.now() == 0.0


async def test_a_request_larger_than_the_limit_raises_at_once_behind_a_queue():
    _, _, admission = virtual()
    limits = RateLimits(rpm=1, request_margin=0, tpm=1_000)
    await admission.aacquire(KEY, limits, NOTHING, deadline=0.0, model="m")
    ahead = asyncio.ensure_future(admission.aacquire(KEY, limits, NOTHING, deadline=1e9, model="m"))
    await spin()
    with pytest.raises(RateLimitExhaustedError, match="can never"):
        await admission.aacquire(KEY, limits, Request(5_000, 0), deadline=1e9, model="m")
    await ahead


def test_the_daily_limit_raises_quota_exceeded_naming_model_and_rpd():
    _, _, admission = virtual()
    limits = RateLimits(rpd=2)
    for _ in range(2):
        admission.acquire(KEY, limits, NOTHING, deadline=0.0, model="gemini-2.5-pro")
    with pytest.raises(QuotaExceededError) as caught:
        admission.acquire(KEY, limits, NOTHING, deadline=90.0, model="gemini-2.5-pro")
    assert caught.value.model == "gemini-2.5-pro"
    assert "RPD 2" in str(caught.value) and "24.0 h" in str(caught.value)


def test_a_daily_slot_that_frees_within_max_wait_is_waited_for():
    clock, _, admission = virtual()
    limits = RateLimits(rpd=1)
    admission.acquire(KEY, limits, NOTHING, deadline=0.0, model="m")
    clock.advance(86_400.0 - 5.0)
    ticket = admission.acquire(KEY, limits, NOTHING, deadline=clock.now() + 10.0, model="m")
    assert ticket.admitted_at == 86_400.0


# --------------------------------------------------------------------------- deadlines


async def test_a_head_waiting_for_a_concurrency_slot_gives_up_exactly_at_its_deadline():
    clock, _, admission = virtual()
    await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    with pytest.raises(RateLimitExhaustedError) as caught:
        await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=25.0, model="m")
    assert caught.value.reason == "concurrency"
    assert clock.now() == 25.0
    assert admission.waiting(KEY) == 0


async def test_a_waiter_behind_the_head_gives_up_exactly_at_its_deadline():
    clock, _, admission = virtual()
    await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    head = asyncio.ensure_future(
        admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=1_000.0, model="m")
    )
    await spin()
    with pytest.raises(RateLimitExhaustedError) as caught:
        await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=10.0, model="m")
    assert (caught.value.reason, clock.now()) == ("queue", 10.0)
    head.cancel()


def test_a_sync_waiter_never_waits_past_its_deadline():
    clock, _, admission = virtual()
    admission.acquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    with pytest.raises(RateLimitExhaustedError):
        admission.acquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=7.5, model="m")
    assert clock.now() == 7.5


# --------------------------------------------------------------------------- wake-ups


async def test_a_release_wakes_the_next_waiter_at_once():
    clock, _, admission = virtual()
    holder = await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    waiter = asyncio.ensure_future(
        admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=math.inf, model="m")
    )
    await spin()
    assert not waiter.done()
    await admission.arelease(holder)
    ticket = await waiter
    assert (ticket.admitted_at, clock.now()) == (0.0, 0.0)


async def test_a_settle_that_frees_tokens_wakes_the_head_before_its_computed_time():
    clock, _, admission = virtual()
    limits = RateLimits(tpm=1_000, token_headroom=0)
    holder = await admission.aacquire(KEY, limits, Request(100, 900), deadline=0.0, model="m")
    waiter = asyncio.ensure_future(
        admission.aacquire(KEY, limits, Request(500, 0), deadline=1_000.0, model="m")
    )
    await spin()
    assert not waiter.done()
    await admission.asettle(holder, 100, 50)
    ticket = await waiter
    assert ticket.admitted_at == 0.0
    assert clock.now() == 0.0


async def test_a_cooldown_past_a_waiters_deadline_fails_it_at_once():
    clock, _, admission = virtual()
    await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    waiter = asyncio.ensure_future(
        admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=30.0, model="claude")
    )
    await spin()
    admission.cooldown(KEY, 100.0)
    with pytest.raises(RateLimitExhaustedError) as caught:
        await waiter
    assert (caught.value.reason, caught.value.model, clock.now()) == ("cooldown", "claude", 0.0)
    assert admission.waiting(KEY) == 0


async def test_a_cooldown_within_the_deadline_delays_the_head_and_admits_nobody_early():
    clock, _, admission = virtual()
    holder = await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    waiter = asyncio.ensure_future(
        admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=1_000.0, model="m")
    )
    await spin()
    admission.cooldown(KEY, 50.0)
    await admission.arelease(holder)
    ticket = await waiter
    assert ticket.admitted_at == clock.now() == 50.0


async def test_a_correction_wakes_the_head_which_gives_up_when_it_can_no_longer_make_it():
    clock, _, admission = virtual()
    limits = RateLimits(tpm=1_000, token_headroom=0)
    await admission.aacquire(KEY, limits, Request(500, 0), deadline=0.0, model="m")
    waiter = asyncio.ensure_future(
        admission.aacquire(KEY, limits, Request(600, 0), deadline=100.0, model="m")
    )
    await spin()
    assert not waiter.done()  # it would be admitted at 60
    # Others used the other 500 tokens; the provider's window resets in 200 s.
    admission.correct(KEY, limits, RateLimitHeaders(remaining_tokens=0, reset_tokens_s=200.0))
    with pytest.raises(RateLimitExhaustedError) as caught:
        await waiter
    assert (caught.value.wait_s, caught.value.reason, clock.now()) == (200.0, "tpm", 0.0)


def test_a_correction_makes_later_requests_wait_for_the_providers_reset():
    _, _, admission = virtual()
    limits = RateLimits(rpm=10, request_margin=0)
    admission.acquire(KEY, limits, NOTHING, deadline=0.0, model="m")
    admission.correct(KEY, limits, RateLimitHeaders(remaining_requests=0, reset_requests_s=30.0))
    ticket = admission.acquire(KEY, limits, NOTHING, deadline=100.0, model="m")
    assert (ticket.admitted_at, ticket.computed_at) == (30.0, 30.0)


# --------------------------------------------------------------------------- cancellation


async def test_cancelling_100_waiting_tasks_frees_their_places():
    clock, backend, admission = virtual()
    holder = await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    waiters = [
        asyncio.ensure_future(
            admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=math.inf, model="m")
        )
        for _ in range(100)
    ]
    await spin()
    assert admission.waiting(KEY) == 100
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert admission.waiting(KEY) == 0
    await admission.arelease(holder)
    ticket = await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    assert (ticket.waited_s, clock.now(), backend.snapshot(KEY)["in_flight"]) == (0.0, 0.0, 1)


async def test_cancelling_the_head_wakes_the_next_waiter():
    _, _, admission = virtual()
    holder = await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    head = asyncio.ensure_future(
        admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=math.inf, model="m")
    )
    await spin()
    second = asyncio.ensure_future(
        admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=math.inf, model="m")
    )
    await spin()
    head.cancel()
    await spin()
    await admission.arelease(holder)
    assert (await second).admitted_at == 0.0


class _InterruptingClock(VirtualClock):
    def wait(self, event: threading.Event, timeout: float) -> bool:
        raise KeyboardInterrupt


def test_a_keyboard_interrupt_in_a_sync_waiter_removes_it_from_the_queue():
    clock = _InterruptingClock()
    backend = MemoryBackend(clock)
    admission = Admission(backend)
    admission.acquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=0.0, model="m")
    with pytest.raises(KeyboardInterrupt):
        admission.acquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=100.0, model="m")
    assert admission.waiting(KEY) == 0
    assert backend.snapshot(KEY)["in_flight"] == 1


class _InterruptedAfterAdmission(MemoryBackend):
    def try_acquire(self, key, limits, request, rid):
        decision = super().try_acquire(key, limits, request, rid)
        if decision.admit:
            raise KeyboardInterrupt
        return decision


def test_an_interrupt_after_the_reservation_gives_the_reservation_back():
    backend = _InterruptedAfterAdmission(VirtualClock())
    admission = Admission(backend)
    with pytest.raises(KeyboardInterrupt):
        admission.acquire(
            KEY, RateLimits(rpm=10, tpm=1_000), Request(5, 5), deadline=0.0, model="m"
        )
    snapshot = backend.snapshot(KEY)
    assert (
        snapshot["in_flight"],
        snapshot["requests_in_window"],
        snapshot["tokens_in_window"],
    ) == (
        0,
        0,
        0,
    )
    assert admission.waiting(KEY) == 0


# --------------------------------------------------------------------------- threads and loops


class _LoopThread:
    """An event loop running in its own thread, to submit coroutines to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def test_fifo_holds_across_sync_threads_and_async_tasks_on_two_loops():
    backend = MemoryBackend(SystemClock())
    admission = Admission(backend)
    holder = admission.acquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    loops = [_LoopThread(), _LoopThread()]
    order: list[str] = []
    done: list[object] = []

    def in_thread(name: str) -> None:
        ticket = admission.acquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=math.inf, model="m")
        order.append(name)
        admission.release(ticket)

    async def in_task(name: str) -> None:
        ticket = await admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=math.inf, model="m")
        order.append(name)
        await admission.arelease(ticket)

    names = ["thread-0", "loop0-0", "loop1-0", "thread-1", "loop1-1", "loop0-1", "thread-2"]
    try:
        for position, name in enumerate(names, start=1):
            if name.startswith("thread"):
                thread = threading.Thread(target=in_thread, args=(name,))
                thread.start()
                done.append(thread)
            else:
                done.append(loops[int(name[4])].submit(in_task(name)))
            wait_until(lambda position=position: admission.waiting(KEY) == position)
        admission.release(holder)
        for item in done:
            if isinstance(item, threading.Thread):
                item.join(30)
            else:
                item.result(30)  # type: ignore[attr-defined]
    finally:
        for loop in loops:
            loop.close()
    assert order == names


def test_one_admission_serves_successive_event_loops():
    _, _, admission = virtual()

    async def one() -> float:
        ticket = await admission.aacquire(KEY, ONE_PER_MINUTE, NOTHING, deadline=1e9, model="m")
        return ticket.admitted_at

    assert asyncio.run(one()) == 0.0
    assert asyncio.run(one()) == 60.0


def test_a_sync_thread_release_wakes_an_async_waiter_on_another_loop():
    backend = MemoryBackend(SystemClock())
    admission = Admission(backend)
    holder = admission.acquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=0.0, model="m")
    loop = _LoopThread()
    try:
        future = loop.submit(
            admission.aacquire(KEY, ONE_AT_A_TIME, NOTHING, deadline=math.inf, model="m")
        )
        wait_until(lambda: admission.waiting(KEY) == 1)
        admission.release(holder)
        assert future.result(30).rid != holder.rid
    finally:
        loop.close()


# --------------------------------------------------------------------------- simulation


async def test_ten_simulated_minutes_of_many_tasks_stay_within_every_window():
    clock, _, admission = virtual()
    limits = RateLimits(rpm=500, tpm=200_000)
    log: list[tuple[float, int]] = []

    async def caller() -> None:
        while clock.now() < 600.0:
            ticket = await admission.aacquire(
                KEY, limits, Request(300, 200), deadline=1e9, model="m"
            )
            await clock.asleep(2.0)  # the provider's latency
            await admission.asettle(ticket, 300, 150)
            log.append((ticket.admitted_at, 450))

    await asyncio.gather(*(caller() for _ in range(300)))
    assert clock.now() >= 600.0
    log.sort()
    assert len(log) > 4_000
    start = tokens = 0
    for end, (t, used) in enumerate(log):
        tokens += used
        while log[start][0] + 60.0 <= t:
            tokens -= log[start][1]
            start += 1
        assert end - start + 1 <= limits.effective_rpm
        assert tokens <= limits.effective_tpm


# --------------------------------------------------------------------------- construction


def test_admission_refuses_a_clock_other_than_its_backends():
    with pytest.raises(ValueError, match="same"):
        Admission(MemoryBackend(VirtualClock()), VirtualClock())


def test_admission_accepts_any_system_clock_for_a_system_clock_backend():
    assert isinstance(Admission(MemoryBackend(), SystemClock()).clock, SystemClock)


def test_close_stops_listening_to_the_backend():
    removed: list[str] = []

    class Recording(MemoryBackend):
        def remove_listener(self, key, callback):
            removed.append(key)
            super().remove_listener(key, callback)

    admission = Admission(Recording(VirtualClock()))
    admission.acquire(KEY, RateLimits(), NOTHING, deadline=0.0, model="m")
    admission.close()
    assert removed == [KEY]


def test_admission_needs_a_backend():
    with pytest.raises(TypeError, match="Backend"):
        Admission(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limits", "request_", "deadline"),
    [({"rpm": 5}, NOTHING, 0.0), (RateLimits(), (1, 2), 0.0), (RateLimits(), NOTHING, math.nan)],
)
def test_bad_arguments_raise_type_error(limits, request_, deadline):
    _, _, admission = virtual()
    with pytest.raises(TypeError):
        admission.acquire(KEY, limits, request_, deadline=deadline, model="m")


# --------------------------------------------------------------------------- leases


def test_a_live_call_keeps_its_slot_however_far_a_virtual_clock_runs():
    # The renewal thread ticks in real seconds; a virtual clock can jump a whole lease
    # between two of them. The queue renews this process's live calls before each decision.
    clock = VirtualClock()
    admission = Admission(MemoryBackend(clock, lease_s=30.0), clock)
    limits = RateLimits(max_concurrency=1)
    ticket = admission.acquire(KEY, limits, NOTHING, deadline=0.0, model="m")
    clock.advance(300.0)  # ten leases, no tick of the renewal thread
    with pytest.raises(RateLimitExhaustedError, match="concurrent slots"):
        admission.acquire(KEY, limits, NOTHING, deadline=clock.now(), model="m")
    admission.settle(ticket, 0, 0)
    assert admission.acquire(KEY, limits, NOTHING, deadline=clock.now(), model="m")


def test_a_call_that_vanished_without_settling_frees_its_slot_after_one_lease():
    import gc

    clock = VirtualClock()
    backend = MemoryBackend(clock, lease_s=30.0)
    admission = Admission(backend, clock)
    limits = RateLimits(max_concurrency=1)
    ticket = admission.acquire(KEY, limits, NOTHING, deadline=0.0, model="m")
    del ticket  # e.g. a thread killed mid-call: nobody settles, nobody renews
    gc.collect()
    clock.advance(29.0)
    with pytest.raises(RateLimitExhaustedError, match="concurrent slots"):
        admission.acquire(KEY, limits, NOTHING, deadline=clock.now(), model="m")
    clock.advance(1.0)
    assert admission.acquire(KEY, limits, NOTHING, deadline=clock.now(), model="m")


async def test_a_waiter_on_a_dead_calls_slot_is_admitted_when_its_lease_runs_out():
    # Nothing announces an expiry: the waiter sleeps until the lease's end, not forever.
    import gc

    clock = VirtualClock()
    backend = MemoryBackend(clock, lease_s=30.0)
    admission = Admission(backend, clock)
    limits = RateLimits(max_concurrency=1)
    ticket = await admission.aacquire(KEY, limits, NOTHING, deadline=0.0, model="m")
    del ticket
    gc.collect()
    waiter = await admission.aacquire(KEY, limits, NOTHING, deadline=90.0, model="m")
    assert waiter.admitted_at == 30.0
    assert backend.snapshot(KEY)["in_flight"] == 1


def test_backends_validate_lease_s():
    for bad, error in ((0, ValueError), (-5, ValueError), (math.nan, ValueError), ("1", TypeError)):
        with pytest.raises(error, match="lease_s"):
            MemoryBackend(lease_s=bad)  # type: ignore[arg-type]
    assert MemoryBackend(lease_s=None).lease_s is None
