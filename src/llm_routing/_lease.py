"""Lease renewal: what keeps a live call's shared reservations from expiring under it.

Reservations that other processes can see (a scheduler's in-flight slot, a ledger's budget
hold) are leases: each expires a few seconds after it was taken or last renewed, so a worker
killed mid-call (OOM, deploy, preemption) stops holding them within one lease instead of
forever. The process that took them renews them while the call is alive; this module does
that for both, from one daemon thread per owner.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LeaseRenewer"]

_log = logging.getLogger(__name__)

T = TypeVar("T")


class LeaseRenewer(Generic[T]):
    """Calls ``renew(live)`` every ``period`` seconds while any registered object is alive.

    A thread, not a task per call: it renews sync, async and streaming calls alike, whichever
    thread or event loop runs them, and never blocks a loop on a Redis round trip. Objects are
    held weakly, so a call that vanished without settling stops being renewed and its lease
    runs out. The thread runs only while something is registered (and one period after):
    an idle owner leaves no thread behind, and ``close()`` stops it for good.
    """

    def __init__(
        self, renew: Callable[[list[T]], object], period: float, name: str, what: str
    ) -> None:
        self._renew = renew
        self.period = period
        self._name = name
        self._what = what
        self._lock = threading.Lock()
        self._live: weakref.WeakValueDictionary[Hashable, T] = weakref.WeakValueDictionary()
        self._tick = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, key: Hashable, obj: T) -> None:
        """Renew ``obj`` from now on, until ``discard(key)`` or until it is garbage."""
        with self._lock:
            self._live[key] = obj
            if self._thread is not None or self._closed:
                return
            self._tick.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            thread = self._thread
        thread.start()

    def discard(self, key: Hashable) -> None:
        # The thread, once idle, lingers until its next tick: sequential calls (one hold at a
        # time) would otherwise start a thread each (about 30 us per call).
        with self._lock:
            self._live.pop(key, None)

    def live(self) -> list[T]:
        with self._lock:
            return list(self._live.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
            self._tick.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _run(self) -> None:
        while True:
            self._tick.wait(self.period)
            with self._lock:
                self._tick.clear()
                live = list(self._live.values())
                if not live or self._closed:
                    self._thread = None
                    return
            try:
                self._renew(live)
            except Exception as exc:  # the store is away: the next tick tries again
                _log.warning("could not renew %d %s: %s", len(live), self._what, exc)
