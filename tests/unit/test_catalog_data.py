"""Validation of the shipped data file as a whole."""

import json
from decimal import Decimal
from importlib import resources

import pytest

from llm_routing.catalog import default_catalog
from llm_routing.catalog.sources import spec_from_dict


def _doc():
    text = resources.files("llm_routing.catalog").joinpath("data/models.json").read_text("utf-8")
    return json.loads(text, parse_float=Decimal)


DOC = _doc()
ROWS = DOC["models"]
IDS = [f"{r['provider']}:{r['name']}" for r in ROWS]


def _walk(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
    else:
        yield value


def test_top_level_structure():
    assert DOC["schema"] == 1
    assert set(DOC) == {"schema", "generated", "notes", "models"}
    assert DOC["generated"] and DOC["notes"]


def test_at_least_25_models_and_all_four_providers():
    assert len(ROWS) >= 25
    assert {r["provider"] for r in ROWS} >= {"openai", "anthropic", "google", "mistral"}


def test_no_negative_sentinel_anywhere():
    assert all(not (isinstance(v, int | Decimal) and v < 0) for v in _walk(DOC))


def test_keys_are_unique():
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_row_parses_into_a_spec(row):
    spec = spec_from_dict(row)
    assert spec.context_window > 0


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_row_has_source_and_iso_as_of(row):
    assert row["source"].startswith("https://")
    year, month, day = row["as_of"].split("-")
    assert (len(year), len(month), len(day)) == (4, 2, 2)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_cached_input_not_above_input(row):
    price = row.get("price") or {}
    for table in (price, price.get("long_context") or {}):
        if table.get("cached_input") is not None and table.get("input") is not None:
            assert table["cached_input"] <= table["input"]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_long_context_prices_not_below_base(row):
    price = row.get("price") or {}
    long_ctx = price.get("long_context")
    if long_ctx is not None:
        assert long_ctx["input"] >= price["input"]
        assert (
            price["long_context_threshold"] < row["context_window"]
            or row["provider"] == "anthropic"
        )


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r["provider"] == "openai"],
    ids=[i for i in IDS if i.startswith("openai:")],
)
def test_every_openai_row_has_tier1_to_tier5(row):
    assert {f"tier{i}" for i in range(1, 6)} <= set(row["rate_limits"])


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r["provider"] == "anthropic"],
    ids=[i for i in IDS if i.startswith("anthropic:")],
)
def test_anthropic_rows_use_separate_input_output_limits(row):
    assert {f"tier{i}" for i in range(1, 5)} <= set(row["rate_limits"])
    for limits in row["rate_limits"].values():
        assert limits["itpm"] > 0 and limits["otpm"] > 0 and "tpm" not in limits
        assert row["price"]["cache_write"] > row["price"]["input"]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_tokenizer_matches_provider(row):
    expected = {
        "anthropic": {"estimate:anthropic"},
        "google": {"estimate:gemini"},
        "mistral": {"estimate:mistral"},
        "openai": {"o200k_base", "cl100k_base"},
    }[row["provider"]]
    assert row["tokenizer"] in expected


def test_legacy_openai_models_use_cl100k():
    catalog = default_catalog()
    for name in ("gpt-4", "gpt-4-turbo", "gpt-3.5-turbo"):
        assert catalog.get(name).tokenizer == "cl100k_base"
    for name in ("gpt-4o", "gpt-4.1", "gpt-5", "o3"):
        assert catalog.get(name).tokenizer == "o200k_base"


def test_no_alias_resolves_to_two_models():
    catalog = default_catalog()
    for spec in catalog:
        for alias in spec.aliases:
            assert catalog.get(f"{spec.provider}:{alias}") is spec


def test_prices_are_exact_decimals():
    price = default_catalog().get("gpt-4o-mini").price
    assert price is not None
    assert price.cached_input == Decimal("0.075")
    assert str(price.input) == "0.15"
