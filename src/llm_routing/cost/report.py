"""Reading a tracker: summaries, cost per model, the records as a data frame, the notebook view.

Owns the read side of `CostTracker` (a base class, so the methods stay where users call them)
and how USD is shown in messages. The ledger keeps the totals; this module only shapes them.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from llm_routing.catalog import Catalog, ModelSpec
from llm_routing.cost.budget import Budget
from llm_routing.cost.ledger import RECORD_COLUMNS, CostRecord, Ledger
from llm_routing.errors import UnknownModelError

__all__ = ["Reporting", "usd"]

_ZERO = Decimal(0)


def usd(amount: Decimal | float) -> str:
    """``$0.0123``: cents for large amounts, six decimals below a dollar, no float noise."""
    value = Decimal(str(amount)) if isinstance(amount, float) else amount
    if abs(value) >= 1:
        return f"${value:,.2f}"
    text = f"{value:.6f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{value:.2f}"
    return f"${text}"


def _floats(value: Any) -> Any:
    """The summary with ``Decimal`` amounts as floats (``None`` stays ``None``)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


class Reporting:
    """The read side of `CostTracker`: what it spent, where, and against which budgets."""

    ledger: Ledger
    budgets: tuple[Budget, ...]
    warn_at: float
    _clock: Callable[[], float]

    @property
    def catalog(self) -> Catalog:
        """The catalogue model names are read with (`CostTracker` provides it)."""
        raise NotImplementedError

    def summary(self, *, exact: bool = False) -> dict[str, Any]:
        """Cost so far: totals, ``by_model``, ``by_tag``, ``by_period`` and the budgets.

        ``total_cost`` sums the calls whose price is known; ``unpriced_calls`` counts the
        others (a group whose every call is unpriced has ``cost`` ``None``). A call with several
        tags counts in each tag. ``by_period`` has ``"hour"``, ``"day"`` and ``"month"`` keyed
        by UTC period. ``budgets`` lists each budget's current period: ``limit``, ``spent``,
        ``reserved`` (held by calls in flight) and ``remaining``. Amounts are floats in USD, or
        exact ``Decimal`` with ``exact=True``.
        """
        data = self.ledger.summary()
        now = datetime.fromtimestamp(self._clock(), UTC)
        buckets = [b.bucket(now) for b in self.budgets]
        usage = self.ledger.bucket_usage(b.key for b in buckets)
        data["budgets"] = [
            {
                "name": bucket.budget.name,
                "period": bucket.budget.period,
                "tag": bucket.budget.tag,
                "bucket": bucket.key,
                "limit": bucket.limit,
                "spent": usage[bucket.key][0],
                "reserved": usage[bucket.key][1],
                "remaining": max(_ZERO, bucket.limit - usage[bucket.key][0] - usage[bucket.key][1]),
            }
            for bucket in buckets
        ]
        data["warn_at"] = self.warn_at
        return data if exact else _floats(data)

    @property
    def total_cost(self) -> float:
        """USD spent on calls with a known price since the last ``reset()``."""
        return float(self.ledger.summary()["total_cost"])

    def cost_for(self, model: str | ModelSpec) -> float | None:
        """USD spent on one model, named in any form the catalogue accepts.

        ``0.0`` for a model with no calls; ``None`` when every call it made was unpriced.
        """
        if isinstance(model, ModelSpec):
            key = model.key
        elif isinstance(model, str):
            try:
                key = self.catalog.get(model).key
            except (UnknownModelError, ValueError):
                key = model
        else:
            raise TypeError(
                "cost_for(model) needs a model name such as 'openai:gpt-4o-mini' or a ModelSpec, "
                f"got {type(model).__name__}"
            )
        group = self.ledger.summary()["by_model"].get(key)
        if group is None:
            return 0.0
        cost = group["cost"]
        return None if cost is None else float(cost)

    def records(self) -> list[CostRecord]:
        """Every kept record (the newest ``max_records``), oldest first."""
        return self.ledger.records()

    def to_dataframe(self) -> Any:
        """The records as a ``pandas.DataFrame``, one row per call (USD as floats)."""
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError(
                "CostTracker.to_dataframe() needs pandas: pip install pandas "
                "(or pip install 'llm-routing[notebook]'); summary() and records() work without it"
            ) from None
        return pd.DataFrame([r.as_row() for r in self.records()], columns=list(RECORD_COLUMNS))

    def _repr_html_(self) -> str:
        data = self.summary()
        esc = html.escape

        def money(value: float | None) -> str:
            return "unknown" if value is None else esc(usd(value))

        head = (
            "<tr><th>model</th><th>calls</th><th>cost</th><th>input tokens</th>"
            "<th>output tokens</th><th>unpriced</th><th>estimated</th></tr>"
        )
        rows = [
            f"<tr><td>{esc(key)}</td><td>{g['calls']}</td><td>{money(g['cost'])}</td>"
            f"<td>{g['input_tokens']:,}</td><td>{g['output_tokens']:,}</td>"
            f"<td>{g['unpriced_calls']}</td><td>{g['estimated_calls']}</td></tr>"
            for key, g in data["by_model"].items()
        ]
        rows.append(
            f"<tr><th>total</th><th>{data['calls']}</th><th>{money(data['total_cost'])}</th>"
            f"<th>{data['input_tokens']:,}</th><th>{data['output_tokens']:,}</th>"
            f"<th>{data['unpriced_calls']}</th><th>{data['estimated_calls']}</th></tr>"
        )
        budgets = "".join(
            f"<li>{esc(b['name'])} ({esc(b['bucket'])}): {money(b['spent'])} spent, "
            f"{money(b['reserved'])} held, {money(b['remaining'])} left of "
            f"{money(b['limit'])}</li>"
            for b in data["budgets"]
        )
        refused = f"<p>refused calls: {data['refused_calls']}</p>"
        return (
            "<div><strong>CostTracker</strong><table>"
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
            f"{refused}{'<ul>' + budgets + '</ul>' if budgets else ''}</div>"
        )
