"""Provider SDK errors built through the SDKs' public constructors, for tests of our behaviour.

The SDKs turn an HTTP response into an exception inside private client methods whose details
move between releases: openai 3.x strips credential headers from the request it keeps,
anthropic 2.x picks a subclass from the body's error type, openai moved from ``httpx`` to
``httpx2``. A test that went through those methods pinned the SDK's internals, not ours, and
broke on a fresh install. Here the test builds the exception itself: a real ``httpx`` request
and response, wrapped in the public class the SDK documents for that status, with the body in
the form the SDK passes (openai: the ``error`` object; anthropic: the whole body).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import anthropic
import httpx
import openai

__all__ = ["anthropic_error", "gemini_error", "openai_error", "status_error"]

# The public classes both SDKs document per status code (openai's README, "Handling errors";
# anthropic's the same). A status without one is the base APIStatusError.
_BY_STATUS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    529: "OverloadedError",  # anthropic only; elsewhere a 5xx is InternalServerError
}


def _error_class(sdk: ModuleType, status: int) -> type[Exception]:
    name = _BY_STATUS.get(status)
    found = getattr(sdk, name, None) if name else None
    if found is None and status >= 500:
        found = sdk.InternalServerError
    return found or sdk.APIStatusError


def status_error(
    sdk: ModuleType,
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    url: str,
    request_headers: dict[str, str] | None = None,
    cls: type[Exception] | None = None,
    sdk_body: Any = None,
) -> Exception:
    """``sdk``'s public status error for a real ``httpx`` response of ``status`` and ``body``."""
    request = httpx.Request("POST", url, headers=request_headers or {})
    response = httpx.Response(status, headers=headers or {}, json=body, request=request)
    error_class = cls or _error_class(sdk, status)
    return error_class(  # type: ignore[call-arg]
        f"Error code: {status} - {body}",
        response=response,
        body=body if sdk_body is None else sdk_body,
    )


def openai_error(
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    *,
    request_headers: dict[str, str] | None = None,
) -> Exception:
    """An ``openai`` status error; the SDK keeps the body's ``error`` object as ``.body``."""
    return status_error(
        openai,
        status,
        body,
        headers,
        url="https://api.openai.com/v1/chat/completions",
        request_headers=request_headers,
        sdk_body=body.get("error", body),
    )


def anthropic_error(
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    *,
    cls: type[Exception] | None = None,
) -> Exception:
    """An ``anthropic`` status error; the SDK keeps the whole body as ``.body``."""
    return status_error(
        anthropic, status, body, headers, url="https://api.anthropic.com/v1/messages", cls=cls
    )


def gemini_error(status: int, body: dict[str, Any]) -> Exception:
    """The error google-genai raises for this response, through its public ``raise_for_response``.

    Its error classes' constructors changed what their second argument is between releases
    (a response object in 1.x, the JSON body later); the public classmethod takes a response
    in every release.
    """
    from google.genai import errors as genai_errors

    request = httpx.Request("POST", "https://generativelanguage.googleapis.com/v1beta/models")
    response = httpx.Response(status, json=body, request=request)
    try:
        genai_errors.APIError.raise_for_response(response)
    except genai_errors.APIError as exc:
        return exc
    raise AssertionError(f"google-genai raised nothing for HTTP {status}")
