"""The LiteLLM-format loader: mapping, exact prices, counting skipped rows, precedence."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from llm_routing.catalog import Catalog, default_catalog
from llm_routing.catalog.litellm import read_litellm

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "litellm_sample.json"


def test_parse_counts_sample_non_chat_and_invalid_rows():
    parsed = read_litellm(SAMPLE)
    assert parsed.skipped_sample_spec == 1
    assert parsed.skipped_non_chat == 2
    assert parsed.invalid == 3
    assert len(parsed.specs) == 6
    joined = "\n".join(parsed.problems)
    assert "broken-no-window" in joined and "broken-negative-price" in joined
    assert "broken-not-an-object" in joined


def test_per_token_prices_become_exact_per_million():
    specs = {s.key: s for s in read_litellm(SAMPLE).specs}
    price = specs["openai:gpt-4o-mini"].price
    assert price is not None
    assert price.input == Decimal("0.15") and str(price.input) == "0.15"
    assert price.cached_input == Decimal("0.075")
    assert price.output == Decimal("0.6")
    reasoning = specs["openai:gpt-9-preview"].price
    assert reasoning is not None and reasoning.reasoning == Decimal("12")


def test_long_context_and_cache_write_prices_are_mapped():
    spec = next(s for s in read_litellm(SAMPLE).specs if s.name == "claude-test-9")
    price = spec.price
    assert spec.provider == "anthropic"
    assert price is not None and price.cache_write == Decimal("3.75")
    assert price.long_context_threshold == 200_000
    assert price.long_context is not None
    assert price.long_context.input == Decimal("6")
    assert price.long_context.output == Decimal("22.5")
    assert price.long_context.cached_input == Decimal("0.6")
    assert price.long_context.cache_write == Decimal("3.75")
    assert price.for_prompt(250_000) is price.long_context


def test_provider_prefixes_are_stripped_and_mapped():
    keys = {s.key for s in read_litellm(SAMPLE).specs}
    assert "google:gemini-test-flash" in keys
    assert "deepseek:deepseek-chat" in keys
    assert "anthropic:claude-test-9" in keys


def test_tokenizers_follow_provider():
    specs = {s.key: s for s in read_litellm(SAMPLE).specs}
    assert specs["openai:gpt-9-preview"].tokenizer == "o200k_base"
    assert specs["anthropic:claude-test-9"].tokenizer == "estimate:anthropic"
    assert specs["google:gemini-test-flash"].tokenizer == "estimate:gemini"


def test_load_fills_only_missing_models_by_default():
    catalog = default_catalog().copy()
    shipped = catalog.get("gpt-4o-mini")
    result = catalog.load_litellm(SAMPLE)
    assert (result.added, result.replaced, result.skipped_known) == (4, 0, 2)
    assert result.invalid == 3 and result.skipped == 2 + 2 + 1
    assert catalog.get("gpt-4o-mini") is shipped
    assert catalog.get("gpt-9-preview").context_window == 256_000
    assert catalog.get("gemini-test-flash").key == "google:gemini-test-flash"


def test_load_with_override_replaces_shipped_figures_but_keeps_limits():
    catalog = default_catalog().copy()
    shipped = catalog.get("gpt-4o-mini")
    result = catalog.load_litellm(SAMPLE, override=True)
    assert (result.added, result.replaced, result.skipped_known) == (4, 1, 1)
    spec = catalog.get("gpt-4o-mini")
    assert spec.context_window == 64_000 and spec.max_output_tokens == 8_000
    assert spec.rate_limits == shipped.rate_limits
    assert spec.aliases == shipped.aliases
    assert str(SAMPLE) in (spec.source or "")


def test_override_never_merges_a_snapshot_entry_into_its_family():
    catalog = default_catalog().copy()
    catalog.load_litellm(
        {
            "gpt-4o-2024-11-20": {
                "litellm_provider": "openai",
                "mode": "chat",
                "max_input_tokens": 1,
                "input_cost_per_token": 1,
            }
        },
        override=True,
    )
    assert catalog.get("gpt-4o").context_window == 128_000


def test_load_accepts_an_already_parsed_dict():
    data = json.loads(SAMPLE.read_text())
    result = Catalog().load_litellm(data)
    assert result.added == 6


def test_missing_file_is_a_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match="no file at"):
        Catalog().load_litellm(tmp_path / "nope.json")


def test_non_object_json_is_a_clear_value_error(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="one object keyed by model name"):
        Catalog().load_litellm(path)


def test_wrong_source_type_is_type_error():
    with pytest.raises(TypeError, match="load_litellm"):
        Catalog().load_litellm(42)  # type: ignore[arg-type]


def test_many_invalid_rows_are_counted_and_the_report_is_capped():
    data = {f"bad-{i}": {"litellm_provider": "openai", "mode": "chat"} for i in range(80)}
    result = Catalog().load_litellm(data)
    assert result.invalid == 80
    assert len(result.problems) == 51
    assert "30 more" in result.problems[-1]
