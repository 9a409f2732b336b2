"""What every scheduler backend must do, whatever stores the state (memory, Redis, ...)."""

from __future__ import annotations

import itertools
import math
import threading

import pytest

from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import VirtualClock
from llm_routing.schedule.policy import NEVER_TOO_LARGE, RateLimitHeaders, RateLimits, Request

KEY = "openai:gpt-4o"
OTHER = "anthropic:claude"
NOTHING = Request(0, 0)
_rids = itertools.count()


def rid() -> str:
    return f"conf-{next(_rids)}"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=1_000.0)


@pytest.fixture
def backend(backend_factory, clock) -> Backend:
    return backend_factory(clock)


def test_now_is_the_backends_clock(backend, clock):
    assert backend.now() == 1_000.0
    clock.advance(5.0)
    assert backend.now() == 1_005.0


def test_try_acquire_reserves_when_admissible_and_says_when_otherwise(backend):
    limits = RateLimits(rpm=2, request_margin=0)
    assert backend.try_acquire(KEY, limits, NOTHING, rid()).admit
    assert backend.try_acquire(KEY, limits, NOTHING, rid()).admit
    refused = backend.try_acquire(KEY, limits, NOTHING, rid())
    assert (refused.admit, refused.at, refused.binding) == (False, 1_060.0, "rpm")
    assert backend.snapshot(KEY)["requests_in_window"] == 2


def test_a_refused_try_acquire_reserves_nothing(backend):
    limits = RateLimits(tpm=100, token_headroom=0)
    assert backend.try_acquire(KEY, limits, Request(60, 0), rid()).admit
    assert not backend.try_acquire(KEY, limits, Request(60, 0), rid()).admit
    snapshot = backend.snapshot(KEY)
    assert (snapshot["tokens_in_window"], snapshot["in_flight"]) == (60, 1)


def test_a_request_larger_than_the_limit_is_never_admissible(backend):
    decision = backend.try_acquire(KEY, RateLimits(tpm=100), Request(200, 0), rid())
    assert (decision.never, decision.at) == (NEVER_TOO_LARGE, math.inf)


def test_keys_are_isolated(backend):
    limits = RateLimits(rpm=1, request_margin=0)
    assert backend.try_acquire(KEY, limits, NOTHING, rid()).admit
    backend.cooldown(KEY, 5_000.0)
    assert backend.try_acquire(OTHER, limits, NOTHING, rid()).admit
    assert backend.snapshot(OTHER)["cooldown_until"] is None


def test_settle_replaces_the_estimate_and_reports_freed_capacity(backend):
    limits = RateLimits(tpm=1_000, token_headroom=0)
    held = rid()
    backend.try_acquire(KEY, limits, Request(100, 500), held)
    assert backend.settle(KEY, limits, held, 100, 20) is True
    assert backend.snapshot(KEY)["tokens_in_window"] == 120
    assert backend.settle(KEY, limits, held, 100, 20) is False
    assert backend.settle(KEY, limits, "never-seen", 1, 1) is False


def test_release_returns_the_reservation_with_or_without_the_request(backend):
    limits = RateLimits(rpm=10, tpm=1_000)
    dropped, kept = rid(), rid()
    backend.try_acquire(KEY, limits, Request(10, 10), dropped)
    backend.try_acquire(KEY, limits, Request(10, 10), kept)
    assert backend.release(KEY, dropped) is True
    assert backend.release(KEY, kept, keep_request=True) is True
    assert backend.release(KEY, kept) is False
    snapshot = backend.snapshot(KEY)
    assert (snapshot["requests_in_window"], snapshot["tokens_in_window"]) == (1, 0)
    assert snapshot["in_flight"] == 0


def test_cooldown_holds_everyone_until_its_end(backend, clock):
    limits = RateLimits(rpm=100)
    backend.cooldown(KEY, 1_030.0)
    decision = backend.try_acquire(KEY, limits, NOTHING, rid())
    assert (decision.admit, decision.at, decision.binding) == (False, 1_030.0, "cooldown")
    assert backend.snapshot(KEY)["cooldown_until"] == 1_030.0
    clock.advance(30.0)
    assert backend.try_acquire(KEY, limits, NOTHING, rid()).admit


def test_correct_tightens_but_never_loosens(backend):
    limits = RateLimits(rpm=10, request_margin=0)
    backend.try_acquire(KEY, limits, NOTHING, rid())
    backend.correct(KEY, limits, RateLimitHeaders(remaining_requests=10))
    assert backend.snapshot(KEY)["requests_in_window"] == 1
    backend.correct(KEY, limits, RateLimitHeaders(remaining_requests=0, reset_requests_s=20.0))
    decision = backend.try_acquire(KEY, limits, NOTHING, rid())
    assert (decision.admit, decision.at) == (False, 1_020.0)


def test_project_puts_the_queue_ahead_first_and_changes_nothing(backend):
    limits = RateLimits(rpm=1, request_margin=0)
    backend.try_acquire(KEY, limits, NOTHING, rid())
    pending = [Request(0, 0), Request(0, 0)]
    decision = backend.project(KEY, limits, pending, Request(0, 0))
    assert (decision.admit, decision.at, decision.binding) == (False, 1_180.0, "rpm")
    assert backend.snapshot(KEY)["requests_in_window"] == 1
    assert backend.project(KEY, limits, [], Request(0, 0)).at == 1_060.0


