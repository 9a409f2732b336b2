"""Soak: 10,000 requests through one router in about 60 s against the simulator at its limits.

One run of ``benchmarks.reliability.soak`` (the engine ``python -m benchmarks.reliability``
reports from) feeds every test below; each asserts one invariant of that run. Nothing here
bounds time: how fast the machine drove the load is reported, not asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.reliability.soak import MODEL_NAMES, run, violations

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def soak() -> dict[str, Any]:
    return run()


def test_every_request_has_exactly_one_outcome(soak):
    assert soak["requests"]["lost"] == 0
    assert soak["requests"]["duplicated"] == 0
    assert sum(soak["requests"]["outcomes"].values()) == soak["config"]["requests"]


def test_every_request_got_an_answer(soak):
    assert soak["requests"]["errors"] == {}, soak["requests"]["error_examples"]


def test_sync_and_async_entry_points_all_ran(soak):
    assert set(soak["requests"]["by_entry_point"]) == {
        "ainvoke",
        "astream",
        "invoke",
        "stream",
        "batch",
    }


def test_the_simulator_sent_no_429(soak):
    assert soak["sim"]["rate_limited"] == {"requests": 0, "tokens": 0}


def test_the_scheduler_saw_no_429(soak):
    assert soak["scheduler"]["rate_limit_errors"] == 0
    assert soak["scheduler"]["retries"] == 0


def test_the_simulator_received_each_request_once(soak):
    n = soak["config"]["requests"]
    assert soak["sim"]["received"] == soak["sim"]["served"] == n


def test_router_stats_count_every_request(soak):
    router = soak["router"]
    assert router["total_requests"] == soak["config"]["requests"]
    assert router["failed_requests"] == 0
    assert router["primary_requests"] + router["fallback_requests"] == router["total_requests"]


def test_router_scheduler_ledger_and_simulator_agree_per_model(soak):
    for row in soak["models"]:
        assert row["router_served"] == row["sim_served"], row
        assert row["tracker_calls"] == row["sim_served"], row
        assert row["ours_served"] == row["sim_served"], row
        assert row["scheduler_admitted"] == row["sim_served"], row


def test_ledger_call_count_equals_requests_served(soak):
    assert soak["tracker"]["calls"] == soak["sim"]["served"]
    assert soak["tracker"]["unpriced_calls"] == 0


def test_the_primary_filled_up_and_overflow_reached_every_fallback(soak):
    primary, *fallbacks = soak["models"]
    assert [row["model"] for row in soak["models"]] == [f"openai:{n}" for n in MODEL_NAMES]
    assert primary["router_failures"].get("rate_limit", 0) > 0, primary
    assert all(row["sim_served"] > 0 for row in fallbacks), fallbacks


def test_no_model_served_more_than_its_rpm_in_any_minute(soak):
    # Counted on the simulator's own timeline of answers; its limiter refused nothing either.
    for row in soak["models"]:
        assert row["peak_60s"] <= row["rpm"], row


def test_memory_after_warm_up_grows_only_by_what_the_ledger_keeps(soak):
    memory = soak["memory"]
    assert memory["unexplained_kb"] <= memory["bound_kb"], memory


def test_no_asyncio_task_is_left_after_the_run(soak):
    assert soak["tasks"]["leaked"] == []


def test_no_thread_is_left_after_the_executor_shuts_down(soak):
    assert soak["threads"]["leaked"] == []


def test_the_report_lists_no_broken_invariant(soak):
    assert violations(soak) == []
