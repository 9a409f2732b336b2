"""RedisBackend against a real redis-server: keys, expiry, Redis time, wake-ups, dead Redis."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
from langchain_openai import ChatOpenAI

from llm_routing.errors import LLMRoutingError
from llm_routing.schedule import RateScheduler
from llm_routing.schedule.limits import api_key_fingerprint
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.policy import NEVER_TOO_LARGE, RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.queue import Admission
from llm_routing.schedule.redis import (
    RedisBackend,
    RedisUnavailableError,
    RedisUnavailableWarning,
)
from llm_routing.schedule.redis import backend as redis_module

KEY = "openai:gpt-4o-mini"
SECRET = "sk-test-this-secret-must-never-reach-redis-0123456789"
HANG_GUARD_S = 30  # a call still running after this long is a hang, not a slow machine


def _server_time(client) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def _in_thread(call):
    """Run ``call`` in a thread; return (finished, result or exception)."""
    box: list = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:
            box.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG_GUARD_S)
    return not worker.is_alive(), (box[0] if box else None)


# ------------------------------------------------------------------ construction


def test_url_or_client_is_required_but_not_both(redis_server):
    with pytest.raises(TypeError, match="exactly one of url"):
        RedisBackend()
    client = redis.Redis.from_url(redis_server.url)
    with pytest.raises(TypeError, match="exactly one of url"):
        RedisBackend(redis_server.url, client=client)
    client.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"on_unavailable": "ignore"}, ValueError, "on_unavailable"),
        ({"prefix": ""}, ValueError, "prefix"),
        ({"prefix": "a{b}"}, ValueError, "prefix"),
        ({"socket_timeout": 0}, ValueError, "socket_timeout"),
        ({"idle_expiry_s": "60"}, TypeError, "idle_expiry_s"),
        ({"clock": object()}, TypeError, "clock"),
    ],
)
def test_bad_arguments_name_themselves(redis_server, kwargs, error, match):
    with pytest.raises(error, match=match):
        RedisBackend(redis_server.url, **kwargs)


# ------------------------------------------------------------------ keys


def test_keys_are_namespaced_by_prefix_and_model(make_backend, raw_redis):
    backend = make_backend()
    backend.try_acquire(KEY, RateLimits(rpm=10), Request(5, 5), "r1")
    keys = raw_redis.keys(f"{backend.prefix}:*")
    assert keys
    assert all(k.startswith(f"{backend.prefix}:{{{KEY}}}:") for k in keys)


def test_keys_never_contain_the_api_key(sim, make_backend, raw_redis):
    backend = make_backend()
    scheduler = RateScheduler(
        limits={KEY: {"rpm": 100, "tpm": 100_000}},
        backend=backend,
        clock=backend.server_clock,
        per_api_key=True,
    )
    llm = ChatOpenAI(
        model="gpt-4o-mini", base_url=sim.base_url, api_key=SECRET, max_retries=0, max_tokens=20
    )
    (scheduler | llm).invoke("hello")
    fingerprint = api_key_fingerprint(llm)
    keys = [k for k in raw_redis.keys(f"{backend.prefix}:*") if k != f"{backend.prefix}:epoch"]
    assert keys
    assert all(f"{{{KEY}@{fingerprint}}}" in k for k in keys)
    stored = " ".join(keys)
    for k in keys:
        kind = raw_redis.type(k)
        if kind == "hash":
            stored += " ".join(f"{f} {v}" for f, v in raw_redis.hgetall(k).items())
        elif kind == "list":
            stored += " ".join(raw_redis.lrange(k, 0, -1))
    assert SECRET not in stored
    assert SECRET[3:20] not in stored


def test_keys_expire_when_idle(make_backend, raw_redis):
    backend = make_backend(idle_expiry_s=0.2)
    limits = RateLimits(rpm=10, window_s=0.3)
    backend.try_acquire(KEY, limits, Request(5, 5), "r1")
    keys = raw_redis.keys(f"{backend.prefix}:*")
    # Everything in them stops counting after the window; then the idle time runs.
    assert all(0 < raw_redis.pttl(k) <= 500 for k in keys)
    deadline = time.monotonic() + HANG_GUARD_S
    while raw_redis.keys(f"{backend.prefix}:*") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert raw_redis.keys(f"{backend.prefix}:*") == []


def test_keys_live_as_long_as_a_daily_limit_counts(make_backend, raw_redis):
    backend = make_backend(idle_expiry_s=60)
    backend.try_acquire(KEY, RateLimits(rpd=100), Request(1, 1), "r1")
    ttls = {raw_redis.pttl(k) for k in raw_redis.keys(f"{backend.prefix}:*")}
    assert min(ttls) > 86_400_000


def test_a_snapshot_of_an_unknown_key_creates_nothing(make_backend, raw_redis):
    backend = make_backend()
    assert backend.snapshot("nobody:yet")["requests_in_window"] == 0
    assert raw_redis.keys(f"{backend.prefix}:*") == []


# ------------------------------------------------------------------ time


def test_time_is_the_redis_servers(make_backend, raw_redis):
    backend = make_backend()
    before = _server_time(raw_redis)
    assert backend.try_acquire(KEY, RateLimits(rpm=1, request_margin=0), Request(0, 0), "a").admit
    after = _server_time(raw_redis)
    refused = backend.try_acquire(KEY, RateLimits(rpm=1, request_margin=0), Request(0, 0), "b")
    # The admission was stamped with Redis TIME: it leaves the window 60 s after it.
    assert before + 60 <= refused.at <= after + 60
    assert before - 1 < backend.now() < _server_time(raw_redis) + 1


def test_a_host_with_a_skewed_clock_still_agrees(monkeypatch, make_backend, raw_redis):
    honest = make_backend()
    real = time.monotonic
    monkeypatch.setattr(redis_module, "_monotonic", lambda: real() + 7_200.0)
    skewed = make_backend()
    limits = RateLimits(rpm=1, request_margin=0)
    assert skewed.try_acquire(KEY, limits, Request(0, 0), "first").admit
    refused = honest.try_acquire(KEY, limits, Request(0, 0), "second")
    assert not refused.admit
    assert abs(skewed.now() - honest.now()) < 1.0
    assert abs(refused.at - 60 - skewed.now()) < 1.0


def test_server_clock_puts_the_scheduler_on_redis_time(make_backend):
    backend = make_backend()
    clock = backend.server_clock
    assert abs(clock.now() - backend.now()) < 1.0
    assert clock == backend.server_clock
    assert clock.wait(threading.Event(), 0.0) is False


# ------------------------------------------------------------------ semantics beyond the suite


def test_a_request_larger_than_the_limit_never_reaches_redis(make_backend, raw_redis):
    backend = make_backend()
    decision = backend.try_acquire(KEY, RateLimits(tpm=100), Request(500, 0), "big")
    assert decision.never == NEVER_TOO_LARGE
    assert raw_redis.keys(f"{backend.prefix}:*") == []


def test_a_rid_already_in_flight_is_refused(make_backend):
    backend = make_backend()
    backend.try_acquire(KEY, RateLimits(rpm=10), Request(1, 1), "same")
    with pytest.raises(ValueError, match="already in flight"):
        backend.try_acquire(KEY, RateLimits(rpm=10), Request(1, 1), "same")


def test_two_backends_on_one_prefix_share_the_windows(make_backend):
    first, second = make_backend(), make_backend()
    limits = RateLimits(rpm=4, request_margin=0)
    admitted = [
        backend.try_acquire(KEY, limits, Request(0, 0), f"r{n}").admit
        for n, backend in enumerate([first, second] * 3)
    ]
    assert admitted == [True] * 4 + [False] * 2
    assert first.snapshot(KEY) == second.snapshot(KEY)


def test_settle_with_bad_token_counts_names_the_argument(make_backend):
    backend = make_backend()
    with pytest.raises(TypeError, match="input_tokens"):
        backend.settle(KEY, RateLimits(), "r", "12", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output_tokens"):
        backend.settle(KEY, RateLimits(), "r", 1, -1)


# ------------------------------------------------------------------ wake-ups


def test_listeners_hear_capacity_freed_by_another_backend(make_backend):
    here, there = make_backend(), make_backend()
    heard = threading.Event()
    here.add_listener(KEY, heard.set)
    limits = RateLimits(max_concurrency=1)
    there.try_acquire(KEY, limits, Request(0, 0), "held")
    there.release(KEY, "held")
    assert heard.wait(HANG_GUARD_S)


def test_a_waiter_is_woken_by_a_release_in_another_backend(make_backend):
    here, there = make_backend(), make_backend()
    limits = RateLimits(max_concurrency=1)
    assert there.try_acquire(KEY, limits, Request(0, 0), "held").admit
    admission = Admission(here)
    # Concurrency frees on an event, not at a time: without the wake-up this waits 30 s and
    # raises RateLimitExhaustedError.
    release = threading.Timer(0.2, there.release, args=(KEY, "held"))
    release.start()
    ticket = admission.acquire(
        KEY, limits, Request(0, 0), deadline=here.now() + HANG_GUARD_S, model=KEY
    )
    release.join()
    assert ticket.key == KEY
    assert here.snapshot(KEY)["in_flight"] == 1


def test_a_broken_listener_does_not_starve_the_others(make_backend):
    backend = make_backend()
    called: list[str] = []

    def broken() -> None:
        raise RuntimeError("listener bug")

    backend.add_listener(KEY, broken)
    backend.add_listener(KEY, lambda: called.append("ok"))
    backend.try_acquire(KEY, RateLimits(), Request(1, 1), "r")
    backend.release(KEY, "r")
    assert called == ["ok"]


# ------------------------------------------------------------------ async


async def test_async_calls_use_the_running_loops_client(make_backend):
    backend = make_backend()
    limits = RateLimits(rpm=2, request_margin=0)
    decisions = await asyncio.gather(
        *(backend.atry_acquire(KEY, limits, Request(0, 0), f"a{n}") for n in range(3))
    )
    assert sorted(d.admit for d in decisions) == [False, True, True]
    assert await backend.arelease(KEY, "a0") or await backend.arelease(KEY, "a2")
    await backend.aclose()


async def test_async_calls_work_with_only_a_sync_client(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    backend = RedisBackend(client=client, prefix="sync-only")
    try:
        decision = await backend.atry_acquire(KEY, RateLimits(rpm=5), Request(1, 1), "r")
        assert decision.admit
        assert await backend.asettle(KEY, RateLimits(rpm=5), "r", 1, 0) is True
    finally:
        backend.close()
        client.delete(*client.keys("sync-only:*"))
        client.close()


# ------------------------------------------------------------------ Redis unavailable


def test_dead_redis_fails_closed_with_a_clear_error(own_redis):
    backend = RedisBackend(own_redis.url, socket_timeout=0.5)
    try:
        own_redis.stop()
        finished, outcome = _in_thread(
            lambda: backend.try_acquire(KEY, RateLimits(rpm=5), Request(1, 1), "r")
        )
        assert finished
        assert isinstance(outcome, RedisUnavailableError)
        assert isinstance(outcome, LLMRoutingError)
        assert "on_unavailable='memory'" in str(outcome)
        with pytest.raises(RedisUnavailableError):
            backend.project(KEY, RateLimits(rpm=5), [Request(1, 1)], Request(1, 1))
    finally:
        backend.close()


def test_bookkeeping_after_a_call_never_raises_on_dead_redis(own_redis):
    backend = RedisBackend(own_redis.url, socket_timeout=0.5)
    try:
        backend.try_acquire(KEY, RateLimits(rpm=5), Request(1, 1), "r")
        own_redis.stop()
        assert backend.settle(KEY, RateLimits(rpm=5), "r", 1, 0) is False
        assert backend.release(KEY, "r") is False
        backend.cooldown(KEY, backend.now() + 5)
        backend.correct(KEY, RateLimits(rpm=5), RateLimitHeaders(remaining_requests=0))
    finally:
        backend.close()


def test_hung_redis_fails_within_the_socket_timeout(own_redis):
    backend = RedisBackend(own_redis.url, socket_timeout=0.3)
    try:
        backend.snapshot(KEY)
        own_redis.pause()
        finished, outcome = _in_thread(
            lambda: backend.try_acquire(KEY, RateLimits(rpm=5), Request(1, 1), "r")
        )
        assert finished
        assert isinstance(outcome, RedisUnavailableError)
        finished, outcome = _in_thread(backend.now)
        assert finished
        assert isinstance(outcome, float)
    finally:
        own_redis.resume()
        backend.close()


async def test_hung_redis_fails_async_calls_too(own_redis):
    backend = RedisBackend(own_redis.url, socket_timeout=0.3)
    try:
        await backend.atry_acquire(KEY, RateLimits(rpm=5), Request(1, 1), "warm")
        own_redis.pause()
        with pytest.raises(RedisUnavailableError):
            await asyncio.wait_for(
                backend.atry_acquire(KEY, RateLimits(rpm=5), Request(1, 1), "r"), HANG_GUARD_S
            )
    finally:
        own_redis.resume()
        await backend.aclose()


def test_memory_fallback_warns_then_reconnects_when_redis_returns(own_redis):
    backend = RedisBackend(
        own_redis.url, on_unavailable="memory", socket_timeout=0.5, retry_interval_s=0.05
    )
    limits = RateLimits(rpm=10, request_margin=0)
    check = redis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        assert backend.try_acquire(KEY, limits, Request(1, 1), "shared").admit
        own_redis.stop()
        with pytest.warns(RedisUnavailableWarning, match="per-process"):
            local = backend.try_acquire(KEY, limits, Request(1, 1), "local")
        assert local.admit
        assert backend.snapshot(KEY)["requests_in_window"] == 1  # the in-memory view
        assert backend.settle(KEY, limits, "local", 1, 0) is True  # settled where admitted
        own_redis.restart()
        deadline = time.monotonic() + HANG_GUARD_S
        while not check.keys(f"{backend.prefix}:*") and time.monotonic() < deadline:
            # Each call retries Redis once its retry interval has passed.
            backend.try_acquire(KEY, limits, Request(1, 1), f"back-{time.monotonic()}")
            time.sleep(0.05)
        assert check.keys(f"{backend.prefix}:*")
        assert backend.snapshot(KEY)["requests_in_window"] >= 1
    finally:
        check.close()
        backend.close()


def test_the_fallback_keeps_waiters_event_driven(own_redis):
    backend = RedisBackend(
        own_redis.url, on_unavailable="memory", socket_timeout=0.5, retry_interval_s=60
    )
    limits = RateLimits(max_concurrency=1)
    try:
        own_redis.stop()
        with pytest.warns(RedisUnavailableWarning):
            assert backend.try_acquire(KEY, limits, Request(0, 0), "held").admit
        admission = Admission(backend)
        release = threading.Timer(0.2, backend.release, args=(KEY, "held"))
        release.start()
        ticket = admission.acquire(
            KEY, limits, Request(0, 0), deadline=backend.now() + HANG_GUARD_S, model=KEY
        )
        release.join()
        assert ticket.key == KEY
    finally:
        backend.close()


def test_the_subscriber_reconnects_after_a_restart(own_redis):
    here = RedisBackend(own_redis.url, socket_timeout=0.5, retry_interval_s=0.05)
    heard = threading.Event()
    here.add_listener(KEY, heard.set)
    try:
        own_redis.restart()
        # Back from the outage, every listener is woken once (messages may have been lost).
        assert heard.wait(HANG_GUARD_S)
        heard.clear()
        there = RedisBackend(own_redis.url)
        try:
            there.try_acquire(KEY, RateLimits(), Request(1, 1), "r")
            deadline = time.monotonic() + HANG_GUARD_S
            while not heard.is_set() and time.monotonic() < deadline:
                # The subscription may still be re-establishing: free capacity until heard.
                there.release(KEY, "r")
                there.try_acquire(KEY, RateLimits(), Request(1, 1), "r")
                heard.wait(0.1)
            assert heard.is_set()
        finally:
            there.close()
    finally:
        here.close()


def test_close_stops_the_subscriber_promptly(make_backend):
    backend = make_backend()
    backend.add_listener(KEY, lambda: None)
    name = f"llm_routing-redis-{backend.prefix}"
    assert any(t.name == name for t in threading.enumerate())
    finished, _ = _in_thread(backend.close)
    assert finished
    assert not any(t.name == name and t.is_alive() for t in threading.enumerate())


def _subscribers(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"llm_routing-redis-{prefix}"]


def test_a_backend_dropped_without_close_stops_its_subscriber(redis_server):
    # Five create/drop cycles used to leave five pub/sub threads behind, which raised in
    # unrelated later code once their Redis went away.
    import gc
    import uuid

    prefix = f"gc-{uuid.uuid4().hex[:8]}"
    for _ in range(5):
        backend = RedisBackend(redis_server.url, prefix=prefix)
        backend.add_listener(KEY, lambda: None)
        assert len(_subscribers(prefix)) == 1
        del backend
        gc.collect()
        give_up = time.monotonic() + 30  # a safety cap, not a timing assertion
        while _subscribers(prefix) and time.monotonic() < give_up:
            time.sleep(0.01)
        assert _subscribers(prefix) == []


def test_backends_are_context_managers_sync_and_async(redis_server):
    import uuid

    prefix = f"cm-{uuid.uuid4().hex[:8]}"
    with RedisBackend(redis_server.url, prefix=prefix) as backend:
        backend.add_listener(KEY, lambda: None)
        assert backend.try_acquire(KEY, RateLimits(rpm=10), Request(1, 1), "cm-1").admit
    assert _subscribers(prefix) == []

    async def use() -> None:
        async with RedisBackend(redis_server.url, prefix=prefix) as backend:
            backend.add_listener(KEY, lambda: None)
            decision = await backend.atry_acquire(KEY, RateLimits(rpm=10), Request(1, 1), "cm-2")
            assert decision.admit

    asyncio.run(use())
    assert _subscribers(prefix) == []
    with MemoryBackend() as memory:  # every backend: a no-op where nothing is held
        assert memory.try_acquire(KEY, RateLimits(rpm=10), Request(1, 1), "cm-3").admit


def test_a_burst_of_async_callers_shares_a_bounded_pool_of_connections(make_backend, raw_redis):
    from llm_routing.schedule.policy import RateLimits, Request
    from llm_routing.schedule.queue import Admission

    backend = make_backend()
    admission = Admission(backend, backend.server_clock)
    limits = RateLimits(rpm=100_000, tpm=10**9)
    before = len(raw_redis.client_list())

    async def one() -> None:
        ticket = await admission.aacquire(
            "openai:burst", limits, Request(10, 10), deadline=admission.now() + 60, model="burst"
        )
        await admission.asettle(ticket, 10, 10)

    async def burst() -> int:
        await asyncio.gather(*(one() for _ in range(400)))
        return len(raw_redis.client_list())

    during = asyncio.run(burst())
    # One connection per caller used to be opened (400); now at most the pool's size.
    assert during - before <= redis_module._ASYNC_POOL_SIZE + 2
