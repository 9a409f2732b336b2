"""Smoke test of the enforcement goodput benchmark's engine (benchmarks/goodput_enforcement.py).

The numbers themselves come from ``python -m benchmarks.goodput --part enforcement``; here a
few seconds of a small closed loop check that a row runs end to end over HTTP and reports the
simulator's own counts, and the computed "shortest" bound.
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.goodput import SimProcess
from benchmarks.goodput_enforcement import E_RPM, E_TPM, run_row, shortest, sim_fields


def test_shortest_is_littles_law_where_nothing_bursts_and_the_service_time_under_sliding() -> None:
    quantized = shortest("quantized")
    assert quantized["p50_s"] == pytest.approx(20.0, abs=0.05)  # N/r = 200 / (600/60)
    assert quantized["goodput"] == pytest.approx(1.0, abs=0.01)
    bucket = shortest("token_bucket")
    assert bucket["p50_s"] == pytest.approx(20.0, abs=0.05)
    assert bucket["goodput"] == pytest.approx(4 / 3, abs=0.01)  # the full bucket, then refill
    sliding = shortest("sliding")
    assert sliding["p50_s"] == pytest.approx(sliding["service_s"])
    assert sliding["p99_s"] == pytest.approx(60.0, abs=0.2)


@pytest.mark.slow
def test_rows_run_end_to_end_and_count_the_simulators_429s() -> None:
    factor = 5.0
    with SimProcess(factor, E_RPM, E_TPM, sim_fields("quantized", False)) as sim:
        ours = asyncio.run(
            run_row("quantized", "ours", sim.url, sim.clock, factor, callers=30, duration_s=8.0)
        )
        bare = asyncio.run(
            run_row("quantized", "none", sim.url, sim.clock, factor, callers=30, duration_s=4.0)
        )
    assert ours["completed"] >= 40  # ~10 a second, less the wake-ups' lateness x5
    assert ours["provider_429s"] == 0
    assert ours["scheduler"]["refused_max_wait"] == 0
    assert ours["p50_s"] <= ours["p99_s"]
    assert bare["provider_429s"] > 0
    assert bare["provider_429s_by_cause"].keys() == {"per_second"}
    # Requests in flight when the row ends are counted by the simulator only.
    assert 0 < bare["client_429s"] <= bare["provider_429s"]
