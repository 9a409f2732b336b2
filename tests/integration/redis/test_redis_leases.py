"""In-flight slots are leases, on a real redis-server: a SIGKILLed worker frees its slots.

Pods are killed mid-call all the time (OOM, deploys, preemption). A worker that held every
``max_concurrency`` slot of a model and was killed must not stop the fleet: its slots are
freed once it stops renewing them (``lease_s``), while a live worker's long calls keep theirs.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid

import pytest
import redis_workers

from llm_routing.schedule import RateScheduler
from llm_routing.schedule.redis import RedisBackend
from llm_routing.sim import SimModel, SimulatedProvider
from tests.support.sim import chat

KEY = "openai:gpt-4o-mini"
SLOTS = 3
LEASE = 2.0  # short, so the test takes seconds; the renewal runs every third of it


@pytest.mark.slow
def test_a_sigkilled_worker_frees_its_concurrency_slots_within_the_lease(redis_server):
    prefix = f"lease-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    started = context.Queue()
    worker = context.Process(
        target=redis_workers.hold_slots_and_hang,
        args=(redis_server.url, prefix, LEASE, SLOTS, started),
    )
    worker.start()
    backend = RedisBackend(redis_server.url, prefix=prefix, lease_s=LEASE)
    try:
        assert started.get(timeout=120) == "in flight"
        assert backend.snapshot(KEY)["in_flight"] == SLOTS
        # While the worker lives, it renews: its calls keep their slots past several leases.
        alive_until = backend.now() + 3 * LEASE
        while backend.now() < alive_until:
            time.sleep(0.1)
        assert backend.snapshot(KEY)["in_flight"] == SLOTS

        os.kill(worker.pid, signal.SIGKILL)
        worker.join(30)
        assert worker.exitcode == -signal.SIGKILL
        killed_at = backend.now()
        with SimulatedProvider([SimModel(name="gpt-4o-mini")], seed=0) as sim:
            scheduler = RateScheduler(
                limits={KEY: {"max_concurrency": SLOTS}},
                backend=backend,
                clock=backend.server_clock,
                max_wait=30 * LEASE,
            )
            model = scheduler | chat(sim, "gpt-4o-mini")
            # Waits on the concurrency limit until the dead worker's leases run out.
            answer = model.invoke("hello after the crash")
            freed_after = backend.now() - killed_at
        print(f"slots of the SIGKILLed worker freed {freed_after:.2f}s after the kill")
        assert answer.content
        # Freed within one lease of the kill (plus the renewal period it may have just done).
        assert freed_after <= LEASE + 1.0
        assert scheduler.stats()["admitted"] == 1
        assert backend.snapshot(KEY)["in_flight"] == 0
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join(30)
        backend.close()


def test_without_leases_a_dead_workers_slot_is_held_until_released(make_backend):
    # lease_s=None: the behaviour before leases, for a deployment that wants it explicitly.
    backend = make_backend(lease_s=None)
    from llm_routing.schedule.policy import RateLimits, Request

    limits = RateLimits(max_concurrency=1)
    assert backend.try_acquire(KEY, limits, Request(1, 1), "dead").admit
    refused = backend.try_acquire(KEY, limits, Request(1, 1), "next")
    assert (refused.admit, refused.at, refused.binding) == (False, float("inf"), "concurrency")
    assert backend.renew(KEY, ["dead"]) == 0
    assert backend.release(KEY, "dead") is True
    assert backend.try_acquire(KEY, limits, Request(1, 1), "next").admit


def test_lease_s_is_validated(redis_server):
    for bad, error in (
        (0, ValueError),
        (-1.0, ValueError),
        (float("inf"), ValueError),
        ("30", TypeError),
        (True, TypeError),
    ):
        with pytest.raises(error, match="lease_s"):
            RedisBackend(redis_server.url, lease_s=bad)  # type: ignore[arg-type]
