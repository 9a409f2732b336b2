"""The RateScheduler decorator in virtual time: limits, waits, provider errors, settlement.

Models are fake LangChain chat models named like catalogue models; provider errors are the real
SDK exception classes built the way the openai SDK builds them from an HTTP response. Time is a
`VirtualClock` everywhere except the one test that needs real threads (a `ScaledClock`, checked
by counting admissions, never by wall-clock thresholds). Window arithmetic and queueing are
tested on their own in test_schedule_policy.py and test_schedule_queue.py.
"""

from __future__ import annotations

import asyncio
import math
import threading
import warnings
from typing import Any

import openai
import pytest
from langchain_core.exceptions import ModelRateLimitError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.rate_limiters import BaseRateLimiter
from pydantic import Field, SecretStr

from llm_routing import (
    BudgetExceededError,
    ContextGuard,
    CostTracker,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitExhaustedError,
)
from llm_routing._decorator import Call, Decorator
from llm_routing.catalog import default_catalog
from llm_routing.schedule import (
    DEFAULT_RESERVE_OUTPUT,
    MemoryBackend,
    RateLimits,
    RateScheduler,
    ScaledClock,
    VirtualClock,
)
from llm_routing.schedule.policy import Decision, Request
from llm_routing.tokens import count_tokens
from sdk_errors import openai_error

MINI = "openai:gpt-4o-mini"
EXACT = {"request_margin": 0, "token_headroom": 0.0}  # limits taken literally


# --------------------------------------------------------------------------- fakes


class Fake(BaseChatModel):
    """A chat model named like a catalogue model that records when and how it was called.

    ``errors`` are raised by successive calls (``None``: answer normally); ``latency`` virtual
    seconds pass inside each call; ``hang`` makes the async call wait until cancelled;
    ``break_after`` drops a stream after that many chunks.
    """

    model_name: str = "gpt-4o-mini"
    provider: str = "openai"
    reply: str = "ok"
    usage: dict[str, Any] | None = None
    errors: list[Any] = Field(default_factory=list)
    clock: Any = None
    latency: float = 0.0
    hang: bool = False
    break_after: int | None = None
    times: list[float] = Field(default_factory=list)
    seen: list[dict[str, Any]] = Field(default_factory=list)
    max_tokens: int | None = None
    openai_api_key: SecretStr | None = None

    @property
    def _llm_type(self) -> str:
        return "fake"

    @property
    def calls(self) -> int:
        return len(self.times)

    def _get_ls_params(self, stop=None, **kwargs):
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        return params

    def _start(self, run_manager) -> None:
        self.times.append(self.clock.now() if self.clock is not None else 0.0)
        self.seen.append(dict(run_manager.metadata) if run_manager is not None else {})
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error

    def _result(self) -> ChatResult:
        message = AIMessage(content=self.reply, usage_metadata=self.usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _chunks(self):
        words = self.reply.split(" ")
        for index, word in enumerate(words):
            if index == self.break_after:
                raise ConnectionError("stream dropped")
            last = index == len(words) - 1
            chunk = AIMessageChunk(
                content=word if index == 0 else " " + word,
                usage_metadata=self.usage if last else None,
            )
            yield ChatGenerationChunk(message=chunk)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self._start(run_manager)
        if self.latency:
            self.clock.advance(self.latency)
        return self._result()

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        self._start(run_manager)
        if self.hang:
            await asyncio.Event().wait()
        if self.latency:
            await self.clock.asleep(self.latency)
        return self._result()

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self._start(run_manager)
        yield from self._chunks()

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs):
        self._start(run_manager)
        for chunk in self._chunks():
            yield chunk


