"""The policy's memory of one key: the window logs, running totals, pacing and in-flight leases.

Plain containers and numbers, owned by ``policy`` (which alone updates them) and copied by
``projection``; backends keep one per key (memory) or rebuild one from Redis (``load``).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_routing.schedule.projection import _Projection

__all__ = ["ModelState"]


class _Entry:
    """One admitted request in the logs; mutated only by settle and release of the live state."""

    __slots__ = ("day_end", "in_day", "inp", "late", "lease", "out", "req", "t")

    def __init__(self, t: float, inp: int, out: int, in_day: bool, day_end: float) -> None:
        self.t = t
        # While in flight: when the slot is freed unless its owner renews it (``expire``).
        self.lease = math.inf
        # How long after ``t`` the provider may have counted it (see ``settle(answered_at=…)``):
        # the entry leaves the minute window at ``t + late + window_s``.
        self.late = 0.0
        self.req = 1
        self.inp = inp
        self.out = out
        self.in_day = in_day
        self.day_end = day_end


_DIMS = ("req", "tok", "inp", "out")


class ModelState:
    """Everything the policy knows about one key: plain containers and numbers.

    ``log`` holds the entries of the minute window in admission order, with running totals
    (``requests``, ``tokens``, ``input_tokens``, ``output_tokens``) over exactly the entries it
    holds; every entry with ``t <= cut`` has been pruned. ``day_log`` is the same for the
    rolling RPD window (kept only when an RPD limit is set). ``synthetic`` holds usage the
    provider reported that we did not see (other processes), as ``(expires_at, amount)``.
    ``epoch_offset`` maps the clock's time to UTC epoch seconds for calendar days.
    ``projection`` caches the simulated queue ahead (see ``project``); the updates below keep
    it in step or drop it.
    """

    __slots__ = (
        "cal_end",
        "cal_requests",
        "cooldown_until",
        "cut",
        "day_cut",
        "day_log",
        "day_requests",
        "epoch_offset",
        "high",
        "inflight",
        "input_tokens",
        "lease_next",
        "log",
        "output_tokens",
        "pace_inp",
        "pace_req",
        "pace_slow",
        "pace_tok",
        "projection",
        "requests",
        "synthetic",
        "synthetic_total",
        "tokens",
        "window_s",
    )

    def __init__(self, epoch_offset: float = 0.0) -> None:
        self.log: deque[_Entry] = deque()
        self.requests = 0
        self.tokens = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cut = -math.inf
        self.day_log: deque[_Entry] = deque()
        self.day_requests = 0
        self.day_cut = -math.inf
        self.cal_end = -math.inf
        self.cal_requests = 0
        self.inflight: dict[str, _Entry] = {}
        self.lease_next = math.inf  # no in-flight lease ends before this (see ``expire``)
        self.cooldown_until = -math.inf
        # Pacing (``RateLimits.smoothing``): the earliest time the next admission may happen,
        # given the requests and tokens admitted so far at the per-second rate, fixed when
        # each admission is recorded (so a decision's time stays exact).
        self.pace_req = -math.inf
        self.pace_slow = 1.0
        self.pace_tok = -math.inf
        self.pace_inp = -math.inf
        self.high = -math.inf
        self.synthetic: dict[str, list[tuple[float, int]]] = {d: [] for d in _DIMS}
        self.synthetic_total: dict[str, int] = dict.fromkeys(_DIMS, 0)
        self.epoch_offset = epoch_offset
        self.projection: _Projection | None = None
        self.window_s = 60.0

    def copy(self) -> ModelState:
        """An independent state to simulate on (entries are shared: projections never mutate)."""
        new = ModelState.__new__(ModelState)
        for name in ModelState.__slots__:
            setattr(new, name, getattr(self, name))
        new.log = self.log.copy()
        new.day_log = self.day_log.copy()
        new.inflight = dict(self.inflight)
        new.synthetic = {d: list(v) for d, v in self.synthetic.items()}
        new.synthetic_total = dict(self.synthetic_total)
        new.projection = None
        return new

    @property
    def in_flight(self) -> int:
        """Requests admitted and neither settled nor released."""
        return len(self.inflight)
