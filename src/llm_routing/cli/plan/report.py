"""What a planner run found: ``SimulationReport`` and ``ModelResult``, as text, JSON or a plot.

Plain numbers filled in by ``run``; the printing (a rich table or aligned text, the summary
lines, ``--json``, the PNG) lives here so the run stays a run.

Every figure says what it is: rates per minute are averages over the simulated span (from 0
to the last answer, or to the end of the sending when that is later), because answers queued
by the scheduler arrive after the sending stops and dividing by the sending time alone would
report more tokens per minute than the limit allows; the limits themselves are set against the
busiest 60 s (what a sliding window bounds); latency is arrival to answer and includes the
scheduler's wait, so the two are printed together with the provider's own time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from llm_routing.cli._table import fmt_seconds, fmt_usd, rich_table, text_table

__all__ = ["BINDING_SHARE", "ModelResult", "SimulationReport", "percentile"]

BINDING_SHARE = 0.9
"""A limit is named as binding when its busiest 60 s reached this share of it."""
_LIMIT_LABELS = (("rpm", "RPM"), ("tpm", "TPM"), ("itpm", "input TPM"), ("otpm", "output TPM"))


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values`` (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass(slots=True)
class ModelResult:
    """What one model did in the simulation."""

    name: str
    limits: dict[str, int]
    served: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    provider_429s: dict[str, int] = field(default_factory=lambda: {"requests": 0, "tokens": 0})
    context_overflows: int = 0
    bad_requests: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = 0.0
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    mean_wait_s: float = 0.0
    mean_service_s: float = 0.0
    context_window: int | None = None
    peak_60s: dict[str, int] = field(default_factory=dict)
    served_at: list[float] = field(default_factory=list, repr=False)

    @property
    def rate_limited(self) -> int:
        """429s the provider returned, requests and tokens windows together."""
        return sum(self.provider_429s.values())

    def per_minute(self, seconds: float) -> tuple[float, float]:
        """Average requests and tokens (input + output) per minute over ``seconds``.

        Pass the simulated span (`SimulationReport.span_s`), not the sending time: calls the
        scheduler queued are answered after the sending stops.
        """
        minutes = seconds / 60 if seconds > 0 else 1.0
        return self.served / minutes, (self.input_tokens + self.output_tokens) / minutes

    def binding(self) -> list[str]:
        """What held this model back: a limit, the budget, the window; or nothing.

        A limit binds when its busiest 60 s reached `BINDING_SHARE` of it (the sliding
        window the provider and the scheduler enforce), or when calls were passed over for
        rate limits; the budget when calls were passed over because it could not cover them;
        the window when prompts did not fit.
        """
        out: list[str] = []
        limited = self.skipped.get("rate_limit", 0)
        shares = _shares(self)
        named = [k for k, share in shares.items() if share >= BINDING_SHARE]
        paced = ""
        if limited and not named and shares:
            # Calls waited past max_wait under a limit they never reached: the scheduler paces
            # admissions (per-second enforcement) and keeps a margin under each limit.
            named = [max(shares, key=lambda k: shares[k])]
            paced = ", paced by the scheduler under the limit"
        for key, label in _LIMIT_LABELS:
            if key in named:
                limit, peak = self.limits[key], self.peak_60s.get(key, 0)
                out.append(f"limit {label} {limit:,} (busiest 60 s: {peak:,}{paced})")
        rpd = self.limits.get("rpd")
        if rpd and self.served >= BINDING_SHARE * rpd:
            out.append(f"limit RPD {rpd:,} ({self.served:,} served)")
        if limited:
            note = f"{limited:,} calls passed over for rate limits"
            if out:
                out[-1] += f"; {note}"
            else:
                out.append(f"limit ({note})")
        if self.skipped.get("budget"):
            out.append(f"budget ({self.skipped['budget']:,} calls passed over)")
        overflows = self.skipped.get("context", 0) + self.context_overflows
        if overflows:
            window = f" {self.context_window:,}" if self.context_window else ""
            out.append(f"window{window} tokens ({overflows:,} prompts did not fit)")
        if not out:
            share = max(shares.values(), default=0.0)
            busiest = f" (busiest 60 s: {share:.0%} of its tightest limit)" if share else ""
            out.append(f"none: demand stayed under its limits{busiest}")
        return out

    def as_dict(self, seconds: float) -> dict[str, Any]:
        """JSON-ready, with the throughput over ``seconds`` (the simulated span)."""
        rpm, tpm = self.per_minute(seconds)
        return {
            "limits": self.limits,
            "served": self.served,
            "requests_per_min": round(rpm, 3),
            "tokens_per_min": round(tpm, 1),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "provider_429s": dict(self.provider_429s),
            "context_overflows": self.context_overflows,
            "bad_requests": self.bad_requests,
            "skipped": dict(self.skipped),
            "cost_usd": self.cost_usd,
            "latency_p50_s": round(self.latency_p50_s, 3),
            "latency_p95_s": round(self.latency_p95_s, 3),
            "mean_wait_s": round(self.mean_wait_s, 3),
            "mean_service_s": round(self.mean_service_s, 3),
            "peak_60s": dict(self.peak_60s),
            "binding": self.binding(),
        }


def _shares(m: ModelResult) -> dict[str, float]:
    """Each per-minute limit's share reached in the model's busiest 60 s."""
    return {
        key: m.peak_60s.get(key, 0) / limit
        for key, _ in _LIMIT_LABELS
        if (limit := m.limits.get(key))
    }


@dataclass(slots=True)
class SimulationReport:
    """The outcome of `simulate`: per-model throughput, waits, fallbacks, 429s and cost.

    Times are simulated seconds. ``duration_s`` is how long requests were sent for,
    ``simulated_s`` until the last one was answered (or given up), ``span_s`` the longer of
    the two (what per-minute rates are averaged over), ``wall_s`` the real time the run took.
    ``fallback_first_s`` is, per reason, when the first request that fell back for it
    arrived (a budget running out shows as the time budget fallbacks start).
    """

    chain: list[str]
    duration_s: float
    simulated_s: float = 0.0
    wall_s: float = 0.0
    requests: int = 0
    answered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    fallbacks: dict[str, int] = field(default_factory=dict)
    fallback_first_s: dict[str, float] = field(default_factory=dict)
    budget_usd: float | None = None
    waits: dict[str, float] = field(default_factory=dict)
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    retries: int = 0
    total_cost_usd: float = 0.0
    unpriced_calls: int = 0
    models: dict[str, ModelResult] = field(default_factory=dict)
    cost_timeline: list[tuple[float, float]] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def span_s(self) -> float:
        """What rates are averaged over: from 0 to the last answer or the end of the sending."""
        return max(self.duration_s, self.simulated_s)

    @property
    def provider_429s(self) -> int:
        """429s every simulated provider returned, in all."""
        return sum(m.rate_limited for m in self.models.values())

    @property
    def failures(self) -> int:
        """Requests that no model answered (the errors the app would see)."""
        return sum(self.failed.values())

    @property
    def cost_per_hour_usd(self) -> float:
        """The spend rate while requests were sent, in USD per hour."""
        return self.total_cost_usd * 3600 / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``)."""
        return {
            "chain": list(self.chain),
            "seed": self.seed,
            "duration_s": self.duration_s,
            "simulated_s": round(self.simulated_s, 3),
            "span_s": round(self.span_s, 3),
            "wall_s": round(self.wall_s, 3),
            "requests": self.requests,
            "answered": self.answered,
            "failed": dict(self.failed),
            "fallbacks": dict(self.fallbacks),
            "fallback_first_s": {k: round(v, 3) for k, v in self.fallback_first_s.items()},
            "budget_usd": self.budget_usd,
            "waits": dict(self.waits),
            "latency_p50_s": round(self.latency_p50_s, 3),
            "latency_p95_s": round(self.latency_p95_s, 3),
            "provider_429s": self.provider_429s,
            "retries": self.retries,
            "total_cost_usd": self.total_cost_usd,
            "cost_per_hour_usd": round(self.cost_per_hour_usd, 6),
            "unpriced_calls": self.unpriced_calls,
            "models": {k: m.as_dict(self.span_s) for k, m in self.models.items()},
            "notes": list(self.notes),
        }

    # --- text -----------------------------------------------------------------------------

    _HEADER = (
        "model",
        "served",
        "req/min",
        "RPM limit",
        "tok/min",
        "peak tok/60s",
        "TPM limit",
        "429s",
        "passed over",
        "latency p50/p95",
        "cost",
    )

    def rows(self) -> list[list[str]]:
        """The per-model table, then a total row."""
        rows: list[list[str]] = []
        for name, m in self.models.items():
            rpm, tpm = m.per_minute(self.span_s)
            tpm_limit = m.limits.get("tpm")
            if tpm_limit is None and ("itpm" in m.limits or "otpm" in m.limits):
                tpm_text = f"{m.limits.get('itpm', '—'):,}/{m.limits.get('otpm', '—'):,}"
            else:
                tpm_text = "—" if tpm_limit is None else f"{tpm_limit:,}"
            skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(m.skipped.items())) or "0"
            rows.append(
                [
                    name,
                    f"{m.served:,}",
                    f"{rpm:,.1f}",
                    "—" if "rpm" not in m.limits else f"{m.limits['rpm']:,}",
                    f"{tpm:,.0f}",
                    f"{m.peak_60s.get('tpm', 0):,}",
                    tpm_text,
                    f"{m.rate_limited:,}",
                    skipped,
                    f"{fmt_seconds(m.latency_p50_s)} / {fmt_seconds(m.latency_p95_s)}",
                    fmt_usd(m.cost_usd),
                ]
            )
        served = sum(m.served for m in self.models.values())
        tokens = sum(m.input_tokens + m.output_tokens for m in self.models.values())
        minutes = self.span_s / 60
        rows.append(
            [
                "total",
                f"{served:,}",
                f"{served / minutes:,.1f}",
                "",
                f"{tokens / minutes:,.0f}",
                "",
                "",
                f"{self.provider_429s:,}",
                f"{sum(self.fallbacks.values()):,}",
                f"{fmt_seconds(self.latency_p50_s)} / {fmt_seconds(self.latency_p95_s)}",
                fmt_usd(self.total_cost_usd),
            ]
        )
        return rows

    def title(self) -> str:
        """One line: what was simulated."""
        rate = self.requests / self.duration_s if self.duration_s else 0.0
        return (
            f"{fmt_seconds(self.duration_s)} of requests ({self.requests:,}, {rate:,.2f}/s), "
            f"last answer at {fmt_seconds(self.simulated_s)}, simulated in {self.wall_s:.1f} s: "
            f"{' -> '.join(self.chain)}"
        )

    def summary(self) -> list[str]:
        """The lines under the table."""
        failed = (
            " (" + ", ".join(f"{k} {v:,}" for k, v in sorted(self.failed.items())) + ")"
            if self.failed
            else ""
        )
        waits = self.waits
        served = [m for m in self.models.values() if m.served]
        service = (
            sum(m.mean_service_s * m.served for m in served) / sum(m.served for m in served)
            if served
            else 0.0
        )
        lines = [
            f"answered {self.answered:,} of {self.requests:,}; failed {self.failures:,}{failed}; "
            f"last answer at {fmt_seconds(self.simulated_s)}; rates are per minute over "
            f"{fmt_seconds(self.span_s)}, peaks the busiest 60 s of what each limit counts",
            f"fallbacks by reason: {self._reasons()}",
            f"scheduler waits per admitted call (0 s when admitted at once): "
            f"p50 {fmt_seconds(waits.get('p50_s', 0.0))}, "
            f"p95 {fmt_seconds(waits.get('p95_s', 0.0))}, "
            f"max {fmt_seconds(waits.get('max_s', 0.0))}; "
            f"429s the providers returned: {self.provider_429s:,} (retried: {self.retries:,})",
            f"latency is arrival to answer: the scheduler's wait, then the provider's time "
            f"(mean {fmt_seconds(service)}: first token and generation), plus any retry or "
            f"fallback attempt",
            *(f"binding for {name}: {'; '.join(m.binding())}" for name, m in self.models.items()),
            f"cost: {fmt_usd(self.total_cost_usd)} in {fmt_seconds(self.duration_s)} "
            f"({fmt_usd(self.cost_per_hour_usd)} per hour at this rate)"
            + (f"; {self.unpriced_calls:,} calls unpriced" if self.unpriced_calls else ""),
        ]
        return lines + [f"note: {n}" for n in self.notes]

    def _reasons(self) -> str:
        """Each reason's count and when its first request arrived; the budget, when it ran out."""
        parts: list[str] = []
        for reason, count in self.fallbacks.items():
            if not count:
                continue
            text = f"{reason.replace('_', ' ')} {count:,}"
            first = self.fallback_first_s.get(reason)
            if first is not None:
                text += f" (from {fmt_seconds(first)}"
                if reason == "budget" and self.budget_usd is not None:
                    text += f": the {fmt_usd(self.budget_usd)} budget could not cover more"
                text += ")"
            parts.append(text)
        return ", ".join(parts) or "none"

    def __str__(self) -> str:
        table = text_table(self._HEADER, self.rows(), total=True)
        return "\n".join([self.title(), *table, *self.summary()])

    def print(self, file: TextIO | None = None) -> None:
        """Print as a rich table (plain text when rich is not installed)."""
        table = rich_table(self._HEADER, self.rows(), title=self.title(), total=True)
        if table is None:
            print(self, file=file)
            return
        from rich.console import Console

        # A terminal gets its own width; a pipe or file gets room for the whole table.
        console = Console(file=file, highlight=False)
        if not console.is_terminal:
            console = Console(file=file, highlight=False, width=160)
        console.print(table)
        for line in self.summary():
            console.print(line, markup=False)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Write a PNG: requests answered per model over time, and the cumulative cost.

        Needs matplotlib (``pip install 'llm-routing[notebook]'``); raises ``ImportError``
        saying so otherwise. The drawing is ``cli.plan.plot``.
        """
        from llm_routing.cli.plan.plot import plot_report

        return plot_report(self, path)
