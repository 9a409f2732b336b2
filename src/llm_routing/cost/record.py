"""`CostRecord`: one priced call, as the tracker records it and a ledger keeps it.

Its own module because a record is a value every part of ``cost`` reads (the ledgers, the
report, the Redis codec, the compact store) while the `Ledger` contract is about money held
and spent. The record is built once per call on the hot path, so `_record` sets its slots
directly and its ``time`` stays an epoch float until someone reads it (`_Time`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeAlias

from llm_routing.cost._rates import Rates
from llm_routing.cost.pricing import Cost, TokenUsage

__all__ = [
    "RECORD_COLUMNS",
    "CostRecord",
    "Fields",
    "fields_of",
    "fields_total",
    "raw_cost",
    "raw_time",
]

RECORD_COLUMNS: tuple[str, ...] = (
    "time",
    "provider",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "input_cost_usd",
    "cached_input_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "reasoning_cost_usd",
    "estimated",
    "status",
    "duration_s",
    "run_id",
    "parent_run_id",
    "tags",
    "metadata",
)
"""The keys of `CostRecord.as_row`, in order: the columns of ``CostTracker.to_dataframe()``."""


@dataclass(frozen=True, slots=True)
class CostRecord:
    """One priced call: who, when, how many tokens of each kind, what it cost.

    ``estimated`` is true when the provider reported no usage and the tokens were counted
    locally. ``status`` is ``"ok"``, ``"error"`` (the provider answered, then the call failed:
    only what it reported is charged) or ``"cancelled"`` (a stream closed early: the part
    received is charged, estimated). ``tags`` and ``metadata`` come from the call's config, so
    cost can be attributed to a feature or a user.
    """

    time: datetime
    provider: str
    model: str
    tokens: TokenUsage
    cost: Cost
    estimated: bool = False
    status: str = "ok"
    run_id: str | None = None
    parent_run_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    duration_s: float | None = None

    @property
    def key(self) -> str:
        """``provider:model``, the key of ``summary()["by_model"]``."""
        return f"{self.provider}:{self.model}"

    @property
    def cost_usd(self) -> float | None:
        """The total as a float, ``None`` when the price is unknown."""
        return None if self.cost.total is None else float(self.cost.total)

    @property
    def input_tokens(self) -> int:
        """The whole prompt, cached part included."""
        return self.tokens.prompt_tokens

    @property
    def output_tokens(self) -> int:
        """The whole answer, reasoning included."""
        return self.tokens.completion_tokens

    @property
    def cached_input_tokens(self) -> int:
        """Prompt tokens read from the provider's cache."""
        return self.tokens.cached_input

    @property
    def cache_write_tokens(self) -> int:
        """Prompt tokens written to the provider's cache (5-minute and 1-hour)."""
        return self.tokens.cache_write + self.tokens.cache_write_1h

    @property
    def reasoning_tokens(self) -> int:
        """Output tokens spent thinking."""
        return self.tokens.reasoning

    def as_row(self) -> dict[str, Any]:
        """A flat dict (floats for USD) for tables and data frames."""
        cost = self.cost
        return {
            "time": self.time,
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "input_cost_usd": _float(cost.input),
            "cached_input_cost_usd": _float(cost.cached_input),
            "cache_write_cost_usd": _float(cost.cache_write),
            "output_cost_usd": _float(cost.output),
            "reasoning_cost_usd": _float(cost.reasoning),
            "estimated": self.estimated,
            "status": self.status,
            "duration_s": self.duration_s,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
        }


class _Epoch(float):
    """A record's time as seconds since the epoch (UTC) until it is first read (`_Time`)."""

    __slots__ = ()


# The time slot itself, under `_Time` below; and the slots' setters for `_record`.
_TIME_SLOT: Any = CostRecord.__dict__["time"]
_RECORD_SLOTS: tuple[Any, ...] = tuple(
    CostRecord.__dict__[f.name].__set__ for f in fields(CostRecord)
)


class _Time:
    """`CostRecord.time`: the ``time`` slot, always read as a ``datetime``.

    The tracker records every call, and most records are packed by the ledger and read
    rarely or never, so it stores the call's start as it got it (an `_Epoch` float) and the
    UTC ``datetime`` is made the first time ``time`` is read, then kept in the slot. Equality,
    ``repr``, ``replace`` and pickling all read ``time``, so they see the ``datetime``; a
    ``time=`` given to the constructor is kept as it is, as before.
    """

    def __get__(self, record: CostRecord | None, owner: type | None = None) -> Any:
        if record is None:
            return self
        value = _TIME_SLOT.__get__(record, owner)
        if type(value) is _Epoch:
            value = datetime.fromtimestamp(value, UTC)
            _TIME_SLOT.__set__(record, value)
        return value

    def __set__(self, record: CostRecord, value: Any) -> None:
        _TIME_SLOT.__set__(record, value)  # the frozen class's __setattr__ still refuses users


