"""``llm-routing demo``: one mixed workload, twice, against three simulated models.

Plain ``ChatOpenAI`` clients first, then ``build_router``'s guard, scheduler and tracker over
the same clients; the report puts both side by side (``--live``: real providers, a tiny
workload, a cost cap). The workload is ``workload``, the runs ``runs``, the figures
``report``; routing, waiting and pricing are the package's own, the provider ``sim.server``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from llm_routing.cli.demo.live import live
from llm_routing.cli.demo.report import (
    Comparison,
    DemoReport,
    ModelReport,
    RoutedReport,
    model_json,
)
from llm_routing.cli.demo.runs import DEFAULT_FACTOR, run_comparison, run_demo
from llm_routing.cli.demo.workload import demo_models

__all__ = [
    "DEFAULT_FACTOR",
    "Comparison",
    "DemoReport",
    "ModelReport",
    "RoutedReport",
    "demo_main",
    "demo_models",
    "run_comparison",
    "run_demo",
]


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
        # The whole call's waiting budget, across every model it tries: the archive bursts
        # queue about two simulated minutes of work, so the default leaves the tail room.
        default=180.0,
        help=(
            "the most one call may wait for capacity, in simulated seconds, across every "
            "model it tries (default 180)"
        ),
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
        return live(args.budget, args.json)
    if args.plain_only:
        report = run_demo(seed=args.seed, progress=not args.no_progress and not args.json)
        if args.json:
            json.dump(
                {name: model_json(m) for name, m in report.models.items()}, sys.stdout, indent=2
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
