"""The exception taxonomy: what went wrong, in the terms a router acts on.

Our exceptions subclass LangChain's standard ones (``ContextOverflowError``,
``ModelRateLimitError``, ``ModelAPIError``) so code that already catches those keeps working.
Each keeps its constructor arguments as attributes and pickles (they cross process boundaries:
multiprocessing, Celery). Reading a provider's exception is ``classify`` and ``retry_after``'s
job; this module only says what our own errors are. `Attempt` and
`AllModelsFailedError` (a chain's account of each failure) classify, so they live in ``attempts``.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
)

__all__ = [
    "FALLBACK_ERRORS",
    "BudgetExceededError",
    "ContextLengthExceededError",
    "ErrorKind",
    "LLMRoutingError",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "RateLimitExhaustedError",
    "UnknownModelError",
]


class ErrorKind(StrEnum):
    """What went wrong, in the terms a router acts on.

    Each kind has one reaction: ``rate_limit`` waits and retries, ``quota`` falls back at once
    (waiting will not help before the day or the bill resets), ``context`` moves to a
    larger-context model, ``transient`` retries then falls back, ``auth`` and ``bad_request``
    propagate (another attempt fails the same way), ``budget`` is our own spending limit.

    Example:
        >>> from llm_routing import ErrorKind, classify
        >>> classify(TimeoutError("read timed out"))
        <ErrorKind.TRANSIENT: 'transient'>
        >>> ErrorKind("quota") is ErrorKind.QUOTA
        True
    """

    RATE_LIMIT = "rate_limit"
    QUOTA = "quota"
    CONTEXT = "context"
    TRANSIENT = "transient"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    BUDGET = "budget"
    UNKNOWN = "unknown"


class LLMRoutingError(Exception):
    """Base of every exception this package raises, for ``except LLMRoutingError``.

    Example:
        >>> from llm_routing import BudgetExceededError, LLMRoutingError
        >>> try:
        ...     raise BudgetExceededError(budget_usd=5.0, spent_usd=4.99, requested_usd=0.02)
        ... except LLMRoutingError as exc:
        ...     print(type(exc).__name__, exc.budget_usd)
        BudgetExceededError 5.0
    """


class _PicklesByState(BaseException):
    """Pickles from the message and the attributes, not by calling the constructor again.

    Exceptions with keyword-only constructor arguments do not pickle by default, and ours
    cross process boundaries (multiprocessing, Celery).
    """

    message: str

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__))


def _fmt_tokens(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


class ContextLengthExceededError(_PicklesByState, ContextOverflowError, LLMRoutingError):
    """The input does not fit the model's context window.

    Raised by the context guard before any network call, and mapped from a provider's own
    context-overflow error. It is in ``FALLBACK_ERRORS`` so a fallback chain moves on to a
    model with a larger window. The seed's positional form ``(message, required_tokens,
    max_tokens)`` is kept.

    Example:
        The guard refuses before any request is sent, so no key or network is needed here:

        >>> from langchain_openai import ChatOpenAI
        >>> from llm_routing import ContextGuard, ContextLengthExceededError
        >>> model = ContextGuard() | ChatOpenAI(model="gpt-4o-mini", api_key="unused")
        >>> try:
        ...     model.invoke("word " * 200_000)
        ... except ContextLengthExceededError as exc:
        ...     print(exc.model, exc.max_tokens, exc.required_tokens > exc.max_tokens)
        openai:gpt-4o-mini 115200 True
    """

    def __init__(
        self,
        message: str | None = None,
        required_tokens: int | None = None,
        max_tokens: int | None = None,
        *,
        model: str | None = None,
    ) -> None:
        self.model = model
        self.required_tokens = required_tokens
        self.max_tokens = max_tokens
        if message is None:
            where = f" for {model}" if model else ""
            message = (
                f"input needs {_fmt_tokens(required_tokens)} tokens{where}, which accepts "
                f"{_fmt_tokens(max_tokens)}; shorten the input or route it to a larger-context "
                "model (add one to the fallbacks or large_context of the router)"
            )
        self.message = message
        super().__init__(message)


class RateLimitExhaustedError(_PicklesByState, ModelRateLimitError, LLMRoutingError):
    """Waiting for this model's capacity would take longer than allowed, so we stop waiting.

    ``is_retryable`` is False on purpose: the scheduler has already decided that retrying this
    model is not worth it, and the right move is a fallback model, now.

    Example:
        A request larger than the model's whole TPM can never be scheduled, so it is refused
        at once (a router would try its next model):

        >>> from langchain_openai import ChatOpenAI
        >>> from llm_routing import RateLimitExhaustedError
        >>> from llm_routing.schedule import RateScheduler
        >>> scheduler = RateScheduler(limits={"openai:gpt-4o-mini": {"tpm": 1_000}})
        >>> model = scheduler | ChatOpenAI(model="gpt-4o-mini", api_key="unused")
        >>> try:
        ...     model.invoke("word " * 5_000)
        ... except RateLimitExhaustedError as exc:
        ...     print(exc.model, exc.reason, exc.is_retryable)
        openai:gpt-4o-mini request larger than the limit False
    """

    is_retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        model: str | None = None,
        wait_s: float | None = None,
        reason: str = "rate limited",
    ) -> None:
        self.model = model
        self.wait_s = wait_s
        self.reason = reason
        if message is None:
            wait = "an unbounded time" if wait_s is None or math.isinf(wait_s) else f"{wait_s:.1f}s"
            message = (
                f"{model or 'model'}: {reason}; capacity would take {wait} to free up, "
                "more than max_wait allows. Add a fallback model, raise max_wait, or lower the "
                "request rate."
            )
        self.message = message
        super().__init__(message)


class QuotaExceededError(_PicklesByState, ModelError, LLMRoutingError):
    """The provider's quota is spent (billing, credits, a daily limit): retrying will not help.

    Distinct from a rate limit: an OpenAI ``insufficient_quota`` is a 429 too, but waiting a
    minute does not fix it. The router falls back at once.

    Example:
        >>> from llm_routing import QuotaExceededError, classify
        >>> exc = QuotaExceededError(model="openai:gpt-4o-mini", reason="insufficient_quota")
        >>> classify(exc), exc.is_retryable
        (<ErrorKind.QUOTA: 'quota'>, False)
    """

    is_retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        model: str | None = None,
        reason: str = "quota exhausted",
    ) -> None:
        self.model = model
        self.reason = reason
        if message is None:
            message = (
                f"{model or 'model'}: {reason}; check the provider's billing or daily limits, "
                "or add a fallback model"
            )
        self.message = message
        super().__init__(message)


class ProviderUnavailableError(_PicklesByState, ModelAPIError, LLMRoutingError):
    """The provider kept failing (5xx, overloaded, timeouts, dropped connections) after retries.

    Also what a malformed response or stream becomes (see `malformed_response_error`): the
    provider broke its own protocol, so another model, or a later try, is the answer.

    Example:
        >>> from llm_routing import FALLBACK_ERRORS, ProviderUnavailableError, classify
        >>> exc = ProviderUnavailableError(model="openai:gpt-4o-mini", attempts=3)
        >>> classify(exc), isinstance(exc, FALLBACK_ERRORS)
        (<ErrorKind.TRANSIENT: 'transient'>, True)
    """

    is_retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        model: str | None = None,
        attempts: int | None = None,
    ) -> None:
        self.model = model
        self.attempts = attempts
        if message is None:
            tried = f" after {attempts} attempts" if attempts else ""
            message = (
                f"{model or 'provider'} is unavailable{tried}; the router falls back to the next "
                "model, or retry later"
            )
        self.message = message
        super().__init__(message)


class BudgetExceededError(_PicklesByState, LLMRoutingError):
    """The call could cost more than the budget has left, so it was refused before spending.

    Example:
        The tracker holds the worst case (input + ``max_tokens``) before the call is sent:

        >>> from langchain_openai import ChatOpenAI
        >>> from llm_routing import BudgetExceededError, CostTracker
        >>> tracker = CostTracker(budget_usd=0.001)
        >>> model = tracker | ChatOpenAI(model="gpt-4o", api_key="unused", max_tokens=1_000)
        >>> try:
        ...     model.invoke("Hello")
        ... except BudgetExceededError as exc:
        ...     print(exc.scope, exc.budget_usd, exc.requested_usd)
        total 0.001 0.01002
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        budget_usd: float | None = None,
        spent_usd: float | None = None,
        requested_usd: float | None = None,
        scope: str = "total",
        model: str | None = None,
    ) -> None:
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.requested_usd = requested_usd
        self.scope = scope
        self.model = model
        if message is None:
            message = (
                f"{scope} budget ${budget_usd if budget_usd is not None else '?'} would be "
                f"exceeded: ${spent_usd if spent_usd is not None else '?'} spent or reserved, "
                f"this call may cost up to ${requested_usd if requested_usd is not None else '?'}"
                f"{' on ' + model if model else ''}. Raise the budget, use a cheaper model, or "
                "lower max_tokens."
            )
        self.message = message
        super().__init__(message)


