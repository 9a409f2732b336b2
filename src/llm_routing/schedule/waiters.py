"""The queue of one key: its waiters, a live view of their requests, and how a waiter is woken.

Plain containers mutated only under ``Admission``'s lock; a waiter is a ``threading.Event``
(sync callers) or a future of its own event loop (async callers), woken across threads and
loops alike. What a waiter does when woken is ``admission``'s.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import overload

from llm_routing.schedule.limits import Request

__all__ = ["KeyQueue", "PendingView", "Waiter", "count_ahead", "fresh_request"]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Waiter:
    """One caller in a key's queue; signalled (under the admission lock) to re-evaluate."""

    __slots__ = (
        "deadline",
        "event",
        "failure",
        "future",
        "ident",
        "loop",
        "model",
        "request",
        "signalled",
    )

    def __init__(
        self,
        ident: int,
        request: Request,
        deadline: float,
        model: str,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.ident = ident
        self.model = model
        self.request = request
        self.deadline = deadline
        self.loop = loop
        self.event: threading.Event | None = None
        self.future: asyncio.Future[None] | None = None
        self.signalled = False
        self.failure: BaseException | None = None

    def signal(self) -> bool:
        """Wake this waiter; False when its event loop is closed (it can never run again)."""
        self.signalled = True
        if self.event is not None:
            self.event.set()
        future = self.future
        if future is not None and not future.done():
            loop = self.loop
            assert loop is not None
            if asyncio._get_running_loop() is loop:
                future.set_result(None)
            else:
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:
                    return False
        return True


class PendingView(Sequence[Request]):
    """The requests queued on a key, as a live read-only view (no copy per join)."""

    __slots__ = ("_waiters",)

    def __init__(self, waiters: OrderedDict[int, Waiter]) -> None:
        self._waiters = waiters

    def __len__(self) -> int:
        return len(self._waiters)

    def __iter__(self) -> Iterator[Request]:
        return (w.request for w in self._waiters.values())

    @overload
    def __getitem__(self, index: int) -> Request: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Request]: ...

    def __getitem__(self, index: int | slice) -> Request | Sequence[Request]:
        if isinstance(index, slice):
            return list(self)[index]
        size = len(self._waiters)
        position = index + size if index < 0 else index
        if not 0 <= position < size:
            raise IndexError("pending request index out of range")
        if position == size - 1:
            return self._waiters[next(reversed(self._waiters))].request
        return next(itertools.islice(self._waiters.values(), position, None)).request


class KeyQueue:
    """One key's waiters in FIFO order, and the backend listener that wakes its head."""

    __slots__ = ("key", "listener", "waiters")

    def __init__(self, key: str, listener: Callable[[], None]) -> None:
        self.key = key
        self.waiters: OrderedDict[int, Waiter] = OrderedDict()
        self.listener = listener

    def head(self) -> Waiter | None:
        """The waiter whose turn it is to ask the backend (None when nobody waits)."""
        if not self.waiters:
            return None
        return self.waiters[next(iter(self.waiters))]

    # The methods below run under the owning ``Admission``'s lock.

    def signal_head(self) -> None:
        """Wake the head; waiters whose event loop closed (never to run again) are dropped."""
        waiters = self.waiters
        while waiters:
            ident = next(iter(waiters))
            if waiters[ident].signal():
                return
            del waiters[ident]

    def turn(self, waiter: Waiter) -> bool:
        """True when ``waiter`` is head; raises the failure a cooldown left it."""
        if waiter.failure is not None:
            raise waiter.failure
        waiter.signalled = False
        return self.head() is waiter

    def leave(self, waiter: Waiter) -> None:
        """Take ``waiter`` out of the queue, waking the next head if it was the head."""
        was_head = self.head() is waiter
        if self.waiters.pop(waiter.ident, None) is not None and was_head:
            self.signal_head()

    def fail_before(self, until: float, failure: Callable[[Waiter], BaseException]) -> None:
        """Fail now every waiter whose deadline comes before ``until``, then wake the head."""
        for ident, waiter in list(self.waiters.items()):
            if waiter.deadline < until:
                waiter.failure = failure(waiter)
                del self.waiters[ident]
                waiter.signal()
        self.signal_head()


def fresh_request(waiter: Waiter) -> Request:
    """A joiner's request as its own object: the projection cache knows a queue by its last."""
    waiter.request = Request(waiter.request.input_tokens, waiter.request.output_tokens)
    return waiter.request


def count_ahead(lock: threading.Lock, queue: KeyQueue, waiter: Waiter) -> int:
    """How many waiters are queued before ``waiter``."""
    with lock:
        ahead = 0
        for other in queue.waiters.values():
            if other is waiter:
                break
            ahead += 1
        return ahead
