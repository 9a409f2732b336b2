"""``RateScheduler``'s arguments: their checks, the deprecated ``smoothing``, which backend.

Every message names the argument as the user wrote it and what it accepts; what the options
mean is documented on ``RateScheduler`` itself.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from llm_routing._args import check_seconds
from llm_routing._redact import scheme_of
from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import Clock
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.resolve import check_pacing

__all__ = ["check_options", "make_backend", "pacing_of"]

Pacing = Literal["auto", "paced", "burst"]


def check_options(
    *,
    max_wait: Any,
    backoff_initial: Any,
    backoff_max: Any,
    quota_cooldown: Any,
    max_retries: Any,
    reserve_output: Any,
    clock: Any,
    count_from: Any,
) -> None:
    """Raise the error ``RateScheduler(...)`` raises for a bad argument (pacing aside)."""
    check_seconds("RateScheduler", "max_wait", max_wait)
    check_seconds("RateScheduler", "backoff_initial", backoff_initial)
    check_seconds("RateScheduler", "backoff_max", backoff_max)
    check_seconds("RateScheduler", "quota_cooldown", quota_cooldown)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(
            f"RateScheduler(max_retries=…) must be an int >= 0 (retries of transient "
            f"errors), got {max_retries!r}"
        )
    if reserve_output is not None and (
        isinstance(reserve_output, bool)
        or not isinstance(reserve_output, int)
        or reserve_output < 0
    ):
        raise ValueError(
            "RateScheduler(reserve_output=…) must be an int >= 0 (output tokens to reserve "
            f"when max_tokens is not set) or None, got {reserve_output!r}"
        )
    if clock is not None and not callable(getattr(clock, "now", None)):
        raise TypeError(
            "RateScheduler(clock=…) must be a Clock (SystemClock, VirtualClock) or None, "
            f"got {type(clock).__name__}"
        )
    if count_from not in ("auto", "response", "admission"):
        raise ValueError(
            "RateScheduler(count_from=…) must be 'auto' (from admission where requests are "
            "paced, from the answer where they burst), 'response' (count a request in the "
            "minute window from when its answer came: safe when sending lags admission) or "
            f"'admission' (exact for in-process providers), got {count_from!r}"
        )


def pacing_of(pacing: Pacing, smoothing: bool | None) -> Pacing:
    """``pacing`` checked, with the deprecated ``smoothing=`` translated (and warned about)."""
    check_pacing(pacing, "RateScheduler(pacing=…)")
    if smoothing is not None:
        if not isinstance(smoothing, bool):
            raise TypeError(f"RateScheduler(smoothing=…) must be a bool, got {smoothing!r}")
        warnings.warn(
            "RateScheduler(smoothing=…) is deprecated: pacing now follows how each provider "
            "enforces its limits (pacing='auto', the default, paces providers that enforce "
            "per second). Write pacing='paced' for smoothing=True, pacing='burst' for "
            "smoothing=False.",
            DeprecationWarning,
            stacklevel=3,
        )
        if pacing == "auto":
            pacing = "paced" if smoothing else "burst"
    return pacing


def make_backend(backend: Any, clock: Clock) -> Backend:
    """The backend ``RateScheduler(backend=…)`` names: an instance, "memory" or a Redis URL."""
    if isinstance(backend, Backend):
        return backend
    if backend == "memory" or backend is None:
        return MemoryBackend(clock)
    if isinstance(backend, str) and backend.startswith(("redis://", "rediss://", "unix://")):
        try:
            from llm_routing.schedule.redis import RedisBackend
        except ImportError:
            raise ImportError(
                "RateScheduler(backend='redis://…') needs the redis extra: "
                "pip install 'llm-routing[redis]'"
            ) from None
        return RedisBackend(backend)
    raise ValueError(
        "RateScheduler(backend=…) must be 'memory', a 'redis://…' URL or a Backend instance, "
        f"got {scheme_of(backend)}"
    )
