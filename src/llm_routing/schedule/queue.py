"""FIFO admission per key: sync threads and async tasks of any event loop share one queue.

Owns waiting (event-driven, never polling), the max-wait rule, cancellation and the errors a
refused request raises. The limits themselves are the policy's; the state is the backend's.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from llm_routing._lease import LeaseRenewer
from llm_routing.errors import QuotaExceededError, RateLimitExhaustedError
from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import Clock, SystemClock
from llm_routing.schedule.limits import Decision, RateLimitHeaders, RateLimits, Request

__all__ = ["Admission", "Ticket"]


@dataclass(slots=True, weakref_slot=True)  # weakly held by the lease renewer
class Ticket:
    """An admitted request: what to settle or release after the call.

    ``computed_at`` is when the policy said the request became admissible, so
    ``admitted_at - computed_at`` is how late the waiter woke up; ``waited_s`` is the whole
    time from joining the queue to admission. Times are on the backend's clock.
    """

    key: str
    rid: str
    request: Request
    admitted_at: float
    computed_at: float
    waited_s: float
    limits: RateLimits = field(default_factory=RateLimits)
    model: str = ""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Waiter:
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


class _Pending(Sequence[Request]):
    """The requests queued on a key, as a live read-only view (no copy per join)."""

    __slots__ = ("_waiters",)

    def __init__(self, waiters: OrderedDict[int, _Waiter]) -> None:
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


class _Queue:
    __slots__ = ("key", "listener", "waiters")

    def __init__(self, key: str, listener: Callable[[], None]) -> None:
        self.key = key
        self.waiters: OrderedDict[int, _Waiter] = OrderedDict()
        self.listener = listener

    def head(self) -> _Waiter | None:
        if not self.waiters:
            return None
        return self.waiters[next(iter(self.waiters))]


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _limit_text(binding: str | None, limits: RateLimits) -> str:
    """The binding limit with its numbers, as an error message names it."""
    window = f"{limits.window_s:g}s window"
    headroom = f"{limits.token_headroom:.0%} headroom"
    if binding == "rpm" and limits.rpm is not None:
        return (
            f"RPM {limits.rpm:,} ({limits.effective_rpm:,} requests per {window} after a "
            f"margin of {limits.request_margin})"
        )
    if binding == "tpm" and limits.tpm is not None:
        return f"TPM {limits.tpm:,} ({limits.effective_tpm:,} tokens per {window} after {headroom})"
    if binding == "itpm" and limits.itpm is not None:
        return (
            f"ITPM {limits.itpm:,} ({limits.effective_itpm:,} input tokens per {window} after "
            f"{headroom})"
        )
    if binding == "otpm" and limits.otpm is not None:
        return (
            f"OTPM {limits.otpm:,} ({limits.effective_otpm:,} output tokens per {window} after "
            f"{headroom})"
        )
    if binding == "rpd" and limits.rpd is not None:
        mode = "rolling 24 h" if limits.day == "rolling" else "calendar day"
        return f"RPD {limits.rpd:,} ({mode})"
    if binding == "concurrency":
        return f"max_concurrency {limits.max_concurrency}"
    per_second = limits.window_s
    if binding == "pace_rpm" and limits.effective_rpm is not None:
        return (
            f"pacing to the provider's per-second rate (one request every "
            f"{per_second / limits.effective_rpm:.3g}s)"
        )
    if binding == "pace_tpm" and limits.effective_tpm:
        return (
            f"pacing to the provider's per-second rate "
            f"({limits.effective_tpm / per_second:,.0f} tokens/s)"
        )
    if binding == "pace_itpm" and limits.effective_itpm:
        return (
            f"pacing to the provider's per-second rate "
            f"({limits.effective_itpm / per_second:,.0f} input tokens/s)"
        )
    if binding == "cooldown":
        return "the cooldown after a provider rate-limit error"
    return str(binding)


def _too_large(model: str, limits: RateLimits, request: Request, binding: str | None) -> Exception:
    size = {
        "tpm": f"{request.tokens:,} tokens ({request.input_tokens:,} input + "
        f"{request.output_tokens:,} output)",
        "itpm": f"{request.input_tokens:,} input tokens",
        "otpm": f"{request.output_tokens:,} output tokens",
    }.get(binding or "", f"{request.tokens:,} tokens")
    message = (
        f"{model}: this request needs {size}, more than {_limit_text(binding, limits)} admits, "
        "so it can never be scheduled. Shorten the input, lower max_tokens, or route it to a "
        "model with a higher limit."
    )
    return RateLimitExhaustedError(
        message, model=model, wait_s=None, reason="request larger than the limit"
    )


def _quota(model: str, limits: RateLimits, wait_s: float) -> Exception:
    message = (
        f"{model}: the daily request limit is used up ({_limit_text('rpd', limits)}); the next "
        f"request slot frees in {_fmt_s(wait_s)}. Not waiting: add a fallback model, or retry "
        "after the daily reset."
    )
    return QuotaExceededError(message, model=model, reason="rpd")


def _exhausted(
    model: str,
    limits: RateLimits,
    binding: str | None,
    wait_s: float,
    left_s: float,
    ahead: int = 0,
) -> Exception:
    """Admission is known to come after the deadline: refuse now instead of waiting."""
    queued = f" with {ahead:,} request(s) queued ahead" if ahead else ""
    return RateLimitExhaustedError(
        f"{model}: {_limit_text(binding, limits)} would hold this request for "
        f"{_fmt_s(wait_s)}{queued}, past its max_wait ({max(0.0, left_s):.1f}s left); falling "
        "back instead of waiting. Add a fallback model, raise max_wait, or lower the request "
        "rate.",
        model=model,
        wait_s=wait_s,
        reason=binding or "rate limited",
    )


def _timed_out(model: str, limits: RateLimits, reason: str, ahead: int = 0) -> Exception:
    """The deadline came while waiting for something without a known time."""
    if reason == "concurrency":
        what = f"all {limits.max_concurrency} concurrent slots (max_concurrency) stayed busy"
    else:
        what = f"{ahead:,} request(s) were still queued ahead of this one"
    return RateLimitExhaustedError(
        f"{model}: {what} when this request's max_wait ran out; falling back instead of "
        "waiting longer. Add a fallback model, raise max_wait, or lower the request rate.",
        model=model,
        wait_s=None,
        reason=reason,
    )


def _cooled_down(model: str, wait_s: float) -> Exception:
    return RateLimitExhaustedError(
        f"{model}: a provider rate-limit cooldown holds every request for {_fmt_s(wait_s)}, "
        "past this request's max_wait; falling back instead of waiting. Add a fallback model "
        "or raise max_wait.",
        model=model,
        wait_s=wait_s,
        reason="cooldown",
    )


class Admission:
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
        self._queues: dict[str, _Queue] = {}
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

    # ------------------------------------------------------------------ leases

    def _renew(self, tickets: Sequence[Ticket]) -> None:
        by_key: dict[str, list[str]] = {}
        for ticket in tickets:
            by_key.setdefault(ticket.key, []).append(ticket.rid)
        for key, rids in by_key.items():
            self._backend.renew(key, rids)

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
        _check_args(key, limits, request, deadline, model)
        backend = self._backend
        queue = self._queue(key)
        rid = self._prefix + str(next(self._ids))
        waiter = _Waiter(next(self._ids), request, deadline, model, None)
        joined_at = backend.now()
        reserved = False
        last_at = math.inf  # the admissible time the head last slept towards
        try:
            with self._lock:
                self._join(key, limits, queue, waiter, model, joined_at)
            while True:
                with self._lock:
                    head = self._check_turn(queue, waiter)
                if head:
                    reserved = True
                    decision = backend.try_acquire(key, limits, waiter.request, rid)
                    if decision.admit:
                        ticket = self._admitted(queue, waiter, rid, limits, decision, joined_at)
                        if last_at <= ticket.admitted_at:  # woken at (or after) its computed time
                            ticket.computed_at = last_at
                        reserved = False
                        return ticket
                    reserved = False
                    timeout, last_at = self._plan(
                        decision, limits, request, deadline, model, last_at
                    )
                else:
                    timeout = self._queued_timeout(queue, waiter, limits, model)
                with self._lock:
                    if waiter.signalled:
                        continue
                    event = waiter.event
                    if event is None:
                        event = waiter.event = threading.Event()
                    else:
                        event.clear()
                self._clock.wait(event, timeout)
        except BaseException:
            self._abandon(key, queue, waiter, rid if reserved else None)
            raise

    async def aacquire(
        self, key: str, limits: RateLimits, request: Request, *, deadline: float, model: str
    ) -> Ticket:
        """Async ``acquire``: the same queue, so async tasks and threads share FIFO order.

        Cancelling the task leaves the queue (and returns a reservation made meanwhile).
        """
        _check_args(key, limits, request, deadline, model)
        loop = asyncio.get_running_loop()
        backend = self._backend
        in_process = backend.in_process
        queue = self._queue(key)
        rid = self._prefix + str(next(self._ids))
        waiter = _Waiter(next(self._ids), request, deadline, model, loop)
        joined_at = backend.now()
        reserved = False
        last_at = math.inf  # the admissible time the head last slept towards
        try:
            if in_process:
                with self._lock:
                    self._join(key, limits, queue, waiter, model, joined_at)
            else:
                await self._ajoin(key, limits, queue, waiter, model, joined_at)
            while True:
                with self._lock:
                    head = self._check_turn(queue, waiter)
                if head:
                    reserved = True
                    if in_process:
                        decision = backend.try_acquire(key, limits, waiter.request, rid)
                    else:
                        decision = await backend.atry_acquire(key, limits, waiter.request, rid)
                    if decision.admit:
                        ticket = self._admitted(queue, waiter, rid, limits, decision, joined_at)
                        if last_at <= ticket.admitted_at:  # woken at (or after) its computed time
                            ticket.computed_at = last_at
                        reserved = False
                        return ticket
                    reserved = False
                    timeout, last_at = self._plan(
                        decision, limits, request, deadline, model, last_at
                    )
                else:
                    timeout = self._queued_timeout(queue, waiter, limits, model)
                with self._lock:
                    if waiter.signalled:
                        continue
                    future = waiter.future = loop.create_future()
                await self._clock.await_(future, timeout)
        except BaseException:
            self._abandon(key, queue, waiter, rid if reserved else None)
            raise

    # ------------------------------------------------------------------ after the call

    def settle(
        self,
        ticket: Ticket,
        input_tokens: int,
        output_tokens: int,
        *,
        answered_at: float | None = None,
    ) -> None:
        """Replace the reservation with the real usage (wakes the queue when tokens freed).

        ``answered_at`` keeps the request counted from when its answer came (see
        `policy.settle`).
        """
        self._end_lease(ticket)
        self._backend.settle(
            ticket.key,
            ticket.limits,
            ticket.rid,
            input_tokens,
            output_tokens,
            answered_at=answered_at,
        )

    def _end_lease(self, ticket: Ticket) -> None:
        if self._leases is not None:
            self._leases.discard(ticket.rid)

    async def asettle(
        self,
        ticket: Ticket,
        input_tokens: int,
        output_tokens: int,
        *,
        answered_at: float | None = None,
    ) -> None:
        """Async ``settle``."""
        if self._backend.in_process:
            self.settle(ticket, input_tokens, output_tokens, answered_at=answered_at)
        else:
            self._end_lease(ticket)
            await self._backend.asettle(
                ticket.key,
                ticket.limits,
                ticket.rid,
                input_tokens,
                output_tokens,
                answered_at=answered_at,
            )

    def release(self, ticket: Ticket, *, keep_request: bool = False) -> None:
        """Give the reservation back (the call was not made, or failed before it counted)."""
        self._end_lease(ticket)
        self._backend.release(ticket.key, ticket.rid, keep_request=keep_request)

    async def arelease(self, ticket: Ticket, *, keep_request: bool = False) -> None:
        """Async ``release``."""
        if self._backend.in_process:
            self.release(ticket, keep_request=keep_request)
        else:
            self._end_lease(ticket)
            await self._backend.arelease(ticket.key, ticket.rid, keep_request=keep_request)

    def cooldown(self, key: str, until: float) -> None:
        """Admit nobody on ``key`` before ``until``; waiters re-evaluate.

        Nobody is admitted earlier for it. Waiters whose deadline comes before ``until`` can
        no longer make it: they raise ``RateLimitExhaustedError`` now, so their fallback runs
        now rather than at the deadline.
        """
        self._backend.cooldown(key, until)
        self._after_change(key, until)

    def correct(
        self,
        key: str,
        limits: RateLimits,
        headers: RateLimitHeaders,
    ) -> None:
        """Let the provider's remaining counts tighten our view; the head re-evaluates."""
        self._backend.correct(
            key,
            limits,
            headers,
        )
        self._after_change(key, None)

    # ------------------------------------------------------------------ internals

    def _queue(self, key: str) -> _Queue:
        queue = self._queues.get(key)
        if queue is not None:
            return queue
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = _Queue(key, functools.partial(self._on_capacity, key))
                self._backend.add_listener(key, queue.listener)
                self._queues[key] = queue
        return queue

    def _on_capacity(self, key: str) -> None:
        with self._lock:
            queue = self._queues.get(key)
            if queue is not None:
                self._signal_head(queue)

    @staticmethod
    def _signal_head(queue: _Queue) -> None:
        """Wake the head (under the lock); waiters whose event loop closed are dropped."""
        while queue.waiters:
            ident = next(iter(queue.waiters))
            if queue.waiters[ident].signal():
                return
            del queue.waiters[ident]

    def _join(
        self,
        key: str,
        limits: RateLimits,
        queue: _Queue,
        waiter: _Waiter,
        model: str,
        now: float,
    ) -> None:
        """Under the lock: refuse at once if the queue ahead pushes us past the deadline."""
        if queue.waiters:
            # Its own object: the projection cache identifies the queue by its last request.
            waiter.request = Request(waiter.request.input_tokens, waiter.request.output_tokens)
            decision = self._backend.project(key, limits, _Pending(queue.waiters), waiter.request)
            self._refuse_at_join(decision, limits, waiter, model, now, len(queue.waiters))
        queue.waiters[waiter.ident] = waiter

    async def _ajoin(
        self,
        key: str,
        limits: RateLimits,
        queue: _Queue,
        waiter: _Waiter,
        model: str,
        now: float,
    ) -> None:
        """``_join`` for a backend that does I/O: project outside the lock, on a snapshot."""
        with self._lock:
            pending = [w.request for w in queue.waiters.values()]
        if pending:
            waiter.request = Request(waiter.request.input_tokens, waiter.request.output_tokens)
            decision = await self._backend.aproject(key, limits, pending, waiter.request)
            self._refuse_at_join(decision, limits, waiter, model, now, len(pending))
        with self._lock:
            queue.waiters[waiter.ident] = waiter

    def _refuse_at_join(
        self,
        decision: Decision,
        limits: RateLimits,
        waiter: _Waiter,
        model: str,
        now: float,
        ahead: int,
    ) -> None:
        if decision.never is not None:
            raise _too_large(model, limits, waiter.request, decision.binding)
        if decision.at > waiter.deadline:
            if decision.quota:
                raise _quota(model, limits, decision.at - now)
            raise _exhausted(
                model, limits, decision.binding, decision.at - now, waiter.deadline - now, ahead
            )

    @staticmethod
    def _check_turn(queue: _Queue, waiter: _Waiter) -> bool:
        """Under the lock: raise a failure set by ``cooldown``; True when ``waiter`` is head."""
        if waiter.failure is not None:
            raise waiter.failure
        waiter.signalled = False
        return queue.head() is waiter

    def _admitted(
        self,
        queue: _Queue,
        waiter: _Waiter,
        rid: str,
        limits: RateLimits,
        decision: Decision,
        joined_at: float,
    ) -> Ticket:
        with self._lock:
            was_head = queue.head() is waiter
            queue.waiters.pop(waiter.ident, None)
            if was_head:
                self._signal_head(queue)
        at = decision.at
        waited = at - joined_at
        ticket = Ticket(queue.key, rid, waiter.request, at, at, waited, limits, waiter.model)
        if self._leases is not None and not self._backend.own(queue.key, rid, ticket):
            self._leases.add(rid, ticket)
        return ticket

    def _plan(
        self,
        decision: Decision,
        limits: RateLimits,
        request: Request,
        deadline: float,
        model: str,
        last_at: float,
    ) -> tuple[float, float]:
        """How long the head sleeps (and the admissible time it sleeps towards), or raise."""
        if decision.never is not None:
            raise _too_large(model, limits, request, decision.binding)
        now = self._backend.now()
        if decision.quota and decision.at > deadline:
            raise _quota(model, limits, decision.at - now)
        if decision.binding == "concurrency":
            # A slot frees at an event (a call ends) or, when a lease runs out, at a time:
            # wait for either, up to the deadline.
            if now >= deadline:
                raise _timed_out(model, limits, "concurrency")
            return min(deadline, decision.at) - now, last_at
        if decision.at > deadline:
            raise _exhausted(model, limits, decision.binding, decision.at - now, deadline - now)
        return decision.at - now, decision.at

    def _queued_timeout(
        self, queue: _Queue, waiter: _Waiter, limits: RateLimits, model: str
    ) -> float:
        """A waiter behind the head sleeps until it becomes head, at most until its deadline."""
        now = self._backend.now()
        if now >= waiter.deadline:
            with self._lock:
                ahead = 0
                for other in queue.waiters.values():
                    if other is waiter:
                        break
                    ahead += 1
            raise _timed_out(model, limits, "queue", ahead)
        return waiter.deadline - now

    def _abandon(self, key: str, queue: _Queue, waiter: _Waiter, rid: str | None) -> None:
        """Leave the queue (waking the next head if we were it) and return a reservation."""
        with self._lock:
            was_head = queue.head() is waiter
            if queue.waiters.pop(waiter.ident, None) is not None and was_head:
                self._signal_head(queue)
        if rid is not None:
            # Synchronous on purpose: a second cancellation cannot interrupt the give-back.
            self._backend.release(key, rid)

    def _after_change(self, key: str, until: float | None) -> None:
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                return
            if until is not None:
                now = self._backend.now()
                for ident, waiter in list(queue.waiters.items()):
                    if waiter.deadline < until:
                        waiter.failure = _cooled_down(waiter.model, until - now)
                        del queue.waiters[ident]
                        waiter.signal()
            self._signal_head(queue)


def _check_args(
    key: str, limits: RateLimits, request: Request, deadline: float, model: str
) -> None:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str (a model, or model + API key), got {key!r}")
    if not isinstance(limits, RateLimits):
        raise TypeError(f"limits must be a RateLimits, got {type(limits).__name__}")
    if not isinstance(request, Request):
        raise TypeError(f"request must be a Request(input_tokens, output_tokens), got {request!r}")
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline != deadline:
        raise TypeError(f"deadline must be a time on the backend clock (a float), got {deadline!r}")
    if not isinstance(model, str):
        raise TypeError(f"model must be a str naming the model for error messages, got {model!r}")
