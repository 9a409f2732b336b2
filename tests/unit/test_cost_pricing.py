"""Pricing: hand-computed costs for each provider's usage shape, unknown prices, Decimal exactness.

Usage dicts for OpenAI and Anthropic are built by the integrations' own converters from the
providers' usage objects, so the tests pin what users really get in ``usage_metadata``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from anthropic.types import Usage as AnthropicUsage
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_anthropic import ChatAnthropic
from langchain_core.messages.ai import UsageMetadata
from langchain_openai import ChatOpenAI

from llm_routing.catalog import ModelSpec, Price, default_catalog
from llm_routing.cost import (
    Cost,
    TokenUsage,
    estimate_cost,
    parse_usage,
    price,
    price_tokens,
    usage_details,
)
from llm_routing.cost.pricing import requested_service_tier, service_tier_of

D = Decimal


def spec(name: str) -> ModelSpec:
    return default_catalog().get(name)


def custom(price_: Price | None, provider: str = "acme") -> ModelSpec:
    return ModelSpec(provider=provider, name="m", context_window=1_000_000, price=price_)


def usage(
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read: int = 0,
    cache_creation: int = 0,
    reasoning: int = 0,
):
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "input_token_details": {"cache_read": cache_read, "cache_creation": cache_creation},
        "output_token_details": {"reasoning": reasoning},
    }


# --------------------------------------------------------------------------- providers


# --- usage_metadata exactly as the real integrations build it ---------------------------------
# The clients' public invoke, against a loopback server that answers with the provider's JSON:
# what langchain-openai / langchain-anthropic put in usage_metadata is then what users get,
# whatever private helper a release uses to build it.


class _Canned(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(self.server.reply).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def canned(reply: dict[str, Any]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.reply = reply  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def openai_usage(usage: dict[str, Any], service_tier: str | None = None) -> UsageMetadata:
    reply: dict[str, Any] = {
        "id": "chatcmpl-usage",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }
    if service_tier is not None:
        reply["service_tier"] = service_tier
    with canned(reply) as url:
        model = ChatOpenAI(model="gpt-4o-mini", api_key="k", base_url=f"{url}/v1", max_retries=0)
        message = model.invoke("hi")
    assert message.usage_metadata is not None
    return message.usage_metadata


def anthropic_usage(usage: AnthropicUsage) -> UsageMetadata:
    reply = {
        "id": "msg_usage",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage.model_dump(mode="json", exclude_none=True),
    }
    with canned(reply) as url:
        model = ChatAnthropic(model="claude-haiku-4-5", api_key="k", base_url=url, max_retries=0)
        message = model.invoke("hi")
    assert message.usage_metadata is not None
    return message.usage_metadata


def test_shipped_prices_used_by_these_tests_are_the_published_ones():
    # The expectations below are computed by hand from these rates (USD per 1M tokens).
    mini = spec("openai:gpt-4o-mini").price
    assert (mini.input, mini.cached_input, mini.output) == (D("0.15"), D("0.075"), D("0.6"))
    sonnet = spec("anthropic:claude-sonnet-4-5").price
    assert (sonnet.input, sonnet.cached_input, sonnet.cache_write, sonnet.output) == (
        D("3"),
        D("0.3"),
        D("3.75"),
        D("15"),
    )
    pro = spec("google_genai:gemini-2.5-pro").price
    assert (pro.input, pro.output, pro.long_context_threshold) == (D("1.25"), D("10"), 200_000)
    assert (pro.long_context.input, pro.long_context.output) == (D("2.5"), D("15"))


def test_openai_cached_input_is_charged_at_the_cached_rate_only():
    # 10,000 prompt tokens of which 6,000 cached; 500 output tokens.
    meta = openai_usage(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 500,
            "total_tokens": 10_500,
            "prompt_tokens_details": {"cached_tokens": 6_000},
        }
    )
    cost = price(meta, spec("openai:gpt-4o-mini"))
    assert cost.input == D("0.0006")  # 4,000 × 0.15 / 1M
    assert cost.cached_input == D("0.00045")  # 6,000 × 0.075 / 1M
    assert cost.output == D("0.0003")  # 500 × 0.6 / 1M
    assert cost.cache_write == 0 and cost.reasoning == 0
    assert cost.total == D("0.00135")


def test_openai_flex_tier_cache_read_is_still_read_as_cached():
    meta = openai_usage(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 500,
            "prompt_tokens_details": {"cached_tokens": 6_000},
        },
        service_tier="flex",
    )
    assert "flex_cache_read" in meta["input_token_details"]
    assert parse_usage(meta).cached_input == 6_000


def test_anthropic_cache_write_and_read_are_each_charged_once():
    # Anthropic reports input_tokens without the cache; langchain-anthropic adds them back.
    meta = anthropic_usage(
        AnthropicUsage(
            input_tokens=1_000,
            output_tokens=800,
            cache_read_input_tokens=20_000,
            cache_creation_input_tokens=5_000,
        )
    )
    assert meta["input_tokens"] == 26_000
    cost = price(meta, spec("anthropic:claude-haiku-4-5"))
    assert cost.input == D("0.001")  # 1,000 × 1 / 1M
    assert cost.cached_input == D("0.002")  # 20,000 × 0.1 / 1M
    assert cost.cache_write == D("0.00625")  # 5,000 × 1.25 / 1M
    assert cost.output == D("0.004")  # 800 × 5 / 1M
    assert cost.total == D("0.01325")


def test_anthropic_one_hour_cache_writes_cost_twice_the_input_rate():
    meta = anthropic_usage(
        AnthropicUsage.model_validate(
            {
                "input_tokens": 500,
                "output_tokens": 100,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 3_000,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 1_000,
                    "ephemeral_1h_input_tokens": 2_000,
                },
            }
        )
    )
    tokens = parse_usage(meta)
    assert (tokens.input, tokens.cache_write, tokens.cache_write_1h) == (500, 1_000, 2_000)
    cost = price(meta, spec("anthropic:claude-sonnet-4-5"))
    # 1,000 × 3.75 + 2,000 × (2 × 3) per 1M
    assert cost.cache_write == D("0.01575")
    assert cost.input == D("0.0015")
    assert cost.total == D("0.0015") + D("0.01575") + D("0.0015")


def test_anthropic_long_prompt_uses_the_long_context_tier_cache_included():
    # 150k cached + 60k fresh = 210k prompt: above Sonnet's 200k threshold.
    meta = usage(210_000, 1_000, cache_read=150_000)
    cost = price(meta, spec("anthropic:claude-sonnet-4-5"))
    assert cost.input == D("0.36")  # 60,000 × 6 / 1M
    assert cost.cached_input == D("0.09")  # 150,000 × 0.6 / 1M
    assert cost.output == D("0.0225")  # 1,000 × 22.5 / 1M


def test_gemini_25_pro_above_200k_prompt_uses_the_long_context_prices():
    meta = usage(250_000, 2_000, reasoning=1_500)
    cost = price(meta, spec("google_genai:gemini-2.5-pro"))
    assert cost.input == D("0.625")  # 250,000 × 2.5 / 1M
    assert cost.output == D("0.0075")  # 500 × 15 / 1M
    assert cost.reasoning == D("0.0225")  # 1,500 × 15 / 1M (thinking billed as output)
    assert cost.total == D("0.655")


def test_gemini_25_pro_at_exactly_200k_stays_in_the_base_tier():
    cost = price(usage(200_000, 0), spec("google_genai:gemini-2.5-pro"))
    assert cost.input == D("0.25")  # 200,000 × 1.25 / 1M


def test_reasoning_tokens_use_the_reasoning_price_when_the_spec_has_one():
    # 1,000 output tokens of which 600 reasoning: 400 × 4 + 600 × 8 per 1M, not 1,000 × 4 + 600 × 8.
    cost = price(usage(0, 1_000, reasoning=600), custom(Price(input=1, output=4, reasoning=8)))
    assert cost.output == D("0.0016")
    assert cost.reasoning == D("0.0048")
    assert cost.total == D("0.0064")


def test_reasoning_tokens_default_to_the_output_price():
    cost = price(usage(1_000, 3_000, reasoning=2_500), spec("openai:o4-mini"))
    assert cost.reasoning == D("0.011")  # 2,500 × 4.4 / 1M
    assert cost.output == D("0.0022")  # 500 × 4.4 / 1M
    assert cost.total == D("0.0011") + D("0.0132")


def test_details_larger_than_the_total_are_read_as_reported_on_top():
    # An integration that reports cache reads outside input_tokens: never a negative count.
    tokens = parse_usage(usage(100, 10, cache_read=400))
    assert (tokens.input, tokens.cached_input, tokens.prompt_tokens) == (100, 400, 500)


def test_missing_detail_keys_count_as_zero():
    tokens = parse_usage({"input_tokens": 7, "output_tokens": 3, "total_tokens": 10})
    assert tokens == TokenUsage(input=7, output=3)


# --------------------------------------------------------------------------- unknown prices


def test_unknown_price_gives_an_unknown_cost_never_zero():
    cost = price(usage(1_000, 100), custom(None))
    assert cost.total is None
    assert cost.input is None and cost.output is None


def test_missing_output_price_makes_only_the_output_and_total_unknown():
    cost = price(usage(1_000, 100), custom(Price(input=1, output=None)))
    assert cost.input == D("0.001")
    assert cost.output is None
    assert cost.total is None


def test_cached_tokens_without_a_cached_price_are_unknown_not_free():
    cost = price(usage(1_000, 0, cache_read=500), custom(Price(input=1, output=2)))
    assert cost.cached_input is None
    assert cost.total is None


def test_parts_without_tokens_cost_zero_even_without_a_price():
    cost = price(usage(1_000, 100), custom(Price(input=1, output=2)))
    assert cost.cached_input == 0 and cost.cache_write == 0
    assert cost.total == D("0.0012")


def test_no_tokens_at_an_unknown_price_cost_zero():
    assert price(usage(0, 0), custom(None)).total == 0


# --------------------------------------------------------------------------- langfuse


def test_usage_details_split_tokens_without_double_counting():
    meta = usage(26_000, 800, cache_read=20_000, cache_creation=5_000, reasoning=300)
    details = usage_details(meta)
    assert details == {
        "input": 1_000,
        "cache_read_input_tokens": 20_000,
        "cache_creation_input_tokens": 5_000,
        "output": 500,
        "reasoning": 300,
        "total": 26_800,
    }
    assert sum(v for k, v in details.items() if k != "total") == details["total"]


def test_usage_details_omit_zero_detail_keys():
    assert usage_details(usage(10, 5)) == {"input": 10, "output": 5, "total": 15}


def test_as_langfuse_uses_the_same_keys_and_skips_zero_parts():
    meta = usage(26_000, 800, cache_read=20_000, cache_creation=5_000)
    details = price(meta, spec("anthropic:claude-haiku-4-5")).as_langfuse()
    assert set(details) == {
        "input",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "output",
        "total",
    }
    assert details["total"] == pytest.approx(0.01325)
    assert set(details) - {"total"} <= set(usage_details(meta))


def test_as_langfuse_of_an_unknown_cost_is_empty():
    assert price(usage(10, 5), custom(None)).as_langfuse() == {}


# --------------------------------------------------------------------------- estimates


def test_estimate_uses_the_dearest_input_and_output_rates():
    # Claude: a cache write (3.75) costs more than fresh input (3).
    estimate = estimate_cost(spec("anthropic:claude-sonnet-4-5"), 10_000, 1_000)
    assert estimate == D("0.0525")  # 10,000 × 3.75 + 1,000 × 15, per 1M


def test_estimate_picks_the_tier_by_input_size():
    assert estimate_cost(spec("google_genai:gemini-2.5-pro"), 300_000, 1_000) == D("0.765")


def test_estimate_covers_a_reasoning_price_above_the_output_price():
    assert estimate_cost(custom(Price(input=1, output=4, reasoning=8)), 0, 1_000) == D("0.008")


def test_estimate_is_none_when_a_needed_price_is_unknown():
    assert estimate_cost(custom(None), 10, 10) is None
    assert estimate_cost(custom(Price(input=1, output=None)), 10, 10) is None


def test_estimate_is_never_below_the_real_cost_of_a_call_that_size():
    sonnet = spec("anthropic:claude-sonnet-4-5")
    real = price(
        usage(10_000, 1_000, cache_read=2_000, cache_creation=3_000, reasoning=400), sonnet
    )
    assert real.total <= estimate_cost(sonnet, 10_000, 1_000)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ({"input_tokens": -1, "output_tokens": 0}, ValueError, "input_tokens"),
        ({"input_tokens": 1.5, "output_tokens": 0}, TypeError, "input_tokens"),
        (
            {"input_tokens": 1, "output_tokens": 0, "input_token_details": 3},
            TypeError,
            "input_token_details",
        ),
        ({"input_tokens": 1, "output_tokens": True}, TypeError, "output_tokens"),
    ],
)
def test_malformed_usage_is_a_clear_error_naming_the_field(bad, error, words):
    with pytest.raises(error, match=words):
        price(bad, spec("openai:gpt-4o-mini"))


def test_usage_that_is_not_a_mapping_is_a_type_error():
    with pytest.raises(TypeError, match="usage_metadata"):
        parse_usage([("input_tokens", 1)])


def test_price_needs_a_model_spec():
    with pytest.raises(TypeError, match="ModelSpec"):
        price(usage(1, 1), "openai:gpt-4o-mini")


def test_estimate_rejects_negative_token_counts():
    with pytest.raises(ValueError, match="output_tokens"):
        estimate_cost(spec("openai:gpt-4o-mini"), 10, -5)


# --------------------------------------------------------------------------- invariants

counts = st.integers(min_value=0, max_value=5_000_000)
rates = st.one_of(
    st.none(),
    st.decimals(min_value=0, max_value=200, places=4, allow_nan=False, allow_infinity=False),
)
token_usages = st.builds(
    TokenUsage,
    input=counts,
    cached_input=counts,
    cache_write=counts,
    cache_write_1h=counts,
    output=counts,
    reasoning=counts,
)
prices = st.builds(
    Price,
    input=rates,
    output=rates,
    cached_input=rates,
    cache_write=rates,
    reasoning=rates,
)


@settings(max_examples=150, deadline=None)
@given(tokens=token_usages, table=prices, provider=st.sampled_from(["openai", "anthropic"]))
def test_total_is_exactly_the_sum_of_the_parts(tokens, table, provider):
    cost = price_tokens(tokens, table, provider=provider)
    parts = [cost.input, cost.cached_input, cost.cache_write, cost.output, cost.reasoning]
    if any(p is None for p in parts):
        assert cost.total is None
    else:
        assert cost.total == sum(parts, Decimal(0))
        assert cost.total >= 0


@settings(max_examples=150, deadline=None)
@given(tokens=token_usages, table=prices)
def test_each_part_is_tokens_times_rate_with_no_rounding(tokens, table):
    cost = price_tokens(tokens, table, provider="openai")
    for part, count, rate in (
        (cost.input, tokens.input, table.input),
        (cost.cached_input, tokens.cached_input, table.cached_input),
        (cost.output, tokens.output, table.output),
        (cost.reasoning, tokens.reasoning, table.reasoning_or_output),
    ):
        if count == 0:
            assert part == 0
        elif rate is None:
            assert part is None
        else:
            assert part * 1_000_000 == rate * count


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(token_usages, min_size=1, max_size=30))
def test_sum_of_many_call_costs_equals_the_cost_of_their_summed_tokens(batch):
    table = Price(input="0.15", output="0.6", cached_input="0.075", cache_write="0.1875")
    total = sum((price_tokens(t, table) for t in batch), Cost.zero())
    summed = TokenUsage(
        *(
            sum(getattr(t, f) for t in batch)
            for f in TokenUsage.__dataclass_fields__
            if f != "service_tier"
        )
    )
    assert total == price_tokens(summed, table)


@settings(max_examples=150, deadline=None)
@given(prompt=counts, cache_read=counts, cache_creation=counts, completion=counts, reasoning=counts)
def test_parsed_usage_splits_every_token_into_exactly_one_kind(
    prompt, cache_read, cache_creation, completion, reasoning
):
    tokens = parse_usage(
        usage(
            prompt,
            completion,
            cache_read=cache_read,
            cache_creation=cache_creation,
            reasoning=reasoning,
        )
    )
    assert (
        min(tokens.input, tokens.cached_input, tokens.cache_write, tokens.output, tokens.reasoning)
        >= 0
    )
    if cache_read + cache_creation <= prompt:
        assert tokens.prompt_tokens == prompt
    if reasoning <= completion:
        assert tokens.completion_tokens == completion
    assert usage_details(tokens)["total"] == tokens.total_tokens


# --------------------------------------------------------------------------- service tiers
# OpenAI answers with the tier that served the call (``service_tier`` in the response);
# langchain-openai copies it into response_metadata and, for flex and priority, prefixes the
# usage detail keys with it. The same tokens cost about half in flex and batch and about
# double in priority, so each call is billed at its own tier's table, and a tier the
# catalogue has no table for is unknown rather than the standard rate.

# 10,000 prompt tokens (6,000 of them cached), 2,000 output tokens (1,500 of them reasoning).
TIER_USAGE = {
    "prompt_tokens": 10_000,
    "completion_tokens": 2_000,
    "total_tokens": 12_000,
    "prompt_tokens_details": {"cached_tokens": 6_000},
    "completion_tokens_details": {"reasoning_tokens": 1_500},
}


def openai_reply(
    usage: dict[str, Any], service_tier: str | None, model: str = "gpt-5-mini", **kwargs: Any
) -> Any:
    """The AIMessage the real ChatOpenAI.invoke returns for OpenAI's JSON with this tier."""
    reply: dict[str, Any] = {
        "id": "chatcmpl-tier",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }
    if service_tier is not None:
        reply["service_tier"] = service_tier
    with canned(reply) as url:
        chat = ChatOpenAI(model=model, api_key="k", base_url=f"{url}/v1", max_retries=0, **kwargs)
        return chat.invoke("hi")


