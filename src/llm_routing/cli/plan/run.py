"""``simulate``: a router config under a workload, in virtual time, and its report.

The router is the package's own (``from_config``'s guard, fallbacks and large-context models,
a ``RateScheduler`` and a ``CostTracker`` on a ``VirtualClock``); only the providers are
simulated, by the simulator itself (one ``sim.state.SimState`` answering through
``sim.inprocess.SimChatModel``, in virtual time). Reading the config is ``section``, the
workload ``workload``, the figures ``report``.
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
from llm_routing.cli.plan.report import SimulationReport, percentile
from llm_routing.cli.plan.section import Plan, read_plan, relabel
from llm_routing.cli.plan.served import fill_models
from llm_routing.cli.plan.workload import Arrival
from llm_routing.cost import CostTracker
from llm_routing.errors import AllModelsFailedError, classify
from llm_routing.router.from_config import from_config
from llm_routing.schedule import RateScheduler, VirtualClock
from llm_routing.sim import Latency, SimModel
from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.inprocess import ANSWER_TOKENS, SimCall, SimChatModel
from llm_routing.sim.state import SimState

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
_ANSWER_SHARE = 0.25  # an answer without output_tokens: between this share of max_tokens and all
_LIMITS = ("rpm", "tpm", "rpd", "itpm", "otpm")
#: How the simulated providers enforce their limits: what counts as each provider documents
#: (``SimModel.from_spec``), but over the exact sliding log rather than the documented
#: per-second share (``"quantized"``) and without charging refused requests, as the planner's
#: own providers did before it drove the simulator. With the documented enforcement, Anthropic's
#: OTPM per-second share, charged with the real output at completion, refuses calls the
#: scheduler admitted (3 token 429s, cause ``per_second``, in 574 answers at 5 req/s on mini +
#: haiku, 120 s): until the scheduler paces that, the planner would report 429s the scheduler
#: is meant to prevent.
_ENFORCEMENT = {"enforcement": "sliding", "failed_requests_count": False}


def simulate(
    config: Mapping[str, Any] | str | os.PathLike[str],
    workload: Sequence[Arrival],
    duration_s: float | None = None,
    seed: int = 0,
) -> SimulationReport:
    """Run ``workload`` through the router ``config`` describes, in virtual time.

    The router is built by ``from_config`` (its guard, fallbacks and large-context models as
    in production) with a `RateScheduler` and a `CostTracker` on a `VirtualClock`, over
    the simulator's models shaped like the configured ones: the catalogue's context window,
    output cap, prices and the tier's limits (or the config's ``[simulate]`` overrides),
    counted the way each provider documents (``SimModel.from_spec``) in exact sliding windows,
    answering in process after a latency model. Requests with
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
            served: list[SimCall] = []
            state, models = _providers(plan, scheduler, price_catalog, clock, seed, served)
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
        outcomes = asyncio.run(_drive(router, sent, clock, seed))
        report.wall_s = time.perf_counter() - started
    for warning in caught:
        text = str(warning.message)
        if text not in report.notes:
            report.notes.append(text)
    stats, sched = router.stats(), scheduler.stats()
    _fill(report, outcomes, stats, sched, tracker.summary(), clock.now())
    by = (stats["by_model"], sched["by_model"])
    fill_models(report, router.names, by, state, served, price_catalog, latencies(outcomes))
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


def _sim_models(specs: Sequence[ModelSpec], limits: Any, latency: Any) -> list[SimModel]:
    """The simulator's twin of each distinct model, with the limits ``limits(key)`` gives."""
    models: dict[str, SimModel] = {}
    for spec in specs:
        if spec.key not in models:
            shape = limits(spec.key)
            models[spec.key] = SimModel.from_spec(
                spec, tier=None, follow_docs=True, latency=latency, **_ENFORCEMENT, **shape
            )
    return list(models.values())


def _placeholder(spec: ModelSpec) -> SimChatModel:
    """A model for checking the config: the right name and provider, never called."""
    state = SimState(_sim_models([spec], lambda key: {}, Latency()))
    return SimChatModel(state=state, model_name=spec.name, provider=spec.provider)


def _providers(
    plan: Plan, scheduler: Any, prices: Catalog, clock: Any, seed: int, served: list[SimCall]
) -> tuple[SimState, list[SimChatModel]]:
    """One simulator for every model of the router, and a chat model per router entry."""
    specs = [prices.get(plan.specs[name].key) for name in plan.names]

    def limits(key: str) -> dict[str, int | None]:
        found = scheduler.limits_for(key)
        return {k: getattr(found, k) for k in _LIMITS}

    state = SimState(_sim_models(specs, limits, plan.latency), seed=seed, clock=clock.now)
    models = [
        SimChatModel(
            state=state,
            model_name=spec.name,
            provider=spec.provider,
            clock=clock,
            on_served=served.append,
        )
        for spec in specs
    ]
    return state, models


@dataclass(slots=True)
class _Outcome:
    arrival: Arrival
    finished: float
    model: str | None = None
    failure: str | None = None
    error: str | None = None
    passed_over: tuple[str, ...] = ()  # the kind of each model's failure, in order


async def _drive(router: Any, arrivals: Sequence[Arrival], clock: Any, seed: int) -> list[_Outcome]:
    rng = random.Random(0)
    lengths = random.Random(f"{seed}:answers")
    prompts: dict[int, str] = {}
    outcomes: list[_Outcome] = []

    async def one(arrival: Arrival, answer_tokens: int) -> None:
        ANSWER_TOKENS.set(answer_tokens)  # this task's context only
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
        answer = arrival.output_tokens
        if answer is None:  # drawn here, in arrival order, so a seed gives one workload
            cap = arrival.max_tokens
            answer = lengths.randint(min(max(1, math.ceil(cap * _ANSWER_SHARE)), cap), cap)
        tasks.append(asyncio.create_task(one(arrival, answer)))
    await asyncio.gather(*tasks)
    return outcomes


def latencies(outcomes: Sequence[_Outcome]) -> dict[str | None, list[float]]:
    """Arrival-to-answer seconds of the answered requests, by the router entry that answered."""
    found: dict[str | None, list[float]] = {}
    for o in outcomes:
        if o.failure is None:
            found.setdefault(o.model, []).append(o.finished - o.arrival.t)
    return found


def _fill(
    report: SimulationReport,
    outcomes: Sequence[_Outcome],
    stats: Mapping[str, Any],
    sched: Mapping[str, Any],
    summary: Mapping[str, Any],
    now: float,
) -> None:
    """The run's totals: requests, failures, latency, fallbacks, waits and cost."""
    report.requests = len(outcomes)
    report.simulated_s = now
    errors: list[str] = []
    for o in outcomes:
        if o.failure is not None:
            report.failed[o.failure] = report.failed.get(o.failure, 0) + 1
            if o.error is not None:
                errors.append(o.error)
            continue
        report.answered += 1
    every = [x for values in latencies(outcomes).values() for x in values]
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
