"""The simulator's rate limiter: RPM/TPM/RPD (and ITPM/OTPM/TPD) enforced the way providers do.

Pure: no I/O, no threads, no sleeping; time comes from an injectable clock (or an explicit
``now``), so a property test can drive it in virtual time. The HTTP layer lives in ``sim.app``.
The windows' parts (the sliding log, the refilled bucket) and the value types are
``sim.windows``; this module decides with them and documents the modes.

Three enforcement modes (``llm_routing.catalog.enforcement`` says which provider documents which):

``sliding`` (``SlidingWindowLimiter``, or ``ProviderLimiter(mode="sliding")``)
    An exact sliding log, the exact form of "no more than L per 60 s". Every admitted request
    is recorded in each window as ``(t, amount)`` (1 for request windows, its token count for
    token windows). An entry is *live* at ``now`` iff ``now < t + period`` (half-open: an entry
    admitted at ``t`` stops counting at exactly ``t + period``). A request is admitted iff, for
    every window, ``live_total + amount <= limit``. No half-open interval ``[s, s + period)``
    ever holds more than ``limit`` admitted units, and a request is refused only when admitting
    it would break that rule.

``token_bucket``
    Each per-minute window is a bucket of capacity ``L`` (the limit) refilled continuously at
    ``L / 60`` per second, full at the start: a burst of up to ``L``, then the refill rate. A
    request fits iff the bucket holds at least its amount. Over any interval of length ``t`` at
    most ``L + L / 60 * t`` units are admitted. A request larger than ``L`` never fits.

``quantized``
    The per-minute window as in ``sliding`` (at most ``L`` in any 60 s) PLUS a per-second share:
    a sub-bucket refilled continuously at ``share = L / 60`` per second with capacity
    ``max(1, share)``: no burst beyond one second's share. The share is exact (a ``Fraction``,
    never rounded): RPM 600 -> 10 per second, capacity 10; RPM 30 -> 1/2 per second, capacity 1
    (one request every 2 s); TPM 100,000 -> 5,000/3 tokens per second. A request larger than the
    sub-bucket's capacity (a big token request) is admitted when the sub-bucket is full and
    leaves it in debt, so it waits for a full share instead of being refused forever; hence in
    any interval of length ``t`` at most ``max(capacity, largest request) + share * t`` units
    are admitted, and never more than ``L`` in 60 s.

Day windows (``rpd``, ``tpd``) are sliding 24-hour logs in every mode.

Admission is all-or-nothing: a refused request records nothing, except that with
``count_refusal=True`` (a provider whose "unsuccessful requests contribute to your per-minute
limit") a refused request is charged to the per-minute windows (the sliding log or the minute
bucket; not the per-second share, not the day windows). A request that can never fit (larger
than a whole window) is never charged.

``retry_at`` is the earliest time at which the same request fits, assuming nothing else is
admitted meanwhile (after the charge of the refusal itself, when refusals count): retrying at
exactly ``retry_at`` is admitted. Bucket arithmetic is exact (``Fraction``); ``retry_at`` is
rounded *up* to the next float, never down. A request larger than a window's limit can never
fit (``retry_at`` is ``inf``).

Output counted at completion (Anthropic's OTPM: "evaluated in real time as output tokens are
produced"): with ``output_at="completion"`` admission charges no output, an output-token window
admits a request only while it has room for at least one token, and ``record_output`` charges
the tokens really generated when they are; that charge may overdraw a window (a request already
running is not cut off), and new requests wait until it has drained.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from llm_routing.catalog.enforcement import MODES, EnforcementMode
from llm_routing.sim.windows import (
    DAY,
    MINUTE,
    Cause,
    Unit,
    Violation,
    Window,
    WindowState,
    per_second_share,
)

__all__ = [
    "DAY",
    "MINUTE",
    "Cause",
    "Decision",
    "ProviderLimiter",
    "SlidingWindowLimiter",
    "Violation",
    "WindowState",
    "per_second_share",
]

OutputAt = Literal["admission", "completion"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one admission check.

    ``violations`` is empty when admitted. ``retry_at`` is absolute (same clock as ``now``)
    so callers in virtual time can compare it exactly; ``retry_after`` is the relative form.
    ``windows`` holds the state of each configured window *after* the decision. ``charged``
    says a refused request was counted anyway (failed requests count); ``refused_by`` is the
    cause that refused it, before that charge.
    """

    admitted: bool
    now: float
    violations: tuple[Violation, ...]
    windows: dict[str, WindowState]
    charged: bool = False
    refused_by: Cause | None = None

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

    @property
    def cause(self) -> Cause | None:
        """Why the request was refused (``None`` when admitted)."""
        if self.refused_by is not None:
            return self.refused_by
        binding = self.binding
        return None if binding is None else binding.cause