def test_shipped_tier_prices_used_below_are_the_published_ones():
    # gpt-5-mini per 1M: standard 0.25 / 0.025 cached / 2.00; flex and batch are Batch API rates
    # (half); priority 0.45 / 0.045 / 3.60 (OpenAI's Priority processing page).
    mini = spec("openai:gpt-5-mini")
    flex, batch, prio = (mini.price_for(t) for t in ("flex", "batch", "priority"))
    assert (flex.input, flex.cached_input, flex.output) == (D("0.125"), D("0.0125"), D("1"))
    assert (batch.input, batch.cached_input, batch.output) == (D("0.125"), D("0.0125"), D("1"))
    assert (prio.input, prio.cached_input, prio.output) == (D("0.45"), D("0.045"), D("3.6"))


def test_a_flex_call_is_billed_at_the_flex_rates():
    message = openai_reply(TIER_USAGE, "flex")
    meta = message.usage_metadata
    assert message.response_metadata["service_tier"] == "flex"
    assert "flex_cache_read" in meta["input_token_details"]
    tokens = parse_usage(meta)  # the tier is in langchain-openai's usage keys alone
    assert (tokens.service_tier, tokens.cached_input, tokens.reasoning) == ("flex", 6_000, 1_500)
    cost = price(meta, spec("openai:gpt-5-mini"))
    assert cost.input == D("0.0005")  # 4,000 × 0.125 / 1M
    assert cost.cached_input == D("0.000075")  # 6,000 × 0.0125 / 1M
    assert cost.output == D("0.0005")  # 500 × 1.00 / 1M
    assert cost.reasoning == D("0.0015")  # 1,500 × 1.00 / 1M
    assert cost.total == D("0.002575")  # the standard rate would bill 0.00515


