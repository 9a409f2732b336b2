"""``llm-routing models``: table, filters, JSON and usage errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_routing import ModelSpec, Price, default_catalog
from llm_routing.cli import build_parser, main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_table_lists_every_provider(capsys):
    code, out, _ = _run(capsys, "models")
    assert code == 0
    for key in (
        "openai:gpt-4o-mini",
        "anthropic:claude-haiku-4-5",
        "google:gemini-2.5-flash",
        "mistral:mistral-small",
    ):
        assert key in out


def test_models_plain_table_shows_prices_limits_and_unknown_dash(capsys):
    code, out, _ = _run(capsys, "models", "--plain", "--provider", "openai")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("openai:gpt-4o-mini "))
    assert "$0.15" in line and "$0.075" in line and "$0.60" in line
    assert "500" in line and "200k" in line and "10,000" in line
    assert "anthropic:" not in out
    gpt4 = next(x for x in out.splitlines() if x.startswith("openai:gpt-4 "))
    assert "—" in gpt4  # no cached-input price


def test_models_anthropic_shows_input_output_token_limits(capsys):
    _, out, _ = _run(capsys, "models", "--plain", "--provider", "anthropic", "--tier", "tier2")
    line = next(x for x in out.splitlines() if x.startswith("anthropic:claude-haiku-4-5 "))
    assert "450k/90k" in line


def test_models_provider_accepts_langchain_prefix(capsys):
    code, out, _ = _run(capsys, "models", "--plain", "--provider", "google_genai")
    assert code == 0 and "google:gemini-2.5-pro" in out


def test_models_json_is_parseable_with_string_prices(capsys):
    code, out, _ = _run(capsys, "models", "--json", "--provider", "openai", "--tier", "tier1")
    assert code == 0
    rows = json.loads(out)
    mini = next(r for r in rows if r["key"] == "openai:gpt-4o-mini")
    assert mini["price"]["cached_input"] == "0.075"
    assert mini["rate_limits"] == {"tier1": {"rpm": 500, "tpm": 200000, "rpd": 10000}}


def test_models_json_without_tier_has_all_tiers(capsys):
    _, out, _ = _run(capsys, "models", "--json", "--provider", "openai")
    mini = next(r for r in json.loads(out) if r["key"] == "openai:gpt-4o-mini")
    assert set(mini["rate_limits"]) == {"free", "tier1", "tier2", "tier3", "tier4", "tier5"}


def test_unknown_provider_exits_2_listing_valid_ones(capsys):
    code, out, err = _run(capsys, "models", "--provider", "nope")
    assert code == 2 and out == ""
    assert "unknown provider 'nope'" in err
    assert "anthropic, google, mistral, openai" in err


def test_unknown_tier_exits_2_listing_valid_ones(capsys):
    code, _, err = _run(capsys, "models", "--tier", "platinum")
    assert code == 2
    assert "unknown tier 'platinum'" in err and "tier1" in err


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_parser_uses_subcommands():
    args = build_parser().parse_args(["models", "--tier", "free"])
    assert args.command == "models" and args.tier == "free"


def test_module_runs_as_a_script():
    proc = subprocess.run(
        [sys.executable, "-m", "llm_routing.cli", "models", "--plain", "--provider", "mistral"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mistral:mistral-large" in proc.stdout


# --------------------------------------------------------------------------- --check FILE
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "litellm_sample.json"


def test_check_prints_each_drifted_field_with_our_date_and_source_and_exits_1(capsys):
    # The bundled sample has gpt-4o-mini at a 64,000 window and 8,000 output cap; ours is
    # OpenAI's 128,000 / 16,384. Its prices agree, and its dated alias agrees in full.
    code, out, _ = _run(capsys, "models", "--check", str(SAMPLE))
    assert code == 1
    assert "1 of 1 models compared differ" in out
    spec = default_catalog().get("openai:gpt-4o-mini")
    assert f"openai:gpt-4o-mini: ours as of {spec.as_of}, {spec.source}" in out
    lines = out.splitlines()
    window = next(x for x in lines if x.strip().startswith("context_window"))
    assert "128,000" in window and "64,000" in window
    cap = next(x for x in lines if x.strip().startswith("max_output_tokens"))
    assert "16,384" in cap and "8,000" in cap
    assert "price." not in out


def test_check_exits_0_when_every_compared_row_agrees(capsys, tmp_path):
    data = json.loads(SAMPLE.read_text())
    data["gpt-4o-mini"].update(max_input_tokens=128000, max_output_tokens=16384)
    agreeing = tmp_path / "prices.json"
    agreeing.write_text(json.dumps(data))
    code, out, _ = _run(capsys, "models", "--check", str(agreeing))
    assert code == 0
    assert "Every compared row agrees with the file." in out


def test_check_names_price_and_alias_drift_and_registered_rows(capsys, tmp_path, monkeypatch):
    data = {
        # mistral-small-latest moved on: a file from before the move has the old model's figures.
        "mistral/mistral-small-latest": {
            "litellm_provider": "mistral",
            "max_input_tokens": 131072,
            "input_cost_per_token": 1e-07,
            "output_cost_per_token": 3e-07,
            "mode": "chat",
        },
        "acme-drift-1": {
            "litellm_provider": "acme-drift",
            "max_input_tokens": 32000,
            "input_cost_per_token": 6e-07,
            "output_cost_per_token": 1.5e-06,
            "mode": "chat",
        },
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    catalog = default_catalog().copy()  # a registered row, without touching the shared one
    monkeypatch.setattr("llm_routing.cli.models.default_catalog", lambda: catalog)
    catalog.register(
        ModelSpec(
            provider="acme-drift",
            name="acme-drift-1",
            context_window=32000,
            price=Price(input=0.5, output=1.5),
            as_of="2026-01-02",
            source="https://acme.example/pricing",
        )
    )
    code, out, _ = _run(capsys, "models", "--check", str(path), "--json")
    assert code == 1
    report = json.loads(out)
    by_key = {d["key"]: d for d in report["drifts"]}
    small = by_key["mistral:mistral-small-2603"]
    assert small["matched"] == "mistral-small-latest"
    assert {f["field"]: (f["ours"], f["file"]) for f in small["fields"]} == {
        "context_window": (262144, 131072),
        "price.input": ("0.15", "0.1"),
        "price.output": ("0.6", "0.3"),
    }
    acme = by_key["acme-drift:acme-drift-1"]
    assert (acme["as_of"], acme["source"]) == ("2026-01-02", "https://acme.example/pricing")
    assert acme["fields"] == [{"field": "price.input", "ours": "0.5", "file": "0.6"}]


def test_check_of_a_missing_file_is_a_usage_error(capsys, tmp_path):
    code, _, err = _run(capsys, "models", "--check", str(tmp_path / "nope.json"))
    assert code == 2
    assert "--check FILE" in err and "nope.json" in err
