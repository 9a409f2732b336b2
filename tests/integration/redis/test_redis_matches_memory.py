"""The Lua port of the policy gives bit-identical answers to the Python policy.

The same random sequence of operations (acquire, settle with and without ``answered_at``,
release, cooldown, header corrections, projections, snapshots, time steps that land on window
edges) runs against a `MemoryBackend` and a `RedisBackend` sharing one virtual clock; every
decision, return value and snapshot must be equal, floats included.
"""

from __future__ import annotations

import uuid

import hypothesis.strategies as st
import redis
from hypothesis import HealthCheck, given, settings

from llm_routing.schedule.clock import VirtualClock
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.policy import DAY_S, RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.redis import RedisBackend

KEY = "openai:gpt-4o-mini"

steps = st.sampled_from([0.0, 0.1, 0.25, 1.0, 2.5, 7.5, 9.9, 10.0, 15.0, 60.0, DAY_S / 3])
limits_strategy = st.builds(
    RateLimits,
    rpm=st.none() | st.integers(1, 8),
    tpm=st.none() | st.integers(0, 3_000),
    itpm=st.none() | st.integers(0, 2_000),
    otpm=st.none() | st.integers(0, 1_500),
    rpd=st.none() | st.integers(1, 25),
    max_concurrency=st.none() | st.integers(1, 4),
    request_margin=st.integers(0, 2),
    token_headroom=st.sampled_from([0.0, 0.02, 0.1]),
    smoothing=st.booleans(),
    day=st.sampled_from(["rolling", "calendar"]),
    day_start_utc_s=st.sampled_from([0.0, 3_600.0]),
    window_s=st.sampled_from([10.0, 60.0]),
)
requests = st.builds(Request, st.integers(0, 700), st.integers(0, 700))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), steps),
        st.tuples(st.just("acquire"), requests),
        st.tuples(st.just("acquire"), requests),
        st.tuples(
            st.just("settle"),
            st.integers(0, 40),
            st.integers(0, 700),
            st.integers(0, 700),
            st.none() | st.sampled_from([0.5, 3.0, 12.0]),
        ),
        st.tuples(st.just("release"), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("cooldown"), steps),
        st.tuples(st.just("correct"), st.integers(0, 10), st.integers(0, 3_000), steps),
        st.tuples(st.just("project"), st.lists(requests, max_size=4), requests),
        st.tuples(st.just("snapshot")),
    ),
    max_size=40,
)


def _apply(backend, clock, limits, op, rids):
    kind = op[0]
    if kind == "acquire":
        rid = f"r{len(rids)}"
        rids.append(rid)
        return backend.try_acquire(KEY, limits, op[1], rid)
    if kind == "settle":
        if not rids:
            return None
        answered = None if op[4] is None else clock.now() - op[4]
        return backend.settle(
            KEY, limits, rids[op[1] % len(rids)], op[2], op[3], answered_at=answered
        )
    if kind == "release":
        return backend.release(KEY, rids[op[1] % len(rids)], keep_request=op[2]) if rids else None
    if kind == "cooldown":
        return backend.cooldown(KEY, clock.now() + op[1])
    if kind == "correct":
        return backend.correct(
            KEY,
            limits,
            RateLimitHeaders(
                remaining_requests=op[1], remaining_tokens=op[2], reset_tokens_s=op[3] or None
            ),
        )
    if kind == "project":
        return backend.project(KEY, limits, op[1], op[2])
    if kind == "snapshot":
        return backend.snapshot(KEY)
    raise AssertionError(kind)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(limits=limits_strategy, ops=operations)
def test_every_answer_matches_the_memory_backend(redis_server, limits, ops):
    clock = VirtualClock(start=1_000.0, epoch=1_750_000_000.0)
    memory = MemoryBackend(clock)
    shared = RedisBackend(redis_server.url, prefix=f"eq-{uuid.uuid4().hex[:8]}", clock=clock)
    memory_rids: list[str] = []
    redis_rids: list[str] = []
    try:
        for step, op in enumerate(ops):
            if op[0] == "advance":
                clock.advance(op[1])
                continue
            expected = _apply(memory, clock, limits, op, memory_rids)
            got = _apply(shared, clock, limits, op, redis_rids)
            assert got == expected, f"step {step}: {op}"
        assert shared.snapshot(KEY) == memory.snapshot(KEY)
        # Keys are deleted when empty and created again later: each must carry an expiry.
        client = redis.Redis.from_url(redis_server.url)
        try:
            assert all(client.pttl(k) > 0 for k in client.keys(f"{shared.prefix}:*"))
        finally:
            client.close()
    finally:
        shared.close()


def test_a_long_log_walk_matches_across_batches(redis_server):
    """More entries than one LRANGE batch, some settled late, still agree."""
    clock = VirtualClock(start=5_000.0)
    limits = RateLimits(rpm=400, tpm=200_000, request_margin=0, token_headroom=0)
    memory = MemoryBackend(clock)
    shared = RedisBackend(redis_server.url, prefix=f"eq-{uuid.uuid4().hex[:8]}", clock=clock)
    backends = (memory, shared)
    try:
        for n in range(300):
            for backend in backends:
                backend.try_acquire(KEY, limits, Request(400, 200), f"r{n}")
            clock.advance(0.01)
        clock.advance(1.0)
        for n in range(0, 300, 7):
            answers = {
                b.settle(KEY, limits, f"r{n}", 400, 10, answered_at=clock.now() - 0.5)
                for b in backends
            }
            assert answers == {True}
        clock.advance(58.5)
        for n, request in enumerate((Request(100_000, 0), Request(10, 10), Request(80_000, 0))):
            decisions = {b.try_acquire(KEY, limits, request, f"x{n}") for b in backends}
            assert len(decisions) == 1, decisions
        ahead = [Request(50_000, 0)] * 3
        assert len({b.project(KEY, limits, ahead, Request(1, 1)) for b in backends}) == 1
        assert shared.snapshot(KEY) == memory.snapshot(KEY)
    finally:
        shared.close()
