"""Reading any provider's exception: what kind of failure it is (``classify``).

Types and status codes first, structured error bodies next, message text last, because the
SDKs disagree on all three (an OpenAI spent quota is a 429 like a rate limit; Gemini words every
429 as a quota; Anthropic reports a context overflow as a plain 400). No provider SDK is
imported: their classes are matched by name. Also owns `malformed_response_error`, since
"the provider sent malformed JSON" is a classification of an SDK's bare ``JSONDecodeError``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

from llm_routing._args import is_int
from llm_routing.errors.taxonomy import (
    BudgetExceededError,
    ContextLengthExceededError,
    ErrorKind,
    LLMRoutingError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitExhaustedError,
)

# error_bodies and walk_json are package-internal: retry_after reads the same bodies.
__all__ = ["classify", "error_bodies", "malformed_response_error", "walk_json"]

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
        if is_int(value) and 100 <= value < 600:
            return value
    code = getattr(exc, "code", None)  # google-genai, google-api-core: int HTTP code
    if is_int(code) and 100 <= code < 600:
        return code
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if is_int(value):
        return value
    return None


def walk_json(value: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """Every mapping inside a parsed JSON body, shallowest first (bounded depth)."""
    if depth > 6:
        return
    if isinstance(value, Mapping):
        yield value
        for child in value.values():
            yield from walk_json(child, depth + 1)
    elif isinstance(value, list | tuple):
        for child in value:
            yield from walk_json(child, depth + 1)


def error_bodies(exc: BaseException) -> list[Any]:
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
    for body in error_bodies(exc):
        for node in walk_json(body):
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
