from __future__ import annotations

import pytest

from llm_routing.catalog import default_catalog
from llm_routing.sim import FaultPlan, Latency, SimModel
from llm_routing.sim.state import format_duration


def test_plain_sim_model_needs_no_catalogue():
    model = SimModel(name="m", context_window=8_000, rpm=3, tpm=1_000, rpd=50)
    assert model.limits() == {
        "rpm": 3,
        "tpm": 1_000,
        "rpd": 50,
        "itpm": None,
        "otpm": None,
        "tpd": None,
    }


def test_from_spec_takes_window_tokenizer_and_tier_limits():
    spec = default_catalog().get("openai:gpt-4o-mini")
    model = SimModel.from_spec(spec, tier="tier1")
    limits = spec.limits("tier1")
    assert model.name == "gpt-4o-mini"
    assert model.context_window == spec.context_window
    assert model.tokenizer == spec.tokenizer
    assert (model.rpm, model.tpm, model.rpd) == (limits.rpm, limits.tpm, limits.rpd)
    assert "openai:gpt-4o-mini" in model.aliases


def test_from_spec_overrides_win():
    spec = default_catalog().get("gpt-4o-mini")
    model = SimModel.from_spec(spec, rpm=7, latency=Latency.realistic())
    assert model.rpm == 7
    assert model.latency.ttft > 0


def test_from_spec_without_tier_is_unlimited():
    model = SimModel.from_spec(default_catalog().get("gpt-4o-mini"), tier=None)
    assert all(v is None for v in model.limits().values())


def test_from_spec_unknown_tier_names_the_known_ones():
    with pytest.raises(ValueError, match="known tiers"):
        SimModel.from_spec(default_catalog().get("gpt-4o-mini"), tier="tier99")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": "m", "context_window": 0}, ValueError, "context_window"),
        ({"name": "m", "rpm": -1}, ValueError, "rpm"),
        ({"name": "m", "tpm": 2.5}, TypeError, "tpm"),
        ({"name": "m", "faults": {3: 503}}, TypeError, "FaultPlan"),
        ({"name": "m", "latency": 0.3}, TypeError, "Latency"),
    ],
)
def test_bad_fields_are_rejected_naming_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        SimModel(**kwargs)


def test_latency_jitter_is_seeded():
    import random

    latency = Latency(ttft=1.0, per_token=0.1, jitter=0.5)
    assert latency.sample(random.Random(1)) == latency.sample(random.Random(1))
    ttft, per_token = latency.sample(random.Random(2))
    assert 0.5 <= ttft <= 1.5
    assert 0.05 <= per_token <= 0.15


def test_fast_latency_is_instant():
    import random

    assert Latency.fast().sample(random.Random(0)) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.12, "120ms"),
        (1, "1s"),
        (17.28, "17.28s"),
        (86.4, "1m26.4s"),
        (360, "6m0s"),
        (7200, "2h0m0s"),
        (59.9651, "59.966s"),
    ],
)
def test_reset_durations_are_formatted_like_openai(seconds, text):
    assert format_duration(seconds) == text


def test_fault_plan_is_the_default_for_every_model():
    assert SimModel(name="m").faults == FaultPlan()
