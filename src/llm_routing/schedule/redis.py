"""The Redis backend: the scheduling policy's state in Redis, shared by processes and hosts.

Owns the Redis side of scheduling: one Lua script per operation (``_redis_script``), time from
Redis ``TIME``, idle expiry, cross-process wake-ups (pub/sub) and what happens when Redis is
unreachable. It does not wait or queue (``schedule.admission``) and decides nothing of its own.

Why Lua rather than ``WATCH``/``MULTI``: a decision reads the whole sliding window and writes the
reservation, so it must be atomic. With ``WATCH`` every caller reads the state (one round trip),
decides locally, then commits (another); under contention (N workers on one hot model, exactly
when limits matter) commits abort and retry, so latency and load grow with the number of
workers and a busy key can starve a worker. A script runs on the server in one round trip,
never aborts, reads ``TIME`` in the same atomic step (so every host decides on one clock), and
publishes the capacity wake-up together with the change. Its cost is a second copy of the
arithmetic: the script ports ``policy`` line by line, and the conformance suite runs the same
tests against both backends. Projections (``project``, for the max-wait rule) change nothing,
so they run the Python ``policy.project`` on a consistent copy of the state instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from time import monotonic as _monotonic
from typing import Any, ClassVar, Literal

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as _AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript, Script
from redis.retry import Retry

from llm_routing._urls import redact_url
from llm_routing.errors import LLMRoutingError
from llm_routing.schedule import policy
from llm_routing.schedule._redis_script import KEY_SUFFIXES, POLICY_LUA
from llm_routing.schedule.backend import DEFAULT_LEASE_S, Backend, check_lease
from llm_routing.schedule.clock import Clock, SystemClock
from llm_routing.schedule.limits import Decision, RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.projection import project
from llm_routing.schedule.state import ModelState, _Entry

__all__ = [
    "RedisBackend",
    "RedisClock",
    "RedisUnavailableError",
    "RedisUnavailableWarning",
    "redact_url",
]

# Connections per event loop for async callers, and how long a caller waits for a free one.
# A dead Redis fails each connection within socket_timeout, so waiters never queue for long.
_ASYNC_POOL_SIZE = 32
_ASYNC_POOL_WAIT_S = 10.0

_log = logging.getLogger(__name__)

_UNREACHABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
_SUBSCRIBER_ERRORS: tuple[type[BaseException], ...] = (*_UNREACHABLE, redis.exceptions.RedisError)
_RESYNC_S = 30.0  # how often now() re-reads Redis TIME to follow the server's clock
_PING_S = 30.0  # a silent subscription is checked this often
_DIMS = ("req", "tok", "inp", "out")


class RedisUnavailableError(LLMRoutingError, ConnectionError):
    """Redis could not be reached, and the backend was told to fail closed.

    Raised by admission (``try_acquire``, ``project``, ``snapshot``) within the socket timeout,
    never after a hang. It is deliberately not a fallback error: every model shares the same
    Redis, so another model would fail the same way.
    """


class RedisUnavailableWarning(UserWarning):
    """Redis became unreachable and the backend fell back to per-process (in-memory) limits."""


class RedisClock:
    """The Redis server's time as a `Clock`: ``now()`` is the backend's time, waits are real.

    Give it to code that takes a clock and hands times to the backend
    (``RateScheduler(backend=rb, clock=rb.server_clock)``), so deadlines, cooldowns and answer
    times share one scale with the windows every host sees.
    """

    __slots__ = ("_backend", "_system")

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._system = SystemClock()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RedisClock) and other._backend is self._backend

    def __hash__(self) -> int:
        return hash((RedisClock, id(self._backend)))

    def now(self) -> float:
        """Redis ``TIME`` (UTC epoch seconds), as the backend estimates it between reads."""
        return self._backend.now()

    def wall(self) -> float:
        """UTC epoch seconds: Redis time is already on that scale."""
        return self.now()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set or ``timeout`` real seconds pass."""
        return self._system.wait(event, timeout)

    async def await_(self, future: asyncio.Future[Any], timeout: float) -> bool:
        """Wait for ``future`` at most ``timeout`` real seconds, without cancelling it."""
        return await self._system.await_(future, timeout)


