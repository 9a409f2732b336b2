"""The first demo: a mixed workload against three simulated models, with no routing at all.

Owns the workload, running it through plain ``ChatOpenAI`` clients with a progress bar, and the
report. It shows the problem the rest of the package solves (429s, a context overflow, an idle
large-context model); it does not route or retry.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from llm_routing.sim import _tokens
from llm_routing.sim.config import SimModel
from llm_routing.sim.latency import Latency
from llm_routing.sim.server import SimulatedProvider, default_models

__all__ = ["DemoReport", "ModelReport", "demo_main", "demo_models", "run_demo"]

_DEMO_LATENCY = Latency(ttft=0.15, per_token=0.01, jitter=0.3)


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
        return _tokens.reply_text(rng, tokens)

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
        _Job("archive", "sim-long", f"Index this archive:\n{text(3_000)}", 1_000) for _ in range(8)
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
    """Start the simulator, send the mixed workload through ``ChatOpenAI``, return the report.

    ``progress`` shows a rich progress bar on ``console`` (stderr by default) while it runs.
    Needs the ``sim`` extra (starlette, uvicorn, langchain-openai, rich).
    """
    chosen = list(models) if models is not None else demo_models()
    report = DemoReport(models={m.name: ModelReport() for m in chosen})
    waves = _workload(seed)
    total = sum(len(w) for w in waves)
    start = time.perf_counter()
    with SimulatedProvider(chosen, seed=seed) as sim:
        if progress:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(
                TextColumn("[bold]sending workload"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                console=console or Console(stderr=True),
                transient=True,
            ) as bar:
                task = bar.add_task("", total=total)

                def advance(note: str) -> None:
                    bar.update(task, advance=1, description=note)

                asyncio.run(_run(sim.base_url, waves, report, advance))
        else:
            asyncio.run(_run(sim.base_url, waves, report, lambda _note: None))
        report.server_stats = sim.stats()
    report.seconds = time.perf_counter() - start
    prices = {m.name: m.price for m in chosen}
    for name, m in report.models.items():
        price = prices.get(name)
        if price is None or price.input is None or price.output is None:
            m.cost_usd = None
            continue
        m.cost_usd = (price.input * m.input_tokens + price.output * m.output_tokens) / 1_000_000
    return report


async def _run(
    base_url: str, waves: list[list[_Job]], report: DemoReport, advance: Callable[[str], None]
) -> None:
    from langchain_openai import ChatOpenAI

    clients = {
        name: ChatOpenAI(
            model=name,
            base_url=base_url,
            api_key="sim",  # type: ignore[arg-type]
            max_retries=0,
            timeout=30,
        )
        for name in report.models
    }
    for wave in waves:
        await asyncio.gather(*(_one(clients[job.model], job, report, advance) for job in wave))


async def _one(llm: Any, job: _Job, report: DemoReport, advance: Callable[[str], None]) -> None:
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


def demo_main(argv: Sequence[str] | None = None) -> int:
    """``llm-routing demo`` / ``python -m llm_routing.sim demo``: run the demo, print the report."""
    parser = argparse.ArgumentParser(
        prog="llm-routing demo",
        description="Send a mixed workload to three simulated models without routing, and "
        "report what went wrong (no API keys needed).",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the workload and faults")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    args = parser.parse_args(argv)
    report = run_demo(seed=args.seed, progress=not args.no_progress)
    report.print()
    return 0
