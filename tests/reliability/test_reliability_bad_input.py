"""Bad input through a real router: a result or a documented error, nothing sent when refused.

Drives the engine in benchmarks/reliability/fuzz.py (strategies, harness and rules are there,
shared with ``python -m benchmarks.reliability``): three simulated models behind real
``ChatOpenAI`` clients over loopback HTTP, every entry point.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.reliability.fuzz import (
    ENTRY_POINTS,
    Harness,
    check_input,
    fuzz_settings,
    huge_strings,
    inputs,
)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with Harness() as started:
        yield started


@fuzz_settings(80)
@given(entry=st.sampled_from(ENTRY_POINTS), value=inputs(huge=False))
def test_generated_inputs_give_a_result_or_a_documented_error(harness, entry, value):
    outcome = check_input(harness, entry, value)
    assert outcome.ok, (outcome.value, outcome.label, outcome.problems)


# The fast ones: a 3.5 MB text only the 1M-window model takes, whitespace runs past tiktoken's
# regex stack, a lone surrogate at the end of 1.2 MB. (3 MB without a cut point and 9 MB of
# CJK take seconds per model to count; the report runs them.)
FAST_HUGE = [s for s in huge_strings() if s[0] in "wo \t"]


@pytest.mark.parametrize("entry", ["invoke", "astream", "batch"])
@pytest.mark.parametrize("text", FAST_HUGE, ids=["words", "spaces", "tabs", "surrogate"])
def test_multi_megabyte_strings_give_a_result_or_a_documented_error(harness, entry, text):
    outcome = check_input(harness, entry, text)
    assert outcome.ok, (outcome.value, outcome.label, outcome.problems)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_lone_surrogate_is_a_value_error_naming_the_message_before_any_request(harness, entry):
    outcome = check_input(harness, entry, [("user", "fine"), ("user", "bro\udfffken")])
    assert outcome.label == "ValueError"
    assert "message 1 of the input" in outcome.message
    assert "lone surrogate '\\udfff'" in outcome.message
    assert "encode('utf-8', 'replace')" in outcome.message
    assert outcome.ok and outcome.sent == 0


def test_split_surrogate_pair_names_the_fix_that_joins_it(harness):
    outcome = check_input(harness, "invoke", "emoji \ud83d\ude00 split")
    assert outcome.label == "ValueError"
    assert "surrogatepass" in outcome.message


def test_lone_surrogate_in_a_bound_stop_sequence_is_refused_before_any_request(harness):
    router = harness.router.bind(stop=["\ud800"])
    before = harness.counters()
    with pytest.raises(ValueError, match=r"kwargs\['stop'\]\[0\] contains a lone surrogate"):
        router.invoke("hello")
    assert harness.counters() == before


def test_graph_state_dict_is_a_type_error_saying_to_pass_its_messages(harness):
    outcome = check_input(harness, "invoke", {"messages": [("user", "hi")]})
    assert outcome.label == "TypeError"
    assert 'pass input["messages"]' in outcome.message
    assert outcome.ok and outcome.sent == 0


def test_unreadable_message_error_names_its_index(harness):
    outcome = check_input(harness, "invoke", [("user", "ok"), {"role": "user", "content": 5}])
    assert outcome.label == "TypeError"
    assert outcome.message.startswith("input message 1: could not read a message")
    assert "content is of type int" in outcome.message


def test_nul_bytes_and_odd_normalisation_are_sent_and_answered(harness):
    outcome = check_input(harness, "invoke", "a\x00b e\u0301 \ufeff\u202e")
    assert outcome.label == "result" and outcome.sent == 1
