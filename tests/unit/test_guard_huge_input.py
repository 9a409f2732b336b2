"""Huge message lists: refused from their size alone, counted off the event loop when async.

No wall-clock thresholds: each test checks which path ran (spies on the counting functions),
which thread it ran in, or that a concurrent coroutine kept running while the count did.
Real ``ChatOpenAI`` clients point at a closed port, so a refusal proves nothing was sent.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_openai import ChatOpenAI

import llm_routing.guard as guard_module
import llm_routing.tokens.messages as token_messages
from llm_routing import AllModelsFailedError, build_router
from llm_routing.errors import ContextLengthExceededError
from llm_routing.guard import ContextGuard
from llm_routing.tokens import count_tokens, count_tokens_within

MILLION = [("user", "hi")] * 1_000_000


def closed_port_openai(model: str = "gpt-4o-mini") -> ChatOpenAI:
    return ChatOpenAI(
        model=model, base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0
    )


class Answers(BaseChatModel):
    """Answers with the number of messages it got: proves the guard let the call through."""

    profile: Any = {"max_input_tokens": 1_000_000}

    @property
    def _llm_type(self) -> str:
        return "answers"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        return ChatResult(generations=[ChatGeneration(message=AIMessage(str(len(messages))))])


class Spy:
    """Wraps a function, recording the thread of every call (and running ``during`` first)."""

    def __init__(self, fn: Any, during: Any = None) -> None:
        self.fn = fn
        self.during = during
        self.threads: list[int] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.get_ident())
        if self.during is not None:
            self.during()
        return self.fn(*args, **kwargs)


@pytest.fixture
def exact_counter(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Records the thread of every exact count of the guard: its one-pass count of a short
    input that fits (when it answered) and its general count."""
    spy = Spy(count_tokens_within)
    monkeypatch.setattr(guard_module, "count_tokens_within", spy)
    fitting = guard_module.count_fitting_ascii

    def counted_fitting(*args: Any) -> Any:
        result = fitting(*args)
        if result[0] is not None:  # it counted; None hands the input to count_tokens_within
            spy.threads.append(threading.get_ident())
        return result

    monkeypatch.setattr(guard_module, "count_fitting_ascii", counted_fitting)
    return spy


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many messages LangChain converted, call by call."""
    sizes: list[int] = []
    real = token_messages.convert_to_messages

    def spy(messages: Any) -> Any:
        sizes.append(len(messages))
        return real(messages)

    monkeypatch.setattr(token_messages, "convert_to_messages", spy)
    return sizes


# --- refused from the size alone ------------------------------------------------------------


def test_a_million_messages_are_refused_without_counting(exact_counter, conversions):
    model = ContextGuard() | closed_port_openai()
    with pytest.raises(ContextLengthExceededError) as caught:
        model.invoke(MILLION)
    error = caught.value
    assert exact_counter.threads == [] and conversions == []
    assert error.model == "openai:gpt-4o-mini"
    assert error.required_tokens is not None and error.required_tokens > 4_000_000
    assert "input needs at least 4,000,003 tokens" in str(error)
    assert "accepts 115,200" in str(error)


def test_a_two_model_router_refuses_a_million_messages_without_counting(exact_counter, conversions):
    router = build_router(closed_port_openai(), fallbacks=[closed_port_openai("gpt-4.1-mini")])
    with pytest.raises(AllModelsFailedError) as caught:
        router.invoke(MILLION)
    assert [type(a.error) for a in caught.value.attempts] == [ContextLengthExceededError] * 2
    assert exact_counter.threads == [] and conversions == []


async def test_async_router_refuses_a_million_messages_on_the_loop_without_counting(
    exact_counter, conversions, monkeypatch
):
    handed_off: list[Any] = []

    async def to_thread(fn: Any, *args: Any) -> Any:
        handed_off.append(fn)
        return fn(*args)

    # The length alone refuses it, on the loop and in constant time: no thread is needed.
    monkeypatch.setattr(guard_module.asyncio, "to_thread", to_thread)
    router = build_router(closed_port_openai(), fallbacks=[closed_port_openai("gpt-4.1-mini")])
    with pytest.raises(AllModelsFailedError) as caught:
        await router.ainvoke(MILLION)
    assert [type(a.error) for a in caught.value.attempts] == [ContextLengthExceededError] * 2
    assert exact_counter.threads == [] and conversions == [] and handed_off == []


def test_long_text_contents_are_refused_from_their_length(exact_counter):
    # 20 messages of 100,000 characters: 400 tokens of overhead, but at least 20 × 782
    # tokens of text (a token is at most 128 bytes), so the length pass refuses them.
    messages = [("user", "x" * 100_000)] * 20
    model = ContextGuard() | Answers(profile={"max_input_tokens": 16_000})
    with pytest.raises(ContextLengthExceededError, match="at least"):
        model.invoke(messages)
    assert exact_counter.threads == []


def test_a_list_over_the_window_is_converted_only_until_it_is_known_not_to_fit(conversions):
    # The length bound (about 5 tokens a message) fits 1,000 tokens; the exact count (about
    # 25 a message) passes it within the first chunk of messages.
    messages = [("user", "one two three four five six seven eight nine ten " * 2)] * 200
    exact = count_tokens(messages, "openai:gpt-4o-mini")
    assert exact > 1_000
    conversions.clear()
    got = count_tokens_within(messages, "openai:gpt-4o-mini", 1_000)
    assert 1_000 < got <= exact
    assert sum(conversions) < len(messages)


def test_an_input_that_fits_is_still_counted_exactly(exact_counter):
    messages = [("user", "hi")] * 1_000
    model = ContextGuard() | Answers()
    assert model.invoke(messages).content == "1000"
    assert len(exact_counter.threads) == 1


def test_a_lone_surrogate_in_a_long_list_is_named_by_its_index_sync_and_async():
    messages: list[Any] = [("user", "hi")] * 300
    messages[250] = HumanMessage("bad \ud800 text")
    model = ContextGuard() | Answers()
    with pytest.raises(ValueError) as sync_error:
        model.invoke(messages)
    with pytest.raises(ValueError) as async_error:
        asyncio.run(model.ainvoke(messages))
    assert "message 250 of the input" in str(sync_error.value)
    assert str(async_error.value) == str(sync_error.value)


# --- counting off the event loop --------------------------------------------------------------


async def test_a_large_async_count_runs_while_other_coroutines_keep_ticking(monkeypatch):
    ticked = threading.Event()
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while not ticked.is_set():
            ticks += 1
            if ticks >= 3:
                ticked.set()
            await asyncio.sleep(0)

    # The count waits (in its thread) until the heartbeat has ticked three times after the
    # count began; counting on the loop would block the heartbeat and the wait would time out.
    def wait_for_heartbeat() -> None:
        nonlocal ticks
        ticks = 0
        assert ticked.wait(timeout=60), "the event loop did not run while counting"

    spy = Spy(count_tokens_within, during=wait_for_heartbeat)
    monkeypatch.setattr(guard_module, "count_tokens_within", spy)
    model = ContextGuard() | Answers()
    beat = asyncio.create_task(heartbeat())
    answer = await model.ainvoke([HumanMessage("hi")] * 5_000)
    ticked.set()
    await beat
    assert answer.content == "5000"
    assert spy.threads and spy.threads[0] != threading.get_ident()


async def test_async_streams_and_batches_count_large_inputs_off_the_loop(exact_counter):
    model = ContextGuard() | Answers()
    big = [HumanMessage("hi")] * 1_000
    chunks = [chunk async for chunk in model.astream(big)]
    answers = await model.abatch([big, big])
    assert "".join(str(c.content) for c in chunks) == "1000"
    assert [a.content for a in answers] == ["1000", "1000"]
    assert len(exact_counter.threads) == 3
    assert threading.get_ident() not in exact_counter.threads


async def test_a_small_async_input_is_counted_on_the_loop(exact_counter):
    # A thread hand-off costs more than counting a short prompt, so small inputs stay here.
    model = ContextGuard() | Answers()
    assert (await model.ainvoke("Summarise this report.")).content == "1"
    assert (await model.ainvoke([("user", "hi")] * 10)).content == "10"
    assert exact_counter.threads == [threading.get_ident()] * 2


async def test_a_long_async_string_is_counted_off_the_loop(exact_counter):
    model = ContextGuard() | Answers()
    assert (await model.ainvoke("word " * 20_000)).content == "1"
    assert exact_counter.threads and exact_counter.threads[0] != threading.get_ident()
