"""``python -m llm_routing.sim serve``: run the simulated provider until interrupted.

Argument parsing and printing only; ``llm_routing.cli`` wires it under ``llm-routing sim``.
The demo is not here: it drives the router, and the simulator imports nothing of the product
it stands in for (``llm-routing demo`` is ``llm_routing.cli.demo``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import fields, replace
from types import FrameType

from llm_routing.sim.faults import FaultPlan
from llm_routing.sim.latency import Latency
from llm_routing.sim.model import SimModel
from llm_routing.sim.replies import load_replies
from llm_routing.sim.server import SimulatedProvider, default_models

__all__ = ["main", "serve_main"]


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-routing sim serve",
        description="Run the simulated OpenAI-compatible provider until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated catalogue models to simulate with their published limits "
        "(e.g. gpt-4o-mini,claude-haiku-4-5); default: the demo's sim-mini, sim-standard, "
        "sim-long",
    )
    parser.add_argument("--tier", default="tier1", help="rate-limit tier for --models")
    parser.add_argument(
        "--enforcement",
        choices=("sliding", "token_bucket", "quantized", "provider"),
        default=None,
        help="how every model enforces its limits: sliding (an exact 60 s log), token_bucket "
        "(burst up to the limit, refill limit/60 per second), quantized (plus a per-second "
        "share of limit/60, no burst beyond it) or provider (what each model's provider "
        "documents, e.g. OpenAI and Anthropic quantized; the demo models are OpenAI-shaped); "
        "default: the simulator's default (llm_routing.sim.model.DEFAULT_ENFORCEMENT)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for faults, jitter, answers")
    parser.add_argument(
        "--latency",
        choices=("fast", "realistic"),
        default="fast",
        help="latency model (default fast: no delay)",
    )
    parser.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="MODEL=SPEC",
        help="inject faults, e.g. gpt-4o-mini=503:0.1,timeout:0.02 or sim-mini=500@3 (repeatable)",
    )
    parser.add_argument(
        "--replies",
        default=None,
        metavar="FILE",
        help="recorded answers (JSON): a list of {when, content | tool_calls, match} for every "
        "model, or an object of model -> list; the first reply whose 'when' is in the last "
        "user message answers it (see llm_routing.sim.replies)",
    )
    return parser


def _models(args: argparse.Namespace) -> list[SimModel]:
    latency = Latency.realistic() if args.latency == "realistic" else Latency.fast()
    if args.models is None:
        models = default_models()
    else:
        from llm_routing.catalog import default_catalog

        catalog = default_catalog()
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        if not names:
            raise ValueError("--models is empty; name at least one catalogue model")
        follow = True if args.enforcement == "provider" else None
        models = [
            SimModel.from_spec(catalog.get(n), tier=args.tier, follow_docs=follow) for n in names
        ]
    if args.enforcement == "provider" and args.models is None:
        models = [SimModel.like("openai", **_fields(m)) for m in models]
    elif args.enforcement is not None and args.enforcement != "provider":
        models = [replace(m, enforcement=args.enforcement) for m in models]
    plans: dict[str, FaultPlan] = {}
    for item in args.faults:
        name, sep, spec = item.partition("=")
        if not sep:
            raise ValueError(f"--faults {item!r}: expected MODEL=SPEC (e.g. sim-mini=503:0.1)")
        plans[name.strip()] = FaultPlan.parse(spec)
    known = {m.name for m in models} | {a for m in models for a in m.aliases}
    unknown = sorted(set(plans) - known)
    if unknown:
        raise ValueError(f"--faults names unknown model(s) {unknown}; serving {sorted(known)}")
    scripted = load_replies(args.replies) if args.replies is not None else {}
    unknown = sorted(str(n) for n in set(scripted) - known - {None})
    if unknown:
        raise ValueError(f"--replies names unknown model(s) {unknown}; serving {sorted(known)}")
    out = []
    for m in models:
        plan = next((p for n, p in plans.items() if n == m.name or n in m.aliases), m.faults)
        replies = (*m.replies, *scripted.get(None, ()))
        replies += next((r for n, r in scripted.items() if n in (m.name, *m.aliases)), ())
        out.append(replace(m, latency=latency, faults=plan, replies=replies))
    return out


def _fields(model: SimModel) -> dict[str, object]:
    """A model's fields other than how it enforces and counts (for ``SimModel.like``)."""
    skip = {"enforcement", "failed_requests_count", "tokens_counted", "output_counted"}
    return {f.name: getattr(model, f.name) for f in fields(model) if f.name not in skip}


def serve_main(argv: Sequence[str] | None = None) -> int:
    """Run ``serve`` until SIGINT/SIGTERM; returns the exit code (2 for bad arguments)."""
    args = _serve_parser().parse_args(argv)
    try:
        models = _models(args)
        sim = SimulatedProvider(models, seed=args.seed, host=args.host, port=args.port)
        sim.start()
    except (ValueError, TypeError, OSError) as exc:
        print(f"llm-routing sim serve: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"Simulated provider at {sim.base_url}", flush=True)
        for m in models:
            limits = ", ".join(f"{k}={v}" for k, v in m.limits().items() if v is not None)
            print(
                f"  {m.name}: window {m.context_window}; {limits or 'unlimited'}; "
                f"{m.enforcement} enforcement",
                flush=True,
            )
        print("Stats at GET /sim/stats; Ctrl-C to stop.", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sim.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llm_routing.sim serve ...``; returns the exit code (2 for bad usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        return serve_main(args[1:])
    if args[:1] == ["demo"]:
        # The demo drives the router, so it lives with the command line, above the product.
        print("the demo is a command of the package: run `llm-routing demo`", file=sys.stderr)
        return 2
    print(
        "usage: python -m llm_routing.sim serve [options]  (-h after serve for its options)",
        file=sys.stderr,
    )
    return 2
