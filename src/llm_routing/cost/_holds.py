"""What a call holds against its budgets (`Reservation`) and why a hold was refused (`Refusal`).

Shared by every ledger and by the waiting rule (``cost._wait_rule``); ``cost.ledger``
re-exports them, their public home. `refusal_for` is the one check of a hold against the
settled spend and the holds of calls in flight, as the in-memory ledger applies it (the Redis
script ports it line by line).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from llm_routing.cost.budget import Bucket, first_exceeded

__all__ = ["OpenHold", "Refusal", "Reservation", "refusal_for"]

_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Reservation:
    """Money held for one call in flight, in the buckets its budgets name.

    The ledger renews the hold while this object is alive and unsettled (weakly referenced:
    a call that vanished without settling stops renewing, and its hold expires).
    """

    id: int
    amount: Decimal
    buckets: tuple[Bucket, ...]
    generation: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused: the bucket, its spend, what was asked.

    ``held_only`` is true when the settled spend leaves room for ``requested`` in every
    bucket and only other calls' holds are in the way: waiting for them to settle can help.
    ``retry_in`` is when the earliest of those holds expires unless renewed (seconds), and
    ``waited`` how long `Ledger.reserve_within` waited before giving up; neither takes part in
    equality, since they depend on when the answer was given.
    """

    bucket: Bucket
    spent: Decimal
    reserved: Decimal
    requested: Decimal
    held_only: bool = False
    retry_in: float | None = field(default=None, compare=False)
    waited: float = field(default=0.0, compare=False)


def refusal_for(
    buckets: Sequence[Bucket],
    spent: Callable[[str], Decimal],
    reserved: Callable[[str], Decimal],
    amount: Decimal,
) -> Refusal | None:
    """Why ``amount`` cannot be held now, or ``None`` when it fits every bucket.

    The settled spend is checked first over every bucket: a bucket it alone fills is a hard
    refusal (``held_only`` false) even when another bucket is only held full.
    """
    hard = first_exceeded(buckets, spent, amount)
    if hard is not None:
        return Refusal(hard, spent(hard.key), reserved(hard.key), amount)
    soft = first_exceeded(buckets, lambda key: _CONTEXT.add(spent(key), reserved(key)), amount)
    if soft is not None:
        return Refusal(soft, spent(soft.key), reserved(soft.key), amount, held_only=True)
    return None


class OpenHold:
    """An open hold of the in-memory ledger: what it holds, where, and until when."""

    __slots__ = ("amount", "buckets", "expires")

    def __init__(self, amount: Decimal, buckets: tuple[Bucket, ...], expires: float) -> None:
        self.amount = amount
        self.buckets = buckets
        self.expires = expires
