"""Fixtures for the simulated provider's integration tests: one server per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_routing.sim import SimModel, SimulatedProvider
from tests.support.sim import fresh, serving

# These models pin exact sliding minute windows (the simulator's historical behaviour);
# per-second enforcement has tests of its own (test_sim_enforcement_*, test_scheduler_enforcement).
SLIDING = {"enforcement": "sliding", "failed_requests_count": False}

SIM_MODELS = [
    SimModel(name="gpt-4o-mini", aliases=("openai:gpt-4o-mini",)),
    SimModel(name="tiny-window", context_window=300, max_output_tokens=100),
    SimModel(name="two-rpm", rpm=2, tpm=1_000_000, **SLIDING),
    SimModel(name="small-tpm", tpm=200, **SLIDING),
    SimModel(name="one-rpd", rpd=1),
    SimModel(name="prepaid", quota_requests=1),
    SimModel(name="prepaid-tokens", quota_tokens=30),
    SimModel(name="faulty"),
]


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimulatedProvider]:
    yield from serving(SIM_MODELS)


@pytest.fixture
def sim(sim_server: SimulatedProvider) -> Iterator[SimulatedProvider]:
    """The shared simulator, with empty windows, counters and no faults."""
    yield from fresh(sim_server)
