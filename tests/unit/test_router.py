"""The router's logic: fallback order, bookkeeping, stats, entry points and the builder.

Named fake chat models (windows from their ``profile``) stand in for providers; the real HTTP
path (ChatOpenAI against the simulator) is in tests/integration/test_router_sim.py.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest
from langchain_core.exceptions import ModelRateLimitError
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI

from llm_routing._decorator import Decorator
from llm_routing.cost import CostTracker
from llm_routing.errors import (
    AllModelsFailedError,
    ContextLengthExceededError,
    ErrorKind,
    QuotaExceededError,
)
from llm_routing.guard import ContextGuard
from llm_routing.router import Router, create_auto_picker_llm
from llm_routing.router import build_router as full_build_router
from llm_routing.schedule import RateScheduler
from tests.support.recorders import Recorder, kinds


def build_router(*args, **kwargs):
    """The builder with only the guard by default: these tests are about routing.

    The fakes have no published limits or prices, so the default scheduler and tracker would
    only warn about them; the tests of those defaults call ``full_build_router``.
    """
    kwargs.setdefault("scheduler", False)
    kwargs.setdefault("tracker", False)
    return full_build_router(*args, **kwargs)


OPENAI = {"api_key": "sk-test", "base_url": "http://127.0.0.1:9/v1"}


class Named(GenericFakeChatModel):
    """A fake chat model with a name, a window, and optionally an error to raise."""

    model_name: str = "fake"
    error: Any = None
    fail_after_first_chunk: bool = False

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        if self.error is not None:
            raise self.error
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        if self.error is not None:
            raise self.error
        for index, chunk in enumerate(super()._stream(messages, stop, run_manager, **kwargs)):
            if index == 1 and self.fail_after_first_chunk:
                raise ConnectionError("stream dropped")
            yield chunk

    def bind_tools(self, tools, **kwargs):
        return self.bind(tools=tools, **kwargs)


def named(name: str, window: int = 10_000, *, reply: str | None = None, error: Any = None, **kw):
    return Named(
        model_name=name,
        messages=iter([reply or f"from {name}"] * 100),
        profile={"max_input_tokens": window},
        error=error,
        **kw,
    )


BIG = "word " * 3_000  # over 1,000-token windows, under 10,000


# --- routing --------------------------------------------------------------------------------


def test_primary_serves_when_it_can():
    router = build_router(named("a"), [named("b")])
    assert router.invoke("hi").content == "from a"


def test_response_records_which_model_served_and_no_attempts():
    message = build_router(named("a"), [named("b")]).invoke("hi")
    assert message.response_metadata["llm_routing.model"] == "named:a"
    assert message.response_metadata["llm_routing.attempts"] == []


def test_oversize_input_skips_to_the_first_model_that_fits():
    router = build_router(named("small", 1_000), [named("big", 10_000)])
    message = router.invoke(BIG)
    assert message.content == "from big"
    [attempt] = message.response_metadata["llm_routing.attempts"]
    assert attempt["model"] == "named:small"
    assert attempt["kind"] == "context"
    assert "ContextLengthExceededError" in attempt["error"]


def test_large_context_candidates_are_ordered_by_window_ascending():
    router = build_router(
        named("a", 1_000), large_context=[named("huge", 100_000), named("mid", 10_000)]
    )
    assert router.names == ("named:a", "named:mid", "named:huge")
    assert router.invoke(BIG).content == "from mid"


def test_large_context_come_after_the_fallbacks():
    router = build_router(named("a"), [named("b", 500)], large_context=[named("c", 100)])
    assert router.names == ("named:a", "named:b", "named:c")


def test_rate_limit_error_falls_back():
    router = build_router(
        named("a", error=ModelRateLimitError("429 too many requests")), [named("b")]
    )
    assert router.invoke("hi").content == "from b"
    assert router.stats()["rate_limit_fallbacks"] == 1


def test_quota_error_falls_back():
    router = build_router(named("a", error=QuotaExceededError(model="a")), [named("b")])
    assert router.invoke("hi").content == "from b"
    assert router.stats()["quota_fallbacks"] == 1


def test_non_fallback_error_propagates_without_trying_the_next_model():
    b = named("b")
    router = build_router(named("a", error=ValueError("bad request: unknown field")), [b])
    with pytest.raises(ValueError, match="unknown field"):
        router.invoke("hi")
    assert router.stats()["by_model"]["named:b"]["requests"] == 0


def test_all_models_failing_raises_all_models_failed_naming_each():
    router = build_router(named("a", 100), [named("b", 200)], large_context=[named("c", 300)])
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke(BIG)
    err = info.value
    assert [a.model for a in err.attempts] == ["named:a", "named:b", "named:c"]
    assert all(a.kind is ErrorKind.CONTEXT for a in err.attempts)
    for name in ("named:a", "named:b", "named:c"):
        assert name in str(err)


def test_all_models_failed_is_a_runtime_error_for_the_seed():
    with pytest.raises(RuntimeError):
        build_router(named("a", 100)).invoke(BIG)


def test_guard_can_be_left_out():
    router = build_router(named("a", 100), guard=False)
    assert router.invoke(BIG).content == "from a"


def test_a_shared_guard_instance_is_used_on_every_model():
    guard = ContextGuard(safety=0.5)
    router = build_router(named("a", 1_000), [named("b", 1_000)], guard=guard)
    assert all(model.decorators == (guard,) for model in router.models)


# --- stats ----------------------------------------------------------------------------------


def test_stats_count_primary_fallback_and_reasons():
    router = build_router(named("small", 1_000), [named("big")])
    router.invoke("hi")
    router.invoke(BIG)
    stats = router.stats()
    assert stats["total_requests"] == 2
    assert stats["primary_requests"] == 1
    assert stats["fallback_requests"] == 1
    assert stats["context_fallbacks"] == 1
    assert stats["rate_limit_fallbacks"] == stats["quota_fallbacks"] == 0
    assert stats["by_model"]["named:small"] == {"requests": 1, "failures": {"context": 1}}
    assert stats["by_model"]["named:big"] == {"requests": 1, "failures": {}}


def test_stats_count_requests_where_every_model_failed():
    router = build_router(named("a", 100))
    with pytest.raises(AllModelsFailedError):
        router.invoke(BIG)
    assert router.stats()["failed_requests"] == 1
    assert router.stats()["total_requests"] == 1


def test_get_stats_is_the_seed_alias():
    router = build_router(named("a"))
    router.invoke("hi")
    assert router.get_stats() == router.stats()


def test_stats_snapshot_is_a_copy():
    router = build_router(named("a"))
    snapshot = router.stats()
    router.invoke("hi")
    assert snapshot["total_requests"] == 0


# --- entry points ---------------------------------------------------------------------------


async def test_ainvoke_falls_back():
    router = build_router(named("small", 1_000), [named("big")])
    message = await router.ainvoke(BIG)
    assert message.response_metadata["llm_routing.model"] == "named:big"


def test_batch_routes_each_input_on_its_own():
    router = build_router(named("small", 1_000), [named("big")])
    served = [m.response_metadata["llm_routing.model"] for m in router.batch(["hi", BIG, "yo"])]
    assert served == ["named:small", "named:big", "named:small"]


async def test_abatch_routes_each_input_on_its_own():
    router = build_router(named("small", 1_000), [named("big")])
    served = [m.response_metadata["llm_routing.model"] for m in await router.abatch([BIG, "hi"])]
    assert served == ["named:big", "named:small"]


def test_batch_return_exceptions_applies_per_input():
    router = build_router(named("small", 1_000))
    results = router.batch(["hi", BIG], return_exceptions=True)
    assert isinstance(results[0], AIMessage)
    assert isinstance(results[1], AllModelsFailedError)


def test_stream_falls_back_before_the_first_chunk():
    router = build_router(named("small", 1_000), [named("big", reply="a b c")])
    chunks = list(router.stream(BIG))
    assert "".join(c.content for c in chunks) == "a b c"
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.response_metadata["llm_routing.model"] == "named:big"


async def test_astream_falls_back_before_the_first_chunk():
    router = build_router(named("small", 1_000), [named("big", reply="a b c")])
    chunks = [c async for c in router.astream(BIG)]
    assert isinstance(chunks[0], AIMessageChunk)
    assert chunks[0].response_metadata["llm_routing.model"] == "named:big"


def test_stream_that_fails_after_its_first_chunk_does_not_fall_back():
    b = named("b")
    router = build_router(named("a", reply="x y z", fail_after_first_chunk=True), [b])
    received = []
    with pytest.raises(ConnectionError) as info:
        for chunk in router.stream("hi"):
            received.append(chunk)
    assert len(received) == 1
    assert any("does not fall back" in note for note in info.value.__notes__)
    assert router.stats()["by_model"]["named:b"]["requests"] == 0


def test_stream_with_every_model_failing_raises_all_models_failed():
    with pytest.raises(AllModelsFailedError):
        list(build_router(named("a", 100), [named("b", 100)]).stream(BIG))


def test_bind_tools_binds_on_every_model_and_shares_stats():
    def search(query: str) -> str:
        """Search."""
        return query

    router = build_router(named("small", 1_000), [named("big")])
    bound = router.bind_tools([search])
    assert isinstance(bound, Router)
    for model in bound.models:
        assert model._bound_kwargs["tools"] == [search]
    bound.invoke("hi")
    assert router.stats()["total_requests"] == 1


def test_bind_tools_on_a_model_without_it_is_a_type_error():
    router = build_router(
        GenericFakeChatModel(messages=iter(["x"]), profile={"max_input_tokens": 9})
    )
    with pytest.raises(TypeError, match="bind_tools"):
        router.bind_tools([])


def test_with_structured_output_applies_to_every_model():
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    router = build_router(ChatOpenAI(model="gpt-4o-mini", max_retries=0, **OPENAI))
    structured = router.with_structured_output(Answer)
    assert isinstance(structured, Router)
    assert len(structured.models) == 1


def test_router_pipes_into_a_parser():
    from langchain_core.output_parsers import StrOutputParser

    chain = build_router(named("a")) | StrOutputParser()
    assert chain.invoke("hi") == "from a"


# --- the builder ----------------------------------------------------------------------------


def test_names_build_models_with_sdk_retries_off():
    router = build_router("openai:gpt-4o-mini", ["openai/gpt-4.1-mini"], init_kwargs=OPENAI)
    assert router.names == ("openai:gpt-4o-mini", "openai:gpt-4.1-mini")
    assert all(model.bound.max_retries == 0 for model in router.models)


def test_init_kwargs_reach_the_built_models():
    router = build_router("openai:gpt-4o-mini", init_kwargs={**OPENAI, "temperature": 0.25})
    assert router.models[0].bound.temperature == 0.25


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="no-such-model"):
        build_router("openai:no-such-model-xyz", init_kwargs=OPENAI)


def test_missing_langchain_is_an_import_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)
    with pytest.raises(ImportError, match="pip install"):
        build_router("openai:gpt-4o-mini")


def test_user_model_that_retries_on_its_own_gets_a_warning():
    with pytest.warns(UserWarning, match="max_retries=2"):
        build_router(ChatOpenAI(model="gpt-4o-mini", max_retries=2, **OPENAI))


def test_user_model_without_retries_gets_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_router(ChatOpenAI(model="gpt-4o-mini", max_retries=0, **OPENAI))


def test_duplicate_models_get_distinct_names():
    router = build_router(named("a"), [named("a")])
    assert router.names == ("named:a", "named:a#2")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"primary": None}, TypeError, "primary"),
        ({"primary": 42}, TypeError, "primary"),
        ({"primary": "  "}, ValueError, "empty model name"),
        ({"fallbacks": 3}, TypeError, "fallbacks"),
        ({"max_wait": -1}, ValueError, "max_wait"),
        ({"max_wait": "90"}, TypeError, "max_wait"),
        ({"tier": 1}, TypeError, "tier"),
        ({"budget_usd": -5}, ValueError, "budget_usd"),
        ({"scheduler": "fast"}, TypeError, "scheduler"),
        ({"guard": "yes"}, TypeError, "guard"),
        ({"init_kwargs": ["x"]}, TypeError, "init_kwargs"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, match):
    args = {"primary": named("a"), **kwargs}
    with pytest.raises(error, match=match):
        build_router(**args)


def test_default_stack_is_guard_scheduler_tracker_on_every_model():
    with pytest.warns(UserWarning):  # the fakes have no published limits or prices
        router = full_build_router(named("a"), [named("b")], budget_usd=5.0, max_wait=3)
    guard, scheduler, tracker = router.models[0].decorators
    assert isinstance(guard, ContextGuard)
    assert isinstance(scheduler, RateScheduler) and scheduler.max_wait == 3
    assert isinstance(tracker, CostTracker)
    assert all(m.decorators == (guard, scheduler, tracker) for m in router.models)
    stats = router.stats()
    assert stats["waits"]["count"] == 0
    assert stats["total_cost"] == 0.0


def test_max_wait_bounds_the_default_trackers_wait_for_budget_too():
    # A caller who will not wait is refused at once by either: the scheduler waiting for
    # capacity, the tracker waiting for calls in flight to free budget.
    with pytest.warns(UserWarning):
        router = full_build_router(named("a"), budget_usd=5.0, max_wait=0)
    _, scheduler, tracker = router.models[0].decorators
    assert scheduler.max_wait == tracker.max_wait == 0.0
    with pytest.warns(UserWarning):
        default = full_build_router(named("a"), budget_usd=5.0)
    assert default.models[0].decorators[2].max_wait == 90.0


def test_budget_with_the_tracker_left_out_is_refused_rather_than_ignored():
    with pytest.raises(ValueError, match=r"budget_usd.*nothing would enforce it"):
        full_build_router(named("a"), budget_usd=5.0, tracker=False)


def test_budget_with_an_own_tracker_is_refused_rather_than_ignored():
    with pytest.raises(ValueError, match="CostTracker\\(budget_usd"):
        full_build_router(named("a"), budget_usd=5.0, tracker=CostTracker())


def test_scheduler_settings_with_the_scheduler_left_out_are_refused():
    with pytest.raises(ValueError, match="scheduler=False"):
        full_build_router(named("a"), max_wait=5, scheduler=False, tracker=False)


def test_scheduler_settings_with_an_own_scheduler_are_refused():
    with pytest.raises(ValueError, match="RateScheduler\\(tier"):
        full_build_router(named("a"), tier="tier2", scheduler=RateScheduler(), tracker=False)


def test_an_unknown_tier_fails_at_build_time_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown tier 'tier9'.*tier1"):
        full_build_router("openai:gpt-4o-mini", tier="tier9", init_kwargs={"api_key": "x"})


def test_a_tier_one_model_lacks_fails_at_build_time_naming_the_model():
    with pytest.raises(ValueError, match=r"fallbacks\[0\].*mistral.*free"):
        full_build_router(
            "openai:gpt-4o-mini",
            [named("mistral-large")],
            init_kwargs={"api_key": "x"},
        )


def test_langfuse_off_adds_no_handler():
    assert build_router(named("a")).settings["langfuse"] is None


def test_settings_are_stored_on_the_router():
    router = build_router(named("a"))
    assert router.settings["tier"] == "tier1"
    assert router.settings["max_wait"] == 90.0


def test_scheduler_and_tracker_slots_wrap_every_model_in_order():
    log: list[tuple[str, str, object]] = []
    scheduler, tracker = Recorder("scheduler", log), Recorder("tracker", log)
    router = build_router(named("a"), [named("b")], scheduler=scheduler, tracker=tracker)
    assert all(isinstance(m.decorators[0], ContextGuard) for m in router.models)
    assert all(m.decorators[1:] == (scheduler, tracker) for m in router.models)
    router.invoke("hi")
    assert [name for name, hook, _ in log if hook == "before"] == ["scheduler", "tracker"]


def test_a_refusing_scheduler_makes_the_router_fall_back():
    class Refuse(Decorator):
        def before(self, call):
            if call.model.model_name == "a":
                raise ContextLengthExceededError("no room", 1, 0, model="a")

    router = build_router(named("a"), [named("b")], scheduler=Refuse())
    assert router.invoke("hi").content == "from b"


# --- the seed's entry point -----------------------------------------------------------------


def test_create_auto_picker_llm_builds_primary_then_large_context(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    router = create_auto_picker_llm(init_kwargs={"base_url": OPENAI["base_url"]})
    assert router.names == ("openai:gpt-4o-mini", "openai:gpt-4.1-mini")


def test_create_auto_picker_llm_without_context_fallback_has_one_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    router = create_auto_picker_llm(enable_context_fallback=False)
    assert router.names == ("openai:gpt-4o-mini",)


def test_create_auto_picker_llm_streaming_builds_streaming_models(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    router = create_auto_picker_llm(streaming=True)
    assert router.models[0].bound.streaming is True


def test_create_auto_picker_llm_skips_a_large_context_model_no_larger(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    router = create_auto_picker_llm(primary_model="gpt-4.1")
    assert router.names == ("openai:gpt-4.1",)


def test_create_auto_picker_llm_rejects_an_empty_model():
    with pytest.raises(ValueError, match="primary_model"):
        create_auto_picker_llm(primary_model="")


async def test_astream_stopped_early_closes_the_models_stream_at_once():
    log: list[tuple[str, str, object]] = []
    router = build_router(named("a", reply="one two three four"), guard=Recorder("g", log))
    stream = router.astream("hi")
    async for _chunk in stream:
        break
    await stream.aclose()
    assert kinds(log).count(("g", "on_cancel")) == 1
