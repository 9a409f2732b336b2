"""Enforcement modes over real HTTP with the real ``langchain_openai.ChatOpenAI``.

The rate windows run on a frozen clock, so "one instant" is exact however slowly the machine
answers: a burst of 20 at RPM 600 is 20 requests within the same second.
"""

from __future__ import annotations

import httpx
import pytest
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI

from llm_routing.errors import ErrorKind, classify, retry_after
from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def chat(sim: SimulatedProvider, model: str) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=sim.base_url, api_key="sim", max_retries=0)


def burst(sim: SimulatedProvider, model: str, n: int) -> tuple[list[AIMessage], list[Exception]]:
    results = chat(sim, model).batch(
        ["hi"] * n, config={"max_concurrency": n}, return_exceptions=True
    )
    served = [r for r in results if isinstance(r, AIMessage)]
    failed = [r for r in results if isinstance(r, Exception)]
    return served, failed


@pytest.fixture(scope="module")
def enforced():
    clock = Clock()
    models = [
        SimModel(name="quantized-600", rpm=600, enforcement="quantized"),
        SimModel(name="sliding-600", rpm=600, enforcement="sliding"),
        SimModel(name="bucket-600", rpm=600, enforcement="token_bucket"),
        SimModel(name="capped", faults=FaultPlan.always("spend_limit")),
        SimModel(name="gem", rpd=250, faults=FaultPlan.always("daily_quota")),
    ]
    with SimulatedProvider(models, clock=clock) as sim:
        yield sim, clock


@pytest.fixture
def sim(enforced):
    server, clock = enforced
    server.reset()
    clock.now = 0.0
    return server, clock


def test_burst_at_rpm_600_quantized_gets_429s_after_ten_while_sliding_admits_it(sim):
    server, clock = sim
    served, failed = burst(server, "quantized-600", 20)
    assert (len(served), len(failed)) == (10, 10)
    assert all(classify(exc) is ErrorKind.RATE_LIMIT for exc in failed)
    assert {retry_after(exc) for exc in failed} == {0.1}  # retry-after-ms: 100
    stats = server.stats()["models"]["quantized-600"]
    assert stats["rate_limited_by_cause"]["per_second"] == 10
    assert stats["enforcement"]["mode"] == "quantized"

    clock.now = 0.1  # exactly what the 429s said: one more fits
    served, failed = burst(server, "quantized-600", 2)
    assert (len(served), len(failed)) == (1, 1)

    served, failed = burst(server, "sliding-600", 20)
    assert (len(served), len(failed)) == (20, 0)
    served, failed = burst(server, "bucket-600", 20)  # a bucket of 600 takes the burst too
    assert (len(served), len(failed)) == (20, 0)


def test_quantized_headers_report_the_minute_limit(sim):
    server, _ = sim
    message = ChatOpenAI(
        model="quantized-600",
        base_url=server.base_url,
        api_key="sim",
        max_retries=0,
        include_response_headers=True,
    ).invoke("hi")
    headers = message.response_metadata["headers"]
    assert headers["x-ratelimit-limit-requests"] == "600"
    assert headers["x-ratelimit-remaining-requests"] == "599"  # per minute, as OpenAI documents


def test_spend_limit_429_has_anthropic_shape_and_no_retry_after(sim):
    server, _ = sim
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": "capped", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert "retry-after-ms" not in response.headers
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["details"]["error_code"] == "enforced_spend_limit_reached"
    assert server.stats()["models"]["capped"]["rate_limited_by_cause"]["spend_limit"] == 1


def test_daily_quota_429_has_gemini_shape_and_no_retry_after(sim):
    server, _ = sim
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": "gem", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    error = response.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    violation = error["details"][0]["violations"][0]
    assert "PerDay" in violation["quotaId"]
    assert violation["quotaValue"] == "250"
