"""A MemoryLedger keeps its records compact and gives back records equal to those it was given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from llm_routing.cost import Cost, CostRecord, MemoryLedger, TokenUsage

WHEN = datetime(2025, 6, 1, 13, 45, 7, 123456, tzinfo=UTC)


def record(**changes: object) -> CostRecord:
    fields: dict[str, object] = {
        "time": WHEN,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "tokens": TokenUsage(input=1_500, cached_input=300, output=250, reasoning=40),
        "cost": Cost(
            Decimal("0.000225"),
            Decimal("0.0000225"),
            Decimal(0),
            Decimal("0.00015"),
            Decimal("2.4E-5"),
            Decimal("0.0004215"),
        ),
        "duration_s": 0.25,
    }
    fields.update(changes)
    return CostRecord(**fields)  # type: ignore[arg-type]


def kept(*records: CostRecord) -> list[CostRecord]:
    ledger = MemoryLedger()
    for item in records:
        ledger.add(item)
    return ledger.records()


def test_records_come_back_equal_field_by_field():
    given = [
        record(),
        record(cost=Cost.unknown(), status="error", estimated=True),
        record(cost=Cost(Decimal("1E-12"), None, Decimal("0E-9"), None, None, None)),
        record(run_id="r1", parent_run_id="p1", tags=("a", "b"), metadata={"user": "u1"}),
        record(time=datetime(2025, 6, 1, 13, 45)),  # naive: kept as it is
        record(time=WHEN.astimezone(timezone(timedelta(hours=2)))),
        record(time=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), duration_s=None),
    ]
    back = kept(*given)
    assert back == given
    for before, after in zip(given, back, strict=True):
        assert after.time.tzinfo == before.time.tzinfo
        assert after.as_row() == before.as_row()
        assert [repr(getattr(after.cost, f)) for f in ("input", "output", "total")] == [
            repr(getattr(before.cost, f)) for f in ("input", "output", "total")
        ]


def test_equal_but_differently_typed_metadata_is_never_shared():
    flags = record(metadata={"n": True})
    numbers = record(metadata={"n": 1})
    floats = record(metadata={"n": 1.0, "items": [1, 2]})
    back = kept(flags, numbers, floats)
    assert [type(r.metadata["n"]) for r in back] == [bool, int, float]
    assert back[2].metadata["items"] == [1, 2]


def test_each_read_gives_fresh_metadata():
    ledger = MemoryLedger()
    ledger.add(record(metadata={"user": "u1"}))
    ledger.records()[0].metadata["user"] = "changed"  # type: ignore[index]
    assert ledger.records()[0].metadata == {"user": "u1"}


def test_max_records_zero_keeps_totals_only():
    ledger = MemoryLedger(max_records=0)
    ledger.add(record())
    assert ledger.records() == []
    assert ledger.summary()["calls"] == 1


_EDGES = [0.0, 5e-7, -5e-7, 1.5e-6, 1.9999995, -1.9999995, 1e9 + 0.9999996, -0.9999999, 1.5]


@given(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False) | st.sampled_from(_EDGES))
def test_epoch_micros_is_what_fromtimestamp_rounds_to(seconds):
    from datetime import UTC, datetime, timedelta

    from llm_routing.cost._compact import EPOCH, epoch_micros

    when = datetime.fromtimestamp(seconds, UTC)
    assert epoch_micros(seconds) == (when - EPOCH) // timedelta(microseconds=1)
