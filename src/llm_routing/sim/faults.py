"""Fault plans for the simulator: which requests fail, and how.

A plan is a plain value (probabilities and a schedule); drawing from it with a seeded generator
is ``FaultPlan.draw``. Producing the failure on the wire (bodies, hangs, resets) is ``sim.app``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

__all__ = ["FAULT_KINDS", "FaultKind", "FaultPlan"]

FaultKind = Literal[
    "429",
    "quota",
    "spend_limit",
    "daily_quota",
    "500",
    "502",
    "503",
    "529",
    "timeout",
    "reset",
    "drop",
    "malformed",
]

#: ``429``: OpenAI's ``rate_limit_exceeded`` although the windows had room (another tenant, a
#: provider-side limit we do not know), with ``retry-after`` when the plan sets ``retry_after``.
#: ``quota``: 429 ``insufficient_quota``.
#: ``spend_limit``: Anthropic's spend-cap 429 (``error.type`` ``rate_limit_error``,
#: ``error.details.error_code`` ``enforced_spend_limit_reached``) with NO ``retry-after``: the
#: organisation's monthly cap is reached and waiting cannot help before the next month.
#: ``daily_quota``: a Gemini-shaped 429 ``RESOURCE_EXHAUSTED`` whose quota id says ``PerDay``,
#: no ``retry-after``: the day's quota is spent until the day resets.
#: ``500``/``502``/``503``: OpenAI-shaped server errors.
#: ``529``: Anthropic's "overloaded" body.
#: ``timeout``: accept the request and never answer. ``reset``: close the connection without a
#: response. ``drop``: start the response, then cut the connection after ``drop_after`` chunks.
#: ``malformed``: a 200 whose JSON (or the SSE frame after ``drop_after``, ending the stream) is
#: cut short.
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)


def _kind(value: object, where: str) -> FaultKind:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    for kind in FAULT_KINDS:
        if text == kind:
            return kind
    raise ValueError(f"{where}: unknown fault kind {value!r}; use one of {', '.join(FAULT_KINDS)}")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which of a model's requests fail.

    ``schedule`` maps a 1-based request number to a fault: ``{3: "503", 5: "reset"}`` fails the
    3rd and 5th request the model admits (counted from when the plan was set, or from
    ``reset()``). ``rates`` gives each kind a probability per admitted request (drawn with the
    model's seeded generator; the probabilities must sum to at most 1). The schedule wins when
    both apply. Faults hit requests that passed validation, the context check and the rate
    limiter, so a faulted request has consumed capacity, as a real failed call does.

    ``drop_after`` is how many chunks a ``drop`` delivers before cutting the connection.
    ``hang`` bounds a ``timeout``: ``None`` hangs until the client gives up or the server stops.
    ``retry_after`` is the ``retry-after`` (seconds) a ``429`` fault sends; ``None`` sends none.
    Kinds may be given as ints for the status codes (``{3: 503}``).
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    schedule: Mapping[int, str] = field(default_factory=dict)
    drop_after: int = 2
    hang: float | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rates, Mapping):
            raise TypeError(
                f"FaultPlan.rates must be a mapping kind -> probability, got {self.rates!r}"
            )
        if not isinstance(self.schedule, Mapping):
            raise TypeError(
                "FaultPlan.schedule must be a mapping request number -> kind, "
                f"got {self.schedule!r}"
            )
        rates: dict[str, float] = {}
        for key, prob in self.rates.items():
            kind = _kind(key, "FaultPlan.rates")
            if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 <= prob <= 1:
                raise ValueError(
                    f"FaultPlan.rates[{kind!r}] must be a probability in [0, 1], got {prob!r}"
                )
            rates[kind] = float(prob)
        if sum(rates.values()) > 1 + 1e-9:
            raise ValueError(
                f"FaultPlan.rates must sum to at most 1 (each request fails at most once), "
                f"got {sum(rates.values()):.3f}"
            )
        schedule: dict[int, str] = {}
        for number, kind_value in self.schedule.items():
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ValueError(
                    f"FaultPlan.schedule keys are 1-based request numbers, got {number!r}"
                )
            schedule[number] = _kind(kind_value, f"FaultPlan.schedule[{number}]")
        drop = self.drop_after
        if isinstance(drop, bool) or not isinstance(drop, int) or drop < 0:
            raise ValueError(f"FaultPlan.drop_after must be an int >= 0, got {self.drop_after!r}")
        if self.hang is not None and (
            isinstance(self.hang, bool) or not isinstance(self.hang, int | float) or self.hang < 0
        ):
            raise ValueError(f"FaultPlan.hang must be seconds >= 0 or None, got {self.hang!r}")
        if self.retry_after is not None and (
            isinstance(self.retry_after, bool)
            or not isinstance(self.retry_after, int | float)
            or not 0 <= self.retry_after < math.inf
        ):
            raise ValueError(
                f"FaultPlan.retry_after must be seconds >= 0 or None, got {self.retry_after!r}"
            )
        object.__setattr__(self, "rates", MappingProxyType(rates))
        object.__setattr__(self, "schedule", MappingProxyType(schedule))

    def __reduce__(self) -> tuple[Any, ...]:
        # The read-only mapping views do not pickle; plain dicts do, and __post_init__ wraps
        # them again. A model with a plan can then go to a simulator in a child process.
        return (
            type(self),
            (dict(self.rates), dict(self.schedule), self.drop_after, self.hang, self.retry_after),
        )

    @classmethod
    def at(
        cls,
        schedule: Mapping[int, str | int],
        *,
        drop_after: int = 2,
        hang: float | None = None,
        retry_after: float | None = None,
    ) -> FaultPlan:
        """A plan that fails exactly the listed request numbers: ``FaultPlan.at({3: 503})``."""
        return cls(
            schedule={n: str(k) for n, k in schedule.items()},
            drop_after=drop_after,
            hang=hang,
            retry_after=retry_after,
        )

    @classmethod
    def always(
        cls,
        kind: str | int,
        *,
        drop_after: int = 2,
        hang: float | None = None,
        retry_after: float | None = None,
    ) -> FaultPlan:
        """Every request fails with ``kind``."""
        return cls(
            rates={str(kind): 1.0}, drop_after=drop_after, hang=hang, retry_after=retry_after
        )

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """Parse the CLI form: ``"503:0.1,timeout:0.05"`` (rates) and ``"500@3,reset@5"``.

        Items are comma-separated; ``kind:p`` sets a probability, ``kind@n`` fails request ``n``.
        """
        rates: dict[str, float] = {}
        schedule: dict[int, str] = {}
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                continue
            if "@" in item:
                kind, _, number = item.partition("@")
                if not number.strip().isdigit():
                    raise ValueError(f"fault {item!r}: expected kind@N with N a request number")
                schedule[int(number)] = kind.strip()
            elif ":" in item:
                kind, _, prob = item.partition(":")
                try:
                    rates[kind.strip()] = float(prob)
                except ValueError:
                    raise ValueError(
                        f"fault {item!r}: expected kind:P with P a probability"
                    ) from None
            else:
                raise ValueError(
                    f"fault {item!r}: expected kind:P (probability) or kind@N (request number)"
                )
        return cls(rates=rates, schedule=schedule)

    @property
    def is_empty(self) -> bool:
        """True when the plan never injects anything."""
        return not self.schedule and not any(self.rates.values())

    def draw(self, number: int, rng: random.Random) -> FaultKind | None:
        """The fault for the ``number``-th admitted request (1-based), or ``None``.

        Always consumes exactly one random number when ``rates`` is non-empty, so the sequence
        of draws does not depend on the schedule.
        """
        roll = rng.random() if self.rates else math.inf
        scheduled = self.schedule.get(number)
        if scheduled is not None:
            return cast(FaultKind, scheduled)
        cumulative = 0.0
        for kind, prob in self.rates.items():
            cumulative += prob
            if roll < cumulative:
                return cast(FaultKind, kind)
        return None
