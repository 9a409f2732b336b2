"""Argument checks that name the argument: ``Owner(name=…) must be …, got …``.

Python takes ``True`` for ``1``, so every numeric argument needs "a number, but not a bool"
before its range; written by hand in each constructor, the test and the wording drifted apart.
These helpers keep both in one place. Each raises ``TypeError`` for the wrong type and
``ValueError`` for the wrong range, and its message starts with ``Owner(name=…)`` so the
caller sees which argument of which call is at fault (`from_config` maps ``build_router(…)``
messages back to keys of the file by that prefix). The predicates serve values that are not
arguments (a status code, a header, a profile field) where a bool must not pass as a number.
"""

from __future__ import annotations

import math
from typing import TypeGuard

__all__ = ["check_fraction", "check_int", "check_number", "check_seconds", "is_int", "is_number"]


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or a float, and not a bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: object) -> TypeGuard[int]:
    """An int, and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_number(owner: str, name: str, value: object, *, allow_none: bool = False) -> None:
    """A number >= 0 (``None`` too with ``allow_none``): ``must be a number`` / ``>= 0``."""
    if value is None and allow_none:
        return
    if not is_number(value):
        raise TypeError(f"{owner}({name}=…) must be a number, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{owner}({name}=…) must be >= 0, got {value!r}")


def check_seconds(
    owner: str,
    name: str,
    value: object,
    *,
    allow_none: bool = False,
    positive: bool = False,
    meaning: str = "",
) -> None:
    """A finite duration: >= 0, or > 0 with ``positive`` (``None`` too with ``allow_none``)."""
    if value is None and allow_none:
        return
    if not is_number(value):
        raise TypeError(f"{owner}({name}=…) must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(
            f"{owner}({name}=…) must be a finite number {bound}{_why(meaning)}, got {value!r}"
        )


def check_int(
    owner: str,
    name: str,
    value: object,
    *,
    allow_none: bool = False,
    minimum: int = 0,
    what: str = "an int",
    meaning: str = "",
) -> None:
    """An int >= ``minimum`` (``None`` too with ``allow_none``); ``what`` says what it counts."""
    if value is None and allow_none:
        return
    if not is_int(value):
        none = " or None" if allow_none else ""
        raise TypeError(f"{owner}({name}=…) must be {what}{none}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}({name}=…) must be >= {minimum}{_why(meaning)}, got {value!r}")


def check_fraction(owner: str, name: str, value: object, *, meaning: str = "") -> None:
    """A share in (0, 1]; ``meaning`` (e.g. ``"the share of the window to use"``) explains it."""
    if not is_number(value):
        raise TypeError(f"{owner}({name}=…) must be a number in (0, 1], got {value!r}")
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"{owner}({name}=…) must be in (0, 1]{_why(meaning)}, got {value!r}")


def _why(meaning: str) -> str:
    return f" ({meaning})" if meaning else ""
