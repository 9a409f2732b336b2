"""llm_routing: resilient, fast and cheap LLM calls in LangChain, as composable Runnables.

Public names only; everything else lives in a module of its own.
"""

from llm_routing.catalog import Catalog, Limits, ModelSpec, Price, default_catalog
from llm_routing.config import from_config
from llm_routing.cost import Budget, BudgetWarning, CostTracker, UnknownPriceError
from llm_routing.errors import (
    FALLBACK_ERRORS,
    AllModelsFailedError,
    BudgetExceededError,
    ContextLengthExceededError,
    ErrorKind,
    LLMRoutingError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitExhaustedError,
    UnknownModelError,
    classify,
    retry_after,
)
from llm_routing.guard import ContextGuard
from llm_routing.router import Router, build_router, create_auto_picker_llm, init_model
from llm_routing.schedule import RateScheduler
from llm_routing.tokens import count_tokens, fits

__version__ = "0.1.0"

__all__ = [
    "FALLBACK_ERRORS",
    "AllModelsFailedError",
    "Budget",
    "BudgetExceededError",
    "BudgetWarning",
    "Catalog",
    "ContextGuard",
    "ContextLengthExceededError",
    "CostTracker",
    "ErrorKind",
    "LLMRoutingError",
    "Limits",
    "ModelSpec",
    "Price",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "RateLimitExhaustedError",
    "RateScheduler",
    "Router",
    "UnknownModelError",
    "UnknownPriceError",
    "__version__",
    "build_router",
    "classify",
    "count_tokens",
    "create_auto_picker_llm",
    "default_catalog",
    "fits",
    "from_config",
    "init_model",
    "retry_after",
]