setattr(CostRecord, "time", _Time())  # noqa: B010 (mypy keeps reading the field as datetime)

_COST_SLOT: Any = CostRecord.__dict__["cost"]
_TOKENS_SLOT: Any = CostRecord.__dict__["tokens"]


class _Cost:
    """`CostRecord.cost`: the ``cost`` slot, always read as a `Cost`.

    The tracker may store the call's `Rates` instead (`RateCard.deferred`: only when every
    part of its usage has a price): pricing is its dearest step per call and most records'
    cost is only ever summed, a batch at a time. The `Cost` is computed from the record's
    tokens the first time ``cost`` is read, then kept in the slot, so equality, ``repr``,
    ``replace`` and pickling all see the same `Cost` the tracker would have built at once.
    """

    def __get__(self, record: CostRecord | None, owner: type | None = None) -> Any:
        if record is None:
            return self
        value = _COST_SLOT.__get__(record, owner)
        if type(value) is Rates:
            value = value.cost(_TOKENS_SLOT.__get__(record, owner))
            _COST_SLOT.__set__(record, value)
        return value

    def __set__(self, record: CostRecord, value: Any) -> None:
        _COST_SLOT.__set__(record, value)


setattr(CostRecord, "cost", _Cost())  # noqa: B010 (mypy keeps reading the field as Cost)


def raw_time(record: CostRecord) -> datetime | _Epoch:
    """The time slot as stored: an `_Epoch` float while nobody has read ``record.time``."""
    value: datetime | _Epoch = _TIME_SLOT.__get__(record, CostRecord)
    return value


Fields: TypeAlias = tuple[
    "datetime | _Epoch",
    str,
    str,
    TokenUsage,
    "Cost | Rates",
    bool,
    str,
    "str | None",
    "str | None",
    "tuple[str, ...]",
    "Mapping[str, Any]",
    "float | None",
]
"""A record's fields, in `_record`'s order, its time and cost as stored (see `raw_time`,
`raw_cost`): what the memory ledger keeps of a call until it packs it, so the tracker's calls
(most of them) never build a `CostRecord` that nobody reads."""


def fields_of(record: CostRecord) -> Fields:
    """``record``'s `Fields` (``_record(*fields_of(record)) == record``)."""
    return (
        raw_time(record),
        record.provider,
        record.model,
        record.tokens,
        raw_cost(record),
        record.estimated,
        record.status,
        record.run_id,
        record.parent_run_id,
        record.tags,
        record.metadata,
        record.duration_s,
    )


def fields_total(fields: Fields) -> Decimal | None:
    """``cost.total`` of a record's `Fields`; an unpriced one is not priced (its total alone)."""
    cost = fields[4]
    if isinstance(cost, Rates):
        return cost.total(fields[3])
    return cost.total


def raw_cost(record: CostRecord) -> Cost | Rates:
    """The cost slot as stored: the `Rates` that will price it while nobody has read it."""
    value: Cost | Rates = _COST_SLOT.__get__(record, CostRecord)
    return value


def _record(
    started: datetime | _Epoch,
    provider: str,
    model: str,
    tokens: TokenUsage,
    cost: Cost | Rates,
    estimated: bool,
    status: str,
    run_id: str | None,
    parent_run_id: str | None,
    tags: tuple[str, ...],
    metadata: Mapping[str, Any],
    duration_s: float | None,
) -> CostRecord:
    """``CostRecord(...)`` with every field given, built through its slots (see `_Time`).

    A frozen dataclass's constructor sets each of its 12 fields by name through
    ``object.__setattr__`` (about 2 µs); the tracker builds one record per call. ``started``:
    a ``datetime``, or an `_Epoch` (seconds since the epoch), read back as the UTC ``datetime``.
    """
    record = _NEW(CostRecord)
    (s_time, s_provider, s_model, s_tokens, s_cost, s_est, s_status, s_run, s_parent, s_tags,
     s_meta, s_duration) = _RECORD_SLOTS  # fmt: skip
    s_time(record, started)
    s_provider(record, provider)
    s_model(record, model)
    s_tokens(record, tokens)
    s_cost(record, cost)
    s_est(record, estimated)
    s_status(record, status)
    s_run(record, run_id)
    s_parent(record, parent_run_id)
    s_tags(record, tags)
    s_meta(record, metadata)
    s_duration(record, duration_s)
    return record


_NEW = object.__new__


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
