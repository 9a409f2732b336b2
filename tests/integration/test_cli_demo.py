"""``llm-routing demo`` (and ``sim``) as a user runs them: a subprocess, real output checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from llm_routing.sim import SimModel, SimulatedProvider

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY")


def llm_routing(*args: str, env: dict[str, str] | None = None):
    environment = {k: v for k, v in os.environ.items() if k not in KEYS}  # no real provider
    environment["COLUMNS"] = "120"
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llm_routing.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_demo_json_shows_the_router_surfacing_no_429_and_fewer_errors():
    done = llm_routing("demo", "--no-progress", "--json", "--seed", "1")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    plain, routed = report["plain"], report["routed"]
    assert plain["requests"] == routed["requests"] == 104
    # Without routing the app sees the provider's 429s and the context overflows.
    assert plain["errors"]["rate_limit"] == plain["provider_429s"] > 0
    assert plain["errors"]["context"] == plain["provider_context_errors"] == 3
    # Through the router: no 429 reached the app. The simulator enforces per second (as
    # OpenAI documents) and the 10x clock magnifies timing jitter 10-fold, so the paced
    # scheduler may draw a few, each retried; the plain run draws one per refused request.
    assert routed["errors"].get("rate_limit", 0) == 0
    assert routed["provider_429s"] <= plain["provider_429s"] // 5
    assert routed["answered"] == 104
    assert sum(routed["errors"].values()) < sum(plain["errors"].values())
    assert routed["answered"] > plain["answered"]
    # The long documents went elsewhere before any request: context fallbacks, no 400s.
    assert routed["fallbacks"]["context"] == 3
    assert routed["provider_context_errors"] == 0
    assert sum(routed["served_by"].values()) == routed["answered"]
    assert routed["waits"]["p95_s"] > 0  # it waited for capacity instead
    assert plain["cost_usd"] > 0 and routed["cost_usd"] > 0
    assert report["clock_factor"] == 10


def test_demo_prints_both_runs_side_by_side():
    done = llm_routing("demo", "--no-progress", "--factor", "60")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for text in (
        "plain ChatOpenAI",
        "router",
        "errors surfaced to the app",
        "429s from the provider",
        "fallbacks: rate limit",
        "fallbacks: context",
        "waits p50 / p95",
        "total time",
        "total cost",
        "served by sim-mini",
        "served by sim-long",
    ):
        assert text in out, text
    assert "requests raised in the app; through the router," in " ".join(out.split())


def test_demo_live_without_an_api_key_says_which_keys_and_exits_2():
    done = llm_routing("demo", "--live")
    assert done.returncode == 2
    assert "no API key found" in done.stderr
    for key in KEYS:
        assert key in done.stderr
    assert done.stdout == ""


def test_demo_bad_flag_value_is_a_usage_error():
    done = llm_routing("demo", "--factor", "0")
    assert done.returncode == 2
    assert "argument --factor: expected a number > 0, got '0'" in done.stderr


def test_llm_routing_sim_without_a_command_is_usage_error():
    done = llm_routing("sim")
    assert done.returncode == 2
    assert "serve" in done.stderr


def test_demo_live_uses_the_provider_of_the_key_set_under_a_cost_cap():
    # The "real provider" is the simulator on loopback: OPENAI_BASE_URL points the SDK at it.
    with SimulatedProvider([SimModel(name="gpt-4o-mini")]) as sim:
        done = llm_routing(
            "demo",
            "--live",
            "--budget",
            "0.0001",
            env={"OPENAI_API_KEY": "sim", "OPENAI_BASE_URL": sim.base_url},
        )
        served = sim.stats()["requests_served"]
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "3 requests through openai:gpt-4o-mini, cost cap $0.0001" in out
    # The long prompt's worst case passes the cap: refused before it was sent.
    assert "refused (openai:gpt-4o-mini: budget)" in out
    assert "budget 1" in out
    assert served == 2
