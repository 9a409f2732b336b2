"""The router with real ChatOpenAI clients over HTTP against the simulated provider.

The simulator enforces the same context windows as the catalogue, so a request the guard let
through wrongly would come back as a real 400 ``context_length_exceeded``; the request counts
it keeps prove which models were (and were not) called.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI

from llm_routing.errors import AllModelsFailedError, ContextLengthExceededError, ErrorKind
from llm_routing.router import build_router
from llm_routing.sim import SimModel, SimulatedProvider

# Windows as in the catalogue: the guard reads them from there, the simulator enforces them.
MODELS = [
    SimModel(name="gpt-4o-mini", context_window=128_000),
    SimModel(name="gpt-4o", context_window=128_000),
    SimModel(name="gpt-5-mini", context_window=400_000),
    SimModel(name="gpt-4.1-mini", context_window=1_047_576),
]


def _words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(5, 9))) for _ in range(n)
    )


# 50,000 made-up words: about 190,000 tokens, over any 128k window, under 400k.
FIFTY_THOUSAND_WORDS = _words(50_000)


@pytest.fixture(scope="module")
def sim_module() -> Iterator[SimulatedProvider]:
    with SimulatedProvider(MODELS, seed=0) as sim:
        yield sim


@pytest.fixture
def sim(sim_module: SimulatedProvider) -> Iterator[SimulatedProvider]:
    sim_module.reset()
    yield sim_module
    sim_module.reset()


def served(sim: SimulatedProvider, model: str) -> int:
    return sim.stats()["models"][model]["requests_served"]


def received(sim: SimulatedProvider, model: str) -> int:
    return sim.stats()["models"][model]["requests_received"]


def client(sim: SimulatedProvider, name: str, **kw) -> ChatOpenAI:
    return ChatOpenAI(model=name, base_url=sim.base_url, api_key="sim", max_retries=0, **kw)


def router_for(sim: SimulatedProvider):
    return build_router(
        "openai:gpt-4o-mini",
        ["openai:gpt-4o"],
        large_context=["openai:gpt-4.1-mini", "openai:gpt-5-mini"],
        init_kwargs={"base_url": sim.base_url, "api_key": "sim"},
    )


# langchain-openai caches one async HTTP client per base_url across event loops, so the async
# tests share the session loop (a per-test loop would find pooled connections of a dead one).


def test_fifty_thousand_words_skip_128k_models_and_land_on_the_first_that_fits(sim):
    router = router_for(sim)
    message = router.invoke(FIFTY_THOUSAND_WORDS)
    assert message.response_metadata["llm_routing.model"] == "openai:gpt-5-mini"
    attempts = message.response_metadata["llm_routing.attempts"]
    assert [a["model"] for a in attempts] == ["openai:gpt-4o-mini", "openai:gpt-4o"]
    assert {a["kind"] for a in attempts} == {"context"}
    # The oversize input never reached the small models, and only one large model served.
    assert received(sim, "gpt-4o-mini") == received(sim, "gpt-4o") == 0
    assert served(sim, "gpt-5-mini") == 1
    assert received(sim, "gpt-4.1-mini") == 0


def test_small_input_is_served_by_the_primary(sim):
    message = router_for(sim).invoke("Say hello")
    assert message.response_metadata["llm_routing.model"] == "openai:gpt-4o-mini"
    assert message.usage_metadata is not None
    assert served(sim, "gpt-4o-mini") == 1


def test_input_too_large_for_every_model_names_each(sim):
    router = build_router(
        "openai:gpt-4o-mini",
        ["openai:gpt-4o"],
        init_kwargs={"base_url": sim.base_url, "api_key": "sim"},
    )
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke(FIFTY_THOUSAND_WORDS)
    assert [a.model for a in info.value.attempts] == ["openai:gpt-4o-mini", "openai:gpt-4o"]
    assert all(a.kind is ErrorKind.CONTEXT for a in info.value.attempts)
    assert "openai:gpt-4o-mini" in str(info.value)
    assert "openai:gpt-4o:" in str(info.value)
    assert received(sim, "gpt-4o-mini") == received(sim, "gpt-4o") == 0


def test_provider_context_error_is_mapped_and_the_router_falls_back(sim):
    # The client claims a 1M window, so the guard lets the input through; the simulator
    # enforces the real 128k and answers 400 context_length_exceeded.
    wrong = client(sim, "gpt-4o-mini", profile={"max_input_tokens": 1_000_000})
    router = build_router(wrong, [client(sim, "gpt-5-mini")])
    message = router.invoke(FIFTY_THOUSAND_WORDS)
    assert message.response_metadata["llm_routing.model"] == "openai:gpt-5-mini"
    [attempt] = message.response_metadata["llm_routing.attempts"]
    assert "ContextLengthExceededError" in attempt["error"]
    assert sim.stats()["models"]["gpt-4o-mini"]["context_length_exceeded"] == 1


def test_provider_context_error_alone_is_a_context_length_exceeded(sim):
    wrong = client(sim, "gpt-4o-mini", profile={"max_input_tokens": 1_000_000})
    with pytest.raises(ContextLengthExceededError, match="rejected the input as too long"):
        build_router(wrong).models[0].invoke(FIFTY_THOUSAND_WORDS)


@pytest.mark.asyncio(loop_scope="session")
async def test_ainvoke_routes_by_size(sim):
    router = router_for(sim)
    small = await router.ainvoke("hi")
    big = await router.ainvoke(FIFTY_THOUSAND_WORDS)
    assert small.response_metadata["llm_routing.model"] == "openai:gpt-4o-mini"
    assert big.response_metadata["llm_routing.model"] == "openai:gpt-5-mini"


def test_stream_routes_by_size_and_carries_usage(sim):
    router = router_for(sim)
    chunks = list(router.stream(FIFTY_THOUSAND_WORDS, stream_usage=True))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.response_metadata["llm_routing.model"] == "openai:gpt-5-mini"
    assert total.content
    assert total.usage_metadata is not None
    assert total.usage_metadata["input_tokens"] > 128_000


@pytest.mark.asyncio(loop_scope="session")
async def test_astream_routes_by_size(sim):
    router = router_for(sim)
    chunks = [c async for c in router.astream(FIFTY_THOUSAND_WORDS)]
    assert chunks[0].response_metadata["llm_routing.model"] == "openai:gpt-5-mini"
    assert served(sim, "gpt-5-mini") == 1


def test_batch_with_mixed_sizes_routes_each_input(sim):
    router = router_for(sim)
    outputs = router.batch(["hi", FIFTY_THOUSAND_WORDS, "hello", FIFTY_THOUSAND_WORDS])
    assert [o.response_metadata["llm_routing.model"] for o in outputs] == [
        "openai:gpt-4o-mini",
        "openai:gpt-5-mini",
        "openai:gpt-4o-mini",
        "openai:gpt-5-mini",
    ]
    stats = router.stats()
    assert stats["primary_requests"] == 2
    assert stats["fallback_requests"] == 2
    assert stats["context_fallbacks"] == 4


@pytest.mark.asyncio(loop_scope="session")
async def test_abatch_with_mixed_sizes_routes_each_input(sim):
    router = router_for(sim)
    outputs = await router.abatch([FIFTY_THOUSAND_WORDS, "hi"])
    assert [o.response_metadata["llm_routing.model"] for o in outputs] == [
        "openai:gpt-5-mini",
        "openai:gpt-4o-mini",
    ]
    assert served(sim, "gpt-5-mini") == served(sim, "gpt-4o-mini") == 1