def test_a_priority_call_is_billed_at_the_priority_rates():
    message = openai_reply(TIER_USAGE, "priority")
    assert message.response_metadata["service_tier"] == "priority"
    cost = price(message.usage_metadata, spec("openai:gpt-5-mini"))
    assert cost.input == D("0.0018")  # 4,000 × 0.45 / 1M
    assert cost.cached_input == D("0.00027")  # 6,000 × 0.045 / 1M
    assert cost.output + cost.reasoning == D("0.0072")  # 2,000 × 3.60 / 1M
    assert cost.total == D("0.00927")


def test_a_default_tier_call_is_billed_at_the_standard_rates():
    message = openai_reply(TIER_USAGE, "default")
    tier = service_tier_of(message)
    assert tier == "default"
    cost = price(parse_usage(message.usage_metadata, tier), spec("openai:gpt-5-mini"))
    # 4,000 × 0.25 + 6,000 × 0.025 + 2,000 × 2.00, per 1M
    assert cost.total == D("0.00515")


def test_a_tier_without_a_table_is_unknown_never_the_standard_rate():
    # Scale-tier calls are prepaid units: langchain-openai does not mark them in the usage, only
    # the response says so; the catalogue has no per-token table for them.
    message = openai_reply(TIER_USAGE, "scale")
    tier = service_tier_of(message)
    assert tier == "scale"
    assert price(parse_usage(message.usage_metadata, tier), spec("openai:gpt-5-mini")).total is None
    # gpt-4o-mini's priority rate was not in the stored copy of OpenAI's page: unknown too.
    prio = openai_reply(TIER_USAGE, "priority", model="gpt-4o-mini")
    assert price(prio.usage_metadata, spec("openai:gpt-4o-mini")).total is None