class UnknownModelError(_PicklesByState, LookupError, ValueError):
    """A model name the catalogue does not know; the message says how to register it.

    Example:
        >>> from llm_routing import UnknownModelError, default_catalog
        >>> try:
        ...     default_catalog().get("acme:acme-1")
        ... except UnknownModelError as exc:
        ...     print(exc.model, "catalog.register(ModelSpec(" in str(exc))
        acme:acme-1 True
    """

    def __init__(self, message: str, model: str | None = None) -> None:
        self.model = model
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        # LookupError would repr() the message like a KeyError; users should read prose.
        return self.message


def _rebuild(cls: type[BaseException], message: str, state: dict[str, Any]) -> BaseException:
    # The other half of _PicklesByState: a bare instance, then the saved state.
    exc = cls.__new__(cls)
    BaseException.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


FALLBACK_ERRORS: tuple[type[BaseException], ...] = (
    ContextLengthExceededError,
    RateLimitExhaustedError,
    QuotaExceededError,
    ProviderUnavailableError,
    BudgetExceededError,
    # A model the decorators do not wrap still raises LangChain's standard errors; for those
    # too, another model is the right answer. Bad requests and auth errors are absent on
    # purpose: the next model would fail the same way, or the user must fix a key.
    ContextOverflowError,
    ModelRateLimitError,
    ModelAPIError,
    ModelTimeoutError,
    ModelConnectionError,
)
"""Pass as ``exceptions_to_handle`` to ``Runnable.with_fallbacks``.

Example:
    >>> from langchain_openai import ChatOpenAI
    >>> from llm_routing import FALLBACK_ERRORS, ContextGuard
    >>> guard = ContextGuard()
    >>> small = guard | ChatOpenAI(model="gpt-4o-mini", api_key="unused", max_retries=0)
    >>> large = guard | ChatOpenAI(model="gpt-4.1-mini", api_key="unused", max_retries=0)
    >>> chain = small.with_fallbacks([large], exceptions_to_handle=FALLBACK_ERRORS)
"""
