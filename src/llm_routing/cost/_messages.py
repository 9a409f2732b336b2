"""What the tracker tells users: a refused call, a budget crossing ``warn_at``, an unknown price.

Owns the wording and the warning and error classes users filter on (the tracker decides when),
so each message can say what happened in numbers and what to change, without the lifecycle
code around it. ``cost.tracker`` re-exports the classes, their public home.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from llm_routing.cost.budget import Bucket, BucketChange, period_end
from llm_routing.cost.ledger import Refusal
from llm_routing.cost.report import usd
from llm_routing.errors import BudgetExceededError, LLMRoutingError

__all__ = [
    "BudgetWarning",
    "UnknownPriceError",
    "UnknownPriceWarning",
    "crossing_message",
    "refusal_error",
    "unpriced_hint",
]


class BudgetWarning(UserWarning):
    """A budget's spend crossed ``warn_at`` of its limit (once per budget and period)."""


class UnknownPriceWarning(UserWarning):
    """A model's calls cannot be priced; they are recorded with an unknown cost."""


class UnknownPriceError(LLMRoutingError, ValueError):
    """``strict=True`` and the model has no known price, so the call is refused before it runs."""

    def __init__(self, message: str, *, model: str | None = None) -> None:
        self.model = model
        self.message = message
        super().__init__(message)


def refusal_error(
    refusal: Refusal,
    model: str,
    started: datetime,
    size: tuple[int | None, int | None],
    max_wait: float,
) -> BudgetExceededError:
    """The error for a call a budget refused: hard (spent) or held only (calls in flight).

    ``size`` is the call's (input tokens, reserved output tokens) when they were counted.
    """
    bucket: Bucket = refusal.bucket
    used = refusal.spent + refusal.reserved
    end = period_end(bucket.budget.period, started)
    resets = f"; it resets at {end:%Y-%m-%d %H:%M} UTC" if end is not None else ""
    inputs, outputs = size
    tokens = (
        f" ({inputs:,} input + {outputs:,} output tokens at its prices)"
        if inputs is not None and outputs is not None
        else ""
    )
    if refusal.held_only:
        message = (
            f"{bucket.label} of {usd(bucket.limit)} has room for this call to "
            f"{model} (up to {usd(refusal.requested)}{tokens}) beside the "
            f"{usd(refusal.spent)} spent, but calls in flight held {usd(refusal.reserved)} "
            f"of it for the {refusal.waited:.1f}s this call could wait (max_wait="
            f"{max_wait:g}s). Raise CostTracker(max_wait=…), send fewer calls at "
            "once, or lower max_tokens so each call holds less."
        )
    else:
        message = (
            f"{bucket.label} of {usd(bucket.limit)} would be exceeded: "
            f"{usd(refusal.spent)} spent and {usd(refusal.reserved)} held by calls in "
            f"flight, and this call to {model} may cost up to "
            f"{usd(refusal.requested)}{tokens}. Raise the budget (CostTracker(budget_usd=…, "
            f"budgets=…)), lower max_tokens, or use a cheaper model{resets}."
        )
    return BudgetExceededError(
        message,
        budget_usd=float(bucket.limit),
        spent_usd=float(used),
        requested_usd=float(refusal.requested),
        scope=bucket.budget.name,
        model=model,
    )


def crossing_message(change: BucketChange, warn_at: float) -> str:
    """The `BudgetWarning` of a bucket whose spend crossed ``warn_at`` of its limit."""
    bucket = change.bucket
    share = change.after / bucket.limit if bucket.limit else Decimal(1)
    return (
        f"llm_routing: {bucket.label} is {share:.0%} spent: {usd(change.after)} of "
        f"{usd(bucket.limit)} (warn_at={warn_at:g}); calls will be refused once "
        "their worst-case cost no longer fits"
    )


def unpriced_hint(in_catalog: bool) -> str:
    """How to price a model: register its price (catalogued) or the whole model (unknown)."""
    if in_catalog:
        return (
            "register its price: default_catalog().register(spec.with_overrides("
            "price=Price(input=…, output=…)), replace=True)"
        )
    return (
        "register it: default_catalog().register(ModelSpec(provider=…, name=…, "
        "context_window=…, price=Price(input=…, output=…)))"
    )
