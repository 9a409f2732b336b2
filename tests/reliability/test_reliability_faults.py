"""The fault matrix: every fault × scope × entry point keeps the router's invariants.

The engine (``benchmarks.reliability.matrix``) runs each cell against the simulated provider
with real ChatOpenAI clients and lists what broke in ``violations``: a result from some model
or a typed error naming every attempt (a stream broken after its first chunk: an error noted
with its model), no hang past the liveness bound, nothing sent again after a success, and the
ledger and ``router.stats()`` agreeing with the simulator's counters. The matrix runs once per
module (four harnesses side by side, since cells mostly sleep); each cell is its own test.

The liveness bound in each cell is not a performance assertion: it is what the configured
timeouts, max_wait and retries allow, times the models tried, plus seconds of slack. A cell
over it means a call hung, not that it was slow.
"""

from __future__ import annotations

import pytest

from benchmarks.reliability.matrix import ENTRIES, FAULTS, SCOPES, Settings, cells, render, run

CELLS = cells()


@pytest.fixture(scope="module")
def matrix():
    return run(workers=4)


@pytest.fixture(scope="module")
def by_cell(matrix):
    return {(c["fault"], c["scope"], c["entry"]): c for c in matrix["cells"]}


@pytest.mark.parametrize(("fault", "scope", "entry"), CELLS, ids=["/".join(c) for c in CELLS])
def test_cell_keeps_every_invariant(by_cell, fault, scope, entry):
    cell = by_cell[(fault, scope, entry)]
    assert cell["violations"] == [], cell["outcome"]
    assert cell["elapsed_s"] <= cell["bound_s"]


def test_matrix_covers_every_fault_scope_and_entry_point():
    assert {f for f, _, _ in CELLS} == {f.name for f in FAULTS}
    assert {s for _, s, _ in CELLS} == set(SCOPES)
    assert {e for _, _, e in CELLS} == set(ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_model_failing_names_every_attempt(by_cell, entry):
    outcome = by_cell[("503", "all", entry)]["outcome"]
    assert "AllModelsFailed[transient,transient,transient]" in outcome


@pytest.mark.parametrize("entry", ["stream", "astream"])
@pytest.mark.parametrize("fault", ["drop", "malformed"])
def test_stream_broken_after_its_first_chunk_does_not_fall_back(by_cell, fault, entry):
    cell = by_cell[(fault, "primary", entry)]
    assert cell["outcome"] == "error after 2 chunks (gpt-4o-mini)"
    assert cell["requests"] == {"gpt-4o-mini": 1, "gpt-4o": 0, "gpt-4.1-mini": 0}


@pytest.mark.parametrize("entry", ["stream", "astream"])
@pytest.mark.parametrize("fault", ["drop_0", "malformed_0"])
def test_stream_broken_before_its_first_chunk_falls_back(by_cell, fault, entry):
    cell = by_cell[(fault, "primary", entry)]
    assert cell["outcome"] == "served by gpt-4o (1 retry)"
    assert cell["requests"] == {"gpt-4o-mini": 2, "gpt-4o": 1, "gpt-4.1-mini": 0}


@pytest.mark.parametrize("fault", ["429_retry_after", "429", "500", "timeout", "reset"])
def test_transient_first_request_failure_is_retried_on_the_same_model(by_cell, fault):
    cell = by_cell[(fault, "first", "invoke")]
    assert cell["outcome"] == "served by gpt-4o-mini (1 retry)"
    assert cell["requests"] == {"gpt-4o-mini": 2, "gpt-4o": 0, "gpt-4.1-mini": 0}


@pytest.mark.parametrize("fault", ["quota", "rpd"])
def test_quota_falls_back_without_a_retry(by_cell, fault):
    cell = by_cell[(fault, "primary", "invoke")]
    assert cell["outcome"] == "served by gpt-4o"
    assert cell["requests"]["gpt-4o-mini"] == 1


def test_render_prints_every_row_and_zero_violations(matrix):
    table = render(matrix)
    rows = {(c["fault"], c["scope"]) for c in matrix["cells"]}
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == len(rows) + 1
    assert f"cells: {len(CELLS)}, invariant violations: 0" in table


@pytest.mark.parametrize("enforcement", ["token_bucket", "sliding"])
def test_the_matrix_keeps_its_invariants_under_every_enforcement_mode(enforcement):
    # The full matrix runs against the documented default (quantized); the quick one (three
    # entry points) against the simulator's other modes.
    result = run(quick=True, settings=Settings(enforcement=enforcement), workers=4)
    assert result["totals"]["violations"] == 0, [
        (c["fault"], c["scope"], c["entry"], c["violations"])
        for c in result["cells"]
        if c["violations"]
    ]
