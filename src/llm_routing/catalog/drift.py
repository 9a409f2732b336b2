"""Catalogue drift: which of our rows disagree with a LiteLLM price file, field by field.

A router routes and bills on the catalogue's numbers, and providers change them (a ``-latest``
alias moves to a newer model, a price drops). LiteLLM's community-maintained map is a useful
cross-check, not the truth: this module only lists the differences, each with our row's date and
source, so a user can see which side is stale. It never changes the catalogue (``Catalog.
load_litellm`` does that, on request). Pure: a catalogue and a parsed file in, values out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from llm_routing.catalog.litellm import read_litellm
from llm_routing.catalog.spec import ModelSpec, Price

__all__ = ["DriftReport", "FieldDrift", "ModelDrift", "compare_litellm"]

_PRICE_FIELDS = ("input", "cached_input", "cache_write", "output")
_TIERS = ("flex", "priority", "batch")

Value = int | Decimal | None


@dataclass(frozen=True, slots=True)
class FieldDrift:
    """One field where our row and the file disagree (``None`` is unknown / not published)."""

    field: str
    ours: Value
    theirs: Value


@dataclass(frozen=True, slots=True)
class ModelDrift:
    """One of our rows against the file's entry for ``matched`` (its name or one of its aliases).

    ``as_of`` and ``source`` are our row's, so the report says how old our figure is and where
    it was read.
    """

    key: str
    matched: str
    as_of: str | None
    source: str | None
    fields: tuple[FieldDrift, ...]


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every compared row that differs, and how many were compared or absent from the file."""

    drifts: tuple[ModelDrift, ...]
    compared: int
    missing: tuple[str, ...]

    @property
    def differs(self) -> bool:
        """Whether any field of any compared row differs."""
        return bool(self.drifts)


def compare_litellm(
    specs: Iterable[ModelSpec], source: str | os.PathLike[str] | Mapping[str, Any]
) -> DriftReport:
    """Compare our rows with a LiteLLM file: window, output cap and each price, tiers included.

    Each row is looked up in the file under its name and under each alias (LiteLLM keys both
    ``gpt-4o`` and ``gpt-4o-2024-08-06``; an alias that moved shows up here). Only what the
    file states is compared: a price or cap the file leaves out is no evidence either way, but
    a price the file gives and we do not know is a difference (ours ``None``).
    """
    parsed = read_litellm(source)
    theirs = {(s.provider, s.name): s for s in parsed.specs}
    drifts: list[ModelDrift] = []
    missing: list[str] = []
    compared = 0
    for spec in specs:
        found = [
            (name, theirs[(spec.provider, name)])
            for name in (spec.name, *spec.aliases)
            if (spec.provider, name) in theirs
        ]
        if not found:
            missing.append(spec.key)
            continue
        compared += 1
        for name, other in found:
            fields = _diff(spec, other)
            if fields:
                drifts.append(ModelDrift(spec.key, name, spec.as_of, spec.source, fields))
    return DriftReport(tuple(drifts), compared, tuple(missing))


def _diff(ours: ModelSpec, theirs: ModelSpec) -> tuple[FieldDrift, ...]:
    out: list[FieldDrift] = []
    if ours.context_window != theirs.context_window:
        out.append(FieldDrift("context_window", ours.context_window, theirs.context_window))
    if theirs.max_output_tokens is not None and ours.max_output_tokens != theirs.max_output_tokens:
        out.append(
            FieldDrift("max_output_tokens", ours.max_output_tokens, theirs.max_output_tokens)
        )
    out.extend(_price_diff("price", ours.price, theirs.price))
    return tuple(out)


def _price_diff(prefix: str, ours: Price | None, theirs: Price | None) -> list[FieldDrift]:
    if theirs is None:
        return []
    out: list[FieldDrift] = []
    for name in _PRICE_FIELDS:
        _compare(out, f"{prefix}.{name}", getattr(ours, name, None), getattr(theirs, name))
    if theirs.reasoning is not None:
        mine = ours.reasoning_or_output if ours is not None else None
        _compare(out, f"{prefix}.reasoning", mine, theirs.reasoning)
    if theirs.long_context is not None:
        _compare(
            out,
            f"{prefix}.long_context_threshold",
            ours.long_context_threshold if ours is not None else None,
            theirs.long_context_threshold,
        )
        mine_long = ours.long_context if ours is not None else None
        out.extend(_price_diff(f"{prefix}.long_context", mine_long, theirs.long_context))
    for tier in _TIERS:
        if tier in theirs.service_tiers:
            mine_tier = ours.service_tiers.get(tier) if ours is not None else None
            out.extend(_price_diff(f"{prefix}.{tier}", mine_tier, theirs.service_tiers[tier]))
    return out


def _compare(out: list[FieldDrift], name: str, ours: Value, theirs: Value) -> None:
    # Only what the file states counts; Decimal compares 0.60 equal to 0.6.
    if theirs is not None and ours != theirs:
        out.append(FieldDrift(name, ours, theirs))
