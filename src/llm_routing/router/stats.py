"""A router's request and fallback counters, shared by every router derived from it.

Counts only what the router itself sees (which model served, why each before it was skipped);
waits and cost come from the decorators' own stats (`Router.stats` merges them).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from llm_routing.errors import Attempt, ErrorKind

__all__ = ["FALLBACK_KEYS", "Stats"]

FALLBACK_KEYS: dict[ErrorKind, str] = {
    ErrorKind.RATE_LIMIT: "rate_limit_fallbacks",
    ErrorKind.QUOTA: "quota_fallbacks",
    ErrorKind.CONTEXT: "context_fallbacks",
    ErrorKind.TRANSIENT: "transient_fallbacks",
    ErrorKind.BUDGET: "budget_fallbacks",
}
"""The counter each kind of fallback adds to; any other kind counts as ``other_fallbacks``."""


class Stats:
    """Counters shared by a router and every router derived from it (``bind_tools``…)."""

    def __init__(self, names: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "total_requests",
                "primary_requests",
                "fallback_requests",
                "failed_requests",
                "rate_limit_fallbacks",
                "quota_fallbacks",
                "context_fallbacks",
                "transient_fallbacks",
                "budget_fallbacks",
                "other_fallbacks",
                "broken_streams",
            ),
            0,
        )
        self._by_model: dict[str, dict[str, Any]] = {
            name: {"requests": 0, "failures": {}} for name in names
        }

    def record(self, served: str | None, position: int, attempts: Sequence[Attempt]) -> None:
        """One request: served by ``served`` at ``position`` (None: every model failed)."""
        with self._lock:
            counts = self._counts
            counts["total_requests"] += 1
            if served is None:
                counts["failed_requests"] += 1
            elif position == 0:
                counts["primary_requests"] += 1
            else:
                counts["fallback_requests"] += 1
            for attempt in attempts:
                kind = attempt.kind
                counts[FALLBACK_KEYS.get(kind, "other_fallbacks")] += 1
                failures = self._by_model[attempt.model]["failures"]
                failures[kind.value] = failures.get(kind.value, 0) + 1
            if served is not None:
                self._by_model[served]["requests"] += 1

    def broken(self) -> None:
        """A stream that had opened (and was counted as served) failed mid-way."""
        with self._lock:
            self._counts["broken_streams"] += 1

    def snapshot(self) -> dict[str, Any]:
        """A copy of the counters, safe to hand out while requests go on."""
        with self._lock:
            return {
                **self._counts,
                "by_model": {
                    name: {"requests": entry["requests"], "failures": dict(entry["failures"])}
                    for name, entry in self._by_model.items()
                },
            }
