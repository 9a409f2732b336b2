"""Four OS processes share one provider's limits through Redis, over real HTTP.

Each process runs its own RateScheduler (two with sync ``batch``, two with async ``abatch``) on
one RedisBackend prefix, and sends bursts through real ``ChatOpenAI`` clients to one simulated
provider in this process. The simulator enforces the same limits with its own exact windows,
so anything the shared scheduler let through wrongly comes back as a real 429.

The minute window is real time here (Redis ``TIME``), so each burst is sized to fit one window:
4 x 40 requests at RPM 120 (118 after the margin), then 4 x 40 requests at a TPM that binds
long before the RPM does. ``max_wait=2`` makes the requests that cannot fit refuse at once.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis_workers

from llm_routing.sim import SimModel, SimulatedProvider

# These models pin exact sliding minute windows (the simulator's historical behaviour);
# per-second enforcement has tests of its own (test_sim_enforcement_*, test_scheduler_enforcement).
SLIDING = {"enforcement": "sliding", "failed_requests_count": False}

pytestmark = pytest.mark.slow

WORKERS = 4
PER_WORKER = 40
RPM = 120
TPM = 2_000
MAX_TOKENS = 20
RPM_MODEL = "gpt-4o-mini"
TPM_MODEL = "gpt-4.1-nano"


@pytest.fixture(scope="module")
def run(redis_server) -> Iterator[dict[str, Any]]:
    models = [
        SimModel(name=RPM_MODEL, rpm=RPM, tpm=10_000_000, **SLIDING),
        SimModel(name=TPM_MODEL, rpm=RPM, tpm=TPM, **SLIDING),
    ]
    bursts = [
        # Bursts that fill one sliding window exactly: pacing would spread them past it.
        (
            RPM_MODEL,
            {"rpm": RPM, "tpm": 10_000_000, "rpd": None, "pacing": "burst"},
            PER_WORKER,
            MAX_TOKENS,
        ),
        (
            TPM_MODEL,
            {"rpm": RPM, "tpm": TPM, "rpd": None, "pacing": "burst"},
            PER_WORKER,
            MAX_TOKENS,
        ),
    ]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    prefix = f"mp-{uuid.uuid4().hex[:8]}"
    with SimulatedProvider(models, seed=0) as sim:
        processes = [
            context.Process(
                target=redis_workers.burst,
                args=(redis_server.url, prefix, sim.base_url, bursts, n % 2 == 1, barrier, results),
            )
            for n in range(WORKERS)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=300) for _ in processes]
        for process in processes:
            process.join(60)
        stats = sim.stats()["models"]
    yield {
        "exit_codes": [p.exitcode for p in processes],
        "rpm": [o[0] for o in outcomes],
        "tpm": [o[1] for o in outcomes],
        "sim": stats,
    }


def _total(tallies: list[dict[str, Any]], field: str) -> int:
    return sum(t[field] for t in tallies)


def test_every_worker_finishes_cleanly(run):
    assert run["exit_codes"] == [0] * WORKERS
    assert [t["other"] for t in run["rpm"] + run["tpm"]] == [[]] * (2 * WORKERS)


def test_the_simulator_sends_zero_429s(run):
    for model in (RPM_MODEL, TPM_MODEL):
        assert sum(run["sim"][model]["rate_limited"].values()) == 0, model


def test_combined_admissions_fill_the_rpm_window_exactly(run):
    served = _total(run["rpm"], "served")
    assert served == RPM - 2  # the whole window, less the default margin, across 4 processes
    assert _total(run["rpm"], "refused") == WORKERS * PER_WORKER - served
    assert run["sim"][RPM_MODEL]["requests_served"] == served


def test_combined_tokens_stay_under_the_tpm_and_use_over_95_percent(run):
    admitted = run["sim"][TPM_MODEL]["tokens_admitted"]
    served = _total(run["tpm"], "served")
    assert served < RPM - 2  # the token limit, not the request limit, was binding
    assert admitted <= TPM
    assert admitted >= 0.95 * TPM
    assert _total(run["tpm"], "refused") == WORKERS * PER_WORKER - served
