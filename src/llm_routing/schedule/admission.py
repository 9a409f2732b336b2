"""FIFO admission per key: sync threads and async tasks of any event loop share one queue.

Owns waiting (event-driven, never polling), wake-ups and cancellation. The admission loop is
written once (``Admission._steps``, a generator yielding the I/O it needs) and run by two thin
runners, one per colour, as tenacity and h11 do. The max-wait rule it follows is ``plan``'s,
the messages of refusals ``refusals``'s, the queue of a key ``waiters``'s, the limits the
policy's, the state the backend's; what follows an admission (the ticket's lease, settle and
release, cooldowns and corrections, and the wake-ups they cause) is ``outcomes``'s, a base of
`Admission` working under the same lock on the same queues.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import threading
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from llm_routing._lease import LeaseRenewer
from llm_routing.schedule._steps import adrive, drive
from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import Clock, SystemClock
from llm_routing.schedule.limits import Decision, RateLimits, Request
from llm_routing.schedule.outcomes import _Outcomes
from llm_routing.schedule.plan import Admit, Refuse, Sleep, Why, plan, plan_behind, refusal_at_join
from llm_routing.schedule.ticket import Ticket, check_ticket_args
from llm_routing.schedule.waiters import KeyQueue, PendingView, Waiter, count_ahead, fresh_request

__all__ = ["Admission", "Ticket"]


@dataclass(frozen=True, slots=True)
class _TryAcquire:
    """Ask the backend to decide and reserve (the head's turn); answers a `Decision`."""

    key: str
    limits: RateLimits
    request: Request
    rid: str


@dataclass(frozen=True, slots=True)
class _Project:
    """Ask the backend when ``request`` would be admitted after ``pending``; a `Decision`."""

    key: str
    limits: RateLimits
    pending: Sequence[Request]
    request: Request


@dataclass(frozen=True, slots=True)
class _Sleep:
    """Sleep ``timeout`` seconds unless ``waiter`` is signalled first; answers None."""

    waiter: Waiter
    timeout: float


_Op = _TryAcquire | _Project | _Sleep


class Admission(_Outcomes):
    """FIFO waiting per key in front of a backend; the only API the scheduler decorator uses.

    Only the head of a key's queue asks the backend (``try_acquire``); the others sleep until
    they become head. The head sleeps until the time the policy computed, or until woken
    early: capacity freed (a settle that returned tokens, a release), a waiter left, a
    cooldown or a correction changed the answer. Sync waiters block on a
    ``threading.Event``; async waiters on a future of their own event loop, woken with
    ``call_soon_threadsafe`` from other threads and loops. Nothing is bound to one loop.

    ``deadline`` is on the backend's clock (``now()``). A request that cannot be admitted by
    its deadline raises ``RateLimitExhaustedError`` as soon as that is known, without waiting.
    """

    def __init__(self, backend: Backend, clock: Clock | None = None) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(
                f"Admission needs a schedule Backend (e.g. MemoryBackend()), got {backend!r}"
            )
        own = backend.clock
        if clock is None:
            clock = own if own is not None else SystemClock()
        elif own is not None and clock is not own and clock != own:
            raise ValueError(
                "Admission(clock=...) must be the clock its MemoryBackend reads: pass the same "
                "clock to both (time and waits would disagree otherwise)"
            )
        if not isinstance(clock, Clock):
            raise TypeError(
                f"Admission clock must provide now(), wait() and await_(), got {clock!r}"
            )
        self._backend = backend
        self._clock = clock
        self._lock = threading.Lock()
        self._queues: dict[str, KeyQueue] = {}
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:12] + ":"
        # In-flight slots are leases the backend frees when their owner stops renewing them
        # (a worker killed mid-call): renew this process's live calls every third of a lease.
        lease = backend.lease_s
        self._leases: LeaseRenewer[Ticket] | None = (
            None
            if lease is None
            else LeaseRenewer(
                self._renew, lease / 3, "llm_routing-scheduler-leases", "in-flight slot lease(s)"
            )
        )

    @property
    def backend(self) -> Backend:
        """Where the state lives."""
        return self._backend

    @property
    def clock(self) -> Clock:
        """The clock waits run on."""
        return self._clock

    def now(self) -> float:
        """The backend's time: the scale of deadlines and ticket times."""
        return self._backend.now()

    def waiting(self, key: str) -> int:
        """How many callers are queued on ``key`` (the head included)."""
        with self._lock:
            queue = self._queues.get(key)
            return len(queue.waiters) if queue is not None else 0

    def close(self) -> None:
        """Stop listening to the backend (for an Admission dropped while the backend lives on)."""
        with self._lock:
            queues = list(self._queues.items())
        for key, queue in queues:
            self._backend.remove_listener(key, queue.listener)
        if self._leases is not None:
            self._leases.close()

    # ------------------------------------------------------------------ acquire

    def acquire(
        self, key: str, limits: RateLimits, request: Request, *, deadline: float, model: str
    ) -> Ticket:
        """Wait in line for ``key`` and reserve ``request``; blocks this thread.

        Raises ``RateLimitExhaustedError`` when admission would come after ``deadline`` (at
        once when that is known on joining) or the request is larger than a limit, and
        ``QuotaExceededError`` when the daily limit binds. Any exception while waiting
        (``KeyboardInterrupt`` included) leaves the queue and returns what was reserved.
        """
        check_ticket_args(key, limits, request, deadline, model)
        ticket = self._at_once(key, limits, request, model)
        if ticket is not None:
            return ticket
        return drive(self._steps(key, limits, request, deadline, model, None), self._do)

    async def aacquire(
        self, key: str, limits: RateLimits, request: Request, *, deadline: float, model: str
    ) -> Ticket:
        """Async ``acquire``: the same queue, so async tasks and threads share FIFO order.

        Cancelling the task leaves the queue (and returns a reservation made meanwhile).
        """
        check_ticket_args(key, limits, request, deadline, model)
        ticket = self._at_once(key, limits, request, model)
        if ticket is not None:
            return ticket
        if key not in self._queues and not self._backend.in_process:
            # A first listener on a networked backend may wait for its subscription: not here.
            await asyncio.to_thread(self._queue, key)
        loop = asyncio.get_running_loop()
        steps = self._steps(key, limits, request, deadline, model, loop)
        return await adrive(steps, functools.partial(self._ado, loop=loop))

    def at_once(self, key: str, limits: RateLimits, request: Request, model: str) -> Ticket | None:
        """``request``'s ticket if it is admitted now without queueing, else ``None`` (no wait).

        For a caller that then queues with `acquire` on ``None`` (which asks once more); it
        takes the caller's arguments as checked (the scheduler builds them itself).

        Nobody queued on ``key`` of an in-process backend: ask it at once, joining nothing.
        The path of most calls to a scheduler that is not at its limits, so it skips the
        waiter and the loop. Asked under the lock, so nobody can join ahead meanwhile (an
        in-process backend does no I/O and calls no listener from ``try_acquire``). None:
        not admitted now, and the caller queues as usual (which asks again).
        """
        backend = self._backend
        if not backend.in_process:
            return None
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queue(key)
        rid = self._prefix + str(next(self._ids))
        asked = False
        try:
            with self._lock:
                if queue.waiters:
                    return None
                asked = True
                decision = backend.try_acquire(key, limits, request, rid)
            if not decision.admit:
                return None
            at = decision.at
            # Admitted at its first ask, with nobody ahead: it waited for nothing (what is
            # between joining and ``at`` is this call's own work), so no clock is read for it.
            ticket = Ticket(key, rid, request, at, at, 0.0, limits, model)
            leases = self._leases
            if leases is not None and not backend.own(key, rid, ticket):  # `_hold`, inline
                leases.add(rid, ticket)
                ticket.renewed = True
            return ticket
        except BaseException:
            if asked:  # interrupted once the backend may have reserved: give it back
                backend.release(key, rid)
            raise

    _at_once = at_once  # `acquire`'s first ask: the same path, one call less on the scheduler's

    def _do(self, op: _Op) -> Decision | None:
        """Run one step's I/O in this thread."""
        backend = self._backend
        if isinstance(op, _TryAcquire):
            return backend.try_acquire(op.key, op.limits, op.request, op.rid)
        if isinstance(op, _Project):
            return backend.project(op.key, op.limits, op.pending, op.request)
        with self._lock:
            waiter = op.waiter
            if waiter.signalled:
                return None
            event = waiter.event
            if event is None:
                event = waiter.event = threading.Event()
            else:
                event.clear()
        self._clock.wait(event, op.timeout)
        return None

    async def _ado(self, op: _Op, loop: asyncio.AbstractEventLoop) -> Decision | None:
        """Run one step's I/O on the event loop (an in-process backend does none: no await)."""
        backend = self._backend
        if isinstance(op, _Sleep):
            with self._lock:
                if op.waiter.signalled:
                    return None
                future = op.waiter.future = loop.create_future()
            await self._clock.await_(future, op.timeout)
            return None
        if backend.in_process:
            return self._do(op)
        if isinstance(op, _TryAcquire):
            return await backend.atry_acquire(op.key, op.limits, op.request, op.rid)
        return await backend.aproject(op.key, op.limits, op.pending, op.request)

    def _steps(
        self,
        key: str,
        limits: RateLimits,
        request: Request,
        deadline: float,
        model: str,
        loop: asyncio.AbstractEventLoop | None,
    ) -> Generator[_Op, Decision | None, Ticket]:
        """The admission loop, once for both runners: it yields the I/O it needs done.

        Join (refusing at once when the queue ahead already pushes admission past the
        deadline), then until admitted: the head asks the backend and follows ``plan``; a
        waiter behind it sleeps (``plan_behind``). Whatever ends it early, an exception of
        its own or one thrown in by a runner, leaves the queue and gives back a reservation
        made by a ``try_acquire`` that was interrupted.
        """
        backend = self._backend
        queue = self._queue(key)
        rid = self._prefix + str(next(self._ids))
        waiter = Waiter(next(self._ids), request, deadline, model, loop)
        why = Why(model, limits, request)
        joined_at = backend.now()
        reserved = False
        toward = math.inf  # the admissible time the head last slept towards
        try:
            yield from self._join(key, limits, queue, waiter, why, joined_at)
            while True:
                with self._lock:
                    head = queue.turn(waiter)
                step: Admit | Sleep | Refuse
                if head:
                    reserved = True
                    decision = yield _TryAcquire(key, limits, waiter.request, rid)
                    assert decision is not None
                    reserved = decision.admit
                    step = plan(decision, backend.now(), deadline, toward, why)
                else:
                    ahead = functools.partial(count_ahead, self._lock, queue, waiter)
                    step = plan_behind(backend.now(), deadline, ahead, why)
                if isinstance(step, Admit):
                    ticket = self._admitted(queue, waiter, rid, limits, step.decision, joined_at)
                    if toward <= ticket.admitted_at:  # woken at (or after) its computed time
                        ticket.computed_at = toward
                    return ticket
                if isinstance(step, Refuse):
                    raise step.error
                toward = step.toward
                yield _Sleep(waiter, step.timeout)
        except BaseException:
            self._abandon(key, queue, waiter, rid if reserved else None)
            raise

    # ------------------------------------------------------------------ internals

    def _queue(self, key: str) -> KeyQueue:
        queue = self._queues.get(key)
        if queue is not None:
            return queue
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = KeyQueue(key, functools.partial(self._on_capacity, key))
                self._backend.add_listener(key, queue.listener)
                self._queues[key] = queue
        return queue

    def _on_capacity(self, key: str) -> None:
        queue = self._queues.get(key)
        if queue is None or not queue.waiters:
            # Nobody to wake (the common case): a waiter joining after this check asks the
            # backend itself, after the change that called us, so it cannot miss it.
            return
        with self._lock:
            queue = self._queues.get(key)
            if queue is not None:
                queue.signal_head()

    def _join(
        self,
        key: str,
        limits: RateLimits,
        queue: KeyQueue,
        waiter: Waiter,
        why: Why,
        now: float,
    ) -> Generator[_Op, Decision | None, None]:
        """Enter the queue, unless the queue ahead already pushes us past the deadline.

        An in-process backend projects under the lock on the live queue (no copy per join);
        one that does I/O projects outside it, on a snapshot, so the lock is never held
        across a round trip.
        """
        if self._backend.in_process:
            with self._lock:
                if queue.waiters:
                    decision = self._backend.project(
                        key, limits, PendingView(queue.waiters), fresh_request(waiter)
                    )
                    ahead = len(queue.waiters)
                    refusal = refusal_at_join(decision, now, waiter.deadline, ahead, why)
                    if refusal is not None:
                        raise refusal.error
                queue.waiters[waiter.ident] = waiter
            return
        with self._lock:
            pending = [w.request for w in queue.waiters.values()]
        if pending:
            projected = yield _Project(key, limits, pending, fresh_request(waiter))
            assert projected is not None
            refusal = refusal_at_join(projected, now, waiter.deadline, len(pending), why)
            if refusal is not None:
                raise refusal.error
        with self._lock:
            queue.waiters[waiter.ident] = waiter

    def _admitted(
        self,
        queue: KeyQueue,
        waiter: Waiter,
        rid: str,
        limits: RateLimits,
        decision: Decision,
        joined_at: float,
    ) -> Ticket:
        with self._lock:
            queue.leave(waiter)
        at = decision.at
        waited = at - joined_at
        return self._hold(
            Ticket(queue.key, rid, waiter.request, at, at, waited, limits, waiter.model)
        )

    def _abandon(self, key: str, queue: KeyQueue, waiter: Waiter, rid: str | None) -> None:
        """Leave the queue (waking the next head if we were it) and return a reservation."""
        with self._lock:
            queue.leave(waiter)
        if rid is not None:
            # Synchronous on purpose: a second cancellation cannot interrupt the give-back.
            self._backend.release(key, rid)
