"""Catalog lookups, registration, errors and for_model precedence."""

import pickle

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_openai import ChatOpenAI

from llm_routing.catalog import Catalog, ModelSpec, default_catalog
from llm_routing.errors import UnknownModelError


@pytest.fixture
def catalog() -> Catalog:
    return default_catalog().copy()


@pytest.mark.parametrize(
    "query",
    [
        "openai:gpt-4o-mini",
        "openai/gpt-4o-mini",
        "gpt-4o-mini",
        "GPT-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "openai:gpt-4o-mini-2024-07-18",
        "azure_openai:gpt-4o-mini",
        "  gpt-4o-mini  ",
    ],
)
def test_every_accepted_form_resolves_gpt_4o_mini(catalog, query):
    assert catalog.get(query).key == "openai:gpt-4o-mini"


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("claude-sonnet-4-5-20250929", "anthropic:claude-sonnet-4-5"),
        ("anthropic:claude-haiku-4-5-20251001", "anthropic:claude-haiku-4-5"),
        ("claude-3-5-haiku-latest", "anthropic:claude-3-5-haiku"),
        ("claude-sonnet-4-20250514", "anthropic:claude-sonnet-4"),
        ("google_genai:gemini-2.5-flash", "google:gemini-2.5-flash"),
        ("google_vertexai:gemini-2.5-pro", "google:gemini-2.5-pro"),
        ("google:gemini-2.5-pro", "google:gemini-2.5-pro"),
        ("gemini:gemini-2.0-flash-001", "google:gemini-2.0-flash"),
        ("mistralai:mistral-large-latest", "mistral:mistral-large"),
        ("mistral/mistral-small-2506", "mistral:mistral-small"),
        ("gpt-4o-2024-08-06", "openai:gpt-4o"),
        ("gpt-4-0613", "openai:gpt-4"),
    ],
)
def test_aliases_snapshots_and_langchain_prefixes_resolve_to_family(catalog, query, key):
    assert catalog.get(query).key == key


def test_unlisted_dated_snapshot_resolves_by_stripping_the_date(catalog):
    assert catalog.get("gpt-4.1-mini-2031-01-01").key == "openai:gpt-4.1-mini"
    assert catalog.get("claude-opus-4-5-20991231").key == "anthropic:claude-opus-4-5"


def test_exact_snapshot_row_wins_over_date_stripping(catalog):
    spec = catalog.get("gpt-4o-2024-05-13")
    assert spec.key == "openai:gpt-4o-2024-05-13"
    assert spec.price is not None and spec.price.input == 5


def test_unknown_model_error_names_model_close_matches_and_register_hint(catalog):
    with pytest.raises(UnknownModelError) as info:
        catalog.get("gpt-4o-mimi")
    message = str(info.value)
    assert "'gpt-4o-mimi'" in message
    assert "openai:gpt-4o-mini" in message
    assert "catalog.register(ModelSpec(provider=" in message
    assert info.value.model == "gpt-4o-mimi"


def test_unknown_model_error_is_a_lookup_and_value_error(catalog):
    with pytest.raises(LookupError):
        catalog.get("no-such-model")
    with pytest.raises(ValueError):
        catalog.get("no-such-model")


def test_unknown_model_under_known_provider_is_unknown(catalog):
    with pytest.raises(UnknownModelError, match="provider 'anthropic'"):
        catalog.get("anthropic:gpt-4o-mini")


@pytest.mark.parametrize("bad", [None, 42, b"gpt-4o", ["gpt-4o"]])
def test_get_with_wrong_type_is_type_error_naming_the_argument(catalog, bad):
    with pytest.raises(TypeError, match=r"get\(model\)"):
        catalog.get(bad)


def test_get_with_empty_name_is_value_error(catalog):
    with pytest.raises(ValueError, match="empty"):
        catalog.get("   ")


def test_bare_name_in_two_providers_is_ambiguous_and_lists_candidates():
    cat = Catalog(
        [
            ModelSpec(provider="openai", name="shared", context_window=1000),
            ModelSpec(provider="mistral", name="shared", context_window=2000),
        ]
    )
    with pytest.raises(ValueError, match="ambiguous") as info:
        cat.get("shared")
    assert "mistral:shared" in str(info.value)
    assert "openai:shared" in str(info.value)
    assert not isinstance(info.value, UnknownModelError)
    assert cat.get("mistral:shared").context_window == 2000


def test_register_adds_a_lookupable_model():
    cat = Catalog()
    cat.register(ModelSpec(provider="ollama", name="llama3", context_window=8192, aliases=("l3",)))
    assert cat.get("ollama:llama3").context_window == 8192
    assert cat.get("l3").key == "ollama:llama3"
    assert "llama3" in cat
    assert cat.providers() == ["ollama"]


def test_register_normalizes_langchain_provider_names():
    cat = Catalog()
    spec = cat.register(ModelSpec(provider="google_genai", name="g", context_window=10))
    assert spec.provider == "google"
    assert cat.get("google:g") is spec


def test_register_duplicate_key_without_replace_is_value_error(catalog):
    spec = ModelSpec(provider="openai", name="gpt-4o-mini", context_window=1)
    with pytest.raises(ValueError, match="replace=True"):
        catalog.register(spec)


