r"""Deciding "at most N tokens?" without tokenising what cannot matter.

Owns the proven bounds and the early-exit chunked count; which encoding or estimate applies is
decided in ``counting``. Every answer here is exact or a proven bound, never a guess.

Why a cut is safe. tiktoken splits text with a regex into pieces and BPE-encodes each piece on
its own, so ``count(a + b) == count(a) + count(b)`` whenever the split point is a piece
boundary that neither half's regex matching can see past. Both shipped patterns (o200k_base and
cl100k_base) end a piece, without lookahead that differs between "end of text" and the next
character, at:

* ``\n`` followed by a letter: no alternative that can contain ``\n`` (``\s*[\r\n]+``,
  ``\s++$``, `` ?[^\s\p{L}\p{N}]+[\r\n/]*``, ``\s+``) can consume a letter, and a word
  piece's optional prefix excludes ``\r\n``;
* letter, separator, letter (separator one of `` ,.，。``): the word piece before stops at the
  separator (not a letter, mark or apostrophe, so no contraction suffix either), and the
  separator starts the next word piece as its optional prefix character.

"Letter" here is only ASCII letters, CJK unified ideographs and Hangul syllables, whose
Unicode categories are stable, so Python's and the Rust regex engine's tables agree. A
hypothesis property in tests/property/test_tokens_props.py checks the additivity on random text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import tiktoken

__all__ = ["PACING", "count_upto", "encode_count", "paced", "safe_cut", "utf8_len"]

_LETTER = "A-Za-z\u4e00-\u9fff\uac00-\ud7a3"
_CUT = re.compile(rf"\n(?=[{_LETTER}])|(?<=[{_LETTER}])(?=[ ,.\u3002\uff0c][{_LETTER}])")

# Chunks below this size cost more in per-call overhead than an early exit can save.
_MIN_CHUNK_CHARS = 64 * 1024
_CUT_WINDOW_CHARS = 4096


# tiktoken's pattern matches a run of horizontal whitespace with a backtracking regex whose
# stack overflows (a Rust panic, ``pyo3_runtime.PanicException``, which is not an
# ``Exception``) somewhere between 600,000 and 1,000,000 characters. Longer runs are counted in
# parts of ``_RUN_PART`` characters. A run of spaces stays exact (it encodes in blocks of the
# longest all-space token, which divides ``_RUN_PART``); other whitespace (tabs, U+3000,
# U+00A0) over-counts by at most two tokens per part, the safe direction for a window check
# (tests/unit/test_tokens_whitespace_runs.py checks both).
_RUN_PART = 65_536
# A paced count's chunk: tokenised in well under a millisecond.
_PACED_CHUNK_CHARS = 32_768
_LONG_RUN = re.compile(rf"[^\S\r\n]{{{_RUN_PART + 1},}}")


def encode_count(encoding: tiktoken.Encoding, text: str) -> int:
    """``len(encoding.encode_ordinary(text))``, safe for any length of whitespace run.

    Paced (see `paced`), a long text is counted a safe-cut chunk at a time with the GIL handed
    over in between: tiktoken holds it while it builds the token list, about 5 ms per MB.
    """
    if len(text) > _PACED_CHUNK_CHARS and (pace := PACING.get()) is not None:
        total = 0
        pos = 0
        while pos < len(text):
            end = safe_cut(text, pos + _PACED_CHUNK_CHARS)
            total += _encode_count(encoding, text[pos:end])  # exact: counts add at safe cuts
            pos = end
            pace()
        return total
    return _encode_count(encoding, text)


def _encode_count(encoding: tiktoken.Encoding, text: str) -> int:
    if len(text) <= _RUN_PART or not _may_hold_long_run(text):
        return len(encoding.encode_ordinary(text))
    total = 0
    pos = 0
    for run in _LONG_RUN.finditer(text):
        start, end = run.span()
        # The text before a maximal run ends a piece (it ends in a newline or a non-space), and
        # the whole parts of the run are pieces of their own; the last part stays with what
        # follows it, so its final space still joins the next word as it would unsplit.
        if start > pos:
            total += len(encoding.encode_ordinary(text[pos:start]))
        last = end - 1 - (end - 1 - start) % _RUN_PART
        for part in range(start, last, _RUN_PART):
            total += len(encoding.encode_ordinary(text[part : part + _RUN_PART]))
        pos = last
    return total + len(encoding.encode_ordinary(text[pos:]))


def _may_hold_long_run(text: str) -> bool:
    """Whether ``text`` may hold a run of more than ``_RUN_PART`` horizontal whitespace.

    Such a run covers two consecutive multiples of ``_RUN_PART // 2`` (it is longer than two
    steps), so a text where no two such neighbouring positions are both horizontal
    whitespace holds none. Reading one character in 32,768 rules out nearly every text at
    once; ``_LONG_RUN`` reads every character (about 10 ms per MB, holding the GIL, which
    would stall an event loop whose count runs in a worker thread).
    """
    step = _RUN_PART // 2
    previous = False
    for position in range(0, len(text), step):
        char = text[position]
        here = char.isspace() and char not in "\r\n"
        if here and previous:
            return True
        previous = here
    return False


def utf8_len(text: str) -> int:
    """UTF-8 length as tiktoken sees it (a lone surrogate becomes U+FFFD, 3 bytes)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def safe_cut(text: str, start: int) -> int:
    """The first safe cut at or after ``start`` (see module docstring), else ``len(text)``."""
    if start >= len(text):
        return len(text)
    match = _CUT.search(text, start, start + _CUT_WINDOW_CHARS) or _CUT.search(text, start)
    if match is None:
        return len(text)
    return match.end()


