"""A Redis restart without persistence under a router sharing its budget and windows on Redis.

The engine is the fault matrix's infrastructure rows (``benchmarks.reliability.infra``, the
``redis_restart`` row): a private redis-server killed and started again empty (no AOF, no RDB;
the session's shared server is not disturbed), the simulated provider over loopback HTTP, real
``ChatOpenAI`` clients, a `RedisLedger`-backed `CostTracker` and a `RedisBackend` scheduler
built the way ``build_router`` users build them. ``tests/reliability/test_reliability_infra.py``
asserts every cell of the row (each entry point); these tests spell out, on ``invoke``, what
its ``violations`` stand for.

Checked: the restart is detected; the warning or error names what was lost; the behaviour
follows ``on_state_lost`` (``"fail"`` refuses every call, and no request reaches the provider,
until the spend is re-seeded; ``"warn"`` carries on); and, failing closed, what was spent
before the restart plus what was spent after never passes the budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from benchmarks.reliability.infra import FAIL_NAMES, WARN_NAMES, WINDOWS_LOST, InfraHarness
from tests.support.redis import redis_binary

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def harness() -> Iterator[InfraHarness]:
    redis_binary()  # skips, with the install hint, without redis-server or the redis package
    with InfraHarness() as started:
        yield started


def test_fail_closed_refuses_until_re_seeded_and_never_passes_the_budget(harness):
    cell = harness.run_cell("redis_restart", "fail", "invoke")
    assert cell["violations"] == [], cell
    assert Decimal(cell["spent_before"]) > 0
    # Detected, and named: the ledger refuses (typed), the scheduler warns about its windows.
    assert cell["after_restart"] == "RedisLedgerStateLostError"
    for named in FAIL_NAMES:
        assert named in cell["message"]
    assert any(WINDOWS_LOST in w for w in cell["windows_warnings"])
    # Failing closed: the later calls are refused too, and none reaches the provider.
    assert cell["requests_while_refused"] == 0
    # Re-seeded with what was spent before, the router spends again, never past the budget.
    assert cell["served_after_reseed"] >= 1
    spent_after = Decimal(cell["spent_after"])
    assert Decimal(cell["spent_before"]) < spent_after <= Decimal(cell["budget_usd"])
    assert cell["in_flight_calls"] == 0


def test_warn_carries_on_from_zero_and_says_what_was_lost(harness):
    cell = harness.run_cell("redis_restart", "warn", "invoke")
    assert cell["violations"] == [], cell
    assert cell["after_restart"] == "served by gpt-4o-mini"
    for named in WARN_NAMES:
        assert named in cell["message"]
    # The spend starts again from $0: the risk the warning names, taken knowingly.
    assert cell["calls_since_restart"] == 1
