"""CostTracker charges a stream the provider cut off after its first chunk.

The provider processed (and billed) such a request, so charging nothing under-counts. The
tracker charges the input it counted and the output it received, marked estimated, or the
provider's own usage when its usage chunk arrived before the cut. Real ChatOpenAI over loopback
HTTP against the simulated provider.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI

from llm_routing.catalog import default_catalog
from llm_routing.cost import CostTracker
from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider
from llm_routing.tokens import count_tokens

MODEL = "gpt-4o-mini"
SPEC = default_catalog().get(f"openai:{MODEL}")
# role frame + 12 content pieces + finish frame + usage frame, then [DONE]
FRAMES_BEFORE_DONE = 15


@pytest.fixture(scope="module")
def provider() -> Iterator[SimulatedProvider]:
    with SimulatedProvider([SimModel(name=MODEL, reply_tokens=12)], seed=0) as sim:
        yield sim


@pytest.fixture
def sim(provider: SimulatedProvider) -> Iterator[SimulatedProvider]:
    provider.reset()
    yield provider
    provider.reset()


def chat(sim: SimulatedProvider) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL, base_url=sim.base_url, api_key="sim", max_retries=0, stream_usage=True
    )


def admitted_prompt_tokens(sim: SimulatedProvider) -> list[int]:
    timeline = sim.stats()["models"][MODEL]["timeline"]
    return [tokens for _, event, tokens in timeline if event.startswith("fault:")]


def consume(stream) -> tuple[list, BaseException | None]:
    chunks = []
    try:
        for chunk in stream:
            chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    return chunks, None


def test_stream_cut_after_chunks_is_charged_an_estimate_of_what_arrived(sim):
    sim.set_faults(MODEL, FaultPlan.always("drop", drop_after=4))
    tracker = CostTracker()
    chunks, error = consume((tracker | chat(sim)).stream("Tell me something"))
    assert error is not None and len(chunks) == 4
    [record] = tracker.records()
    assert (record.status, record.estimated) == ("error", True)
    assert [record.input_tokens] == admitted_prompt_tokens(sim)
    received = "".join(c.text for c in chunks)
    assert record.output_tokens == count_tokens(received, SPEC) > 0
    assert record.output_tokens < sim.stats()["models"][MODEL]["quota_spent"]["tokens"]
    assert tracker.summary()["total_cost"] > 0


@pytest.mark.asyncio(loop_scope="session")
async def test_async_stream_cut_after_chunks_is_charged_an_estimate(sim):
    sim.set_faults(MODEL, FaultPlan.always("malformed", drop_after=3))
    tracker = CostTracker()
    chunks = []
    with pytest.raises(ValueError):
        async for chunk in (tracker | chat(sim)).astream("Tell me something"):
            chunks.append(chunk)
    [record] = tracker.records()
    assert (record.status, record.estimated) == ("error", True)
    assert [record.input_tokens] == admitted_prompt_tokens(sim)
    assert record.output_tokens == count_tokens("".join(c.text for c in chunks), SPEC)


def test_stream_cut_after_its_usage_arrived_is_charged_that_usage(sim):
    sim.set_faults(MODEL, FaultPlan.always("drop", drop_after=FRAMES_BEFORE_DONE))
    tracker = CostTracker()
    chunks, error = consume((tracker | chat(sim)).stream("Tell me something"))
    assert error is not None
    usage = sum(chunks[1:], chunks[0]).usage_metadata
    [record] = tracker.records()
    assert (record.status, record.estimated) == ("error", False)
    assert (record.input_tokens, record.output_tokens) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )


def test_stream_failing_before_its_first_chunk_is_charged_nothing(sim):
    sim.set_faults(MODEL, FaultPlan.always("drop", drop_after=0))
    tracker = CostTracker(budget_usd=1.0)
    chunks, error = consume((tracker | chat(sim)).stream("Tell me something"))
    assert error is not None and chunks == []
    assert tracker.records() == []
    assert tracker.summary()["budgets"][0]["reserved"] == 0


def test_stream_read_to_the_end_is_one_exact_record(sim):
    tracker = CostTracker()
    chunks, error = consume((tracker | chat(sim)).stream("Tell me something"))
    assert error is None and chunks
    [record] = tracker.records()
    served = sim.stats()["models"][MODEL]
    assert (record.status, record.estimated) == ("ok", False)
    assert (record.input_tokens, record.output_tokens) == (
        served["prompt_tokens"],
        served["completion_tokens"],
    )