def count_upto(
    encoding: tiktoken.Encoding, longest_token: int, text: str, limit: int, size: int | None = None
) -> int:
    """The exact token count when it is ``<= limit``; otherwise some number in (limit, exact].

    ``longest_token`` is the encoding's longest token in bytes; ``size`` the text's UTF-8 length
    if the caller has it. Order of work: a token is at least one byte, so ``size <= limit``
    means the exact count is cheap and certainly within the limit; ``size / longest_token >
    limit`` proves "over" with no encoding; otherwise count chunk by chunk at safe cuts and stop
    as soon as the running total passes the limit.
    """
    if not text:
        return 0
    chars = len(text)
    if size is None and chars <= limit:
        size = utf8_len(text)
    if size is not None and size <= limit:
        return encode_count(encoding, text)
    # Here the UTF-8 size is > limit. Measuring it (about 1 ms per MB) only pays when it can
    # prove "over" where the character count (a lower bound on the size) cannot.
    lower = -(-chars // longest_token)
    if size is None and lower <= limit < -(-4 * chars // longest_token):
        size = utf8_len(text)
    if size is not None:
        lower = -(-size // longest_token)
    if lower > limit:
        return lower
    total = 0
    pos = 0
    end_of_text = len(text)
    chars_per_token = 2.0
    while pos < end_of_text:
        want = max(_MIN_CHUNK_CHARS, int((limit - total + 1) * chars_per_token * 1.1))
        end = safe_cut(text, pos + want)
        chunk_tokens = encode_count(encoding, text[pos:end])
        if chunk_tokens:
            chars_per_token = (end - pos) / chunk_tokens
        total += chunk_tokens
        pos = end
        if total > limit:
            return total
    return total


PACING: ContextVar[Callable[[], None] | None] = ContextVar("llm_routing_pacing", default=None)
"""Called between messages by long counting loops when set (see `paced`)."""


class _Pacer:
    """Hands the GIL to other threads whenever ``interval`` seconds of work have passed.

    A thread that counts in pure Python keeps the GIL until the interpreter forces a switch
    (``sys.getswitchinterval()``, 5 ms by default), so an event loop in another thread wakes
    that late. ``time.sleep(0)`` releases the GIL at once; its cost (tens of microseconds)
    is paid at most once per ``interval``.
    """

    __slots__ = ("_last", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = time.perf_counter()

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self._last >= self.interval:
            time.sleep(0)
            self._last = time.perf_counter()


@contextmanager
def paced(interval: float = 0.0005) -> Iterator[Callable[[], None]]:
    """Let counting loops run in this context yield the GIL every ``interval`` seconds.

    For counting in a worker thread on behalf of an event loop; a synchronous caller has no
    other thread to wait for, so it does not pay for pacing.
    """
    pacer = _Pacer(interval)
    token = PACING.set(pacer)
    try:
        yield pacer
    finally:
        PACING.reset(token)