def test_batch_is_priced_from_its_own_table():
    mini = spec("openai:gpt-5-mini")
    tokens = parse_usage(openai_reply(TIER_USAGE, None).usage_metadata)
    assert tokens.service_tier is None
    assert price(tokens, mini, service_tier="batch").total == D("0.002575")  # half of 0.00515
    assert mini.price_for("batch") == mini.price.service_tiers["batch"]
    # A batch job with cache reads on a model whose batch cached rate is not published.
    assert price(tokens, spec("openai:gpt-4o-mini"), service_tier="batch").total is None


def test_a_long_prompt_in_a_tier_without_long_context_rates_is_unknown():
    big = spec("openai:gpt-5.4")  # long-context rates above 272K; priority excludes them
    assert big.price_for("priority", 272_000).input == D("5")
    assert big.price_for("priority", 272_001) is None
    assert big.price_for(None, 272_001).input == D("5")  # standard long-context table


def test_standard_tier_names_are_the_plain_table():
    mini = spec("openai:gpt-5-mini")
    for tier in (None, "default", "standard", "on_demand"):
        assert mini.price_for(tier) is mini.price
    with pytest.raises(ValueError, match="non-standard tier"):
        Price(input=1, output=2, service_tiers={"default": Price(input=1, output=2)})


def test_anthropic_standard_tier_in_the_usage_is_the_plain_table():
    # Anthropic reports usage.service_tier "standard"; langchain-anthropic keeps the raw usage.
    class Message:
        response_metadata = {"usage": {"service_tier": "standard"}}

    assert service_tier_of(Message()) == "standard"
    assert spec("anthropic:claude-haiku-4-5").price_for("standard") is not None


