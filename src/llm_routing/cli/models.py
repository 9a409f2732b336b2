"""``llm-routing models``: the shipped catalogue as a table (or JSON) of windows, prices, limits.

``--check FILE`` compares the catalogue with a LiteLLM price file instead and exits 1 when a
row differs, so a scheduled job can notice drift without any network access of ours.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any, TextIO

from llm_routing.catalog import Catalog, Limits, ModelSpec, default_catalog
from llm_routing.catalog.drift import DriftReport, compare_litellm
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
    models.add_argument(
        "--check",
        metavar="FILE",
        help=(
            "compare the catalogue (and any registered rows) with a LiteLLM "
            "model_prices_and_context_window.json you downloaded: print each field that "
            "differs with our row's date and source; exit status 1 when anything differs"
        ),
    )
    models.set_defaults(handler=_cmd_models)


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    catalog = default_catalog()
    specs = _select(catalog, args.provider)
    if args.check is not None:
        return _cmd_check(specs, args.check, out, as_json=args.json)
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


def _cmd_check(specs: list[ModelSpec], path: str, out: TextIO, *, as_json: bool) -> int:
    """Print the drift report; 1 when a row differs, so scripts and CI can act on it."""
    try:
        report = compare_litellm(specs, path)
    except ValueError as exc:
        raise UsageError(str(exc).replace("load_litellm(source)", "--check FILE")) from None
    if as_json:
        json.dump(_drift_json(report), out, indent=2)
        out.write("\n")
    else:
        out.write("\n".join(_drift_lines(report, path)) + "\n")
    return 1 if report.differs else 0


def _drift_lines(report: DriftReport, path: str) -> list[str]:
    models = len({d.key for d in report.drifts})
    lines = [
        f"{path}: {models} of {report.compared} models compared differ "
        f"({len(report.missing)} of ours are not in the file). Prices: USD per 1M tokens; "
        f"{UNKNOWN} is unknown. The file is a cross-check, not the truth: read the provider's page."
    ]
    for drift in report.drifts:
        named = "" if drift.matched == drift.key.partition(":")[2] else f" (as {drift.matched})"
        lines.append("")
        lines.append(f"{drift.key}{named}: ours as of {drift.as_of or '?'}, {drift.source or '?'}")
        width = max(len(f.field) for f in drift.fields)
        for field in drift.fields:
            lines.append(
                f"  {field.field:<{width}}  ours {_fmt(field.ours):>12}   file {_fmt(field.theirs)}"
            )
    if not report.drifts:
        lines.append("Every compared row agrees with the file.")
    return lines


def _fmt(value: int | Decimal | None) -> str:
    if value is None:
        return UNKNOWN
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:f}"


def _drift_json(report: DriftReport) -> dict[str, Any]:
    return {
        "differs": report.differs,
        "compared": report.compared,
        "missing": list(report.missing),
        "drifts": [
            {
                "key": d.key,
                "matched": d.matched,
                "as_of": d.as_of,
                "source": d.source,
                "fields": [
                    {"field": f.field, "ours": _jsonable(f.ours), "file": _jsonable(f.theirs)}
                    for f in d.fields
                ],
            }
            for d in report.drifts
        ],
    }


def _jsonable(value: int | Decimal | None) -> int | str | None:
    return _dec(value) if isinstance(value, Decimal) else value
