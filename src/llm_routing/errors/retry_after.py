"""When to retry: what a provider's error says about waiting (``retry_after``).

Reads the hints the providers give, in the order they are precise: ``retry-after-ms``,
``retry-after``, Google's ``RetryInfo``, OpenAI's reset headers, then the message's words.
Also the package's one parser of provider durations (`parse_duration`) and header reader
(`header_getter`), which the scheduler's header reading shares.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from llm_routing.errors.classify import error_bodies, walk_json

# header_getter and parse_duration are package-internal (the scheduler reads headers too).
__all__ = ["header_getter", "parse_duration", "retry_after"]

# Seconds per unit, for the compact durations of headers and bodies and for the words of a
# "try again in 20s" message alike.
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_RETRY_TEXT = re.compile(
    r"(?:retry|try again) (?:in|after) (\d+(?:\.\d+)?) ?"
    r"(ms|milliseconds?|s|sec|seconds?|m|min|minutes?)\b",
    re.IGNORECASE,
)


def parse_duration(text: str) -> float | None:
    """Parse OpenAI/Google durations: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1.5s"``, ``"37s"``.

    The package's one reader of a provider's duration (``x-ratelimit-reset-*``, Google's
    ``retryDelay``); ``None`` for anything else, since an odd hint must never fail a call.
    """
    text = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def header_getter(exc: BaseException) -> Callable[[str], str | None]:
    """A case-insensitive reader of the response headers ``exc`` carries (none: always None).

    SDKs keep headers on the error or on its ``response``, as ``httpx.Headers`` or a plain
    dict; the scheduler reads the same ones for ``x-ratelimit-*``.
    """
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
    for body in error_bodies(exc):
        for node in walk_json(body):
            type_name = str(node.get("@type", ""))
            if "retryDelay" in node or type_name.endswith("RetryInfo"):
                delay = node.get("retryDelay", node.get("retry_delay"))
                if isinstance(delay, str):
                    parsed = parse_duration(delay)
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
    header = header_getter(exc)
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
            parsed = parse_duration(reset)
            if parsed is not None:
                resets.append(parsed)
    if resets:
        return max(resets)
    match = _RETRY_TEXT.search(str(exc))
    if match:
        return float(match.group(1)) * _UNIT_SECONDS[_short_unit(match.group(2))]
    return None


def _short_unit(word: str) -> str:
    """``"milliseconds"`` -> ``"ms"``, ``"min"`` -> ``"m"``, ``"sec"`` -> ``"s"``."""
    word = word.lower()
    if word.startswith(("ms", "milli")):
        return "ms"
    return "m" if word.startswith("m") else "s"
