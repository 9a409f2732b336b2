"""``llm-routing models``: table, filters, JSON and usage errors."""

import json
import subprocess
import sys

import pytest

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
