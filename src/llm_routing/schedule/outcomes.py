"""What follows an admission: the ticket's lease, how its call ended, and whom that wakes.

An admitted ticket's in-flight slot is a lease: tied to the ticket's life (``Backend.own``)
or renewed by a thread until it ends. ``settle``/``release`` end a ticket (its lease too),
``cooldown``/``correct`` pass a 429 or the provider's remaining counts to the backend; each
has its async twin, which reaches only the backend's async methods. Then the queue of the key
re-evaluates: its head wakes, and waiters a cooldown makes miss their deadline are refused
now. A base of `admission.Admission`, whose lock, queues and backend it uses.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from llm_routing._lease import LeaseRenewer
from llm_routing.schedule import refusals
from llm_routing.schedule.backend import Backend
from llm_routing.schedule.limits import RateLimitHeaders, RateLimits
from llm_routing.schedule.ticket import Ticket
from llm_routing.schedule.waiters import KeyQueue

__all__: list[str] = []


class _Outcomes:
    """The after-admission half of `Admission`."""

    _backend: Backend
    _lock: threading.Lock
    _queues: dict[str, KeyQueue]
    _leases: LeaseRenewer[Ticket] | None

    def _hold(self, ticket: Ticket) -> Ticket:
        """Keep an admitted ticket's lease alive: tied to the ticket, or renewed by a thread."""
        if self._leases is not None and not self._backend.own(ticket.key, ticket.rid, ticket):
            self._leases.add(ticket.rid, ticket)
            ticket.renewed = True
        return ticket

    def _renew(self, tickets: Sequence[Ticket]) -> None:
        by_key: dict[str, list[str]] = {}
        for ticket in tickets:
            by_key.setdefault(ticket.key, []).append(ticket.rid)
        for key, rids in by_key.items():
            self._backend.renew(key, rids)

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
        if ticket.renewed:  # `_end_lease`, inline: once per call
            self._end_lease(ticket)
        key, limits, rid = ticket.key, ticket.limits, ticket.rid
        self._backend.settle(key, limits, rid, input_tokens, output_tokens, answered_at=answered_at)

    async def asettle(
        self,
        ticket: Ticket,
        input_tokens: int,
        output_tokens: int,
        *,
        answered_at: float | None = None,
    ) -> None:
        """Async ``settle``: the backend's async twin, never a blocking call on the loop."""
        self._end_lease(ticket)
        key, limits, rid = ticket.key, ticket.limits, ticket.rid
        await self._backend.asettle(
            key, limits, rid, input_tokens, output_tokens, answered_at=answered_at
        )

    def release(self, ticket: Ticket, *, keep_request: bool = False) -> None:
        """Give the reservation back (the call was not made, or failed before it counted)."""
        self._end_lease(ticket)
        self._backend.release(ticket.key, ticket.rid, keep_request=keep_request)

    async def arelease(self, ticket: Ticket, *, keep_request: bool = False) -> None:
        """Async ``release``."""
        self._end_lease(ticket)
        await self._backend.arelease(ticket.key, ticket.rid, keep_request=keep_request)

    def _end_lease(self, ticket: Ticket) -> None:
        if ticket.renewed and self._leases is not None:  # a ticket the backend owns: nothing
            self._leases.discard(ticket.rid)

    def cooldown(self, key: str, until: float) -> None:
        """Admit nobody on ``key`` before ``until``; waiters re-evaluate.

        Nobody is admitted earlier for it. Waiters whose deadline comes before ``until`` can
        no longer make it: they raise ``RateLimitExhaustedError`` now, so their fallback runs
        now rather than at the deadline.
        """
        self._backend.cooldown(key, until)
        self._after_change(key, until)

    async def acooldown(self, key: str, until: float) -> None:
        """Async ``cooldown``: the backend's own async twin, never a blocking call on the loop."""
        await self._backend.acooldown(key, until)
        self._after_change(key, until)

    def correct(self, key: str, limits: RateLimits, headers: RateLimitHeaders) -> None:
        """Let the provider's remaining counts tighten our view; the head re-evaluates."""
        self._backend.correct(key, limits, headers)
        self._after_change(key, None)

    async def acorrect(self, key: str, limits: RateLimits, headers: RateLimitHeaders) -> None:
        """Async ``correct``."""
        await self._backend.acorrect(key, limits, headers)
        self._after_change(key, None)

    def _after_change(self, key: str, until: float | None) -> None:
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                return
            if until is None:
                queue.signal_head()
                return
            now = self._backend.now()
            queue.fail_before(until, lambda waiter: refusals.cooled_down(waiter.model, until - now))
