"""The errors a refused request raises, with the numbers of the limit that refused it.

Every message names the model, the binding limit as configured and as applied (margin,
headroom), how long admission would take and what the user can do about it. When to refuse
is ``plan``'s; these only say why.
"""

from __future__ import annotations

from llm_routing.errors import QuotaExceededError, RateLimitExhaustedError
from llm_routing.schedule.limits import RateLimits, Request

__all__ = [
    "cooled_down",
    "duration",
    "exhausted",
    "limit_text",
    "quota",
    "timed_out",
    "too_large",
]


def duration(seconds: float) -> str:
    """Seconds as a person reads a wait: 42.0s, 3.5 min, 2.0 h."""
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def limit_text(binding: str | None, limits: RateLimits) -> str:
    """The binding limit with its numbers, as an error message names it."""
    window = f"{limits.window_s:g}s window"
    headroom = f"{limits.token_headroom:.0%} headroom"
    if binding == "rpm" and limits.rpm is not None:
        return (
            f"RPM {limits.rpm:,} ({limits.effective_rpm:,} requests per {window} after a "
            f"margin of {limits.request_margin})"
        )
    if binding == "tpm" and limits.tpm is not None:
        return f"TPM {limits.tpm:,} ({limits.effective_tpm:,} tokens per {window} after {headroom})"
    if binding == "itpm" and limits.itpm is not None:
        return (
            f"ITPM {limits.itpm:,} ({limits.effective_itpm:,} input tokens per {window} after "
            f"{headroom})"
        )
    if binding == "otpm" and limits.otpm is not None:
        return (
            f"OTPM {limits.otpm:,} ({limits.effective_otpm:,} output tokens per {window} after "
            f"{headroom})"
        )
    if binding == "rpd" and limits.rpd is not None:
        mode = "rolling 24 h" if limits.day == "rolling" else "calendar day"
        return f"RPD {limits.rpd:,} ({mode})"
    if binding == "concurrency":
        return f"max_concurrency {limits.max_concurrency}"
    per_second = limits.window_s
    if binding == "pace_rpm" and limits.effective_rpm is not None:
        return (
            f"pacing to the provider's per-second rate (one request every "
            f"{per_second / limits.effective_rpm:.3g}s)"
        )
    if binding == "pace_tpm" and limits.effective_tpm:
        return (
            f"pacing to the provider's per-second rate "
            f"({limits.effective_tpm / per_second:,.0f} tokens/s)"
        )
    if binding == "pace_itpm" and limits.effective_itpm:
        return (
            f"pacing to the provider's per-second rate "
            f"({limits.effective_itpm / per_second:,.0f} input tokens/s)"
        )
    if binding == "cooldown":
        return "the cooldown after a provider rate-limit error"
    return str(binding)


def too_large(model: str, limits: RateLimits, request: Request, binding: str | None) -> Exception:
    """The request is larger than a token limit admits: it can never be scheduled."""
    size = {
        "tpm": f"{request.tokens:,} tokens ({request.input_tokens:,} input + "
        f"{request.output_tokens:,} output)",
        "itpm": f"{request.input_tokens:,} input tokens",
        "otpm": f"{request.output_tokens:,} output tokens",
    }.get(binding or "", f"{request.tokens:,} tokens")
    message = (
        f"{model}: this request needs {size}, more than {limit_text(binding, limits)} admits, "
        "so it can never be scheduled. Shorten the input, lower max_tokens, or route it to a "
        "model with a higher limit."
    )
    return RateLimitExhaustedError(
        message, model=model, wait_s=None, reason="request larger than the limit"
    )


def quota(model: str, limits: RateLimits, wait_s: float) -> Exception:
    """The daily request limit binds past the deadline: waiting does not restore a quota."""
    message = (
        f"{model}: the daily request limit is used up ({limit_text('rpd', limits)}); the next "
        f"request slot frees in {duration(wait_s)}. Not waiting: add a fallback model, or retry "
        "after the daily reset."
    )
    return QuotaExceededError(message, model=model, reason="rpd")


def exhausted(
    model: str,
    limits: RateLimits,
    binding: str | None,
    wait_s: float,
    left_s: float,
    ahead: int = 0,
) -> Exception:
    """Admission is known to come after the deadline: refuse now instead of waiting."""
    queued = f" with {ahead:,} request(s) queued ahead" if ahead else ""
    return RateLimitExhaustedError(
        f"{model}: {limit_text(binding, limits)} would hold this request for "
        f"{duration(wait_s)}{queued}, past its max_wait ({max(0.0, left_s):.1f}s left); falling "
        "back instead of waiting. Add a fallback model, raise max_wait, or lower the request "
        "rate.",
        model=model,
        wait_s=wait_s,
        reason=binding or "rate limited",
    )


def timed_out(model: str, limits: RateLimits, reason: str, ahead: int = 0) -> Exception:
    """The deadline came while waiting for something without a known time."""
    if reason == "concurrency":
        what = f"all {limits.max_concurrency} concurrent slots (max_concurrency) stayed busy"
    else:
        what = f"{ahead:,} request(s) were still queued ahead of this one"
    return RateLimitExhaustedError(
        f"{model}: {what} when this request's max_wait ran out; falling back instead of "
        "waiting longer. Add a fallback model, raise max_wait, or lower the request rate.",
        model=model,
        wait_s=None,
        reason=reason,
    )


def cooled_down(model: str, wait_s: float) -> Exception:
    """A provider 429's cooldown ends after this waiter's deadline."""
    return RateLimitExhaustedError(
        f"{model}: a provider rate-limit cooldown holds every request for {duration(wait_s)}, "
        "past this request's max_wait; falling back instead of waiting. Add a fallback model "
        "or raise max_wait.",
        model=model,
        wait_s=wait_s,
        reason="cooldown",
    )
