"""Catalogue drift against a LiteLLM file: only what the file states is compared, tiers included."""

from decimal import Decimal

from llm_routing.catalog import ModelSpec, Price
from llm_routing.catalog.drift import FieldDrift, compare_litellm

D = Decimal

OURS = ModelSpec(
    provider="openai",
    name="m-1",
    aliases=("m-1-2026-01-01",),
    context_window=200_000,
    max_output_tokens=100_000,
    price=Price(
        input=2,
        output=8,
        cached_input=0.5,
        service_tiers={"flex": Price(input=1, output=4, cached_input=0.25)},
    ),
    as_of="2026-12-06",
    source="https://example.test/pricing",
)


def entry(**extra):
    row = {
        "litellm_provider": "openai",
        "mode": "chat",
        "max_input_tokens": 200_000,
        "input_cost_per_token": 2e-06,
        "output_cost_per_token": 8e-06,
    }
    row.update(extra)
    return row


def test_an_entry_that_states_less_than_we_know_agrees():
    # No output cap, no cached price, no tiers in the file: nothing to compare them with.
    report = compare_litellm([OURS], {"m-1": entry()})
    assert (report.differs, report.compared, report.missing) == (False, 1, ())


def test_tier_prices_are_compared_and_an_unknown_one_of_ours_is_a_difference():
    file = {
        "m-1": entry(
            input_cost_per_token_flex=1.1e-06,  # ours 1.00
            output_cost_per_token_flex=4e-06,
            input_cost_per_token_priority=3.5e-06,  # ours: no priority table
            output_cost_per_token_priority=1.4e-05,
        )
    }
    (drift,) = compare_litellm([OURS], file).drifts
    assert (drift.key, drift.matched, drift.as_of) == ("openai:m-1", "m-1", "2026-12-06")
    assert drift.fields == (
        FieldDrift("price.flex.input", D("1"), D("1.1")),
        FieldDrift("price.priority.input", None, D("3.5")),
        FieldDrift("price.priority.output", None, D("14")),
    )


def test_each_alias_entry_is_compared_and_a_row_absent_from_the_file_is_listed():
    other = ModelSpec(provider="openai", name="gone", context_window=8_000)
    file = {"m-1-2026-01-01": entry(max_input_tokens=128_000, max_output_tokens=100_000)}
    report = compare_litellm([OURS, other], file)
    (drift,) = report.drifts
    assert drift.matched == "m-1-2026-01-01"
    assert drift.fields == (FieldDrift("context_window", 200_000, 128_000),)
    assert report.missing == ("openai:gone",)
