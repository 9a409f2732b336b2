"""The shared wrapping mechanism on streaming paths: stream/astream/transform, astream_events v2,
stream_events v3, and LangGraph's ``stream_mode="messages"`` token streaming through decorators.
"""

from __future__ import annotations

import itertools
import warnings

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate

from llm_routing._decorator import Decorator
from tests.support.recorders import Events, Recorder, kinds

USAGE = {"input_tokens": 4, "output_tokens": 3, "total_tokens": 7}


class UsageModel(BaseChatModel):
    """Streams 'one two three' like OpenAI with stream_usage: usage rides on the last chunk.

    `fail_at` raises ValueError before chunk number `fail_at` (0: before the first one) for
    the first `failures` streams.
    """

    fail_at: int | None = None
    failures: int = 1
    streams: int = 0

    @property
    def _llm_type(self) -> str:
        return "usage-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        message = AIMessage(content="one two three", usage_metadata=USAGE)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.streams += 1
        words = ["one", " two", " three"]
        for index, word in enumerate(words):
            if self.fail_at == index and self.streams <= self.failures:
                raise ValueError("stream broke")
            last = index == len(words) - 1
            chunk = AIMessageChunk(content=word, usage_metadata=USAGE if last else None)
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)


class MappedError(Exception):
    pass


def words(chunks):
    """Chunk texts, without the empty closing chunk some LangChain paths add."""
    return [c.content for c in chunks if c.content]


# --- stream / astream / transform -------------------------------------------------------------


def test_stream_yields_the_models_chunks_unchanged():
    assert words((Recorder("g", []) | UsageModel()).stream("hi")) == words(
        UsageModel().stream("hi")
    )


async def test_astream_yields_the_models_chunks_unchanged():
    decorated = Recorder("g", []) | UsageModel()
    assert words([c async for c in decorated.astream("hi")]) == ["one", " two", " three"]


def test_transform_through_a_prompt_streams_chunks():
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    chain = prompt | (Recorder("g", []) | UsageModel())
    assert words(chain.stream({"q": "x"})) == ["one", " two", " three"]


async def test_atransform_through_a_prompt_streams_chunks():
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    chain = prompt | (Recorder("g", []) | UsageModel())
    assert words([c async for c in chain.astream({"q": "x"})]) == ["one", " two", " three"]


def test_before_waits_for_the_first_chunk_request():
    log = []
    stream = (Recorder("g", log) | UsageModel()).stream("hi")
    assert log == []
    next(stream)
    assert log == [("g", "before", True)]


def test_stream_after_gets_the_aggregated_message_with_usage():
    log = []
    list((Recorder("g", log) | UsageModel()).stream("hi"))
    ((_, _, output),) = [entry for entry in log if entry[1] == "after"]
    assert output.content == "one two three"
    assert output.usage_metadata == USAGE


async def test_astream_after_gets_the_aggregated_message_with_usage():
    log = []
    [c async for c in (Recorder("g", log) | UsageModel()).astream("hi")]
    assert log[-1][1] == "after"
    assert log[-1][2].usage_metadata == USAGE


def test_stream_hooks_nest_like_invoke():
    log = []
    list((Recorder("g", log) | Recorder("t", log) | UsageModel()).stream("hi"))
    assert kinds(log) == [("g", "before"), ("t", "before"), ("t", "after"), ("g", "after")]


def test_stream_shows_one_model_run_with_decorator_metadata():
    events = Events()
    decorated = Recorder("g", [], metadata={"llm_routing.wait_s": 0.0}) | UsageModel()
    list(decorated.stream("hi", {"callbacks": [events], "tags": ["t1"]}))
    assert len(events.starts) == 1 and events.ends == 1
    assert events.starts[0]["metadata"]["llm_routing.wait_s"] == 0.0
    assert "t1" in events.starts[0]["tags"]


def test_closing_a_stream_early_calls_on_cancel_with_what_was_received():
    log = []
    stream = (Recorder("g", log) | Recorder("t", log) | UsageModel()).stream("hi")
    next(stream)
    stream.close()
    assert kinds(log)[-2:] == [("t", "on_cancel"), ("g", "on_cancel")]
    assert log[-1][2].content == "one"
    assert "after" not in [entry[1] for entry in log]


async def test_closing_an_astream_early_calls_on_cancel():
    log = []
    stream = (Recorder("g", log) | UsageModel()).astream("hi")
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    assert log[-1][:2] == ("g", "on_cancel")
    assert log[-1][2].content == "one two"


def test_error_before_the_first_chunk_goes_through_on_error_and_is_mapped():
    log = []
    decorated = Recorder("g", log, map_to=lambda e: MappedError("mapped")) | UsageModel(fail_at=0)
    with pytest.raises(MappedError) as info:
        list(decorated.stream("hi"))
    assert isinstance(info.value.__cause__, ValueError)
    assert kinds(log) == [("g", "before"), ("g", "on_error")]


def test_error_mid_stream_goes_through_on_error_after_chunks_were_yielded():
    log = []
    received = []
    decorated = Recorder("g", log, map_to=lambda e: MappedError("mapped")) | UsageModel(fail_at=2)
    with pytest.raises(MappedError):
        for chunk in decorated.stream("hi"):
            received.append(chunk.content)
    assert received == ["one", " two"]
    assert kinds(log) == [("g", "before"), ("g", "on_error")]