class ProviderLimiter:
    """Per-model (or per-limit-group) admission control in one enforcement mode.

    See the module docstring for the modes. ``None`` for a limit means unlimited. ``clock``
    returns seconds on any monotonic scale; if it ever goes backwards the limiter treats time
    as standing still. ``output_at="completion"`` counts output when ``record_output`` reports
    it instead of at admission (Anthropic's OTPM).

    Example:
        >>> limiter = ProviderLimiter(mode="quantized", rpm=600, clock=lambda: 0.0)
        >>> [limiter.acquire(10).admitted for _ in range(11)].count(True)
        10
        >>> limiter.acquire(10).retry_after
        0.1
    """

    def __init__(
        self,
        *,
        mode: EnforcementMode = "sliding",
        rpm: int | None = None,
        tpm: int | None = None,
        rpd: int | None = None,
        itpm: int | None = None,
        otpm: int | None = None,
        tpd: int | None = None,
        output_at: OutputAt = "admission",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        owner = type(self).__name__
        limits = {"rpm": rpm, "tpm": tpm, "rpd": rpd, "itpm": itpm, "otpm": otpm, "tpd": tpd}
        for name, value in limits.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{owner} {name} must be an int or None, got {value!r}")
            if value < 0:
                raise ValueError(f"{owner} {name} must be >= 0 or None (unlimited), got {value}")
        if mode not in MODES:
            raise ValueError(f"{owner} mode must be one of {', '.join(MODES)}, got {mode!r}")
        if output_at not in ("admission", "completion"):
            raise ValueError(
                f"{owner} output_at must be 'admission' or 'completion', got {output_at!r}"
            )
        if not callable(clock):
            raise TypeError(f"{owner} clock must be a callable, got {clock!r}")
        self._mode: EnforcementMode = mode
        self._output_at: OutputAt = output_at
        self._clock = clock
        self._windows = [Window(n, v, mode) for n, v in limits.items() if v is not None]
        self._last_now = -math.inf

    @property
    def mode(self) -> EnforcementMode:
        """The enforcement mode."""
        return self._mode

    @property
    def output_at(self) -> OutputAt:
        """When output tokens are charged: at admission or at completion."""
        return self._output_at

    @property
    def limits(self) -> dict[str, int]:
        """The configured windows and their limits (unlimited ones are absent)."""
        return {w.name: w.limit for w in self._windows}

    def check(
        self, input_tokens: int, output_tokens: int = 0, *, now: float | None = None
    ) -> Decision:
        """Would a request of this size be admitted now? Records nothing."""
        return self._decide(input_tokens, output_tokens, now, record=False, charge=False)

    def acquire(
        self,
        input_tokens: int,
        output_tokens: int = 0,
        *,
        now: float | None = None,
        count_refusal: bool = False,
    ) -> Decision:
        """Admit the request if it fits every window (and record it), else refuse it.

        ``count_refusal=True`` charges a refused request to the per-minute windows anyway
        (unless it can never fit); the returned ``retry_at`` accounts for that charge.
        """
        return self._decide(input_tokens, output_tokens, now, record=True, charge=count_refusal)

    def record_output(self, output_tokens: int, *, now: float | None = None) -> None:
        """Charge output tokens generated by an admitted request (``output_at="completion"``).

        Goes to every window counting output (OTPM, and TPM/TPD); may overdraw them. A no-op
        when output is charged at admission.
        """
        _check_count("output_tokens", output_tokens)
        if self._output_at != "completion" or not output_tokens:
            return
        current = self._now(now)
        for w in self._windows:
            if w.unit in ("output", "tokens"):
                for part in w.parts:
                    part.expire(current)
                    part.record(output_tokens, current)

    def state(self, *, now: float | None = None) -> dict[str, WindowState]:
        """Current state of every window (for headers on responses that admit nothing)."""
        current = self._now(now)
        for w in self._windows:
            for part in w.parts:
                part.expire(current)
        return {w.name: w.state(current) for w in self._windows}

    def reset(self) -> None:
        """Forget every admitted request."""
        for w in self._windows:
            for part in w.parts:
                part.clear()

    def _now(self, now: float | None) -> float:
        current = self._clock() if now is None else now
        if current < self._last_now:
            current = self._last_now
        self._last_now = current
        return current

    def _amounts(self, input_tokens: int, output_tokens: int) -> dict[Unit, tuple[int, int]]:
        """Per unit: (the amount that must fit, the amount recorded)."""
        tokens = input_tokens + output_tokens
        probe = output_tokens
        if self._output_at == "completion":
            probe = max(1, output_tokens)  # room for at least one generated token
        return {
            "requests": (1, 1),
            "tokens": (tokens, tokens),
            "input": (input_tokens, input_tokens),
            "output": (probe, output_tokens),
        }

    def _violations(self, amounts: dict[Unit, tuple[int, int]], current: float) -> list[Violation]:
        violations: list[Violation] = []
        for w in self._windows:
            amount = amounts[w.unit][0]
            for part in w.parts:
                at = part.retry_at(amount, current)
                if at > current:
                    violations.append(
                        Violation(
                            w.name,
                            w.kind,
                            w.label,
                            w.limit,
                            part.used(current),
                            amount,
                            at,
                            part.cause,
                        )
                    )
        return violations

    def _decide(
        self,
        input_tokens: int,
        output_tokens: int,
        now: float | None,
        *,
        record: bool,
        charge: bool,
    ) -> Decision:
        _check_count("input_tokens", input_tokens)
        _check_count("output_tokens", output_tokens)
        current = self._now(now)
        for w in self._windows:
            for part in w.parts:
                part.expire(current)
        amounts = self._amounts(input_tokens, output_tokens)
        violations = self._violations(amounts, current)
        admitted = not violations
        charged = False
        refused_by: Cause | None = None
        if admitted and record:
            for w in self._windows:
                for part in w.parts:
                    part.record(amounts[w.unit][1], current)
        elif not admitted and record and charge:
            refused_by = max(violations, key=lambda v: v.retry_at).cause
            if all(math.isfinite(v.retry_at) for v in violations):
                for w in self._windows:
                    for part in w.parts:
                        if part.cause == "minute":
                            part.record(amounts[w.unit][1], current)
                charged = True
                violations = self._violations(amounts, current)
        return Decision(
            admitted=admitted,
            now=current,
            violations=tuple(violations),
            windows={w.name: w.state(current) for w in self._windows},
            charged=charged,
            refused_by=refused_by,
        )


class SlidingWindowLimiter(ProviderLimiter):
    """Per-model admission control with exact sliding windows (``mode="sliding"``).

    ``None`` for a limit means unlimited. ``clock`` returns seconds on any monotonic scale;
    if it ever goes backwards the limiter treats time as standing still (windows stay sorted).
    Token windows count what OpenAI counts at admission: prompt tokens plus the requested
    maximum output.
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
        super().__init__(
            mode="sliding", rpm=rpm, tpm=tpm, rpd=rpd, itpm=itpm, otpm=otpm, tpd=tpd, clock=clock
        )


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
