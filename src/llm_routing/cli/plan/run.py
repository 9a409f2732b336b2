"""``simulate``: a router config under a workload, in virtual time, and its report.

The router is the package's own (``from_config``'s guard, fallbacks and large-context models,
a ``RateScheduler`` and a ``CostTracker`` on a ``VirtualClock``); only the providers are
simulated. Reading the config is ``section``, the workload ``workload``, the figures ``report``.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_routing.catalog import Catalog, ModelSpec, default_catalog
from llm_routing.cli._table import fmt_seconds
from llm_routing.cli.plan._provider import CURRENT, Provider, SimulatedChatModel
from llm_routing.cli.plan.report import ModelResult, SimulationReport, percentile
from llm_routing.cli.plan.section import Plan, read_plan, relabel
from llm_routing.cli.plan.workload import Arrival
from llm_routing.cost import CostTracker
from llm_routing.errors import AllModelsFailedError, classify
from llm_routing.router.from_config import from_config
from llm_routing.schedule import RateScheduler, VirtualClock
from llm_routing.sim import tokens as sim_tokens

__all__ = ["simulate"]

# from_config arguments the simulation replaces (its own scheduler and tracker, no I/O).
_NEUTRAL = {
    "tier": "tier1",
    "max_wait": 90.0,
    "budget_usd": None,
    "backend": "memory",
    "langfuse": False,
}
_EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC: virtual time 0, for the tracker's periods
_REASONS = ("rate_limit", "context", "quota", "budget", "transient", "other")
_WINDOW_S = 60.0  # the per-minute limits' sliding window


def simulate(
    config: Mapping[str, Any] | str | os.PathLike[str],
    workload: Sequence[Arrival],
    duration_s: float | None = None,
    seed: int = 0,
) -> SimulationReport:
    """Run ``workload`` through the router ``config`` describes, in virtual time.

    The router is built by ``from_config`` (its guard, fallbacks and large-context models as
    in production) with a `RateScheduler` and a `CostTracker` on a `VirtualClock`, over
    in-process providers shaped like the configured models: the catalogue's context window,
    output cap, prices and the tier's limits (or the config's ``[simulate]`` overrides),
    enforced with exact sliding windows, answering after a latency model. Requests with
    ``t >= duration_s`` are not sent (``duration_s`` defaults to just past the last one).
    The run then waits for every request to be answered or given up. Ten simulated minutes
    of thousands of requests take seconds.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"simulate(seed=…) must be an int, got {seed!r}")
    arrivals = sorted(workload, key=lambda a: a.t)
    if not arrivals:
        raise ValueError("simulate(workload=…) has no requests; give at least one Arrival")
    for a in arrivals:
        if not isinstance(a, Arrival):
            raise TypeError(f"simulate(workload=…) must hold Arrival values, got {a!r}")
    if duration_s is None:
        duration_s = math.nextafter(arrivals[-1].t, math.inf) if arrivals[-1].t > 0 else 1.0
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise TypeError(f"simulate(duration_s=…) must be a number of seconds, got {duration_s!r}")
    if not 0 < duration_s < math.inf:
        raise ValueError(f"simulate(duration_s=…) must be a finite number > 0, got {duration_s!r}")
    plan = read_plan(config)
    sent = [a for a in arrivals if a.t < duration_s]
    if len(sent) < len(arrivals):
        plan.notes.append(
            f"{len(arrivals) - len(sent):,} requests of the workload come at or after "
            f"{fmt_seconds(duration_s)} and were not sent"
        )
    if not sent:
        raise ValueError(
            f"no request of the workload comes before {fmt_seconds(duration_s)} (duration); "
            f"the first is at {fmt_seconds(arrivals[0].t)}"
        )

    clock = VirtualClock()
    prices = default_catalog().copy() if plan.prices else None
    if prices is not None:
        for key, table in plan.prices.items():
            prices.register(prices.get(key).with_overrides(price=table), replace=True)
    price_catalog: Catalog = prices if prices is not None else default_catalog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # A first pass over placeholder models checks the whole file, with the file's
            # name in its messages, before its values configure the scheduler and tracker.
            from_config(
                plan.data,
                **_chain(plan.data, [_placeholder(plan.specs[n]) for n in plan.names]),
                scheduler=False,
                tracker=False,
                **_NEUTRAL,
            )
            scheduler = RateScheduler(
                tier=plan.tier,
                limits=plan.limits or None,
                max_wait=plan.max_wait,
                clock=clock,
            )
            tracker = CostTracker(
                budget_usd=plan.budget_usd,
                catalog=price_catalog,
                clock=lambda: _EPOCH + clock.now(),
            )
            providers, models = _providers(plan, scheduler, price_catalog, clock, seed)
            router = from_config(
                plan.data,
                **_chain(plan.data, models),
                scheduler=scheduler,
                tracker=tracker,
                **_NEUTRAL,
            )
        except (TypeError, ValueError) as exc:
            raise relabel(exc, plan.label) from None
        report = SimulationReport(chain=list(router.names), duration_s=float(duration_s), seed=seed)
        report.notes.extend(plan.notes)
        report.budget_usd = plan.budget_usd
        started = time.perf_counter()
        outcomes = asyncio.run(_drive(router, sent, clock))
        report.wall_s = time.perf_counter() - started
    for warning in caught:
        text = str(warning.message)
        if text not in report.notes:
            report.notes.append(text)
    _fill(report, outcomes, router, scheduler, tracker, providers, clock)
    return report


