"""The capacity-planning engine: duration, rate and workload parsing, and runs in virtual time."""

from __future__ import annotations

import json

import pytest

from llm_routing.simulate import (
    Arrival,
    SimulationReport,
    parse_duration,
    parse_rate,
    parse_workload,
    rate_workload,
    read_workload,
    simulate,
)

MINI = "openai:gpt-4o-mini"
HAIKU = "anthropic:claude-haiku-4-5"


def line(**fields) -> str:
    return json.dumps(fields)


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10m", 600.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("600", 600.0),
        ("2.5min", 150.0),
        ("1d", 86_400.0),
        ("250ms", 0.25),
        ("10 minutes", 600.0),
    ],
)
def test_parse_duration_reads_units_and_bare_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not a duration"),
        ("abc", "is not a duration"),
        ("-5m", "is not a duration"),
        ("10x", "unknown unit 'x'"),
        ("0", "longer than zero"),
        ("0m", "longer than zero"),
        ("10m5", "must stand alone"),
    ],
)
def test_parse_duration_rejects_bad_text_saying_why(text, says):
    with pytest.raises(ValueError, match=says) as info:
        parse_duration(text)
    assert "10m, 90s" in str(info.value)


def test_parse_duration_rejects_a_non_string():
    with pytest.raises(TypeError, match="duration must be a string"):
        parse_duration(600)  # type: ignore[arg-type]


# --- rates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("20/s", 20.0),
        ("20 / s", 20.0),
        ("600/min", 10.0),
        ("600/m", 10.0),
        ("3600/h", 1.0),
        ("5rps", 5.0),
        ("1200rpm", 20.0),
        ("20", 20.0),
        ("0.5/s", 0.5),
    ],
)
def test_parse_rate_reads_per_unit_forms(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not a rate"),
        ("fast", "is not a rate"),
        ("20/x", "unknown unit 'x'"),
        ("20/ms", "unknown unit 'ms'"),
        ("0/s", "more than zero"),
    ],
)
def test_parse_rate_rejects_bad_text_saying_why(text, says):
    with pytest.raises(ValueError, match=says) as info:
        parse_rate(text)
    assert "20/s" in str(info.value)


# --- workloads --------------------------------------------------------------------------------


def test_parse_workload_reads_lines_sorted_by_time_and_skips_blank_lines():
    lines = [
        line(t=2.0, prompt_tokens=10, max_tokens=5),
        "",
        line(t=0.5, prompt_tokens=800, max_tokens=256, output_tokens=100),
    ]
    assert parse_workload(lines) == [
        Arrival(0.5, 800, 256, 100),
        Arrival(2.0, 10, 5),
    ]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ('{"t": 1, "prompt_tokens": 5', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (
            line(t=1, prompt_tokens=5, max_token=5),
            "unknown field 'max_token'; did you mean 'max_tokens'",
        ),
        (line(t=1, prompt_tokens=5), "missing field 'max_tokens'"),
        (line(t=1, prompt_tokens="5", max_tokens=5), "prompt_tokens must be an integer"),
        (line(t=-1, prompt_tokens=5, max_tokens=5), "t must be a finite number of seconds >= 0"),
        (line(t=1, prompt_tokens=0, max_tokens=5), "prompt_tokens must be >= 1"),
        (line(t=1, prompt_tokens=5, max_tokens=5, output_tokens=6), "cannot exceed max_tokens"),
    ],
)
def test_parse_workload_names_the_source_and_line_of_a_bad_request(bad, says):
    lines = [line(t=0, prompt_tokens=5, max_tokens=5), bad]
    with pytest.raises(ValueError, match=says) as info:
        parse_workload(lines, source="load.jsonl")
    assert str(info.value).startswith("load.jsonl:2: ")


def test_parse_workload_without_requests_is_an_error():
    with pytest.raises(ValueError, match="no requests"):
        parse_workload(["", "  "])


def test_read_workload_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_workload(tmp_path / "nope.jsonl")


