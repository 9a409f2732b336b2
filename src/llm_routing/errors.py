"""The exception taxonomy, and reading provider errors: what kind of failure, and when to retry.

Our exceptions subclass LangChain's standard ones (``ContextOverflowError``,
``ModelRateLimitError``, ``ModelAPIError``) so code that already catches those keeps working.
``classify`` and ``retry_after`` read *any* provider's exception; they never raise, nor import a
provider SDK.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

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


def _fmt_tokens(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


class ContextLengthExceededError(ContextOverflowError, LLMRoutingError):
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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__))


class RateLimitExhaustedError(ModelRateLimitError, LLMRoutingError):
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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__))


class QuotaExceededError(ModelError, LLMRoutingError):
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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__))


class ProviderUnavailableError(ModelAPIError, LLMRoutingError):
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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__))


class BudgetExceededError(LLMRoutingError):
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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__))


class UnknownModelError(LookupError, ValueError):
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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One model the router tried, and why it did not answer."""

    model: str
    error: BaseException

    @property
    def kind(self) -> ErrorKind:
        """How the failure was classified."""
        return classify(self.error)


class AllModelsFailedError(LLMRoutingError, RuntimeError):
    """Every model of a fallback chain failed. ``attempts`` says which failed, and why.

    LangChain's own ``with_fallbacks`` re-raises only the first error, which hides why the
    fallbacks failed too. Also a ``RuntimeError``, as the seed's callers expect.

    Example:
        Both models' guards refuse a 200k-token input, before any request is sent:

        >>> from langchain_openai import ChatOpenAI
        >>> from llm_routing import AllModelsFailedError, build_router
        >>> router = build_router(
        ...     ChatOpenAI(model="gpt-4o-mini", api_key="unused", max_retries=0),
        ...     [ChatOpenAI(model="gpt-4o", api_key="unused", max_retries=0)],
        ... )
        >>> try:
        ...     router.invoke("word " * 200_000)
        ... except AllModelsFailedError as exc:
        ...     print([(attempt.model, attempt.kind.value) for attempt in exc.attempts])
        [('openai:gpt-4o-mini', 'context'), ('openai:gpt-4o', 'context')]
    """

    def __init__(self, attempts: Iterable[Attempt | tuple[str, BaseException]]) -> None:
        self.attempts: list[Attempt] = [
            a if isinstance(a, Attempt) else Attempt(model=a[0], error=a[1]) for a in attempts
        ]
        lines = [
            f"  - {a.model}: {a.kind.value}: {type(a.error).__name__}: {_first_line(a.error)}"
            for a in self.attempts
        ]
        message = f"all {len(self.attempts)} models failed:\n" + "\n".join(lines)
        self.message = message
        super().__init__(message)

    @property
    def errors(self) -> list[BaseException]:
        """The exceptions, in the order the models were tried."""
        return [a.error for a in self.attempts]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.attempts,))


def _rebuild(cls: type[BaseException], message: str, state: dict[str, Any]) -> BaseException:
    # Exceptions with keyword-only constructor arguments do not pickle by default, and they
    # cross process boundaries (multiprocessing, Celery), so rebuild from the saved state.
    exc = cls.__new__(cls)
    BaseException.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."


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


# --------------------------------------------------------------------------- classification

