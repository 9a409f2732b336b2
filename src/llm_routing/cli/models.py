"""``llm-routing models``: the shipped catalogue as a table (or JSON) of windows, prices, limits."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any, TextIO

from llm_routing.catalog import Catalog, Limits, ModelSpec, default_catalog
from llm_routing.cli._table import (
    UNKNOWN,
    fmt_count,
    fmt_int,
    fmt_price,
    rich_table,
    text_table,
)
from llm_routing.cli._usage import UsageError

__all__ = ["add_parser"]

_HEADER = ("model", "context", "max out", "$ in", "$ cached", "$ out", "RPM", "TPM (in/out)", "RPD")


def add_parser(sub: Any) -> None:
    """Register ``models`` on the top parser's subparsers."""
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


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    catalog = default_catalog()
    specs = _select(catalog, args.provider)
    tier = args.tier or "tier1"
    if args.tier is not None:
        known = sorted({t for s in specs for t in s.tiers})
        if args.tier not in known:
            raise UsageError(
                f"unknown tier {args.tier!r}; valid tiers: {', '.join(known) or 'none'}"
            )
    if args.json:
        json.dump([_spec_json(s, args.tier) for s in specs], out, indent=2)
        out.write("\n")
        return 0
    rows = [_row(s, tier) for s in specs]
    title = f"{len(specs)} models · limits: {tier} · prices: USD per 1M tokens"
    table = None if args.plain else rich_table(_HEADER, rows, title=title)
    if table is None:
        out.write("\n".join([title, *text_table(_HEADER, rows)]) + "\n")
    else:
        from rich.console import Console

        width = max(160, sum(len(h) for h in _HEADER))
        Console(file=out, width=width, highlight=False).print(table)
    return 0


def _select(catalog: Catalog, provider: str | None) -> list[ModelSpec]:
    if provider is None:
        return catalog.models()
    try:
        return catalog.models(provider)
    except ValueError:
        raise UsageError(
            f"unknown provider {provider!r}; valid providers: {', '.join(catalog.providers())}"
        ) from None


def _row(spec: ModelSpec, tier: str) -> list[str]:
    price = spec.price
    limits = spec.rate_limits.get(tier)
    return [
        spec.key + (" (deprecated)" if spec.deprecated else ""),
        fmt_count(spec.context_window),
        fmt_count(spec.max_output_tokens),
        fmt_price(price.input if price else None),
        fmt_price(price.cached_input if price else None),
        fmt_price(price.output if price else None),
        fmt_int(limits.rpm if limits else None),
        _fmt_tokens_limit(limits),
        fmt_int(limits.rpd if limits else None),
    ]


def _fmt_tokens_limit(limits: Limits | None) -> str:
    if limits is None:
        return UNKNOWN
    if limits.tpm is not None:
        return fmt_count(limits.tpm)
    if limits.itpm is not None or limits.otpm is not None:
        return f"{fmt_count(limits.itpm)}/{fmt_count(limits.otpm)}"
    return UNKNOWN


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
