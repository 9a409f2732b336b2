"""The ledger a tracker's ``backend=`` names: this process, a Redis URL, or a given `Ledger`.

Kept apart so the tracker imports Redis only when a ``redis://`` URL asks for it.
"""

from __future__ import annotations

from typing import Any

from llm_routing._urls import scheme_of
from llm_routing.cost.ledger import Ledger
from llm_routing.cost.memory import MemoryLedger

__all__ = ["ledger_for"]


def ledger_for(backend: Any, max_records: int | None, hold_lease: float) -> Ledger:
    """``None``/``"memory"``: a `MemoryLedger`; a ``redis://`` URL: a ``RedisLedger``."""
    if backend is None or backend == "memory":
        return MemoryLedger(max_records, hold_lease=hold_lease)
    if isinstance(backend, Ledger):
        return backend
    if isinstance(backend, str) and backend.startswith(("redis://", "rediss://", "unix://")):
        try:
            from llm_routing.cost.redis import RedisLedger
        except ImportError:
            raise ImportError(
                "CostTracker(backend='redis://…') needs the redis extra: "
                "pip install 'llm-routing[redis]'"
            ) from None
        return RedisLedger(backend, max_records=max_records, hold_lease=hold_lease)
    raise TypeError(
        "CostTracker(backend=…) must be None or 'memory' (in-process), a 'redis://…' URL "
        f"(a budget shared by processes) or a llm_routing.cost.Ledger; got {scheme_of(backend)}"
    )
