"""Budgets: what a limit is (amount, period, tag), which buckets a call counts against, and when.

Pure values and functions of (budgets, time, spend): the ledger stores the spend and applies
`first_exceeded` atomically, the tracker turns refusals and `crossings` into errors and warnings.
Periods are calendar periods in UTC: ``hour`` (``2025-06-01T13``), ``day`` (``2025-06-01``),
``month`` (``2025-06``), and ``total`` (until ``reset()``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "PERIODS",
    "Bucket",
    "BucketChange",
    "Budget",
    "buckets_for",
    "crossings",
    "first_exceeded",
    "parse_budgets",
    "period_end",
    "period_key",
    "period_keys",
    "to_usd",
]

PERIODS: tuple[str, ...] = ("total", "hour", "day", "month")
"""The periods a budget can cover; the calendar ones reset at the start of each UTC period."""

# The length of each period's prefix of an ISO-8601 UTC timestamp: 2025-06-01T13:45:00+00:00.
_ISO_PREFIX = {"hour": 13, "day": 10, "month": 7}
# period_keys of the hours seen lately (a few: records may arrive out of order).
_KEYS_BY_HOUR: dict[tuple[int, int, int, int], dict[str, str]] = {}
_KEYS_KEPT = 64


def to_usd(value: Any, name: str, *, allow_none: bool = False) -> Decimal | None:
    """A non-negative, finite amount of USD as ``Decimal`` (floats read via ``str``: 0.1 is 0.1)."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be an amount of USD (a number), got None")
    if isinstance(value, str):
        # build_router and the config file take numbers only; a string here would be a
        # number read from somewhere without being parsed, so the tracker refuses it too.
        raise TypeError(
            f"{name} must be an amount of USD as a number (5.0, or Decimal({value!r}) for exact "
            f"cents), got the string {value!r}; convert it with float(…) or Decimal(…)"
        )
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{name} must be an amount of USD (a number), got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite amount of USD, got {value!r}")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise TypeError(f"{name} must be an amount of USD (a number), got {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"{name} must be a finite amount of USD, got {value!r}")
    if amount < 0:
        raise ValueError(f"{name} must be >= 0 USD (None means no limit), got {value!r}")
    return amount


def _check_period(period: Any, name: str) -> str:
    if not isinstance(period, str):
        raise TypeError(f"{name} must be one of {', '.join(PERIODS)}; got {period!r}")
    if period not in PERIODS:
        raise ValueError(f"{name} must be one of {', '.join(PERIODS)}; got {period!r}")
    return period


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit: ``limit_usd`` per ``period``, for every call or only ``tag``-ged ones.

    ``Budget(5)`` caps the tracker's lifetime spend, ``Budget(1, "day")`` each UTC day,
    ``Budget(0.5, "day", tag="user:42")`` each day's spend of calls whose config carries the tag
    ``user:42`` (``model.invoke(x, config={"tags": ["user:42"]})``).
    """

    limit_usd: Decimal
    period: str = "total"
    tag: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit_usd", to_usd(self.limit_usd, "Budget.limit_usd"))
        _check_period(self.period, "Budget.period")
        if self.tag is not None and (not isinstance(self.tag, str) or not self.tag):
            raise TypeError(f"Budget.tag must be a non-empty string or None, got {self.tag!r}")

    @property
    def name(self) -> str:
        """How messages name this budget: ``total``, ``day``, ``day budget of tag 'x'``."""
        return self.period if self.tag is None else f"{self.period} (tag {self.tag!r})"

    def bucket(self, when: datetime) -> Bucket:
        """The bucket a call made at ``when`` counts against."""
        key = "total"
        if self.period != "total":
            key = f"{self.period}:{period_key(self.period, when)}"
        if self.tag is not None:
            key = f"{key}#{self.tag}"
        limit = self.limit_usd
        assert limit is not None  # set by __post_init__
        return Bucket(key=key, limit=limit, budget=self, start=when)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget in one period: the unit spend is counted and checked in."""

    key: str
    limit: Decimal
    budget: Budget
    start: datetime

    @property
    def label(self) -> str:
        """Human form: ``day budget (2025-06-01 UTC)``."""
        period = self.budget.period
        when = "" if period == "total" else f" ({period_key(period, self.start)} UTC)"
        return f"{self.budget.name} budget{when}"


@dataclass(frozen=True, slots=True)
class BucketChange:
    """A bucket's committed spend before and after one charge."""

    bucket: Bucket
    before: Decimal
    after: Decimal


