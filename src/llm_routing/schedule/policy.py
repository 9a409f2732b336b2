"""The scheduling policy: pure functions of (state, limits, time, request) -> decision and updates.

Owns the sliding-window arithmetic (RPM, TPM, ITPM/OTPM, RPD, concurrency, cooldown, smoothing).
It reads no clock, takes no lock, never sleeps and logs nothing: backends and the queue do that.
The values it reads and answers are ``limits``'s, the state it updates ``state``'s, and the
queue-ahead projection ``projection``'s (all re-exported here, where they used to live).

Windows are exact sliding logs. An entry recorded at time ``t`` counts at time ``x`` iff
``x < t + window_s``, i.e. ``t`` lies in the window ``(x - window_s, x]``; it stops counting at
exactly ``t + window_s``. Every comparison in this module uses that one predicate.

Why one module of this size: every function below reads or writes the same few fields of
``ModelState`` under that one predicate, and the Lua script (``schedule.redis.script``) ports
them line by line; kept together, the port is checked against one file.
"""

from __future__ import annotations

import heapq
import math
from bisect import insort
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from llm_routing.schedule.limits import (
    DAY_S,
    NEVER_TOO_LARGE,
    Decision,
    RateLimitHeaders,
    RateLimits,
    Request,
)
from llm_routing.schedule.state import ModelState, _Entry

if TYPE_CHECKING:
    from llm_routing.schedule.projection import project

__all__ = [
    "DAY_S",
    "NEVER_TOO_LARGE",
    "Decision",
    "ModelState",
    "RateLimitHeaders",
    "RateLimits",
    "Request",
    "admit",
    "cooldown",
    "correct",
    "decide",
    "expire",
    "project",
    "release",
    "renew",
    "settle",
    "snapshot",
]

PACE_SLOWDOWN = 1.5
"""How much a new episode of provider 429s stretches the pacing interval."""

PACE_SLOW_MAX = 4.0
"""The most the pacing interval is ever stretched."""

PACE_RECOVERY = 0.99
"""Per paced admission, the stretch decays by this factor back to 1 (about 40 for 1.5x)."""

PACE_TOKEN_CREDIT = 0.5
"""The share of the provider's per-second token bucket that paced admissions may go early into."""

# --------------------------------------------------------------------------- internals


def _observe(state: ModelState, limits: RateLimits, now: float) -> float:
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
    for dim, items in state.synthetic.items():
        if items and items[0][0] <= now:
            keep = 0
            while keep < len(items) and items[keep][0] <= now:
                state.synthetic_total[dim] -= items[keep][1]
                keep += 1
            del items[:keep]
    return now


