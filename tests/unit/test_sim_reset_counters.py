"""SimState.reset_counters zeroes what was counted and keeps the state a test set up."""

from __future__ import annotations

import httpx

from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider


def post(sim, model="m"):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{sim.base_url}/chat/completions", json=body, timeout=10)


def test_reset_counters_keeps_a_spent_daily_limit():
    with SimulatedProvider([SimModel(name="m", rpd=1)]) as sim:
        assert post(sim).status_code == 200
        sim.state.reset_counters()
        stats = sim.stats()
        assert stats["requests_received"] == stats["models"]["m"]["requests_served"] == 0
        assert stats["models"]["m"]["timeline"] == []
        refused = post(sim)
        assert refused.status_code == 429
        assert "requests per day (RPD)" in refused.json()["error"]["message"]
        assert sim.stats()["models"]["m"]["rate_limited"]["requests"] == 1


def test_reset_counters_keeps_the_fault_plan_and_its_numbering():
    with SimulatedProvider([SimModel(name="m")]) as sim:
        sim.set_faults("m", FaultPlan.at({2: 503}))
        assert post(sim).status_code == 200
        sim.state.reset_counters()
        assert post(sim).status_code == 503
        assert sim.stats()["models"]["m"]["faults"] == {"503": 1}


def test_malformed_stream_ends_at_the_broken_frame():
    with SimulatedProvider([SimModel(name="m", faults=FaultPlan.always("malformed"))]) as sim:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"{sim.base_url}/chat/completions", json=body, timeout=10)
        frames = [f for f in response.text.split("\n\n") if f]
        assert len(frames) == 3  # two whole frames (drop_after=2), then the cut one, then EOF
        assert "[DONE]" not in response.text
