"""The tracker's prepared rates (``cost._rates``) price exactly as ``cost.pricing`` does.

Records keep a cost's text, so equal is not enough: every part must have the same digits and
exponent as the reference `price` and `estimate_cost` give.
"""

import random
from decimal import Decimal

import pytest

from llm_routing.catalog import ModelSpec, Price, default_catalog
from llm_routing.cost._rates import RateCard
from llm_routing.cost.pricing import Cost, TokenUsage, estimate_cost, price

TABLES = [
    Price(input=0.15, output=0.6),
    Price(input=2.5, output=10, cached_input=1.25, cache_write=3.75),
    Price(input=3, output=15, cached_input=0.3, cache_write=3.75, reasoning=20),
    Price(input=1, output=None),
    Price(input=None, output=2),
    Price(input=0.000001, output=1e-6),
    Price(input=2, output=4, long_context_threshold=100, long_context=Price(input=4, output=8)),
    Price(
        input=1.25,
        output=10,
        service_tiers={"flex": Price(input=0.625, output=5), "priority": {"input": 2.5}},
    ),
]


def _texts(cost: Cost) -> list[str | None]:
    parts = (cost.input, cost.cached_input, cost.cache_write, cost.output, cost.reasoning)
    return [None if p is None else str(p) for p in (*parts, cost.total)]


def _usages(seed: int) -> list[TokenUsage]:
    rng = random.Random(seed)
    found = [TokenUsage(), TokenUsage(input=20, output=2), TokenUsage(input=150, output=3)]
    for _ in range(40):
        pick = [rng.choice([0, 0, 1, 7, 99, 101, 12_345, 10**9]) for _ in range(6)]
        tier = rng.choice([None, None, "default", "flex", "priority", "batch"])
        found.append(TokenUsage(*pick, service_tier=tier))
    return found


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("table", TABLES)
def test_a_rate_card_prices_as_price_does_digit_for_digit(provider, table):
    spec = ModelSpec(provider=provider, name="m", context_window=10**6, price=table)
    card = RateCard(spec)
    for tokens in _usages(len(provider)):
        expected = price(tokens, spec)
        got = card.price(tokens)
        assert got == expected
        assert _texts(got) == _texts(expected), tokens


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("tier", [None, "flex", "priority", "batch"])
def test_a_rate_card_holds_what_estimate_cost_holds(table, tier):
    spec = ModelSpec(provider="openai", name="m", context_window=10**6, price=table)
    card = RateCard(spec)
    for prompt, completion in [(0, 0), (20, 4096), (150, 0), (10**6, 1), (99, 101)]:
        expected = estimate_cost(spec, prompt, completion, tier)
        got = card.estimate(prompt, completion, tier)
        assert got == expected
        assert str(got) == str(expected)


def test_every_catalogued_price_prices_alike():
    tokens = [
        TokenUsage(input=1234, output=56),
        TokenUsage(
            input=10, cached_input=5, cache_write=3, cache_write_1h=2, output=7, reasoning=9
        ),
        TokenUsage(input=300_000, output=10, service_tier="flex"),
    ]
    for spec in default_catalog():
        if spec.price is None:
            continue
        card = RateCard(spec)
        for used in tokens:
            assert _texts(card.price(used)) == _texts(price(used, spec)), spec.key
        got = card.estimate(5000, 4096, None)
        assert got == estimate_cost(spec, 5000, 4096) and isinstance(got, Decimal | None)


def test_the_estimate_shown_without_a_budget_is_the_float_of_the_held_one():
    """`RateCard.estimate_usd` (int arithmetic) gives the float of `estimate` exactly, for
    every catalogued price and the test tables, over counts from 0 to a million tokens."""
    rng = random.Random(7)
    counts = [(0, 0), (20, 4096), (150, 0), (10**6, 1), (99, 101)]
    counts += [(rng.randrange(10**6), rng.randrange(10**5)) for _ in range(200)]
    specs = [s for s in default_catalog() if s.price is not None]
    specs += [ModelSpec(provider="openai", name="m", context_window=10**6, price=t) for t in TABLES]
    for spec in specs:
        card = RateCard(spec)
        for tier in (None, "flex", "priority"):
            for prompt, completion in counts:
                held = card.estimate(prompt, completion, tier)
                shown = card.estimate_usd(prompt, completion, tier)
                assert shown == (None if held is None else float(held)), (spec.key, prompt)
