"""`llm-routing sim serve --enforcement`: every served model enforces the chosen way."""

from __future__ import annotations

import pytest

from llm_routing.sim.serve import _models, _serve_parser


def models(*argv):
    return {m.name: m for m in _models(_serve_parser().parse_args(list(argv)))}


@pytest.mark.parametrize("mode", ["sliding", "token_bucket", "quantized"])
def test_enforcement_applies_to_every_model(mode):
    served = models("--enforcement", mode)
    assert {m.enforcement for m in served.values()} == {mode}
    catalogue = models("--models", "gpt-4o-mini,claude-haiku-4-5", "--enforcement", mode)
    assert {m.enforcement for m in catalogue.values()} == {mode}


def test_provider_enforcement_follows_each_provider():
    served = models("--models", "gpt-4o-mini,claude-haiku-4-5", "--enforcement", "provider")
    gpt, claude = served["gpt-4o-mini"], served["claude-haiku-4-5"]
    assert (gpt.enforcement, gpt.failed_requests_count) == ("quantized", True)
    assert (claude.enforcement, claude.output_counted) == ("quantized", "actual")
    assert gpt.rpm is not None  # the tier's limits are kept


def test_provider_enforcement_makes_the_demo_models_openai_shaped():
    served = models("--enforcement", "provider", "--faults", "sim-mini=503@2")
    mini = served["sim-mini"]
    assert (mini.enforcement, mini.failed_requests_count, mini.rpm) == ("quantized", True, 60)
    assert dict(mini.faults.schedule) == {2: "503"}


def test_default_is_the_simulator_default():
    from llm_routing.sim.config import DEFAULT_ENFORCEMENT

    assert {m.enforcement for m in models().values()} == {DEFAULT_ENFORCEMENT}


def test_unknown_enforcement_is_refused(capsys):
    with pytest.raises(SystemExit):
        _serve_parser().parse_args(["--enforcement", "fixed"])
    assert "--enforcement" in capsys.readouterr().err
