"""Shared Redis plumbing: how our stores connect, run their scripts, and tell "unreachable".

Owns what the Redis ledger (``cost.redis``) and the Redis scheduler backend
(``schedule.redis``) would otherwise each write: checking ``url`` xor ``client``, a client
that fails fast (socket timeouts, no retry: a dead Redis must cost a caller one timeout, not
a retry loop), one Lua script run on that client or, for async callers, on a client of the
running event loop, and the exceptions that mean "Redis is away" rather than "our script is
wrong". What each store does when Redis is away (refuse, warn, fall back) stays its own.
Importing it needs the ``redis`` extra.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.commands.core import Script as SyncScript
from redis.retry import Retry

__all__ = [
    "SUBSCRIBER_ERRORS",
    "UNREACHABLE",
    "Script",
    "check_prefix",
    "check_target",
    "connect",
    "socket_timeout_of",
]

UNREACHABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
"""What a command raises when Redis cannot be reached in time (not a bug in our script)."""

SUBSCRIBER_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE, redis.exceptions.RedisError)
"""What a pub/sub thread survives by reconnecting: anything Redis itself may raise."""

ASYNC_POOL_SIZE = 32
"""Connections per event loop for async callers: a burst of hundreds shares a few."""

ASYNC_POOL_WAIT_S = 10.0
"""How long an async caller waits for a free connection (a dead Redis fails each fast)."""


def check_target(owner: str, url: object, client: object, async_client: object = None) -> None:
    """Exactly one of ``url`` or ``client``, of the right types, or the error naming ``owner``."""
    if (url is None) == (client is None):
        raise TypeError(
            f"{owner} needs exactly one of url ('redis://host:6379/0') or client=redis.Redis(...)"
        )
    if url is not None and not isinstance(url, str):
        raise TypeError(f"{owner}(url=…) must be a str such as 'redis://…', got {url!r}")
    if client is not None and not isinstance(client, redis.Redis):
        raise TypeError(f"{owner}(client=…) must be a redis.Redis, got {client!r}")
    if async_client is not None and not isinstance(async_client, aredis.Redis):
        raise TypeError(
            f"{owner}(async_client=…) must be a redis.asyncio.Redis, got {async_client!r}"
        )


def check_prefix(owner: str, prefix: object) -> str:
    """A key prefix: braces are refused since ours put the hash tag (``{…}``) after it."""
    if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
        raise ValueError(
            f"{owner}(prefix=…) must be a non-empty str without braces, got {prefix!r}"
        )
    return prefix


def connect(url: str, socket_timeout: float) -> redis.Redis:
    """A client that gives up after ``socket_timeout`` (connect and read) and never retries."""
    client: redis.Redis = redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return client


def socket_timeout_of(client: redis.Redis, default: float = 1.0) -> float:
    """The read timeout of a client (one the user built may have none: then ``default``)."""
    timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    return float(timeout) if isinstance(timeout, int | float) else default


class Script:
    """One Lua script, run on a sync client or on an async client of the running loop.

    ``redis.asyncio`` connections belong to the loop that opened them, so async callers get
    one bounded pool per loop, opened from ``url`` on first use (or the ``async_client`` the
    user gave). Without either (a sync ``client`` only), `for_loop` returns ``None`` and the
    store decides how to run the sync script off the loop.
    """

    def __init__(
        self,
        lua: str,
        client: redis.Redis,
        *,
        url: str | None = None,
        async_client: aredis.Redis | None = None,
        socket_timeout: float = 1.0,
    ) -> None:
        self.lua = lua
        self.client = client
        self._sync: SyncScript = client.register_script(lua)
        self._url = url
        self._socket_timeout = socket_timeout
        self._given: tuple[aredis.Redis, AsyncScript] | None = (
            (async_client, async_client.register_script(lua)) if async_client is not None else None
        )
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aredis.Redis, AsyncScript]
        ] = weakref.WeakKeyDictionary()

    def __call__(self, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run the script on the sync client (blocks up to the socket timeout)."""
        return self._sync(keys=list(keys), args=list(args))

    def for_loop(self) -> tuple[aredis.Redis, AsyncScript] | None:
        """The async client and script of the running loop, or ``None`` (no URL, no client)."""
        if self._given is not None:
            return self._given
        if self._url is None:
            return None
        loop = asyncio.get_running_loop()
        found = self._per_loop.get(loop)
        if found is None:
            pool = aredis.BlockingConnectionPool.from_url(
                self._url,
                max_connections=ASYNC_POOL_SIZE,
                timeout=ASYNC_POOL_WAIT_S,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
                retry=AsyncRetry(NoBackoff(), 0),
            )
            client = aredis.Redis.from_pool(pool)  # closing the client closes its pool
            found = (client, client.register_script(self.lua))
            self._per_loop[loop] = found
        return found

    async def acall(self, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run the script without blocking the loop: async client, else a worker thread."""
        found = self.for_loop()
        if found is None:
            return await asyncio.to_thread(self, keys, args)
        client, script = found
        return await script(keys=list(keys), args=list(args), client=client)

    async def aclose_loop(self) -> None:
        """Close the client this object opened for the running loop, if any."""
        found = self._per_loop.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()
