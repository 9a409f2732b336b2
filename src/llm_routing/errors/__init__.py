"""The exception taxonomy, and reading provider errors: what kind of failure, and when to retry.

Our exceptions subclass LangChain's standard ones (``ContextOverflowError``,
``ModelRateLimitError``, ``ModelAPIError``) so code that already catches those keeps working.
``classify`` and ``retry_after`` read *any* provider's exception; they never raise, nor import a
provider SDK.

The package face: ``taxonomy`` (our exceptions), ``attempts`` (what a chain tried),
``classify`` (what a provider's error means), ``retry_after`` (when to retry). Every public
name keeps ``llm_routing.errors`` as its module, so reprs, docs and pickles name the path users
import from, whichever file defines it.
"""

from llm_routing._redact import scrub_credentials
from llm_routing.errors.attempts import AllModelsFailedError, Attempt
from llm_routing.errors.classify import classify, malformed_response_error
from llm_routing.errors.retry_after import header_getter, parse_duration, retry_after
from llm_routing.errors.taxonomy import (
    FALLBACK_ERRORS,
    BudgetExceededError,
    ContextLengthExceededError,
    ErrorKind,
    LLMRoutingError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitExhaustedError,
    UnknownModelError,
)
from llm_routing.errors.taxonomy import (
    _rebuild as _rebuild,
)

# The names schedule/headers.py imported before the split; package-internal now (see retry_after).
_parse_duration = parse_duration
_header_getter = header_getter

__all__ = [
    "FALLBACK_ERRORS",
    "AllModelsFailedError",
    "Attempt",
    "BudgetExceededError",
    "ContextLengthExceededError",
    "ErrorKind",
    "LLMRoutingError",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "RateLimitExhaustedError",
    "UnknownModelError",
    "classify",
    "malformed_response_error",
    "retry_after",
    "scrub_credentials",
]

# Pickles of our exceptions (a task queue's results) name the class's module, and name the
# ``_rebuild`` helper of ``__reduce__``: keep both on the public path, as before the split.
for _name in (*__all__, "_rebuild"):
    _obj = globals()[_name]
    if not isinstance(_obj, tuple):  # FALLBACK_ERRORS is a value, not a definition
        _obj.__module__ = __name__
del _name, _obj
