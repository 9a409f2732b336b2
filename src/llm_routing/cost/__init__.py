"""Cost: price every call exactly, keep budgets from being overspent, show where money went.

``pricing`` is pure (usage + spec -> ``Cost``), ``budget`` says what a limit is, ``ledger`` keeps
the money (in memory, or any ``Ledger``), ``tracker`` is the decorator users put on models.
"""

from llm_routing.cost.budget import PERIODS, Budget
from llm_routing.cost.ledger import CostRecord, Ledger, Refusal, Reservation
from llm_routing.cost.memory import MemoryLedger
from llm_routing.cost.pricing import (
    Cost,
    TokenUsage,
    estimate_cost,
    parse_usage,
    price,
    price_tokens,
    usage_details,
)
from llm_routing.cost.tracker import (
    BudgetWarning,
    CostTracker,
    UnknownPriceError,
    UnknownPriceWarning,
)

__all__ = [
    "PERIODS",
    "Budget",
    "BudgetWarning",
    "Cost",
    "CostRecord",
    "CostTracker",
    "Ledger",
    "MemoryLedger",
    "Refusal",
    "Reservation",
    "TokenUsage",
    "UnknownPriceError",
    "UnknownPriceWarning",
    "estimate_cost",
    "parse_usage",
    "price",
    "price_tokens",
    "usage_details",
]
