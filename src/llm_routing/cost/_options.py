"""The checks of `CostTracker`'s arguments, each mistake named by its argument and its fix.

Kept apart from the tracker so its lifecycle reads without a page of argument checks; run once
per tracker, never per call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from llm_routing.catalog import Catalog
from llm_routing.cost.ledger import Ledger

__all__ = ["check_options"]


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def check_options(
    *,
    warn_at: Any,
    catalog: Any,
    strict: Any,
    reserve_output: Any,
    clock: Callable[[], float] | None,
    max_wait: Any,
    hold_lease: Any,
    backend: Any,
) -> None:
    """Raise the `TypeError` or `ValueError` that names the first wrong argument, if any."""
    if not _number(warn_at):
        raise TypeError(f"CostTracker(warn_at=…) must be a number in (0, 1], got {warn_at!r}")
    if not (math.isfinite(warn_at) and 0 < warn_at <= 1):
        raise ValueError(
            "CostTracker(warn_at=…) must be in (0, 1] (the share of a budget at which to "
            f"warn, 0.8 warns at 80%), got {warn_at!r}"
        )
    if catalog is not None and not isinstance(catalog, Catalog):
        raise TypeError(
            f"CostTracker(catalog=…) must be a Catalog or None, got {type(catalog).__name__}"
        )
    if not isinstance(strict, bool):
        raise TypeError(f"CostTracker(strict=…) must be True or False, got {strict!r}")
    if reserve_output is not None and (
        isinstance(reserve_output, bool) or not isinstance(reserve_output, int)
    ):
        raise TypeError(
            "CostTracker(reserve_output=…) must be an int number of tokens or None, "
            f"got {reserve_output!r}"
        )
    if reserve_output is not None and reserve_output < 0:
        raise ValueError(
            f"CostTracker(reserve_output=…) must be >= 0 tokens or None, got {reserve_output}"
        )
    if clock is not None and not callable(clock):
        raise TypeError(
            f"CostTracker(clock=…) must be a callable returning epoch seconds, got {clock!r}"
        )
    if not _number(max_wait):
        raise TypeError(f"CostTracker(max_wait=…) must be a number of seconds, got {max_wait!r}")
    if not (max_wait >= 0 and math.isfinite(max_wait)):
        raise ValueError(
            "CostTracker(max_wait=…) must be a finite number of seconds >= 0 (how long a "
            "call waits for calls in flight to settle; 0 refuses at once), got "
            f"{max_wait!r}"
        )
    if hold_lease is None:
        return
    if not _number(hold_lease):
        raise TypeError(
            f"CostTracker(hold_lease=…) must be a number of seconds, got {hold_lease!r}"
        )
    if not 0 < hold_lease < math.inf:
        raise ValueError(
            f"CostTracker(hold_lease=…) must be a finite number of seconds > 0, got {hold_lease!r}"
        )
    if isinstance(backend, Ledger):
        raise ValueError(
            "CostTracker(hold_lease=…) configures the ledger the tracker builds; you "
            "passed a Ledger, so set it there: MemoryLedger(hold_lease=…) or "
            "RedisLedger(url, hold_lease=…)"
        )
