"""The shared wrapping mechanism: composition, hooks, callbacks and re-wrapping on invoke paths.

Streams, events and LangGraph live in test_decorator_streaming.py; both use real LangChain pieces
with fake chat models, since this is about the Runnable protocol rather than a provider.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    GenericFakeChatModel,
    ParrotFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnableSequence
from langchain_core.runnables.fallbacks import RunnableWithFallbacks
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from llm_routing._decorator import Call, Decorated, Decorator, DecoratorStack
from tests.support.recorders import Events, PlainRecorder, Recorder


class FailingModel(BaseChatModel):
    """Fails its first `failures` calls with ValueError, then answers 'ok'."""

    failures: int = 1
    seen: int = 0

    @property
    def _llm_type(self) -> str:
        return "failing"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen += 1
        if self.seen <= self.failures:
            raise ValueError("provider said no")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok"))])


class SlowModel(BaseChatModel):
    """Never answers within a test: for cancellation."""

    @property
    def _llm_type(self) -> str:
        return "slow"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        raise NotImplementedError

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class ToolFake(GenericFakeChatModel):
    """A fake that can bind tools, so the default with_structured_output runs end to end."""

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self.bind(tools=list(tools), **kwargs)


class Answer(BaseModel):
    value: int


def parrot():
    return ParrotFakeChatModel()


def texts(messages):
    return [m.content for m in messages]


# --- composition ------------------------------------------------------------------------------


def test_decorator_pipe_model_wraps_the_model():
    guard, model = Recorder("g", []), parrot()
    decorated = guard | model
    assert isinstance(decorated, Decorated)
    assert decorated.bound is model
    assert decorated.decorators == (guard,)


def test_wrap_equals_pipe():
    guard, model = Recorder("g", []), parrot()
    assert guard.wrap(model).decorators == (guard | model).decorators


def test_stack_pipe_model_equals_nested_wraps_outermost_first():
    log = []
    g, s, t = Recorder("g", log), Recorder("s", log), Recorder("t", log)
    model = parrot()
    stacked = (g | s | t) | model
    nested = g.wrap(s.wrap(t.wrap(model)))
    assert stacked.decorators == nested.decorators == (g, s, t)
    assert stacked.bound is nested.bound is model


def test_stack_grouping_does_not_matter():
    g, s, t = Recorder("g", []), Recorder("s", []), Recorder("t", [])
    assert (g | (s | t)) == ((g | s) | t) == DecoratorStack(g, s, t)


def test_hooks_nest_before_outer_first_after_inner_first():
    log = []
    stack = Recorder("g", log) | Recorder("s", log) | Recorder("t", log)
    (stack | parrot()).invoke("hi")
    assert [entry[:2] for entry in log] == [
        ("g", "before"),
        ("s", "before"),
        ("t", "before"),
        ("t", "after"),
        ("s", "after"),
        ("g", "after"),
    ]


def test_one_stack_on_two_models_shares_decorator_instances():
    g, t = Recorder("g", []), Recorder("t", [])
    stack = g | t
    first, second = stack | parrot(), stack | GenericFakeChatModel(messages=iter([]))
    assert first.decorators[0] is second.decorators[0] is g
    assert first.decorators[1] is second.decorators[1] is t


def test_decorator_around_a_decorated_model_flattens():
    g, t = Recorder("g", []), Recorder("t", [])
    model = parrot()
    decorated = g | (t | model)
    assert decorated.decorators == (g, t)
    assert decorated.bound is model


def test_decorated_pipe_parser_is_a_runnable_sequence():
    chain = Recorder("g", []) | parrot() | StrOutputParser()
    assert isinstance(chain, RunnableSequence)
    assert chain.invoke("hello") == "hello"


def test_prompt_pipe_decorated_is_a_runnable_sequence():
    prompt = ChatPromptTemplate.from_messages([("human", "say {word}")])
    chain = prompt | (Recorder("g", []) | parrot())
    assert isinstance(chain, RunnableSequence)
    assert chain.invoke({"word": "x"}).content == "say x"


def test_decorator_pipe_non_runnable_raises_type_error_naming_what_is_accepted():
    with pytest.raises(TypeError, match="Runnable") as info:
        Recorder("g", []) | "not a runnable"
    assert "str" in str(info.value)


def test_stack_pipe_non_runnable_raises_type_error():
    with pytest.raises(TypeError, match="Runnable"):
        (Recorder("g", []) | Recorder("s", [])) | 42


def test_value_pipe_decorator_raises_type_error():
    with pytest.raises(TypeError, match="left"):
        "text" | Recorder("g", [])


def test_decorated_pipe_decorator_raises_type_error_saying_decorators_go_left():
    decorated = Recorder("g", []) | parrot()
    with pytest.raises(TypeError, match="left"):
        decorated | Recorder("s", [])


def test_empty_stack_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        DecoratorStack()


def test_stack_of_non_decorators_is_refused():
    with pytest.raises(TypeError, match="Decorator"):
        DecoratorStack(object())


def test_decorated_needs_a_runnable():
    with pytest.raises(TypeError, match="Runnable"):
        Decorated("model", (Recorder("g", []),))


# --- behaves like the model ------------------------------------------------------------------


def test_invoke_returns_what_the_model_returns():
    assert (Recorder("g", []) | parrot()).invoke("hi").content == parrot().invoke("hi").content


async def test_ainvoke_returns_what_the_model_returns():
    decorated = Recorder("g", []) | parrot()
    assert (await decorated.ainvoke("hi")).content == (await parrot().ainvoke("hi")).content


def test_batch_returns_what_the_model_returns():
    inputs = ["a", "b", "c"]
    assert texts((Recorder("g", []) | parrot()).batch(inputs)) == texts(parrot().batch(inputs))


async def test_abatch_returns_what_the_model_returns():
    inputs = ["a", "b", "c"]
    decorated = Recorder("g", []) | parrot()
    assert texts(await decorated.abatch(inputs)) == texts(await parrot().abatch(inputs))


def test_batch_as_completed_returns_every_output():
    decorated = Recorder("g", []) | parrot()
    results = dict(decorated.batch_as_completed(["a", "b"]))
    assert {i: m.content for i, m in results.items()} == {0: "a", 1: "b"}


def test_types_and_schemas_read_through():
    model = parrot()
    decorated = Recorder("g", []) | model
    assert decorated.InputType == model.InputType
    assert decorated.OutputType == model.OutputType
    assert decorated.get_input_jsonschema() == model.get_input_jsonschema()
    assert decorated.get_output_jsonschema() == model.get_output_jsonschema()
    assert decorated.get_name() == model.get_name()


def test_attributes_read_through_to_the_model():
    model = ChatOpenAI(api_key="sk-test", model="gpt-4o-mini", max_tokens=77)
    decorated = Recorder("g", []) | Recorder("t", []) | model
    assert decorated.model_name == "gpt-4o-mini"
    assert decorated.max_tokens == 77
    assert decorated.profile == model.profile
    assert decorated._llm_type == "openai-chat"


def test_missing_attribute_raises_attribute_error():
    with pytest.raises(AttributeError):
        (Recorder("g", []) | parrot()).no_such_attribute  # noqa: B018


# --- callbacks and metadata -------------------------------------------------------------------


def test_callbacks_see_exactly_one_model_run_with_user_and_decorator_metadata():
    events = Events()
    decorated = Recorder("g", [], metadata={"llm_routing.tokens": 12}) | parrot()
    decorated.invoke("hi", {"callbacks": [events], "tags": ["mine"], "metadata": {"user": "u1"}})
    assert len(events.starts) == 1
    assert events.ends == 1
    assert events.chains == []
    start = events.starts[0]
    assert "mine" in start["tags"]
    assert start["metadata"]["user"] == "u1"
    assert start["metadata"]["llm_routing.tokens"] == 12


def test_metadata_of_every_decorator_in_a_stack_reaches_the_run():
    events = Events()
    stack = Recorder("g", [], metadata={"g": 1}) | Recorder("t", [], metadata={"t": 2})
    (stack | parrot()).invoke("hi", {"callbacks": [events]})
    assert {"g": 1, "t": 2}.items() <= events.starts[0]["metadata"].items()


def test_model_run_sits_directly_under_the_callers_run():
    events = Events()
    decorated = Recorder("g", []) | parrot()
    outer = RunnableLambda(lambda x, config: decorated.invoke(x, config))
    outer.invoke("hi", {"callbacks": [events]})
    assert len(events.chains) == 1
    assert str(events.starts[0]["parent"]) == events.chains[0]


def test_caller_metadata_dict_is_not_mutated():
    metadata = {"user": "u1"}
    (Recorder("g", [], metadata={"k": 1}) | parrot()).invoke("hi", {"metadata": metadata})
    assert metadata == {"user": "u1"}


def test_callers_run_id_names_the_model_run():
    events = Events()
    run_id = "01a20f51-81e9-77f5-bc43-1ff396416dbe"

    (Recorder("g", []) | parrot()).invoke(
        "hi", {"callbacks": [events], "run_id": uuid.UUID(run_id)}
    )
    assert str(events.starts[0]["run_id"]) == run_id


# --- hooks ------------------------------------------------------------------------------------


def test_hooks_run_once_per_invoke_and_after_gets_the_message():
    log = []
    model = GenericFakeChatModel(messages=iter([AIMessage(content="answer")]))
    result = (Recorder("g", log) | model).invoke("hi")
    assert [entry[:2] for entry in log] == [("g", "before"), ("g", "after")]
    assert log[1][2] is result


def test_batch_runs_hooks_once_per_element():
    log = []
    (Recorder("g", log) | parrot()).batch(["a", "b", "c"])
    assert sorted(entry[1] for entry in log) == ["after"] * 3 + ["before"] * 3


def test_batch_return_exceptions_applies_per_element():
    decorated = Recorder("g", [], refuse=lambda text: text == "b") | parrot()
    results = decorated.batch(["a", "b", "c"], return_exceptions=True)
    assert results[0].content == "a"
    assert isinstance(results[1], RuntimeError)
    assert results[2].content == "c"


async def test_abatch_return_exceptions_applies_per_element():
    decorated = Recorder("g", [], refuse=lambda text: text == "a") | parrot()
    results = await decorated.abatch(["a", "b"], return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1].content == "b"


def test_before_refusing_skips_the_model_and_its_own_on_error():
    log = []
    model = FailingModel(failures=0)
    decorated = Recorder("g", log, refuse=lambda _: True) | model
    with pytest.raises(RuntimeError, match="g refused"):
        decorated.invoke("hi")
    assert model.seen == 0
    assert log == [("g", "before", False)]


@pytest.mark.parametrize("kind", [Recorder, PlainRecorder])
def test_inner_refusal_reaches_outer_on_error(kind):
    log = []
    decorated = (kind("g", log) | kind("t", log, refuse=lambda _: True)) | parrot()
    with pytest.raises(RuntimeError, match="t refused"):
        decorated.invoke("hi")
    assert [entry[:2] for entry in log] == [("g", "before"), ("t", "before"), ("g", "on_error")]


class MappedError(Exception):
    pass


def test_on_error_replacement_is_raised_from_the_original():
    decorated = Recorder("g", [], map_to=lambda e: MappedError(str(e))) | FailingModel()
    with pytest.raises(MappedError) as info:
        decorated.invoke("hi")
    assert isinstance(info.value.__cause__, ValueError)


def test_on_error_returning_none_propagates_the_original():
    log = []
    with pytest.raises(ValueError, match="provider said no"):
        (Recorder("g", log) | FailingModel()).invoke("hi")
    assert [entry[:2] for entry in log] == [("g", "before"), ("g", "on_error")]


def test_outer_on_error_sees_the_inner_mapping():
    log = []
    inner = Recorder("t", log, map_to=lambda e: MappedError("mapped"))
    (Recorder("g", log) | inner | FailingModel()).batch(["hi"], return_exceptions=True)
    outer_error = next(entry[2] for entry in log if entry[:2] == ("g", "on_error"))
    assert isinstance(outer_error, MappedError)


@pytest.mark.parametrize("kind", [Recorder, PlainRecorder])
def test_after_raising_reaches_outer_on_error(kind):
    log = []

    class Strict(kind):
        def after(self, call, output):
            raise MappedError("over budget")

    with pytest.raises(MappedError):
        (kind("g", log) | Strict("t", log) | kind("u", log) | parrot()).invoke("hi")
    hooks = [entry[:2] for entry in log]
    assert hooks[3:] == [("u", "after"), ("g", "on_error")]  # not t's own on_error


class OtherError(Exception):
    pass


@pytest.mark.parametrize("kind", [Recorder, PlainRecorder])
@pytest.mark.parametrize("colour", ["sync", "async"])
def test_replacements_chain_and_every_open_decorator_settles_once(colour, kind):
    """Three decorators unwind as nested frames would: each on_error (innermost first) sees
    what the inner ones mapped, replacements chain by __cause__ and __context__, the one
    whose after raised is not asked again, and the outermost only sees the result."""
    log = []
    inner = kind("t", log, map_to=lambda e: MappedError("inner"))
    middle = kind("s", log, map_to=lambda e: OtherError("middle"))
    decorated = kind("g", log) | middle | inner | FailingModel(failures=5)
    with pytest.raises(OtherError) as info:
        if colour == "sync":
            decorated.invoke("hi")
        else:
            asyncio.run(decorated.ainvoke("hi"))
    mapped = info.value.__cause__
    assert isinstance(mapped, MappedError) and info.value.__context__ is mapped
    assert isinstance(mapped.__cause__, ValueError) and mapped.__context__ is mapped.__cause__
    hooks = [entry[:2] for entry in log]
    assert hooks == [
        ("g", "before"),
        ("s", "before"),
        ("t", "before"),
        ("t", "on_error"),
        ("s", "on_error"),
        ("g", "on_error"),
    ]
    assert isinstance(log[-1][2], OtherError)


@pytest.mark.parametrize("kind", [Recorder, PlainRecorder])
def test_interrupt_reaches_every_open_decorators_on_cancel_innermost_first(kind):
    log = []

    class Interrupting(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "interrupting"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            raise KeyboardInterrupt

    decorated = kind("g", log) | Recorder("s", log) | kind("t", log) | Interrupting()
    with pytest.raises(KeyboardInterrupt):
        decorated.invoke("hi")
    assert [entry[:2] for entry in log][3:] == [
        ("t", "on_cancel"),
        ("s", "on_cancel"),
        ("g", "on_cancel"),
    ]


def test_around_retry_reruns_inner_decorators_and_the_model():
    log = []
    model = FailingModel(failures=1)
    decorated = Recorder("s", log, retries=1) | Recorder("t", log) | model
    assert decorated.invoke("hi").content == "ok"
    assert model.seen == 2
    assert [entry[:2] for entry in log] == [
        ("s", "before"),
        ("t", "before"),
        ("t", "on_error"),
        ("s", "retry"),
        ("t", "before"),
        ("t", "after"),
        ("s", "after"),
    ]


def test_retried_attempt_gets_a_fresh_run_id():

    events = Events()
    run_id = uuid.uuid4()
    decorated = Recorder("s", [], retries=1) | FailingModel(failures=1)
    decorated.invoke("hi", {"callbacks": [events], "run_id": run_id})
    assert [s["run_id"] == run_id for s in events.starts] == [True, False]


async def test_async_hooks_run_on_ainvoke():
    log = []

    class AsyncRecorder(Recorder):
        async def abefore(self, call):
            log.append(("a", "abefore"))

        async def aafter(self, call, output):
            log.append(("a", "aafter"))

    await (AsyncRecorder("a", log) | parrot()).ainvoke("hi")
    assert log == [("a", "abefore"), ("a", "aafter")]


async def test_ainvoke_maps_errors_through_async_on_error():
    decorated = Recorder("g", [], map_to=lambda e: MappedError("m")) | FailingModel()
    with pytest.raises(MappedError):
        await decorated.ainvoke("hi")


async def test_cancelled_ainvoke_calls_on_cancel():
    log = []
    task = asyncio.ensure_future((Recorder("g", log) | SlowModel()).ainvoke("hi"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log[-1] == ("g", "on_cancel", None)


def test_call_exposes_the_model_and_bound_kwargs():
    guard = Recorder("g", [])
    model = ChatOpenAI(api_key="sk-test", model="gpt-4o-mini")
    decorated = (guard | model).bind(stop=["x"])
    call = Call("hi", {}, {"max_tokens": 5}, decorated._model, decorated._bound_kwargs, False)
    assert call.model is model
    assert call.invocation_kwargs == {"stop": ["x"], "max_tokens": 5}


# --- re-wrapping ------------------------------------------------------------------------------


def openai_model():
    return ChatOpenAI(api_key="sk-test", model="gpt-4o-mini")


def test_bind_tools_keeps_the_same_decorator_instances():
    g, t = Recorder("g", []), Recorder("t", [])
    bound = (g | t | openai_model()).bind_tools([Answer])
    assert isinstance(bound, Decorated)
    assert bound.decorators[0] is g and bound.decorators[1] is t
    assert bound._bound_kwargs["tools"][0]["function"]["name"] == "Answer"


def test_bind_tools_result_is_seen_by_hooks_as_invocation_kwargs():
    guard = Recorder("g", [])
    model = ToolFake(messages=itertools.cycle([AIMessage(content="x")]))
    (guard | model).bind_tools([Answer]).invoke("hi")
    assert guard.calls[0].invocation_kwargs["tools"] == [Answer]


def test_bind_keeps_decorators_and_passes_kwargs():
    g = Recorder("g", [])
    bound = (g | openai_model()).bind(stop=["END"])
    assert bound.decorators == (g,)
    assert bound._bound_kwargs == {"stop": ["END"]}


def test_with_config_keeps_decorators_and_hooks_see_the_bound_tags():
    events = Events()
    g = Recorder("g", [])
    configured = (g | parrot()).with_config(tags=["batch-job"])
    assert configured.decorators == (g,)
    configured.invoke("hi", {"callbacks": [events]})
    assert "batch-job" in g.calls[0].config["tags"]
    assert "batch-job" in events.starts[0]["tags"]


def test_with_structured_output_decorates_the_model_part_of_openai():
    g = Recorder("g", [])
    structured = (g | openai_model()).with_structured_output(Answer)
    assert isinstance(structured, RunnableSequence)
    assert isinstance(structured.first, Decorated)
    assert structured.first.decorators == (g,)
    assert not any(isinstance(step, Decorated) for step in structured.steps[1:])


def test_with_structured_output_function_calling_decorates_the_tool_binding():
    g = Recorder("g", [])
    structured = (g | openai_model()).with_structured_output(Answer, method="function_calling")
    assert structured.first.decorators == (g,)
    assert "tools" in structured.first._bound_kwargs


def test_with_structured_output_include_raw_decorates_the_raw_branch():
    g = Recorder("g", [])
    structured = (g | openai_model()).with_structured_output(Answer, include_raw=True)
    assert isinstance(structured.first, RunnableParallel)
    assert structured.first.steps__["raw"].decorators == (g,)


def test_with_structured_output_runs_end_to_end_and_after_sees_the_message():
    log = []
    reply = AIMessage(
        content="",
        tool_calls=[{"name": "Answer", "args": {"value": 7}, "id": "c1"}],
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
    )
    model = ToolFake(messages=itertools.cycle([reply]))
    structured = (Recorder("t", log) | model).with_structured_output(Answer)
    assert structured.invoke("hi") == Answer(value=7)
    output = log[-1][2]
    assert isinstance(output, AIMessage)
    assert output.usage_metadata["total_tokens"] == 5


def test_with_fallbacks_re_applies_bind_tools_to_every_decorated_model():
    g = Recorder("g", [])
    chain = (g | openai_model()).with_fallbacks([g | openai_model()])
    bound = chain.bind_tools([Answer])
    assert isinstance(bound, RunnableWithFallbacks)
    assert all(isinstance(r, Decorated) and r.decorators == (g,) for r in bound.runnables)


def test_with_fallbacks_falls_back_through_decorators():
    log = []
    chain = (Recorder("a", log) | FailingModel(failures=5)).with_fallbacks(
        [Recorder("b", log) | parrot()]
    )
    result = chain.invoke([HumanMessage(content="hi")])
    assert isinstance(result, BaseMessage) and result.content == "hi"
    assert [entry[:2] for entry in log] == [
        ("a", "before"),
        ("a", "on_error"),
        ("b", "before"),
        ("b", "after"),
    ]


class _Tagger(Decorator):
    def before(self, call: Call) -> None:
        call.metadata["llm_routing.input_tokens"] = 42


class _Reader(Decorator):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def before(self, call: Call) -> None:
        self.seen.append(dict(call.upstream))


def test_inner_decorator_sees_what_outer_ones_learned_for_the_same_call():
    reader = _Reader()
    model = (_Tagger() | reader) | GenericFakeChatModel(messages=iter(["a", "b"]))
    model.invoke("hi")
    list(model.stream("hi"))
    assert reader.seen == [{"llm_routing.input_tokens": 42}] * 2


async def test_inner_decorator_sees_upstream_metadata_in_async_paths():
    reader = _Reader()
    model = (_Tagger() | reader) | GenericFakeChatModel(messages=iter(["a", "b"]))
    await model.ainvoke("hi")
    [c async for c in model.astream("hi")]
    assert reader.seen == [{"llm_routing.input_tokens": 42}] * 2


def test_outermost_decorator_has_no_upstream():
    reader = _Reader()
    (reader | _Tagger() | GenericFakeChatModel(messages=iter(["a"]))).invoke("hi")
    assert reader.seen == [{}]


# --------------------------------------------------------------------------- configurable


def test_configurable_fields_keep_the_decorators_and_show_the_configured_model():
    # Read through to the bare model, configurable_fields used to return a runnable with no
    # decorator at all: calls skipped the guard, the limits and the budget in silence.
    from langchain_core.runnables import ConfigurableField

    log: list[Any] = []
    recorder = Recorder("r", log)
    model = ChatOpenAI(
        model="gpt-4o-mini", api_key="sk-test", base_url="http://127.0.0.1:9", max_retries=0
    )
    configurable = (recorder | model).configurable_fields(
        model_name=ConfigurableField(id="model_name")
    )
    assert isinstance(configurable, Decorated)
    assert configurable.decorators == (recorder,)
    chosen = configurable.with_config(configurable={"model_name": "gpt-4o"})
    with pytest.raises(Exception, match=r"(?i)connect"):  # port 9: refused, after the hooks
        chosen.invoke("hi")
    [call] = recorder.calls
    assert call.model.model_name == "gpt-4o"  # the hooks see the model the config selects
    assert ("r", "before", False) in log and any(entry[1] == "on_error" for entry in log)


def test_configurable_alternatives_run_every_alternative_through_the_decorators():
    from langchain_core.runnables import ConfigurableField

    log: list[Any] = []
    recorder = Recorder("r", log)
    small = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="small")]))
    large = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="large")]))
    routed = (recorder | small).configurable_alternatives(
        ConfigurableField(id="size"), default_key="small", large=large
    )
    assert isinstance(routed, Decorated)
    assert routed.invoke("hi").content == "small"
    assert recorder.calls[-1].model is small
    assert routed.invoke("hi", {"configurable": {"size": "large"}}).content == "large"
    assert recorder.calls[-1].model is large
    assert [entry[1] for entry in log] == ["before", "after", "before", "after"]
