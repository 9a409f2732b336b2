"""Whitespace runs longer than tiktoken's regex can take: counted, exact for spaces, never under."""

from __future__ import annotations

import pytest

from llm_routing import count_tokens
from llm_routing.tokens import get_encoding
from llm_routing.tokens._fast import encode_count


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("tail", ["", "word", "1", "!", "\nx", "x x "])
def test_long_space_run_is_counted_exactly(encoding, tail):
    enc = get_encoding(encoding)
    text = "ab " + " " * 200_000 + tail
    assert encode_count(enc, text) == len(enc.encode_ordinary(text))


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("run", ["\t", "\u3000", "\u00a0", " \t"])
def test_other_long_whitespace_runs_over_count_by_at_most_two_tokens_per_part(encoding, run):
    enc = get_encoding(encoding)
    text = "ab " + run * (200_000 // len(run)) + "end"
    exact = len(enc.encode_ordinary(text))
    parts = -(-200_000 // 65_536)
    assert exact <= encode_count(enc, text) <= exact + 2 * parts


def test_whitespace_run_past_the_regex_stack_is_counted_without_a_panic():
    # tiktoken itself panics (pyo3_runtime.PanicException) on this input.
    assert count_tokens(" " * 2_000_000 + "end", "gpt-4o-mini") > 0
