"""The planner's report against scenarios computed by hand, in virtual time (no wall clock).

Issue 20: tokens per minute were divided by the sending time, not by the simulated span, so a
run whose queued answers came after the sending stopped reported more tokens per minute than
the limit allows; waits and latency sat side by side unexplained; fallbacks had no time; no
model's binding constraint was named. Each figure below is worked out from the scenario.
"""

from __future__ import annotations

import pytest

from llm_routing.simulate import Arrival, simulate

MINI = "openai:gpt-4o-mini"  # $0.15 in / $0.60 out per 1M; tier1: 500 RPM, 200,000 TPM
# Latency without jitter: every call takes ttft + per_token x output = 2.0 + 0.1 x 20 = 4.0 s.
LATENCY = {"ttft": 2.0, "per_token": 0.1, "jitter": 0.0}
# Four requests 10 s apart; a 100-token user message is 107 tokens in the chat format (the
# guard and the provider count it the same way); 20 output tokens; max_tokens 50.
WORKLOAD = [Arrival(t, 100, 50, 20) for t in (0.0, 10.0, 20.0, 30.0)]
PROMPT = 107


def run(router: dict) -> object:
    return simulate({"router": router, "simulate": {"latency": LATENCY}}, WORKLOAD, seed=0)


def test_rates_are_per_minute_over_the_simulated_span_and_latency_is_explained():
    report = run({"primary": MINI})
    mini = report.models[MINI]
    # Sent from 0 to 30 s (the default duration ends just past the last request); the last
    # answer comes at 30 + 4 = 34 s, so the span is 34 s.
    assert report.duration_s == pytest.approx(30.0)
    assert report.simulated_s == pytest.approx(34.0)
    assert report.span_s == pytest.approx(34.0)
    assert (mini.served, mini.input_tokens, mini.output_tokens) == (4, 4 * PROMPT, 4 * 20)
    requests_per_min, tokens_per_min = mini.per_minute(report.span_s)
    assert requests_per_min == pytest.approx(4 * 60 / 34)  # 7.06, not 4 * 60 / 30 = 8.0
    assert tokens_per_min == pytest.approx(4 * (PROMPT + 20) * 60 / 34)  # 896.5
    data = report.to_dict()["models"][MINI]
    assert data["requests_per_min"] == pytest.approx(7.059, abs=1e-3)
    assert data["tokens_per_min"] == pytest.approx(896.5, abs=0.1)
    # No call waited (10 s apart, far under the limits): every latency is the provider's 4 s.
    assert report.waits["max_s"] == 0.0
    assert (report.latency_p50_s, report.latency_p95_s) == (pytest.approx(4.0), pytest.approx(4.0))
    assert mini.mean_service_s == pytest.approx(4.0)
    # The busiest 60 s holds all four admissions; OpenAI counts max_tokens against TPM.
    assert mini.peak_60s == {
        "rpm": 4,
        "tpm": 4 * (PROMPT + 50),
        "itpm": 4 * PROMPT,
        "otpm": 4 * 50,
    }
    # 4 of 500 RPM is its tightest limit: 0.8%, shown rounded.
    assert mini.binding() == [
        "none: demand stayed under its limits (busiest 60 s: 1% of its tightest limit)"
    ]
    text = "\n".join(report.summary())
    assert "rates are per minute over 34.0 s" in text
    assert "scheduler waits per admitted call (0 s when admitted at once): p50 0.00 s" in text
    assert "the provider's time (mean 4.00 s" in text
    assert f"binding for {MINI}: none" in text
    assert "fallbacks by reason: none" in text


def test_a_budget_that_runs_out_is_named_with_the_time_it_ran_out():
    # Each call costs (107 x 0.15 + 20 x 0.60) / 1M = $0.00002805 and holds its worst case,
    # (107 x 0.15 + 50 x 0.60) / 1M = $0.00004605, before it runs. Budget $0.0001:
    #   t=0:  0 + 46.05e-6 fits           -> spent 28.05e-6
    #   t=10: 28.05e-6 + 46.05e-6 fits    -> spent 56.10e-6
    #   t=20: 56.10e-6 + 46.05e-6 > 1e-4  -> refused (budget); t=30 likewise.
    report = run({"primary": MINI, "budget_usd": 0.0001})
    mini = report.models[MINI]
    assert (report.answered, report.failed) == (2, {"budget": 2})
    assert report.total_cost_usd == pytest.approx(0.0000561)
    assert report.fallbacks["budget"] == 2
    assert report.fallback_first_s == {"budget": 20.0}
    assert mini.skipped == {"budget": 2}
    assert mini.binding() == ["budget (2 calls passed over)"]
    text = "\n".join(report.summary())
    assert "budget 2 (from 20.0 s: the $0.0001 budget could not cover more)" in text
    assert f"binding for {MINI}: budget (2 calls passed over)" in text


def test_a_prompt_over_the_window_is_named_as_the_window():
    big = [Arrival(0.0, 150_000, 50, 20), *WORKLOAD[1:]]
    report = simulate(
        {
            "router": {"primary": MINI, "large_context": ["openai:gpt-4.1-mini"]},
            "simulate": {"latency": LATENCY},
        },
        big,
        seed=0,
    )
    assert report.fallback_first_s == {"context": 0.0}
    assert report.models[MINI].binding() == ["window 128,000 tokens (1 prompts did not fit)"]
    assert report.models["openai:gpt-4.1-mini"].served == 1


def test_a_limit_that_binds_is_named_with_its_busiest_minute():
    # 30 RPM (the scheduler keeps a margin of 2 and paces: one admission every 60 / 28 s) and
    # 60 requests in the first second, max_wait 90: the calls that would wait longer fall back.
    burst = [Arrival(i / 60, 100, 50, 20) for i in range(60)]
    report = simulate(
        {
            "router": {"primary": MINI, "fallbacks": ["openai:gpt-4.1-mini"], "max_wait": 90},
            "simulate": {"latency": LATENCY, "models": {MINI: {"rpm": 30}}},
        },
        burst,
        seed=0,
    )
    mini = report.models[MINI]
    assert mini.peak_60s["rpm"] <= 30
    assert report.provider_429s == 0
    (binding,) = mini.binding()
    assert binding.startswith("limit RPM 30 (busiest 60 s: ")
    assert "calls passed over for rate limits" in binding
