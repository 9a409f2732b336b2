"""The router with real ChatOpenAI clients over HTTP against the simulated provider.

The simulator enforces the same context windows as the catalogue, so a request the guard let
through wrongly would come back as a real 400 ``context_length_exceeded``; the request counts
it keeps prove which models were (and were not) called.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI

from llm_routing.errors import AllModelsFailedError, ContextLengthExceededError, ErrorKind
from llm_routing.router import build_router
from llm_routing.sim import SimModel, SimulatedProvider
from tests.support.sim import made_up_words, serving

# Windows as in the catalogue: the guard reads them from there, the simulator enforces them.
MODELS = [
    SimModel(name="gpt-4o-mini", context_window=128_000),
    SimModel(name="gpt-4o", context_window=128_000),
    SimModel(name="gpt-5-mini", context_window=400_000),
    SimModel(name="gpt-4.1-mini", context_window=1_047_576),
]


# 50,000 made-up words: about 190,000 tokens, over any 128k window, under 400k.
FIFTY_THOUSAND_WORDS = made_up_words(50_000)


@pytest.fixture(scope="module")
def sim_module() -> Iterator[SimulatedProvider]:
    yield from serving(MODELS)


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


# --- bad input: a clear error, no request sent, nothing counted as served ---------------------


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (None, TypeError, "input must be"),
        (42, TypeError, "input must be"),
        ([], ValueError, "empty list of messages"),
        ({"text": "hi"}, TypeError, 'without a "messages" key'),
        ([("robot", "hi")], TypeError, "could not read a message"),
    ],
)
def test_bad_input_is_a_clear_error_before_any_request(sim, bad, error, match):
    router = router_for(sim)
    with pytest.raises(error, match=match):
        router.invoke(bad)
    assert sum(received(sim, m.name) for m in MODELS) == 0
    assert router.stats()["total_requests"] == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_bad_input_is_the_same_clear_error_async(sim):
    with pytest.raises(TypeError, match="input must be"):
        await router_for(sim).ainvoke(None)
    assert sum(received(sim, m.name) for m in MODELS) == 0


def test_twenty_megabyte_string_is_refused_by_every_guard_without_a_request(sim):
    huge = "lorem ipsum dolor sit amet " * 780_000  # about 21 MB
    router = router_for(sim)
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke(huge)
    assert [a.model for a in info.value.attempts] == list(router.names)
    assert all(isinstance(a.error, ContextLengthExceededError) for a in info.value.attempts)
    # Counting stopped past each limit: the numbers are lower bounds, said as such.
    first = info.value.attempts[0].error
    assert "at least" in str(first)
    assert first.required_tokens > first.max_tokens
    assert sum(received(sim, m.name) for m in MODELS) == 0


def test_unknown_model_name_is_a_clear_error_naming_how_to_add_it(sim):
    with pytest.raises(ValueError, match=r"fallbacks\[0\].*gpt-9-ultra") as info:
        build_router(
            "openai:gpt-4o-mini",
            ["openai:gpt-9-ultra"],
            init_kwargs={"base_url": sim.base_url, "api_key": "sim"},
        )
    assert "register" in str(info.value)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"router": {"fallbacks": ["openai:gpt-4o"]}}, r"router\.primary"),
        ({"router": {"primary": "openai:gpt-4o-mini", "max_wait": -1}}, r"router\.max_wait"),
        ({"router": {"primary": "openai:gpt-4o-mini", "tier": 3}}, r"router\.tier"),
        ({"router": {"primary": "openai:gpt-4o-mini", "fallback": []}}, r"router\.fallback\b"),
    ],
)
def test_invalid_config_is_a_clear_error_naming_the_key(sim, config, match):
    from llm_routing import from_config

    with pytest.raises((TypeError, ValueError), match=match):
        from_config(config, init_kwargs={"base_url": sim.base_url, "api_key": "sim"})


def test_init_model_builds_a_model_with_its_own_kwargs_and_sdk_retries_off(sim):
    from llm_routing import init_model

    model = init_model("openai:gpt-4o-mini", base_url=sim.base_url, api_key="sim")
    assert model.max_retries == 0
    router = build_router(
        model, ["openai:gpt-4o"], init_kwargs={"base_url": "http://127.0.0.1:9", "api_key": "x"}
    )
    assert router.invoke("hi").response_metadata["llm_routing.model"] == "openai:gpt-4o-mini"
