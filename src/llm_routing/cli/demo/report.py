"""What the demo's runs counted, side by side: the plain run, the routed run, the comparison.

Plain numbers filled in by ``runs``; the text, the rich tables and the JSON of
``llm-routing demo`` are here, the same columns and totals whatever prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from llm_routing.cli._table import rich_table, text_table

__all__ = [
    "REASONS",
    "Comparison",
    "DemoReport",
    "ModelReport",
    "RoutedReport",
    "model_json",
]

#: The router's fallback reasons, in the order the report lists them.
REASONS = ("rate_limit", "context", "quota", "budget", "transient", "other")
_ERROR_LABELS = {"rate_limit": "rate limited (429)", "context": "too long for the model"}
_COLUMNS = ("", "plain ChatOpenAI", "router")


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
        table = text_table(["model", *_HEADERS], self.rows())
        return "\n".join([*table, "", self.summary()])

    def print(self, console: Any = None) -> None:
        """Print the report as a rich table (plain text when rich is not installed)."""
        header = ["model", *_HEADERS]
        title = "Simulated provider, no routing"
        table = rich_table(header, self.rows(), title=title, total=True, title_left=False)
        if table is None:
            print(self)
            return
        from rich.console import Console

        console = console or Console()
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


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


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
        for reason in REASONS:
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
        dearer = self.dearer()
        if dearer:
            text += f" {dearer}"
        if routed.first_error:
            text += f" First error through the router: {routed.first_error.splitlines()[0]}"
        return text

    def dearer(self) -> str | None:
        """One line when routing cost more than the plain run, and why; ``None`` otherwise.

        A cheaper-looking plain run is not a saving when it failed the requests the router
        answered: the long-context fallbacks bill a dearer model for inputs the plain model
        could not take at all, so the line says how many answers the difference bought.
        """
        plain_cost = self._plain_cost()
        routed = self.routed
        if plain_cost is None or routed.cost_usd <= plain_cost:
            return None
        more = routed.answered - self.plain.successes
        too_long = routed.fallbacks.get("context", 0)
        limited = routed.fallbacks.get("rate_limit", 0)
        details = [
            f"{too_long} input(s) too long for their model went to a dearer long-context model"
            if too_long
            else "",
            f"{limited} rate-limited call(s) went to a fallback model" if limited else "",
        ]
        detail = " and ".join(d for d in details if d)
        if more > 0:
            why = (
                f"because it answered {more} request(s) the plain run could not (a failed "
                "request is not billed)"
            )
        else:
            why = "because its fallbacks went to models that cost more per token"
        return (
            f"Routing cost ${routed.cost_usd:.4f} against ${plain_cost:.4f} for the plain run "
            f"{why}" + (f"; {detail}." if detail else ".")
        )

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
        table = text_table(_COLUMNS, self.rows())
        return "\n".join([self.title(), *table, "", self.summary()])

    def title(self) -> str:
        """What was compared."""
        return (
            "One workload, one simulated provider: plain ChatOpenAI vs "
            "build_router (guard | scheduler | tracker)"
        )

    def print(self, console: Any = None) -> None:
        """Print as a rich table (plain text when rich is not installed)."""
        table = rich_table(_COLUMNS, self.rows(), title=self.title(), wrap=True)
        if table is None:
            print(self)
            return
        from rich.console import Console

        console = console or Console()
        console.print(table)
        console.print(self.summary(), markup=False)


def model_json(m: ModelReport) -> dict[str, Any]:
    """One model of the plain run as ``--plain-only --json`` prints it."""
    return {
        "requests": m.requests,
        "answered": m.successes,
        "rate_limited": m.rate_limited,
        "context_overflows": m.context_overflows,
        "other_errors": m.other_errors,
        "cost_usd": None if m.cost_usd is None else float(m.cost_usd),
    }
