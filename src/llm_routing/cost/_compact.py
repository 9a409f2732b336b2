"""Records kept compact in memory: what a `MemoryLedger` holds per call, and the way back.

A ledger keeps up to 100,000 records by default, so their size is the tracker's memory. A
`CostRecord` as the tracker builds it holds a ``datetime``, a ``Cost`` of six ``Decimal``
parts (104 bytes each), an empty metadata dict and its own strings: about 850 bytes. A
packed row keeps the same facts, exactly, in about a third of that:

- the time as integer microseconds since the epoch (a UTC ``datetime``; any other is kept);
- provider, model, ``estimated`` and ``status`` as one shared tuple per combination;
- the ``TokenUsage`` as it is (already compact);
- the cost as one string of its six parts (``Decimal`` round-trips through its text exactly:
  value, exponent and ``repr``), ``""`` for an unknown part; or, for a record nobody priced
  yet (`RateCard.deferred`), the model's shared `Rates`, which price the tokens on unpacking;
- run ids, tags and metadata only when a call has any, tags and hashable metadata shared
  between the calls that repeat them.

`unpack` rebuilds an equal `CostRecord` (a fresh one per read, its metadata a fresh dict).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

from llm_routing.cost._rates import Rates
from llm_routing.cost.amounts import _ZERO, Cost, TokenUsage
from llm_routing.cost.record import CostRecord, Fields, _Epoch, fields_of

__all__ = ["EPOCH", "HOUR", "Interned", "Row", "pack", "pack_fields", "unpack"]

EPOCH = _EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
_MICROSECOND = timedelta(microseconds=1)
_INTERNED_MAX = 4096  # distinct shared values per ledger; past it values are kept unshared

_Extra: TypeAlias = tuple[str | None, str | None, tuple[str, ...], Any]
Row: TypeAlias = tuple[
    int | datetime, tuple[str, str, bool, str], TokenUsage, str | Rates, float | None, _Extra | None
]
"""(time, (provider, model, estimated, status), tokens, cost text or rates, duration, extra)."""


class Interned:
    """Shared copies of the values calls repeat (a model's names, tag lists, metadata)."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}

    def get(self, value: Hashable) -> Any:
        """The shared copy of ``value`` (``value`` itself once the table is full)."""
        try:
            return self._values[value]
        except KeyError:
            if len(self._values) < _INTERNED_MAX:
                self._values[value] = value
            return value


def _cost_text(cost: Cost) -> str:
    # This runs for every recorded call. str() of a Decimal is its exact text (value and
    # exponent); an f-string would go through Decimal.__format__, three times slower. The
    # parts without tokens are the shared zero, written without a call.
    parts = (
        cost.input,
        cost.cached_input,
        cost.cache_write,
        cost.output,
        cost.reasoning,
        cost.total,
    )
    return "|".join(["0" if p is _ZERO else "" if p is None else str(p) for p in parts])


def _metadata(metadata: Mapping[str, Any], interned: Interned) -> Any:
    """Metadata of text values as a shared tuple of items; any other kept as it is.

    Only text: sharing by equality would hand a call ``{"n": 1}`` the items of an earlier
    ``{"n": True}`` (equal, and equally hashed), changing what it reads back.
    """
    if all(type(value) is str for value in metadata.values()):
        return interned.get(tuple(metadata.items()))
    return metadata


def epoch_micros(seconds: float) -> int:
    """``(datetime.fromtimestamp(seconds, UTC) - EPOCH) // 1 µs``, without making the datetime.

    The same arithmetic as CPython's ``fromtimestamp``: the fraction of the second is scaled
    to microseconds and rounded half to even, then carried into the seconds when it rounds
    to a whole second (or below zero). tests/unit/test_cost_records.py holds them equal.
    """
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    elif micros < 0:
        micros += 1_000_000
        whole -= 1.0
    return int(whole) * 1_000_000 + micros


def pack(record: CostRecord, interned: Interned) -> Row:
    """``record`` as a compact row (see the module docstring)."""
    return pack_fields(fields_of(record), interned)


def pack_fields(fields: Fields, interned: Interned) -> Row:
    """A record's `Fields` as the compact row of that record (what the ledger keeps)."""
    when, provider, model, tokens, cost, estimated, status, run_id, parent, tags, metadata, took = (
        fields
    )
    time: int | datetime
    if type(when) is _Epoch:  # the tracker's records: never made into a datetime
        time = epoch_micros(when)
    else:
        assert isinstance(when, datetime)
        time = (when - _EPOCH) // _MICROSECOND if when.tzinfo is UTC else when
    who = interned.get((provider, model, estimated, status))
    extra = None
    if run_id is not None or parent is not None or tags or metadata:
        extra = (
            run_id,
            parent,
            interned.get(tuple(tags)),
            _metadata(metadata, interned) if metadata else None,
        )
    kept = cost if isinstance(cost, Rates) else _cost_text(cost)
    return (time, who, tokens, kept, took, extra)


def unpack(row: Row) -> CostRecord:
    """The `CostRecord` a row was packed from (equal to it, field by field)."""
    time, (provider, model, estimated, status), tokens, cost, duration, extra = row
    when = _EPOCH + time * _MICROSECOND if isinstance(time, int) else time
    priced: Any  # Rates: still unpriced, the record prices itself when its cost is read
    if isinstance(cost, str):
        priced = Cost(*[None if part == "" else Decimal(part) for part in cost.split("|")])
    else:
        priced = cost
    run_id = parent = metadata = None
    tags: tuple[str, ...] = ()
    if extra is not None:
        run_id, parent, tags, metadata = extra
    return CostRecord(
        time=when,
        provider=provider,
        model=model,
        tokens=tokens,
        cost=priced,
        estimated=estimated,
        status=status,
        run_id=run_id,
        parent_run_id=parent,
        tags=tags,
        metadata=dict(metadata) if metadata is not None else {},
        duration_s=duration,
    )
