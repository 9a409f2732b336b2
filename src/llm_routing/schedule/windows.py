"""The sliding windows of one model's state: pruning, departures, and what they hold.

The one predicate every module of the policy shares: an entry recorded at time ``t`` counts at
time ``x`` iff ``x < t + window_s``, i.e. ``t`` lies in the window ``(x - window_s, x]``; it
stops counting at exactly ``t + window_s``. Pure like the rest of the policy (no clock, no
lock, no I/O). Kept apart from ``policy`` (decisions) and ``settlement`` (updates after an
admission) because both, and the ``projection``, read the windows through these functions.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from typing import Any

from llm_routing.schedule.limits import DAY_S, RateLimits
from llm_routing.schedule.state import ModelState, _Entry

__all__ = ["day_end", "earliest", "observe", "shift", "snapshot"]


def observe(state: ModelState, limits: RateLimits, now: float) -> float:
    """Clamp ``now`` to be monotone for this state, and prune what left the windows."""
    if now != now:  # NaN would silently disable every comparison below
        raise ValueError("now must be a number of seconds, got nan")
    if now < state.high:
        now = state.high
    state.high = now
    window = limits.window_s
    state.window_s = window
    log = state.log
    # Entries leave in admission order; one answered late holds those behind it a little
    # longer, which only ever over-counts.
    while log and log[0].t + log[0].late + window <= now:
        entry = log.popleft()
        state.requests -= entry.req
        state.input_tokens -= entry.inp
        state.output_tokens -= entry.out
        state.tokens -= entry.inp + entry.out
        state.cut = entry.t
    day_log = state.day_log
    while day_log and day_log[0].t + DAY_S <= now:
        entry = day_log.popleft()
        state.day_requests -= entry.req
        state.day_cut = entry.t
    synthetic = state.synthetic
    # Usage the provider reported is rare: four lookups tell there is none, without a loop.
    if not (synthetic["req"] or synthetic["tok"] or synthetic["inp"] or synthetic["out"]):
        return now
    for dim, items in synthetic.items():
        if items and items[0][0] <= now:
            keep = 0
            while keep < len(items) and items[keep][0] <= now:
                state.synthetic_total[dim] -= items[keep][1]
                keep += 1
            del items[:keep]
    return now


def earliest(
    now: float,
    need: int,
    leaving: Iterable[tuple[float, int]],
    synthetic: list[tuple[float, int]],
) -> float:
    """First time >= now by which ``need`` units have left the window.

    Usage never grows after ``now`` (nothing new is admitted in the meantime), so the walk
    stops at the first departure that frees enough, and costs only what must leave.
    """
    merged: Iterator[tuple[float, int]] = (
        heapq.merge(leaving, synthetic, key=lambda item: item[0]) if synthetic else iter(leaving)
    )
    freed = 0
    latest = now
    for leaves_at, units in merged:
        # Late-answered entries make departures only nearly sorted: the units counted so far
        # have all left by the latest of their times, never earlier.
        latest = max(latest, leaves_at)
        freed += units
        if freed >= need:
            return latest
    return math.inf  # only when the request exceeds the limit, which callers rule out first


def day_end(state: ModelState, limits: RateLimits, now: float) -> float:
    """When the calendar day containing ``now`` ends, on the clock's time scale."""
    shifted = now + state.epoch_offset - limits.day_start_utc_s
    end = (math.floor(shifted / DAY_S) + 1) * DAY_S + limits.day_start_utc_s - state.epoch_offset
    return end if end > now else end + DAY_S  # rounding at the boundary must not stall


def shift(state: ModelState, entry: _Entry, d_req: int, d_in: int, d_out: int) -> bool:
    """Apply a change of ``entry``'s counts to the totals of ``state`` that include it.

    ``entry`` must be (or have been) in ``state.log``; True when it still counts there.
    """
    counted = entry.t > state.cut
    if counted:
        state.requests += d_req
        state.input_tokens += d_in
        state.output_tokens += d_out
        state.tokens += d_in + d_out
    if d_req:
        if entry.in_day and entry.t > state.day_cut:
            state.day_requests += d_req
        if entry.day_end == state.cal_end:
            state.cal_requests += d_req
    return counted


def snapshot(state: ModelState, now: float) -> dict[str, Any]:
    """What ``state`` holds at ``now``, for stats and debugging.

    Usage in the windows (ours plus what the provider reported), requests today, the cooldown
    end (``None`` when over) and the in-flight count.
    """
    now = observe(state, RateLimits(window_s=state.window_s), now)
    synthetic = state.synthetic_total
    if state.day_log:
        today = state.day_requests
    else:
        today = state.cal_requests if now < state.cal_end else 0
    return {
        "requests_in_window": state.requests + synthetic["req"],
        "tokens_in_window": state.tokens + synthetic["tok"],
        "input_tokens_in_window": state.input_tokens + synthetic["inp"],
        "output_tokens_in_window": state.output_tokens + synthetic["out"],
        "requests_today": today,
        "cooldown_until": state.cooldown_until if state.cooldown_until > now else None,
        "in_flight": len(state.inflight),
        "window_s": state.window_s,
    }