class Counted(Decorator):
    """Stands in for an outer ContextGuard that counted ``tokens`` input tokens."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens

    def before(self, call: Call) -> None:
        call.metadata["llm_routing.input_tokens"] = self.tokens


class RecordingBackend(MemoryBackend):
    """The memory backend, remembering the time of every admission it grants."""

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.admitted: list[float] = []
        self._record_lock = threading.Lock()

    def try_acquire(self, key: str, limits: RateLimits, request: Request, rid: str) -> Decision:
        decision = super().try_acquire(key, limits, request, rid)
        if decision.admit:
            with self._record_lock:
                self.admitted.append(decision.at)
        return decision


def fake(clock: VirtualClock | None = None, **kw) -> Fake:
    return Fake(clock=clock, **kw)


def scheduler(clock: VirtualClock, **kw) -> RateScheduler:
    # These tests pin the minute windows, retries and waits with tiny limits; per-second
    # pacing (the default for providers that quantize) has tests of its own.
    kw.setdefault("pacing", "burst")
    return RateScheduler(clock=clock, **kw)


def usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def rate_limited(retry_after: float | None = None):
    body = {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-x on requests per "
            "min (RPM): Limit 500, Used 500, Requested 1.",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
    return openai_error(429, body, headers)


def insufficient_quota():
    body = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing "
            "details.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    return openai_error(429, body)


def server_error():
    return openai_error(500, {"error": {"message": "The server had an error", "type": "server"}})


def bad_request():
    body = {
        "error": {
            "message": "Invalid value for 'temperature'",
            "type": "invalid_request_error",
            "code": None,
        }
    }
    return openai_error(400, body)


async def spin(turns: int = 10) -> None:
    """Let other tasks run; virtual time cannot advance while this task stays runnable."""
    for _ in range(turns):
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- constructor


@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf])
def test_max_wait_must_be_a_finite_number_of_seconds(value):
    with pytest.raises(ValueError, match=r"max_wait=.*finite number >= 0"):
        RateScheduler(max_wait=value)


def test_max_wait_must_be_a_number():
    with pytest.raises(TypeError, match=r"max_wait=.*number of seconds"):
        RateScheduler(max_wait="90")


@pytest.mark.parametrize("value", [-1, 1.5, True, "2", None])
def test_max_retries_must_be_a_non_negative_int(value):
    with pytest.raises(ValueError, match=r"max_retries=.*int >= 0"):
        RateScheduler(max_retries=value)


@pytest.mark.parametrize("value", [-1, 2.5, True, "1024"])
def test_reserve_output_must_be_a_non_negative_int_or_none(value):
    with pytest.raises(ValueError, match=r"reserve_output=.*int >= 0"):
        RateScheduler(reserve_output=value)


def test_an_unknown_tier_names_the_known_ones_and_the_close_one():
    with pytest.raises(ValueError) as info:
        RateScheduler(tier="teir1")
    message = str(info.value)
    assert "unknown tier 'teir1'" in message
    assert "did you mean 'tier1'?" in message
    assert "free" in message and "tier5" in message


def test_a_tier_mapping_with_an_unknown_provider_names_the_known_providers():
    with pytest.raises(ValueError, match=r"unknown provider 'openia'.*openai"):
        RateScheduler(tier={"openia": "tier1"})


def test_a_tier_mapping_with_an_unknown_tier_names_that_providers_tiers():
    with pytest.raises(ValueError, match=r"unknown tier 'tier9' for 'anthropic'.*tier1, tier2"):
        RateScheduler(tier={"anthropic": "tier9"})


def test_a_tier_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="tier="):
        RateScheduler(tier=2)


def test_limits_with_an_unknown_key_name_the_model_and_the_key():
    with pytest.raises(ValueError, match=r"limits\['gpt-4o-mini'\].*unknown key.*'rpmm'"):
        RateScheduler(limits={"gpt-4o-mini": {"rpmm": 5}})


@pytest.mark.parametrize("field", ["rpm", "tpm", "rpd"])
def test_limits_with_a_negative_value_name_the_model_and_the_field(field):
    with pytest.raises(ValueError, match=rf"limits\['gpt-4o-mini'\].*{field}"):
        RateScheduler(limits={"gpt-4o-mini": {field: -1}})


def test_limits_with_a_wrong_type_name_the_model_and_the_field():
    with pytest.raises(TypeError, match=r"limits\['openai:gpt-4o'\].*tpm.*'lots'"):
        RateScheduler(limits={"openai:gpt-4o": {"tpm": "lots"}})


def test_limits_that_are_not_a_mapping_per_model_are_a_type_error():
    with pytest.raises(TypeError, match=r"limits\['gpt-4o'\].*mapping"):
        RateScheduler(limits={"gpt-4o": 30})


def test_count_from_must_be_auto_response_or_admission():
    with pytest.raises(ValueError, match=r"count_from=.*'auto'.*'response'.*'admission'.*'sent'"):
        RateScheduler(count_from="sent")


def test_a_redis_backend_url_builds_a_redis_backend_that_fails_fast_when_redis_is_down():
    from llm_routing.schedule.redis import RedisBackend, RedisUnavailableError

    scheduler = RateScheduler(backend="redis://127.0.0.1:1/0")
    assert isinstance(scheduler.backend, RedisBackend)
    model = scheduler | fake()
    with pytest.raises(RedisUnavailableError):
        model.invoke("hi")


@pytest.mark.parametrize("backend", ["postgres://db", "", 42])
def test_a_backend_that_is_neither_memory_nor_redis_is_a_value_error(backend):
    with pytest.raises(ValueError, match=r"backend=.*'memory'"):
        RateScheduler(backend=backend)


def test_a_clock_without_now_is_a_type_error():
    with pytest.raises(TypeError, match="clock="):
        RateScheduler(clock=object())


# --------------------------------------------------------------------------- limits


def test_a_known_model_gets_the_catalogue_limits_of_its_tier():
    limits = RateScheduler(tier="tier2").limits_for(Fake())
    assert (limits.rpm, limits.tpm, limits.rpd) == (5_000, 2_000_000, None)
    assert (limits.request_margin, limits.token_headroom) == (2, 0.02)


def test_a_tier_per_provider_accepts_langchains_provider_names():
    s = RateScheduler(tier={"openai": "tier2", "google_genai": "free"})
    gemini = s.limits_for(Fake(model_name="gemini-2.5-flash", provider="google_genai"))
    assert (gemini.rpm, gemini.tpm, gemini.rpd) == (10, 250_000, 250)
    assert s.limits_for(Fake()).rpm == 5_000


def test_a_limits_override_replaces_only_the_fields_it_names():
    s = RateScheduler(tier="tier1", limits={"gpt-4o-mini": {"rpm": 30}})
    limits = s.limits_for(Fake())
    assert (limits.rpm, limits.tpm, limits.rpd) == (30, 200_000, 10_000)


def test_a_limits_override_set_to_none_removes_that_limit():
    s = RateScheduler(tier="tier1", limits={MINI: {"rpd": None}})
    assert (s.limits_for(MINI).rpm, s.limits_for(MINI).rpd) == (500, None)


def test_a_model_without_catalogue_limits_warns_once_and_is_not_paced():
    clock = VirtualClock()
    s = scheduler(clock, max_wait=0)
    model = Fake(model_name="gemini-3-flash-preview", provider="google_genai")
    decorated = s | model
    with pytest.warns(UserWarning, match="no rate limits for google:gemini-3-flash-preview"):
        decorated.invoke("hi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(20):
            decorated.invoke("hi")
    assert model.calls == 21
    assert clock.now() == 0.0


def test_limits_under_the_bare_name_of_a_model_the_catalogue_lacks_apply_to_it():
    s = RateScheduler(limits={"my-local-llm": {"rpm": 60}})
    model = Fake(model_name="my-local-llm", provider="ollama", profile={"max_input_tokens": 8_000})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not "the catalogue has no rate limits"
        assert s.limits_for(model).rpm == 60


def test_a_misspelt_catalogued_model_in_limits_is_an_error_with_did_you_mean():
    # Accepted silently, the real model would run on the catalogue's 500 RPM, not these 3.
    with pytest.raises(
        ValueError, match=r"limits\['openai:gpt-4o-minii'\].*'openai:gpt-4o-mini'\?"
    ):
        RateScheduler(limits={"openai:gpt-4o-minii": {"rpm": 3}})
    with pytest.raises(ValueError, match=r"did you mean 'openai:gpt-4o-mini'\?"):
        RateScheduler(limits={"gpt-4o-minii": {"rpm": 3}})


def test_a_limits_key_no_model_matched_is_warned_about_at_the_first_call_once():
    s = RateScheduler(limits={"ollama:my-local-lm": {"rpm": 60}}, pacing="burst")
    model = s | Fake(
        model_name="my-local-llm", provider="ollama", profile={"max_input_tokens": 8_000}
    )
    with pytest.warns(
        UserWarning,
        match=r"limits\['ollama:my-local-lm'\].*matched no model.*"
        r"did you mean 'ollama:my-local-llm'\?",
    ):
        model.invoke("hi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.invoke("again")  # once per scheduler, not per call


def test_limits_keys_of_models_the_catalogue_lacks_are_silent_once_matched():
    s = RateScheduler(
        limits={"ollama:my-local-llm": {"rpm": 60}, "ft:gpt-4o-mini:org::x": {"rpm": 5}}
    )
    local = s | Fake(
        model_name="my-local-llm", provider="ollama", profile={"max_input_tokens": 8_000}
    )
    tuned = Fake(model_name="ft:gpt-4o-mini:org::x", profile={"max_input_tokens": 8_000})
    assert s.limits_for(tuned).rpm == 5  # a router resolves every model before the first call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        local.invoke("hi")


def test_a_provider_missing_from_the_tier_mapping_is_a_clear_value_error():
    s = RateScheduler(tier={"openai": "tier1"})
    with pytest.raises(ValueError, match=r"no tier for provider 'anthropic'.*claude-haiku-4-5"):
        s.limits_for(Fake(model_name="claude-haiku-4-5", provider="anthropic"))


def test_a_tier_the_model_does_not_publish_is_a_clear_value_error_at_call_time():
    decorated = RateScheduler(tier="free") | Fake(model_name="gpt-4o")
    with pytest.raises(ValueError, match=r"openai:gpt-4o has no published limits for tier 'free'"):
        decorated.invoke("hi")


def test_an_api_key_per_window_keeps_two_keys_apart_and_never_shows_the_key():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}}, max_wait=0, per_api_key=True)
    first = Fake(openai_api_key=SecretStr("sk-first-secret"), clock=clock)
    second = Fake(openai_api_key=SecretStr("sk-second-secret"), clock=clock)
    (s | first).invoke("hi")
    (s | second).invoke("hi")  # its own window: admitted at once
    with pytest.raises(RateLimitExhaustedError):
        (s | Fake(openai_api_key=SecretStr("sk-first-secret"))).invoke("hi")
    keys = list(s.stats()["by_model"])
    assert len(keys) == 2
    assert all(key.startswith(f"{MINI}@") for key in keys)
    assert not any("secret" in key or "sk-" in key for key in keys)


def test_without_per_api_key_two_keys_share_one_window():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}}, max_wait=0)
    (s | Fake(openai_api_key=SecretStr("sk-a"))).invoke("hi")
    with pytest.raises(RateLimitExhaustedError):
        (s | Fake(openai_api_key=SecretStr("sk-b"))).invoke("hi")
    assert list(s.stats()["by_model"]) == [MINI]


# --------------------------------------------------------------------------- waiting


def test_rpm_binds_the_next_request_waits_until_the_window_frees():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 3, **EXACT}})
    model = fake(clock)
    decorated = s | model
    for _ in range(4):
        decorated.invoke("hi")
    assert model.times == [0.0, 0.0, 0.0, 60.0]
    assert [seen["llm_routing.wait_s"] for seen in model.seen] == [0.0, 0.0, 0.0, 60.0]
    waits = s.stats()["waits"]
    assert (waits["count"], waits["total_s"], waits["max_s"]) == (4, 60.0, 60.0)


async def test_rpm_binds_async_callers_in_virtual_time():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 2, **EXACT}}, max_wait=150)
    model = fake(clock)
    decorated = s | model
    await asyncio.gather(*(decorated.ainvoke("hi") for _ in range(5)))
    assert model.times == [0.0, 0.0, 60.0, 60.0, 120.0]


def test_tpm_binds_on_the_schedulers_own_count_without_a_guard():
    clock = VirtualClock()
    spec = default_catalog().get(MINI)
    tokens = count_tokens([("user", "hello there")], spec)
    s = scheduler(clock, limits={MINI: {"tpm": 2 * tokens, **EXACT}}, reserve_output=0)
    model = fake(clock, reply="")
    decorated = s | model
    for _ in range(3):
        decorated.invoke("hello there")
    assert model.times == [0.0, 0.0, 60.0]
    assert model.seen[0]["llm_routing.reserved_tokens"] == tokens


def test_tpm_binds_on_the_input_count_of_a_guard_outside():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"tpm": 1_500, **EXACT}}, reserve_output=0)
    model = fake(clock, reply="")
    decorated = Counted(1_000) | s | model
    decorated.invoke("hi")  # the scheduler alone would count ~8 tokens and admit both at once
    decorated.invoke("hi")
    assert model.times == [0.0, 60.0]
    assert model.seen[0]["llm_routing.reserved_tokens"] == 1_000


def test_the_scheduler_reserves_what_a_real_context_guard_counted():
    clock = VirtualClock()
    model = fake(clock)
    (ContextGuard() | scheduler(clock) | model).invoke("count these few words please")
    seen = model.seen[0]
    expected = seen["llm_routing.input_tokens"] + DEFAULT_RESERVE_OUTPUT
    assert seen["llm_routing.reserved_tokens"] == expected


def test_a_wait_past_max_wait_raises_at_once_without_advancing_the_clock():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}}, max_wait=30)
    model = fake(clock)
    decorated = s | model
    decorated.invoke("hi")
    with pytest.raises(RateLimitExhaustedError) as info:
        decorated.invoke("hi")
    assert clock.now() == 0.0
    assert model.calls == 1
    assert info.value.model == MINI
    assert info.value.reason == "rpm"
    assert info.value.wait_s == 60.0
    assert s.stats()["refused_max_wait"] == 1


def test_the_daily_limit_refuses_with_quota_exceeded_at_once():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpd": 2, **EXACT}})
    model = fake(clock)
    decorated = s | model
    decorated.invoke("hi")
    decorated.invoke("hi")
    with pytest.raises(QuotaExceededError, match="RPD 2") as info:
        decorated.invoke("hi")
    assert info.value.reason == "rpd"
    assert (clock.now(), model.calls) == (0.0, 2)
    assert s.stats()["refused_quota"] == 1


def test_a_request_larger_than_the_whole_tpm_is_refused_at_once():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"tpm": 100, **EXACT}}, reserve_output=0)
    model = fake(clock)
    with pytest.raises(RateLimitExhaustedError, match="more than TPM 100") as info:
        (s | model).invoke("word " * 500)
    assert info.value.reason == "request larger than the limit"
    assert (clock.now(), model.calls) == (0.0, 0)
    assert s.stats()["refused_too_large"] == 1


def test_limits_of_one_model_never_delay_another():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}}, max_wait=0)
    (s | fake(clock)).invoke("hi")
    other = fake(clock, model_name="gpt-4.1-mini")
    (s | other).invoke("hi")
    assert other.times == [0.0]


# --------------------------------------------------------------------------- provider errors


async def test_a_429_with_retry_after_cools_the_model_down_for_every_caller_of_it():
    clock = VirtualClock()
    s = scheduler(clock)
    first = fake(clock, errors=[rate_limited(retry_after=2)])
    same_model = fake(clock)
    other_model = fake(clock, model_name="gpt-4.1-mini")
    failing = asyncio.create_task((s | first).ainvoke("hi"))
    await spin()  # the 429 has been seen and the cooldown set
    assert first.times == [0.0]
    await asyncio.gather(failing, (s | same_model).ainvoke("hi"), (s | other_model).ainvoke("hi"))
    assert first.times == [0.0, 2.0]
    assert same_model.times == [2.0]
    assert other_model.times == [0.0]
    assert first.seen[1]["llm_routing.attempt"] == 2
    stats = s.stats()
    assert (stats["rate_limit_errors"], stats["retries"]) == (1, 1)


async def test_a_retry_whose_wait_another_429_pushed_past_max_wait_is_a_refusal_not_a_retry():
    clock = VirtualClock()
    s = scheduler(clock, max_wait=2)
    soon = fake(clock, errors=[rate_limited(retry_after=1)])
    late = fake(clock, errors=[rate_limited(retry_after=2.5)])
    outcomes = await asyncio.gather(
        (s | soon).ainvoke("hi"), (s | late).ainvoke("hi"), return_exceptions=True
    )
    assert [type(o) for o in outcomes] == [RateLimitExhaustedError, RateLimitExhaustedError]
    assert (soon.calls, late.calls) == (1, 1)  # the cooldown to 2.5 s left no retry in time
    stats = s.stats()
    assert (stats["rate_limit_errors"], stats["retries"]) == (2, 0)


def test_a_429_is_retried_after_its_retry_after_in_virtual_time():
    clock = VirtualClock()
    model = fake(clock, errors=[rate_limited(retry_after=2)])
    assert (scheduler(clock) | model).invoke("hi").content == "ok"
    assert model.times == [0.0, 2.0]
    assert model.seen[1]["llm_routing.wait_s"] == 2.0


def test_a_429_without_retry_after_backs_off_with_jitter():
    clock = VirtualClock()
    model = fake(clock, errors=[ModelRateLimitError("slow down")])
    (scheduler(clock, backoff_initial=1.0) | model).invoke("hi")
    assert model.calls == 2
    assert 1.0 <= model.times[1] <= 2.0  # initial 1 s plus up to 1 s of jitter


def test_a_429_whose_retry_after_passes_max_wait_raises_at_once_and_is_counted():
    clock = VirtualClock()
    s = scheduler(clock, max_wait=5)
    model = fake(clock, errors=[rate_limited(retry_after=10)])
    with pytest.raises(RateLimitExhaustedError, match="Retry-After 10s") as info:
        (s | model).invoke("hi")
    assert isinstance(info.value.__cause__, openai.RateLimitError)
    assert (info.value.wait_s, info.value.reason) == (10.0, "provider rate limit")
    assert (clock.now(), model.calls) == (0.0, 1)
    stats = s.stats()
    assert (stats["rate_limit_errors"], stats["retries"], stats["refused_max_wait"]) == (1, 0, 1)


def test_a_429_that_outlasts_max_wait_still_cools_the_model_down_for_the_next_caller():
    clock = VirtualClock()
    s = scheduler(clock, max_wait=5)
    model = fake(clock, errors=[rate_limited(retry_after=10)])
    decorated = s | model
    with pytest.raises(RateLimitExhaustedError):
        decorated.invoke("hi")
    with pytest.raises(RateLimitExhaustedError, match="cooldown"):
        decorated.invoke("hi")  # refused without another request the provider would refuse
    assert model.calls == 1
    clock.advance(10)
    decorated.invoke("hi")
    assert model.times == [0.0, 10.0]


def test_a_proactive_wait_and_a_retry_after_add_up_within_max_wait():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 2, **EXACT}}, max_wait=65)
    model = fake(clock, errors=[None, None, rate_limited(retry_after=3)])
    decorated = s | model
    decorated.invoke("hi")
    decorated.invoke("hi")
    decorated.invoke("hi")  # waits 60 s for the window, then 3 s for the 429
    assert model.times == [0.0, 0.0, 60.0, 63.0]
    assert model.seen[-1]["llm_routing.wait_s"] == 63.0


def test_a_retry_after_that_passes_what_the_proactive_wait_left_raises_at_once():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 2, **EXACT}}, max_wait=65)
    model = fake(clock, errors=[None, None, rate_limited(retry_after=10)])
    decorated = s | model
    decorated.invoke("hi")
    decorated.invoke("hi")
    with pytest.raises(RateLimitExhaustedError, match=r"5\.0s left"):
        decorated.invoke("hi")
    assert clock.now() == 60.0  # 60 s waited; the 10 s retry was never started


def test_a_429_storm_with_retry_after_zero_ends_in_a_fallback_not_endless_retries():
    clock = VirtualClock()
    model = fake(clock, errors=[rate_limited(retry_after=0)] * 50)
    with pytest.raises(RateLimitExhaustedError):
        (scheduler(clock, max_wait=90) | model).invoke("hi")
    assert model.calls < 20
    assert clock.now() <= 90.0


@pytest.mark.parametrize("retry_after", [0, 1.5, 7, 30])
def test_however_429s_keep_coming_the_waits_stay_within_max_wait(retry_after):
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 2, **EXACT}}, max_wait=90)
    model = fake(clock, errors=[None, None, *[rate_limited(retry_after=retry_after)] * 100])
    decorated = s | model
    decorated.invoke("hi")
    decorated.invoke("hi")
    with pytest.raises(RateLimitExhaustedError):
        decorated.invoke("hi")  # 60 s of window first, then the 429s
    assert clock.now() <= 90.0


def test_insufficient_quota_is_not_retried_and_blocks_the_model_for_the_quota_cooldown():
    clock = VirtualClock()
    s = scheduler(clock, quota_cooldown=60)
    model = fake(clock, errors=[insufficient_quota()])
    decorated = s | model
    with pytest.raises(QuotaExceededError, match="exceeded your current quota") as info:
        decorated.invoke("hi")
    assert isinstance(info.value.__cause__, openai.RateLimitError)
    assert model.calls == 1
    clock.advance(30)
    with pytest.raises(QuotaExceededError, match="not sending requests for another 30s"):
        decorated.invoke("hi")
    assert model.calls == 1
    clock.advance(30)
    decorated.invoke("hi")
    assert model.calls == 2
    stats = s.stats()
    assert (stats["refused_quota"], stats["rate_limit_errors"], stats["retries"]) == (2, 0, 0)


def test_transient_errors_are_retried_max_retries_times_then_provider_unavailable():
    clock = VirtualClock()
    s = scheduler(clock, max_retries=2)
    model = fake(clock, errors=[server_error()] * 5)
    with pytest.raises(ProviderUnavailableError, match=r"failed 3 time\(s\)") as info:
        (s | model).invoke("hi")
    assert info.value.attempts == 3
    assert info.value.model == MINI
    assert isinstance(info.value.__cause__, openai.InternalServerError)
    assert model.calls == 3
    assert s.stats()["transient_retries"] == 2
    assert 3.0 <= clock.now() <= 5.0  # backoffs of 1 s and 2 s, each plus up to 1 s of jitter


def test_a_transient_error_that_clears_is_retried_transparently():
    clock = VirtualClock()
    model = fake(clock, errors=[ConnectionError("connection reset")])
    assert (scheduler(clock) | model).invoke("hi").content == "ok"
    assert model.calls == 2


def test_max_retries_zero_gives_up_after_the_first_transient_error():
    clock = VirtualClock()
    model = fake(clock, errors=[server_error()])
    with pytest.raises(ProviderUnavailableError) as info:
        (scheduler(clock, max_retries=0) | model).invoke("hi")
    assert (info.value.attempts, model.calls, clock.now()) == (1, 1, 0.0)


def test_a_bad_request_propagates_unchanged_without_retry():
    clock = VirtualClock()
    error = bad_request()
    model = fake(clock, errors=[error, None])
    with pytest.raises(openai.BadRequestError) as info:
        (scheduler(clock) | model).invoke("hi")
    assert info.value is error
    assert model.calls == 1


def test_an_inner_decorators_refusal_releases_the_reservation_and_propagates():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}}, max_wait=0)
    model = fake(clock)
    with pytest.raises(BudgetExceededError):
        (s | CostTracker(budget_usd=0.000001) | model).invoke("hi")
    assert model.calls == 0
    snapshot = s.snapshot(model)
    assert (snapshot["requests_in_window"], snapshot["tokens_in_window"]) == (0, 0)
    assert snapshot["in_flight"] == 0
    (s | model).invoke("hi")  # the window was not charged: the only slot is still free


# --------------------------------------------------------------------------- settlement


def test_real_usage_replaces_the_estimate():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, usage=usage(7, 11))
    (s | model).invoke("hi")
    snapshot = s.snapshot(model)
    assert snapshot["input_tokens_in_window"] == 7
    assert snapshot["output_tokens_in_window"] == 11
    assert snapshot["tokens_in_window"] == 18
    assert snapshot["in_flight"] == 0


@pytest.mark.parametrize(
    ("model_name", "provider", "counted"),
    [("gpt-4o-mini", "openai", 500), ("claude-haiku-4-5", "anthropic", 11)],
)
def test_openai_keeps_an_explicit_max_tokens_counted_others_settle_to_usage(
    model_name, provider, counted
):
    clock = VirtualClock()
    s = scheduler(clock, tier="tier2")
    model = fake(clock, model_name=model_name, provider=provider, usage=usage(7, 11))
    (s | model).invoke("hi", max_tokens=500)
    assert model.seen[0]["llm_routing.reserved_tokens"] - 500 > 0
    assert s.snapshot(model)["output_tokens_in_window"] == counted


def test_without_usage_the_output_text_is_counted():
    clock = VirtualClock()
    s = scheduler(clock)
    reply = "a reply of several words without any usage metadata"
    model = fake(clock, reply=reply)
    (s | model).invoke("hi")
    expected = count_tokens(reply, default_catalog().get(MINI))
    assert s.snapshot(model)["output_tokens_in_window"] == expected


@pytest.mark.parametrize(
    ("count_from", "pacing", "at_60", "at_65"),
    [
        ("response", "burst", 1, 0),
        ("admission", "burst", 0, 0),
        ("auto", "burst", 1, 0),  # a burst reaches the provider late: count from the answer
        ("auto", "paced", 0, 0),  # paced requests arrive spread out: admission is exact
    ],
)
def test_count_from_decides_when_a_request_leaves_the_window(count_from, pacing, at_60, at_65):
    clock = VirtualClock()
    s = scheduler(clock, count_from=count_from, pacing=pacing)
    model = fake(clock, latency=5.0)  # admitted at 0, answered at 5
    (s | model).invoke("hi")
    clock.advance_to(60.0)
    assert s.snapshot(model)["requests_in_window"] == at_60
    clock.advance_to(65.0)
    assert s.snapshot(model)["requests_in_window"] == at_65


def test_a_stream_settles_from_its_aggregated_usage():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, reply="one two three", usage=usage(5, 3))
    chunks = list((s | model).stream("hi"))
    assert "".join(chunk.content for chunk in chunks) == "one two three"
    snapshot = s.snapshot(model)
    assert (snapshot["tokens_in_window"], snapshot["in_flight"]) == (8, 0)


async def test_an_async_stream_settles_from_its_aggregated_usage():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, reply="one two three", usage=usage(5, 3))
    chunks = [chunk async for chunk in (s | model).astream("hi")]
    assert "".join(chunk.content for chunk in chunks) == "one two three"
    assert s.snapshot(model)["tokens_in_window"] == 8


def test_a_stream_closed_early_by_the_consumer_leaves_nothing_in_flight():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, reply="one two three four", usage=usage(5, 4))
    stream = (s | model).stream("hi")
    next(stream)
    stream.close()
    snapshot = s.snapshot(model)
    assert snapshot["in_flight"] == 0
    assert snapshot["requests_in_window"] == 1  # it was sent: the request still counts


async def test_an_async_stream_closed_early_leaves_nothing_in_flight():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, reply="one two three four")
    stream = (s | model).astream("hi")
    await anext(stream)
    await stream.aclose()
    assert s.snapshot(model)["in_flight"] == 0


async def test_an_invoke_cancelled_during_the_call_leaves_nothing_in_flight():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, hang=True)
    task = asyncio.create_task((s | model).ainvoke("hi"))
    await spin()
    assert model.calls == 1
    assert s.snapshot(model)["in_flight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    snapshot = s.snapshot(model)
    assert snapshot["in_flight"] == 0
    assert snapshot["requests_in_window"] == 1  # it was sent: the request still counts


def test_a_keyboard_interrupt_during_a_sync_call_leaves_nothing_in_flight():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, errors=[KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        (s | model).invoke("hi")
    snapshot = s.snapshot(model)
    assert (snapshot["in_flight"], snapshot["requests_in_window"]) == (0, 1)


def test_a_stream_that_fails_midway_leaves_nothing_in_flight():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, reply="one two three", break_after=1)
    with pytest.raises(ConnectionError):
        list((s | model).stream("hi"))
    snapshot = s.snapshot(model)
    assert (snapshot["in_flight"], snapshot["requests_in_window"]) == (0, 1)


def test_a_stream_that_fails_midway_counts_the_chunks_that_arrived_as_output():
    clock = VirtualClock()
    s = scheduler(clock)
    model = fake(clock, reply="one two three four five six", break_after=3)
    received = []
    with pytest.raises(ConnectionError):
        received.extend(chunk.content for chunk in (s | model).stream("hi"))
    expected = count_tokens("".join(received), default_catalog().get(MINI))
    assert expected > 0
    assert s.snapshot(model)["output_tokens_in_window"] == expected


async def test_an_invoke_cancelled_while_waiting_gives_its_place_back():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}})
    model = fake(clock)
    decorated = s | model
    await decorated.ainvoke("hi")
    task = asyncio.create_task(decorated.ainvoke("hi"))
    await spin()
    assert s.admission.waiting(MINI) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert s.admission.waiting(MINI) == 0
    snapshot = s.snapshot(model)
    assert (snapshot["requests_in_window"], snapshot["in_flight"]) == (1, 0)
    assert model.calls == 1


# --------------------------------------------------------------------------- sync and async


def test_sync_threads_and_async_tasks_share_one_window():
    clock = ScaledClock(300.0)  # a 60-second window lasts 0.2 real seconds
    backend = RecordingBackend(clock)
    # A generous max_wait: a thread the machine is slow to schedule must not turn into a refusal.
    s = RateScheduler(
        limits={MINI: {"rpm": 4, **EXACT}}, clock=clock, backend=backend, max_wait=600
    )
    decorated = s | Fake()
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            decorated.invoke("hi")
        except BaseException as exc:
            errors.append(exc)

    async def in_tasks() -> None:
        await asyncio.gather(*(decorated.ainvoke("hi") for _ in range(4)))

    threads = [threading.Thread(target=in_thread) for _ in range(4)]
    for thread in threads:
        thread.start()
    asyncio.run(in_tasks())
    for thread in threads:
        thread.join()
    assert errors == []
    admitted = sorted(backend.admitted)
    assert len(admitted) == 8
    # No 60-second window holds more than 4 admissions.
    assert all(
        later - earlier >= 60.0 for earlier, later in zip(admitted, admitted[4:], strict=False)
    )
    assert s.stats()["admitted"] == 8


# --------------------------------------------------------------------------- limiter_for


def test_limiter_for_is_a_langchain_rate_limiter():
    assert isinstance(RateScheduler().limiter_for(MINI), BaseRateLimiter)


def test_a_non_blocking_acquire_is_false_when_the_window_is_full():
    clock = VirtualClock()
    limiter = scheduler(clock, limits={MINI: {"rpm": 2, **EXACT}}).limiter_for(MINI)
    assert [limiter.acquire(blocking=False) for _ in range(3)] == [True, True, False]
    assert clock.now() == 0.0


async def test_a_non_blocking_async_acquire_is_false_when_the_window_is_full():
    clock = VirtualClock()
    limiter = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}}).limiter_for(MINI)
    assert await limiter.aacquire(blocking=False) is True
    assert await limiter.aacquire(blocking=False) is False


def test_a_blocking_acquire_past_max_wait_raises():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}}, max_wait=30)
    limiter = s.limiter_for(MINI)
    assert limiter.acquire() is True
    with pytest.raises(RateLimitExhaustedError):
        limiter.acquire()
    assert clock.now() == 0.0


def test_a_blocking_acquire_within_max_wait_waits_in_virtual_time():
    clock = VirtualClock()
    limiter = scheduler(clock, limits={MINI: {"rpm": 1, **EXACT}}).limiter_for(MINI)
    limiter.acquire()
    assert limiter.acquire() is True
    assert clock.now() == 60.0


def test_the_limiter_paces_a_chat_model_that_uses_it_as_its_rate_limiter():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 2, **EXACT}})
    model = fake(clock)
    model.rate_limiter = s.limiter_for(model)
    for _ in range(3):
        model.invoke("hi")
    assert model.times == [0.0, 0.0, 60.0]


def test_the_limiter_shares_the_decorators_windows():
    clock = VirtualClock()
    s = scheduler(clock, limits={MINI: {"rpm": 2, **EXACT}})
    model = fake(clock)
    (s | model).invoke("hi")
    (s | model).invoke("hi")
    assert s.limiter_for(model).acquire(blocking=False) is False


def test_limiter_for_needs_a_model_or_a_name():
    with pytest.raises(TypeError, match="limiter_for"):
        RateScheduler().limiter_for(42)


# --------------------------------------------------------------------------- stats


def test_stats_after_a_mixed_run():
    clock = VirtualClock()
    s = scheduler(
        clock,
        limits={MINI: {"rpm": 2, **EXACT}, "openai:gpt-4o": {"tpm": 50, **EXACT}},
        reserve_output=0,
    )
    paced = fake(clock)
    for _ in range(3):  # the third waits 60 s
        (s | paced).invoke("hi")
    flaky = fake(
        clock, model_name="gpt-4.1-mini", errors=[rate_limited(retry_after=2), server_error()]
    )
    (s | flaky).invoke("hi")  # a 429 (2 s cooldown), then a 5xx, then an answer
    with pytest.raises(RateLimitExhaustedError):
        (s | fake(clock, model_name="gpt-4o")).invoke("word " * 200)
    with pytest.raises(QuotaExceededError):
        (s | fake(clock, model_name="gpt-4.1-nano", errors=[insufficient_quota()])).invoke("hi")

    stats = s.stats()
    assert set(stats) == {
        "waits",
        "admitted",
        "rate_limit_errors",
        "retries",
        "transient_retries",
        "refused_max_wait",
        "refused_too_large",
        "refused_quota",
        "by_model",
    }
    assert set(stats["waits"]) == {"count", "total_s", "p50_s", "p95_s", "max_s"}
    assert stats["admitted"] == 7  # 3 paced + 3 attempts of the flaky one + 1 quota attempt
    assert (stats["waits"]["count"], stats["waits"]["total_s"]) == (7, 62.0)
    assert (stats["waits"]["p50_s"], stats["waits"]["max_s"]) == (0.0, 60.0)
    assert (stats["rate_limit_errors"], stats["retries"], stats["transient_retries"]) == (1, 1, 1)
    assert (stats["refused_max_wait"], stats["refused_too_large"], stats["refused_quota"]) == (
        0,
        1,
        1,
    )
    by_model = stats["by_model"]
    assert set(by_model) == {MINI, "openai:gpt-4.1-mini", "openai:gpt-4o", "openai:gpt-4.1-nano"}
    assert by_model[MINI] == {"admitted": 3, "rate_limit_errors": 0, "wait_total_s": 60.0}
    assert by_model["openai:gpt-4.1-mini"]["rate_limit_errors"] == 1


# --------------------------------------------------------------------------- x-ratelimit headers


def test_ratelimit_headers_read_openai_pairs_into_one_value():
    from llm_routing.schedule.headers import parse_ratelimit_headers
    from llm_routing.schedule.policy import RateLimitHeaders

    found = parse_ratelimit_headers(
        {
            "X-RateLimit-Remaining-Requests": "59",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-remaining-tokens": "149984.5",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        "openai",
    )
    assert found == RateLimitHeaders(
        remaining_requests=59, reset_requests_s=1.0, remaining_tokens=149984, reset_tokens_s=360.0
    )


@pytest.mark.parametrize("remaining", ["-1", "inf", "nan", "lots", "1e400"])
def test_an_odd_ratelimit_header_is_skipped_never_raised(remaining):
    from llm_routing.schedule.headers import parse_ratelimit_headers

    headers = {"x-ratelimit-remaining-requests": remaining, "x-ratelimit-reset-requests": "1s"}
    assert parse_ratelimit_headers(headers, "openai") is None


# --------------------------------------------------------------------------- pacing


def test_default_pacing_follows_each_providers_documented_enforcement():
    s = RateScheduler()
    assert s.pacing == "auto"
    # OpenAI and Anthropic say their per-minute limits may be enforced per second.
    assert s.limits_for(MINI).smoothing
    assert s.limits_for("anthropic:claude-haiku-4-5").smoothing


def test_pacing_burst_or_paced_overrides_the_default_globally_and_per_model():
    assert not RateScheduler(pacing="burst").limits_for(MINI).smoothing
    assert not RateScheduler(limits={MINI: {"pacing": "burst"}}).limits_for(MINI).smoothing
    both = RateScheduler(pacing="burst", limits={MINI: {"pacing": "paced"}})
    assert both.limits_for(MINI).smoothing
    assert not both.limits_for("openai:gpt-4o").smoothing


@pytest.mark.parametrize("value", ["smooth", True, None])
def test_pacing_rejects_an_unknown_mode_naming_the_known_ones(value):
    with pytest.raises(ValueError, match=r"RateScheduler\(pacing=…\) must be 'auto'"):
        RateScheduler(pacing=value)
    with pytest.raises(ValueError, match=r"limits\['openai:gpt-4o-mini'\]\)\['pacing'\]"):
        RateScheduler(limits={MINI: {"pacing": value}})


def test_smoothing_is_deprecated_and_says_what_to_write_instead():
    with pytest.warns(DeprecationWarning, match="pacing='paced'"):
        paced = RateScheduler(smoothing=True)
    assert paced.pacing == "paced" and paced.limits_for(MINI).smoothing
    with pytest.warns(DeprecationWarning, match="pacing='burst'"):
        burst = RateScheduler(smoothing=False)
    assert not burst.limits_for(MINI).smoothing


async def test_by_default_a_burst_is_paced_to_the_per_second_rate():
    clock = VirtualClock()
    s = RateScheduler(limits={MINI: {"rpm": 62, "tpm": None, "rpd": None}}, clock=clock)
    model = fake(clock)
    decorated = s | model
    await asyncio.gather(*(decorated.ainvoke("hi") for _ in range(5)))
    assert model.times == [0.0, 1.0, 2.0, 3.0, 4.0]  # 60 per minute after the margin


async def test_burst_pacing_admits_the_whole_window_at_once():
    clock = VirtualClock()
    limits = {MINI: {"rpm": 62, "tpm": None, "rpd": None}}
    s = RateScheduler(limits=limits, clock=clock, pacing="burst")
    model = fake(clock)
    decorated = s | model
    await asyncio.gather(*(decorated.ainvoke("hi") for _ in range(5)))
    assert model.times == [0.0] * 5


@pytest.mark.parametrize(
    ("provider", "name", "kept"),
    [("openai", "gpt-4o-mini", 1), ("anthropic", "claude-haiku-4-5", 0)],
)
def test_a_429_keeps_its_request_slot_only_where_the_provider_counts_refusals(provider, name, kept):
    # OpenAI: "unsuccessful requests contribute to your per-minute limit"; Anthropic's pages
    # say nothing of the kind, so a refusal it did not count must not hold our window.
    clock = VirtualClock()
    key = f"{provider}:{name}"
    s = scheduler(clock, limits={key: {"rpm": 100, "tpm": None, "rpd": None}}, max_wait=0)
    model = fake(clock, model_name=name, provider=provider, errors=[rate_limited(5)])
    with pytest.raises(RateLimitExhaustedError):
        (s | model).invoke("hi")
    assert s.snapshot(model)["requests_in_window"] == kept


def test_a_limit_group_gives_its_models_one_set_of_windows():
    clock = VirtualClock()
    s = scheduler(
        clock,
        max_wait=0,
        limit_groups={
            "mini": {"models": ["openai:gpt-4o-mini", "openai:gpt-4.1-mini"], "rpm": 2, **EXACT}
        },
    )
    a = s | fake(clock)
    b = s | fake(clock, model_name="gpt-4.1-mini")
    a.invoke("one")
    b.invoke("two")
    with pytest.raises(RateLimitExhaustedError):
        a.invoke("three")  # the group's 2 RPM are spent by both members together
    assert s.limits_for("openai:gpt-4.1-mini").rpm == 2


def test_limit_group_mistakes_are_named():
    with pytest.raises(ValueError, match=r"limit_groups\['g'\]\['models'\].*did you mean"):
        RateScheduler(limit_groups={"g": {"models": ["openai:gpt-4o-minii"], "rpm": 3}})
    with pytest.raises(ValueError, match=r"already in group 'g'"):
        RateScheduler(
            limit_groups={
                "g": {"models": ["openai:gpt-4o-mini"], "rpm": 3},
                "h": {"models": ["gpt-4o-mini"], "rpm": 3},
            }
        )
    with pytest.raises(ValueError, match=r"also has limits"):
        RateScheduler(
            limits={"openai:gpt-4o-mini": {"rpm": 3}},
            limit_groups={"g": {"models": ["openai:gpt-4o-mini"], "rpm": 3}},
        )
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rpmm'\]"):
        RateScheduler(limit_groups={"g": {"models": ["openai:gpt-4o-mini"], "rpmm": 3}})
