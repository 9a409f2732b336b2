"""``llm-routing simulate``: capacity planning for a router config, in virtual time.

This module is the command (its arguments, checks and output); the planner is
``workload`` (the JSONL format, durations and rates), ``section`` (the config's ``[simulate]``
section), ``report`` (``SimulationReport``) and ``run`` (``simulate``). They are imported
only when the command runs, so ``llm-routing models`` does not load LangChain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from llm_routing.cli._usage import UsageError, sim_missing

__all__ = ["add_parser"]

_SIMULATE_EPILOG = """\
workload file (JSONL), one request per line:
  {"t": 0.0, "prompt_tokens": 1200, "max_tokens": 256}
  {"t": 0.4, "prompt_tokens": 80, "max_tokens": 64, "output_tokens": 20}
t: seconds from the start; prompt_tokens: size of the user message; max_tokens: the output
cap sent with the call; output_tokens (optional): the answer's length (default: drawn between
a quarter of max_tokens and all of it).

config: a router file as from_config reads it, plus an optional [simulate] section:
  [simulate]
  latency = { ttft = 0.3, per_token = 0.01, jitter = 0.2 }
  [simulate.models."openai:gpt-4o-mini"]
  rpm = 30          # also tpm, rpd, itpm, otpm: instead of the catalogue's tier
  input_price = 0.15  # and output_price, USD per 1M tokens

example: llm-routing simulate --config router.toml --rate 20/s --duration 10m --plot out.png
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_parser(sub: Any) -> None:
    """Register ``simulate`` on the top parser's subparsers (the engine is imported on use)."""
    sim = sub.add_parser(
        "simulate",
        help="capacity planning: your router config under a workload, in virtual time",
        description=(
            "Run the real guard, scheduler and tracker of a router config in virtual time\n"
            "against simulated providers shaped like its models (the catalogue's limits and\n"
            "prices for the configured tier, or the config's [simulate] overrides). Reports\n"
            "throughput per model, waits, fallbacks by reason, the 429s the providers would\n"
            "have returned, latency and cost. Ten simulated minutes take seconds."
        ),
        epilog=_SIMULATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument(
        "--config", required=True, metavar="FILE", help="the router config (.toml, .yaml)"
    )
    source = sim.add_mutually_exclusive_group(required=True)
    source.add_argument("--workload", metavar="FILE", help="requests to send (JSONL, below)")
    source.add_argument(
        "--rate",
        metavar="RATE",
        help="Poisson arrivals at this rate: 20/s, 600/min, 1000/h",
    )
    sim.add_argument(
        "--duration",
        metavar="DURATION",
        help="how long requests are sent: 10m, 90s, 1h30m (default: 10m with --rate, up to "
        "the last request with --workload; later requests are not sent)",
    )
    sim.add_argument(
        "--prompt-tokens",
        type=_positive_int,
        metavar="N",
        help="with --rate: the mean prompt size, spread over 50-150%% (default 500)",
    )
    sim.add_argument(
        "--max-tokens",
        type=_positive_int,
        metavar="N",
        help="with --rate: the max_tokens of every request (default 256)",
    )
    sim.add_argument("--seed", type=int, default=0, help="seed for arrivals, answers and latency")
    sim.add_argument("--plot", metavar="OUT.png", help="write a PNG (needs matplotlib)")
    sim.add_argument("--json", action="store_true", help="print the report as JSON")
    sim.set_defaults(handler=_cmd_simulate, parser=sim)


def _cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from llm_routing.cli.plan.run import simulate
        from llm_routing.cli.plan.workload import (
            parse_duration,
            parse_rate,
            rate_workload,
            read_workload,
        )
    except ImportError as exc:
        raise sim_missing(exc) from None
    parser: argparse.ArgumentParser = args.parser
    # Parsed here, not by argparse types: the engine (and the simulator it reuses) is imported
    # only when this subcommand runs.
    try:
        rate = None if args.rate is None else parse_rate(args.rate)
    except ValueError as exc:
        parser.error(f"argument --rate: {exc}")
    try:
        duration = None if args.duration is None else parse_duration(args.duration)
    except ValueError as exc:
        parser.error(f"argument --duration: {exc}")
    if not os.path.isfile(args.config):
        parser.error(f"--config {args.config}: no such file")
    if args.workload is not None:
        if args.prompt_tokens is not None or args.max_tokens is not None:
            parser.error("--prompt-tokens and --max-tokens shape a --rate workload only")
        if not os.path.isfile(args.workload):
            parser.error(f"--workload {args.workload}: no such file")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error(
                f"--plot {args.plot}: plotting needs matplotlib, which is not installed; "
                "pip install matplotlib (or pip install 'llm-routing[notebook]'), or run "
                "without --plot"
            )
    try:
        if rate is None:
            workload = read_workload(args.workload)
        else:
            duration = duration if duration is not None else 600.0
            workload = rate_workload(
                rate,
                duration,
                prompt_tokens=args.prompt_tokens or 500,
                max_tokens=args.max_tokens or 256,
                seed=args.seed,
            )
            if not workload:
                raise UsageError(
                    f"--rate {args.rate} for --duration {duration:g}s sends no request; "
                    "raise the rate or the duration"
                )
        report = simulate(args.config, workload, duration, seed=args.seed)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        report.print(out)
    if args.plot is not None:
        try:
            path = report.plot(args.plot)
        except OSError as exc:
            print(f"llm-routing simulate: cannot write {args.plot}: {exc}", file=sys.stderr)
            return 1
        print(f"plot written to {path}", file=sys.stderr if args.json else out)
    return 0
