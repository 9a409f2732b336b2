"""What the Redis ledger sends to its script and reads back: picodollars, records, totals.

Owns the encoding only, pure functions of values: USD as integer picodollars in strings (the
script adds them exactly), a record as compact JSON, the ``charge`` arguments, and the
summary the ``summary`` operation answers, shaped like `MemoryLedger.summary`.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from llm_routing.cost.budget import Bucket, period_keys
from llm_routing.cost.ledger import CostRecord, Reservation
from llm_routing.cost.pricing import Cost, TokenUsage

__all__ = [
    "charge_args",
    "group",
    "pico",
    "record_from",
    "record_json",
    "summary_from",
    "text",
    "usd",
]

_CONTEXT = decimal.Context(prec=80)
_PICO = 12
_ZERO = Decimal(0)
_GROUP_COUNTS = (
    "calls",
    "unpriced_calls",
    "estimated_calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_KINDS = ("total", "model", "tag", "hour", "day", "month")
_COST_PARTS = ("input", "cached_input", "cache_write", "output", "reasoning", "total")
_TOKEN_PARTS = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning")


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def pico(amount: Decimal, rounding: str) -> str:
    scaled = _CONTEXT.scaleb(amount, _PICO)
    return str(int(scaled.to_integral_value(rounding=rounding, context=_CONTEXT)))


def usd(pico: Any) -> Decimal:
    units = int(text(pico))
    return _ZERO if units == 0 else _CONTEXT.scaleb(Decimal(units), -_PICO)


def _cost_json(cost: Cost) -> dict[str, str | None]:
    return {
        name: None if getattr(cost, name) is None else str(getattr(cost, name))
        for name in _COST_PARTS
    }


def record_json(record: CostRecord) -> str:
    return json.dumps(
        {
            "time": record.time.isoformat(),
            "provider": record.provider,
            "model": record.model,
            "tokens": [getattr(record.tokens, name) for name in _TOKEN_PARTS],
            "cost": _cost_json(record.cost),
            "estimated": record.estimated,
            "status": record.status,
            "run_id": record.run_id,
            "parent_run_id": record.parent_run_id,
            "tags": list(record.tags),
            "metadata": dict(record.metadata),
            "duration_s": record.duration_s,
        },
        default=str,  # metadata may hold objects JSON cannot: kept as their text
        separators=(",", ":"),
    )


def record_from(raw: Any) -> CostRecord:
    data = json.loads(text(raw))
    cost = data["cost"]
    return CostRecord(
        time=datetime.fromisoformat(data["time"]),
        provider=data["provider"],
        model=data["model"],
        tokens=TokenUsage(*data["tokens"]),
        cost=Cost(*(None if cost[n] is None else Decimal(cost[n]) for n in _COST_PARTS)),
        estimated=data["estimated"],
        status=data["status"],
        run_id=data["run_id"],
        parent_run_id=data["parent_run_id"],
        tags=tuple(data["tags"]),
        metadata=data["metadata"],
        duration_s=data["duration_s"],
    )


def group(fields: Sequence[Any]) -> dict[str, Any]:
    flat = [text(item) for item in fields]
    values = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
    found: dict[str, Any] = {name: int(values.get(name, "0")) for name in _GROUP_COUNTS}
    priced = found["calls"] - found["unpriced_calls"]
    cost = usd(values.get("cost", "0"))
    # A group whose every call is unpriced has an unknown cost, not $0.
    found["cost"] = cost if priced > 0 or found["calls"] == 0 else None
    return {
        "calls": found["calls"],
        "cost": found["cost"],
        **{name: found[name] for name in _GROUP_COUNTS if name != "calls"},
    }


def charge_args(
    record: CostRecord,
    buckets: Sequence[Bucket],
    reservation: Reservation | None,
    max_records: int | None,
) -> list[str]:
    """The ``charge`` operation's arguments: the hold, the amount, buckets, groups, record."""
    total = record.cost.total
    groups = ["total\tall", f"model\t{record.key}"]
    groups += [f"tag\t{tag}" for tag in dict.fromkeys(record.tags)]
    groups += [f"{period}\t{key}" for period, key in period_keys(record.time).items()]
    counts = (
        1,
        1 if total is None else 0,
        1 if record.estimated else 0,
        record.input_tokens,
        record.output_tokens,
        record.cached_input_tokens,
        record.cache_write_tokens,
        record.reasoning_tokens,
    )
    return [
        "" if reservation is None else str(reservation.id),
        "-1" if reservation is None else str(reservation.generation),
        "" if total is None else pico(total, decimal.ROUND_HALF_EVEN),
        str(len(buckets)),
        *(bucket.key for bucket in buckets),
        str(len(groups)),
        *groups,
        *(str(count) for count in counts),
        record.status,
        record_json(record),
        "-1" if max_records is None else str(max_records),
    ]


def summary_from(raw: Sequence[Any]) -> dict[str, Any]:
    """The ``summary`` operation's answer as `MemoryLedger.summary` shapes it."""
    refused, in_flight, reserved, status_flat, kinds = raw
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, found in zip(_KINDS, kinds, strict=True):
        by_kind[kind] = {text(name): group(fields) for name, fields in found}
    total = by_kind["total"].get("all") or group([])
    statuses = [text(item) for item in status_flat]
    status = {statuses[i]: int(statuses[i + 1]) for i in range(0, len(statuses), 2)}
    return {
        "total_cost": total["cost"] if total["cost"] is not None else _ZERO,
        "calls": total["calls"],
        "unpriced_calls": total["unpriced_calls"],
        "estimated_calls": total["estimated_calls"],
        "refused_calls": int(refused),
        "error_calls": status.get("error", 0),
        "cancelled_calls": status.get("cancelled", 0),
        "in_flight_calls": int(in_flight),
        "reserved_cost": usd(reserved),
        "input_tokens": total["input_tokens"],
        "output_tokens": total["output_tokens"],
        "cached_input_tokens": total["cached_input_tokens"],
        "cache_write_tokens": total["cache_write_tokens"],
        "reasoning_tokens": total["reasoning_tokens"],
        "by_model": dict(sorted(by_kind["model"].items())),
        "by_tag": dict(sorted(by_kind["tag"].items())),
        "by_period": {p: dict(sorted(by_kind[p].items())) for p in ("hour", "day", "month")},
    }