class _EstimatedClock(RedisClock):
    """Redis time advanced locally from the last reading, never asking Redis (for the fallback)."""

    __slots__ = ()

    def now(self) -> float:
        """The last ``TIME`` reading plus the local time since."""
        return self._backend._estimate()


class _Down(Exception):
    """Internal: Redis is unreachable (or known down until the retry interval passes)."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(str(cause) if cause is not None else "known down")
        self.cause = cause


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


@lru_cache(maxsize=256)
def _limit_args(limits: RateLimits) -> tuple[str, ...]:
    """The script's limit arguments (effective limits first, raw ones for ``correct``)."""
    return (
        repr(float(limits.window_s)),
        _opt(limits.effective_rpm),
        _opt(limits.effective_tpm),
        _opt(limits.effective_itpm),
        _opt(limits.effective_otpm),
        _opt(limits.rpd),
        _opt(limits.max_concurrency),
        "1" if limits.smoothing else "0",
        limits.day,
        repr(float(limits.day_start_utc_s)),
    )


def _raw_limits(limits: RateLimits) -> tuple[str, ...]:
    return (_opt(limits.rpm), _opt(limits.tpm), _opt(limits.itpm), _opt(limits.otpm))


def _check_tokens(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of tokens, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 tokens, got {value}")
    return value


def _header_arg(value: float | None) -> str:
    """A header value as the script reads it (checked by `RateLimitHeaders`); "" for none."""
    return "" if value is None else repr(float(value))


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str (a model, or model + API key), got {key!r}")
    return key


def _check_rid(rid: object) -> str:
    if not isinstance(rid, str):
        raise TypeError(f"rid must be a str naming the request, got {rid!r}")
    return rid


def _decision(raw: Sequence[Any], rid: str) -> Decision:
    if int(raw[0]) == -1:
        raise ValueError(f"request id {rid!r} is already in flight; use a fresh id per request")
    binding = _text(raw[2])
    return Decision(int(raw[0]) == 1, float(_text(raw[1])), binding or None, None, int(raw[3]) == 1)


def _entries(ids: Sequence[Any], values: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """Parse stored entries (``t late req inp out flags day_end [=rid]``) into policy entries."""
    for ident, packed in zip(ids, values, strict=True):
        parts = (packed.decode() if isinstance(packed, bytes) else packed).split(" ", 7)
        entry = _Entry(
            float(parts[0]),
            int(float(parts[3])),
            int(float(parts[4])),
            parts[5][0] == "1",
            float(parts[6]),
        )
        entry.late = float(parts[1])
        entry.req = int(float(parts[2]))
        yield ident, entry


def _state_from(raw: Sequence[Any], epoch_offset: float) -> tuple[float, ModelState]:
    """Rebuild a `ModelState` from the script's ``load`` answer (in-flight ids left out)."""
    now = float(_text(raw[0]))
    state = ModelState(epoch_offset)
    flat = [_text(item) for item in raw[1]]
    fields = {flat[i]: float(flat[i + 1]) for i in range(0, len(flat), 2)}
    state.requests = int(fields["req"])
    state.tokens = int(fields["tok"])
    state.input_tokens = int(fields["inp"])
    state.output_tokens = int(fields["out"])
    state.cut = fields["cut"]
    state.day_requests = int(fields["dreq"])
    state.day_cut = fields["dcut"]
    state.cal_end = fields["cend"]
    state.cal_requests = int(fields["creq"])
    state.cooldown_until = fields["cool"]
    state.pace_req = fields.get("preq", -math.inf)
    state.pace_slow = fields.get("pslow", 1.0)
    state.pace_tok = fields.get("ptok", -math.inf)
    state.pace_inp = fields.get("pinp", -math.inf)
    state.high = fields["high"]
    state.window_s = fields["win"]
    entries: dict[Any, Any] = {}
    for ident, entry in _entries(*raw[2]):
        entries[ident] = entry
        state.log.append(entry)
    for ident, entry in _entries(*raw[3]):
        state.day_log.append(entries.get(ident, entry))
    for dim, members in zip(_DIMS, raw[4:8], strict=True):
        items = []
        for member in members:
            at, units, _ = _text(member).split(" ", 2)
            items.append((float(at), int(float(units))))
        state.synthetic[dim] = sorted(items)
        state.synthetic_total[dim] = int(fields[f"s_{dim}"])
    return now, state


def _epoch_offset(clock: Clock) -> float:
    wall = getattr(clock, "wall", None)
    now = clock.now()
    return (float(wall()) if callable(wall) else time.time()) - now


def _subscribe(
    backend_ref: weakref.ref[RedisBackend],
    client: redis.Redis,
    channel: str,
    closing: threading.Event,
) -> None:
    """The pub/sub thread: wake local listeners when another process frees capacity.

    Blocks on the socket (no polling); pings a silent connection every 30 s; after losing
    Redis it retries every ``retry_interval_s`` and, once back, wakes every listener (the
    messages sent meanwhile are lost). Holds the backend only while handling a message, so
    a dropped backend can be collected, and stops when it is.
    """
    missed = False
    while not closing.is_set():
        pubsub = client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
        try:
            pubsub.subscribe(channel)
            while not closing.is_set():
                message = pubsub.get_message(timeout=_PING_S)
                backend = backend_ref()
                if backend is None:
                    return
                if message is None:
                    pubsub.ping()
                    continue
                kind = _text(message.get("type"))
                if kind == "message":
                    backend._on_message(message.get("data"))
                elif kind == "subscribe":
                    backend._subscribed.set()
                    if missed:
                        backend._notify_all()
                        missed = False
                del backend
        except _SUBSCRIBER_ERRORS:
            backend = backend_ref()
            if backend is None:
                return
            backend._subscribed.clear()
            retry = backend.retry_interval_s
            del backend
            missed = True
            closing.wait(retry)
        finally:
            with contextlib.suppress(Exception):
                pubsub.close()


def _shut_down(
    client: redis.Redis, owns_client: bool, channel: str, origin: str, closing: threading.Event
) -> None:
    """``close()``, or the finaliser of a backend dropped without it: stop the subscriber."""
    closing.set()
    # Wake the subscriber out of its blocking read; harmless if Redis is gone.
    with contextlib.suppress(Exception):
        client.publish(channel, origin + "\n")
    if owns_client:
        with contextlib.suppress(Exception):
            client.close()


class RedisBackend(Backend):
    """Scheduler state in Redis: N workers on any hosts respect the limits one worker would.

    ``RedisBackend("redis://localhost:6379/0")`` or ``RedisBackend(client=redis.Redis(...))``
    (optionally ``async_client=redis.asyncio.Redis(...)``; without one, async calls run the sync
    client in a thread). Keys are ``{prefix}:{<key>}:<part>`` where ``<key>`` is the scheduler's
    ``provider:model`` (plus ``@`` and a hash of the API key with ``per_api_key``, never the
    key itself); they expire ``idle_expiry_s`` after nothing in them counts any more.

    Time is Redis ``TIME`` (epoch seconds): ``now()`` and every ``Decision.at`` are on that
    scale, so hand the scheduler ``clock=backend.server_clock``. ``clock=`` replaces ``TIME``
    with a local clock every process must share (tests, simulations).

    ``on_unavailable`` says what admission does when Redis cannot be reached within
    ``socket_timeout``: ``"fail"`` raises `RedisUnavailableError` (fail closed: nothing is sent
    without the shared limits); ``"memory"`` warns once (`RedisUnavailableWarning`) and
    schedules in this process alone (fail open) until Redis answers again, tried at most every
    ``retry_interval_s``. Either way the calls that account for a request already sent
    (settle, release, cooldown, correct) never raise for it: they log, and the reservation
    stays in Redis at its estimate until it leaves the window, which only over-counts.

    In-flight slots (what ``max_concurrency`` counts) are leases of ``lease_s`` seconds
    (default 30): the process that took one renews it every third of that while the call
    runs, so a worker killed mid-call (or one whose settle was lost to a timeout) frees its
    slots within one lease instead of stopping every other worker. ``lease_s=None`` holds a
    slot until it is settled or released.
    """

    in_process: ClassVar[bool] = False

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        async_client: aredis.Redis | None = None,
        prefix: str = "llm_routing",
        on_unavailable: Literal["fail", "memory"] = "fail",
        socket_timeout: float = 1.0,
        idle_expiry_s: float = 3600.0,
        retry_interval_s: float = 1.0,
        clock: Clock | None = None,
        lease_s: float | None = DEFAULT_LEASE_S,
    ) -> None:
        if (url is None) == (client is None):
            raise TypeError(
                "RedisBackend needs exactly one of url ('redis://host:6379/0') or "
                "client=redis.Redis(...)"
            )
        if url is not None and not isinstance(url, str):
            raise TypeError(f"RedisBackend(url=…) must be a str such as 'redis://…', got {url!r}")
        if client is not None and not isinstance(client, redis.Redis):
            raise TypeError(f"RedisBackend(client=…) must be a redis.Redis, got {client!r}")
        if async_client is not None and not isinstance(async_client, aredis.Redis):
            raise TypeError(
                f"RedisBackend(async_client=…) must be a redis.asyncio.Redis, got {async_client!r}"
            )
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(
                f"RedisBackend(prefix=…) must be a non-empty str without braces, got {prefix!r}"
            )
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
                raise TypeError(
                    f"RedisBackend({name}=…) must be a number of seconds, got {value!r}"
                )
            if not 0 < value < math.inf:
                raise ValueError(
                    f"RedisBackend({name}=…) must be a finite number of seconds > 0, got {value!r}"
                )
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(
                f"RedisBackend(clock=…) must provide now(), wait() and await_(), got {clock!r}"
            )
        self.lease_s = check_lease(lease_s, "RedisBackend")
        self.prefix = prefix
        self.on_unavailable = on_unavailable
        self.socket_timeout = float(socket_timeout)
        self.idle_expiry_s = float(idle_expiry_s)
        self.retry_interval_s = float(retry_interval_s)
        self._url = url
        self._where = redact_url(url) if url is not None else None
        self._owns_client = client is None
        self._client: redis.Redis = (
            client
            if client is not None
            else redis.Redis.from_url(
                url,  # type: ignore[arg-type]
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        )
        self._script: Script = self._client.register_script(POLICY_LUA)
        self._async_client = async_client
        self._async_script: AsyncScript | None = (
            async_client.register_script(POLICY_LUA) if async_client is not None else None
        )
        self._loop_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aredis.Redis, AsyncScript]
        ] = weakref.WeakKeyDictionary()
        self._clock = clock
        self._channel = f"{prefix}:capacity"
        self._origin = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._listeners: dict[str, tuple[Callable[[], None], ...]] = {}
        self._subscriber: threading.Thread | None = None
        self._closing = threading.Event()
        self._subscribed = threading.Event()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._epoch: str | None = None  # see _check_epoch
        self._epoch_seen_at = 0.0
        self._offset = time.time() - _monotonic()  # until the first TIME read
        self._resync_at = 0.0
        self._fallback: MemoryBackend | None = None
        self._fallback_rids: set[str] = set()
        self._finalizer = weakref.finalize(
            self,
            _shut_down,
            self._client,
            self._owns_client,
            self._channel,
            self._origin,
            self._closing,
        )

    def __repr__(self) -> str:
        where = self._where if self._where is not None else repr(self._client)
        return (
            f"RedisBackend({where!r}, prefix={self.prefix!r}, "
            f"on_unavailable={self.on_unavailable!r})"
        )

    # ------------------------------------------------------------------ time

    @property
    def clock(self) -> Clock | None:
        """The local clock given as ``clock=``; ``None`` when time is Redis ``TIME``."""
        return self._clock

    @property
    def server_clock(self) -> Clock:
        """A `Clock` on this backend's time scale, for ``RateScheduler(clock=…)``."""
        return self._clock if self._clock is not None else RedisClock(self)

    def now(self) -> float:
        """Redis ``TIME`` in epoch seconds, re-read every 30 s and advanced locally between.

        Never raises: while Redis is unreachable it goes on from the last reading.
        """
        if self._clock is not None:
            return self._clock.now()
        mono = _monotonic()
        if mono >= self._resync_at:
            self._resync(mono)
        return self._estimate()

    def _estimate(self) -> float:
        if self._clock is not None:
            return self._clock.now()
        return _monotonic() + self._offset

    def _resync(self, mono: float) -> None:
        self._resync_at = mono + _RESYNC_S
        if not self._reachable():
            return
        try:
            before = _monotonic()
            seconds, micros = self._client.time()
            after = _monotonic()
        except _UNREACHABLE as exc:
            self._went_down(exc)
            return
        self._offset = (seconds + micros / 1_000_000) - (before + after) / 2
        self._came_back()
        self._check_epoch()

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(float(self._clock.now()))

    def _offset_arg(self) -> str:
        return "0.0" if self._clock is None else repr(_epoch_offset(self._clock))

    # ------------------------------------------------------------------ availability

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
        except _UNREACHABLE:
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
                clock = self._clock if self._clock is not None else _EstimatedClock(self)
                self._fallback = MemoryBackend(clock, lease_s=self.lease_s)
            return self._fallback

    # ------------------------------------------------------------------ script calls

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}:{{{key}}}:{suffix}" for suffix in KEY_SUFFIXES]

    def _argv(self, op: str, key: str, rest: Sequence[str]) -> list[str]:
        return [
            op,
            self._now_arg(),
            repr(self.idle_expiry_s),
            self._channel,
            self._origin,
            key,
            *rest,
        ]

    def _run(self, op: str, key: str, rest: Sequence[str]) -> Any:
        if not self._reachable():
            raise _Down(None)
        try:
            result = self._script(keys=self._keys(key), args=self._argv(op, key, rest))
        except _UNREACHABLE as exc:
            self._went_down(exc)
            raise _Down(exc) from exc
        self._came_back()
        return result

    def _async_script_for_loop(self) -> tuple[aredis.Redis, AsyncScript] | None:
        if self._async_client is not None and self._async_script is not None:
            return self._async_client, self._async_script
        if self._url is None:
            return None
        loop = asyncio.get_running_loop()
        found = self._loop_clients.get(loop)
        if found is None:
            # redis.asyncio connections belong to the loop that opened them: one client per loop.
            # A bounded pool: a burst of hundreds of callers shares a few connections instead of
            # opening one each (which, on a busy loop, ran into the connect timeout).
            pool = aredis.BlockingConnectionPool.from_url(
                self._url,
                max_connections=_ASYNC_POOL_SIZE,
                timeout=_ASYNC_POOL_WAIT_S,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry=_AsyncRetry(NoBackoff(), 0),
            )
            client = aredis.Redis.from_pool(pool)  # closing the client closes its pool
            found = (client, client.register_script(POLICY_LUA))
            self._loop_clients[loop] = found
        return found

    async def _arun(self, op: str, key: str, rest: Sequence[str]) -> Any:
        found = self._async_script_for_loop()
        if found is None:
            return await asyncio.to_thread(self._run, op, key, rest)
        if not self._reachable():
            raise _Down(None)
        client, script = found
        try:
            result = await script(
                keys=self._keys(key), args=self._argv(op, key, rest), client=client
            )
        except _UNREACHABLE as exc:
            self._went_down(exc)
            raise _Down(exc) from exc
        self._came_back()
        return result

    # ------------------------------------------------------------------ acquire

    def _acquire_args(self, limits: RateLimits, request: Request, rid: str) -> list[str]:
        return [
            *_limit_args(limits),
            self._offset_arg(),
            *_raw_limits(limits),
            str(request.input_tokens),
            str(request.output_tokens),
            rid,
            "" if self.lease_s is None else repr(self.lease_s),
        ]

    def _admitted_locally(
        self, key: str, limits: RateLimits, request: Request, rid: str
    ) -> Decision:
        decision = self._memory().try_acquire(key, limits, request, rid)
        if decision.admit:
            with self._lock:
                self._fallback_rids.add(rid)
        return decision

    def try_acquire(self, key: str, limits: RateLimits, request: Request, rid: str) -> Decision:
        """Decide and reserve in one script run, on Redis time."""
        _check_key(key)
        _check_rid(rid)
        never = policy.decide(ModelState(), limits, 0.0, request)
        if never.never is not None:
            return never
        try:
            raw = self._run("acquire", key, self._acquire_args(limits, request, rid))
        except _Down as down:
            if self.on_unavailable == "memory":
                return self._admitted_locally(key, limits, request, rid)
            raise self._unavailable(down) from down.cause
        return _decision(raw, rid)

    async def atry_acquire(
        self, key: str, limits: RateLimits, request: Request, rid: str
    ) -> Decision:
        """Async ``try_acquire`` on a ``redis.asyncio`` client of the running loop."""
        _check_key(key)
        _check_rid(rid)
        never = policy.decide(ModelState(), limits, 0.0, request)
        if never.never is not None:
            return never
        try:
            raw = await self._arun("acquire", key, self._acquire_args(limits, request, rid))
        except _Down as down:
            if self.on_unavailable == "memory":
                return self._admitted_locally(key, limits, request, rid)
            raise self._unavailable(down) from down.cause
        return _decision(raw, rid)

    def renew(self, key: str, rids: Sequence[str]) -> int:
        """Push the lease of these in-flight requests ``lease_s`` past Redis time.

        Raises when Redis cannot be reached (the renewal thread logs it and tries again at
        its next tick, well within the lease).
        """
        _check_key(key)
        if self.lease_s is None or not rids:
            return 0
        local = self._local_rids(rids)
        renewed = self._memory().renew(key, local) if local else 0
        remote = [rid for rid in rids if rid not in local]
        if not remote:
            return renewed
        try:
            raw = self._run("renew", key, [repr(self.lease_s), *remote])
        except _Down as down:
            raise self._unavailable(down) from down.cause
        return renewed + int(raw)

    async def arenew(self, key: str, rids: Sequence[str]) -> int:
        """Async ``renew``."""
        _check_key(key)
        if self.lease_s is None or not rids:
            return 0
        local = self._local_rids(rids)
        renewed = self._memory().renew(key, local) if local else 0
        remote = [rid for rid in rids if rid not in local]
        if not remote:
            return renewed
        try:
            raw = await self._arun("renew", key, [repr(self.lease_s), *remote])
        except _Down as down:
            raise self._unavailable(down) from down.cause
        return renewed + int(raw)

    def _local_rids(self, rids: Sequence[str]) -> list[str]:
        """The rids admitted by the in-process fallback while Redis was away."""
        with self._lock:
            return [rid for rid in rids if rid in self._fallback_rids]

    # ------------------------------------------------------------------ after the call

    def _is_local(self, rid: str) -> bool:
        with self._lock:
            if rid in self._fallback_rids:
                self._fallback_rids.discard(rid)
                return True
            return False

    def _settle_args(
        self,
        limits: RateLimits,
        rid: str,
        input_tokens: int,
        output_tokens: int,
        answered_at: float | None,
    ) -> list[str]:
        _check_tokens("input_tokens", input_tokens)
        _check_tokens("output_tokens", output_tokens)
        answered = (
            "" if answered_at is None or answered_at != answered_at else repr(float(answered_at))
        )
        return [
            *_limit_args(limits),
            self._offset_arg(),
            *_raw_limits(limits),
            rid,
            str(input_tokens),
            str(output_tokens),
            answered,
        ]

    def _lost(self, what: str, key: str, down: _Down) -> None:
        _log.warning(
            "Redis unreachable (%s): %s for %s not recorded; its reservation stays at the "
            "estimate until it leaves the window",
            down,
            what,
            key,
        )

    def settle(
        self,
        key: str,
        limits: RateLimits,
        rid: str,
        input_tokens: int,
        output_tokens: int,
        *,
        answered_at: float | None = None,
    ) -> bool:
        """Real usage replaces the estimate; other processes are woken when capacity freed."""
        _check_key(key)
        _check_rid(rid)
        args = self._settle_args(limits, rid, input_tokens, output_tokens, answered_at)
        if self._is_local(rid):
            freed = self._memory().settle(
                key, limits, rid, input_tokens, output_tokens, answered_at=answered_at
            )
        else:
            try:
                freed = int(self._run("settle", key, args)) == 1
            except _Down as down:
                self._lost("settle", key, down)
                return False
        if freed:
            self._notify(key)
        return freed

    async def asettle(
        self,
        key: str,
        limits: RateLimits,
        rid: str,
        input_tokens: int,
        output_tokens: int,
        *,
        answered_at: float | None = None,
    ) -> bool:
        """Async ``settle``."""
        _check_key(key)
        _check_rid(rid)
        args = self._settle_args(limits, rid, input_tokens, output_tokens, answered_at)
        if self._is_local(rid):
            freed = self._memory().settle(
                key, limits, rid, input_tokens, output_tokens, answered_at=answered_at
            )
        else:
            try:
                freed = int(await self._arun("settle", key, args)) == 1
            except _Down as down:
                self._lost("settle", key, down)
                return False
        if freed:
            self._notify(key)
        return freed

    def release(self, key: str, rid: str, *, keep_request: bool = False) -> bool:
        """Give the reservation back; other processes are woken when one was held."""
        _check_key(key)
        _check_rid(rid)
        if self._is_local(rid):
            freed = self._memory().release(key, rid, keep_request=keep_request)
        else:
            try:
                freed = int(self._run("release", key, [rid, "1" if keep_request else "0"])) == 1
            except _Down as down:
                self._lost("release", key, down)
                return False
        if freed:
            self._notify(key)
        return freed

    async def arelease(self, key: str, rid: str, *, keep_request: bool = False) -> bool:
        """Async ``release``."""
        _check_key(key)
        _check_rid(rid)
        if self._is_local(rid):
            freed = self._memory().release(key, rid, keep_request=keep_request)
        else:
            try:
                result = await self._arun("release", key, [rid, "1" if keep_request else "0"])
            except _Down as down:
                self._lost("release", key, down)
                return False
            freed = int(result) == 1
        if freed:
            self._notify(key)
        return freed

    @staticmethod
    def _check_until(until: float) -> str:
        if isinstance(until, bool) or not isinstance(until, int | float):
            raise TypeError(f"cooldown until must be a time in seconds, got {until!r}")
        if until != until:
            raise ValueError("cooldown until must be a time in seconds, got nan")
        return repr(float(until))

    def cooldown(self, key: str, until: float) -> None:
        """Admit nobody on ``key`` before ``until`` (Redis time), in every process."""
        _check_key(key)
        arg = self._check_until(until)
        try:
            self._run("cooldown", key, [arg])
        except _Down as down:
            if self.on_unavailable == "memory":
                self._memory().cooldown(key, until)
            else:
                self._lost("cooldown", key, down)

    async def acooldown(self, key: str, until: float) -> None:
        """Async ``cooldown``."""
        _check_key(key)
        arg = self._check_until(until)
        try:
            await self._arun("cooldown", key, [arg])
        except _Down as down:
            if self.on_unavailable == "memory":
                self._memory().cooldown(key, until)
            else:
                self._lost("cooldown", key, down)

    def _correct_args(self, limits: RateLimits, headers: RateLimitHeaders) -> list[str]:
        if not isinstance(headers, RateLimitHeaders):
            raise TypeError(f"headers must be a RateLimitHeaders, got {type(headers).__name__}")
        args = [*_limit_args(limits), self._offset_arg(), *_raw_limits(limits)]
        for _what, remaining, reset in headers.dimensions():
            args.append(_header_arg(remaining))
            args.append(_header_arg(reset))
        return args

    def correct(
        self,
        key: str,
        limits: RateLimits,
        headers: RateLimitHeaders,
    ) -> None:
        """Tighten the shared view with the provider's remaining-capacity headers."""
        _check_key(key)
        args = self._correct_args(limits, headers)
        try:
            self._run("correct", key, args)
        except _Down as down:
            if self.on_unavailable == "memory":
                self._memory().correct(key, limits, headers)
            else:
                self._lost("correct", key, down)

    async def acorrect(
        self,
        key: str,
        limits: RateLimits,
        headers: RateLimitHeaders,
    ) -> None:
        """Async ``correct``."""
        _check_key(key)
        args = self._correct_args(limits, headers)
        try:
            await self._arun("correct", key, args)
        except _Down as down:
            if self.on_unavailable == "memory":
                self._memory().correct(key, limits, headers)
            else:
                self._lost("correct", key, down)

    # ------------------------------------------------------------------ reading

    def _load_args(
        self, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> list[str]:
        empty = ModelState()
        # The script may answer "all fit now" itself when nothing can be skipped or spaced.
        fast = not limits.smoothing and not any(
            policy.decide(empty, limits, 0.0, item).never is not None
            for item in (*pending, request)
        )
        return [
            *_limit_args(limits),
            self._offset_arg(),
            *_raw_limits(limits),
            str(len(pending)),
            str(sum(item.input_tokens for item in pending)),
            str(sum(item.output_tokens for item in pending)),
            "1" if fast else "0",
            str(request.input_tokens),
            str(request.output_tokens),
        ]

    def _project_on(
        self, raw: Any, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        if len(raw) == 1:
            return Decision(True, float(_text(raw[0])), None, None, False)
        now, state = _state_from(raw, float(self._offset_arg()))
        return project(state, limits, now, pending, request)

    def project(
        self, key: str, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        """Run ``policy.project`` on a consistent copy of the shared state (changes nothing)."""
        _check_key(key)
        if not pending:
            never = policy.decide(ModelState(), limits, 0.0, request)
            if never.never is not None:
                return never
        try:
            raw = self._run("load", key, self._load_args(limits, pending, request))
        except _Down as down:
            if self.on_unavailable == "memory":
                return self._memory().project(key, limits, pending, request)
            raise self._unavailable(down) from down.cause
        return self._project_on(raw, limits, pending, request)

    async def aproject(
        self, key: str, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        """Async ``project``."""
        _check_key(key)
        if not pending:
            never = policy.decide(ModelState(), limits, 0.0, request)
            if never.never is not None:
                return never
        try:
            raw = await self._arun("load", key, self._load_args(limits, pending, request))
        except _Down as down:
            if self.on_unavailable == "memory":
                return self._memory().project(key, limits, pending, request)
            raise self._unavailable(down) from down.cause
        return self._project_on(raw, limits, pending, request)

    def snapshot(self, key: str) -> dict[str, Any]:
        """Usage in the shared windows (as of Redis time), cooldown, in-flight and day counts."""
        _check_key(key)
        try:
            raw = [_text(item) for item in self._run("snapshot", key, [])]
        except _Down as down:
            if self.on_unavailable == "memory":
                return self._memory().snapshot(key)
            raise self._unavailable(down) from down.cause
        return {
            "requests_in_window": int(float(raw[0])),
            "tokens_in_window": int(float(raw[1])),
            "input_tokens_in_window": int(float(raw[2])),
            "output_tokens_in_window": int(float(raw[3])),
            "requests_today": int(float(raw[4])),
            "cooldown_until": float(raw[5]) if raw[5] else None,
            "in_flight": int(float(raw[6])),
            "window_s": float(raw[7]),
        }

    # ------------------------------------------------------------------ wake-ups

    def add_listener(self, key: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when capacity on ``key`` frees, in this process or another."""
        _check_key(key)
        with self._lock:
            self._listeners[key] = (*self._listeners.get(key, ()), callback)
            start = self._subscriber is None and not self._closing.is_set()
            if start:
                # The thread holds the backend weakly: a backend dropped without close() is
                # finalised (thread stopped, clients closed) when it is garbage collected.
                self._subscriber = threading.Thread(
                    target=_subscribe,
                    args=(weakref.ref(self), self._client, self._channel, self._closing),
                    name=f"llm_routing-redis-{self.prefix}",
                    daemon=True,
                )
        if start:
            assert self._subscriber is not None
            self._subscriber.start()
        # Capacity freed before the subscription is live would go unheard: wait for it (at
        # most the socket timeout; a dead Redis is handled by the subscriber's retries).
        self._subscribed.wait(self.socket_timeout)

    def remove_listener(self, key: str, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` for ``key``."""
        with self._lock:
            kept = tuple(cb for cb in self._listeners.get(key, ()) if cb != callback)
            if kept:
                self._listeners[key] = kept
            else:
                self._listeners.pop(key, None)

    def _notify(self, key: str) -> None:
        with self._lock:
            listeners = self._listeners.get(key, ())
        for callback in listeners:
            try:
                callback()
            except Exception:  # one broken listener must not starve the others
                _log.exception("capacity listener for %s failed", key)

    def _notify_all(self) -> None:
        with self._lock:
            keys = list(self._listeners)
        for key in keys:
            self._notify(key)

    def _on_message(self, data: Any) -> None:
        origin, _, key = _text(data).partition("\n")
        if origin != self._origin:
            self._notify(key)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the pub/sub thread and close the clients this backend opened; idempotent.

        Also done when the backend is garbage collected, but a program that creates backends
        repeatedly (tests, short-lived workers) should close them: ``with RedisBackend(...)``
        or ``async with``.
        """
        with self._lock:
            subscriber = self._subscriber
        self._finalizer()
        if subscriber is not None and subscriber is not threading.current_thread():
            subscriber.join(self.socket_timeout + 1.0)

    async def aclose(self) -> None:
        """``close()``, and close the async client of the running loop."""
        self.close()
        found = self._loop_clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()
