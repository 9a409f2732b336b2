"""Config mistakes: every kind in a file or mapping names its dotted key; odd values name the argument.

The table of mistakes and the rules live in benchmarks/reliability/fuzz.py, shared with the
report. No test sends a request: models point at a closed loopback port.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.reliability.fuzz import (
    CONFIG_MISTAKES,
    CONSTRUCTORS,
    check_config_value,
    check_missing_file,
    check_mistake,
    fuzz_settings,
    odd_values,
)


@pytest.mark.parametrize("mistake", CONFIG_MISTAKES, ids=[m.name for m in CONFIG_MISTAKES])
def test_config_mistake_is_an_error_naming_the_dotted_key(mistake, tmp_path):
    outcome = check_mistake(mistake, str(tmp_path))
    assert outcome.problems == [], outcome.message


def test_missing_config_file_is_file_not_found_naming_the_path(tmp_path):
    outcome = check_missing_file(str(tmp_path))
    assert outcome.problems == [], outcome.message


def test_toml_syntax_error_gives_line_and_column(tmp_path):
    mistake = next(m for m in CONFIG_MISTAKES if m.name == "TOML syntax error")
    outcome = check_mistake(mistake, str(tmp_path))
    assert "(at line 3, column" in outcome.message


PAIRS = [(target, arg) for target, (_, args) in CONSTRUCTORS.items() for arg in args]


@fuzz_settings(100)
@given(pair=st.sampled_from(PAIRS), value=odd_values())
def test_odd_constructor_value_is_accepted_or_an_error_naming_the_argument(pair, value):
    outcome = check_config_value(*pair, value)
    assert outcome.problems == [], (outcome.value, outcome.message)


@pytest.mark.parametrize(
    ("target", "argument", "value"),
    [
        ("RateScheduler", "rpd_reset", "weekly"),
        ("RateScheduler", "token_headroom", float("nan")),
        ("build_router", "max_wait", float("nan")),
        ("build_router", "budget_usd", float("inf")),
        ("CostTracker", "warn_at", float("nan")),
        ("Budget", "limit_usd", -1),
        ("ContextGuard", "safety", float("nan")),
    ],
)
def test_nan_negative_and_unknown_option_values_are_refused_by_name(target, argument, value):
    outcome = check_config_value(target, argument, value)
    assert outcome.label in ("ValueError", "TypeError")
    assert outcome.problems == [], outcome.message


@pytest.mark.parametrize("argument", ["fallbacks", "large_context"])
def test_unbuildable_model_name_error_names_its_list_position(argument):
    outcome = check_config_value("build_router", argument, ["1"])
    assert f"{argument}[0]" in outcome.message
