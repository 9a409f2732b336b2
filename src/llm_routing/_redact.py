"""Secrets out of what we show or keep: URLs in messages, keys in a provider error's request.

Owns only redaction: what to show of a URL that may carry a password, and blanking the key
headers an SDK error keeps. Parsing a URL to connect is the client library's job (redis-py);
deciding what an error means is ``errors``'. One module so that every place that must not
leak a secret reads the same rules.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["redact_url", "scheme_of", "scrub_credentials"]

_HIDDEN = "***"
_SECRET_PARAMS = frozenset({"password", "username"})


def redact_url(url: str) -> str:
    """``url`` with its credentials replaced by ``***``, for messages, logs and reprs.

    A Redis URL often carries the server's password (``redis://:secret@host:6379/0``, or
    ``?password=secret``), and our errors and reprs name the server they talk to: they must
    never name the password with it. Keeps the scheme, host, port, path and other parameters.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a Redis URL that does not parse>"
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = parts.netloc
    _, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
    if "@" in parts.query or "@" in parts.fragment or (colon and not port.isdigit()):
        # A '#' or '?' inside a password splits the URL before its '@': show no part of it.
        return f"{parts.scheme}://{_HIDDEN}" if parts.scheme else _HIDDEN
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{_HIDDEN}@{host}" if colon else f"{_HIDDEN}@{host}"
    params = []
    for param in parts.query.split("&") if parts.query else []:
        name, equals, _value = param.partition("=")
        hidden = equals and unquote(name).lower() in _SECRET_PARAMS
        params.append(f"{name}={_HIDDEN}" if hidden else param)
    text = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}"
    if params:
        text += "?" + "&".join(params)
    return text + (f"#{parts.fragment}" if parts.fragment else "")


def scheme_of(value: object) -> str:
    """How an error may name a backend argument it rejects, without echoing a password in it.

    A mistyped URL (``reddis://:secret@host``) is still a URL with a secret in it; strings show
    as their redacted form, other values as their type.
    """
    if isinstance(value, str):
        return repr(redact_url(value)) if "://" in value else repr(value[:40])
    return type(value).__name__


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
