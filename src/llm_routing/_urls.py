"""Connection URLs in messages: what to show of a URL that may carry a password.

Owns only redaction. Parsing a URL to connect is the client library's job (redis-py).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

__all__ = ["redact_url", "scheme_of"]

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
