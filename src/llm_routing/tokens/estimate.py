"""Calibrated, upper-biased token estimates for models whose tokenizer we cannot run offline.

Owns the per-family factors (``data/calibration.json``) and the estimate formula; it does not
walk messages or resolve models (``counting`` does).

The estimate is derived from the exact o200k_base count ``n`` plus two cheap character
classes::

    estimate = ceil(text_factor * n + wide_factor * (utf8_bytes - chars) / 2
                    + digit_factor * ascii_digits)

``(utf8_bytes - chars) / 2`` is the number of 3-byte characters for CJK text (non-Latin scripts
are where tokenizers differ most), and ``ascii_digits`` pays for tokenizers that split numbers
into single digits where o200k groups three. Every factor is >= 0 and ``text_factor >= 1``,
so the estimate is never below the o200k count: ``estimate >= text_factor * n >= n``, and never
above ``text_factor * n + wide_factor * utf8_bytes / 2 + digit_factor * chars + 1``.

What is measured and what is assumed (details per family in the calibration file's ``basis``):
Mistral's factors are measured on tests/data/corpus against both tokenizers mistral-common
ships (Tekken and SentencePiece v7). Anthropic and Gemini ship no offline tokenizer; their
factors are assumptions built from published rules of thumb and third-party comparisons, set
high on purpose so that a context check errs towards "too big", never "fits" when it does not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "Calibration",
    "count_digits",
    "estimate_from_counts",
    "estimate_text_tokens",
    "get_calibration",
]

_DIGITS = "0123456789"


@dataclass(frozen=True, slots=True)
class Calibration:
    """One family's estimate factors and chat overheads (see module docstring).

    Factors are kept in thousandths so the estimate is computed in exact integer arithmetic:
    ``count_tokens`` and ``fits`` must agree to the token.
    """

    family: str
    text_milli: int
    wide_milli: int
    digit_milli: int
    per_message: int
    per_name: int
    reply_priming: int
    image_rule: str
    image_unknown_tokens: int
    basis: str

    @property
    def needs_digits(self) -> bool:
        """Whether the formula reads the digit count (skipping it saves ten string scans)."""
        return self.digit_milli > 0

    def estimate(self, o200k_tokens: int, utf8_bytes: int, chars: int, digits: int) -> int:
        """The formula of the module docstring, rounded up."""
        if o200k_tokens == 0 and utf8_bytes == 0:
            return 0
        numerator = (
            2 * self.text_milli * o200k_tokens
            + self.wide_milli * (utf8_bytes - chars)
            + 2 * self.digit_milli * digits
        )
        return -(-numerator // 2000)

    def o200k_budget(self, limit: int) -> int:
        """The largest o200k count whose estimate can still be <= ``limit``.

        An o200k count above it proves the estimate is above ``limit`` (the other terms are
        never negative), which is what lets ``fits`` stop counting early.
        """
        return (limit * 1000) // self.text_milli


def _milli(family: str, row: dict[str, Any], key: str) -> int:
    value = row[key]
    if not isinstance(value, int | float) or value < 0:
        raise ValueError(f"calibration.json: {family}.{key} must be a number >= 0, got {value!r}")
    return round(value * 1000)


@cache
def _calibrations() -> dict[str, Calibration]:
    text = resources.files("llm_routing.tokens").joinpath("data").joinpath("calibration.json")
    doc = json.loads(text.read_text("utf-8"))
    if doc.get("schema") != 1:
        raise ValueError(f"tokens/data/calibration.json has schema {doc.get('schema')!r}, not 1")
    result: dict[str, Calibration] = {}
    for family, row in doc["families"].items():
        cal = Calibration(
            family=family,
            text_milli=_milli(family, row, "text_factor"),
            wide_milli=_milli(family, row, "wide_factor"),
            digit_milli=_milli(family, row, "digit_factor"),
            per_message=int(row["per_message"]),
            per_name=int(row["per_name"]),
            reply_priming=int(row["reply_priming"]),
            image_rule=str(row["image_rule"]),
            image_unknown_tokens=int(row["image_unknown_tokens"]),
            basis=str(row["basis"]),
        )
        if cal.text_milli < 1000:
            raise ValueError(f"calibration.json: {family}.text_factor must be >= 1 (upper bias)")
        result[family] = cal
    return result


def get_calibration(family: str) -> Calibration:
    """The calibration of ``family`` (``anthropic``, ``gemini``, ``mistral``, ...)."""
    calibrations = _calibrations()
    try:
        return calibrations[family]
    except KeyError:
        raise ValueError(
            f"unknown tokenizer family {family!r} in 'estimate:{family}'; known families: "
            f"{', '.join(sorted(calibrations))}. Use 'estimate:generic' for a model whose "
            "tokenizer is unknown."
        ) from None


def count_digits(text: str) -> int:
    """ASCII digits in ``text`` (ten C-speed scans beat one Python-level regex)."""
    return sum(text.count(d) for d in _DIGITS)


def estimate_from_counts(family: str, o200k_tokens: int, text: str) -> int:
    """The estimate for ``text`` when its o200k count is already known."""
    cal = get_calibration(family)
    utf8_bytes = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    digits = count_digits(text) if cal.needs_digits else 0
    return cal.estimate(o200k_tokens, utf8_bytes, len(text), digits)


def estimate_text_tokens(text: str, family: str) -> int:
    """The calibrated estimate for plain ``text`` under ``family`` (no message overhead)."""
    from llm_routing.tokens._encodings import get_encoding
    from llm_routing.tokens._fast import encode_count

    if not isinstance(text, str):
        raise TypeError(f"estimate_text_tokens(text=...) takes a str, got {type(text).__name__}")
    n = encode_count(get_encoding("o200k_base"), text)
    return estimate_from_counts(family, n, text)
