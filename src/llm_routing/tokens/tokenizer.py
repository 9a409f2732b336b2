"""Which tokenizer a model counts with, and how that tokenizer counts a text.

Owns resolving a model (a name, a ``ModelSpec``, a chat model) to its tokenizer name and the
per-tokenizer ``_Counter``: the encoding underneath, the ``estimate:<family>`` calibration if
any, that family's message overheads and image rule, and a memo of text counts. Walking
messages into texts is ``messages``; totals, limits and bounds are ``counting``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import tiktoken

from llm_routing.catalog.spec import ModelSpec
from llm_routing.tokens import _fast
from llm_routing.tokens._encodings import ENCODING_NAMES, get_encoding, max_token_bytes
from llm_routing.tokens._images import image_tokens
from llm_routing.tokens.estimate import Calibration, count_digits, get_calibration

__all__ = ["tokenizer_for"]

_ACCEPTED_MODEL = (
    'a model name ("openai:gpt-4o-mini", "openai/gpt-4o-mini", "gpt-4o-mini"), a tokenizer '
    'name ("o200k_base", "cl100k_base", "estimate:<family>"), a ModelSpec, or a LangChain '
    "chat model"
)
_OPENAI_OVERHEAD = (3, 1, 3)
_OPENAI_UNKNOWN_IMAGE = 1445

# Texts up to this many characters have their count remembered (roles, names, a system prompt
# sent with every call, a few-shot example): a dict lookup costs a fraction of a tokeniser
# call, and on a short prompt the tokeniser is most of what a guarded call adds. The memo of one
# tokenizer holds at most this many characters, and is cleared whole when it would exceed them.
MEMO_TEXT_CHARS = 4096
_MEMO_CHARS = 1 << 20


@dataclass(frozen=True, slots=True)
class _Counter:
    """How one tokenizer counts: the encoding underneath, and the estimate if any."""

    encoding: tiktoken.Encoding
    longest_token: int
    calibration: Calibration | None
    # Counts of texts up to MEMO_TEXT_CHARS; a count is a pure function of the text, so a
    # remembered one is exact. ``memo_chars`` is the characters it holds (one per entry extra).
    memo: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    memo_chars: list[int] = field(default_factory=lambda: [0], compare=False, repr=False)

    @property
    def overheads(self) -> tuple[int, int, int]:
        cal = self.calibration
        if cal is None:
            return _OPENAI_OVERHEAD
        return cal.per_message, cal.per_name, cal.reply_priming

    def image(self, detail: str, size: tuple[int, int] | None) -> int:
        cal = self.calibration
        if cal is None:
            return image_tokens("openai", detail, size, _OPENAI_UNKNOWN_IMAGE)
        return image_tokens(cal.image_rule, detail, size, cal.image_unknown_tokens)

    def text(self, text: str) -> int:
        if len(text) > MEMO_TEXT_CHARS:
            return self._text(text)
        n = self.memo.get(text)
        if n is None:
            n = self._text(text)
            self.remember(text, n)
        return n

    def remember(self, text: str, n: int) -> None:
        """Keep ``n`` as the count of ``text`` (at most MEMO_TEXT_CHARS characters)."""
        # Not locked: dict operations are atomic, and a lost update of the character total
        # only moves the next clear a little.
        used = self.memo_chars[0] + len(text) + 1
        if used > _MEMO_CHARS:
            self.memo.clear()
            used = len(text) + 1
        self.memo[text] = n
        self.memo_chars[0] = used

    def _text(self, text: str) -> int:
        n = _fast.encode_count(self.encoding, text)
        if self.calibration is None:
            return n
        return self._estimate(n, text, _fast.utf8_len(text))

    def _estimate(self, n: int, text: str, size: int) -> int:
        cal = self.calibration
        assert cal is not None
        digits = count_digits(text) if cal.needs_digits else 0
        return cal.estimate(n, size, len(text), digits)

    def upper(self, text: str, size: int) -> int:
        """A bound >= ``self.text(text)`` from sizes alone (every token is >= 1 byte)."""
        cal = self.calibration
        if cal is None:
            return size
        return cal.estimate(size, size, len(text), len(text) if cal.needs_digits else 0)

    def text_upto(self, text: str, limit: int) -> int:
        """``self.text(text)`` when it is <= ``limit``, else some number in (limit, exact]."""
        size: int | None = None
        # upper() >= UTF-8 size >= characters, so a text with more characters than the limit
        # cannot be shown to fit from its size: skip measuring it.
        if len(text) <= limit:
            size = _fast.utf8_len(text)
            if self.upper(text, size) <= limit:
                return self.text(text)
        cal = self.calibration
        if cal is None:
            return _fast.count_upto(self.encoding, self.longest_token, text, limit, size)
        budget = cal.o200k_budget(limit)
        n = _fast.count_upto(self.encoding, self.longest_token, text, budget, size)
        if n > budget:
            # n is a lower bound on the o200k count here; estimate >= text_factor * n > limit.
            return -(-(n * cal.text_milli) // 1000)
        return self._estimate(n, text, _fast.utf8_len(text) if size is None else size)


@lru_cache(maxsize=64)
def _counter(tokenizer: str) -> _Counter:
    if tokenizer in ENCODING_NAMES:
        return _Counter(get_encoding(tokenizer), max_token_bytes(tokenizer), None)
    if tokenizer.startswith("estimate:"):
        calibration = get_calibration(tokenizer.removeprefix("estimate:"))
        return _Counter(get_encoding("o200k_base"), max_token_bytes("o200k_base"), calibration)
    raise ValueError(
        f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(ENCODING_NAMES)} "
        "or 'estimate:<family>'"
    )


@lru_cache(maxsize=1024)
def _tokenizer_for_name(name: str) -> str:
    if name in ENCODING_NAMES or name.startswith("estimate:"):
        return name
    from llm_routing.catalog.lookup import default_catalog

    return default_catalog().get(name).tokenizer


def tokenizer_for(model: Any) -> str:
    """The tokenizer name (``"o200k_base"``, ``"estimate:anthropic"``...) ``model`` counts with.

    The shipped catalogue is immutable, so name lookups are cached; register custom models by
    passing their ``ModelSpec``.
    """
    if isinstance(model, ModelSpec):
        return model.tokenizer
    if isinstance(model, str):
        return _tokenizer_for_name(model)
    if model is None or isinstance(model, int | float | bytes | Mapping | Sequence):
        raise TypeError(f"model must be {_ACCEPTED_MODEL}; got {type(model).__name__}")
    from llm_routing.catalog.lookup import default_catalog

    try:
        return default_catalog().for_model(model).tokenizer
    except TypeError as exc:
        raise TypeError(f"model must be {_ACCEPTED_MODEL}; {exc}") from exc
