"""The max-wait rule, pure: given the policy's answer, the time and a deadline, what a waiter does.

``plan`` is the head's step (admit, sleep towards the admissible time, or refuse now because
admission is known to come too late); ``plan_behind`` the step of a waiter behind the head;
``refusal_at_join`` the check a request makes on joining, against the queue ahead of it. No
clock, lock or I/O: ``admission`` runs these steps, in a thread or on an event loop alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llm_routing.schedule import refusals
from llm_routing.schedule.limits import Decision, RateLimits, Request

__all__ = ["Admit", "Refuse", "Sleep", "plan", "plan_behind", "refusal_at_join"]


@dataclass(frozen=True, slots=True)
class Admit:
    """The backend admitted the request: ``decision.at`` is its admission time."""

    decision: Decision


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep ``timeout`` seconds unless woken; ``toward`` is the admissible time slept towards.

    ``toward`` is ``inf`` when the wake-up is an event (a slot freed, the waiter became head),
    not a time the policy computed; a ticket admitted after sleeping towards a time says how
    late the wake-up was (``Ticket.computed_at``).
    """

    timeout: float
    toward: float


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse now, raising ``error``, rather than wait for what cannot come in time."""

    error: Exception


@dataclass(frozen=True, slots=True)
class Why:
    """What a refusal names: the model, its limits and the request (for the message only)."""

    model: str
    limits: RateLimits
    request: Request


def plan(
    decision: Decision, now: float, deadline: float, toward: float, why: Why
) -> Admit | Sleep | Refuse:
    """The head's step after asking the backend: ``decision`` at ``now``, due by ``deadline``.

    ``toward`` is the admissible time the head last slept towards; a concurrency wait keeps
    it, since a slot frees at an event. A quota (the daily limit) past the deadline refuses
    with `QuotaExceededError`, anything else past it with `RateLimitExhaustedError`.
    """
    if decision.admit:
        return Admit(decision)
    if decision.never is not None:
        return Refuse(refusals.too_large(why.model, why.limits, why.request, decision.binding))
    if decision.quota and decision.at > deadline:
        return Refuse(refusals.quota(why.model, why.limits, decision.at - now))
    if decision.binding == "concurrency":
        # A slot frees at an event (a call ends) or, when a lease runs out, at a time: wait
        # for either, up to the deadline.
        if now >= deadline:
            return Refuse(refusals.timed_out(why.model, why.limits, "concurrency"))
        return Sleep(min(deadline, decision.at) - now, toward)
    if decision.at > deadline:
        return Refuse(
            refusals.exhausted(
                why.model, why.limits, decision.binding, decision.at - now, deadline - now
            )
        )
    return Sleep(decision.at - now, decision.at)


def plan_behind(now: float, deadline: float, ahead: Callable[[], int], why: Why) -> Sleep | Refuse:
    """A waiter behind the head sleeps until it becomes head, at most until its deadline.

    ``ahead`` counts the waiters before it, called only for the refusal's message (a walk of
    the queue that a waiter which only goes back to sleep should not pay for).
    """
    if now >= deadline:
        return Refuse(refusals.timed_out(why.model, why.limits, "queue", ahead()))
    return Sleep(deadline - now, float("inf"))


def refusal_at_join(
    decision: Decision, now: float, deadline: float, ahead: int, why: Why
) -> Refuse | None:
    """On joining behind ``ahead`` requests: refuse now if the queue pushes us past ``deadline``.

    ``decision`` is the projection of the queue ahead; None when admission can still come in time.
    """
    if decision.never is not None:
        return Refuse(refusals.too_large(why.model, why.limits, why.request, decision.binding))
    if decision.at > deadline:
        if decision.quota:
            return Refuse(refusals.quota(why.model, why.limits, decision.at - now))
        return Refuse(
            refusals.exhausted(
                why.model, why.limits, decision.binding, decision.at - now, deadline - now, ahead
            )
        )
    return None
