"""``sim.inprocess.SimChatModel``: the simulator's own state, answered in process, in virtual time.

What it raises must read, to the package's classifier, as what ``ChatOpenAI`` raises for the
same HTTP answer (that comparison over real HTTP is tests/integration/test_sim_inprocess.py).
"""

from __future__ import annotations

import asyncio
import pickle

import pytest
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from pydantic import BaseModel

from llm_routing.errors import ErrorKind, classify, retry_after
from llm_routing.schedule import VirtualClock
from llm_routing.sim import FaultPlan, Latency, SimChatModel, SimModel
from llm_routing.sim.inprocess import ANSWER_TOKENS, SimCall
from llm_routing.sim.state import SimState


def make(*models: SimModel, clock: VirtualClock | None = None, **fields) -> SimChatModel:
    clock = clock or VirtualClock()
    state = SimState(models or [SimModel(name="gpt-4o-mini")], clock=clock.now)
    name = fields.pop("model_name", state.models[0].name)
    return SimChatModel(state=state, model_name=name, clock=clock, **fields)


def test_an_answer_carries_usage_and_the_state_counts_it():
    llm = make()
    message = llm.invoke("hello there", max_tokens=5)
    usage = message.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] == 5  # the model's 12-token reply, cut at max_tokens
    assert usage["input_tokens"] > 0
    stats = llm.state.stats()["models"]["gpt-4o-mini"]
    assert stats["requests_served"] == 1
    assert stats["prompt_tokens"] == usage["input_tokens"]
    assert message.response_metadata["finish_reason"] == "length"


def test_answer_tokens_sets_the_answer_length_in_this_context():
    llm = make()
    token = ANSWER_TOKENS.set(40)
    try:
        message = llm.invoke("hi", max_tokens=100)
    finally:
        ANSWER_TOKENS.reset(token)
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 40
    assert llm.invoke("hi", max_tokens=100).usage_metadata["output_tokens"] == 12


def test_a_full_window_is_a_rate_limit_error_carrying_retry_after():
    clock = VirtualClock()
    model = SimModel(name="m", rpm=2, enforcement="sliding", failed_requests_count=False)
    llm = make(model, clock=clock)
    llm.invoke("a")
    clock.advance(10)
    llm.invoke("b")
    with pytest.raises(ModelRateLimitError) as info:
        llm.invoke("c")
    exc = info.value
    assert exc.status_code == 429
    assert classify(exc) is ErrorKind.RATE_LIMIT
    assert retry_after(exc) == pytest.approx(50.0)  # the first request leaves the window at 60
    assert exc.headers["retry-after"] == "50"
    assert exc.body["code"] == "rate_limit_exceeded"
    assert str(exc).startswith("Error code: 429 - ")
    assert "requests per min (RPM)" in str(exc)
    assert llm.state.stats()["models"]["m"]["rate_limited"]["requests"] == 1


@pytest.mark.parametrize(
    ("quota_error", "kind"),
    [("insufficient_quota", ErrorKind.QUOTA), ("spend_limit", ErrorKind.QUOTA)],
)
def test_a_spent_quota_is_a_quota_error_without_retry_after(quota_error, kind):
    llm = make(SimModel(name="m", quota_requests=1, quota_error=quota_error))
    llm.invoke("a")
    with pytest.raises(ModelRateLimitError) as info:
        llm.invoke("b")
    assert classify(info.value) is kind
    assert "retry-after" not in info.value.headers


def test_a_prompt_too_long_is_a_context_overflow_and_is_counted():
    llm = make(SimModel(name="m", context_window=50))
    with pytest.raises(ContextOverflowError) as info:
        llm.invoke("word " * 100)
    assert classify(info.value) is ErrorKind.CONTEXT
    assert info.value.status_code == 400
    assert llm.state.stats()["models"]["m"]["context_length_exceeded"] == 1


def test_max_tokens_over_the_model_cap_is_a_bad_request():
    llm = make(SimModel(name="m", max_output_tokens=100))
    with pytest.raises(ModelInvalidRequestError) as info:
        llm.invoke("hi", max_tokens=101)
    assert classify(info.value) is ErrorKind.BAD_REQUEST
    assert llm.state.stats()["models"]["m"]["bad_requests"] == 1


