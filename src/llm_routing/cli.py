"""The ``llm-routing`` command line: one subparser per subcommand, ``main(argv) -> exit code``.

It owns argument parsing and printing. The work itself (catalogue, simulator, counting) lives in
the packages it calls; a subcommand here is a thin shell over one of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TextIO

from llm_routing.catalog import Catalog, Limits, ModelSpec, default_catalog

__all__ = ["build_parser", "main"]

_UNKNOWN = "—"
_EXIT_USAGE = 2
_Handler = Callable[[argparse.Namespace, TextIO], int]


class _UsageError(Exception):
    """A bad value the parser could not check itself (unknown provider, tier); exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand stores its handler in ``args.handler``."""
    parser = argparse.ArgumentParser(
        prog="llm-routing",
        description="Resilient, fast and cheap LLM calls in LangChain.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_demo_and_sim(sub)
    _add_simulate(sub)
    _add_models(sub)
    _add_count(sub)
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


def _sim_missing(exc: ImportError) -> _UsageError:
    return _UsageError(
        f"the simulator needs the 'sim' extra ({exc.name} is missing): "
        'pip install "llm-routing[sim]"'
    )


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from llm_routing.sim.demo import demo_main
    except ImportError as exc:
        raise _sim_missing(exc) from None
    return demo_main(args.args)


def _cmd_sim(args: argparse.Namespace, out: TextIO) -> int:
    if args.args[:1] == ["demo"]:
        # `llm-routing sim demo`: the demo drives the router, so the simulator does not own it.
        return _cmd_demo(argparse.Namespace(args=args.args[1:]), out)
    try:
        from llm_routing.sim.serve import main as sim_main
    except ImportError as exc:
        raise _sim_missing(exc) from None
    return sim_main(args.args)


_PASSTHROUGH: dict[str, _Handler] = {"demo": _cmd_demo, "sim": _cmd_sim}


def _add_count(sub: Any) -> None:
    count = sub.add_parser(
        "count",
        help="count the tokens of a file (or stdin) for a model, offline",
        description=(
            "Count tokens the way the context guard does: exact for OpenAI encodings, a "
            "calibrated upper-biased estimate for other providers. Nothing is downloaded."
        ),
    )
    count.add_argument("model", help="a model name, e.g. openai:gpt-4o-mini or claude-haiku-4-5")
    count.add_argument(
        "file", nargs="?", default="-", help="the text file to count (default: stdin)"
    )
    count.add_argument(
        "--as-message",
        action="store_true",
        help="count the text as one user message (adds the chat format's overhead)",
    )
    count.set_defaults(handler=_cmd_count)


def _add_models(sub: Any) -> None:
    models = sub.add_parser(
        "models",
        help="list the model catalogue: windows, prices and rate limits",
        description=(
            "List the shipped model catalogue. Prices are USD per 1M tokens; limits are the "
            "published defaults of one tier (TPM, or input/output TPM for Anthropic)."
        ),
    )
    models.add_argument("--provider", help="only this provider (openai, anthropic, google, …)")
    models.add_argument("--tier", default=None, help="the rate-limit tier to show (default: tier1)")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.add_argument(
        "--plain", action="store_true", help="plain aligned text even when rich is installed"
    )
    models.set_defaults(handler=_cmd_models)


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
    except _UsageError as exc:
        print(f"llm-routing {args.command}: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except BrokenPipeError:
        # `llm-routing models | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return 0


# -- simulate ---------------------------------------------------------------------------------

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


def _add_simulate(sub: Any) -> None:
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
    import os

    try:
        from llm_routing import simulate as engine
    except ImportError as exc:
        raise _sim_missing(exc) from None
    parser: argparse.ArgumentParser = args.parser
    # Parsed here, not by argparse types: the engine (and the simulator it reuses) is imported
    # only when this subcommand runs.
    try:
        rate = None if args.rate is None else engine.parse_rate(args.rate)
    except ValueError as exc:
        parser.error(f"argument --rate: {exc}")
    try:
        duration = None if args.duration is None else engine.parse_duration(args.duration)
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
            workload = engine.read_workload(args.workload)
        else:
            duration = duration if duration is not None else 600.0
            workload = engine.rate_workload(
                rate,
                duration,
                prompt_tokens=args.prompt_tokens or 500,
                max_tokens=args.max_tokens or 256,
                seed=args.seed,
            )
            if not workload:
                raise _UsageError(
                    f"--rate {args.rate} for --duration {duration:g}s sends no request; "
                    "raise the rate or the duration"
                )
        report = engine.simulate(args.config, workload, duration, seed=args.seed)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        raise _UsageError(str(exc)) from None
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


# -- count ------------------------------------------------------------------------------------


def _cmd_count(args: argparse.Namespace, out: TextIO) -> int:
    from llm_routing.errors import UnknownModelError
    from llm_routing.tokens import count_tokens

    try:
        spec = default_catalog().get(args.model)
    except (UnknownModelError, ValueError) as exc:
        raise _UsageError(str(exc)) from None
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
    except OSError as exc:
        raise _UsageError(f"cannot read {args.file!r}: {exc.strerror}") from None
    payload: Any = [("user", text)] if args.as_message else text
    tokens = count_tokens(payload, spec)
    exact = not spec.tokenizer.startswith("estimate:")
    window = spec.context_window
    out.write(
        f"{tokens:,} tokens for {spec.key} ({'exact, ' if exact else 'estimate, '}"
        f"{spec.tokenizer}); context window {window:,} ({tokens / window:.1%} used)\n"
    )
    return 0


# -- models -----------------------------------------------------------------------------------


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    catalog = default_catalog()
    specs = _select(catalog, args.provider)
    tier = args.tier or "tier1"
    if args.tier is not None:
        known = sorted({t for s in specs for t in s.tiers})
        if args.tier not in known:
            raise _UsageError(
                f"unknown tier {args.tier!r}; valid tiers: {', '.join(known) or 'none'}"
            )
    if args.json:
        json.dump([_spec_json(s, args.tier) for s in specs], out, indent=2)
        out.write("\n")
        return 0
    header = [
        "model",
        "context",
        "max out",
        "$ in",
        "$ cached",
        "$ out",
        "RPM",
        "TPM (in/out)",
        "RPD",
    ]
    rows = [_row(s, tier) for s in specs]
    title = f"{len(specs)} models · limits: {tier} · prices: USD per 1M tokens"
    if args.plain or not _print_rich(header, rows, title, out):
        _print_plain(header, rows, title, out)
    return 0


def _select(catalog: Catalog, provider: str | None) -> list[ModelSpec]:
    if provider is None:
        return catalog.models()
    try:
        return catalog.models(provider)
    except ValueError:
        raise _UsageError(
            f"unknown provider {provider!r}; valid providers: {', '.join(catalog.providers())}"
        ) from None


def _row(spec: ModelSpec, tier: str) -> list[str]:
    price = spec.price
    limits = spec.rate_limits.get(tier)
    return [
        spec.key + (" (deprecated)" if spec.deprecated else ""),
        _fmt_count(spec.context_window),
        _fmt_count(spec.max_output_tokens),
        _fmt_price(price.input if price else None),
        _fmt_price(price.cached_input if price else None),
        _fmt_price(price.output if price else None),
        _fmt_int(limits.rpm if limits else None),
        _fmt_tokens_limit(limits),
        _fmt_int(limits.rpd if limits else None),
    ]


def _fmt_count(n: int | None) -> str:
    """Round token counts compactly (128k, 4M); others exactly (1,048,576), never rounded."""
    if n is None:
        return _UNKNOWN
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def _fmt_int(n: int | None) -> str:
    return _UNKNOWN if n is None else f"{n:,}"


def _fmt_price(value: Decimal | None) -> str:
    if value is None:
        return _UNKNOWN
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    else:
        text = f"{text}.00"
    return f"${text}"


def _fmt_tokens_limit(limits: Limits | None) -> str:
    if limits is None:
        return _UNKNOWN
    if limits.tpm is not None:
        return _fmt_count(limits.tpm)
    if limits.itpm is not None or limits.otpm is not None:
        return f"{_fmt_count(limits.itpm)}/{_fmt_count(limits.otpm)}"
    return _UNKNOWN


def _spec_json(spec: ModelSpec, tier: str | None) -> dict[str, Any]:
    def price_json(price: Any) -> dict[str, Any] | None:
        if price is None:
            return None
        return {
            "input": _dec(price.input),
            "cached_input": _dec(price.cached_input),
            "cache_write": _dec(price.cache_write),
            "output": _dec(price.output),
            "reasoning": _dec(price.reasoning),
            "long_context_threshold": price.long_context_threshold,
            "long_context": price_json(price.long_context),
        }

    if tier is None:
        tiers = dict(spec.rate_limits)
    else:
        tiers = {tier: spec.rate_limits[tier]} if tier in spec.rate_limits else {}
    return {
        "key": spec.key,
        "provider": spec.provider,
        "name": spec.name,
        "aliases": list(spec.aliases),
        "context_window": spec.context_window,
        "max_output_tokens": spec.max_output_tokens,
        "tokenizer": spec.tokenizer,
        "price": price_json(spec.price),
        "rate_limits": {t: _limits_json(lim) for t, lim in tiers.items()},
        "source": spec.source,
        "as_of": spec.as_of,
        "deprecated": spec.deprecated,
    }


def _dec(value: Decimal | None) -> str | None:
    # Strings keep 0.075 exact; floats would not.
    return None if value is None else f"{value:f}"


def _limits_json(limits: Limits) -> dict[str, int]:
    names = ("rpm", "tpm", "rpd", "itpm", "otpm", "tpd", "max_concurrency")
    return {n: v for n in names if (v := getattr(limits, n)) is not None}


def _print_rich(header: list[str], rows: list[list[str]], title: str, out: TextIO) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    Console(file=out, width=max(160, sum(len(h) for h in header)), highlight=False).print(table)
    return True


def _print_plain(header: list[str], rows: list[list[str]], title: str, out: TextIO) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out.write(title + "\n")
    out.write(line(header) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write(line(row) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
