"""``llm-routing demo``: one mixed workload, twice, against three simulated models.

Owns the workload, both runs (plain ``ChatOpenAI`` clients, then `build_router`'s guard,
scheduler and tracker over the same clients), the live progress display, the side-by-side
report and ``--live`` (real providers, a tiny workload, a cost cap). Routing, waiting and
pricing are the package's own; the provider is ``sim.server``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.latency import Latency
from llm_routing.sim.model import SimModel
from llm_routing.sim.server import SimulatedProvider, default_models

if TYPE_CHECKING:
    from llm_routing.catalog import Catalog

__all__ = [
    "Comparison",
    "DemoReport",
    "ModelReport",
    "RoutedReport",
    "demo_main",
    "demo_models",
    "run_comparison",
    "run_demo",
]

_DEMO_LATENCY = Latency(ttft=0.15, per_token=0.01, jitter=0.3)
DEFAULT_FACTOR = 10.0
"""How much faster than real time the demo's clock runs: a minute window passes in 6 s.

Not faster: the simulator enforces limits per second, as OpenAI documents, and a fast clock
magnifies the real jitter between admission and arrival by the same factor (at 30x, a loaded
machine's few milliseconds became second-scale bunching and drew 429s the pacing avoids in
real time)."""
_EXIT_NO_KEY = 2
_LIVE_MODELS = (
    ("OPENAI_API_KEY", "openai:gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic:claude-haiku-4-5"),
    ("GOOGLE_API_KEY", "google_genai:gemini-2.5-flash"),
)
_Tick = Callable[[str], None]


def demo_models(latency: Latency = _DEMO_LATENCY) -> list[SimModel]:
    """The demo's three models (``default_models``) with a visible latency."""
    return [replace(m, latency=latency) for m in default_models()]


@dataclass(frozen=True, slots=True)
class _Job:
    kind: str
    model: str
    prompt: str
    max_tokens: int


def _workload(seed: int) -> list[list[_Job]]:
    """Waves of concurrent jobs: what a naive app sends, each to the model it hard-codes."""
    rng = random.Random(seed)

    def text(tokens: int) -> str:
        return sim_tokens.reply_text(rng, tokens)

    chats = [_Job("chat", "sim-mini", f"Question {i}: {text(20)}?", 256) for i in range(70)]
    long_docs = [
        _Job("long document", "sim-mini", f"Summarise this report:\n{text(24_000)}", 512)
        for _ in range(3)
    ]
    reports = [
        _Job("report", "sim-standard", f"Review this contract:\n{text(12_000)}", 2_000)
        for _ in range(5)
    ]
    burst = [_Job("burst", "sim-standard", f"Classify: {text(30)}", 64) for _ in range(20)]
    archive = [
        # Six: sim-long allows 5 a minute, paced as 3 after the margin; more would leave some
        # archive with no model able to take it within max_wait.
        _Job("archive", "sim-long", f"Index this archive:\n{text(3_000)}", 1_000)
        for _ in range(6)
    ]
    return [chats[:35] + long_docs, reports + archive, chats[35:] + burst]


@dataclass(slots=True)
class ModelReport:
    """What one model did for the workload, as the client saw it."""

    requests: int = 0
    successes: int = 0
    rate_limited_requests: int = 0
    rate_limited_tokens: int = 0
    context_overflows: int = 0
    other_errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = Decimal(0)

    @property
    def rate_limited(self) -> int:
        """429s of either kind."""
        return self.rate_limited_requests + self.rate_limited_tokens


