"""Running totals of a group of calls (a model, a tag, a period, or all), as summaries show them.

A call counts in six or more groups of a `MemoryLedger` (all, its model, each tag, its hour,
day and month). Counting it in each as it settles would cost six updates per call, so the
ledger counts it once, in its cell (`Cells`: the calls of one model, status, hour and tag set),
and folds the cells into the groups when a summary is read (`Group.merge`). Sums are exact
(``Decimal`` in a 60-digit context), so folding later gives the same totals, to the digit.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from llm_routing.cost.amounts import TokenUsage
from llm_routing.cost.ledger import _CONTEXT, _ZERO

__all__ = ["TOKEN_KEYS", "Cells", "Group", "count_call", "group_in"]

_HOUR_US = 3_600_000_000
_CELLS_KEPT = 1024  # distinct cells before they are folded (bounds memory, not correctness)


class Group:
    """Running totals of one group of calls (a model, a tag, a period, or all)."""

    __slots__ = (
        "cache_write_tokens",
        "cached_input_tokens",
        "calls",
        "cost",
        "estimated_calls",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "unpriced_calls",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.unpriced_calls = 0
        self.estimated_calls = 0
        self.cost = _ZERO
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0

    def merge(self, other: Group) -> None:
        """Add ``other``'s calls to this group (folding a cell)."""
        self.calls += other.calls
        self.unpriced_calls += other.unpriced_calls
        self.estimated_calls += other.estimated_calls
        self.cost = _CONTEXT.add(self.cost, other.cost)
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens

    def as_dict(self) -> dict[str, Any]:
        # A group whose every call is unpriced has an unknown cost, not $0.
        priced = self.calls - self.unpriced_calls
        return {
            "calls": self.calls,
            "cost": self.cost if priced > 0 or self.calls == 0 else None,
            "unpriced_calls": self.unpriced_calls,
            "estimated_calls": self.estimated_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
"""The token totals a summary shows (and each of its groups), in order."""


def group_in(groups: dict[str, Group], key: str) -> Group:
    """``groups[key]``, a new empty `Group` the first time."""
    group = groups.get(key)
    if group is None:
        group = groups[key] = Group()
    return group


def count_call(
    groups: Iterable[Group], cost: Decimal | None, estimated: bool, t: TokenUsage
) -> None:
    """Count one call (its total cost, whether estimated, its tokens) in each of ``groups``."""
    writes = t.cache_write + t.cache_write_1h
    prompt = t.input + t.cached_input + writes
    completion = t.output + t.reasoning
    for group in groups:
        group.calls += 1
        if cost is None:
            group.unpriced_calls += 1
        else:
            group.cost = _CONTEXT.add(group.cost, cost)
        if estimated:
            group.estimated_calls += 1
        group.input_tokens += prompt
        group.output_tokens += completion
        group.cached_input_tokens += t.cached_input
        group.cache_write_tokens += writes
        group.reasoning_tokens += t.reasoning


Cell = tuple[tuple[str, str, bool, str], int, tuple[str, ...]]
"""((provider, model, estimated, status), UTC hours since the epoch, tags)."""


class Cells:
    """The calls counted since the last fold, one `Group` per model, status, hour and tag set."""

    __slots__ = ("_cells",)

    def __init__(self) -> None:
        self._cells: dict[Cell, Group] = {}

    def count(
        self,
        who: tuple[str, str, bool, str],
        micros: int,
        tags: tuple[str, ...],
        cost: Decimal | None,
        estimated: bool,
        tokens: TokenUsage,
    ) -> bool:
        """Count a call in its cell; True when the cells should be folded (too many)."""
        key = (who, micros // _HOUR_US, tags)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = Group()
        count_call((cell,), cost, estimated, tokens)
        return len(self._cells) > _CELLS_KEPT

    def take(self) -> list[tuple[Cell, Group]]:
        """Every cell, emptied: the caller folds them into its groups."""
        cells = list(self._cells.items())
        self._cells.clear()
        return cells
