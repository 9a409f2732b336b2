"""llm_routing: resilient, fast and cheap LLM calls in LangChain, as composable Runnables.

Public names only; everything else lives in a module of its own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_routing.catalog import Catalog, Limits, ModelSpec, Price, default_catalog
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
    from llm_routing.middleware import RoutingMiddleware
    from llm_routing.router import Router, build_router, create_auto_picker_llm, init_model
    from llm_routing.router.from_config import from_config
    from llm_routing.schedule import RateScheduler
    from llm_routing.tokens import count_tokens, fits

# Each public name and the module it lives in, imported on first use: ``import llm_routing.sim``
# (the simulated provider, a process of its own) or ``llm_routing.tokens`` must not load the
# router, LangChain's chat models, Redis or Langfuse just because this package is their parent.
_HOMES = {
    "Catalog": "catalog",
    "Limits": "catalog",
    "ModelSpec": "catalog",
    "Price": "catalog",
    "default_catalog": "catalog",
    "from_config": "router.from_config",
    "Budget": "cost",
    "BudgetWarning": "cost",
    "CostTracker": "cost",
    "UnknownPriceError": "cost",
    "FALLBACK_ERRORS": "errors",
    "AllModelsFailedError": "errors",
    "BudgetExceededError": "errors",
    "ContextLengthExceededError": "errors",
    "ErrorKind": "errors",
    "LLMRoutingError": "errors",
    "ProviderUnavailableError": "errors",
    "QuotaExceededError": "errors",
    "RateLimitExhaustedError": "errors",
    "UnknownModelError": "errors",
    "classify": "errors",
    "retry_after": "errors",
    "ContextGuard": "guard",
    "RoutingMiddleware": "middleware",
    "Router": "router",
    "build_router": "router",
    "create_auto_picker_llm": "router",
    "init_model": "router",
    "RateScheduler": "schedule",
    "count_tokens": "tokens",
    "fits": "tokens",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


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
    "RoutingMiddleware",
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
