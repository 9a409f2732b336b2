"""``llm-routing simulate`` as a user runs it: a subprocess, a config and a workload on disk."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

MINI = "openai:gpt-4o-mini"
HAIKU = "anthropic:claude-haiku-4-5"
CONFIG = f"""\
[router]
primary = "{MINI}"
fallbacks = ["{HAIKU}"]
tier = "tier1"
max_wait = 30
"""
TIGHT = (
    CONFIG
    + f"""
[simulate]
latency = {{ ttft = 0.5, per_token = 0.005, jitter = 0.1 }}

[simulate.models."{MINI}"]
rpm = 10
"""
)
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY")


def simulate(command: str, cwd: Path, env: dict[str, str] | None = None):
    """Run ``llm-routing simulate <command>`` (words split on spaces) in ``cwd``."""
    environment = {k: v for k, v in os.environ.items() if k not in KEYS}
    environment["COLUMNS"] = "200"
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llm_routing.cli", "simulate", *command.split()],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=300,
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "router.toml").write_text(CONFIG)
    (tmp_path / "tight.toml").write_text(TIGHT)
    rng = random.Random(0)
    lines = [
        json.dumps({"t": float(i), "prompt_tokens": rng.randint(100, 1_500), "max_tokens": 200})
        for i in range(600)
    ]
    (tmp_path / "workload.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_ten_minutes_of_a_workload_file_add_up(files):
    done = simulate(
        "--config router.toml --workload workload.jsonl --duration 10m --json", cwd=files
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["duration_s"] == 600
    assert report["simulated_s"] >= 599
    assert report["requests"] == 600
    assert report["answered"] + sum(report["failed"].values()) == 600
    served = sum(m["served"] for m in report["models"].values())
    assert served == report["answered"]
    assert report["provider_429s"] == 0  # the scheduler kept every model inside its limits
    assert set(report["models"]) == {MINI, HAIKU}
    assert report["total_cost_usd"] > 0
    costs = [m["cost_usd"] for m in report["models"].values()]
    assert sum(costs) == pytest.approx(report["total_cost_usd"])


def test_rate_form_prints_a_table_with_the_throughput_and_no_429(files):
    done = simulate("--config router.toml --rate 2/s --duration 10m", cwd=files)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "10.0 min of requests" in out and "last answer at" in out
    for text in (MINI, "req/min", "RPM limit", "total", "fallbacks by reason", "per hour"):
        assert text in out
    assert "429s the providers returned: 0" in out


def test_tight_limits_fall_back_without_a_single_429(files):
    done = simulate("--config tight.toml --rate 60/min --duration 5m --seed 2 --json", cwd=files)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    mini = report["models"][MINI]
    assert mini["limits"]["rpm"] == 10
    assert mini["served"] <= 10 * 6  # five one-minute windows, plus the drain
    assert report["fallbacks"]["rate_limit"] > 0
    assert report["models"][HAIKU]["served"] > 0
    assert report["provider_429s"] == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("--config router.toml --rate fast", "argument --rate: rate 'fast' is not a rate"),
        ("--config router.toml --rate 2/s --duration soon", "argument --duration"),
        ("--config missing.toml --rate 2/s", "--config missing.toml: no such file"),
        ("--config router.toml", "one of the arguments --workload --rate is required"),
        ("--config router.toml --rate 2/s --workload workload.jsonl", "not allowed with"),
        ("--config router.toml --workload bad.jsonl", "bad.jsonl:2: unknown field 'prompt'"),
        ("--config typo.toml --rate 1/s", "router.primray: unknown key; did you mean 'primary'?"),
    ],
)
def test_bad_arguments_are_usage_errors_that_say_what_is_wrong(files, args, says):
    (files / "bad.jsonl").write_text(
        '{"t": 0, "prompt_tokens": 5, "max_tokens": 5}\n{"t": 1, "prompt": 5, "max_tokens": 5}\n'
    )
    (files / "typo.toml").write_text(f'[router]\nprimray = "{MINI}"\n')
    done = simulate(args, cwd=files)
    assert done.returncode == 2
    assert says in done.stderr
    assert "llm-routing simulate: error:" in done.stderr
    assert done.stdout == ""


def test_plot_without_matplotlib_is_a_clear_error(files):
    blocker = files / "no-matplotlib" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        'raise ImportError("matplotlib is blocked by this test")\n'
    )
    done = simulate(
        "--config router.toml --rate 1/s --duration 1m --plot out.png",
        cwd=files,
        env={"PYTHONPATH": str(files / "no-matplotlib")},
    )
    assert done.returncode == 2
    assert "plotting needs matplotlib, which is not installed" in done.stderr
    assert "pip install matplotlib" in done.stderr
    assert not (files / "out.png").exists()


def test_plot_writes_a_png(files):
    pytest.importorskip("matplotlib")
    done = simulate("--config tight.toml --rate 1/s --duration 3m --plot out.png", cwd=files)
    assert done.returncode == 0, done.stderr
    png = files / "out.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert "plot written to out.png" in done.stdout
