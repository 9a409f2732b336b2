"""What the policy learns after an admission: real usage, leases, and the provider's word.

``settle``/``release`` replace a reservation with what the call used (or give it back),
``renew``/``expire`` keep or free an in-flight slot's lease, ``cooldown``/``correct`` take in
a provider 429 and its remaining-capacity headers. Pure like ``policy`` (no clock, no lock, no
I/O: the backends call these under their lock, the Lua script ports them line by line), and
re-exported from ``policy``, where they used to live.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Iterable

from llm_routing.schedule.limits import RateLimitHeaders, RateLimits
from llm_routing.schedule.state import ModelState
from llm_routing.schedule.windows import observe, shift

__all__ = ["cooldown", "correct", "expire", "release", "renew", "settle"]

PACE_SLOWDOWN = 1.5
"""How much a new episode of provider 429s stretches the pacing interval."""

PACE_SLOW_MAX = 4.0
"""The most the pacing interval is ever stretched."""


def _check_tokens(name: str, value: object) -> int:
    if type(value) is int and value >= 0:  # the common case, in one test
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of tokens, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 tokens, got {value}")
    return value


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
    if not (
        type(input_tokens) is int
        and type(output_tokens) is int
        and input_tokens >= 0
        and output_tokens >= 0
    ):  # the common case (two plain ints >= 0) in one test, no call
        input_tokens = _check_tokens("input_tokens", input_tokens)
        output_tokens = _check_tokens("output_tokens", output_tokens)
    entry = state.inflight.pop(rid, None)
    if entry is None:
        return False
    observe(state, limits, now)
    if answered_at is not None and answered_at == answered_at and answered_at > entry.t:
        entry.late = max(entry.late, answered_at - entry.t)
    d_in = input_tokens - entry.inp
    d_out = output_tokens - entry.out
    # `shift` with no request change, inline (once per call): only the window totals move.
    counted = entry.t > state.cut
    if counted:
        state.input_tokens += d_in
        state.output_tokens += d_out
        state.tokens += d_in + d_out
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
    shift(state, entry, d_req, -entry.inp, -entry.out)
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
    now = observe(state, limits, now)
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
