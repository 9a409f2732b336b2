"""An admitted request's ticket: what the scheduler settles or releases after the call.

A value shared by the queue that issues it (``admission``), the reports that end it
(``outcomes``), the lease renewer that holds it weakly and the scheduler that carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_routing.schedule.limits import RateLimits, Request

__all__ = ["Ticket", "check_ticket_args"]


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
    renewed: bool = field(default=False, compare=False, repr=False)
    """Held by the lease renewer (a backend that cannot tie the lease to the ticket)."""


def check_ticket_args(
    key: str, limits: RateLimits, request: Request, deadline: float, model: str
) -> None:
    """Raise the error `Admission.acquire` raises for an argument a ticket cannot be made of."""
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
