"""The tracker's per-call shortcuts give what the general code gives.

``parse_usage`` of a usage without details returns early; it must equal the full reading of
the same usage with empty details, and ``price`` must give the same parts (same ``Decimal``
exponents, since records keep their text) as before the inlined sum.
"""

from decimal import Decimal
from typing import Any

import pytest

from llm_routing.catalog import ModelSpec, Price
from llm_routing.cost.pricing import TokenUsage, parse_usage, price, price_tokens


@pytest.mark.parametrize("tier", [None, "flex", "priority"])
@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 20, "output_tokens": 2, "total_tokens": 22},
        {"input_tokens": 0, "output_tokens": 0},
        {"input_tokens": 7, "output_tokens": 3, "input_token_details": None},
    ],
)
def test_usage_without_details_reads_as_with_empty_details(usage, tier):
    empty = {**usage, "input_token_details": {}, "output_token_details": {}}
    assert parse_usage(usage, tier) == parse_usage(empty, tier)
    assert parse_usage(usage, tier) == TokenUsage(
        input=usage["input_tokens"], output=usage["output_tokens"], service_tier=tier
    )


def test_usage_with_details_still_reads_them():
    usage = {
        "input_tokens": 100,
        "output_tokens": 50,
        "input_token_details": {"cache_read": 40},
        "output_token_details": {"reasoning": 10},
    }
    assert parse_usage(usage) == TokenUsage(input=60, cached_input=40, output=40, reasoning=10)


def _summed(parts: list[Decimal | None]) -> Decimal | None:
    total: Decimal | None = Decimal(0)
    for part in parts:
        total = None if total is None or part is None else total + part
    return total


@pytest.mark.parametrize(
    "tokens",
    [
        TokenUsage(input=20, output=2),
        TokenUsage(input=0, output=0),
        TokenUsage(input=1_000_000, cached_input=5, cache_write=3, output=7, reasoning=11),
    ],
)
@pytest.mark.parametrize(
    "table",
    [
        Price(input=0.15, output=0.6),
        Price(input=2.5, output=10, cached_input=1.25, cache_write=3.75),
        Price(input=1, output=None),
    ],
)
def test_cost_total_is_the_exact_sum_of_its_parts(tokens, table):
    cost = price_tokens(tokens, table)
    parts = [cost.input, cost.cached_input, cost.cache_write, cost.output, cost.reasoning]
    assert cost.total == _summed(parts)
    if cost.total is not None:
        assert str(cost.total) == str(_summed(parts))
    spec = ModelSpec(provider="openai", name="x", context_window=1000, price=table)
    assert price(tokens, spec) == cost


def _held(model, kwargs):
    from langchain_core.runnables.config import ensure_config

    from llm_routing._decorator import Call
    from llm_routing.cost import CostTracker

    upstream = {"llm_routing.input_tokens": 10_000, "llm_routing.reserved_output_tokens": 2_000}
    call = Call("hi", ensure_config(None), kwargs, model, {}, False, upstream)
    CostTracker().before(call)
    return call.metadata["llm_routing.estimated_cost_usd"]


def test_the_hold_uses_the_model_tier_read_once_unless_the_call_names_one():
    from langchain_openai import ChatOpenAI

    from llm_routing.catalog import default_catalog
    from llm_routing.cost.pricing import estimate_cost

    mini = default_catalog().get("openai:gpt-5-mini")
    priority = float(estimate_cost(mini, 10_000, 2_000, "priority"))
    flex = float(estimate_cost(mini, 10_000, 2_000, "flex"))
    standard = float(estimate_cost(mini, 10_000, 2_000))
    chat = ChatOpenAI(model="gpt-5-mini", api_key="k", service_tier="priority")
    assert _held(chat, {}) == priority
    assert _held(chat, {"service_tier": None}) == priority
    assert _held(chat, {"service_tier": "flex"}) == flex
    assert _held(chat, {"service_tier": "auto"}) == standard  # auto: no tier yet
    assert _held(ChatOpenAI(model="gpt-5-mini", api_key="k"), {}) == standard


# --------------------------------------------------------------------------- built by slots


def test_slot_built_values_equal_the_dataclass_constructors():
    from llm_routing.cost.amounts import Cost, _cost, _token_usage

    usage = _token_usage(1, 2, 3, 4, 5, 6, "flex")
    assert usage == TokenUsage(1, 2, 3, 4, 5, 6, "flex")
    assert repr(usage) == repr(TokenUsage(1, 2, 3, 4, 5, 6, "flex"))
    parts = (Decimal("0.1"), Decimal(0), None, Decimal("2E-7"), Decimal(0), None)
    assert _cost(*parts) == Cost(*parts)
    with pytest.raises(AttributeError):  # still frozen
        usage.input = 9  # type: ignore[misc]