def test_listeners_are_called_outside_the_lock_when_capacity_frees(backend):
    limits = RateLimits(max_concurrency=1)
    seen: list[int] = []
    backend.add_listener(KEY, lambda: seen.append(backend.snapshot(KEY)["in_flight"]))
    held = rid()
    backend.try_acquire(KEY, limits, NOTHING, held)
    backend.settle(KEY, limits, "unknown", 0, 0)
    assert seen == []
    # A listener that re-enters the backend would deadlock under its lock: run it in a thread.
    worker = threading.Thread(target=backend.release, args=(KEY, held))
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    assert seen == [0]


def test_removed_listeners_are_not_called(backend):
    calls: list[str] = []

    def listener() -> None:
        calls.append("called")

    limits = RateLimits()
    backend.add_listener(KEY, listener)
    backend.remove_listener(KEY, listener)
    backend.remove_listener(KEY, listener)
    held = rid()
    backend.try_acquire(KEY, limits, NOTHING, held)
    backend.release(KEY, held)
    assert calls == []


def test_try_acquire_is_atomic_across_threads(backend):
    limits = RateLimits(rpm=100)
    admitted: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(100):
            decision = backend.try_acquire(KEY, limits, NOTHING, rid())
            with lock:
                admitted.append(decision.admit)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(admitted) == limits.effective_rpm == 98
    assert backend.snapshot(KEY)["requests_in_window"] == 98


def test_snapshot_of_an_unknown_key_is_empty(backend):
    snapshot = backend.snapshot("nobody:yet")
    assert snapshot["requests_in_window"] == 0
    assert snapshot["in_flight"] == 0
    assert snapshot["cooldown_until"] is None


async def test_async_twins_behave_like_the_sync_methods(backend):
    limits = RateLimits(rpm=2, request_margin=0, tpm=1_000, token_headroom=0)
    first, second = rid(), rid()
    assert (await backend.atry_acquire(KEY, limits, Request(100, 100), first)).admit
    assert (await backend.atry_acquire(KEY, limits, Request(100, 100), second)).admit
    assert await backend.asettle(KEY, limits, first, 100, 0) is True
    assert await backend.arelease(KEY, second) is True
    await backend.acooldown(KEY, 1_010.0)
    await backend.acorrect(KEY, limits, RateLimitHeaders(remaining_tokens=0, reset_tokens_s=40.0))
    projected = await backend.aproject(KEY, limits, [], Request(1, 0))
    assert (projected.at, projected.binding) == (1_040.0, "tpm")


# --------------------------------------------------------------------------- leases


def test_an_in_flight_slot_is_a_lease_freed_when_its_owner_stops_renewing(backend, clock):
    # A worker killed mid-call never settles: its max_concurrency slot must not stay taken.
    assert backend.lease_s == 30.0  # the default
    limits = RateLimits(max_concurrency=2)
    dead, alive = rid(), rid()
    assert backend.try_acquire(KEY, limits, Request(10, 5), dead).admit
    assert backend.try_acquire(KEY, limits, Request(10, 5), alive).admit
    refused = backend.try_acquire(KEY, limits, NOTHING, rid())
    # Refused until a call ends or, at the latest, until the first lease runs out.
    assert (refused.admit, refused.binding, refused.at) == (False, "concurrency", 1_030.0)
    clock.advance(20.0)
    assert backend.renew(KEY, [alive, "never-admitted"]) == 1  # only the live call renews
    clock.advance(10.0)  # the dead call's lease runs out; the live one's lasts to 1,050
    snapshot = backend.snapshot(KEY)
    assert snapshot["in_flight"] == 1
    # What the dead call reserved stays counted: the provider may well have received it.
    assert snapshot["tokens_in_window"] == 30
    assert backend.try_acquire(KEY, limits, NOTHING, rid()).admit
    # Its owner's settle, should it come back after all, changes nothing.
    assert backend.settle(KEY, limits, dead, 1_000, 1_000) is False
    assert backend.snapshot(KEY)["tokens_in_window"] == 30


def test_a_renewed_lease_keeps_its_slot_for_as_long_as_the_call_runs(backend, clock):
    limits = RateLimits(max_concurrency=1)
    call = rid()
    assert backend.try_acquire(KEY, limits, NOTHING, call).admit
    for _ in range(10):  # 100 s of a call renewed every 10 s
        clock.advance(10.0)
        assert backend.renew(KEY, [call]) == 1
        assert not backend.try_acquire(KEY, limits, NOTHING, rid()).admit
    assert backend.settle(KEY, limits, call, 0, 0) is True
    assert backend.renew(KEY, [call]) == 0
    assert backend.try_acquire(KEY, limits, NOTHING, rid()).admit


async def test_arenew_renews_like_renew(backend, clock):
    limits = RateLimits(max_concurrency=1)
    call = rid()
    assert (await backend.atry_acquire(KEY, limits, NOTHING, call)).admit
    clock.advance(25.0)
    assert await backend.arenew(KEY, [call]) == 1
    clock.advance(25.0)
    assert backend.snapshot(KEY)["in_flight"] == 1
    clock.advance(5.0)
    assert backend.snapshot(KEY)["in_flight"] == 0
