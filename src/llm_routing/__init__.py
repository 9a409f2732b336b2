"""llm_routing: resilient, fast and cheap LLM calls in LangChain, as composable Runnables.

Public names only; everything else lives in a module of its own.
"""

from llm_routing.catalog.spec import Limits, ModelSpec, Price
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

__version__ = "0.1.0"

__all__ = [
    "FALLBACK_ERRORS",
    "AllModelsFailedError",
    "BudgetExceededError",
    "ContextLengthExceededError",
    "ErrorKind",
    "LLMRoutingError",
    "Limits",
    "ModelSpec",
    "Price",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "RateLimitExhaustedError",
    "UnknownModelError",
    "__version__",
    "classify",
    "retry_after",
]
