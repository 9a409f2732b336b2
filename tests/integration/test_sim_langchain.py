"""The simulator through the real ``langchain_openai.ChatOpenAI``, as users will meet it."""

from __future__ import annotations

from typing import Literal

import pytest
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from llm_routing.errors import ErrorKind, classify, retry_after
from llm_routing.sim import FaultPlan


def chat(sim, model="gpt-4o-mini", **kwargs):
    kwargs.setdefault("stream_usage", True)
    return ChatOpenAI(model=model, base_url=sim.base_url, api_key="sim", max_retries=0, **kwargs)


class GetWeather(BaseModel):
    """Get the weather for a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"]
    days: int = Field(ge=1, le=7)


class Address(BaseModel):
    street: str
    zip_code: str


class Person(BaseModel):
    """A person with addresses."""

    name: str
    age: int
    addresses: list[Address]
    nickname: str | None = None


def test_invoke_returns_text_with_usage_metadata(sim):
    message = chat(sim).invoke("Hello")
    assert isinstance(message.content, str)
    assert message.content
    usage = message.usage_metadata
    assert usage["output_tokens"] == 12
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


# langchain-openai caches one async HTTP client per base_url across event loops, so every async
# test here shares the session loop (a per-test loop would find pooled connections of a dead one).
@pytest.mark.asyncio(loop_scope="session")
async def test_ainvoke_returns_text(sim):
    message = await chat(sim).ainvoke("Hello")
    assert message.usage_metadata["output_tokens"] == 12


def test_stream_aggregates_to_the_same_usage_as_invoke(sim):
    invoked = chat(sim).invoke("Hello")
    sim.reset()
    chunks = list(chat(sim).stream("Hello"))
    assert len(chunks) > 3
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.content == invoked.content
    assert total.usage_metadata == invoked.usage_metadata


@pytest.mark.asyncio(loop_scope="session")
async def test_astream_yields_chunks_with_usage(sim):
    total = None
    async for chunk in chat(sim).astream("Hello"):
        total = chunk if total is None else total + chunk
    assert isinstance(total, AIMessageChunk)
    assert total.usage_metadata["output_tokens"] == 12


def test_batch_answers_every_input(sim):
    results = chat(sim).batch(["one", "two", "three"])
    assert len(results) == 3
    assert all(r.content for r in results)
    assert sim.stats()["requests_served"] == 3


def test_bind_tools_returns_a_parsed_tool_call(sim):
    message = chat(sim).bind_tools([GetWeather]).invoke("Weather in Paris?")
    call = message.tool_calls[0]
    assert call["name"] == "GetWeather"
    GetWeather.model_validate(call["args"])


def test_forced_tool_choice_calls_the_named_tool(sim):
    message = chat(sim).bind_tools([GetWeather, Person], tool_choice="Person").invoke("Who?")
    assert message.tool_calls[0]["name"] == "Person"
    Person.model_validate(message.tool_calls[0]["args"])


def test_streamed_tool_call_assembles_into_valid_arguments(sim):
    total = None
    for chunk in chat(sim).bind_tools([GetWeather]).stream("Weather?"):
        total = chunk if total is None else total + chunk
    assert total.tool_calls[0]["name"] == "GetWeather"
    GetWeather.model_validate(total.tool_calls[0]["args"])


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output_returns_the_pydantic_model(sim, method):
    person = chat(sim).with_structured_output(Person, method=method).invoke("Describe someone")
    assert isinstance(person, Person)
    assert person.addresses
    assert all(isinstance(a, Address) for a in person.addresses)


def test_max_tokens_sets_finish_reason_length(sim):
    message = chat(sim, max_tokens=4).invoke("Hello")
    assert message.response_metadata["finish_reason"] == "length"
    assert message.usage_metadata["output_tokens"] == 4


def test_rate_limit_is_a_model_rate_limit_error_with_retry_after(sim):
    llm = chat(sim, model="two-rpm")
    llm.invoke("a")
    llm.invoke("b")
    with pytest.raises(ModelRateLimitError) as info:
        llm.invoke("c")
    headers = info.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert classify(info.value) is ErrorKind.RATE_LIMIT
    assert 0 < retry_after(info.value) <= 60


def test_token_rate_limit_is_classified_as_rate_limit(sim):
    llm = chat(sim, model="small-tpm", max_tokens=120)
    llm.invoke("a")
    with pytest.raises(ModelRateLimitError) as info:
        llm.invoke("b")
    assert info.value.body["type"] == "tokens"
    assert classify(info.value) is ErrorKind.RATE_LIMIT


def test_context_overflow_is_a_context_overflow_error(sim):
    with pytest.raises(ContextOverflowError) as info:
        chat(sim, model="tiny-window").invoke("word " * 400)
    assert classify(info.value) is ErrorKind.CONTEXT


def test_insufficient_quota_is_classified_as_quota(sim):
    llm = chat(sim, model="prepaid")
    llm.invoke("a")
    with pytest.raises(ModelRateLimitError) as info:
        llm.invoke("b")
    assert info.value.body["code"] == "insufficient_quota"
    assert classify(info.value) is ErrorKind.QUOTA


def test_daily_limit_is_classified_as_quota(sim):
    # A requests-per-day 429 will not clear within any sensible wait: fall back, do not retry.
    llm = chat(sim, model="one-rpd")
    llm.invoke("a")
    with pytest.raises(ModelRateLimitError) as info:
        llm.invoke("b")
    assert classify(info.value) is ErrorKind.QUOTA


@pytest.mark.parametrize("status", ["500", "502", "503", "529"])
def test_server_error_faults_are_transient_api_errors(sim, status):
    sim.set_faults("faulty", FaultPlan.always(status))
    with pytest.raises(ModelAPIError) as info:
        chat(sim, model="faulty").invoke("hi")
    assert info.value.status_code == int(status)
    assert classify(info.value) is ErrorKind.TRANSIENT
    assert sim.stats()["faults"] == {status: 1}


@pytest.mark.parametrize(("plan_wait", "said"), [(1.0, 1.0), (600, 600.0), (None, None)])
def test_429_fault_is_a_rate_limit_with_the_planned_retry_after(sim, plan_wait, said):
    sim.set_faults("faulty", FaultPlan.always("429", retry_after=plan_wait))
    with pytest.raises(ModelRateLimitError) as info:
        chat(sim, model="faulty").invoke("hi")
    assert classify(info.value) is ErrorKind.RATE_LIMIT
    assert retry_after(info.value) == said
    assert sim.stats()["faults"] == {"429": 1}


def test_quota_fault_is_insufficient_quota(sim):
    sim.set_faults("faulty", FaultPlan.always("quota"))
    with pytest.raises(ModelRateLimitError) as info:
        chat(sim, model="faulty").invoke("hi")
    assert info.value.body["code"] == "insufficient_quota"
    assert classify(info.value) is ErrorKind.QUOTA


def test_529_carries_an_anthropic_overloaded_body(sim):
    sim.set_faults("faulty", FaultPlan.always(529))
    with pytest.raises(ModelAPIError) as info:
        chat(sim, model="faulty").invoke("hi")
    assert info.value.response.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_scheduled_faults_hit_exactly_the_listed_requests(sim):
    sim.set_faults("faulty", FaultPlan.at({3: 503, 5: 500}))
    llm = chat(sim, model="faulty")
    outcomes = []
    for _ in range(6):
        try:
            llm.invoke("hi")
            outcomes.append("ok")
        except ModelAPIError as exc:
            outcomes.append(str(exc.status_code))
    assert outcomes == ["ok", "ok", "503", "ok", "500", "ok"]


def test_hung_request_surfaces_as_timeout_error(sim):
    sim.set_faults("faulty", FaultPlan.always("timeout"))
    with pytest.raises(ModelTimeoutError) as info:
        chat(sim, model="faulty", timeout=0.5).invoke("hi")
    assert classify(info.value) is ErrorKind.TRANSIENT


def test_connection_reset_is_a_transient_connection_error(sim):
    sim.set_faults("faulty", FaultPlan.always("reset"))
    with pytest.raises(ModelConnectionError) as info:
        chat(sim, model="faulty").invoke("hi")
    assert classify(info.value) is ErrorKind.TRANSIENT


def test_stream_drop_delivers_some_chunks_then_fails_transiently(sim):
    sim.set_faults("faulty", FaultPlan.always("drop", drop_after=4))
    received = []
    with pytest.raises(Exception) as info:
        for chunk in chat(sim, model="faulty").stream("hi"):
            received.append(chunk)
    assert len(received) >= 2
    assert classify(info.value) is ErrorKind.TRANSIENT


def test_non_streaming_drop_is_a_transient_connection_error(sim):
    sim.set_faults("faulty", FaultPlan.always("drop"))
    with pytest.raises(ModelConnectionError) as info:
        chat(sim, model="faulty").invoke("hi")
    assert classify(info.value) is ErrorKind.TRANSIENT


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_json_is_classified_transient(sim, stream):
    sim.set_faults("faulty", FaultPlan.always("malformed"))
    llm = chat(sim, model="faulty")
    with pytest.raises(ValueError) as info:
        if stream:
            list(llm.stream("hi"))
        else:
            llm.invoke("hi")
    assert classify(info.value) is ErrorKind.TRANSIENT


def test_random_faults_are_reproducible_for_a_seed(sim):
    def run():
        sim.reset()
        sim.set_faults("faulty", FaultPlan(rates={"503": 0.3, "500": 0.2}))
        llm = chat(sim, model="faulty")
        outcome = []
        for _ in range(20):
            try:
                llm.invoke("x")
                outcome.append(200)
            except ModelAPIError as exc:
                outcome.append(exc.status_code)
        return outcome

    first = run()
    assert first == run()
    assert {200, 500, 503} <= set(first)


def test_faults_set_at_runtime_are_cleared_by_reset(sim):
    sim.set_faults("faulty", FaultPlan.always(503))
    sim.reset()
    assert chat(sim, model="faulty").invoke("hi").content