def test_read_workload_reads_a_file(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text(line(t=1, prompt_tokens=3, max_tokens=4) + "\n")
    assert read_workload(path) == [Arrival(1, 3, 4)]


def test_rate_workload_is_reproducible_and_spreads_prompt_sizes():
    first = rate_workload(10, 60, prompt_tokens=400, max_tokens=100, seed=7)
    assert first == rate_workload(10, 60, prompt_tokens=400, max_tokens=100, seed=7)
    assert first != rate_workload(10, 60, prompt_tokens=400, max_tokens=100, seed=8)
    assert 450 <= len(first) <= 750  # Poisson: 600 expected
    assert all(0 < a.t < 60 for a in first)
    assert all(200 <= a.prompt_tokens <= 600 and a.max_tokens == 100 for a in first)
    assert len({a.prompt_tokens for a in first}) > 10


@pytest.mark.parametrize(("rate", "duration"), [(0, 10), (5, 0), (float("inf"), 10)])
def test_rate_workload_rejects_non_positive_rate_or_duration(rate, duration):
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        rate_workload(rate, duration)


# --- runs in virtual time ---------------------------------------------------------------------


def every(seconds: float, until: float, prompt_tokens: int = 300, max_tokens: int = 64):
    return [Arrival(i * seconds, prompt_tokens, max_tokens) for i in range(int(until / seconds))]


def test_ten_simulated_minutes_are_served_without_a_429():
    config = {"router": {"primary": MINI, "fallbacks": [HAIKU]}}
    report = simulate(config, every(0.5, 600), 600, seed=1)
    assert report.requests == report.answered == 1200
    assert report.provider_429s == 0
    assert report.simulated_s >= 600
    assert report.models[MINI].served == 1200
    assert report.total_cost_usd > 0


def test_simulate_override_limits_bind_the_provider_and_the_scheduler_falls_back():
    config = {
        "router": {"primary": MINI, "fallbacks": [HAIKU], "max_wait": 10},
        "simulate": {"models": {MINI: {"rpm": 10}}},
    }
    report = simulate(config, every(1.0, 300), 300, seed=1)
    mini = report.models[MINI]
    assert mini.limits["rpm"] == 10
    assert mini.served <= 10 * 6  # five windows of 10, and the drain
    assert report.fallbacks["rate_limit"] > 0
    assert report.models[HAIKU].served > 0
    assert report.provider_429s == 0


def test_a_prompt_too_long_for_the_primary_goes_to_the_large_context_model():
    config = {"router": {"primary": MINI, "large_context": ["openai:gpt-4.1-mini"]}}
    workload = [Arrival(0, 150_000, 100), Arrival(1, 100, 10)]
    report = simulate(config, workload, 2, seed=0)
    assert report.fallbacks["context"] == 1
    assert report.models["openai:gpt-4.1-mini"].served == 1
    assert report.models[MINI].served == 1
    assert report.models[MINI].context_overflows == 0  # the guard refused before sending


def test_a_budget_in_the_config_stops_spending_and_the_failures_say_why():
    config = {"router": {"primary": MINI, "budget_usd": 0.001}}
    report = simulate(config, every(1.0, 60, prompt_tokens=2_000, max_tokens=500), 60, seed=0)
    assert report.failed.get("budget", 0) > 0
    assert report.total_cost_usd <= 0.001


def test_price_overrides_change_the_cost():
    workload = every(1.0, 30)
    base = simulate({"router": {"primary": MINI}}, workload, 30, seed=0)
    priced = simulate(
        {
            "router": {"primary": MINI},
            "simulate": {"models": {MINI: {"input_price": 1.5, "output_price": 6.0}}},
        },
        workload,
        30,
        seed=0,
    )
    assert priced.total_cost_usd == pytest.approx(base.total_cost_usd * 10, rel=1e-6)


def test_the_same_seed_gives_the_same_report():
    config = {"router": {"primary": MINI, "fallbacks": [HAIKU], "max_wait": 5}}
    workload = rate_workload(5, 120, seed=3)
    first = simulate(config, workload, 120, seed=3).to_dict()
    second = simulate(config, workload, 120, seed=3).to_dict()
    first.pop("wall_s")
    second.pop("wall_s")
    assert first == second


def test_requests_after_the_duration_are_not_sent_and_a_note_says_so():
    report = simulate({"router": {"primary": MINI}}, every(1.0, 20), 10, seed=0)
    assert report.requests == 10
    assert any("were not sent" in note for note in report.notes)


def test_report_text_has_a_row_per_model_and_the_summary():
    report = simulate({"router": {"primary": MINI, "fallbacks": [HAIKU]}}, every(1, 30), 30)
    assert isinstance(report, SimulationReport)
    text = str(report)
    for word in (MINI, HAIKU, "total", "fallbacks by reason", "429s", "per hour"):
        assert word in text


def test_an_unknown_model_in_the_config_is_a_clear_error():
    with pytest.raises(ValueError, match=r"router model 'openai:gpt-nope'.*llm-routing models"):
        simulate({"router": {"primary": "openai:gpt-nope"}}, every(1, 5), 5)


def test_a_config_error_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text('[router]\nprimary = "openai:gpt-4o-mini"\nmax_wait = -3\n')
    with pytest.raises(ValueError, match=r"router\.max_wait: must be >= 0.*router\.toml"):
        simulate(path, every(1, 5), 5)


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"latncy": {}}, "simulate.latncy: unknown key"),
        ({"latency": {"ttft": -1}}, r"simulate\.latency\.ttft: expected a finite number >= 0"),
        ({"models": {HAIKU: {"rpm": 5}}}, "names no model of the router"),
        ({"models": {MINI: {"rpn": 5}}}, "did you mean 'rpm'"),
        ({"models": {MINI: {"rpm": 0}}}, "expected an integer limit >= 1"),
    ],
)
def test_simulate_section_errors_name_the_dotted_key(section, says):
    with pytest.raises(ValueError, match=says):
        simulate({"router": {"primary": MINI}, "simulate": section}, every(1, 5), 5)


def test_simulate_rejects_an_empty_workload_and_a_bad_duration():
    with pytest.raises(ValueError, match="no requests"):
        simulate({"router": {"primary": MINI}}, [], 10)
    with pytest.raises(ValueError, match="duration_s"):
        simulate({"router": {"primary": MINI}}, every(1, 5), 0)


# --- the core install -------------------------------------------------------------------------

_WITHOUT_SIM_EXTRA = """
import sys
for blocked in ("starlette", "uvicorn"):
    sys.modules[blocked] = None  # as if the sim extra were not installed
from llm_routing.cli import main
code = main(["simulate", "--config", sys.argv[1], "--rate", "2/s", "--duration", "30s", "--json"])
try:
    from llm_routing.sim import SimulatedProvider
except ImportError as exc:
    print("HINT:", exc)
sys.exit(code)
"""


def test_simulate_runs_without_the_sim_extra_and_the_server_import_says_how_to_get_it(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "router.toml"
    config.write_text('[router]\nprimary = "openai:gpt-4o-mini"\n')
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SIM_EXTRA, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[: done.stdout.index("HINT:")])
    assert report["answered"] == report["requests"] > 0
    assert "pip install 'llm-routing[sim]'" in done.stdout
