"""``stream_events(version="v3")`` through every hook, with real ChatOpenAI clients over HTTP.

The simulated provider enforces the limits it is given, so a v3 call that bypassed the
scheduler comes back as a real 429 in its counters. Before v3 ran through the hooks, six v3
calls at RPM 3 all reached the server at once (3 of them 429s) and the scheduler admitted none.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.chat_model_stream import AsyncChatModelStream, ChatModelStream
from langchain_openai import ChatOpenAI

from llm_routing import ContextGuard, CostTracker
from llm_routing.errors import ContextLengthExceededError
from llm_routing.router import build_router
from llm_routing.schedule import RateScheduler, ScaledClock
from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider
from tests.support.sim import chat, fresh, made_up_words, serving

SCALE = 60.0  # a minute window passes in one real second
MODELS = [
    SimModel(name="gpt-4o-mini", rpm=3, enforcement="sliding", failed_requests_count=False),
    SimModel(name="gpt-4o"),
    SimModel(name="gpt-4.1-mini", context_window=1_047_576),
]
pytestmark = pytest.mark.filterwarnings(
    "ignore::langchain_core._api.beta_decorator.LangChainBetaWarning"
)


@pytest.fixture(scope="module")
def clock() -> ScaledClock:
    return ScaledClock(SCALE)


@pytest.fixture(scope="module")
def sim_module(clock: ScaledClock) -> Iterator[SimulatedProvider]:
    yield from serving(MODELS, clock=clock.now)


@pytest.fixture
def sim(sim_module: SimulatedProvider) -> Iterator[SimulatedProvider]:
    yield from fresh(sim_module)


def client(sim: SimulatedProvider, name: str) -> ChatOpenAI:
    # Its own async client: langchain-openai otherwise shares one per base_url across loops.
    import httpx

    return chat(sim, name, max_tokens=20, stream_usage=True, http_async_client=httpx.AsyncClient())


def rpm3(clock: ScaledClock, **kw: Any) -> RateScheduler:
    # Exactly the provider's 3 per sliding minute: no margin, the whole minute as one burst.
    return RateScheduler(
        limits={"openai:gpt-4o-mini": {"rpm": 3}, "openai:gpt-4o": {"rpm": 1000}},
        clock=clock,
        pacing="burst",
        request_margin=0,
        **kw,
    )


def counters(sim: SimulatedProvider, model: str) -> dict[str, Any]:
    return sim.stats()["models"][model]


def in_flight(scheduler: RateScheduler, name: str = "openai:gpt-4o-mini") -> int:
    return int(scheduler.snapshot(name)["in_flight"])


# --- 1. the measurement: the scheduler admits every v3 call ---------------------------


def test_six_v3_calls_at_rpm_3_are_admitted_and_wait_never_bypass(sim, clock):
    scheduler = rpm3(clock)
    model = scheduler | client(sim, "gpt-4o-mini")
    texts = []
    for _ in range(6):
        stream = model.stream_events("hi", version="v3")
        assert isinstance(stream, ChatModelStream)
        texts.append(str(stream.text))
    assert all(texts)
    assert scheduler.stats()["admitted"] == 6
    assert scheduler.stats()["waits"]["max_s"] > 0  # the second three waited for the window
    served = counters(sim, "gpt-4o-mini")
    assert served["requests_received"] == 6
    assert served["rate_limited"]["requests"] == 0  # never more than 3 per sliding minute


async def test_six_concurrent_async_v3_calls_at_rpm_3_are_admitted_and_wait(sim, clock):
    scheduler = rpm3(clock)
    model = scheduler | client(sim, "gpt-4o-mini")

    async def one() -> str:
        stream = await model.astream_events("hi", version="v3")
        assert isinstance(stream, AsyncChatModelStream)
        return await stream.text

    texts = await asyncio.gather(*(one() for _ in range(6)))
    assert all(texts)
    assert scheduler.stats()["admitted"] == 6
    assert scheduler.stats()["waits"]["max_s"] > 0
    served = counters(sim, "gpt-4o-mini")
    assert served["requests_received"] == 6
    assert served["rate_limited"]["requests"] == 0


# --- 2. guard, tracker, retry, fallback, broken streams, close --------------------------------


def test_v3_oversize_input_is_refused_before_any_request(sim):
    model = ContextGuard() | client(sim, "gpt-4o-mini")
    stream = model.stream_events(made_up_words(50_000), version="v3")
    with pytest.raises(ContextLengthExceededError):
        _ = stream.output
    assert counters(sim, "gpt-4o-mini")["requests_received"] == 0


def test_router_v3_routes_an_oversize_input_to_the_large_context_model(sim):
    router = build_router(
        client(sim, "gpt-4o-mini"), [client(sim, "gpt-4o")], [client(sim, "gpt-4.1-mini")]
    )
    stream = router.stream_events(made_up_words(50_000), version="v3")
    assert stream.output.text
    assert counters(sim, "gpt-4o-mini")["requests_received"] == 0
    assert counters(sim, "gpt-4o")["requests_received"] == 0
    assert counters(sim, "gpt-4.1-mini")["requests_served"] == 1
    assert router.stats()["context_fallbacks"] == 2


@pytest.mark.parametrize("colour", ["sync", "async"])
async def test_v3_call_is_priced_from_its_final_usage(sim, colour):
    tracker = CostTracker()
    model = tracker | client(sim, "gpt-4o")
    if colour == "sync":
        message = model.stream_events("hi", version="v3").output
    else:
        stream = await model.astream_events("hi", version="v3")
        message = await stream
    summary = tracker.summary()
    assert summary["calls"] == 1 and summary["estimated_calls"] == 0
    assert summary["total_cost"] > 0
    served = counters(sim, "gpt-4o")
    assert (
        summary["input_tokens"] == served["prompt_tokens"] == message.usage_metadata["input_tokens"]
    )
    assert summary["output_tokens"] == served["completion_tokens"]


def test_v3_429_before_the_first_event_is_retried_into_one_clean_stream(sim, clock):
    sim.set_faults("gpt-4o", FaultPlan.at({1: "429"}, retry_after=1.0))
    scheduler = rpm3(clock)
    model = scheduler | client(sim, "gpt-4o")
    stream = model.stream_events("hi", version="v3")
    events = list(stream)
    assert [e["event"] for e in events].count("message-start") == 1
    assert stream.output.text
    assert counters(sim, "gpt-4o")["faults"] == {"429": 1}
    assert scheduler.stats()["retries"] == 1


async def test_async_v3_500_before_the_first_event_is_retried(sim, clock):
    sim.set_faults("gpt-4o", FaultPlan.at({1: "500"}))
    scheduler = rpm3(clock, backoff_initial=0.01)
    model = scheduler | client(sim, "gpt-4o")
    stream = await model.astream_events("hi", version="v3")
    events = [event async for event in stream]
    assert [e["event"] for e in events].count("message-start") == 1
    assert (await stream).text
    assert counters(sim, "gpt-4o")["faults"] == {"500": 1}
    assert scheduler.stats()["transient_retries"] == 1


@pytest.mark.parametrize("colour", ["sync", "async"])
async def test_router_v3_falls_back_before_the_first_event(sim, colour):
    sim.set_faults("gpt-4o-mini", FaultPlan.always("quota"))
    router = build_router(client(sim, "gpt-4o-mini"), [client(sim, "gpt-4o")])
    if colour == "sync":
        message = router.stream_events("hi", version="v3").output
    else:
        message = await (await router.astream_events("hi", version="v3"))
    assert message.text
    assert counters(sim, "gpt-4o")["requests_served"] == 1
    assert router.stats()["quota_fallbacks"] == 1


@pytest.mark.parametrize("colour", ["sync", "async"])
async def test_router_v3_error_after_the_first_event_propagates_without_fallback(sim, colour):
    sim.set_faults("gpt-4o-mini", FaultPlan.at({1: "drop"}, drop_after=2))
    router = build_router(client(sim, "gpt-4o-mini"), [client(sim, "gpt-4o")])
    with pytest.raises(Exception) as raised:
        if colour == "sync":
            list(router.stream_events("hi", version="v3"))
        else:
            stream = await router.astream_events("hi", version="v3")
            [event async for event in stream]
    assert "does not fall back" in " ".join(getattr(raised.value, "__notes__", []))
    assert counters(sim, "gpt-4o")["requests_received"] == 0
    assert router.stats()["broken_streams"] == 1


def test_closing_a_v3_stream_early_releases_the_slot(sim, clock):
    scheduler, tracker = rpm3(clock), CostTracker()
    model = scheduler | tracker | client(sim, "gpt-4o-mini")
    stream = model.stream_events("hi", version="v3")
    next(iter(stream.text))
    assert in_flight(scheduler) == 1
    stream.close()
    assert in_flight(scheduler) == 0
    assert tracker.summary()["cancelled_calls"] == 1
    # Abandoned without close: dropping the stream settles it too.
    stream = model.stream_events("hi", version="v3")
    next(iter(stream.text))
    assert in_flight(scheduler) == 1
    del stream
    gc.collect()
    assert in_flight(scheduler) == 0


async def test_aclosing_an_async_v3_stream_early_releases_the_slot(sim, clock):
    scheduler, tracker = rpm3(clock), CostTracker()
    router = build_router(
        client(sim, "gpt-4o-mini"), [client(sim, "gpt-4o")], scheduler=scheduler, tracker=tracker
    )
    stream = await router.astream_events("hi", version="v3")
    await anext(aiter(stream))
    assert in_flight(scheduler) == 1
    await stream.aclose()
    assert in_flight(scheduler) == 0
    assert tracker.summary()["cancelled_calls"] == 1
