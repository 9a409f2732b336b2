"""Remembered token counts: exact (the same number as tokenising), bounded in size."""

from __future__ import annotations

from llm_routing.tokens import count_tokens, get_encoding, tokenizer
from llm_routing.tokens.counting import count_tokens_fitting


def test_a_remembered_count_is_the_exact_count():
    counter = tokenizer._counter("o200k_base")
    enc = get_encoding("o200k_base")
    for text in ["You are terse.", "Say hello in one word.", "héllo wörld " * 40, ""]:
        first = counter.text(text)
        assert counter.memo.get(text) == first == len(enc.encode_ordinary(text))
        assert counter.text(text) == first


def test_long_texts_are_not_remembered():
    counter = tokenizer._counter("o200k_base")
    long = "x " * tokenizer.MEMO_TEXT_CHARS
    assert count_tokens(long, "o200k_base") == len(get_encoding("o200k_base").encode_ordinary(long))
    assert long not in counter.memo


def test_the_memo_is_cleared_when_it_would_exceed_its_budget(monkeypatch):
    counter = tokenizer._Counter(get_encoding("o200k_base"), 128, None)
    monkeypatch.setattr(tokenizer, "_MEMO_CHARS", 30)
    for i in range(10):
        counter.text(f"text number {i}")  # 13 characters + 1 each
    assert len(counter.memo) <= 2
    assert counter.memo_chars[0] <= 30


def test_fitting_uses_remembered_counts_and_still_refuses_what_does_not_fit():
    messages = [("system", "You are terse."), ("user", "Say hello in one word.")]
    exact = count_tokens(messages, "o200k_base")
    assert count_tokens_fitting(messages, "o200k_base", exact) == exact  # remembered now
    assert count_tokens_fitting(messages, "o200k_base", exact) == exact
    assert count_tokens_fitting(messages, "o200k_base", exact - 1) is None