def test_slot_built_record_equals_the_constructor_and_reads_a_utc_datetime():
    import dataclasses
    import pickle
    from datetime import UTC, datetime

    from llm_routing.cost.pricing import Cost
    from llm_routing.cost.record import CostRecord, _Epoch, _record, raw_time

    now = 1_750_000_000.123456
    cost = Cost(Decimal("0.1"), Decimal(0), Decimal(0), Decimal("0.2"), Decimal(0), Decimal("0.3"))
    values = ("p", "m", TokenUsage(1, 0, 0, 0, 2), cost, False, "ok", "r", None, ("t",), {"k": "v"})
    fast = _record(_Epoch(now), *values, 0.5)
    assert type(raw_time(fast)) is _Epoch  # nothing has read it yet
    expected = CostRecord(datetime.fromtimestamp(now, UTC), *values, duration_s=0.5)
    assert fast == expected and repr(fast) == repr(expected)
    assert fast.time == datetime.fromtimestamp(now, UTC) and fast.time.tzinfo is UTC
    assert type(raw_time(fast)) is datetime  # made once, then kept
    assert pickle.loads(pickle.dumps(_record(_Epoch(now), *values, 0.5))) == expected
    assert dataclasses.replace(_record(_Epoch(now), *values, 0.5), status="error") == (
        dataclasses.replace(expected, status="error")
    )
    # A time given to the constructor is kept as it is.
    assert CostRecord(now, *values).time == now  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.time = expected.time  # type: ignore[misc]


# --------------------------------------------------------------------------- priced when read


def _card(**prices: float | None) -> Any:
    from llm_routing.cost._rates import RateCard

    spec = ModelSpec(provider="openai", name="m", context_window=1000, price=Price(**prices))
    return RateCard(spec)


@pytest.mark.parametrize(
    "tokens",
    [TokenUsage(input=21, output=2), TokenUsage(input=0, output=0), TokenUsage(1000, 0, 0, 0, 1)],
)
def test_a_record_priced_when_read_equals_one_priced_at_once(tokens):
    """`RateCard.deferred`: a record holding its rates reads, compares, pickles, replaces and
    packs exactly as the record priced at once, and prices itself only once."""
    import dataclasses
    import pickle

    from llm_routing.cost._compact import Interned, pack, unpack
    from llm_routing.cost.record import _Epoch, _record, fields_of, fields_total, raw_cost

    card = _card(input=0.15, output=0.6)
    rates = card.deferred(tokens)
    assert rates is not None
    values = ("openai", "m", tokens)
    rest = (False, "ok", None, None, (), {}, 0.5)
    eager = _record(_Epoch(1.0), *values, card.price(tokens), *rest)

    def lazy():
        return _record(_Epoch(1.0), *values, rates, *rest)

    assert raw_cost(lazy()) is rates
    unread = lazy()
    total = fields_total(fields_of(unread))  # a ledger's totals: the total alone, unpriced
    assert total == eager.cost.total and str(total) == str(eager.cost.total)
    assert raw_cost(unread) is rates and fields_total(fields_of(eager)) is eager.cost.total
    assert lazy() == eager and repr(lazy()) == repr(eager)
    record = lazy()
    assert record.cost == card.price(tokens) and record.cost is record.cost  # kept once made
    assert record.cost_usd == eager.cost_usd and record.as_row() == eager.as_row()
    assert pickle.loads(pickle.dumps(lazy())) == eager
    assert dataclasses.replace(lazy(), status="error") == dataclasses.replace(eager, status="error")
    interned = Interned()
    row = pack(lazy(), interned)
    assert row[3] is rates  # the shared rates, not a text per record
    assert unpack(row) == eager and repr(unpack(row)) == repr(eager)
    assert unpack(pack(eager, interned)) == eager


def test_a_price_not_known_for_sure_is_made_at_once():
    """Cache reads without a cached-input price, or a tier: priced (and warned about) now."""
    card = _card(input=0.15, output=0.6)
    assert card.deferred(TokenUsage(input=10, cached_input=5, output=1)) is None
    assert card.deferred(TokenUsage(input=10, output=1, service_tier="flex")) is None
    full = _card(input=0.15, cached_input=0.075, cache_write=0.2, output=0.6, reasoning=0.6)
    assert full.deferred(TokenUsage(10, 5, 3, 0, 1, 2)) is not None
    assert _card(input=0.15, output=None).deferred(TokenUsage(input=10, output=1)) is None


def test_a_call_kept_as_fields_reads_back_as_the_record_it_would_have_been():
    """The memory ledger keeps a tracker's call as its record's fields (`add_fields`): records,
    summary and bytes kept are those of adding the `CostRecord` itself."""
    from llm_routing.cost.memory import MemoryLedger
    from llm_routing.cost.record import _Epoch, _record, fields_of

    card = _card(input=0.15, output=0.6)
    calls = []
    for i, tokens in enumerate([TokenUsage(input=21, output=2), TokenUsage(5, 3, 0, 0, 1)]):
        cost = card.deferred(tokens) or card.price(tokens)
        tags, metadata = (("feature",), {"user": "u1"}) if i else ((), {})
        calls.append(
            (
                _Epoch(1e9 + i),
                "openai",
                "m",
                tokens,
                cost,
                False,
                "ok",
                None,
                None,
                tags,
                metadata,
                0.25,
            )
        )
    by_fields, by_records = MemoryLedger(), MemoryLedger()
    for fields in calls * 40:  # past a flush (64 kept pending)
        assert fields_of(_record(*fields)) == fields
        by_fields.add_fields(fields)
        by_records.add(_record(*fields))
    assert by_fields.records() == by_records.records()
    assert by_fields.summary() == by_records.summary()