_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
        # Anthropic's spend-limit 429s (error.details.error_code): a monthly threshold, not a
        # rate; they come without retry-after because waiting minutes cannot help.
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
        "linked_organization_spend_limit_reached",
    }
)
# Anthropic SDK classes for spend limits subclass RateLimitError (429) although waiting a
# minute cannot help; match them by class name so the SDK need not be importable.
_QUOTA_CLASS_NAMES = frozenset(
    {
        "PaymentRequiredError",
        "ContractSpendLimitReachedError",
        "EnforcedSpendLimitReachedError",
        "LinkedOrganizationSpendLimitReachedError",
        "OrganizationOnHoldError",
    }
)
# What the SDKs raise for a body or an SSE frame that is not the JSON they expect: the stdlib's
# JSONDecodeError (openai and anthropic decode SSE frames with json.loads and do not wrap it),
# and openai's strict-validation error. Matched by name so no SDK need be importable.
_MALFORMED_CLASS_NAMES = frozenset({"JSONDecodeError", "APIResponseValidationError"})
_TRANSIENT_CLASS_NAMES = frozenset(
    {
        "APITimeoutError",
        "APIConnectionError",
        "TimeoutException",
        "TransportError",
        "ConnectError",
        "ReadTimeout",
        "RemoteProtocolError",
        "ServerDisconnectedError",
        "ClientConnectionError",
        "ServiceUnavailable",
        "DeadlineExceeded",
        "InternalServerError",
        "ServerError",
        # A response body that is not valid JSON is a provider fault; the next try may be fine.
        *_MALFORMED_CLASS_NAMES,
    }
)
_TRANSIENT_STATUS = frozenset({408, 425, 500, 502, 503, 504, 520, 522, 524, 529})
_AUTH_STATUS = frozenset({401, 403})
_BAD_REQUEST_STATUS = frozenset({400, 404, 405, 409, 413, 415, 422})

_CONTEXT_TEXT = re.compile(
    r"context[_ ]length[_ ]exceeded|maximum context length|context window|prompt is too long"
    r"|input is too long|too many (input )?tokens|input tokens exceed|exceeds the context"
    r"|reduce the length of the messages",
    re.IGNORECASE,
)
_QUOTA_TEXT = re.compile(
    r"insufficient[_ ]quota|exceeded your current quota|credit balance is too low|billing"
    r"|spend limit|per ?day|\bRPD\b|\bTPD\b|daily (limit|quota)",
    re.IGNORECASE,
)
_RATE_TEXT = re.compile(
    r"rate[_ ]limit|too many requests|\b429\b|resource[_ ]exhausted|tokens per min"
    r"|requests per min|\bRPM\b|\bTPM\b|throttl",
    re.IGNORECASE,
)
_TRANSIENT_TEXT = re.compile(
    r"overloaded|\b50[0234]\b|\b529\b|service unavailable|bad gateway|timed? ?out|timeout"
    r"|connection (reset|aborted|refused|error)|temporarily unavailable|internal server error",
    re.IGNORECASE,
)
_AUTH_TEXT = re.compile(
    r"invalid[_ ]api[_ ]key|incorrect api key|authentication|unauthori[sz]ed|permission denied",
    re.IGNORECASE,
)


def _mro_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _is_malformed(exc: BaseException) -> bool:
    return not isinstance(exc, LLMRoutingError) and bool(_mro_names(exc) & _MALFORMED_CLASS_NAMES)


