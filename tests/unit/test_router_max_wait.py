"""``max_wait`` bounds one router (or middleware) call across all its attempts, in virtual time.

Each model's scheduler waits only what is left of the call's ``max_wait`` once earlier
attempts' waits (proactive queueing and reactive Retry-After sleeps) are counted; a wait that
cannot fit is refused at once so the chain moves on. A call outside any router is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from llm_routing import CostTracker, _waiting
from llm_routing.cost import MemoryLedger
from llm_routing.errors import AllModelsFailedError
from llm_routing.router import Router
from llm_routing.schedule import RateScheduler, VirtualClock
from sdk_errors import openai_error

EXACT = {"request_margin": 0, "token_headroom": 0.0}


class Fake(BaseChatModel):
    """A chat model named like a catalogue model; ``errors`` are raised by successive calls."""

    model_name: str = "gpt-4o-mini"
    errors: list[Any] = Field(default_factory=list)
    clock: Any = None
    times: list[float] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "fake"

    def _get_ls_params(self, stop=None, **kwargs):
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        return params

    def _start(self) -> None:
        self.times.append(self.clock.now())
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self._start()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok"))])

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        return self._generate(messages)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self._start()
        yield ChatGenerationChunk(message=AIMessageChunk(content="ok"))


def rate_limited(retry_after: float):
    error = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
    body = {"error": error}
    return openai_error(429, body, {"retry-after": f"{retry_after:g}"})


def setup(max_wait: float = 6.0, **limits: Any):
    clock = VirtualClock()
    scheduler = RateScheduler(clock=clock, max_wait=max_wait, pacing="burst", limits=limits or None)
    primary = Fake(model_name="gpt-4o-mini", clock=clock)
    fallback = Fake(model_name="gpt-4o", clock=clock)
    router = Router(
        [scheduler | primary, scheduler | fallback],
        ["openai:gpt-4o-mini", "openai:gpt-4o"],
        settings={"scheduler": scheduler},
    )
    return clock, scheduler, primary, fallback, router


def test_proactive_waits_on_both_models_share_one_max_wait():
    # Both windows (1 RPM) are full: the primary frees at 60 s, the fallback at 65 s. At 55 s
    # the primary waits 5 s, is refused by a 429 whose Retry-After does not fit the 1 s left,
    # and the fallback's 5 s wait (which fitted a per-attempt max_wait) is refused at once.
    one_rpm = {"rpm": 1, **EXACT}
    clock, scheduler, primary, fallback, router = setup(
        **{"openai:gpt-4o-mini": one_rpm, "openai:gpt-4o": one_rpm}
    )
    (scheduler | primary).invoke("fill")
    clock.advance(5)
    (scheduler | fallback).invoke("fill")
    clock.advance(50)
    primary.errors = [rate_limited(3)]
    start = clock.now()
    with pytest.raises(AllModelsFailedError):
        router.invoke("hi")
    assert clock.now() - start == pytest.approx(5.0)
    assert len(fallback.times) == 1  # the fallback was never called again
    assert scheduler.stats()["refused_max_wait"] >= 2


def test_nothing_waits_past_max_wait_when_every_model_needs_a_wait():
    clock, _, primary, fallback, router = setup()
    primary.errors = [rate_limited(4), rate_limited(4)]
    fallback.errors = [rate_limited(1.5), None]
    answer = router.invoke("hi")
    assert answer.response_metadata["llm_routing.model"] == "openai:gpt-4o"
    assert primary.times == [0.0, 4.0]
    assert fallback.times == [4.0, 5.5]
    assert clock.now() <= 6.0


def test_a_wait_that_cannot_fit_moves_on_at_once():
    clock, _, primary, fallback, router = setup()
    primary.errors = [rate_limited(4), rate_limited(4)]
    fallback.errors = [rate_limited(3), None]  # 3 > the 2 s left: refused at once
    with pytest.raises(AllModelsFailedError):
        router.invoke("hi")
    assert clock.now() == pytest.approx(4.0)
    assert fallback.times == [4.0]


async def test_ainvoke_shares_one_max_wait():
    clock, _, primary, fallback, router = setup()
    primary.errors = [rate_limited(4), rate_limited(4)]
    fallback.errors = [rate_limited(3), None]
    with pytest.raises(AllModelsFailedError):
        await router.ainvoke("hi")
    assert clock.now() == pytest.approx(4.0)


def test_stream_shares_one_max_wait_until_its_first_chunk():
    _clock, _, primary, fallback, router = setup()
    primary.errors = [rate_limited(4), rate_limited(4)]
    fallback.errors = [rate_limited(1.5), None]
    assert "".join(c.content for c in router.stream("hi")) == "ok"
    assert fallback.times == [4.0, 5.5]
    assert _waiting.current() is None  # nothing leaks into the caller's context


def test_each_router_call_has_its_own_max_wait():
    _clock, _, primary, _fallback, router = setup()
    primary.errors = [rate_limited(4), None, rate_limited(4), None]
    router.invoke("one")
    router.invoke("two")
    assert primary.times == [0.0, 4.0, 4.0, 8.0]
    assert _waiting.current() is None


def test_a_nested_router_shares_the_outer_calls_max_wait():
    clock, _scheduler, primary, fallback, inner = setup()
    outer = Router([inner], ["inner"])
    primary.errors = [rate_limited(4), rate_limited(4)]
    fallback.errors = [rate_limited(3), None]
    with pytest.raises(AllModelsFailedError):
        outer.invoke("hi")
    assert clock.now() == pytest.approx(4.0)


def test_outside_a_router_each_call_keeps_its_own_max_wait():
    _clock, scheduler, primary, _, _ = setup()
    primary.errors = [rate_limited(4), rate_limited(1.5)]
    assert (scheduler | primary).invoke("hi").content == "ok"
    assert primary.times == [0.0, 4.0, 5.5]


async def test_concurrent_router_calls_do_not_share_max_wait():
    _clock, _, primary, _fallback, router = setup()
    primary.errors = [rate_limited(4), None, None]
    results = await asyncio.gather(router.ainvoke("a"), router.ainvoke("b"))
    assert all(r.response_metadata["llm_routing.model"] == "openai:gpt-4o-mini" for r in results)


def _agent(max_wait: float = 6.0):
    agents = pytest.importorskip("langchain.agents")
    from llm_routing import RoutingMiddleware

    clock = VirtualClock()
    scheduler = RateScheduler(clock=clock, max_wait=max_wait, pacing="burst")
    primary = Fake(model_name="gpt-4o-mini", clock=clock)
    fallback = Fake(model_name="gpt-4o", clock=clock)
    middleware = RoutingMiddleware(
        fallbacks=[fallback], scheduler=scheduler, guard=False, tracker=False
    )
    agent = agents.create_agent(primary, middleware=[middleware])
    return clock, primary, fallback, agent


def test_the_middleware_shares_one_max_wait_across_its_models():
    clock, primary, fallback, agent = _agent()
    primary.errors = [rate_limited(4), rate_limited(4)]
    fallback.errors = [rate_limited(3), None]  # 3 > the 2 s left: refused at once
    with pytest.raises(AllModelsFailedError):
        agent.invoke({"messages": [("human", "hi")]})
    assert clock.now() == pytest.approx(4.0)
    assert fallback.times == [4.0]


async def test_the_async_middleware_shares_one_max_wait_across_its_models():
    _clock, primary, fallback, agent = _agent()
    primary.errors = [rate_limited(4), rate_limited(4)]
    fallback.errors = [rate_limited(1.5), None]
    result = await agent.ainvoke({"messages": [("human", "hi")]})
    assert result["messages"][-1].response_metadata["llm_routing.model"] == "openai:gpt-4o"
    assert fallback.times == [4.0, 5.5]


def test_batch_gives_each_input_its_own_max_wait():
    _clock, _, primary, _fallback, router = setup()
    primary.errors = [rate_limited(4), None, rate_limited(4), None]
    answers = router.batch(["one", "two"], {"max_concurrency": 1})
    assert [a.response_metadata["llm_routing.model"] for a in answers] == ["openai:gpt-4o-mini"] * 2
    assert primary.times == [0.0, 4.0, 4.0, 8.0]


class SlowLedger(MemoryLedger):
    """A memory ledger whose first reservation takes ``first_wait`` virtual seconds (a wait for
    other calls' holds), recording the timeout each reservation was given."""

    def __init__(self, clock: VirtualClock, first_wait: float) -> None:
        super().__init__(clock=clock)
        self.virtual = clock
        self.first_wait = first_wait
        self.timeouts: list[float] = []

    def reserve_within(self, amount, buckets, timeout):
        self.timeouts.append(timeout)
        if len(self.timeouts) == 1:
            self.virtual.advance(self.first_wait)
        return super().reserve_within(amount, buckets, timeout)


def test_the_trackers_waits_share_the_calls_max_wait():
    clock = VirtualClock()
    ledger = SlowLedger(clock, first_wait=1.0)
    tracker = CostTracker(budget_usd=5.0, max_wait=6, backend=ledger)
    scheduler = RateScheduler(clock=clock, max_wait=6, pacing="burst")
    primary = Fake(model_name="gpt-4o-mini", clock=clock, errors=[rate_limited(4)])
    router = Router([scheduler | tracker | primary], ["openai:gpt-4o-mini"])
    router.invoke("hi")
    # 1 s for budget holds, then the 429's 4 s: the retry's tracker may wait 1 s, not 6 - 4.
    assert primary.times == [1.0, 5.0]
    assert ledger.timeouts == [6.0, pytest.approx(1.0)]
