"""The scheduler's statistics: counters of admissions, 429s, retries and refusals, and waits.

Shared by every model one scheduler wraps, updated under one lock from any thread or loop;
``RateScheduler.stats()`` returns ``snapshot()``. A bounded sample of waits gives percentiles.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any

__all__ = ["SchedulerStats"]

WAIT_SAMPLES = 10_000
"""How many of the latest waits the percentiles are computed over."""


def _percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values`` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class SchedulerStats:
    """Counters and a bounded sample of waits, shared by every model the scheduler wraps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waits: deque[float] = deque(maxlen=WAIT_SAMPLES)
        self.wait_count = 0
        self.wait_total = 0.0
        self.counts = dict.fromkeys(
            (
                "admitted",
                "rate_limit_errors",
                "retries",
                "transient_retries",
                "refused_max_wait",
                "refused_too_large",
                "refused_quota",
            ),
            0,
        )
        self.by_model: dict[str, dict[str, float]] = {}
        # Admissions without a wait (most of them) are counted without the lock: one
        # ``itertools.count`` per key, whose ``next`` is atomic, and the sample's append (a
        # deque's is atomic too). ``snapshot`` reads a counter by drawing from it under the
        # lock, so it subtracts its own draws (``_draws``).
        self._at_once: dict[str, itertools.count[int]] = {}
        self._draws: dict[str, int] = {}

    def add(self, key: str, name: str, amount: float = 1) -> None:
        """Count ``amount`` of ``name`` (a counter of ``snapshot``), in total and for ``key``."""
        with self._lock:
            self.counts[name] += int(amount)
            entry = self.by_model.setdefault(key, {"admitted": 0, "rate_limit_errors": 0})
            if name in entry:
                entry[name] += amount

    def waited(self, key: str, seconds: float) -> None:
        """An admission of ``key`` after waiting ``seconds``."""
        with self._lock:  # once per admission: no call, no dict built unless the key is new
            self.counts["admitted"] += 1
            self.wait_count += 1
            self.wait_total += seconds
            self.waits.append(seconds)
            entry = self.by_model.get(key)
            if entry is None:
                entry = self.by_model[key] = {"admitted": 0, "rate_limit_errors": 0}
            entry["admitted"] += 1
            entry["wait_total_s"] = entry.get("wait_total_s", 0.0) + seconds

    def at_once(self, key: str) -> None:
        """An admission of ``key`` without a wait: `waited` of 0 seconds, without the lock."""
        counter = self._at_once.get(key)
        if counter is None:
            with self._lock:
                counter = self._at_once.setdefault(key, itertools.count())
        next(counter)
        self.waits.append(0.0)

    def _unlocked(self) -> dict[str, int]:
        """How many admissions `at_once` counted per key (lock held)."""
        counted: dict[str, int] = {}
        for key, counter in self._at_once.items():
            draws = self._draws.get(key, 0)
            counted[key] = next(counter) - draws  # this draw is one more of ours
            self._draws[key] = draws + 1
        return counted

    def snapshot(self) -> dict[str, Any]:
        """A copy of every counter, the wait percentiles and the per-model counts."""
        with self._lock:
            sample = list(self.waits)
            unlocked = self._unlocked()
            extra = sum(unlocked.values())
            by_model = {key: dict(entry) for key, entry in self.by_model.items()}
            for key, count in unlocked.items():
                if count:
                    entry = by_model.setdefault(key, {"admitted": 0, "rate_limit_errors": 0})
                    entry["admitted"] += count
                    entry["wait_total_s"] = entry.get("wait_total_s", 0.0)
            counts = dict(self.counts)
            counts["admitted"] += extra
            return {
                "waits": {
                    "count": self.wait_count + extra,
                    "total_s": round(self.wait_total, 6),
                    "p50_s": round(_percentile(sample, 0.50), 6),
                    "p95_s": round(_percentile(sample, 0.95), 6),
                    "max_s": round(max(sample, default=0.0), 6),
                },
                **counts,
                "by_model": by_model,
            }
