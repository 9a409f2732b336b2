"""The parts of the simulator's limit windows: the sliding log, the refilled bucket, a window.

Pure and exact (``Fraction``), no clock of their own: ``sim.limiter.ProviderLimiter`` asks each
part when a request fits and records it. The enforcement modes they make up are documented in
``sim.limiter``; the value types a decision reports (``Violation``, ``WindowState``) live here
because the parts build them, and are re-exported there.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from llm_routing.catalog.enforcement import EnforcementMode

__all__ = [
    "DAY",
    "MINUTE",
    "Cause",
    "LimitKind",
    "Unit",
    "Violation",
    "Window",
    "WindowState",
    "per_second_share",
]

MINUTE = 60.0
DAY = 86_400.0

LimitKind = Literal["requests", "tokens"]
#: Why a request was refused: a per-minute window (log or bucket), the per-second share of a
#: quantized limit, or a day window.
Cause = Literal["minute", "per_second", "day"]
OutputAt = Literal["admission", "completion"]
Unit = Literal["requests", "tokens", "input", "output"]

# name -> (kind reported in 429 bodies, what the window counts, human label, period)
_WINDOWS: dict[str, tuple[LimitKind, Unit, str, float]] = {
    "rpm": ("requests", "requests", "requests per min (RPM)", MINUTE),
    "tpm": ("tokens", "tokens", "tokens per min (TPM)", MINUTE),
    "itpm": ("tokens", "input", "input tokens per min (ITPM)", MINUTE),
    "otpm": ("tokens", "output", "output tokens per min (OTPM)", MINUTE),
    "rpd": ("requests", "requests", "requests per day (RPD)", DAY),
    "tpd": ("tokens", "tokens", "tokens per day (TPD)", DAY),
}


def per_second_share(limit: int) -> tuple[Fraction, Fraction]:
    """The per-second share of a per-minute ``limit`` under ``quantized``: (rate, capacity).

    Exact: ``rate = limit / 60`` per second, ``capacity = max(1, rate)``.

    Example:
        >>> per_second_share(600)
        (Fraction(10, 1), Fraction(10, 1))
        >>> per_second_share(30)
        (Fraction(1, 2), Fraction(1, 1))
    """
    rate = Fraction(limit, 60)
    return rate, max(Fraction(1), rate)


@dataclass(frozen=True, slots=True)
class Violation:
    """One window a request does not fit in, with the numbers a 429 message quotes.

    ``limit`` is the window's published (per-minute or per-day) figure; ``used`` is what the
    refusing part holds (for a per-second share, what is used of that share); ``cause`` says
    which part refused.
    """

    window: str
    kind: LimitKind
    label: str
    limit: int
    used: int
    requested: int
    retry_at: float
    cause: Cause = "minute"


@dataclass(frozen=True, slots=True)
class WindowState:
    """What the ``x-ratelimit-*`` headers report for one window after a decision.

    ``remaining`` is how many units would be admitted right now (the least room of the window's
    parts: the minute log, the bucket, the per-second share); ``reset_after`` is the time until
    the window is back to its initial state (every part full again).
    """

    limit: int
    remaining: int
    reset_after: float


def _up(value: Fraction) -> float:
    """The smallest float >= ``value`` (so a retry at that float is never early)."""
    result = float(value)
    if Fraction(result) < value:
        result = math.nextafter(result, math.inf)
    return result


class _Log:
    """A sliding log over ``period`` seconds (may hold more than ``limit`` after charges)."""

    __slots__ = ("cause", "entries", "limit", "period", "total")

    def __init__(self, limit: int, period: float, cause: Cause) -> None:
        self.limit = limit
        self.period = period
        self.cause: Cause = cause
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def expire(self, now: float) -> None:
        entries = self.entries
        while entries and not now < entries[0][0] + self.period:
            _, amount = entries.popleft()
            self.total -= amount

    def retry_at(self, amount: int, now: float) -> float:
        """When ``amount`` fits, given the live entries (``now`` if it fits already)."""
        if amount > self.limit:
            return math.inf
        excess = self.total + amount - self.limit
        if excess <= 0:
            return now
        freed = 0
        for t, entry_amount in self.entries:
            freed += entry_amount
            if freed >= excess:
                return t + self.period
        return math.inf  # unreachable: the whole log frees ``total`` >= ``excess``

    def record(self, amount: int, now: float) -> None:
        if amount:
            self.entries.append((now, amount))
            self.total += amount

    def used(self, now: float) -> int:
        return self.total

    def remaining(self, now: float) -> int:
        return max(0, self.limit - self.total)

    def reset_after(self, now: float) -> float:
        return max(0.0, self.entries[-1][0] + self.period - now) if self.entries else 0.0

    def clear(self) -> None:
        self.entries.clear()
        self.total = 0


class _Bucket:
    """A continuously refilled bucket, in exact arithmetic.

    State is the time ``tat`` at which the bucket is full again (GCRA's theoretical arrival
    time): its level at ``now`` is ``capacity - max(0, tat - now) * rate``. With ``debt``, a
    request larger than the capacity is admitted when the bucket is full and drives it
    negative; without, it never fits.
    """

    __slots__ = ("capacity", "cause", "debt", "rate", "tat")

    def __init__(self, rate: Fraction, capacity: Fraction, *, debt: bool, cause: Cause) -> None:
        self.rate = rate
        self.capacity = capacity
        self.debt = debt
        self.cause: Cause = cause
        self.tat: Fraction | None = None  # None: full

    def expire(self, now: float) -> None:
        if self.tat is not None and self.tat <= Fraction(now):
            self.tat = None

    def _deficit(self, now: Fraction) -> Fraction:
        return Fraction(0) if self.tat is None or self.tat <= now else (self.tat - now) * self.rate

    def retry_at(self, amount: int, now: float) -> float:
        if self.rate == 0:
            return now if amount == 0 else math.inf
        needed = Fraction(amount)
        if needed > self.capacity:
            if not self.debt:
                return math.inf
            needed = self.capacity
        exact_now = Fraction(now)
        if self.capacity - self._deficit(exact_now) >= needed:
            return now
        assert self.tat is not None  # a deficit means a pending refill
        return _up(self.tat - (self.capacity - needed) / self.rate)

    def record(self, amount: int, now: float) -> None:
        if not amount or self.rate == 0:
            return
        exact_now = Fraction(now)
        start = exact_now if self.tat is None or self.tat < exact_now else self.tat
        self.tat = start + Fraction(amount) / self.rate

    def used(self, now: float) -> int:
        return math.ceil(self._deficit(Fraction(now)))

    def remaining(self, now: float) -> int:
        return max(0, math.floor(self.capacity - self._deficit(Fraction(now))))

    def reset_after(self, now: float) -> float:
        exact_now = Fraction(now)
        if self.tat is None or self.tat <= exact_now:
            return 0.0
        return _up(self.tat - exact_now)

    def clear(self) -> None:
        self.tat = None


_Part = _Log | _Bucket


class Window:
    """One configured limit (``rpm``, ``tpm``...): its parts, as its enforcement mode makes them."""

    __slots__ = ("kind", "label", "limit", "name", "parts", "period", "unit")

    def __init__(self, name: str, limit: int, mode: EnforcementMode) -> None:
        kind, unit, label, period = _WINDOWS[name]
        self.name = name
        self.kind: LimitKind = kind
        self.unit: Unit = unit
        self.label = label
        self.limit = limit
        self.period = period
        parts: list[_Part]
        if period == DAY:
            parts = [_Log(limit, period, "day")]
        elif mode == "sliding":
            parts = [_Log(limit, period, "minute")]
        elif mode == "token_bucket":
            parts = [_Bucket(Fraction(limit, 60), Fraction(limit), debt=False, cause="minute")]
        else:
            rate, capacity = per_second_share(limit)
            parts = [
                _Log(limit, period, "minute"),
                _Bucket(rate, capacity, debt=True, cause="per_second"),
            ]
        self.parts = parts

    def state(self, now: float) -> WindowState:
        """What the ``x-ratelimit-*`` headers say of this window at ``now``."""
        # Headers describe the per-minute limit, as OpenAI's and Anthropic's pages document
        # them ("the remaining number of requests that are permitted before exhausting the
        # rate limit", with the limit in requests per minute); a per-second share shows only
        # in a 429's retry-after. So a quantized window reports its minute part.
        parts = self.parts[:1]
        remaining = min(p.remaining(now) for p in parts)
        reset = max(p.reset_after(now) for p in parts)
        return WindowState(self.limit, max(0, min(self.limit, remaining)), reset)
