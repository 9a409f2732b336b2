"""The fault matrix's infrastructure rows: a worker SIGKILLed mid-call, Redis restarted empty.

The engine (``benchmarks.reliability.infra``) runs each fault × scope × entry point against
real parts (a private redis-server, a spawned worker process killed with SIGKILL, the simulated
provider, real ChatOpenAI clients) and lists what broke in ``violations``. The rows run once
per module; each cell is its own test.

The bounds are not performance assertions: for a dead worker, one lease (2 s here) plus its
renewal period plus seconds of slack after the kill; for a restart, the socket timeouts after
Redis is back, plus slack. A cell over its bound means a call stayed stuck.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from benchmarks.reliability import __main__ as report
from benchmarks.reliability.infra import (
    FAULTS,
    SCOPE_LABELS,
    InfraSettings,
    cells,
    render,
    run,
)
from benchmarks.reliability.matrix import ENTRIES
from tests.support.redis import redis_binary

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CELLS = cells()


@pytest.fixture(scope="module")
def rows():
    redis_binary()  # skips, with the install hint, without redis-server or the redis package
    result = run()
    assert result["skipped"] is None
    return result


@pytest.fixture(scope="module")
def by_cell(rows):
    return {(c["fault"], c["scope"], c["entry"]): c for c in rows["cells"]}


@pytest.mark.parametrize(("fault", "scope", "entry"), CELLS, ids=["/".join(c) for c in CELLS])
def test_cell_keeps_every_invariant(by_cell, fault, scope, entry):
    cell = by_cell[(fault, scope, entry)]
    assert cell["violations"] == [], cell["outcome"]
    assert cell["elapsed_s"] <= cell["bound_s"]


def test_rows_cover_both_faults_their_scopes_and_every_entry_point():
    assert (
        {f for f, _, _ in CELLS} == {"worker_sigkill", "redis_restart"} == {f.name for f in FAULTS}
    )
    assert {(f, s) for f, s, _ in CELLS} == {
        ("worker_sigkill", "slots_and_holds"),
        ("redis_restart", "fail"),
        ("redis_restart", "warn"),
    }
    assert {e for _, _, e in CELLS} == set(ENTRIES)
    assert set(SCOPE_LABELS) == {s for _, s, _ in CELLS}


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_sigkilled_worker_frees_its_slots_and_budget_for_the_fleet(by_cell, entry):
    cell = by_cell[("worker_sigkill", "slots_and_holds", entry)]
    slots = InfraSettings().slots
    # The dead worker held every slot and left no room in the budget, and renewed while alive.
    assert cell["held_before_kill"]["in_flight"] == slots
    assert cell["held_a_lease_later"] == cell["held_before_kill"]
    held = Decimal(cell["held_before_kill"]["held"])
    assert Decimal(str(cell["budget_usd"])) - held < held / slots
    # After the kill every call was served by the primary, whose slots it had held.
    assert cell["served"] == cell["calls"] == (2 if "batch" in entry else 1)
    assert cell["requests"] == {"gpt-4o-mini": cell["calls"], "gpt-4o": 0, "gpt-4.1-mini": 0}
    # Nothing is left in flight or held, and the spend is within the budget.
    assert cell["after"]["in_flight"] == 0
    assert Decimal(cell["after"]["held"]) == 0
    assert 0 < Decimal(cell["after"]["spent"]) <= Decimal(str(cell["budget_usd"]))


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_redis_restart_refuses_with_fail_and_carries_on_with_warn(by_cell, entry):
    fail = by_cell[("redis_restart", "fail", entry)]
    assert set(fail["after_restart"].removeprefix("2× ").split("; ")) == {
        "RedisLedgerStateLostError"
    }
    assert fail["requests_while_refused"] == 0
    assert Decimal(fail["spent_after"]) <= Decimal(fail["budget_usd"])
    warn = by_cell[("redis_restart", "warn", entry)]
    assert warn["served"] == warn["calls"] == warn["calls_since_restart"]


def test_render_prints_every_row_and_zero_violations(rows):
    table = render(rows)
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 3 + 1
    assert "| worker SIGKILLed mid-call |" in table
    assert "| Redis restarted without persistence | on_state_lost='fail' |" in table
    assert f"cells: {len(CELLS)}, invariant violations: 0" in table


def test_the_report_runs_the_rows_after_the_matrix():
    assert list(report.PARTS)[:2] == ["matrix", "infra"]
    assert report._violations({"totals": {"violations": 2}}) == 2
    assert render({"skipped": "redis-server is not installed"}).endswith("not installed")
