"""The demo's two runs against one simulator: plain ``ChatOpenAI`` clients, then a router.

The router is ``build_router``'s guard, scheduler and tracker over the same clients, sharing
one ``ScaledClock`` with the simulator so that one-minute windows pass in seconds. The live
progress bars are here too; what the runs counted is ``report``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from llm_routing.catalog import Catalog, Limits, ModelSpec, default_catalog
from llm_routing.cli.demo.report import REASONS, Comparison, DemoReport, ModelReport, RoutedReport
from llm_routing.cli.demo.workload import Job, demo_models, workload
from llm_routing.cost import CostTracker
from llm_routing.errors import AllModelsFailedError, classify
from llm_routing.guard import ContextGuard
from llm_routing.router import build_router
from llm_routing.schedule import RateScheduler, ScaledClock
from llm_routing.sim.model import SimModel
from llm_routing.sim.server import SimulatedProvider

__all__ = ["DEFAULT_FACTOR", "run_comparison", "run_demo"]

DEFAULT_FACTOR = 10.0
"""How much faster than real time the demo's clock runs: a minute window passes in 6 s.

Not faster: the simulator enforces limits per second, as OpenAI documents, and a fast clock
magnifies the real jitter between admission and arrival by the same factor (at 30x, a loaded
machine's few milliseconds became second-scale bunching and drew 429s the pacing avoids in
real time)."""
_Tick = Callable[[str], None]


def run_demo(
    *,
    seed: int = 0,
    models: Sequence[SimModel] | None = None,
    console: Any = None,
    progress: bool = True,
) -> DemoReport:
    """Start the simulator, send the mixed workload through plain ``ChatOpenAI``, return the report.

    The plain run alone, in real time (`run_comparison` runs it next to a router).
    ``progress`` shows a rich progress bar on ``console`` (stderr by default) while it runs.
    Needs the ``sim`` extra (starlette, uvicorn, langchain-openai, rich).
    """
    chosen = list(models) if models is not None else demo_models()
    report = DemoReport(models={m.name: ModelReport() for m in chosen})
    waves = workload(seed)
    total = sum(len(w) for w in waves)
    start = time.perf_counter()
    with (
        SimulatedProvider(chosen, seed=seed) as sim,
        _progress(console, progress, total, {"plain": "sending workload"}) as tick,
    ):
        asyncio.run(_run_plain(sim.base_url, waves, report, tick("plain")))
        report.server_stats = sim.stats()
    report.seconds = time.perf_counter() - start
    _price_plain(report, chosen)
    return report


def _price_plain(report: DemoReport, models: Sequence[SimModel]) -> None:
    prices = {m.name: m.price for m in models}
    for name, m in report.models.items():
        price = prices.get(name)
        if price is None or price.input is None or price.output is None:
            m.cost_usd = None
            continue
        m.cost_usd = (price.input * m.input_tokens + price.output * m.output_tokens) / 1_000_000


@contextlib.contextmanager
def _progress(
    console: Any, enabled: bool, total: int, labels: Mapping[str, str]
) -> Iterator[Callable[[str], _Tick]]:
    """One progress bar per run; yields ``tick_for(run)``, whose result advances that bar."""
    if not enabled:
        yield lambda _run: lambda _note: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    width = max(len(label) for label in labels.values())
    with Progress(
        TextColumn(f"[bold]{{task.fields[label]:<{width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console or Console(stderr=True),
        transient=True,
    ) as bar:
        tasks = {run: bar.add_task("", total=total, label=label) for run, label in labels.items()}

        def tick_for(run: str) -> _Tick:
            def tick(note: str) -> None:
                bar.update(tasks[run], advance=1, description=note)

            return tick

        yield tick_for


def _client(base_url: str, name: str) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=name,
        base_url=base_url,
        api_key="sim",  # type: ignore[arg-type]
        max_retries=0,
        timeout=30,
    )


async def _run_plain(
    base_url: str, waves: list[list[Job]], report: DemoReport, advance: _Tick
) -> None:
    clients = {name: _client(base_url, name) for name in report.models}
    for wave in waves:
        await asyncio.gather(*(_one(clients[job.model], job, report, advance) for job in wave))


async def _one(llm: Any, job: Job, report: DemoReport, advance: _Tick) -> None:
    from langchain_core.exceptions import ContextOverflowError, ModelRateLimitError

    stats = report.models[job.model]
    stats.requests += 1
    try:
        message = await llm.bind(max_tokens=job.max_tokens).ainvoke(job.prompt)
    except ContextOverflowError:
        stats.context_overflows += 1
        advance(f"{job.kind} → {job.model}: context overflow")
        return
    except ModelRateLimitError as exc:
        body = getattr(exc, "body", None)
        if isinstance(body, dict) and body.get("type") == "tokens":
            stats.rate_limited_tokens += 1
        else:
            stats.rate_limited_requests += 1
        advance(f"{job.kind} → {job.model}: 429")
        return
    except Exception:  # the demo reports every other failure as a number, never a traceback
        stats.other_errors += 1
        advance(f"{job.kind} → {job.model}: error")
        return
    stats.successes += 1
    usage = message.usage_metadata or {}
    stats.input_tokens += int(usage.get("input_tokens", 0))
    stats.output_tokens += int(usage.get("output_tokens", 0))
    advance(f"{job.kind} → {job.model}: ok")


# -- the routed run ---------------------------------------------------------------------------


def _sim_catalog(models: Sequence[SimModel]) -> Catalog:
    """The default catalogue plus the simulated models, for the guard, scheduler and tracker."""
    catalog = default_catalog().copy()
    for m in models:
        catalog.register(
            ModelSpec(
                provider="openai",
                name=m.name,
                context_window=m.context_window,
                max_output_tokens=m.max_output_tokens,
                tokenizer=m.tokenizer,
                price=m.price,
                rate_limits={
                    "tier1": Limits(rpm=m.rpm, tpm=m.tpm, rpd=m.rpd, itpm=m.itpm, otpm=m.otpm)
                },
                source="llm-routing demo (simulated)",
            ),
            replace=True,
        )
    return catalog


def _routes(
    models: Sequence[SimModel], clients: Mapping[str, Any], stack: Mapping[str, Any]
) -> dict[str, Any]:
    """One router per model the app names: that model first, then the others, in order.

    The three routers share one guard, scheduler and tracker, so they share the windows of
    every model and one cost ledger, as they would in one application.
    """
    names = [m.name for m in models]
    return {
        name: build_router(
            clients[name], [clients[other] for other in names if other != name], **stack
        )
        for name in names
    }


async def _run_routed(
    base_url: str,
    models: Sequence[SimModel],
    waves: list[list[Job]],
    report: RoutedReport,
    clock: Any,
    max_wait: float,
    advance: _Tick,
) -> None:
    catalog = _sim_catalog(models)
    scheduler = RateScheduler(clock=clock, catalog=catalog, max_wait=max_wait)
    tracker = CostTracker(catalog=catalog)
    stack = {"guard": ContextGuard(catalog=catalog), "scheduler": scheduler, "tracker": tracker}
    clients = {m.name: _client(base_url, m.name) for m in models}
    routes = _routes(models, clients, stack)

    async def one(job: Job) -> None:
        report.requests += 1
        try:
            message = await routes[job.model].ainvoke(job.prompt, max_tokens=job.max_tokens)
        except AllModelsFailedError as exc:
            kind = exc.attempts[-1].kind.value if exc.attempts else "other"
            report.errors[kind] = report.errors.get(kind, 0) + 1
            report.first_error = report.first_error or str(exc)
            advance(f"{job.kind} → every model failed ({kind})")
            return
        except Exception as exc:  # reported as a number, never a traceback
            kind = classify(exc).value
            report.errors[kind] = report.errors.get(kind, 0) + 1
            report.first_error = report.first_error or f"{type(exc).__name__}: {exc}"
            advance(f"{job.kind} → error ({kind})")
            return
        report.answered += 1
        served = str(message.response_metadata.get("llm_routing.model", "?")).split(":", 1)[-1]
        note = "" if served == job.model else " (fallback)"
        advance(f"{job.kind} → {served}{note}")

    for wave in waves:
        await asyncio.gather(*(one(job) for job in wave))
    stats = routes[models[0].name].stats()
    merged: dict[str, int] = dict.fromkeys(REASONS, 0)
    for router in routes.values():
        counts = router.stats()
        for reason in REASONS:
            merged[reason] += int(counts.get(f"{reason}_fallbacks", 0))
    report.fallbacks = merged
    report.waits = {k: float(v) for k, v in stats.get("waits", {}).items()}
    report.retries = int(stats.get("retries", 0))
    report.cost_usd = float(tracker.summary().get("total_cost", 0.0))


def run_comparison(
    *,
    seed: int = 0,
    models: Sequence[SimModel] | None = None,
    factor: float = DEFAULT_FACTOR,
    max_wait: float = 90.0,
    console: Any = None,
    progress: bool = True,
) -> Comparison:
    """Run the workload through plain clients, reset the simulator, run it through a router.

    The simulator and the router's scheduler share one `ScaledClock` (``factor`` times real
    time), so one-minute windows pass in seconds; ``max_wait`` is in that clock's seconds.
    Each job goes to a router whose primary is the model the plain run hard-codes, with the
    other models as fallbacks; all routers share one guard, scheduler and tracker.
    """
    chosen = list(models) if models is not None else demo_models()
    clock = ScaledClock(factor)
    waves = workload(seed)
    total = sum(len(w) for w in waves)
    plain = DemoReport(models={m.name: ModelReport() for m in chosen})
    routed = RoutedReport()
    labels = {"plain": "plain ChatOpenAI", "routed": "router"}
    with (
        SimulatedProvider(chosen, seed=seed, clock=clock.now) as sim,
        _progress(console, progress, total, labels) as tick,
    ):

        async def both() -> None:
            # One event loop for both runs: langchain-openai keeps one HTTP client per URL.
            start = time.perf_counter()
            await _run_plain(sim.base_url, waves, plain, tick("plain"))
            plain.seconds = time.perf_counter() - start
            plain.server_stats = sim.stats()
            sim.reset()
            start = time.perf_counter()
            await _run_routed(sim.base_url, chosen, waves, routed, clock, max_wait, tick("routed"))
            routed.seconds = time.perf_counter() - start
            routed.server_stats = sim.stats()

        asyncio.run(both())
    _price_plain(plain, chosen)
    return Comparison(plain, routed, factor, max_wait)
