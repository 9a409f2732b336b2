"""Waking this process's waiters when any worker drops a hold on the shared ledger.

Owns the Redis ledger's pub/sub thread: the script publishes every dropped hold on
``{prefix}:{ledger}:released``; this thread hears it and wakes the callers of this process
waiting for room (`Ledger.reserve_within`). It runs only while someone waits, so a ledger
nobody waits on keeps no thread and no connection.
"""

from __future__ import annotations

import contextlib
import threading

import redis

from llm_routing._redis import SUBSCRIBER_ERRORS, socket_timeout_of
from llm_routing.cost._redis_codec import text
from llm_routing.cost._waiting import Waiters, Wake

__all__ = ["LISTEN_S", "ReleasedListener"]

LISTEN_S = 0.5
"""How long the subscriber blocks on one read before it checks whether anyone still waits."""


class ReleasedListener:
    """Registers waiters and runs the subscriber thread while at least one is registered."""

    def __init__(self, client: redis.Redis, channel: str, name: str, waiters: Waiters) -> None:
        self._client = client
        self._channel = channel
        self._name = name
        self.waiters = waiters
        self._lock = threading.Lock()
        self.subscriber: threading.Thread | None = None
        self._subscribed = threading.Event()
        self.closing = threading.Event()

    def listen(self, wake: Wake) -> bool:
        """Register ``wake``; start the subscriber if none runs, and wait until it listens.

        Waiting for the subscription matters: a hold dropped before it is live would go
        unheard (at most the socket timeout; a dead Redis fails the next attempt anyway).
        """
        with self._lock:
            if self.closing.is_set():
                return False
            self.waiters.add(wake)
            start = self.subscriber is None
            if start:
                self._subscribed.clear()
                self.subscriber = threading.Thread(
                    target=self._subscribe, name=self._name, daemon=True
                )
            subscriber = self.subscriber
        if start:
            assert subscriber is not None
            subscriber.start()
        self._subscribed.wait(socket_timeout_of(self._client))
        return True

    def unlisten(self, wake: Wake) -> None:
        self.waiters.discard(wake)

    def join(self) -> None:
        """Wait for the subscriber to leave (after ``closing`` was set)."""
        with self._lock:
            subscriber = self.subscriber
        if subscriber is not None and subscriber is not threading.current_thread():
            subscriber.join(LISTEN_S + socket_timeout_of(self._client) + 1.0)

    def _subscribe(self) -> None:
        """The pub/sub thread: leaves within ``LISTEN_S`` after the last waiter."""
        me = threading.current_thread()
        pubsub = None
        try:
            while not self.closing.is_set():
                try:
                    if pubsub is None:
                        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
                        pubsub.subscribe(self._channel)
                    message = pubsub.get_message(timeout=LISTEN_S)
                except SUBSCRIBER_ERRORS:
                    # Lost Redis: wake everyone (their next attempt reports it), then retry.
                    self._subscribed.clear()
                    self.waiters.wake_all()
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            pubsub.close()
                    pubsub = None
                    self.closing.wait(LISTEN_S)
                    message = None
                if message is not None:
                    kind = text(message.get("type"))
                    if kind == "subscribe":
                        self._subscribed.set()
                        self.waiters.wake_all()  # anything dropped before this went unheard
                    elif kind == "message":
                        self.waiters.wake_all()
                with self._lock:
                    if not len(self.waiters):
                        self.subscriber = None
                        self._subscribed.clear()
                        return
        finally:
            with self._lock:
                if self.subscriber is me:
                    self.subscriber = None
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    pubsub.close()
