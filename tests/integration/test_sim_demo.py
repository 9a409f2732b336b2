"""The first demo: shows 429s and a context overflow without routing, and prints a report."""

from __future__ import annotations

import io

from rich.console import Console

from llm_routing.cli.demo import demo_main, demo_models, run_demo
from llm_routing.sim.latency import Latency


def test_demo_shows_rate_limits_and_context_overflows():
    report = run_demo(seed=0, models=demo_models(Latency.fast()), progress=False)
    assert report.requests == 104
    assert report.models["sim-mini"].context_overflows == 3
    assert report.models["sim-mini"].rate_limited_requests > 0
    assert report.models["sim-standard"].rate_limited_tokens > 0
    assert sum(m.other_errors for m in report.models.values()) == 0
    served = report.server_stats["requests_served"]
    assert served == report.successes


def test_demo_report_prints_a_row_per_model_and_the_totals():
    report = run_demo(seed=0, models=demo_models(Latency.fast()), progress=False)
    text = str(report)
    for name in ("sim-mini", "sim-standard", "sim-long", "total"):
        assert name in text
    assert "rate-limited (429)" in text


def test_demo_main_prints_the_report_and_exits_zero(capsys):
    assert demo_main(["--no-progress"]) == 0
    assert "sim-standard" in capsys.readouterr().out


def test_demo_progress_bar_renders_to_the_given_console():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    report = run_demo(seed=0, models=demo_models(Latency.fast()), console=console, progress=True)
    assert report.requests == 104
    assert "sending workload" in buffer.getvalue()