def malformed_response_error(
    exc: BaseException, *, model: str | None = None, stream: bool = False
) -> ProviderUnavailableError | None:
    """``exc`` as the typed error it stands for when a provider sent malformed JSON, else None.

    The SDKs let a bare ``json.JSONDecodeError`` (a ``ValueError``) out of a response body or
    an SSE frame that is not valid JSON. Nothing in it says that the provider is at fault, and
    it is in no ``except`` a fallback chain has, so a router would give up on the first
    malformed frame instead of trying its next model. As `ProviderUnavailableError` (transient,
    in `FALLBACK_ERRORS`) it falls back like a dropped connection; ``exc`` stays its
    ``__cause__``. Never raises.

    Example:
        >>> import json
        >>> from llm_routing.errors import malformed_response_error
        >>> try:
        ...     json.loads("{not json")
        ... except ValueError as exc:
        ...     error = malformed_response_error(exc, model="openai:gpt-4o-mini", stream=True)
        >>> print(error)
        openai:gpt-4o-mini sent a malformed stream: not valid JSON (...); the provider is at ...
        >>> malformed_response_error(ValueError("a bug of ours")) is None
        True
    """
    try:
        if not _is_malformed(exc):
            return None
        what = "stream" if stream else "response"
        json_error = "JSONDecodeError" in _mro_names(exc)
        wrong = "not valid JSON" if json_error else "not the expected shape"
        text = str(exc).strip()
        detail = (text.splitlines()[0] if text else type(exc).__name__)[:300]
        error = ProviderUnavailableError(
            f"{model or 'the provider'} sent a malformed {what}: {wrong} ({detail}); the "
            "provider is at fault, not the request",
            model=model,
        )
    except Exception:  # a message we cannot build must not mask the original error
        return None
    error.__cause__ = exc
    return error


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of a provider error, from any of the places SDKs keep it."""
    for attr in ("status_code", "http_status", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
            return value
    code = getattr(exc, "code", None)  # google-genai, google-api-core: int HTTP code
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code < 600:
        return code
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _walk_json(value: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """Every mapping inside a parsed JSON body, shallowest first (bounded depth)."""
    if depth > 6:
        return
    if isinstance(value, Mapping):
        yield value
        for child in value.values():
            yield from _walk_json(child, depth + 1)
    elif isinstance(value, list | tuple):
        for child in value:
            yield from _walk_json(child, depth + 1)


def _bodies(exc: BaseException) -> list[Any]:
    """The structured error bodies an exception carries (SDK body, google details, JSON text)."""
    found: list[Any] = []
    for attr in ("body", "details", "response_json", "error"):
        value = getattr(exc, attr, None)
        if isinstance(value, Mapping | list):
            found.append(value)
        elif isinstance(value, str) and value.lstrip().startswith(("{", "[")):
            with contextlib.suppress(ValueError):
                found.append(json.loads(value))
    return found


def _error_codes(exc: BaseException) -> set[str]:
    """Machine-readable error codes and types (``insufficient_quota``, ``RESOURCE_EXHAUSTED``…)."""
    codes: set[str] = set()
    for attr in ("code", "type", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            codes.add(value.lower())
    for body in _bodies(exc):
        for node in _walk_json(body):
            for key in ("code", "type", "status", "reason", "quotaId", "error_code"):
                value = node.get(key)
                if isinstance(value, str):
                    codes.add(value.lower())
    return codes


def _is_daily_limit(codes: set[str]) -> bool:
    # Gemini's quota ids say "PerDay"; a daily limit will not free up within any sane max_wait.
    return any("perday" in c or "per_day" in c for c in codes)


def classify(exc: BaseException) -> ErrorKind:
    """Say what kind of failure ``exc`` is: types and status codes first, message text last.

    Works on LangChain's standard errors, the openai/anthropic/google SDK errors (without
    importing them), httpx transport errors and the builtin timeout/connection errors.
    Never raises.

    Example:
        >>> import httpx, openai
        >>> from llm_routing import classify
        >>> request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
        >>> quota = openai.RateLimitError(
        ...     "You exceeded your current quota",
        ...     response=httpx.Response(429, request=request),
        ...     body={"code": "insufficient_quota"},
        ... )
        >>> classify(quota)
        <ErrorKind.QUOTA: 'quota'>
        >>> classify(ConnectionResetError())
        <ErrorKind.TRANSIENT: 'transient'>
    """
    try:
        return _classify(exc)
    except Exception:  # classification must never mask the original error
        return ErrorKind.UNKNOWN


def _classify(exc: BaseException) -> ErrorKind:
    # 1. Our own taxonomy says it directly.
    if isinstance(exc, BudgetExceededError):
        return ErrorKind.BUDGET
    if isinstance(exc, QuotaExceededError):
        return ErrorKind.QUOTA
    if isinstance(exc, RateLimitExhaustedError):
        return ErrorKind.RATE_LIMIT
    if isinstance(exc, ContextLengthExceededError | ContextOverflowError):
        return ErrorKind.CONTEXT
    if isinstance(exc, ProviderUnavailableError):
        return ErrorKind.TRANSIENT

    names = _mro_names(exc)
    codes = _error_codes(exc)
    status = _status_code(exc)

    # 2. Types that are unambiguous whatever the status says.
    if names & _QUOTA_CLASS_NAMES or codes & _QUOTA_CODES:
        return ErrorKind.QUOTA
    if codes & _CONTEXT_CODES:
        return ErrorKind.CONTEXT
    if isinstance(exc, ModelAuthenticationError | ModelPermissionDeniedError):
        return ErrorKind.AUTH

    # 3. Rate limits: LangChain's type, HTTP 429, or gRPC RESOURCE_EXHAUSTED; a daily limit
    #    or a spent quota is a quota, not a rate limit.
    if (
        isinstance(exc, ModelRateLimitError)
        or status == 429
        or "resource_exhausted" in codes
        or "RateLimitError" in names
        or "ResourceExhausted" in names
    ):
        if _is_daily_limit(codes):
            return ErrorKind.QUOTA
        if "resource_exhausted" in codes:
            # Gemini words every 429 as "You exceeded your current quota"; only its quota id
            # (PerMinute vs PerDay) tells a rate limit from a spent quota.
            return ErrorKind.RATE_LIMIT
        if _QUOTA_TEXT.search(str(exc)):
            return ErrorKind.QUOTA
        return ErrorKind.RATE_LIMIT

    if isinstance(exc, ModelAPIError | ModelTimeoutError | ModelConnectionError):
        return ErrorKind.TRANSIENT
    if isinstance(exc, TimeoutError | ConnectionError) or names & _TRANSIENT_CLASS_NAMES:
        return ErrorKind.TRANSIENT

    if status is not None:
        if status in _TRANSIENT_STATUS or status >= 500:
            return ErrorKind.TRANSIENT
        if status == 402:
            return ErrorKind.QUOTA
        if status in _AUTH_STATUS:
            return ErrorKind.AUTH
        if status in _BAD_REQUEST_STATUS or 400 <= status < 500:
            return _bad_request_kind(str(exc))
    if isinstance(exc, ModelInvalidRequestError | ModelNotFoundError):
        return _bad_request_kind(str(exc))

    # 4. Only the words are left.
    text = str(exc)
    for pattern, kind in (
        (_CONTEXT_TEXT, ErrorKind.CONTEXT),
        (_RATE_TEXT, ErrorKind.RATE_LIMIT),
        (_TRANSIENT_TEXT, ErrorKind.TRANSIENT),
        (_AUTH_TEXT, ErrorKind.AUTH),
    ):
        if pattern.search(text):
            if kind is ErrorKind.RATE_LIMIT and _QUOTA_TEXT.search(text):
                return ErrorKind.QUOTA
            return kind
    return ErrorKind.UNKNOWN


def _bad_request_kind(text: str) -> ErrorKind:
    # Some providers report a context overflow, or an empty account, as a plain 400.
    if _CONTEXT_TEXT.search(text):
        return ErrorKind.CONTEXT
    if re.search(r"credit balance is too low|billing", text, re.IGNORECASE):
        return ErrorKind.QUOTA
    return ErrorKind.BAD_REQUEST


# --------------------------------------------------------------------------- retry-after

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_RETRY_TEXT = re.compile(
    r"(?:retry|try again) (?:in|after) (\d+(?:\.\d+)?) ?"
    r"(ms|milliseconds?|s|sec|seconds?|m|min|minutes?)\b",
    re.IGNORECASE,
)


def _parse_duration(text: str) -> float | None:
    """Parse OpenAI/Google durations: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1.5s"``, ``"37s"``."""
    text = text.strip()
    pos, total = 0, 0.0
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * scale[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def _header_getter(exc: BaseException) -> Callable[[str], str | None]:
    headers: Any = getattr(exc, "headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return lambda _name: None

    def get(name: str) -> str | None:
        try:
            value = headers.get(name)
            if value is None and isinstance(headers, Mapping):
                # A plain dict is case-sensitive, unlike httpx.Headers.
                lowered = {str(k).lower(): v for k, v in headers.items()}
                value = lowered.get(name)
        except Exception:  # odd header containers must not break classification
            return None
        return None if value is None else str(value)

    return get


def _seconds_from_retry_after(value: str, now: float) -> float | None:
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - now
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _retry_info_delay(exc: BaseException) -> float | None:
    """Gemini/Google's ``google.rpc.RetryInfo.retryDelay`` (``"37s"`` or ``{"seconds": 37}``)."""
    for body in _bodies(exc):
        for node in _walk_json(body):
            type_name = str(node.get("@type", ""))
            if "retryDelay" in node or type_name.endswith("RetryInfo"):
                delay = node.get("retryDelay", node.get("retry_delay"))
                if isinstance(delay, str):
                    parsed = _parse_duration(delay)
                    if parsed is not None:
                        return parsed
                elif isinstance(delay, Mapping):
                    seconds = float(delay.get("seconds", 0) or 0)
                    nanos = float(delay.get("nanos", 0) or 0)
                    return seconds + nanos / 1e9
    return None


def retry_after(exc: BaseException, *, now: float | None = None) -> float | None:
    """How many seconds the provider asked us to wait before retrying, if it said.

    Reads, in order: ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date),
    Google's ``RetryInfo.retryDelay``, OpenAI's ``x-ratelimit-reset-*`` for an exhausted
    dimension, and finally "try again in 20s" in the message. ``now`` (epoch seconds) is
    injectable so HTTP dates are testable. Never raises; ``None`` when nothing was said.

    Example:
        >>> import httpx, openai
        >>> from llm_routing import retry_after
        >>> request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
        >>> response = httpx.Response(429, headers={"retry-after": "20"}, request=request)
        >>> retry_after(openai.RateLimitError("Rate limit reached", response=response, body=None))
        20.0
        >>> retry_after(ValueError("no hint here")) is None
        True
    """
    try:
        return _retry_after(exc, time.time() if now is None else now)
    except Exception:  # a hint parser must never mask the original error
        return None


def _retry_after(exc: BaseException, now: float) -> float | None:
    header = _header_getter(exc)
    ms = header("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    ra = header("retry-after")
    if ra is not None:
        parsed = _seconds_from_retry_after(ra, now)
        if parsed is not None:
            return parsed
    delay = _retry_info_delay(exc)
    if delay is not None:
        return max(0.0, delay)
    resets: list[float] = []
    for dim in ("requests", "tokens"):
        remaining = header(f"x-ratelimit-remaining-{dim}")
        reset = header(f"x-ratelimit-reset-{dim}")
        if reset is not None and remaining is not None and remaining.strip() in {"0", "0.0"}:
            parsed = _parse_duration(reset)
            if parsed is not None:
                resets.append(parsed)
    if resets:
        return max(resets)
    match = _RETRY_TEXT.search(str(exc))
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        if unit.startswith("ms") or unit.startswith("milli"):
            return amount / 1000.0
        if unit.startswith("m"):
            return amount * 60.0
        return amount
    return None


# --------------------------------------------------------------------------- credentials

# Request headers that carry a key: OpenAI/Azure/Mistral bearer tokens, Anthropic, Azure, Gemini.
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"}
)
_REDACTED = "[redacted by llm_routing]"


def scrub_credentials(exc: BaseException) -> BaseException:
    """Blank the key in the HTTP request a provider error keeps, and return ``exc``.

    SDK errors (openai's, anthropic's) hold the ``httpx`` request they failed on, headers
    included, so ``pickle.dumps(exc)`` (a task queue's result backend, a crash dump) would
    carry ``Authorization: Bearer sk-…``. Messages never show headers; this closes the
    pickled form too. The request was already sent, so nothing else reads those headers. Runs
    along the ``__cause__``/``__context__`` chain; never raises.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for holder in (current, getattr(current, "response", None)):
            try:
                request = getattr(holder, "request", None)
            except Exception:  # httpx raises RuntimeError for a request it never had
                continue
            _scrub_headers(getattr(request, "headers", None))
        current = current.__cause__ or current.__context__
    return exc


def _scrub_headers(headers: Any) -> None:
    if headers is None or not callable(getattr(headers, "keys", None)):
        return
    try:
        for name in list(headers.keys()):
            if str(name).lower() in _CREDENTIAL_HEADERS:
                headers[name] = _REDACTED
    except Exception:  # read-only or odd header containers: leave them, keep the real error
        return
