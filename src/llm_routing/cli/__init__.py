"""The ``llm-routing`` command line: one subparser per subcommand, ``main(argv) -> exit code``.

The top floor of the package: nothing in ``llm_routing`` imports it. It owns argument parsing
and printing; the work itself (catalogue, router, simulator, counting) lives in the packages it
calls. One module per command: ``models``, ``count``, ``plan`` (``simulate``), ``demo``;
``sim`` hands its words to the simulator's own ``serve`` (``llm_routing.sim.serve``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from llm_routing.cli import count, models, plan
from llm_routing.cli._usage import EXIT_USAGE, UsageError, sim_missing

__all__ = ["build_parser", "main"]

_Handler = Callable[[argparse.Namespace, TextIO], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand stores its handler in ``args.handler``."""
    parser = argparse.ArgumentParser(
        prog="llm-routing",
        description="Resilient, fast and cheap LLM calls in LangChain.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_demo_and_sim(sub)
    plan.add_parser(sub)
    models.add_parser(sub)
    count.add_parser(sub)
    return parser


def _add_demo_and_sim(sub: Any) -> None:
    # Their options live with their own parsers (the demo's, llm_routing.sim.serve); everything
    # after the subcommand, --help included, is handed over unparsed.
    demo = sub.add_parser(
        "demo",
        add_help=False,
        help="run a mixed workload against simulated providers and report (no API key needed)",
    )
    demo.add_argument("args", nargs=argparse.REMAINDER)
    demo.set_defaults(handler=_cmd_demo)
    sim = sub.add_parser(
        "sim",
        add_help=False,
        help="the simulated OpenAI-compatible provider: `llm-routing sim serve --port 8000`",
    )
    sim.add_argument("args", nargs=argparse.REMAINDER)
    sim.set_defaults(handler=_cmd_sim)


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from llm_routing.cli.demo import demo_main
    except ImportError as exc:
        raise sim_missing(exc) from None
    return demo_main(args.args)


def _cmd_sim(args: argparse.Namespace, out: TextIO) -> int:
    if args.args[:1] == ["demo"]:
        # `llm-routing sim demo`: the demo drives the router, so the simulator does not own it.
        return _cmd_demo(argparse.Namespace(args=args.args[1:]), out)
    try:
        from llm_routing.sim.serve import main as sim_main
    except ImportError as exc:
        raise sim_missing(exc) from None
    return sim_main(args.args)


_PASSTHROUGH: dict[str, _Handler] = {"demo": _cmd_demo, "sim": _cmd_sim}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 2 bad usage)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in _PASSTHROUGH:
        # argparse's REMAINDER cannot start with an option (`demo --seed 3`), so these
        # subcommands get their words directly; the subparsers above only document them.
        args = argparse.Namespace(command=words[0], args=words[1:], handler=_PASSTHROUGH[words[0]])
    else:
        args = build_parser().parse_args(words)
    handler: _Handler = args.handler
    try:
        return handler(args, sys.stdout)
    except UsageError as exc:
        print(f"llm-routing {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `llm-routing models | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return 0
