"""Many simultaneous clients: every request gets a well-formed answer, never a server error."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from llm_routing.sim import SimModel, SimulatedProvider

CONCURRENT = 1_000


@pytest.fixture(scope="module")
def busy_sim():
    models = [SimModel(name="wide"), SimModel(name="narrow", rpm=300, tpm=50_000)]
    with SimulatedProvider(models, seed=1) as sim:
        yield sim


async def test_a_thousand_concurrent_requests_complete_or_get_429s(busy_sim):
    # Ten clients of 100 connections each: one httpx pool of 1,000 connections spends most of
    # the run in its own bookkeeping (quadratic in the pool size), not in the server.
    clients = [
        httpx.AsyncClient(
            base_url=busy_sim.base_url,
            timeout=60,
            limits=httpx.Limits(max_connections=CONCURRENT // 10),
        )
        for _ in range(10)
    ]

    async def one(i):
        model = "narrow" if i % 2 else "wide"
        body = {
            "model": model,
            "messages": [{"role": "user", "content": f"request {i}"}],
            "max_tokens": 20,
            "stream": i % 4 == 0,
        }
        return await clients[i % 10].post("/chat/completions", json=body)

    try:
        responses = await asyncio.gather(*(one(i) for i in range(CONCURRENT)))
    finally:
        for client in clients:
            await client.aclose()

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}
    assert statuses.count(429) > 0
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert "retry-after" in r.headers
    stats = busy_sim.stats()
    assert stats["requests_received"] == CONCURRENT
    assert stats["requests_served"] == statuses.count(200)
    assert stats["models"]["narrow"]["requests_served"] <= 300
    assert stats["models"]["wide"]["requests_served"] == CONCURRENT // 2