class PartialSeen(Decorator):
    def __init__(self):
        self.seen = []

    def on_error(self, call, error):
        self.seen.append(call.partial)


def test_on_error_mid_stream_sees_the_sum_of_the_chunks_delivered_so_far():
    outer, inner = PartialSeen(), PartialSeen()
    with pytest.raises(ValueError):
        list((outer | (inner | UsageModel(fail_at=2))).stream("hi"))
    assert [p.content for p in outer.seen] == ["one two"]
    assert [p.content for p in inner.seen] == ["one two"]


async def test_aon_error_mid_astream_sees_the_partial_and_before_the_first_chunk_none():
    broken_late, broken_early = PartialSeen(), PartialSeen()
    with pytest.raises(ValueError):
        [c async for c in (broken_late | UsageModel(fail_at=1)).astream("hi")]
    with pytest.raises(ValueError):
        [c async for c in (broken_early | UsageModel(fail_at=0)).astream("hi")]
    assert [p.content for p in broken_late.seen] == ["one"]
    assert broken_early.seen == [None]


async def test_astream_error_before_the_first_chunk_is_mapped():
    decorated = Recorder("g", [], map_to=lambda e: MappedError("m")) | UsageModel(fail_at=0)
    with pytest.raises(MappedError):
        [c async for c in decorated.astream("hi")]


def test_around_retries_a_stream_that_failed_before_its_first_chunk_without_duplicates():
    log = []
    model = UsageModel(fail_at=0, failures=1)
    decorated = Recorder("s", log, retries=1) | Recorder("t", log) | model
    assert words(decorated.stream("hi")) == ["one", " two", " three"]
    assert model.streams == 2
    assert kinds(log) == [
        ("s", "before"),
        ("t", "before"),
        ("t", "on_error"),
        ("s", "retry"),
        ("t", "before"),
        ("t", "after"),
        ("s", "after"),
    ]


async def test_aaround_retries_an_astream_that_failed_before_its_first_chunk():
    model = UsageModel(fail_at=0, failures=1)
    decorated = Recorder("s", [], retries=1) | model
    assert words([c async for c in decorated.astream("hi")]) == ["one", " two", " three"]
    assert model.streams == 2


# --- events -----------------------------------------------------------------------------------


async def test_astream_events_v2_include_the_models_stream_events():
    decorated = Recorder("g", [], metadata={"llm_routing.tokens": 5}) | UsageModel()
    events = [e async for e in decorated.astream_events("hi", version="v2")]
    bare = [e async for e in UsageModel().astream_events("hi", version="v2")]
    assert [e["event"] for e in events] == [e["event"] for e in bare]
    assert [e["event"] for e in events].count("on_chat_model_stream") >= 3
    assert events[0]["metadata"]["llm_routing.tokens"] == 5


def test_stream_events_v3_streams_text_and_settles_with_the_message():
    log = []
    decorated = Recorder("g", log) | GenericFakeChatModel(messages=iter([AIMessage(content="a b")]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stream = decorated.stream_events("hi", version="v3")
        assert "".join(stream.text) == "a b"
    assert kinds(log) == [("g", "before"), ("g", "after")]
    assert log[-1][2].text == "a b"


async def test_astream_events_v3_streams_text_and_settles_with_the_message():
    log = []
    decorated = Recorder("g", log) | GenericFakeChatModel(messages=iter([AIMessage(content="a b")]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stream = await decorated.astream_events("hi", version="v3")
        text = "".join([t async for t in stream.text])
        await stream  # the run ends (and settles) when the consumer drains the stream
    assert text == "a b"
    assert kinds(log) == [("g", "before"), ("g", "after")]


# --- LangGraph --------------------------------------------------------------------------------


def test_langgraph_messages_stream_mode_streams_tokens_through_decorators():
    langgraph = pytest.importorskip("langgraph.graph")
    log = []
    decorated = Recorder("g", log, metadata={"llm_routing.tokens": 9}) | UsageModel()

    def agent(state):
        return {"messages": [decorated.invoke(state["messages"])]}

    builder = langgraph.StateGraph(langgraph.MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(langgraph.START, "agent")
    graph = builder.compile()
    streamed = list(
        graph.stream({"messages": [HumanMessage(content="hi")]}, stream_mode="messages")
    )
    assert words(chunk for chunk, _ in streamed) == ["one", " two", " three"]
    assert streamed[0][1]["llm_routing.tokens"] == 9
    assert streamed[0][1]["langgraph_node"] == "agent"
    assert kinds(log) == [("g", "before"), ("g", "after")]


async def test_langgraph_async_messages_stream_mode_streams_tokens_through_decorators():
    langgraph = pytest.importorskip("langgraph.graph")
    decorated = Recorder("g", []) | UsageModel()

    async def agent(state):
        return {"messages": [await decorated.ainvoke(state["messages"])]}

    builder = langgraph.StateGraph(langgraph.MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(langgraph.START, "agent")
    graph = builder.compile()
    streamed = [
        chunk
        async for chunk, _ in graph.astream(
            {"messages": [HumanMessage(content="hi")]}, stream_mode="messages"
        )
    ]
    assert words(streamed) == ["one", " two", " three"]


def test_fake_model_cycle_is_deterministic_across_decorated_streams():
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="x y")]))
    decorated = Recorder("g", []) | model
    assert words(decorated.stream("a")) == words(decorated.stream("b")) == ["x", " ", "y"]
