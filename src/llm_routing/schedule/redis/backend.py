"""The Redis backend: the scheduling policy's state in Redis, shared by processes and hosts.

Owns the Redis side of scheduling: one Lua script (``script``) run per operation, time from
Redis ``TIME``, idle expiry, and the clients. Each operation is one entry built by an
``_op_*`` method: the script's operation and its encoded arguments (``codec``), how its reply
is decoded, and what Redis being unreachable means for it (fall back to memory, log, or
raise); one sync runner (``_do``) and one async runner (``_ado``) run every entry. Outages are
``health``'s, cross-process wake-ups ``wakeups``'s. It does not wait or queue
(``schedule.admission``) and decides nothing of its own.

Why Lua rather than ``WATCH``/``MULTI``: a decision reads the whole sliding window and writes the
reservation, so it must be atomic. With ``WATCH`` every caller reads the state (one round trip),
decides locally, then commits (another); under contention (N workers on one hot model, exactly
when limits matter) commits abort and retry, so latency and load grow with the number of
workers and a busy key can starve a worker. A script runs on the server in one round trip,
never aborts, reads ``TIME`` in the same atomic step (so every host decides on one clock), and
publishes the capacity wake-up together with the change. Its cost is a second copy of the
arithmetic: the script ports ``policy`` line by line, and the conformance suite runs the same
tests against both backends. Projections (``project``, for the max-wait rule) change nothing,
so they run the Python ``projection.project`` on a consistent copy of the state instead.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from time import monotonic as _monotonic
from typing import Any, ClassVar, Literal

import redis
import redis.asyncio as aredis

from llm_routing._redact import redact_url
from llm_routing._redis import (
    ASYNC_POOL_SIZE,
    UNREACHABLE,
    Script,
    check_prefix,
    check_target,
    connect,
)
from llm_routing.schedule.backend import DEFAULT_LEASE_S, Backend, check_lease
from llm_routing.schedule.clock import Clock
from llm_routing.schedule.limits import Decision, RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.redis.clock import RedisClock
from llm_routing.schedule.redis.codec import (
    check_key,
    epoch_offset,
    snapshot_of,
)
from llm_routing.schedule.redis.health import _Down, _Health, check_options
from llm_routing.schedule.redis.ops import _T, _Done, _Op, _Operations
from llm_routing.schedule.redis.script import KEY_SUFFIXES, POLICY_LUA
from llm_routing.schedule.redis.wakeups import _shut_down, _Wakeups

__all__ = ["RedisBackend"]

_ASYNC_POOL_SIZE = ASYNC_POOL_SIZE  # connections per event loop for async callers
_RESYNC_S = 30.0  # how often now() re-reads Redis TIME to follow the server's clock


class RedisBackend(_Operations, _Health, _Wakeups, Backend):
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
        check_target("RedisBackend", url, client, async_client)
        check_prefix("RedisBackend", prefix)
        check_options(on_unavailable, socket_timeout, idle_expiry_s, retry_interval_s, clock)
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
            client if client is not None else connect(url, self.socket_timeout)  # type: ignore[arg-type]
        )
        self._script = Script(
            POLICY_LUA,
            self._client,
            url=url,
            async_client=async_client,
            socket_timeout=self.socket_timeout,
        )
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
        except UNREACHABLE as exc:
            self._went_down(exc)
            return
        self._offset = (seconds + micros / 1_000_000) - (before + after) / 2
        self._came_back()
        self._check_epoch()

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(float(self._clock.now()))

    def _offset_arg(self) -> str:
        return "0.0" if self._clock is None else repr(epoch_offset(self._clock))

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
            result = self._script(self._keys(key), self._argv(op, key, rest))
        except UNREACHABLE as exc:
            raise self._down(exc) from exc
        self._came_back()
        return result

    def _down(self, exc: BaseException) -> _Down:
        self._went_down(exc)
        return _Down(exc)

    async def _arun(self, op: str, key: str, rest: Sequence[str]) -> Any:
        if not self._reachable():
            raise _Down(None)
        try:
            result = await self._script.acall(self._keys(key), self._argv(op, key, rest))
        except UNREACHABLE as exc:
            raise self._down(exc) from exc
        self._came_back()
        return result

    # ------------------------------------------------------------------ the two runners

    def _do(self, op: _Op[_T] | _Done[_T]) -> _T:
        """Run ``op`` in this thread (`_Done`: answered without Redis)."""
        if isinstance(op, _Done):
            return op.value
        try:
            raw = self._run(op.name, op.key, op.args)
        except _Down as down:
            return op.down(down)
        return op.decode(raw)

    async def _ado(self, op: _Op[_T] | _Done[_T]) -> _T:
        """Run ``op`` on a ``redis.asyncio`` client of the running loop."""
        if isinstance(op, _Done):
            return op.value
        try:
            raw = await self._arun(op.name, op.key, op.args)
        except _Down as down:
            return op.down(down)
        return op.decode(raw)

    # ------------------------------------------------------------------ the Backend methods

    def try_acquire(self, key: str, limits: RateLimits, request: Request, rid: str) -> Decision:
        """Decide and reserve in one script run, on Redis time."""
        return self._do(self._op_acquire(key, limits, request, rid))

    async def atry_acquire(
        self, key: str, limits: RateLimits, request: Request, rid: str
    ) -> Decision:
        """Async ``try_acquire`` on a ``redis.asyncio`` client of the running loop."""
        return await self._ado(self._op_acquire(key, limits, request, rid))

    def renew(self, key: str, rids: Sequence[str]) -> int:
        """Push the lease of these in-flight requests ``lease_s`` past Redis time.

        Raises when Redis cannot be reached (the renewal thread logs it and tries again at
        its next tick, well within the lease).
        """
        return self._do(self._op_renew(key, rids))

    async def arenew(self, key: str, rids: Sequence[str]) -> int:
        """Async ``renew``."""
        return await self._ado(self._op_renew(key, rids))

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
        return self._do(self._op_settle(key, limits, rid, input_tokens, output_tokens, answered_at))

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
        op = self._op_settle(key, limits, rid, input_tokens, output_tokens, answered_at)
        return await self._ado(op)

    def release(self, key: str, rid: str, *, keep_request: bool = False) -> bool:
        """Give the reservation back; other processes are woken when one was held."""
        return self._do(self._op_release(key, rid, keep_request))

    async def arelease(self, key: str, rid: str, *, keep_request: bool = False) -> bool:
        """Async ``release``."""
        return await self._ado(self._op_release(key, rid, keep_request))

    def cooldown(self, key: str, until: float) -> None:
        """Admit nobody on ``key`` before ``until`` (Redis time), in every process."""
        self._do(self._op_cooldown(key, until))

    async def acooldown(self, key: str, until: float) -> None:
        """Async ``cooldown``."""
        await self._ado(self._op_cooldown(key, until))

    def correct(self, key: str, limits: RateLimits, headers: RateLimitHeaders) -> None:
        """Tighten the shared view with the provider's remaining-capacity headers."""
        self._do(self._op_correct(key, limits, headers))

    async def acorrect(self, key: str, limits: RateLimits, headers: RateLimitHeaders) -> None:
        """Async ``correct``."""
        await self._ado(self._op_correct(key, limits, headers))

    def project(
        self, key: str, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        """Run ``projection.project`` on a consistent copy of the shared state (changes nothing)."""
        return self._do(self._op_project(key, limits, pending, request))

    async def aproject(
        self, key: str, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        """Async ``project``."""
        return await self._ado(self._op_project(key, limits, pending, request))

    def snapshot(self, key: str) -> dict[str, Any]:
        """Usage in the shared windows (as of Redis time), cooldown, in-flight and day counts."""
        check_key(key)
        return self._do(
            _Op(
                "snapshot",
                key,
                [],
                snapshot_of,
                lambda down: self._memory_or_refuse(down, lambda memory: memory.snapshot(key)),
            )
        )

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
        await self._script.aclose_loop()
