"""The planner's inputs: the workload (JSONL), durations (``10m``) and rates (``20/s``).

Workload (JSONL, one request per line, in any order)::

    {"t": 0.0, "prompt_tokens": 1200, "max_tokens": 256}
    {"t": 0.4, "prompt_tokens": 80, "max_tokens": 64, "output_tokens": 20}

``t`` is when the app sends it (seconds from the start), ``prompt_tokens`` the size of the
user message, ``max_tokens`` the output cap sent with the call, ``output_tokens`` (optional)
how long the answer is; without it the answer is drawn between a quarter of ``max_tokens``
and all of it. Blank lines are skipped.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from llm_routing.cli._usage import did_you_mean

__all__ = [
    "Arrival",
    "parse_duration",
    "parse_rate",
    "parse_workload",
    "rate_workload",
    "read_workload",
]

_RATE_SIZES = 32  # distinct prompt sizes of a --rate workload (prompts are cached per size)
_WORKLOAD_KEYS = ("t", "prompt_tokens", "max_tokens", "output_tokens")

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86_400.0,
    "day": 86_400.0,
    "days": 86_400.0,
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)", re.IGNORECASE)
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(?:/\s*([a-z]+)|(rps|rpm|rph))?\s*", re.IGNORECASE)
_RATE_SUFFIX = {"rps": "s", "rpm": "min", "rph": "h"}
_EXAMPLE = '{"t": 0.5, "prompt_tokens": 800, "max_tokens": 256}'


def parse_duration(text: str) -> float:
    """Seconds in ``"10m"``, ``"90s"``, ``"1h30m"``, ``"2.5min"`` or a bare ``"600"`` (seconds).

    Raises ``ValueError`` naming the text and the accepted forms.
    """
    if not isinstance(text, str):
        raise TypeError(f"duration must be a string such as '10m', got {type(text).__name__}")
    hint = "write it like 10m, 90s, 1h30m or 600 (seconds)"
    pos, total, parts = 0, 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        number, unit = match.group(1), match.group(2).lower()
        if unit and unit not in _DURATION_UNITS:
            raise ValueError(f"duration {text!r}: unknown unit {unit!r}; {hint}")
        if not unit and (parts or match.end() != len(text.rstrip())):
            raise ValueError(f"duration {text!r}: a number without a unit must stand alone; {hint}")
        total += float(number) * _DURATION_UNITS[unit or "s"]
        pos, parts = match.end(), parts + 1
    if not parts or text[pos:].strip():
        raise ValueError(f"duration {text!r} is not a duration; {hint}")
    if not 0 < total < math.inf:
        raise ValueError(f"duration {text!r} must be longer than zero; {hint}")
    return total


def parse_rate(text: str) -> float:
    """Requests per second in ``"20/s"``, ``"600/min"``, ``"1000/h"``, ``"5rps"`` or ``"20"``.

    Raises ``ValueError`` naming the text and the accepted forms.
    """
    if not isinstance(text, str):
        raise TypeError(f"rate must be a string such as '20/s', got {type(text).__name__}")
    hint = "write it like 20/s, 600/min, 1000/h or 20 (per second)"
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(f"rate {text!r} is not a rate; {hint}")
    unit = (match.group(2) or _RATE_SUFFIX.get((match.group(3) or "").lower(), "s")).lower()
    if unit not in _DURATION_UNITS or unit == "ms":
        raise ValueError(f"rate {text!r}: unknown unit {unit!r}; {hint}")
    rate = float(match.group(1)) / _DURATION_UNITS[unit]
    if not rate > 0:
        raise ValueError(f"rate {text!r} must be more than zero requests; {hint}")
    return rate


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request of a workload: when it is sent, how big it is, how long its answer is."""

    t: float
    prompt_tokens: int
    max_tokens: int
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.t, bool) or not isinstance(self.t, int | float):
            raise TypeError(f"Arrival.t must be a number of seconds, got {self.t!r}")
        if not 0 <= self.t < math.inf:
            raise ValueError(f"Arrival.t must be a finite number of seconds >= 0, got {self.t!r}")
        for name, low in (("prompt_tokens", 1), ("max_tokens", 1), ("output_tokens", 0)):
            value = getattr(self, name)
            if value is None and name == "output_tokens":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Arrival.{name} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"Arrival.{name} must be >= {low}, got {value}")
        if self.output_tokens is not None and self.output_tokens > self.max_tokens:
            raise ValueError(
                f"Arrival.output_tokens ({self.output_tokens}) cannot exceed max_tokens "
                f"({self.max_tokens}): the provider stops at max_tokens"
            )


def parse_workload(lines: Iterable[str], *, source: str = "workload") -> list[Arrival]:
    """The arrivals of a JSONL workload (format: module docstring), sorted by ``t``.

    Every problem raises ``ValueError`` naming ``source``, the line number and the field.
    """
    arrivals: list[Arrival] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg}); expected {_EXAMPLE}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object such as {_EXAMPLE}, got {line!r}")
        for key in row:
            if key not in _WORKLOAD_KEYS:
                hint = did_you_mean(key, _WORKLOAD_KEYS, "known")
                raise ValueError(f"{where}: unknown field {key!r}; {hint}")
        for key in ("t", "prompt_tokens", "max_tokens"):
            if key not in row:
                raise ValueError(f"{where}: missing field {key!r}; expected {_EXAMPLE}")
        try:
            arrivals.append(
                Arrival(
                    t=row["t"],
                    prompt_tokens=row["prompt_tokens"],
                    max_tokens=row["max_tokens"],
                    output_tokens=row.get("output_tokens"),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {str(exc).replace('Arrival.', '')}") from None
    if not arrivals:
        raise ValueError(f"{source}: no requests (expected one JSON object per line: {_EXAMPLE})")
    arrivals.sort(key=lambda a: a.t)
    return arrivals


def read_workload(path: str | os.PathLike[str]) -> list[Arrival]:
    """`parse_workload` of a file; a missing or unreadable file is a clear ``ValueError``."""
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_workload(fh, source=str(path))
    except FileNotFoundError:
        raise ValueError(f"workload file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read workload file {str(path)!r}: {exc}") from None


def rate_workload(
    rate: float,
    duration_s: float,
    *,
    prompt_tokens: int = 500,
    max_tokens: int = 256,
    seed: int = 0,
) -> list[Arrival]:
    """Poisson arrivals at ``rate`` per second for ``duration_s`` seconds.

    Prompt sizes spread evenly over 50-150 % of ``prompt_tokens`` (a few dozen distinct sizes);
    every request asks for ``max_tokens``.
    """
    for name, value in (("rate", rate), ("duration_s", duration_s)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"rate_workload({name}=…) must be a number, got {value!r}")
        if not 0 < value < math.inf:
            raise ValueError(f"rate_workload({name}=…) must be a finite number > 0, got {value!r}")
    for name, count in (("prompt_tokens", prompt_tokens), ("max_tokens", max_tokens)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"rate_workload({name}=…) must be an integer >= 1, got {count!r}")
    rng = random.Random(seed)
    low, high = max(1, prompt_tokens // 2), max(1, prompt_tokens * 3 // 2)
    sizes = sorted({round(low + (high - low) * i / (_RATE_SIZES - 1)) for i in range(_RATE_SIZES)})
    arrivals: list[Arrival] = []
    t = rng.expovariate(rate)
    while t < duration_s:
        arrivals.append(Arrival(t, rng.choice(sizes), max_tokens))
        t += rng.expovariate(rate)
    return arrivals