def _chain(data: Mapping[str, Any], models: Sequence[Any]) -> dict[str, Any]:
    """``primary``, ``fallbacks`` and ``large_context`` overrides, in the file's order."""
    if not models:
        return {}  # a file without models: from_config says what is missing
    router = data.get("router")
    value = router.get("fallbacks", []) if isinstance(router, Mapping) else []
    count = len(value) if isinstance(value, list | tuple) else 0
    return {
        "primary": models[0],
        "fallbacks": list(models[1 : 1 + count]),
        "large_context": list(models[1 + count :]),
    }


def _placeholder(spec: ModelSpec) -> SimulatedChatModel:
    return SimulatedChatModel(spec, None)


def _providers(
    plan: Plan, scheduler: Any, prices: Catalog, clock: Any, seed: int
) -> tuple[dict[str, Provider], list[SimulatedChatModel]]:
    providers: dict[str, Provider] = {}
    models: list[SimulatedChatModel] = []
    for name in plan.names:
        spec = prices.get(plan.specs[name].key)
        provider = providers.get(spec.key)
        if provider is None:
            limits = scheduler.limits_for(spec.key)
            shape = {k: getattr(limits, k) for k in ("rpm", "tpm", "rpd", "itpm", "otpm")}
            provider = Provider(spec, shape, plan.latency, seed, clock)
            providers[spec.key] = provider
        models.append(SimulatedChatModel(spec, provider))
    return providers, models


@dataclass(slots=True)
class _Outcome:
    arrival: Arrival
    finished: float
    model: str | None = None
    failure: str | None = None
    error: str | None = None
    passed_over: tuple[str, ...] = ()  # the kind of each model's failure, in order


async def _drive(router: Any, arrivals: Sequence[Arrival], clock: Any) -> list[_Outcome]:
    rng = random.Random(0)
    prompts: dict[int, str] = {}
    outcomes: list[_Outcome] = []

    async def one(arrival: Arrival) -> None:
        CURRENT.set(arrival)
        text = prompts.get(arrival.prompt_tokens)
        if text is None:
            text = prompts[arrival.prompt_tokens] = sim_tokens.reply_text(
                rng, arrival.prompt_tokens
            )
        outcome = _Outcome(arrival, arrival.t)
        try:
            message = await router.ainvoke(text, max_tokens=arrival.max_tokens)
        except AllModelsFailedError as exc:
            outcome.failure = exc.attempts[-1].kind.value if exc.attempts else "other"
            # Every attempt, the last included: the router's reason counters count them all.
            outcome.passed_over = tuple(a.kind.value for a in exc.attempts)
        except Exception as exc:  # the report counts what the app would have seen
            outcome.failure = classify(exc).value
            outcome.error = f"{type(exc).__name__}: {exc}"
        else:
            outcome.model = message.response_metadata.get("llm_routing.model")
            attempts = message.response_metadata.get("llm_routing.attempts") or ()
            outcome.passed_over = tuple(str(a.get("kind")) for a in attempts)
        outcome.finished = clock.now()
        outcomes.append(outcome)

    tasks: list[asyncio.Task[None]] = []
    for arrival in arrivals:
        delay = arrival.t - clock.now()
        if delay > 0:
            await clock.asleep(delay)
        tasks.append(asyncio.create_task(one(arrival)))
    await asyncio.gather(*tasks)
    return outcomes