@dataclass(slots=True)
class DemoReport:
    """The outcome of ``run_demo``: per-model counts and the wall time."""

    models: dict[str, ModelReport] = field(default_factory=dict)
    seconds: float = 0.0
    server_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        """Requests sent in total."""
        return sum(m.requests for m in self.models.values())

    @property
    def successes(self) -> int:
        """Requests answered."""
        return sum(m.successes for m in self.models.values())

    @property
    def failures(self) -> int:
        """Requests that failed, for any reason."""
        return self.requests - self.successes

    def rows(self) -> list[list[str]]:
        """The table body: one row per model, then the totals."""
        rows = []
        for name, m in self.models.items():
            rows.append([name, *_cells(m)])
        total = ModelReport()
        for m in self.models.values():
            for attr in (
                "requests",
                "successes",
                "rate_limited_requests",
                "rate_limited_tokens",
                "context_overflows",
                "other_errors",
                "input_tokens",
                "output_tokens",
            ):
                setattr(total, attr, getattr(total, attr) + getattr(m, attr))
            total.cost_usd = (
                None
                if total.cost_usd is None or m.cost_usd is None
                else total.cost_usd + m.cost_usd
            )
        rows.append(["total", *_cells(total)])
        return rows

    def summary(self) -> str:
        """The one-paragraph moral of the run."""
        overflows = sum(m.context_overflows for m in self.models.values())
        limited = sum(m.rate_limited for m in self.models.values())
        return (
            f"{self.requests} requests in {self.seconds:.1f} s: {self.successes} answered, "
            f"{limited} rate-limited (429), {overflows} too long for the model they were sent "
            f"to. Without routing, every one of those is an exception in your app; a scheduler "
            f"would have waited for capacity and a guard would have sent the long documents to "
            f"a larger-context model."
        )

    def __str__(self) -> str:
        header = ["model", *_HEADERS]
        table = [header, *self.rows()]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in table
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([*lines, "", self.summary()])

    def print(self, console: Any = None) -> None:
        """Print the report as a rich table (plain text when rich is not installed)."""
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            print(self)
            return
        console = console or Console()
        table = Table(title="Simulated provider, no routing")
        table.add_column("model", no_wrap=True)
        for header in _HEADERS:
            table.add_column(header, justify="right", no_wrap=True)
        rows = self.rows()
        for i, row in enumerate(rows):
            table.add_row(*row, end_section=i == len(rows) - 2)
        console.print(table)
        console.print(self.summary())


_HEADERS = ("sent", "ok", "429 req", "429 tok", "too long", "other", "cost $")


def _cells(m: ModelReport) -> list[str]:
    cost = "unknown" if m.cost_usd is None else f"{m.cost_usd:.4f}"
    return [
        str(m.requests),
        str(m.successes),
        str(m.rate_limited_requests),
        str(m.rate_limited_tokens),
        str(m.context_overflows),
        str(m.other_errors),
        cost,
    ]


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
    waves = _workload(seed)
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
    base_url: str, waves: list[list[_Job]], report: DemoReport, advance: _Tick
) -> None:
    clients = {name: _client(base_url, name) for name in report.models}
    for wave in waves:
        await asyncio.gather(*(_one(clients[job.model], job, report, advance) for job in wave))


async def _one(llm: Any, job: _Job, report: DemoReport, advance: _Tick) -> None:
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


# --------------------------------------------------------------------------- the routed run


@dataclass(slots=True)
class RoutedReport:
    """What the app saw through the router, and what the router and the provider counted."""

    requests: int = 0
    answered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    fallbacks: dict[str, int] = field(default_factory=dict)
    waits: dict[str, float] = field(default_factory=dict)
    retries: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    server_stats: dict[str, Any] = field(default_factory=dict)
    first_error: str | None = None

    @property
    def failures(self) -> int:
        """Requests that raised in the app (every model of the chain failed)."""
        return sum(self.errors.values())


_REASONS = ("rate_limit", "context", "quota", "budget", "transient", "other")
_ERROR_LABELS = {"rate_limit": "rate limited (429)", "context": "too long for the model"}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _sim_catalog(models: Sequence[SimModel]) -> Catalog:
    """The default catalogue plus the simulated models, for the guard, scheduler and tracker."""
    from llm_routing.catalog import Limits, ModelSpec, default_catalog

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
    from llm_routing.router import build_router

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
    waves: list[list[_Job]],
    report: RoutedReport,
    clock: Any,
    max_wait: float,
    advance: _Tick,
) -> None:
    from llm_routing.cost import CostTracker
    from llm_routing.errors import AllModelsFailedError, classify
    from llm_routing.guard import ContextGuard
    from llm_routing.schedule import RateScheduler

    catalog = _sim_catalog(models)
    scheduler = RateScheduler(clock=clock, catalog=catalog, max_wait=max_wait)
    tracker = CostTracker(catalog=catalog)
    stack = {"guard": ContextGuard(catalog=catalog), "scheduler": scheduler, "tracker": tracker}
    clients = {m.name: _client(base_url, m.name) for m in models}
    routes = _routes(models, clients, stack)

    async def one(job: _Job) -> None:
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
    merged: dict[str, int] = dict.fromkeys(_REASONS, 0)
    for router in routes.values():
        counts = router.stats()
        for reason in _REASONS:
            merged[reason] += int(counts.get(f"{reason}_fallbacks", 0))
    report.fallbacks = merged
    report.waits = {k: float(v) for k, v in stats.get("waits", {}).items()}
    report.retries = int(stats.get("retries", 0))
    report.cost_usd = float(tracker.summary().get("total_cost", 0.0))


