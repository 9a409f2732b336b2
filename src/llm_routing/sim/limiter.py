"""The simulator's rate limiter: exact sliding-log windows for RPM/TPM/RPD (and ITPM/OTPM/TPD).

Pure: no I/O, no threads, no sleeping; time comes from an injectable clock (or an explicit
``now``), so a property test can drive it in virtual time. The HTTP layer lives in ``sim.app``.

Algorithm (a sliding log, the exact form of "no more than L per 60 s"):

* Every admitted request is recorded in each window as ``(t, amount)``: 1 for request windows,
  its token count for token windows. An entry is *live* at time ``now`` iff ``now < t + period``
  (half-open: an entry admitted at ``t`` stops counting at exactly ``t + period``).
* A request is admitted iff, for every window, ``live_total + amount <= limit``. Admission is
  all-or-nothing: a rejected request records nothing anywhere.
* When it is rejected, ``retry_at`` is the earliest time at which enough of the oldest live
  entries have expired for it to fit (assuming nothing else is admitted meanwhile); a request
  larger than a whole window's limit can never fit (``retry_at`` is ``inf``).

Consequently no half-open interval ``[s, s + period)`` ever holds more than ``limit`` admitted
units, and a request is refused only when admitting it would break that rule. Token windows count
what OpenAI counts at admission: prompt tokens plus the requested maximum output.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["DAY", "MINUTE", "Decision", "SlidingWindowLimiter", "Violation", "WindowState"]

MINUTE = 60.0
DAY = 86_400.0

LimitKind = Literal["requests", "tokens"]
_Unit = Literal["requests", "tokens", "input", "output"]

# name -> (kind reported in 429 bodies, what the window counts, human label, period)
_WINDOWS: dict[str, tuple[LimitKind, _Unit, str, float]] = {
    "rpm": ("requests", "requests", "requests per min (RPM)", MINUTE),
    "tpm": ("tokens", "tokens", "tokens per min (TPM)", MINUTE),
    "itpm": ("tokens", "input", "input tokens per min (ITPM)", MINUTE),
    "otpm": ("tokens", "output", "output tokens per min (OTPM)", MINUTE),
    "rpd": ("requests", "requests", "requests per day (RPD)", DAY),
    "tpd": ("tokens", "tokens", "tokens per day (TPD)", DAY),
}


@dataclass(frozen=True, slots=True)
class Violation:
    """One window a request does not fit in, with the numbers a 429 message quotes."""

    window: str
    kind: LimitKind
    label: str
    limit: int
    used: int
    requested: int
    retry_at: float


@dataclass(frozen=True, slots=True)
class WindowState:
    """What the ``x-ratelimit-*`` headers report for one window after a decision."""

    limit: int
    remaining: int
    reset_after: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one admission check.

    ``violations`` is empty when admitted. ``retry_at`` is absolute (same clock as ``now``)
    so callers in virtual time can compare it exactly; ``retry_after`` is the relative form.
    ``windows`` holds the state of each configured window *after* the decision.
    """

    admitted: bool
    now: float
    violations: tuple[Violation, ...]
    windows: dict[str, WindowState]

    @property
    def retry_at(self) -> float:
        """Earliest time the same request would fit; ``now`` when admitted, ``inf`` if never."""
        return max((v.retry_at for v in self.violations), default=self.now)

    @property
    def retry_after(self) -> float:
        """Seconds until ``retry_at`` (``inf`` when the request can never fit)."""
        return max(0.0, self.retry_at - self.now)

    @property
    def binding(self) -> Violation | None:
        """The violation that waits longest: the one a 429 names."""
        if not self.violations:
            return None
        return max(self.violations, key=lambda v: v.retry_at)


class _Window:
    __slots__ = ("entries", "label", "limit", "name", "period", "total", "unit")

    def __init__(self, name: str, limit: int) -> None:
        _, unit, label, period = _WINDOWS[name]
        self.name = name
        self.unit: _Unit = unit
        self.label = label
        self.limit = limit
        self.period = period
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

    def state(self, now: float) -> WindowState:
        reset = self.entries[-1][0] + self.period - now if self.entries else 0.0
        return WindowState(self.limit, max(0, self.limit - self.total), max(0.0, reset))


class SlidingWindowLimiter:
    """Per-model admission control with exact sliding windows (see the module docstring).

    ``None`` for a limit means unlimited. ``clock`` returns seconds on any monotonic scale;
    if it ever goes backwards the limiter treats time as standing still (windows stay sorted).
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        rpd: int | None = None,
        itpm: int | None = None,
        otpm: int | None = None,
        tpd: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        limits = {"rpm": rpm, "tpm": tpm, "rpd": rpd, "itpm": itpm, "otpm": otpm, "tpd": tpd}
        for name, value in limits.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(
                    f"SlidingWindowLimiter {name} must be an int or None, got {value!r}"
                )
            if value < 0:
                raise ValueError(
                    f"SlidingWindowLimiter {name} must be >= 0 or None (unlimited), got {value}"
                )
        if not callable(clock):
            raise TypeError(f"SlidingWindowLimiter clock must be a callable, got {clock!r}")
        self._clock = clock
        self._windows = [_Window(n, v) for n, v in limits.items() if v is not None]
        self._last_now = -math.inf

    @property
    def limits(self) -> dict[str, int]:
        """The configured windows and their limits (unlimited ones are absent)."""
        return {w.name: w.limit for w in self._windows}

    def check(
        self, input_tokens: int, output_tokens: int = 0, *, now: float | None = None
    ) -> Decision:
        """Would a request of this size be admitted now? Records nothing."""
        return self._decide(input_tokens, output_tokens, now, record=False)

    def acquire(
        self, input_tokens: int, output_tokens: int = 0, *, now: float | None = None
    ) -> Decision:
        """Admit the request if it fits every window (and record it), else reject it."""
        return self._decide(input_tokens, output_tokens, now, record=True)

    def state(self, *, now: float | None = None) -> dict[str, WindowState]:
        """Current state of every window (for headers on responses that admit nothing)."""
        current = self._now(now)
        for w in self._windows:
            w.expire(current)
        return {w.name: w.state(current) for w in self._windows}

    def reset(self) -> None:
        """Forget every admitted request."""
        for w in self._windows:
            w.entries.clear()
            w.total = 0

    def _now(self, now: float | None) -> float:
        current = self._clock() if now is None else now
        if current < self._last_now:
            current = self._last_now
        self._last_now = current
        return current

    def _decide(
        self, input_tokens: int, output_tokens: int, now: float | None, *, record: bool
    ) -> Decision:
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        current = self._now(now)
        amounts: dict[_Unit, int] = {
            "requests": 1,
            "tokens": input_tokens + output_tokens,
            "input": input_tokens,
            "output": output_tokens,
        }
        violations: list[Violation] = []
        for w in self._windows:
            w.expire(current)
            amount = amounts[w.unit]
            at = w.retry_at(amount, current)
            if at > current:
                violations.append(
                    Violation(w.name, _WINDOWS[w.name][0], w.label, w.limit, w.total, amount, at)
                )
        admitted = not violations
        if admitted and record:
            for w in self._windows:
                amount = amounts[w.unit]
                if amount:
                    w.entries.append((current, amount))
                    w.total += amount
        return Decision(
            admitted=admitted,
            now=current,
            violations=tuple(violations),
            windows={w.name: w.state(current) for w in self._windows},
        )
