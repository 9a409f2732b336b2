"""What a provider's response headers say about its limits, read the way each provider means them.

The scheduler believes a provider's "remaining" count when it is lower than its own view
(``policy.correct``): the difference is usage by someone else on the same key. That only
helps when the header is read on the right scale, which differs per provider:

* OpenAI: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, per minute, resets as
  durations (``"1s"``, ``"6m0s"``, ``"20ms"``) —
  https://platform.openai.com/docs/guides/rate-limits ("Rate limits in headers").
* Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
  remaining,reset}``, resets as RFC 3339 times —
  https://docs.anthropic.com/en/api/rate-limits ("Response headers"). Input and output tokens
  are the ITPM and OTPM limits; ``tokens`` is "the most restrictive limit currently in
  effect", read against a combined TPM only where one is configured.
* Groq: OpenAI's names, but ``x-ratelimit-*-requests`` is per DAY (RPD) and
  ``x-ratelimit-*-tokens`` per minute — https://console.groq.com/docs/rate-limits. The
  request figures are left out: read as a minute window, a day's remaining count would hold
  the minute window shut for the rest of the day.

Gemini sends no such headers; its 429's ``RetryInfo`` is read by ``errors.retry_after``.
Anything that does not parse is skipped: an odd header never fails a successful call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from llm_routing.catalog.enforcement import enforcement_for
from llm_routing.errors.retry_after import header_getter, parse_duration
from llm_routing.schedule.limits import RateLimitHeaders

__all__ = ["HEADER_NAMES", "error_headers", "parse_ratelimit_headers"]

# (header dimension, RateLimitHeaders field stem) per family.
_OPENAI = (("requests", "requests"), ("tokens", "tokens"))
_ANTHROPIC = (
    ("requests", "requests"),
    ("tokens", "tokens"),
    ("input-tokens", "input_tokens"),
    ("output-tokens", "output_tokens"),
)

HEADER_NAMES: tuple[str, ...] = (
    *(f"x-ratelimit-{part}-{dim}" for dim, _ in _OPENAI for part in ("remaining", "reset")),
    *(
        f"anthropic-ratelimit-{dim}-{part}"
        for dim, _ in _ANTHROPIC
        for part in ("remaining", "reset")
    ),
)
"""Every header this module reads (what a 429's response is searched for)."""


def _rfc3339_in(text: str, now_epoch: float) -> float | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a reset time without a zone cannot be placed on our clock
    return max(0.0, moment.timestamp() - now_epoch)


def _count(value: Any) -> float | None:
    try:
        count = float(str(value))
    except ValueError:
        return None
    return count if 0 <= count < math.inf else None


def parse_ratelimit_headers(
    headers: Mapping[str, Any], provider: str = "openai", *, now_epoch: float | None = None
) -> RateLimitHeaders | None:
    """``headers`` as `RateLimitHeaders` on ``provider``'s scale; ``None`` when none is usable.

    ``now_epoch`` (UTC seconds, default ``time.time()``) turns Anthropic's RFC 3339 reset
    times into seconds from now.

    Example:
        >>> seen = parse_ratelimit_headers(
        ...     {"x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s"}
        ... )
        >>> seen.remaining_requests, seen.reset_requests_s
        (59, 1.0)
        >>> parse_ratelimit_headers(
        ...     {"anthropic-ratelimit-input-tokens-remaining": "9000",
        ...      "anthropic-ratelimit-input-tokens-reset": "2026-12-06T10:00:30Z"},
        ...     "anthropic",
        ...     now_epoch=datetime.fromisoformat("2026-12-06T10:00:00Z").timestamp(),
        ... ).reset_input_tokens_s
        30.0
    """
    lowered = {str(k).lower(): v for k, v in headers.items()}
    found: dict[str, float] = {}
    if any(name.startswith("anthropic-ratelimit-") for name in lowered):
        now = time.time() if now_epoch is None else now_epoch
        for dim, field in _ANTHROPIC:
            remaining = _count(lowered.get(f"anthropic-ratelimit-{dim}-remaining", "x"))
            reset = lowered.get(f"anthropic-ratelimit-{dim}-reset")
            seconds = None if reset is None else _rfc3339_in(str(reset), now)
            if remaining is not None and seconds is not None:
                found[f"remaining_{field}"] = math.floor(remaining)
                found[f"reset_{field}_s"] = seconds
    day_requests = enforcement_for(provider).requests_header_period_s >= 86_400
    for dim, field in _OPENAI:
        if dim == "requests" and day_requests:
            continue
        remaining = _count(lowered.get(f"x-ratelimit-remaining-{dim}", "x"))
        reset = lowered.get(f"x-ratelimit-reset-{dim}")
        seconds = None if reset is None else parse_duration(str(reset))
        if remaining is None or seconds is None or not 0 <= seconds < math.inf:
            continue
        found.setdefault(f"remaining_{field}", math.floor(remaining))
        found.setdefault(f"reset_{field}_s", seconds)
    return RateLimitHeaders(**found) if found else None


def error_headers(exc: BaseException) -> Mapping[str, Any] | None:
    """The rate-limit headers a provider error's response carried (``None``: none)."""
    get: Callable[[str], str | None] = header_getter(exc)
    found = {name: value for name in HEADER_NAMES if (value := get(name)) is not None}
    return found or None
