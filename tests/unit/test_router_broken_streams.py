"""Router.stats() counts a stream that broke after its first chunk, which it cannot fall back from.

Real ChatOpenAI over loopback HTTP against the simulated provider.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_routing.router import build_router
from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedProvider]:
    with SimulatedProvider([SimModel(name="gpt-4o-mini"), SimModel(name="gpt-4o")]) as provider:
        yield provider


def router(sim):
    return build_router(
        "openai:gpt-4o-mini",
        ["openai:gpt-4o"],
        init_kwargs={"base_url": sim.base_url, "api_key": "sim"},
    )


def test_broken_stream_is_counted_served_by_its_model_and_broken(sim):
    sim.reset()
    sim.set_faults("gpt-4o-mini", FaultPlan.always("drop", drop_after=2))
    chain = router(sim)
    chunks = []
    with pytest.raises(Exception) as info:
        for chunk in chain.stream("hi"):
            chunks.append(chunk)
    assert len(chunks) == 2
    assert "the stream from openai:gpt-4o-mini failed after its first chunk" in " ".join(
        info.value.__notes__
    )
    stats = chain.stats()
    assert stats["broken_streams"] == 1
    assert stats["by_model"]["openai:gpt-4o-mini"]["requests"] == 1
    assert sim.stats()["models"]["gpt-4o"]["requests_received"] == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_broken_async_stream_is_counted_broken(sim):
    sim.reset()
    sim.set_faults("gpt-4o-mini", FaultPlan.always("malformed", drop_after=2))
    chain = router(sim)
    with pytest.raises(ValueError):
        async for _ in chain.astream("hi"):
            pass
    assert chain.stats()["broken_streams"] == 1


def test_complete_stream_is_not_counted_broken(sim):
    sim.reset()
    chain = router(sim)
    assert list(chain.stream("hi"))
    assert chain.stats()["broken_streams"] == 0