def _fill(
    report: SimulationReport,
    outcomes: Sequence[_Outcome],
    router: Any,
    scheduler: Any,
    tracker: Any,
    providers: Mapping[str, Provider],
    clock: Any,
) -> None:
    stats = router.stats()
    sched = scheduler.stats()
    summary = tracker.summary()
    report.requests = len(outcomes)
    report.simulated_s = clock.now()
    latencies: dict[str | None, list[float]] = {}
    errors: list[str] = []
    for o in outcomes:
        if o.failure is not None:
            report.failed[o.failure] = report.failed.get(o.failure, 0) + 1
            if o.error is not None:
                errors.append(o.error)
            continue
        report.answered += 1
        latencies.setdefault(o.model, []).append(o.finished - o.arrival.t)
    every = [x for values in latencies.values() for x in values]
    report.latency_p50_s = percentile(every, 0.5)
    report.latency_p95_s = percentile(every, 0.95)
    report.fallbacks = {reason: int(stats.get(f"{reason}_fallbacks", 0)) for reason in _REASONS}
    for o in sorted(outcomes, key=lambda o: o.arrival.t):
        for kind in o.passed_over:
            reason = kind if kind in _REASONS else "other"
            report.fallback_first_s.setdefault(reason, o.arrival.t)
    report.waits = {k: float(v) for k, v in sched["waits"].items()}
    report.retries = int(sched.get("retries", 0))
    report.total_cost_usd = float(summary.get("total_cost", 0.0))
    report.unpriced_calls = int(summary.get("unpriced_calls", 0))
    if errors:
        report.notes.append(
            f"{len(errors):,} requests failed with an error; the first: {errors[0]}"
        )
    for name in router.names:
        key = name.split("#", 1)[0]
        provider = providers[key]
        entry = stats["by_model"].get(name, {})
        result = report.models.get(key)
        if result is None:
            result = ModelResult(name=key, limits=dict(provider.limits))
            served = provider.served
            result.served = len(served)
            result.input_tokens = sum(s.input_tokens for s in served)
            result.output_tokens = sum(s.output_tokens for s in served)
            result.provider_429s = dict(provider.rate_limited)
            result.context_overflows = provider.context_overflows
            result.bad_requests = provider.bad_requests
            result.cost_usd = entry.get("cost", 0.0)
            values = latencies.get(name, [])
            result.latency_p50_s = percentile(values, 0.5)
            result.latency_p95_s = percentile(values, 0.95)
            by_model = sched["by_model"].get(key, {})
            admitted = by_model.get("admitted", 0)
            result.mean_wait_s = by_model.get("wait_total_s", 0.0) / admitted if admitted else 0.0
            result.served_at = sorted(s.t for s in served)
            result.mean_service_s = (
                sum(s.t - s.admitted for s in served) / len(served) if served else 0.0
            )
            result.context_window = provider.spec.context_window
            result.peak_60s = _busiest(served)
            report.models[key] = result
        for kind, n in entry.get("failures", {}).items():
            result.skipped[kind] = result.skipped.get(kind, 0) + int(n)
    timeline = sorted(
        (s.t, float(s.cost)) for p in providers.values() for s in p.served if s.cost is not None
    )
    running = 0.0
    for t, cost in timeline:
        running += cost
        report.cost_timeline.append((t, running))


def _busiest(served: Sequence[Any]) -> dict[str, int]:
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
        inputs += call.input_tokens
        outputs += call.counted_output
        while calls[start].admitted <= call.admitted - _WINDOW_S:
            inputs -= calls[start].input_tokens
            outputs -= calls[start].counted_output
            start += 1
        peak["rpm"] = max(peak["rpm"], end - start + 1)
        peak["tpm"] = max(peak["tpm"], inputs + outputs)
        peak["itpm"] = max(peak["itpm"], inputs)
        peak["otpm"] = max(peak["otpm"], outputs)
    return peak
