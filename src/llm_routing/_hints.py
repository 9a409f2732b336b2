"""``did you mean …?``: the one wording of a near-miss hint, for the product and the cli alike.

A misspelt key or name should be answered with the closest known one, and otherwise with the
list of what is known; written by hand at each check, the cutoff and the wording drifted.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["close_match", "did_you_mean"]


def close_match(word: object, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The known string closest to ``word`` (``None`` when nothing is at least ``cutoff`` alike)."""
    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: object, known: Iterable[str], listing: str = "known keys") -> str:
    """``did you mean 'rpm'?`` for a near miss, else ``known keys: a, b`` (named by ``listing``)."""
    known = list(known)
    close = close_match(word, known)
    return f"did you mean {close!r}?" if close else f"{listing}: {', '.join(known)}"