def _earliest(
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


def _too_large(limits: RateLimits, request: Request) -> str | None:
    tpm = limits.effective_tpm
    if tpm is not None and request.tokens > tpm:
        return "tpm"
    itpm = limits.effective_itpm
    if itpm is not None and request.input_tokens > itpm:
        return "itpm"
    otpm = limits.effective_otpm
    if otpm is not None and request.output_tokens > otpm:
        return "otpm"
    return None


def _day_end(state: ModelState, limits: RateLimits, now: float) -> float:
    """When the calendar day containing ``now`` ends, on the clock's time scale."""
    shifted = now + state.epoch_offset - limits.day_start_utc_s
    end = (math.floor(shifted / DAY_S) + 1) * DAY_S + limits.day_start_utc_s - state.epoch_offset
    return end if end > now else end + DAY_S  # rounding at the boundary must not stall


def _earliest_day(state: ModelState, limits: RateLimits, rpd: int, now: float) -> float:
    if limits.day == "calendar":
        used = state.cal_requests if now < state.cal_end else 0
        return now if used + 1 <= rpd else state.cal_end
    need = state.day_requests + 1 - rpd
    if need <= 0:
        return now
    return _earliest(now, need, ((e.t + DAY_S, e.req) for e in state.day_log), [])


def _decide(
    state: ModelState, limits: RateLimits, now: float, request: Request, concurrency: bool
) -> Decision:
    too_large = _too_large(limits, request)
    if too_large is not None:
        return Decision(False, math.inf, too_large, NEVER_TOO_LARGE, False)
    now = _observe(state, limits, now)
    window = limits.window_s
    log = state.log
    synthetic = state.synthetic
    synthetic_total = state.synthetic_total
    at = now
    binding: str | None = None
    # Order matters only for ties: the daily limit is reported first, so quota wins.
    if limits.rpd is not None:
        when = _earliest_day(state, limits, limits.rpd, now)
        if when > at:
            at, binding = when, "rpd"
    if state.cooldown_until > at:
        at, binding = state.cooldown_until, "cooldown"
    rpm = limits.effective_rpm
    if rpm is not None:
        need = state.requests + synthetic_total["req"] + 1 - rpm
        if need > 0:
            when = _earliest(
                now, need, ((e.t + e.late + window, e.req) for e in log), synthetic["req"]
            )
            if when > at:
                at, binding = when, "rpm"
    tpm = limits.effective_tpm
    if tpm is not None:
        need = state.tokens + synthetic_total["tok"] + request.tokens - tpm
        if need > 0:
            when = _earliest(
                now, need, ((e.t + e.late + window, e.inp + e.out) for e in log), synthetic["tok"]
            )
            if when > at:
                at, binding = when, "tpm"
    itpm = limits.effective_itpm
    if itpm is not None:
        need = state.input_tokens + synthetic_total["inp"] + request.input_tokens - itpm
        if need > 0:
            when = _earliest(
                now, need, ((e.t + e.late + window, e.inp) for e in log), synthetic["inp"]
            )
            if when > at:
                at, binding = when, "itpm"
    otpm = limits.effective_otpm
    if otpm is not None:
        need = state.output_tokens + synthetic_total["out"] + request.output_tokens - otpm
        if need > 0:
            when = _earliest(
                now, need, ((e.t + e.late + window, e.out) for e in log), synthetic["out"]
            )
            if when > at:
                at, binding = when, "otpm"
    if limits.smoothing:
        if rpm is not None and state.pace_req > at:
            at, binding = state.pace_req, "pace_rpm"
        if tpm is not None and limits.tpm is not None:
            when = state.pace_tok - _token_credit(limits.tpm, request.tokens, limits.window_s)
            if when > at:
                at, binding = when, "pace_tpm"
        if itpm is not None and limits.itpm is not None:
            credit = _token_credit(limits.itpm, request.input_tokens, limits.window_s)
            when = state.pace_inp - credit
            if when > at:
                at, binding = when, "pace_itpm"
    if at > now:
        return Decision(False, at, binding, None, binding == "rpd")
    if (
        concurrency
        and limits.max_concurrency is not None
        and len(state.inflight) >= limits.max_concurrency
    ):
        # A slot frees when a call ends (an event: listeners wake the queue) or when a lease
        # runs out (a time: its owner died), whichever comes first.
        freed_at = state.lease_next if state.lease_next > now else math.inf
        return Decision(False, freed_at, "concurrency", None, False)
    return Decision(True, now, None, None, False)


def _token_credit(limit: int, cost: int, window_s: float) -> float:
    """How early a paced token admission of ``cost`` may go: a tolerance, in seconds.

    A provider that quantizes a per-minute token limit keeps a per-second bucket of one
    second's share (``limit / window`` tokens, refilled at that rate). Strict pacing (no
    tolerance) loses every late wake-up for good: with 4 processes sharing one Redis, about
    12 % of the limit. Pacing ``pace_tok`` is the bucket's deficit as a time (GCRA): a request
    may go ``tolerance`` before it, as long as the deficit then left (at most ``tolerance`` of
    refill) and the request together fit the bucket. Only ``PACE_TOKEN_CREDIT`` of that room is
    used, for arrivals the network bunches; a request of a whole second's share gets none.
    """
    rate = limit / window_s
    return PACE_TOKEN_CREDIT * max(0.0, max(1.0, rate) - cost) / rate


def _record(state: ModelState, limits: RateLimits, now: float, request: Request) -> _Entry:
    now = _observe(state, limits, now)
    in_day = limits.rpd is not None and limits.day == "rolling"
    day_end = -math.inf
    if limits.rpd is not None and limits.day == "calendar":
        if not now < state.cal_end:
            state.cal_end = _day_end(state, limits, now)
            state.cal_requests = 0
        state.cal_requests += 1
        day_end = state.cal_end
    entry = _Entry(now, request.input_tokens, request.output_tokens, in_day, day_end)
    state.log.append(entry)
    state.requests += 1
    state.input_tokens += entry.inp
    state.output_tokens += entry.out
    state.tokens += entry.inp + entry.out
    if in_day:
        state.day_log.append(entry)
        state.day_requests += 1
    if limits.smoothing:
        # Paced at what is left of the limit once others' usage (``correct``) is taken out.
        # ``slow`` stretches every interval after unexpected 429s (see ``cooldown``).
        synthetic = state.synthetic_total
        slow = state.pace_slow
        window = limits.window_s * slow
        rpm = limits.effective_rpm
        if rpm is not None and limits.rpm is not None:
            interval = window / max(1, rpm - synthetic["req"])
            # An admission a little late (a wake-up after its time) is paced from when it was
            # due, not from when it ran, or every late wake-up would be lost for good: up to
            # the slack our margin leaves within one second of the provider's exact spacing.
            exact = limits.window_s / limits.rpm
            catch_up = max(0.0, interval - exact) * max(1.0, 1.0 / exact)
            late = now - state.pace_req
            start = state.pace_req if 0.0 < late <= catch_up else now
            state.pace_req = start + interval
        tpm = limits.effective_tpm
        if tpm:
            share = max(1, tpm - synthetic["tok"])
            state.pace_tok = max(state.pace_tok, now) + (entry.inp + entry.out) * window / share
        itpm = limits.effective_itpm
        if itpm:
            share = max(1, itpm - synthetic["inp"])
            state.pace_inp = max(state.pace_inp, now) + entry.inp * window / share
        state.pace_slow = max(1.0, slow * PACE_RECOVERY)
    return entry


def _shift(state: ModelState, entry: _Entry, d_req: int, d_in: int, d_out: int) -> bool:
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


def _check_tokens(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of tokens, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 tokens, got {value}")
    return value


# --------------------------------------------------------------------------- public functions


def decide(
    state: ModelState,
    limits: RateLimits,
    now: float,
    request: Request,
    *,
    concurrency: bool = True,
) -> Decision:
    """Whether ``request`` is admissible at ``now``, and if not, from when and why not.

    Only prunes ``state`` (which never changes an answer). ``concurrency=False`` ignores the
    in-flight limit, for projections: when a slot frees is an event, not a time.
    """
    return _decide(state, limits, now, request, concurrency)


def admit(
    state: ModelState,
    limits: RateLimits,
    now: float,
    request: Request,
    rid: str | None,
    *,
    lease_s: float | None = None,
) -> None:
    """Record the reservation of an admitted request; call right after ``decide`` said admit.

    ``rid=None`` records an anonymous admission that is never settled nor in flight: what a
    projection of the queue ahead uses. ``lease_s`` makes the in-flight slot a lease: freed
    by ``expire`` that long after now unless ``renew`` pushes it out (None: held until
    settled or released).
    """
    if rid is None:
        _record(state, limits, now, request)
        return
    if rid in state.inflight:
        raise ValueError(f"request id {rid!r} is already in flight; use a fresh id per request")
    entry = state.inflight[rid] = _record(state, limits, now, request)
    if lease_s is not None:
        entry.lease = now + lease_s
        state.lease_next = min(state.lease_next, entry.lease)
    projection = state.projection
    if projection is not None and not projection.admitted(request, rid):
        state.projection = None


def settle(
    state: ModelState,
    limits: RateLimits,
    now: float,
    rid: str,
    input_tokens: int,
    output_tokens: int,
    *,
    answered_at: float | None = None,
) -> bool:
    """Replace the estimate of ``rid`` with its real usage; True when capacity was freed.

    More tokens than reserved count more (later requests wait longer); an unknown or already
    settled ``rid`` is a no-op returning False, so settling twice never double-counts.

    ``answered_at`` (when the provider's answer arrived) keeps the request in the minute
    window until ``answered_at + window_s`` instead of ``admitted + window_s``: the provider
    counted it on arrival, somewhere between the two, and under load (a burst of hundreds of
    calls sharing one event loop) arrival can trail admission by seconds. Counting from the
    answer never under-counts what the provider saw.
    """
    input_tokens = _check_tokens("input_tokens", input_tokens)
    output_tokens = _check_tokens("output_tokens", output_tokens)
    entry = state.inflight.pop(rid, None)
    if entry is None:
        return False
    _observe(state, limits, now)
    if answered_at is not None and answered_at == answered_at and answered_at > entry.t:
        entry.late = max(entry.late, answered_at - entry.t)
    d_in = input_tokens - entry.inp
    d_out = output_tokens - entry.out
    counted = _shift(state, entry, 0, d_in, d_out)
    if state.projection is not None:
        state.projection.shift(rid, entry, 0, input_tokens, output_tokens)
    entry.inp = input_tokens
    entry.out = output_tokens
    return limits.max_concurrency is not None or (counted and (d_in < 0 or d_out < 0))


def release(state: ModelState, rid: str, *, keep_request: bool = False) -> bool:
    """Give back what ``rid`` reserved; True when it was in flight (capacity freed).

    For a call cancelled or failed before it was sent: its tokens, and its request slot
    unless ``keep_request`` (after a provider error the provider did count the request).
    """
    entry = state.inflight.pop(rid, None)
    if entry is None:
        return False
    d_req = 0 if keep_request else -entry.req
    _shift(state, entry, d_req, -entry.inp, -entry.out)
    if state.projection is not None:
        state.projection.shift(rid, entry, d_req, 0, 0)
    entry.req += d_req
    entry.inp = 0
    entry.out = 0
    return True


def renew(state: ModelState, now: float, rids: Iterable[str], lease_s: float) -> int:
    """Push the lease of these in-flight requests to ``now + lease_s``; how many were held.

    Only leases (admitted with ``lease_s``) are renewed; a settled, released or expired rid
    is skipped: its owner learns nothing it can act on, and its next settle is a no-op.
    """
    renewed = 0
    until = now + lease_s
    for rid in rids:
        entry = state.inflight.get(rid)
        if entry is not None and entry.lease != math.inf:
            if until > entry.lease:
                entry.lease = until
            renewed += 1
    return renewed


def expire(state: ModelState, now: float) -> int:
    """Free the in-flight slots whose lease ran out; how many were freed.

    A lease runs out when its owner stopped renewing it: the process was killed mid-call.
    Only the slot is freed (``max_concurrency``); what the request reserved stays counted in
    the windows at its estimate, because the provider may well have received it. Cheap when
    nothing can have expired: ``lease_next`` is a lower bound of the earliest lease.
    """
    if now < state.lease_next:
        return 0
    freed = 0
    earliest = math.inf
    for rid, entry in list(state.inflight.items()):
        if entry.lease <= now:
            del state.inflight[rid]
            freed += 1
        elif entry.lease < earliest:
            earliest = entry.lease
    state.lease_next = earliest
    return freed


def cooldown(state: ModelState, until: float) -> None:
    """After a provider 429: admit nobody before ``until`` (an earlier cooldown never shortens).

    A 429 while paced means the provider saw more than we sent at its pace: arrivals bunched
    on the way (the event loop, the network) or someone else shares the key. So a new episode
    (the previous cooldown over by the latest time seen) also stretches the pace by
    ``PACE_SLOWDOWN``, up to ``PACE_SLOW_MAX``; each admission gives back a little of it
    (``PACE_RECOVERY``), so every caller backs off together and returns to the full rate
    within a few hundred requests. Concurrent 429s of one episode stretch it once.
    """
    if until != until:
        raise ValueError("cooldown until must be a time in seconds, got nan")
    if until > state.cooldown_until:
        if state.cooldown_until <= state.high:
            state.pace_slow = min(PACE_SLOW_MAX, state.pace_slow * PACE_SLOWDOWN)
        state.cooldown_until = until
        state.projection = None


def correct(
    state: ModelState,
    limits: RateLimits,
    now: float,
    headers: RateLimitHeaders,
) -> None:
    """Believe the provider's ``x-ratelimit-remaining-*`` when it is lower than our view.

    The difference is usage by others (other processes on the same key): it is added as a
    synthetic entry that expires at ``now + reset`` (``now + window_s`` without a reset), so
    processes without a shared backend converge. A header never loosens our own view.
    Requests and tokens are checked against ``rpm``/``tpm``; the input and output forms
    (Anthropic) against ``itpm``/``otpm``. A dimension without a configured limit is ignored.
    """
    if not isinstance(headers, RateLimitHeaders):
        raise TypeError(f"headers must be a RateLimitHeaders, got {type(headers).__name__}")
    limit_of = {
        "requests": ("req", limits.rpm),
        "tokens": ("tok", limits.tpm),
        "input_tokens": ("inp", limits.itpm),
        "output_tokens": ("out", limits.otpm),
    }
    dims = [(*limit_of[what], remaining, reset) for what, remaining, reset in headers.dimensions()]
    now = _observe(state, limits, now)
    ours = {
        "req": state.requests,
        "tok": state.tokens,
        "inp": state.input_tokens,
        "out": state.output_tokens,
    }
    for dim, limit, remaining, reset in dims:
        if remaining is None or limit is None:
            continue
        # A fractional remaining count rounds down: the tighter reading.
        deficit = (limit - math.floor(remaining)) - ours[dim] - state.synthetic_total[dim]
        if deficit <= 0:
            continue
        expires = now + (limits.window_s if reset is None else float(reset))
        if expires <= now:
            continue
        insort(state.synthetic[dim], (expires, deficit))
        state.synthetic_total[dim] += deficit
        state.projection = None


def snapshot(state: ModelState, now: float) -> dict[str, Any]:
    """What ``state`` holds at ``now``, for stats and debugging.

    Usage in the windows (ours plus what the provider reported), requests today, the cooldown
    end (``None`` when over) and the in-flight count.
    """
    now = _observe(state, RateLimits(window_s=state.window_s), now)
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


def __getattr__(name: str) -> Any:
    # The projection (``project``, its cache ``_Projection``) lived here before
    # ``schedule.projection``; imported on first use, since it builds on this module.
    if name in ("project", "_Projection"):
        from llm_routing.schedule import projection

        return getattr(projection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