# --------------------------------------------------------------------------- side by side


@dataclass(slots=True)
class Comparison:
    """The same workload through plain clients and through a router, on the same simulator."""

    plain: DemoReport
    routed: RoutedReport
    factor: float
    max_wait: float

    def served(self, stats: Mapping[str, Any]) -> dict[str, int]:
        """Requests each model answered, as the provider counted them."""
        return {name: int(m["requests_served"]) for name, m in stats.get("models", {}).items()}

    @staticmethod
    def _provider(stats: Mapping[str, Any], key: str) -> int:
        total = 0
        for m in stats.get("models", {}).values():
            value = m.get(key, 0)
            total += sum(value.values()) if isinstance(value, dict) else int(value)
        return total

    def _plain_errors(self) -> dict[str, int]:
        models = self.plain.models.values()
        errors = {
            "rate_limit": sum(m.rate_limited for m in models),
            "context": sum(m.context_overflows for m in models),
            "other": sum(m.other_errors for m in models),
        }
        return {k: v for k, v in errors.items() if v}

    def _plain_cost(self) -> float | None:
        total = Decimal(0)
        for m in self.plain.models.values():
            if m.cost_usd is None:
                return None
            total += m.cost_usd
        return float(total)

    def rows(self) -> list[tuple[str, str, str]]:
        """``(what, plain, routed)`` rows of the report."""
        plain, routed = self.plain, self.routed
        p_stats, r_stats = plain.server_stats, routed.server_stats
        p_errors, r_errors = self._plain_errors(), routed.errors
        waits = routed.waits
        p_cost = self._plain_cost()
        rows = [
            ("requests sent by the app", str(plain.requests), str(routed.requests)),
            ("answered", str(plain.successes), str(routed.answered)),
            ("errors surfaced to the app", str(plain.failures), str(routed.failures)),
        ]
        for kind in sorted(set(p_errors) | set(r_errors)):
            label = _ERROR_LABELS.get(kind, kind.replace("_", " "))
            rows.append((f"  {label}", str(p_errors.get(kind, 0)), str(r_errors.get(kind, 0))))
        p_served, r_served = self.served(p_stats), self.served(r_stats)
        for name in p_served:
            rows.append((f"served by {name}", str(p_served[name]), str(r_served.get(name, 0))))
        rows += [
            (
                "429s from the provider",
                str(self._provider(p_stats, "rate_limited")),
                str(self._provider(r_stats, "rate_limited")),
            ),
            (
                "context errors from the provider",
                str(self._provider(p_stats, "context_length_exceeded")),
                str(self._provider(r_stats, "context_length_exceeded")),
            ),
        ]
        for reason in _REASONS:
            count = routed.fallbacks.get(reason, 0)
            if count or reason in ("rate_limit", "context"):
                rows.append((f"fallbacks: {reason.replace('_', ' ')}", "—", str(count)))
        rows += [
            (
                "waits p50 / p95 (simulated)",
                "—",
                f"{waits.get('p50_s', 0.0):.1f} s / {waits.get('p95_s', 0.0):.1f} s",
            ),
            ("total time", f"{plain.seconds:.1f} s", f"{routed.seconds:.1f} s"),
            (
                "  simulated",
                _minutes(plain.seconds * self.factor),
                _minutes(routed.seconds * self.factor),
            ),
            (
                "total cost",
                "unknown" if p_cost is None else f"${p_cost:.4f}",
                f"${routed.cost_usd:.4f}",
            ),
        ]
        return rows

    def summary(self) -> str:
        """The moral of the run, from its numbers."""
        plain, routed = self.plain, self.routed
        waited = routed.fallbacks.get("rate_limit", 0)
        too_long = routed.fallbacks.get("context", 0)
        drawn = self._provider(routed.server_stats, "rate_limited")
        plain_drawn = self._provider(plain.server_stats, "rate_limited")
        if drawn:
            # Each was retried after its Retry-After; say why there were any at all.
            drew = (
                f"drew {drawn} 429(s) where the plain run drew {plain_drawn} (the simulator "
                "enforces limits per second, as OpenAI documents, and its fast clock magnifies "
                f"timing jitter {self.factor:g}-fold; each was retried after its Retry-After)"
            )
        else:
            drew = "drew no 429 from the provider"
        text = (
            f"Without routing, {plain.failures} of {plain.requests} requests raised in the app; "
            f"through the router, {routed.failures}. The scheduler paced requests to the "
            f"provider's per-second rate, {drew}, and fell back {waited} time(s) when a wait "
            f"would have passed max_wait ({self.max_wait:g} s); the guard moved {too_long} "
            f"input(s) too long for "
            f"their model to one whose window fits, before any request was sent. The clock runs "
            f"{self.factor:g}x faster than real time: a one-minute window passes in "
            f"{60 / self.factor:.0f} s."
        )
        if routed.first_error:
            text += f" First error through the router: {routed.first_error.splitlines()[0]}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers of both runs (``llm-routing demo --json``)."""
        p_stats, r_stats = self.plain.server_stats, self.routed.server_stats
        return {
            "clock_factor": self.factor,
            "max_wait_s": self.max_wait,
            "plain": {
                "requests": self.plain.requests,
                "answered": self.plain.successes,
                "errors": self._plain_errors(),
                "served_by": self.served(p_stats),
                "provider_429s": self._provider(p_stats, "rate_limited"),
                "provider_context_errors": self._provider(p_stats, "context_length_exceeded"),
                "seconds": round(self.plain.seconds, 3),
                "cost_usd": self._plain_cost(),
            },
            "routed": {
                "requests": self.routed.requests,
                "answered": self.routed.answered,
                "errors": dict(self.routed.errors),
                "served_by": self.served(r_stats),
                "provider_429s": self._provider(r_stats, "rate_limited"),
                "provider_context_errors": self._provider(r_stats, "context_length_exceeded"),
                "fallbacks": dict(self.routed.fallbacks),
                "waits": dict(self.routed.waits),
                "retries": self.routed.retries,
                "seconds": round(self.routed.seconds, 3),
                "cost_usd": self.routed.cost_usd,
            },
        }

    def __str__(self) -> str:
        rows = [("", "plain ChatOpenAI", "router"), *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            "  ".join(
                (c.ljust(w) if i == 0 else c.rjust(w))
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
            for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([self.title(), *lines, "", self.summary()])

    def title(self) -> str:
        """What was compared."""
        return (
            "One workload, one simulated provider: plain ChatOpenAI vs "
            "build_router (guard | scheduler | tracker)"
        )

    def print(self, console: Any = None) -> None:
        """Print as a rich table (plain text when rich is not installed)."""
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            print(self)
            return
        console = console or Console()
        table = Table(title=self.title(), title_justify="left")
        table.add_column("", no_wrap=True)
        table.add_column("plain ChatOpenAI", justify="right")
        table.add_column("router", justify="right")
        for label, plain, routed in self.rows():
            table.add_row(label, plain, routed)
        console.print(table)
        console.print(self.summary(), markup=False)


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
    from llm_routing.schedule import ScaledClock

    chosen = list(models) if models is not None else demo_models()
    clock = ScaledClock(factor)
    waves = _workload(seed)
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


# --------------------------------------------------------------------------- --live


def _live(budget: float, as_json: bool) -> int:
    """Three small requests through a router over the providers whose keys are set."""
    chosen = [model for env, model in _LIVE_MODELS if os.environ.get(env)]
    if not chosen:
        names = ", ".join(env for env, _ in _LIVE_MODELS)
        print(
            f"llm-routing demo --live: no API key found; set at least one of {names}. "
            "(`llm-routing demo` without --live runs on the simulator and needs none.)",
            file=sys.stderr,
        )
        return _EXIT_NO_KEY
    from llm_routing.cost import CostTracker
    from llm_routing.errors import AllModelsFailedError
    from llm_routing.router import build_router

    tracker = CostTracker(budget_usd=budget)
    try:
        router = build_router(chosen[0], chosen[1:], tracker=tracker, init_kwargs={"timeout": 60})
    except ImportError as exc:
        print(f"llm-routing demo --live: {exc}", file=sys.stderr)
        return _EXIT_NO_KEY
    rng = random.Random(0)
    prompts = [
        "In one sentence: what is a rate limit?",
        "Name three prime numbers.",
        "Summarise in one sentence:\n" + sim_tokens.reply_text(rng, 1_500),
    ]

    async def one(prompt: str) -> str:
        try:
            message = await router.ainvoke(prompt, max_tokens=64)
        except AllModelsFailedError as exc:
            reasons = ", ".join(f"{a.model}: {a.kind.value}" for a in exc.attempts)
            return f"refused ({reasons})"
        return str(message.response_metadata.get("llm_routing.model"))

    async def run() -> list[str]:
        return list(await asyncio.gather(*(one(p) for p in prompts)))

    served = asyncio.run(run())
    stats = router.stats()
    summary = tracker.summary()
    if as_json:
        json.dump({"served": served, "stats": stats, "cost": summary}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{len(prompts)} requests through {' -> '.join(router.names)}, cost cap ${budget:g}")
    for prompt, outcome in zip(prompts, served, strict=True):
        print(f"  {prompt.splitlines()[0][:40]!r}: {outcome}")
    print(
        f"fallbacks: rate limit {stats['rate_limit_fallbacks']}, context "
        f"{stats['context_fallbacks']}, budget {stats['budget_fallbacks']}; "
        f"cost ${summary['total_cost']:.6f}"
    )
    return 0


# --------------------------------------------------------------------------- CLI


def _positive(kind: type[float], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def demo_main(argv: Sequence[str] | None = None) -> int:
    """``llm-routing demo`` / ``python -m llm_routing.sim demo``: run the demo, print the report."""
    parser = argparse.ArgumentParser(
        prog="llm-routing demo",
        description="Send a mixed workload (chats, long documents, bursts) to three simulated "
        "models twice: through plain ChatOpenAI clients, and through a router (guard, "
        "scheduler, tracker). Prints both side by side. No API key needed.",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the workload and faults")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.add_argument(
        "--factor",
        type=_positive(float, "a number > 0"),
        default=DEFAULT_FACTOR,
        help=f"how much faster than real time the clock runs (default {DEFAULT_FACTOR:g})",
    )
    parser.add_argument(
        "--max-wait",
        type=_positive(float, "a number of seconds > 0"),
        default=90.0,
        help="the scheduler's max_wait, in simulated seconds (default 90)",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument(
        "--plain-only", action="store_true", help="only the run without routing (no clock speed-up)"
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="real providers (OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY): three small "
        "requests through a router, under a cost cap",
    )
    parser.add_argument(
        "--budget",
        type=_positive(float, "a USD amount > 0"),
        default=0.05,
        help="with --live: the cost cap in USD (default 0.05)",
    )
    args = parser.parse_args(argv)
    if args.live:
        return _live(args.budget, args.json)
    if args.plain_only:
        report = run_demo(seed=args.seed, progress=not args.no_progress and not args.json)
        if args.json:
            json.dump(
                {name: _model_json(m) for name, m in report.models.items()}, sys.stdout, indent=2
            )
            sys.stdout.write("\n")
        else:
            report.print()
        return 0
    comparison = run_comparison(
        seed=args.seed,
        factor=args.factor,
        max_wait=args.max_wait,
        progress=not args.no_progress and not args.json,
    )
    if args.json:
        json.dump(comparison.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        comparison.print()
    return 0


def _model_json(m: ModelReport) -> dict[str, Any]:
    return {
        "requests": m.requests,
        "answered": m.successes,
        "rate_limited": m.rate_limited,
        "context_overflows": m.context_overflows,
        "other_errors": m.other_errors,
        "cost_usd": None if m.cost_usd is None else float(m.cost_usd),
    }
