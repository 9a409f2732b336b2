"""Cross-process wake-ups: capacity freed in one process wakes the waiters of every other.

The script publishes on ``{prefix}:capacity`` with each change that frees capacity; one
pub/sub thread per backend (holding it weakly, so a dropped backend is collected and the
thread stops) calls the local listeners. A mixin of `RedisBackend`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import redis

from llm_routing._redis import SUBSCRIBER_ERRORS as _SUBSCRIBER_ERRORS
from llm_routing.schedule.redis.codec import check_key, text

if TYPE_CHECKING:
    from llm_routing.schedule.redis.backend import RedisBackend

__all__: list[str] = []

_log = logging.getLogger("llm_routing.schedule.redis")

_PING_S = 30.0  # a silent subscription is checked this often


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
                kind = text(message.get("type"))
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


class _Wakeups:
    """The wake-up half of `RedisBackend`: its state is the backend's own attributes."""

    prefix: str
    socket_timeout: float
    _client: redis.Redis
    _channel: str
    _origin: str
    _lock: threading.Lock
    _listeners: dict[str, tuple[Callable[[], None], ...]]
    _subscriber: threading.Thread | None
    _closing: threading.Event
    _subscribed: threading.Event

    def add_listener(self, key: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when capacity on ``key`` frees, in this process or another."""
        check_key(key)
        with self._lock:
            self._listeners[key] = (*self._listeners.get(key, ()), callback)
            start = self._subscriber is None and not self._closing.is_set()
            if start:
                # The thread holds the backend weakly: a backend dropped without close() is
                # finalised (thread stopped, clients closed) when it is garbage collected.
                self._subscriber = threading.Thread(
                    target=_subscribe,
                    args=(
                        weakref.ref(cast("RedisBackend", self)),
                        self._client,
                        self._channel,
                        self._closing,
                    ),
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
        origin, _, key = text(data).partition("\n")
        if origin != self._origin:
            self._notify(key)
