"""Waking callers that wait for budget holds to be dropped, and keeping live holds leased.

Shared by every ledger (memory and Redis): a waiter is a ``threading.Event`` for sync callers
or a future on its own loop for async ones, so one settlement wakes both kinds, whichever
thread it happens on. Kept apart from ``cost.ledger`` so the contract reads without the
thread plumbing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llm_routing._lease import LeaseRenewer

if TYPE_CHECKING:
    from llm_routing.cost.ledger import Reservation

__all__ = ["Waiters", "Wake", "check_lease", "hold_key", "lease_renewer"]


def check_lease(value: Any, owner: str) -> float:
    """``hold_lease`` as a float, or the error naming ``owner``'s argument."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}(hold_lease=…) must be a number of seconds, got {value!r}")
    if not 0 < value < math.inf:
        raise ValueError(
            f"{owner}(hold_lease=…) must be a finite number of seconds > 0 (how long a hold "
            f"outlives a worker that stopped renewing it), got {value!r}"
        )
    return float(value)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Wake:
    """One waiting caller: a ``threading.Event`` (sync) or a future on its loop (async)."""

    __slots__ = ("event", "future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.event = threading.Event()
        self.future: asyncio.Future[None] | None = None

    def arm(self) -> None:
        """Forget earlier wake-ups: called before each attempt, so none after it is lost."""
        self.event.clear()
        if self.loop is not None:
            self.future = self.loop.create_future()

    def set(self) -> None:
        self.event.set()
        future, loop = self.future, self.loop
        if future is None or loop is None or future.done():
            return
        if asyncio._get_running_loop() is loop:
            future.set_result(None)
            return
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is left to wake
            loop.call_soon_threadsafe(_resolve, future)


class Waiters:
    """The callers of this process waiting for a hold to be dropped; all woken at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[Wake] = set()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, wake: Wake) -> None:
        with self._lock:
            self._waiting.add(wake)

    def discard(self, wake: Wake) -> None:
        with self._lock:
            self._waiting.discard(wake)

    def wake_all(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
        for wake in waiting:
            wake.set()


def lease_renewer(
    renew: Callable[[list[Reservation]], object], lease: float, name: str
) -> LeaseRenewer[Reservation]:
    """The lease renewer of a ledger: every third of a lease, so two ticks may be missed."""
    return LeaseRenewer(renew, lease / 3, name, "budget hold(s)")


def hold_key(reservation: Reservation) -> tuple[int, int]:
    """What identifies a hold to its renewer: ids restart after ``reset()``, generations not."""
    return (reservation.generation, reservation.id)
