"""One call's waiting, shared by every attempt: what makes ``max_wait`` bound a router call.

A router (or `RoutingMiddleware`) call opens a `Waiting` and each model turn makes it the
current one (a context variable) while the model runs; the scheduler and the tracker of that
model read how much the call has waited already, refuse a wait that does not fit in what is
left of their ``max_wait`` and add what they waited. Without it, ``max_wait`` bounded each
model attempt, and a call with one fallback could wait twice ``max_wait``.

Seconds waited, not an absolute deadline: each scheduler measures its waits on its own clock
(Redis ``TIME`` for a shared backend, a virtual clock in tests), and a duration adds up across
clocks where deadlines would not compare. Latency of the calls themselves is never counted.

The variable holds a mutable object, so a model that runs its work in a thread LangChain
started (``run_in_executor`` and batch copy the context) adds to the same total. Outside any
router call there is no `Waiting`, and every decorator bounds its own attempt, as before.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar

__all__ = ["Waiting", "current", "swap"]


class Waiting:
    """Seconds one router call has waited so far, across all its attempts and decorators.

    Thread-safe: a call's attempts are sequential, but a decorator may add from a worker
    thread while another reads. One lock for all of them: a router call opens one per
    request and most never wait, so adding (rare) shares a lock instead of each request
    allocating its own.
    """

    __slots__ = ("_waited",)

    def __init__(self) -> None:
        self._waited = 0.0

    @property
    def waited(self) -> float:
        """Seconds waited so far (proactive and reactive, every model of the call)."""
        return self._waited

    def add(self, seconds: float) -> None:
        """Count ``seconds`` more of waiting (ignores negative or zero amounts)."""
        if seconds > 0:
            with _ADDING:
                self._waited += seconds

    def left(self, max_wait: float) -> float:
        """What is left of ``max_wait`` for this call (never negative)."""
        return max(0.0, max_wait - self._waited)

    def __repr__(self) -> str:
        return f"Waiting(waited={self._waited:.3f}s)"


_ADDING = threading.Lock()

_CURRENT: ContextVar[Waiting | None] = ContextVar("llm_routing_waiting", default=None)


def current() -> Waiting | None:
    """The waiting of the router call this code runs in, or None outside any."""
    return _CURRENT.get()


def swap(waiting: Waiting | None) -> Waiting | None:
    """Make ``waiting`` the current call's (a model's turn begins or ends); the one it replaces.

    Restored by value (``swap(previous)``) rather than with a token: an async generator's
    steps may run in another context than the one the turn entered in, where a token's reset
    would raise.
    """
    previous = _CURRENT.get()
    _CURRENT.set(waiting)
    return previous
