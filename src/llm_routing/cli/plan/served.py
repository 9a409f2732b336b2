"""Per model, what the simulator served, refused and counted in a planner run, and its cost.

Read from the simulator itself (``SimState.stats()`` and the ``SimCall`` each answered call
reports), priced here with the catalogue: the simulator never bills.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llm_routing.catalog import Catalog
from llm_routing.cli.plan.report import ModelResult, SimulationReport, percentile
from llm_routing.cost.pricing import price
from llm_routing.sim.inprocess import SimCall
from llm_routing.sim.state import SimState

__all__ = ["busiest", "fill_models"]

_WINDOW_S = 60.0  # the per-minute limits' sliding window


def fill_models(
    report: SimulationReport,
    names: Sequence[str],
    by: tuple[Mapping[str, Any], Mapping[str, Any]],
    state: SimState,
    served: Sequence[SimCall],
    prices: Catalog,
    latency: Mapping[str | None, list[float]],
) -> None:
    """Per model: what the simulator served, refused and counted, and what it cost.

    ``by`` is the router's and the scheduler's stats by model.
    """
    by_entry, sched = by
    models = state.stats()["models"]
    calls: dict[str, list[SimCall]] = {}
    for call in served:
        calls.setdefault(call.model, []).append(call)
    timeline: list[tuple[float, float]] = []
    for name in names:
        key = name.split("#", 1)[0]
        entry = by_entry.get(name, {})
        result = report.models.get(key)
        if result is None:
            spec = prices.get(key)
            counters = models[spec.name]
            mine = calls.get(spec.name, [])
            result = ModelResult(name=key, limits=dict(counters["limits"]))
            result.served = len(mine)
            result.input_tokens = sum(c.prompt_tokens for c in mine)
            result.output_tokens = sum(c.completion_tokens for c in mine)
            result.provider_429s = dict(counters["rate_limited"])
            result.context_overflows = counters["context_length_exceeded"]
            result.bad_requests = counters["bad_requests"]
            result.cost_usd = entry.get("cost", 0.0)
            values = latency.get(name, [])
            result.latency_p50_s = percentile(values, 0.5)
            result.latency_p95_s = percentile(values, 0.95)
            by_model = sched.get(key, {})
            admitted = by_model.get("admitted", 0)
            result.mean_wait_s = by_model.get("wait_total_s", 0.0) / admitted if admitted else 0.0
            result.served_at = sorted(c.answered for c in mine)
            result.mean_service_s = (
                sum(c.answered - c.admitted for c in mine) / len(mine) if mine else 0.0
            )
            result.context_window = spec.context_window
            result.peak_60s = busiest(mine)
            report.models[key] = result
            for c in mine:
                usage = {"input_tokens": c.prompt_tokens, "output_tokens": c.completion_tokens}
                charged = price(usage, spec).total
                if charged is not None:
                    timeline.append((c.answered, float(charged)))
        for kind, n in entry.get("failures", {}).items():
            result.skipped[kind] = result.skipped.get(kind, 0) + int(n)
    running = 0.0
    for t, spent in sorted(timeline):
        running += spent
        report.cost_timeline.append((t, running))


def busiest(served: Sequence[SimCall]) -> dict[str, int]:
    """The most each per-minute limit counted in any 60 s, by admission time.

    What a sliding window bounds: requests, input plus counted output (``tpm``), input
    (``itpm``) and counted output (``otpm``) admitted within 60 s of each other. Comparing an
    average over the run with the limit says nothing; this is the figure that must stay under it.
    """
    calls = sorted(served, key=lambda s: s.admitted)
    peak = {"rpm": 0, "tpm": 0, "itpm": 0, "otpm": 0}
    start = 0
    inputs = outputs = 0
    for end, call in enumerate(calls):
        inputs += call.prompt_tokens
        outputs += call.counted_output
        while calls[start].admitted <= call.admitted - _WINDOW_S:
            inputs -= calls[start].prompt_tokens
            outputs -= calls[start].counted_output
            start += 1
        peak["rpm"] = max(peak["rpm"], end - start + 1)
        peak["tpm"] = max(peak["tpm"], inputs + outputs)
        peak["itpm"] = max(peak["itpm"], inputs)
        peak["otpm"] = max(peak["otpm"], outputs)
    return peak