def period_key(period: str, when: datetime) -> str:
    """The UTC calendar period ``when`` is in: ``2025-06-01T13``, ``2025-06-01``, ``2025-06``."""
    if period == "total":
        return "total"
    length = _ISO_PREFIX.get(period)
    if length is None:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}; got {period!r}")
    return when.astimezone(UTC).isoformat()[:length]


def period_keys(when: datetime) -> dict[str, str]:
    """``{"hour": …, "day": …, "month": …}`` for ``when``, formatted once per UTC hour.

    Every call is counted in its periods, so the keys of the current hour are remembered
    rather than formatted again (a UTC ``datetime``'s hour decides them all).
    """
    if when.tzinfo is not UTC:
        return _format_keys(when)
    hour = (when.year, when.month, when.day, when.hour)
    keys = _KEYS_BY_HOUR.get(hour)
    if keys is None:
        if len(_KEYS_BY_HOUR) >= _KEYS_KEPT:
            _KEYS_BY_HOUR.clear()
        keys = _KEYS_BY_HOUR[hour] = _format_keys(when)
    return dict(keys)


def _format_keys(when: datetime) -> dict[str, str]:
    iso = when.astimezone(UTC).isoformat()
    return {period: iso[:length] for period, length in _ISO_PREFIX.items()}


def period_end(period: str, when: datetime) -> datetime | None:
    """When the period ``when`` falls in ends (UTC); ``None`` for ``total``."""
    when = when.astimezone(UTC)
    if period == "hour":
        return when.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if period == "day":
        return when.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if period == "month":
        year, month = (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)
    _check_period(period, "period")
    return None


def parse_budgets(
    budget_usd: Any = None,
    budgets: Mapping[str, Any] | Iterable[Budget] | Budget | None = None,
) -> tuple[Budget, ...]:
    """Normalise the tracker's two budget arguments into `Budget` values.

    ``budget_usd`` is the total budget. ``budgets`` is a ``{period: usd}`` mapping
    (``{"day": 1.0, "month": 20}``), a `Budget`, or an iterable of them (per-tag budgets).
    Two budgets for the same period and tag are an error.
    """
    found: list[Budget] = []
    total = to_usd(budget_usd, "CostTracker(budget_usd=…)", allow_none=True)
    if total is not None:
        found.append(Budget(total))
    if budgets is None:
        pass
    elif isinstance(budgets, Budget):
        found.append(budgets)
    elif isinstance(budgets, Mapping):
        for period, amount in budgets.items():
            _check_period(period, f"CostTracker(budgets={{{period!r}: …}}) key")
            usd = to_usd(amount, f"CostTracker(budgets={{{period!r}: …}})")
            assert usd is not None
            found.append(Budget(usd, period))
    elif isinstance(budgets, Iterable) and not isinstance(budgets, str | bytes):
        for position, item in enumerate(budgets):
            if not isinstance(item, Budget):
                raise TypeError(
                    f"CostTracker(budgets=[…]) item #{position} must be a Budget such as "
                    f"Budget(1.0, 'day', tag='team-a'), got {item!r}"
                )
            found.append(item)
    else:
        raise TypeError(
            "CostTracker(budgets=…) must be a {period: usd} mapping such as {'day': 1.0}, a "
            f"Budget, or a list of Budget; got {type(budgets).__name__}"
        )
    seen: set[tuple[str, str | None]] = set()
    for budget in found:
        ident = (budget.period, budget.tag)
        if ident in seen:
            raise ValueError(
                f"two budgets for the same period and tag ({budget.name}); give one amount per "
                "period and tag (budget_usd=… is the 'total' budget)"
            )
        seen.add(ident)
    return tuple(found)


def buckets_for(budgets: Sequence[Budget], when: datetime, tags: Iterable[str]) -> list[Bucket]:
    """The buckets a call made at ``when`` with ``tags`` counts against."""
    if not budgets:
        return []
    tagset = set(tags)
    return [b.bucket(when) for b in budgets if b.tag is None or b.tag in tagset]


def first_exceeded(
    buckets: Sequence[Bucket],
    used: Callable[[str], Decimal],
    amount: Decimal,
) -> Bucket | None:
    """The first bucket where ``used(key) + amount`` would pass its limit, else ``None``.

    ``used`` returns committed plus reserved spend; reaching the limit exactly is allowed.
    """
    for bucket in buckets:
        if used(bucket.key) + amount > bucket.limit:
            return bucket
    return None


def crossings(changes: Iterable[BucketChange], warn_at: float) -> list[BucketChange]:
    """The changes that took a bucket's spend across ``warn_at × limit`` (once per crossing)."""
    share = Decimal(str(warn_at))
    crossed: list[BucketChange] = []
    for change in changes:
        threshold = change.bucket.limit * share
        if change.before < threshold <= change.after:
            crossed.append(change)
    return crossed
