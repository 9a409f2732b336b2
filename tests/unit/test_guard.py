"""ContextGuard: the fit check, output reserve, metadata, error mapping and the seed's questions.

Fake chat models (with a ``profile`` giving their window) stand in for providers where only the
guard's logic is under test; a real ``ChatOpenAI`` pointed at a closed port proves a refusal
happens before any network call.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import ContextOverflowError
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from llm_routing.catalog import Catalog, ModelSpec, default_catalog
from llm_routing.errors import FALLBACK_ERRORS, ContextLengthExceededError, UnknownModelError
from llm_routing.guard import DEFAULT_OUTPUT_RESERVE, ContextGuard
from llm_routing.tokens import count_tokens


def fake(window: int = 1_000, *, max_output: int | None = None, reply: str = "ok", **kw: Any):
    profile: dict[str, Any] = {"max_input_tokens": window}
    if max_output is not None:
        profile["max_output_tokens"] = max_output
    return GenericFakeChatModel(messages=iter([reply] * 50), profile=profile, **kw)


def count(messages: Any, model: Any, **kw: Any) -> int:
    """What the guard counts for ``model`` (fakes get the generic estimate, OpenAI o200k)."""
    return count_tokens(messages, ContextGuard().spec_for(model), **kw)


def closed_port_openai(**kw: Any) -> ChatOpenAI:
    # Port 9 (discard) on loopback: any request would fail with a connection error, so a
    # ContextLengthExceededError proves the guard refused before the network.
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-test",
        max_retries=0,
        **kw,
    )


class Metadata(BaseCallbackHandler):
    def __init__(self):
        self.seen: list[dict[str, Any]] = []

    def on_chat_model_start(self, serialized, messages, *, metadata=None, **kwargs):
        self.seen.append(dict(metadata or {}))


class Raising(BaseChatModel):
    """A chat model whose provider rejects every input with the given error."""

    error: Any = None
    profile: Any = {"max_input_tokens": 100_000}

    @property
    def _llm_type(self) -> str:
        return "raising"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        raise self.error


class Echo(BaseChatModel):
    """Answers with the number of messages it got (checks the guard let the call through)."""

    profile: Any = {"max_input_tokens": 1_000}

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        return ChatResult(generations=[ChatGeneration(message=AIMessage(str(len(messages))))])


# --- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("safety", [0, -0.5, 1.01, 2])
def test_safety_outside_zero_one_is_a_value_error_naming_it(safety):
    with pytest.raises(ValueError, match="safety"):
        ContextGuard(safety=safety)


@pytest.mark.parametrize("safety", ["0.9", None, True])
def test_safety_not_a_number_is_a_type_error(safety):
    with pytest.raises(TypeError, match="safety"):
        ContextGuard(safety=safety)


def test_negative_reserve_output_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="reserve_output"):
        ContextGuard(reserve_output=-1)


def test_float_reserve_output_is_a_type_error():
    with pytest.raises(TypeError, match="reserve_output"):
        ContextGuard(reserve_output=1.5)


def test_catalog_must_be_a_catalog():
    with pytest.raises(TypeError, match="catalog"):
        ContextGuard(catalog={"gpt-4o-mini": 128_000})


def test_safety_one_is_accepted():
    assert ContextGuard(safety=1).safety == 1.0


# --- the fit check --------------------------------------------------------------------------


def test_input_that_fits_reaches_the_model():
    assert (ContextGuard() | fake()).invoke("hello").content == "ok"


def test_oversize_input_raises_context_length_exceeded_with_the_numbers():
    guard = ContextGuard(reserve_output=100)
    text = "word " * 2_000
    model = fake(1_000)
    with pytest.raises(ContextLengthExceededError) as info:
        (guard | model).invoke(text)
    tokens = count([("user", text)], model)
    err = info.value
    assert err.required_tokens == tokens + 100
    assert err.max_tokens == 900
    assert err.model == "genericfakechatmodel:genericfakechatmodel"
    assert f"{tokens:,} tokens + 100 reserved for output" in str(err)
    assert "accepts 900 (1,000 × 0.9)" in str(err)


def test_refusal_is_a_fallback_error():
    with pytest.raises(FALLBACK_ERRORS):
        (ContextGuard() | fake(100)).invoke("word " * 500)


def test_refusal_happens_before_any_network_call():
    with pytest.raises(ContextLengthExceededError, match="openai:gpt-4o-mini accepts 115,200"):
        (ContextGuard() | closed_port_openai()).invoke("word " * 130_000)


async def test_async_refusal_happens_before_any_network_call():
    with pytest.raises(ContextLengthExceededError):
        await (ContextGuard() | closed_port_openai()).ainvoke("word " * 130_000)


def test_stream_refuses_before_the_first_chunk():
    with pytest.raises(ContextLengthExceededError):
        next(iter((ContextGuard() | closed_port_openai()).stream("word " * 130_000)))


def test_input_exactly_at_the_limit_fits_and_one_more_token_does_not():
    guard = ContextGuard(safety=1.0, reserve_output=0)
    messages = [("user", "word " * 100)]
    tokens = count(messages, fake())
    assert (guard | fake(tokens)).invoke(messages).content == "ok"
    with pytest.raises(ContextLengthExceededError):
        (guard | fake(tokens - 1)).invoke(messages)


def test_a_string_is_counted_as_one_user_message():
    guard = ContextGuard(safety=1.0, reserve_output=0)
    text = "word " * 100
    bare = count(text, fake())
    with pytest.raises(ContextLengthExceededError):
        (guard | fake(bare)).invoke(text)  # the message overhead pushes it over


def test_bound_tool_schemas_are_counted():
    @tool
    def search(query: str) -> str:
        """Search the web for a query and return the first page of results as text."""
        return query

    guard = ContextGuard(safety=1.0, reserve_output=0)
    messages = [("user", "hi")]
    without_tools = count(messages, Echo())
    model = Echo(profile={"max_input_tokens": without_tools})
    assert (guard | model).invoke(messages).content == "1"
    with pytest.raises(ContextLengthExceededError):
        (guard | model).bind(tools=[search]).invoke(messages)


def test_image_blocks_are_counted():
    guard = ContextGuard(safety=1.0, reserve_output=0)
    message = HumanMessage(
        content=[{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]
    )
    with pytest.raises(ContextLengthExceededError):
        (guard | Echo(profile={"max_input_tokens": 50})).invoke([message])  # 85 for low detail


def test_empty_message_list_is_a_value_error():
    with pytest.raises(ValueError, match="empty list of messages"):
        (ContextGuard() | fake()).invoke([])


@pytest.mark.parametrize("bad", [None, 42])
def test_input_of_the_wrong_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="input must be"):
        (ContextGuard() | fake()).invoke(bad)


# --- output reserve -------------------------------------------------------------------------


def test_default_reserve_is_capped_by_the_models_output_limit():
    guard = ContextGuard()
    spec = ModelSpec(provider="x", name="m", context_window=100_000, max_output_tokens=1_000)
    assert guard._default_reserve(spec) == 1_000


def test_default_reserve_is_the_documented_constant_for_large_models():
    spec = default_catalog().get("gpt-4o-mini")
    assert ContextGuard()._default_reserve(spec) == DEFAULT_OUTPUT_RESERVE == 4096


def test_default_reserve_is_at_most_a_quarter_of_a_small_window():
    spec = ModelSpec(provider="x", name="m", context_window=1_000)
    assert ContextGuard()._default_reserve(spec) == 250


def _refused_reserve(guard: ContextGuard, model: Any, **kwargs: Any) -> int:
    with pytest.raises(ContextLengthExceededError) as info:
        (guard | model).invoke("word " * 200_000, **kwargs)
    found = re.search(r"\+ ([\d,]+) reserved for output", str(info.value))
    assert found is not None, str(info.value)
    return int(found.group(1).replace(",", ""))


def test_the_models_max_tokens_is_reserved():
    assert _refused_reserve(ContextGuard(), closed_port_openai(max_tokens=777)) == 777


def test_a_call_kwarg_max_tokens_beats_the_models():
    model = closed_port_openai(max_tokens=777)
    assert _refused_reserve(ContextGuard(), model, max_tokens=55) == 55


def test_a_bound_max_tokens_is_reserved():
    model = (ContextGuard() | closed_port_openai()).bind(max_tokens=321)
    with pytest.raises(ContextLengthExceededError) as info:
        model.invoke("word " * 200_000)
    assert "+ 321 reserved for output" in str(info.value)


def test_reserve_output_applies_when_no_max_tokens_is_set():
    assert _refused_reserve(ContextGuard(reserve_output=12), closed_port_openai()) == 12


def test_a_max_tokens_that_alone_exceeds_the_window_is_refused():
    with pytest.raises(ContextLengthExceededError):
        (ContextGuard() | fake(1_000)).invoke("hi", max_tokens=5_000)


# --- metadata and specs ---------------------------------------------------------------------


def test_estimate_and_window_travel_as_metadata_on_the_model_run():
    handler = Metadata()
    (ContextGuard() | fake(2_000)).invoke("hello there", config={"callbacks": [handler]})
    [meta] = handler.seen
    assert meta["llm_routing.input_tokens"] == count([("user", "hello there")], fake())
    assert meta["llm_routing.context_window"] == 2_000
    assert meta["llm_routing.reserved_output_tokens"] == 500


def test_spec_is_looked_up_once_per_model_object():
    guard = ContextGuard()
    model = closed_port_openai()
    assert guard.spec_for(model) is guard.spec_for(model)
    assert guard.spec_for(model).key == "openai:gpt-4o-mini"


def test_profile_window_overrides_the_catalogue():
    model = closed_port_openai()
    model.profile = {"max_input_tokens": 5_000}
    assert ContextGuard().spec_for(model).context_window == 5_000


def test_a_custom_catalog_supplies_windows():
    catalog = Catalog([ModelSpec(provider="openai", name="gpt-4o-mini", context_window=500)])
    model = closed_port_openai()
    model.profile = None
    with pytest.raises(ContextLengthExceededError, match="accepts 450"):
        (ContextGuard(catalog=catalog) | model).invoke("word " * 1_000)


def test_unknown_model_is_an_error_saying_how_to_register_it():
    model = ChatOpenAI(
        model="my-private-model", api_key="sk-test", base_url="http://127.0.0.1:9/v1"
    )
    model.profile = None
    with pytest.raises(UnknownModelError, match="register"):
        (ContextGuard() | model).invoke("hi")


def test_a_model_without_name_or_profile_is_a_type_error_saying_what_to_do():
    model = GenericFakeChatModel(messages=iter(["ok"]))
    with pytest.raises(TypeError, match="max_input_tokens"):
        (ContextGuard() | model).invoke("hi")


# --- provider errors ------------------------------------------------------------------------


def test_langchain_context_overflow_is_mapped():
    model = Raising(error=ContextOverflowError("prompt is too long: 250000 tokens > 200000"))
    with pytest.raises(ContextLengthExceededError) as info:
        (ContextGuard() | model).invoke("hi")
    assert "rejected the input as too long" in str(info.value)
    assert isinstance(info.value.__cause__, ContextOverflowError)
    assert info.value.required_tokens == count([("user", "hi")], model)


def test_openai_style_context_length_exceeded_code_is_mapped():
    class InvalidRequest(Exception):
        code = "context_length_exceeded"
        status_code = 400

    with pytest.raises(ContextLengthExceededError):
        (
            ContextGuard()
            | Raising(error=InvalidRequest("This model's maximum context length is 8192"))
        ).invoke("hi")


def test_other_provider_errors_propagate_unchanged():
    error = ValueError("bad request: unknown parameter")
    with pytest.raises(ValueError, match="unknown parameter"):
        (ContextGuard() | Raising(error=error)).invoke("hi")


# --- the seed's questions -------------------------------------------------------------------


def test_estimate_tokens_counts_a_string_as_a_user_message():
    assert ContextGuard().estimate_tokens("hello", "openai/gpt-4o-mini") == count_tokens(
        [("user", "hello")], "o200k_base"
    )


def test_check_fits_answers_fits_estimate_and_max_context():
    fits, tokens, max_context = ContextGuard().check_fits("hello", "openai:gpt-4o-mini")
    assert (fits, max_context) == (True, 115_200)
    assert tokens == ContextGuard().estimate_tokens("hello", "gpt-4o-mini")


def test_check_fits_says_no_for_an_oversize_input():
    fits, tokens, max_context = ContextGuard().check_fits("word " * 120_000, "gpt-4o-mini")
    assert not fits
    assert tokens > max_context


def test_check_fits_accepts_messages_and_a_spec():
    spec = default_catalog().get("gpt-4o-mini")
    fits, _, _ = ContextGuard().check_fits([SystemMessage("be brief"), HumanMessage("hi")], spec)
    assert fits


def test_check_fits_with_an_unknown_model_name_is_an_error():
    with pytest.raises(UnknownModelError):
        ContextGuard().check_fits("hi", "no-such-model-xyz")


def test_larger_context_models_lists_only_models_that_fit_smallest_window_first():
    guard = ContextGuard()
    names = guard.larger_context_models(150_000)
    windows = [default_catalog().get(n).context_window for n in names]
    assert windows == sorted(windows)
    assert all(w * 0.9 >= 150_000 for w in windows)
    assert "openai:gpt-4o-mini" not in names
    assert "openai:gpt-4.1-mini" in names


def test_get_larger_context_models_is_the_seed_alias():
    guard = ContextGuard()
    assert guard.get_larger_context_models(500_000) == guard.larger_context_models(500_000)


def test_larger_context_models_beyond_every_window_is_empty():
    assert ContextGuard().larger_context_models(10**9) == []


def test_larger_context_models_rejects_negative_and_non_int():
    with pytest.raises(ValueError, match="required_tokens"):
        ContextGuard().larger_context_models(-1)
    with pytest.raises(TypeError, match="required_tokens"):
        ContextGuard().larger_context_models("1000")


def test_changing_safety_or_reserve_after_a_call_applies_to_the_next_call():
    # The guard resolves a model's limit and default reserve once; its settings still rule.
    guard = ContextGuard(safety=1.0, reserve_output=0)
    model = guard | fake(window=1_000)
    prompt = "word " * 100
    assert model.invoke(prompt).content == "ok"
    guard.safety = 0.01
    with pytest.raises(ContextLengthExceededError):
        model.invoke(prompt)
    guard.safety = 1.0
    guard.reserve_output = 990
    with pytest.raises(ContextLengthExceededError, match="990 reserved"):
        model.invoke(prompt)
