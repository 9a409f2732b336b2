"""The rate scheduler with real ChatOpenAI clients over HTTP against the simulated provider.

The simulator and the scheduler share one `ScaledClock` running 30x faster than real time, so
a minute window passes in two real seconds while both sides still agree on what time it is.
The simulator enforces the same limits the scheduler is given, so any request the scheduler
let through wrongly comes back as a real 429 and shows in the simulator's counters.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI

from llm_routing.errors import (
    AllModelsFailedError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitExhaustedError,
)
from llm_routing.router import build_router
from llm_routing.schedule import RateScheduler, ScaledClock
from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider

# These models pin exact sliding minute windows (the simulator's historical behaviour);
# per-second enforcement has tests of its own (test_sim_enforcement_*, test_scheduler_enforcement).
SLIDING = {"enforcement": "sliding", "failed_requests_count": False}

SCALE = 30.0

MODELS = [
    SimModel(name="gpt-4o-mini", rpm=120, tpm=1_000_000, **SLIDING),
    SimModel(name="gpt-4o", rpm=5, tpm=1_000_000, **SLIDING),
    SimModel(name="gpt-4.1-mini"),
    SimModel(name="gpt-4.1-nano", rpm=60, tpm=6_000, default_output_reserve=100, **SLIDING),
]
LIMITS = {
    "openai:gpt-4o-mini": {"rpm": 120, "tpm": 1_000_000},
    "openai:gpt-4o": {"rpm": 5, "tpm": 1_000_000},
    "openai:gpt-4.1-mini": {"rpm": None, "tpm": None, "rpd": None},
    "openai:gpt-4.1-nano": {"rpm": 60, "tpm": 6_000},
}


@pytest.fixture(scope="module")
def clock() -> ScaledClock:
    return ScaledClock(SCALE)


@pytest.fixture(scope="module")
def sim_module(clock: ScaledClock) -> Iterator[SimulatedProvider]:
    with SimulatedProvider(MODELS, seed=0, clock=clock.now) as sim:
        yield sim


@pytest.fixture
def sim(sim_module: SimulatedProvider) -> Iterator[SimulatedProvider]:
    sim_module.reset()
    yield sim_module
    sim_module.reset()


def client(sim: SimulatedProvider, name: str, **kw) -> ChatOpenAI:
    return ChatOpenAI(
        model=name, base_url=sim.base_url, api_key="sim", max_retries=0, max_tokens=50, **kw
    )


def scheduler(clock: ScaledClock, **kw) -> RateScheduler:
    # The simulator here keeps exact sliding minute windows, whose bucket allows a burst of a
    # whole minute's quota: tell the scheduler so (quantized providers have their own tests).
    kw.setdefault("pacing", "burst")
    return RateScheduler(limits=LIMITS, clock=clock, **kw)


def counters(sim: SimulatedProvider, model: str) -> dict:
    return sim.stats()["models"][model]


def rate_limited(sim: SimulatedProvider, model: str) -> int:
    return sum(counters(sim, model)["rate_limited"].values())


@pytest.mark.asyncio(loop_scope="session")
async def test_burst_of_300_at_rpm_120_gets_zero_429s(sim, clock):
    # 300 at 118 per window take three windows: allow the wait (virtual seconds).
    model = scheduler(clock, max_wait=300) | client(sim, "gpt-4o-mini")
    replies = await asyncio.gather(*(model.ainvoke(f"hello {i}") for i in range(300)))
    assert len(replies) == 300
    assert rate_limited(sim, "gpt-4o-mini") == 0
    assert counters(sim, "gpt-4o-mini")["requests_served"] == 300


def test_sync_threads_share_the_windows_with_zero_429s(sim, clock):
    sched = scheduler(clock, max_wait=300)
    model = sched | client(sim, "gpt-4.1-nano")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                model.invoke(f"thread {n} call {i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert counters(sim, "gpt-4.1-nano")["requests_served"] == 80
    assert rate_limited(sim, "gpt-4.1-nano") == 0
    assert sched.stats()["waits"]["count"] == 80


def test_tpm_binds_and_still_no_429(sim, clock):
    # 6,000 TPM with 50-token outputs reserved: about 20 requests of ~250 tokens per minute.
    model = scheduler(clock, max_wait=300) | client(sim, "gpt-4.1-nano")
    prompt = "word " * 200
    for _ in range(30):
        model.invoke(prompt)
    assert rate_limited(sim, "gpt-4.1-nano") == 0


def test_primary_at_rpm_5_with_max_wait_2_falls_back_instead_of_waiting(sim, clock):
    sched = scheduler(clock, max_wait=2.0)
    router = build_router(
        client(sim, "gpt-4o"), [client(sim, "gpt-4.1-mini")], scheduler=sched, tracker=False
    )
    served = [router.invoke(f"q{i}").response_metadata["llm_routing.model"] for i in range(8)]
    # RPM 5 minus the margin of 2: three go to the primary, the rest fall back at once.
    assert served[:3] == ["openai:gpt-4o"] * 3
    assert set(served[3:]) == {"openai:gpt-4.1-mini"}
    assert router.stats()["rate_limit_fallbacks"] == 5
    assert rate_limited(sim, "gpt-4o") == 0
    assert counters(sim, "gpt-4o")["requests_received"] == 3


def test_429_with_retry_after_1_is_retried_after_about_a_second(sim, clock):
    sim.set_faults("gpt-4.1-mini", FaultPlan.at({1: "429"}, retry_after=1.0))
    sched = scheduler(clock)
    model = sched | client(sim, "gpt-4.1-mini")
    start = clock.now()
    reply = model.invoke("hi")
    assert reply.content
    assert clock.now() - start >= 1.0
    stats = sched.stats()
    assert stats["rate_limit_errors"] == 1
    assert stats["retries"] == 1
    assert counters(sim, "gpt-4.1-mini")["faults"] == {"429": 1}
    assert counters(sim, "gpt-4.1-mini")["requests_served"] == 1


def test_429_with_retry_after_600_falls_back_at_once(sim, clock):
    sim.set_faults("gpt-4o-mini", FaultPlan.always("429", retry_after=600))
    sched = scheduler(clock)
    router = build_router(
        client(sim, "gpt-4o-mini"), [client(sim, "gpt-4.1-mini")], scheduler=sched, tracker=False
    )
    start = clock.now()
    reply = router.invoke("hi")
    assert reply.response_metadata["llm_routing.model"] == "openai:gpt-4.1-mini"
    [attempt] = reply.response_metadata["llm_routing.attempts"]
    assert attempt["kind"] == "rate_limit"
    assert "Retry-After 600s" in attempt["error"]
    assert clock.now() - start < 60  # no 600 s wait (virtual seconds)
    assert counters(sim, "gpt-4o-mini")["faults"] == {"429": 1}


def test_insufficient_quota_falls_back_without_retrying(sim, clock):
    sim.set_faults("gpt-4o-mini", FaultPlan.always("quota"))
    sched = scheduler(clock)
    router = build_router(
        client(sim, "gpt-4o-mini"), [client(sim, "gpt-4.1-mini")], scheduler=sched, tracker=False
    )
    first = router.invoke("a")
    second = router.invoke("b")
    assert first.response_metadata["llm_routing.model"] == "openai:gpt-4.1-mini"
    assert second.response_metadata["llm_routing.model"] == "openai:gpt-4.1-mini"
    # One request found the quota spent; the second was refused without a request.
    assert counters(sim, "gpt-4o-mini")["faults"] == {"quota": 1}
    assert router.stats()["quota_fallbacks"] == 2
    assert sched.stats()["refused_quota"] == 2


def test_quota_error_alone_is_a_quota_exceeded_error(sim, clock):
    sim.set_faults("gpt-4o-mini", FaultPlan.always("quota"))
    with pytest.raises(QuotaExceededError, match=r"(?i)not retried"):
        (scheduler(clock) | client(sim, "gpt-4o-mini")).invoke("a")


@pytest.mark.parametrize("fault", ["spend_limit", "daily_quota"])
def test_spend_limit_and_daily_quota_429s_reroute_at_once_never_waited_on(sim, clock, fault):
    # Anthropic's spend-limit 429 and Gemini's PerDay RESOURCE_EXHAUSTED are 429s that no
    # wait can cure: typed as quota, not retried, the next model serves at once.
    sim.set_faults("gpt-4o-mini", FaultPlan.always(fault))
    sched = scheduler(clock)
    router = build_router(
        client(sim, "gpt-4o-mini"), [client(sim, "gpt-4.1-mini")], scheduler=sched, tracker=False
    )
    served = router.invoke("a")
    assert served.response_metadata["llm_routing.model"] == "openai:gpt-4.1-mini"
    assert counters(sim, "gpt-4o-mini")["requests_received"] == 1
    assert router.stats()["quota_fallbacks"] == 1
    assert sched.stats()["rate_limit_errors"] == 0 and sched.stats()["retries"] == 0


def test_transient_errors_are_retried_then_provider_unavailable(sim, clock):
    sim.set_faults("gpt-4.1-mini", FaultPlan.always("503"))
    sched = scheduler(clock, max_retries=2, backoff_initial=0.5)
    with pytest.raises(ProviderUnavailableError, match="3 time"):
        (sched | client(sim, "gpt-4.1-mini")).invoke("a")
    assert counters(sim, "gpt-4.1-mini")["faults"] == {"503": 3}
    assert sched.stats()["transient_retries"] == 2


def test_one_transient_error_is_retried_transparently(sim, clock):
    sim.set_faults("gpt-4.1-mini", FaultPlan.at({1: "502"}))
    reply = (scheduler(clock, backoff_initial=0.5) | client(sim, "gpt-4.1-mini")).invoke("a")
    assert reply.content


def test_stream_acquires_before_the_first_chunk_and_settles_from_usage(sim, clock):
    sched = scheduler(clock)
    model = sched | client(sim, "gpt-4.1-nano", stream_usage=True)
    chunks = list(model.stream("tell me something"))
    assert chunks
    snap = sched.snapshot("openai:gpt-4.1-nano")
    served = counters(sim, "gpt-4.1-nano")
    assert snap["requests_in_window"] == 1
    # OpenAI charges max_tokens (50) at admission and never refunds it; the scheduler agrees.
    assert snap["input_tokens_in_window"] == served["prompt_tokens"]
    assert snap["output_tokens_in_window"] == max(50, served["completion_tokens"])


def test_every_model_rate_limited_raises_all_models_failed(sim, clock):
    sched = scheduler(clock, max_wait=0.0)
    router = build_router(client(sim, "gpt-4o"), scheduler=sched, tracker=False)
    for _ in range(3):
        router.invoke("x")
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke("x")
    assert isinstance(info.value.attempts[0].error, RateLimitExhaustedError)


def test_response_headers_correct_the_local_view(sim, clock):
    # Another process used the same model: the provider's count wins over ours.
    other = client(sim, "gpt-4o")
    for _ in range(3):
        other.invoke("elsewhere")
    sched = scheduler(clock, max_wait=0.0)
    model = sched | client(sim, "gpt-4o", include_response_headers=True)
    model.invoke("mine")  # the 4th of 5 in the provider's window; its headers say 1 left
    with pytest.raises(RateLimitExhaustedError):
        model.invoke("mine again")
    assert rate_limited(sim, "gpt-4o") == 0
