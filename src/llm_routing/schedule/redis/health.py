"""When Redis is away: noticing it, failing closed or falling back to memory, and coming back.

Owns the down / came-back state of a `RedisBackend` (a mixin of it), the errors and warnings
a user sees, the in-process fallback of ``on_unavailable="memory"`` and the epoch check that
tells a Redis which lost the shared windows (a restart without persistence).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
import warnings
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Literal, cast

import redis

from llm_routing._redis import UNREACHABLE
from llm_routing.errors import LLMRoutingError
from llm_routing.schedule.clock import Clock
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.redis.clock import _EstimatedClock

if TYPE_CHECKING:
    from llm_routing.schedule.redis.backend import RedisBackend

__all__ = ["RedisUnavailableError", "RedisUnavailableWarning"]

_log = logging.getLogger("llm_routing.schedule.redis")


class RedisUnavailableError(LLMRoutingError, ConnectionError):
    """Redis could not be reached, and the backend was told to fail closed.

    Raised by admission (``try_acquire``, ``project``, ``snapshot``) within the socket timeout,
    never after a hang. It is deliberately not a fallback error: every model shares the same
    Redis, so another model would fail the same way.
    """


class RedisUnavailableWarning(UserWarning):
    """Redis became unreachable and the backend fell back to per-process (in-memory) limits."""


class _Down(Exception):
    """Internal: Redis is unreachable (or known down until the retry interval passes)."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(str(cause) if cause is not None else "known down")
        self.cause = cause


def check_options(
    on_unavailable: object,
    socket_timeout: object,
    idle_expiry_s: object,
    retry_interval_s: object,
    clock: object,
) -> None:
    """Raise the error ``RedisBackend(...)`` raises for a bad outage or timing argument."""
    if on_unavailable not in ("fail", "memory"):
        raise ValueError(
            "RedisBackend(on_unavailable=…) must be 'fail' (raise RedisUnavailableError) or "
            f"'memory' (fall back to per-process limits), got {on_unavailable!r}"
        )
    for name, value in (
        ("socket_timeout", socket_timeout),
        ("idle_expiry_s", idle_expiry_s),
        ("retry_interval_s", retry_interval_s),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"RedisBackend({name}=…) must be a number of seconds, got {value!r}")
        if not 0 < value < math.inf:
            raise ValueError(
                f"RedisBackend({name}=…) must be a finite number of seconds > 0, got {value!r}"
            )
    if clock is not None and not isinstance(clock, Clock):
        raise TypeError(
            f"RedisBackend(clock=…) must provide now(), wait() and await_(), got {clock!r}"
        )


class _Health:
    """The availability half of `RedisBackend`: its state is the backend's own attributes."""

    prefix: str
    on_unavailable: Literal["fail", "memory"]
    socket_timeout: float
    idle_expiry_s: float
    retry_interval_s: float
    lease_s: float | None
    _client: redis.Redis
    _clock: Clock | None
    _where: str | None
    _lock: threading.Lock
    _down_since: float | None
    _retry_at: float
    _epoch: str | None
    _epoch_seen_at: float
    _fallback: MemoryBackend | None

    if TYPE_CHECKING:

        def _notify_all(self) -> None:
            """Wake every listener (``wakeups``)."""

    def _reachable(self) -> bool:
        """False while Redis is known down and its retry interval has not passed."""
        return self._down_since is None or _monotonic() >= self._retry_at

    def _went_down(self, exc: BaseException | None) -> None:
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = _monotonic()
            self._retry_at = _monotonic() + self.retry_interval_s
        if first:
            what = (
                "scheduling in this process alone (in-memory limits) until it answers again"
                if self.on_unavailable == "memory"
                else "admission fails closed (RedisUnavailableError) until it answers again"
            )
            _log.warning("Redis unreachable (%s): %s", exc, what)
            if self.on_unavailable == "memory":
                warnings.warn(
                    f"RedisBackend: Redis is unreachable ({exc}); falling back to per-process "
                    "in-memory limits (N workers may now send N times the limit) until it "
                    f"answers again (retried every {self.retry_interval_s:g}s)",
                    RedisUnavailableWarning,
                    stacklevel=4,
                )

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            was_down = self._down_since is not None
            self._down_since = None
        if was_down:
            _log.warning("Redis reachable again: shared limits resume")
            self._check_epoch()
            self._notify_all()

    def _check_epoch(self) -> None:
        """Warn when Redis lost the shared windows: it restarted without persistence.

        An epoch key, written when missing, changes only when Redis lost its data. Checked at
        each clock resync (30 s) and when Redis answers again after an outage. It expires
        ``idle_expiry_s`` after the last check, like the windows: a change after so long
        idle lost nothing. Only a warning, whatever ``on_unavailable`` says: unlike a lost
        budget, lost windows recalibrate from the provider's 429s and rate-limit headers.
        """
        key = f"{self.prefix}:epoch"
        expiry_ms = max(1, math.ceil(self.idle_expiry_s * 1000))
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.set(key, uuid.uuid4().hex, nx=True, px=expiry_ms)
            pipe.pexpire(key, expiry_ms)
            pipe.get(key)
            found = pipe.execute()[2]
        except UNREACHABLE:
            return
        mono = _monotonic()
        epoch = found.decode() if isinstance(found, bytes) else str(found)
        seen, self._epoch = self._epoch, epoch
        idle = mono - self._epoch_seen_at >= self.idle_expiry_s
        self._epoch_seen_at = mono
        if seen is None or seen == epoch or idle:
            return
        where = self._where if self._where is not None else "the given client"
        message = (
            f"RedisBackend: Redis at {where} lost the shared rate-limit windows (epoch key "
            f"{key!r} changed: a restart without persistence, a FLUSHALL or an eviction). "
            "Lost: every model's requests and tokens in the window, in-flight requests, "
            "cooldowns and daily (RPD) counts, which now read 0, so the workers may send a "
            "window's worth again until the provider's 429s and rate-limit headers recalibrate "
            "them. Enable AOF or RDB persistence on Redis to keep them across a restart."
        )
        _log.warning("%s", message)
        warnings.warn(message, RedisUnavailableWarning, stacklevel=2)

    def _unavailable(self, down: _Down) -> RedisUnavailableError:
        where = self._where if self._where is not None else "the given client"
        cause = f" ({down.cause})" if down.cause is not None else ""
        return RedisUnavailableError(
            f"Redis at {where} is unreachable{cause}; the shared rate limits cannot be checked, "
            "so this request is refused (on_unavailable='fail'). Start or reach Redis, raise "
            f"socket_timeout (now {self.socket_timeout:g}s), or pass "
            "RedisBackend(on_unavailable='memory') to fall back to per-process limits."
        )

    def _memory(self) -> MemoryBackend:
        with self._lock:
            if self._fallback is None:
                clock = (
                    self._clock
                    if self._clock is not None
                    else _EstimatedClock(cast("RedisBackend", self))
                )
                self._fallback = MemoryBackend(clock, lease_s=self.lease_s)
            return self._fallback

    def _lost(self, what: str, key: str, down: _Down) -> None:
        _log.warning(
            "Redis unreachable (%s): %s for %s not recorded; its reservation stays at the "
            "estimate until it leaves the window",
            down,
            what,
            key,
        )
