"""The queue-ahead projection: when a request would be admitted after every one queued before it.

Pure, like ``policy``: a simulation on a copy of the state, cached on the live state and kept
in step by the policy's updates, so the joiners of a burst cost O(1) each. What the max-wait
rule does with the answer is ``plan``'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from llm_routing.schedule.limits import Decision, RateLimits, Request
from llm_routing.schedule.policy import _decide, _record
from llm_routing.schedule.state import ModelState, _Entry
from llm_routing.schedule.windows import observe, shift

__all__ = ["project"]


class _Projection:
    """The simulated queue ahead, kept in step with the live state so joiners cost O(1).

    ``state`` is a copy of the live state with every pending request recorded at its
    projected time; ``pending`` holds ``(request, projected entry or None when skipped, time,
    binding)`` in FIFO order. The live updates keep it in step: the head's real admission
    drops it from ``pending`` (its projected entry stays, mapped from its rid), settles and
    releases apply the same change to the copy, and a cooldown or correction drops the
    cache. What is not replayed (pending requests moving earlier when capacity frees, real
    admissions a little after their projected time, time passing the head's projected
    time) is counted in ``changes``; after ``len(pending) // 4`` of them the next projection
    rebuilds, so a short queue is always exact and a long one costs O(1) amortised per join.
    """

    __slots__ = ("candidate", "changes", "limits", "mapped", "pending", "state")

    def __init__(self, state: ModelState, limits: RateLimits) -> None:
        self.state = state
        self.limits = limits
        self.pending: deque[tuple[Request, _Entry | None, float, str | None]] = deque()
        self.mapped: dict[str, _Entry] = {}
        self.changes = 0
        self.candidate: Request | None = None

    def add(self, request: Request, at: float) -> None:
        decision = _decide(self.state, self.limits, at, request, False)
        if decision.never is not None or decision.quota:
            # It will be refused at its turn, taking nothing.
            binding = self.pending[-1][3] if self.pending else None
            self.pending.append((request, None, at, binding))
            return
        entry = _record(self.state, self.limits, decision.at, request)
        binding = decision.binding
        if binding is None and self.pending:
            binding = self.pending[-1][3]  # held only by the queue ahead: what held it
        self.pending.append((request, entry, decision.at, binding))

    def admitted(self, request: Request, rid: str) -> bool:
        """The live state admitted ``request``; False when that is not the projected head."""
        if not self.pending or self.pending[0][0] is not request:
            return False
        entry = self.pending.popleft()[1]
        if entry is None:
            return False
        self.mapped[rid] = entry
        self.changes += 1
        return True

    def shift(self, rid: str, live: _Entry, d_req: int, inp: int, out: int) -> None:
        """Replay a settle (new token counts) or a release (``d_req``, zero tokens)."""
        entry = self.mapped.pop(rid, None)
        if entry is None:
            # Admitted before the copy was made: the copy shares the entry, which the caller
            # updates after this call.
            shift(self.state, live, d_req, inp - live.inp, out - live.out)
        else:
            shift(self.state, entry, d_req, inp - entry.inp, out - entry.out)
            entry.req += d_req
            entry.inp = inp
            entry.out = out
        self.changes += 1


def project(
    state: ModelState, limits: RateLimits, now: float, pending: Sequence[Request], request: Request
) -> Decision:
    """When ``request`` would be admitted if every ``pending`` one (FIFO ahead) went first.

    Each pending request is taken as admitted at its earliest time, with its reservation;
    concurrency is ignored (a slot frees on an event, not at a time) and pending requests
    that could never be admitted are skipped. ``admit`` says whether that time is ``now``.
    The live state is only pruned; the simulation is cached on it (``_Projection``), so the
    joiners of a burst cost O(1) each, relying on ``pending`` only ever growing at its tail
    and holding a distinct object per queued request.
    """
    if not pending:
        return _decide(state, limits, now, request, False)
    now = observe(state, limits, now)
    size = len(pending)
    last = pending[-1]
    cache = state.projection
    if cache is not None:
        if not (cache.limits is limits or cache.limits == limits):
            cache = None
        else:
            if cache.pending and now > cache.pending[0][2]:
                cache.changes += 1
            if size == len(cache.pending) + 1 and last is cache.candidate:
                cache.add(last, cache.pending[-1][2] if cache.pending else now)
            elif size != len(cache.pending) or last is not cache.pending[-1][0]:
                cache = None
            if cache is not None and cache.changes * 4 > size:
                cache = None
    if cache is None:
        cache = _Projection(state.copy(), limits)
        at = now
        for item in pending:
            cache.add(item, at)
            at = cache.pending[-1][2]
        state.projection = cache
    _, _, base, held_by = cache.pending[-1]
    decision = _decide(cache.state, limits, base, request, False)
    usable = decision.never is None and not decision.quota
    cache.candidate = request if usable else None
    binding = decision.binding
    if binding is None and decision.at > now:
        binding = held_by
    return Decision(decision.at <= now, decision.at, binding, decision.never, decision.quota)