def test_the_estimate_holds_the_requested_tier_rates():
    mini = spec("openai:gpt-5-mini")
    standard = estimate_cost(mini, 10_000, 2_000)
    assert estimate_cost(mini, 10_000, 2_000, "priority") == D("0.0117")  # 0.0045 + 0.0072
    assert estimate_cost(mini, 10_000, 2_000, "flex") == standard / 2
    assert estimate_cost(mini, 10_000, 2_000, "scale") is None
    chat = ChatOpenAI(model="gpt-5-mini", api_key="k", service_tier="priority")
    assert requested_service_tier(chat) == "priority"
    assert requested_service_tier(chat, {"service_tier": "flex"}) == "flex"
    assert requested_service_tier(ChatOpenAI(model="m", api_key="k", service_tier="auto")) is None


def test_the_tracker_bills_a_flex_call_at_the_flex_rate():
    from llm_routing import CostTracker

    reply = {
        "id": "chatcmpl-tier",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-5-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": TIER_USAGE,
        "service_tier": "flex",
    }
    tracker = CostTracker()
    with canned(reply) as url:
        chat = ChatOpenAI(
            model="gpt-5-mini",
            api_key="k",
            base_url=f"{url}/v1",
            max_retries=0,
            service_tier="flex",
        )
        (tracker | chat).invoke("hi")
    (record,) = tracker.records()
    assert record.tokens.service_tier == "flex"
    assert record.cost.total == D("0.002575")
