"""How long the simulated model takes: time to first token plus a per-token time, with jitter.

Only the numbers and the seeded sampling live here; the sleeping happens in ``sim.app``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Latency"]


@dataclass(frozen=True, slots=True)
class Latency:
    """A latency model: ``ttft`` seconds before the first token, ``per_token`` after each one.

    ``jitter`` is a relative spread: each sampled duration is multiplied by a factor drawn
    uniformly from ``[1 - jitter, 1 + jitter]`` using the model's seeded generator, so two runs
    with the same seed and the same request order take the same simulated time. The default is
    instant, so tests spend no time waiting.
    """

    ttft: float = 0.0
    per_token: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in ("ttft", "per_token", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Latency.{name} must be a number of seconds, got {value!r}")
            if value < 0:
                raise ValueError(f"Latency.{name} must be >= 0, got {value}")
        if self.jitter > 1:
            raise ValueError(f"Latency.jitter is a fraction in [0, 1], got {self.jitter}")

    @classmethod
    def fast(cls) -> Latency:
        """No delay at all: the default, for tests."""
        return cls()

    @classmethod
    def realistic(cls) -> Latency:
        """Roughly a small hosted model: 300 ms to first token, 10 ms per token, ±20 %."""
        return cls(ttft=0.3, per_token=0.01, jitter=0.2)

    @property
    def is_instant(self) -> bool:
        """True when sampling would always give zero (lets the server skip sleeping)."""
        return self.ttft == 0 and self.per_token == 0

    def sample(self, rng: random.Random) -> tuple[float, float]:
        """One request's ``(time to first token, time per token)``."""
        if self.is_instant:
            return 0.0, 0.0
        return self.ttft * self._factor(rng), self.per_token * self._factor(rng)

    def _factor(self, rng: random.Random) -> float:
        if not self.jitter:
            return 1.0
        return rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