def test_an_unknown_model_is_not_found():
    llm = make(model_name="gpt-nope")
    with pytest.raises(ModelNotFoundError) as info:
        llm.invoke("hi")
    assert info.value.status_code == 404
    assert llm.state.stats()["not_found"] == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("503", ModelAPIError),
        ("529", ModelAPIError),
        ("reset", ModelConnectionError),
        ("drop", ModelConnectionError),
        ("timeout", ModelTimeoutError),
    ],
)
def test_faults_raise_what_the_sdk_client_raises_and_are_transient(fault, error):
    llm = make(SimModel(name="m", faults=FaultPlan.at({1: fault})))
    with pytest.raises(error) as info:
        llm.invoke("hi")
    assert classify(info.value) is ErrorKind.TRANSIENT
    assert llm.invoke("hi").content  # the second request is answered
    assert llm.state.stats()["models"]["m"]["requests_served"] == 1


def test_a_malformed_answer_is_the_json_error_the_sdk_lets_out():
    llm = make(SimModel(name="m", faults=FaultPlan.at({1: "malformed"})))
    with pytest.raises(ValueError) as info:
        llm.invoke("hi")
    assert type(info.value).__name__ == "JSONDecodeError"
    assert classify(info.value) is ErrorKind.TRANSIENT


def test_an_injected_429_carries_the_plan_retry_after():
    plan = FaultPlan(schedule={1: "429"}, retry_after=2.5)
    llm = make(SimModel(name="m", faults=plan))
    with pytest.raises(ModelRateLimitError) as info:
        llm.invoke("hi")
    assert classify(info.value) is ErrorKind.RATE_LIMIT
    assert retry_after(info.value) == pytest.approx(2.5)


def test_a_timeout_fault_waits_its_hang_in_the_model_clock():
    clock = VirtualClock()
    plan = FaultPlan(schedule={1: "timeout"}, hang=7.0)
    llm = make(SimModel(name="m", faults=plan), clock=clock)
    with pytest.raises(ModelTimeoutError):
        llm.invoke("hi")
    assert clock.now() == pytest.approx(7.0)


def test_an_answer_slower_than_timeout_times_out_at_timeout():
    clock = VirtualClock()
    llm = make(SimModel(name="m", latency=Latency(ttft=5.0)), clock=clock, timeout=2.0)
    with pytest.raises(ModelTimeoutError):
        llm.invoke("hi")
    assert clock.now() == pytest.approx(2.0)
    assert llm.state.stats()["models"]["m"]["requests_served"] == 0


def test_async_answers_wait_their_latency_in_virtual_time_and_report_each_call():
    clock = VirtualClock()
    calls: list[SimCall] = []
    model = SimModel(name="m", latency=Latency(ttft=1.0, per_token=0.5), rpm=600)
    llm = make(model, clock=clock, on_served=calls.append)

    async def main() -> list[float]:
        async def one() -> float:
            await llm.ainvoke("hi", max_tokens=4)
            return clock.now()

        return await asyncio.gather(one(), one())

    finished = asyncio.run(main())
    assert finished == [pytest.approx(3.0), pytest.approx(3.0)]  # 1 s + 4 tokens x 0.5 s
    assert [(c.admitted, c.answered, c.completion_tokens) for c in calls] == [
        (0.0, pytest.approx(3.0), 4),
        (0.0, pytest.approx(3.0), 4),
    ]
    assert all(c.counted_output == 4 for c in calls)  # OpenAI-shaped: max_tokens at admission


def test_output_counted_when_generated_is_reported_as_the_real_output():
    calls: list[SimCall] = []
    llm = make(SimModel.like("anthropic", name="claude", otpm=1_000), on_served=calls.append)
    llm.invoke("hi", max_tokens=100)
    assert calls[0].counted_output == calls[0].completion_tokens == 12


def test_the_catalogue_identifies_the_model_by_its_canonical_name():
    llm = make(SimModel(name="gpt-4o-mini", aliases=("openai:gpt-4o-mini",)))
    llm = llm.model_copy(update={"model_name": "openai:gpt-4o-mini"})
    params = llm._get_ls_params()
    assert (params["ls_provider"], params["ls_model_name"]) == ("openai", "gpt-4o-mini")


def test_bound_tools_get_a_tool_call():
    class Weather(BaseModel):
        """The weather in a city."""

        city: str

    llm = make(SimModel(name="m"))
    message = llm.bind_tools([Weather], tool_choice="Weather").invoke("weather in Oslo?")
    assert message.tool_calls[0]["name"] == "Weather"
    assert isinstance(message.tool_calls[0]["args"]["city"], str)


def test_errors_pickle_with_their_status_body_and_headers():
    llm = make(SimModel(name="m", rpm=1, enforcement="sliding"))
    llm.invoke("a")
    with pytest.raises(ModelRateLimitError) as info:
        llm.invoke("b")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is type(info.value)
    assert (copy.status_code, copy.body, copy.headers) == (
        info.value.status_code,
        info.value.body,
        info.value.headers,
    )
    assert retry_after(copy) == retry_after(info.value)
