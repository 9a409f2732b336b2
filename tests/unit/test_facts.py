"""The one output rule (ceiling and estimate) and the per-model cache of ``_facts``."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from llm_routing import _facts
from llm_routing._facts import (
    DEFAULT_OUTPUT_ESTIMATE,
    DEFAULT_OUTPUT_RESERVE,
    PerModel,
    default_output_ceiling,
    explicit_max_tokens,
    output_ceiling,
    output_estimate,
)
from llm_routing.catalog import ModelSpec

BIG = ModelSpec(provider="x", name="big", context_window=200_000)
CAPPED = ModelSpec(provider="x", name="capped", context_window=200_000, max_output_tokens=500)
SMALL = ModelSpec(provider="x", name="small", context_window=2_000)


class Model:
    """A chat model stand-in: only the attributes the rule reads."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


# --- output_ceiling -------------------------------------------------------------------------


def test_ceiling_default_is_the_constant_for_a_large_window():
    assert output_ceiling(BIG, {}, Model()) == DEFAULT_OUTPUT_RESERVE == 4096


def test_ceiling_default_is_capped_by_the_models_output_limit():
    assert output_ceiling(CAPPED, {}, Model()) == 500


def test_ceiling_default_is_at_most_a_quarter_of_the_window():
    assert output_ceiling(SMALL, {}, Model()) == 500 == default_output_ceiling(SMALL)


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens", "max_output_tokens"])
def test_ceiling_an_explicit_call_cap_wins_over_every_default(key):
    assert output_ceiling(SMALL, {key: 9_000}, Model()) == 9_000
    assert output_ceiling(BIG, {key: 9_000}, Model(), default=7) == 9_000


def test_ceiling_the_models_own_cap_wins_over_the_default_but_not_over_the_call():
    model = Model(max_tokens=300)
    assert output_ceiling(BIG, {}, model) == 300
    assert output_ceiling(BIG, {"max_tokens": 40}, model) == 40


def test_ceiling_ignores_caps_that_are_not_positive_ints():
    for bad in (0, -5, True, 2.5, "100", None):
        assert output_ceiling(BIG, {"max_tokens": bad}, Model(max_tokens=bad)) == 4096


def test_ceiling_a_configured_default_replaces_the_rule_default():
    assert output_ceiling(BIG, {}, Model(), default=123) == 123
    assert output_ceiling(BIG, {}, Model(), default=0) == 0


def test_ceiling_without_a_model_reads_the_call_only():
    assert output_ceiling(BIG, {}, None) == 4096
    assert explicit_max_tokens({}, None) is None


# --- output_estimate ------------------------------------------------------------------------


def test_estimate_default_is_the_smaller_of_1024_and_the_ceiling():
    assert output_estimate(BIG, {}, Model()) == DEFAULT_OUTPUT_ESTIMATE == 1024
    assert output_estimate(CAPPED, {}, Model()) == 500
    assert output_estimate(SMALL, {}, Model()) == 500


def test_estimate_an_explicit_cap_wins_even_above_1024():
    # OpenAI counts a sent max_tokens toward TPM, so that is what admission charges.
    assert output_estimate(BIG, {"max_tokens": 3_000}, Model()) == 3_000
    assert output_estimate(BIG, {}, Model(max_completion_tokens=2_500)) == 2_500


def test_estimate_a_configured_default_replaces_the_rule_default():
    assert output_estimate(BIG, {}, Model(), default=2_048) == 2_048
    assert output_estimate(BIG, {"max_tokens": 10}, Model(), default=2_048) == 10


def test_estimate_never_exceeds_the_ceiling_without_an_explicit_cap():
    for spec in (BIG, CAPPED, SMALL):
        assert output_estimate(spec, {}, Model()) <= output_ceiling(spec, {}, Model())


# --- PerModel -------------------------------------------------------------------------------


def test_per_model_builds_once_per_model_object():
    built: list[Any] = []
    cache: PerModel[int] = PerModel(lambda model: built.append(model) or len(built))
    a, b = Model(), Model()
    assert cache.get(a) == 1
    assert cache.get(a) == 1
    assert cache.get(b) == 2
    assert built == [a, b]
    assert len(cache) == 2


def test_per_model_holds_the_model_so_its_id_is_not_reused():
    cache: PerModel[str] = PerModel(lambda model: model.name)
    model = Model(name="first")
    key = id(model)
    cache.get(model)
    del model
    gc.collect()
    # The entry keeps the object alive: no new object can take its id while it is cached.
    assert any(id(entry[0]) == key for entry in cache._entries.values())
    assert cache.get(Model(name="second")) == "second"


def test_per_model_is_cleared_when_it_reaches_its_size():
    cache: PerModel[int] = PerModel(lambda model: 1, size=3)
    models = [Model() for _ in range(4)]
    for model in models[:3]:
        cache.get(model)
    assert len(cache) == 3
    cache.get(models[3])
    assert len(cache) == 1


def test_per_model_caches_nothing_when_build_fails():
    calls: list[int] = []

    def build(model: Any) -> int:
        calls.append(1)
        raise ValueError("unknown model")

    cache: PerModel[int] = PerModel(build)
    model = Model()
    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get(model)
    assert len(calls) == 2
    assert len(cache) == 0


def test_per_model_put_and_clear():
    cache: PerModel[int] = PerModel(lambda model: 0)
    model = Model()
    cache.put(model, 42)
    assert cache.get(model) == 42
    cache.clear()
    assert cache.get(model) == 0


def test_the_models_own_cap_is_read_once_per_model_object():
    class Counting:
        reads = 0

        @property
        def max_tokens(self) -> int:
            Counting.reads += 1
            return 77

    model = Counting()
    for _ in range(3):
        assert output_ceiling(BIG, {}, model) == 77
    assert Counting.reads == 1
    _facts._MODEL_CAPS.clear()


def test_old_paths_still_import():
    from llm_routing import _model
    from llm_routing.guard import DEFAULT_OUTPUT_RESERVE as from_guard

    assert from_guard == DEFAULT_OUTPUT_RESERVE
    assert _model.as_messages is _facts.as_messages
    assert set(_model.__all__) == set(_facts.__all__)
