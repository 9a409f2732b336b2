"""Router.stats() counts a stream that broke after its first chunk, which it cannot fall back from.

A malformed frame (not valid JSON) is the provider's fault like a dropped connection: typed as
`ProviderUnavailableError`, it falls back before the first chunk and is raised with the note
after it. Real ChatOpenAI over loopback HTTP against the simulated provider.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from llm_routing import AllModelsFailedError, ErrorKind, ProviderUnavailableError
from llm_routing.cost import CostTracker
from llm_routing.router import Router, build_router
from llm_routing.schedule import RateScheduler
from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider

PRIMARY = "openai:gpt-4o-mini"
NOTE = "the stream from openai:gpt-4o-mini failed after its first chunk"


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
    with pytest.raises(ProviderUnavailableError):
        async for _ in chain.astream("hi"):
            pass
    assert chain.stats()["broken_streams"] == 1


def test_complete_stream_is_not_counted_broken(sim):
    sim.reset()
    chain = router(sim)
    assert list(chain.stream("hi"))
    assert chain.stats()["broken_streams"] == 0


# --------------------------------------------------------------------------- malformed frames


def routed(
    sim: SimulatedProvider, *, scheduler: RateScheduler | None = None
) -> tuple[Router, CostTracker]:
    """A two-model router whose scheduler (none: the router alone decides) and tracker we read."""
    tracker = CostTracker(budget_usd=1.0)
    chain = build_router(
        PRIMARY,
        ["openai:gpt-4o"],
        scheduler=False if scheduler is None else scheduler,
        tracker=tracker,
        init_kwargs={"base_url": sim.base_url, "api_key": "sim"},
    )
    return chain, tracker


def fast_scheduler() -> RateScheduler:
    # One quick retry: the malformed frame is transient to the scheduler, which retries it
    # before giving up on the model; a 1 s backoff would only slow the test down.
    return RateScheduler(max_retries=1, backoff_initial=0.01, backoff_max=0.01)


def settled(tracker: CostTracker, *schedulers: RateScheduler) -> None:
    """Nothing leaked: no budget hold and no in-flight request is left behind."""
    assert tracker.summary()["budgets"][0]["reserved"] == 0
    for scheduler in schedulers:
        for key in (PRIMARY, "openai:gpt-4o"):
            assert scheduler.snapshot(key)["in_flight"] == 0


def malformed_attempt(error: BaseException) -> None:
    assert isinstance(error, ProviderUnavailableError)
    assert str(error).startswith(f"{PRIMARY} sent a malformed ")
    assert isinstance(error.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize("with_scheduler", [False, True], ids=["router-alone", "scheduler"])
def test_malformed_stream_before_its_first_chunk_falls_back(sim, with_scheduler):
    sim.reset()
    sim.set_faults("gpt-4o-mini", FaultPlan.always("malformed", drop_after=0))
    scheduler = fast_scheduler() if with_scheduler else None
    chain, tracker = routed(sim, scheduler=scheduler)
    chunks = list(chain.stream("hi"))
    assert chunks and chunks[0].response_metadata["llm_routing.model"] == "openai:gpt-4o"
    [attempt] = chunks[0].response_metadata["llm_routing.attempts"]
    assert (attempt["model"], attempt["kind"]) == (PRIMARY, "transient")
    # With a scheduler, its own ProviderUnavailableError (retries spent) is what falls back.
    assert attempt["error"].startswith("ProviderUnavailableError: ")
    if not with_scheduler:
        assert f"{PRIMARY} sent a malformed stream: not valid JSON" in attempt["error"]
    assert chain.stats()["broken_streams"] == 0
    [record] = tracker.records()  # the failed attempt had no usage to charge
    assert (record.model, record.status) == ("gpt-4o", "ok")
    settled(tracker, *([scheduler] if scheduler else []))


@pytest.mark.asyncio(loop_scope="session")
async def test_malformed_async_stream_before_its_first_chunk_falls_back(sim):
    sim.reset()
    sim.set_faults("gpt-4o-mini", FaultPlan.always("malformed", drop_after=0))
    chain, tracker = routed(sim)
    chunks = [chunk async for chunk in chain.astream("hi")]
    assert chunks[0].response_metadata["llm_routing.model"] == "openai:gpt-4o"
    assert sim.stats()["models"]["gpt-4o"]["requests_served"] == 1
    settled(tracker)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
@pytest.mark.asyncio(loop_scope="session")
async def test_malformed_response_body_falls_back(sim, asynchronous):
    sim.reset()
    sim.set_faults("gpt-4o-mini", FaultPlan.always("malformed"))
    chain, tracker = routed(sim)
    answer = await chain.ainvoke("hi") if asynchronous else chain.invoke("hi")
    assert answer.response_metadata["llm_routing.model"] == "openai:gpt-4o"
    [attempt] = answer.response_metadata["llm_routing.attempts"]
    assert attempt["kind"] == "transient" and "malformed" in attempt["error"]
    settled(tracker)


def test_every_model_sending_malformed_json_names_each_attempt(sim):
    sim.reset()
    for model in ("gpt-4o-mini", "gpt-4o"):
        sim.set_faults(model, FaultPlan.always("malformed", drop_after=0))
    chain, tracker = routed(sim)
    with pytest.raises(AllModelsFailedError) as info:
        list(chain.stream("hi"))
    assert [a.kind for a in info.value.attempts] == [ErrorKind.TRANSIENT] * 2
    malformed_attempt(info.value.errors[0])
    assert "openai:gpt-4o sent a malformed stream: not valid JSON" in str(info.value)
    settled(tracker)


@pytest.mark.parametrize("with_scheduler", [False, True], ids=["router-alone", "scheduler"])
def test_malformed_stream_after_its_first_chunk_raises_the_typed_error_with_a_note(
    sim, with_scheduler
):
    sim.reset()
    sim.set_faults("gpt-4o-mini", FaultPlan.always("malformed", drop_after=2))
    scheduler = fast_scheduler() if with_scheduler else None
    chain, tracker = routed(sim, scheduler=scheduler)
    chunks = []
    with pytest.raises(ProviderUnavailableError) as info:
        for chunk in chain.stream("hi"):
            chunks.append(chunk)
    assert len(chunks) == 2
    malformed_attempt(info.value)
    assert str(info.value).startswith(f"{PRIMARY} sent a malformed stream: not valid JSON (")
    assert NOTE in " ".join(info.value.__notes__)
    assert chain.stats()["broken_streams"] == 1
    assert sim.stats()["models"]["gpt-4o"]["requests_received"] == 0
    # The tracker charged what arrived (it saw the original error), then let go of its hold.
    [record] = tracker.records()
    assert (record.model, record.status, record.estimated) == ("gpt-4o-mini", "error", True)
    settled(tracker, *([scheduler] if scheduler else []))


@pytest.mark.asyncio(loop_scope="session")
async def test_malformed_async_stream_after_its_first_chunk_raises_the_typed_error(sim):
    sim.reset()
    sim.set_faults("gpt-4o-mini", FaultPlan.always("malformed", drop_after=2))
    scheduler = fast_scheduler()
    chain, tracker = routed(sim, scheduler=scheduler)
    chunks = []
    with pytest.raises(ProviderUnavailableError) as info:
        async for chunk in chain.astream("hi"):
            chunks.append(chunk)
    assert len(chunks) == 2
    malformed_attempt(info.value)
    assert NOTE in " ".join(info.value.__notes__)
    [record] = tracker.records()
    assert (record.status, record.estimated) == ("error", True)
    settled(tracker, scheduler)


def test_a_stream_dropped_after_its_first_chunk_keeps_its_own_error(sim):
    # Only malformed JSON is retyped: other errors propagate as they came, with the note.
    sim.reset()
    sim.set_faults("gpt-4o-mini", FaultPlan.always("drop", drop_after=2))
    chain, _ = routed(sim)
    with pytest.raises(Exception) as info:
        list(chain.stream("hi"))
    assert not isinstance(info.value, ProviderUnavailableError)
    assert NOTE in " ".join(info.value.__notes__)