def test_register_with_replace_replaces(catalog):
    catalog.register(
        ModelSpec(provider="openai", name="gpt-4o-mini", context_window=1234), replace=True
    )
    assert catalog.get("gpt-4o-mini").context_window == 1234
    # the dated snapshot still reaches the (new) family through date stripping
    assert catalog.get("gpt-4o-mini-2024-07-18").context_window == 1234


def test_register_alias_clash_with_another_model_is_value_error(catalog):
    spec = ModelSpec(provider="openai", name="mine", context_window=1, aliases=("gpt-4o",))
    with pytest.raises(ValueError, match="already used by openai:gpt-4o"):
        catalog.register(spec)


def test_register_rejects_non_spec():
    with pytest.raises(TypeError, match="ModelSpec"):
        Catalog().register({"provider": "openai"})  # type: ignore[arg-type]


def test_default_catalog_is_shared_so_registrations_reach_every_piece():
    assert default_catalog() is default_catalog()


def test_copy_of_default_catalog_does_not_leak_registrations():
    private = default_catalog().copy()
    private.register(ModelSpec(provider="openai", name="private-model", context_window=10))
    assert "private-model" in private
    assert "private-model" not in default_catalog()


def test_copy_is_independent(catalog):
    other = catalog.copy()
    other.register(ModelSpec(provider="x", name="y", context_window=1))
    assert len(other) == len(catalog) + 1


def test_models_filters_by_provider_and_sorts(catalog):
    anthropic = catalog.models("anthropic")
    assert anthropic and all(s.provider == "anthropic" for s in anthropic)
    assert [s.key for s in anthropic] == sorted(s.key for s in anthropic)
    assert catalog.models("google_genai") == catalog.models("google")


def test_models_with_unknown_provider_lists_known_ones(catalog):
    with pytest.raises(ValueError, match="known providers: anthropic, google, mistral, openai"):
        catalog.models("nope")


def test_len_iter_contains_and_providers(catalog):
    assert len(catalog) == len(list(catalog)) == len(catalog.models())
    assert catalog.providers() == ["anthropic", "google", "mistral", "openai"]
    assert "openai:gpt-4o" in catalog
    assert "nope" not in catalog
    assert 42 not in catalog


def test_limits_of_a_tier(catalog):
    limits = catalog.get("gpt-4o-mini").limits("tier1")
    assert (limits.rpm, limits.tpm, limits.rpd) == (500, 200_000, 10_000)
    claude = catalog.get("claude-haiku-4-5").limits("tier1")
    assert claude.itpm is not None and claude.otpm is not None and claude.tpm is None


def test_unknown_model_error_survives_pickling(catalog):
    with pytest.raises(UnknownModelError) as info:
        catalog.get("no-such-model")
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)


# -- for_model ----------------------------------------------------------------------------------


def test_for_model_chat_openai_profile_wins_over_shipped_data(catalog):
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test")
    spec = catalog.for_model(model)
    assert spec.key == "openai:gpt-4o-mini"
    assert spec.context_window == model.profile["max_input_tokens"]
    assert spec.price == catalog.get("gpt-4o-mini").price
    assert spec.rate_limits == catalog.get("gpt-4o-mini").rate_limits


def test_for_model_custom_profile_overrides_window_and_output(catalog):
    model = ChatOpenAI(
        model="gpt-4o-mini",
        api_key="sk-test",
        profile={"max_input_tokens": 50_000, "max_output_tokens": 1_000},
    )
    spec = catalog.for_model(model)
    assert (spec.context_window, spec.max_output_tokens) == (50_000, 1_000)


def test_for_model_explicit_override_beats_profile(catalog):
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", profile={"max_input_tokens": 50_000})
    spec = catalog.for_model(model, overrides={"context_window": 7_000})
    assert spec.context_window == 7_000


def test_for_model_without_profile_uses_shipped_data(catalog):
    model = ChatOpenAI(model="gpt-4.1-nano", api_key="sk-test", profile={})
    assert catalog.for_model(model) == catalog.get("gpt-4.1-nano")


def test_for_model_dated_snapshot_maps_to_family(catalog):
    model = ChatOpenAI(model="gpt-4o-mini-2024-07-18", api_key="sk-test")
    assert catalog.for_model(model).key == "openai:gpt-4o-mini"


def test_for_model_unknown_model_with_profile_builds_spec_from_profile(catalog):
    fake = GenericFakeChatModel(
        messages=iter([]), profile={"max_input_tokens": 32_000, "max_output_tokens": 2_000}
    )
    spec = catalog.for_model(fake)
    assert spec.context_window == 32_000
    assert spec.max_output_tokens == 2_000
    assert spec.price is None
    assert spec.rate_limits == {}


def test_for_model_unknown_model_without_profile_raises_unknown(catalog):
    fake = GenericFakeChatModel(messages=iter([]))
    fake_with_name = type("Named", (), {"model_name": "mystery-1", "profile": None})()
    with pytest.raises(UnknownModelError, match="mystery-1"):
        catalog.for_model(fake_with_name)
    with pytest.raises(TypeError, match="model name"):
        catalog.for_model(fake)


def test_for_model_reads_model_attribute_fallback(catalog):
    class Bare:
        model = "claude-haiku-4-5-20251001"

    assert catalog.for_model(Bare()).key == "anthropic:claude-haiku-4-5"
