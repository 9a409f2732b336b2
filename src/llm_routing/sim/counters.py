"""The simulator's per-model runtimes and counters, and the arithmetic of ``stats()``.

Mutable state with no lock of its own: ``sim.state.SimState`` guards every call here with its
lock. Apart from the decisions so that ``SimState`` reads as admission alone.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import deque
from collections.abc import Mapping
from typing import Any

from llm_routing.sim.faults import FaultPlan
from llm_routing.sim.limiter import ProviderLimiter
from llm_routing.sim.model import SimModel

__all__ = [
    "CAUSES",
    "FAULT_CAUSES",
    "TIMELINE_EVENTS",
    "ModelRuntime",
    "empty_counters",
    "snapshot",
]

#: The causes ``stats()["rate_limited_by_cause"]`` counts 429s by: a per-minute window (the
#: sliding log or the minute bucket), the per-second share of a quantized limit, a day window,
#: an Anthropic-shaped spend cap, a Gemini-shaped daily quota, OpenAI's ``insufficient_quota``,
#: and ``429`` faults injected on purpose.
CAUSES = (
    "minute",
    "per_second",
    "day",
    "spend_limit",
    "daily_quota",
    "insufficient_quota",
    "injected",
)

#: Events kept per model timeline (the newest): enough for the benchmarks' 10,000-request runs,
#: bounded so a simulator serving for days does not grow without end.
TIMELINE_EVENTS = 100_000


def empty_counters() -> dict[str, Any]:
    """Fresh counters, for a model and for the totals (one shape, so totals add up by key)."""
    return {
        "requests_received": 0,
        "requests_served": 0,
        "rate_limited": {"requests": 0, "tokens": 0},
        "rate_limited_by_cause": dict.fromkeys(CAUSES, 0),
        "insufficient_quota": 0,
        "context_length_exceeded": 0,
        "bad_requests": 0,
        "faults": {},
        "tokens_admitted": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "scripted_replies": 0,
    }


class ModelRuntime:
    """Mutable per-model state (guarded by ``SimState``'s lock)."""

    def __init__(self, model: SimModel, seed: int, limiter: ProviderLimiter) -> None:
        self.model = model
        self.limiter = limiter  # shared by every model of a limit group
        base = seed * 1_000_003 + zlib.crc32(model.name.encode())
        self.fault_rng = random.Random(base)
        self.latency_rng = random.Random(base + 1)
        self.content_rng = random.Random(base + 2)
        self.faults = model.faults
        self.fault_counter = 0
        self.spent_tokens = 0
        self.spent_requests = 0
        self.counters = empty_counters()
        self.timeline: deque[tuple[float, str, int]] = deque(maxlen=TIMELINE_EVENTS)

    def set_faults(self, plan: FaultPlan) -> None:
        """A new plan numbers its requests from 1, as a freshly started simulator would."""
        self.faults = plan
        self.fault_counter = 0


def snapshot(
    runtimes: Mapping[str, ModelRuntime], global_counters: Mapping[str, int], uptime: float
) -> dict[str, Any]:
    """``stats()``: the totals, then ``models[name]`` with its counters and timeline (a copy)."""
    models: dict[str, Any] = {}
    totals = empty_counters()
    totals.update(global_counters)
    for name, rt in runtimes.items():
        counters = json.loads(json.dumps(rt.counters))
        m = rt.model
        models[name] = {
            **counters,
            "enforcement": {
                "mode": m.enforcement,
                "failed_requests_count": m.failed_requests_count,
                "tokens_counted": m.tokens_counted,
                "output_counted": m.output_counted,
                "limit_group": m.limit_group,
            },
            "limits": {k: v for k, v in rt.model.limits().items() if v is not None},
            "context_window": rt.model.context_window,
            "quota_spent": {"tokens": rt.spent_tokens, "requests": rt.spent_requests},
            "timeline": [list(e) for e in rt.timeline],
        }
        for key in (
            "requests_served",
            "insufficient_quota",
            "context_length_exceeded",
            "tokens_admitted",
            "prompt_tokens",
            "completion_tokens",
            "scripted_replies",
        ):
            totals[key] += counters[key]
        for kind, count in counters["rate_limited"].items():
            totals["rate_limited"][kind] += count
        for cause, count in counters["rate_limited_by_cause"].items():
            totals["rate_limited_by_cause"][cause] += count
        for kind, count in counters["faults"].items():
            totals["faults"][kind] = totals["faults"].get(kind, 0) + count
    totals["uptime"] = uptime
    totals["models"] = models
    return totals


#: The cause an injected fault is counted under in ``rate_limited_by_cause``.
FAULT_CAUSES: dict[str, str] = {
    "429": "injected",
    "quota": "insufficient_quota",
    "spend_limit": "spend_limit",
    "daily_quota": "daily_quota",
}
