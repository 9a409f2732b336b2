"""The scheduling policy's decisions: pure functions of (state, limits, time, request).

``decide`` says whether a request is admissible now and if not from when and why (RPM, TPM,
ITPM/OTPM, RPD, concurrency, cooldown, pacing); ``admit`` records the reservation and paces
what comes next. It reads no clock, takes no lock, never sleeps and logs nothing: backends and
the queue do that. The windows it reads are ``windows``'s, the updates after an admission
(settle, release, leases, cooldown, corrections) ``settlement``'s, the values ``limits``'s, the
state ``state``'s and the queue-ahead projection ``projection``'s; all are re-exported here,
where they used to live, and the Lua script (``schedule.redis.script``) ports these modules
line by line.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llm_routing.schedule.limits import (
    DAY_S,
    NEVER_TOO_LARGE,
    Decision,
    RateLimitHeaders,
    RateLimits,
    Request,
    request_pace,
)
from llm_routing.schedule.settlement import (
    PACE_SLOW_MAX,
    PACE_SLOWDOWN,
    cooldown,
    correct,
    expire,
    release,
    renew,
    settle,
)
from llm_routing.schedule.state import ModelState, _Entry
from llm_routing.schedule.windows import day_end, earliest, observe, snapshot

if TYPE_CHECKING:
    from llm_routing.schedule.projection import project

__all__ = [
    "DAY_S",
    "NEVER_TOO_LARGE",
    "PACE_RECOVERY",
    "PACE_SLOWDOWN",
    "PACE_SLOW_MAX",
    "PACE_TOKEN_CREDIT",
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

PACE_RECOVERY = 0.99
"""Per paced admission, the stretch decays by this factor back to 1 (about 40 for 1.5x)."""

PACE_TOKEN_CREDIT = 0.5
"""The share of the provider's per-second token bucket that paced admissions may go early into."""

# --------------------------------------------------------------------------- internals


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


def _earliest_day(state: ModelState, limits: RateLimits, rpd: int, now: float) -> float:
    if limits.day == "calendar":
        used = state.cal_requests if now < state.cal_end else 0
        return now if used + 1 <= rpd else state.cal_end
    need = state.day_requests + 1 - rpd
    if need <= 0:
        return now
    return earliest(now, need, ((e.t + DAY_S, e.req) for e in state.day_log), [])


def _decide(
    state: ModelState, limits: RateLimits, now: float, request: Request, concurrency: bool
) -> Decision:
    # The effective limits once (four properties read once, not twice each): per admission.
    rpm, tpm, itpm, otpm = limits._effective
    tokens = request.input_tokens + request.output_tokens  # ``request.tokens``, read once
    if (
        (tpm is not None and tokens > tpm)
        or (itpm is not None and request.input_tokens > itpm)
        or (otpm is not None and request.output_tokens > otpm)
    ):
        return Decision(False, math.inf, _too_large(limits, request), NEVER_TOO_LARGE, False)
    now = observe(state, limits, now)
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
    if rpm is not None:
        need = state.requests + synthetic_total["req"] + 1 - rpm
        if need > 0:
            when = earliest(
                now, need, ((e.t + e.late + window, e.req) for e in log), synthetic["req"]
            )
            if when > at:
                at, binding = when, "rpm"
    if tpm is not None:
        need = state.tokens + synthetic_total["tok"] + tokens - tpm
        if need > 0:
            when = earliest(
                now, need, ((e.t + e.late + window, e.inp + e.out) for e in log), synthetic["tok"]
            )
            if when > at:
                at, binding = when, "tpm"
    if itpm is not None:
        need = state.input_tokens + synthetic_total["inp"] + request.input_tokens - itpm
        if need > 0:
            when = earliest(
                now, need, ((e.t + e.late + window, e.inp) for e in log), synthetic["inp"]
            )
            if when > at:
                at, binding = when, "itpm"
    if otpm is not None:
        need = state.output_tokens + synthetic_total["out"] + request.output_tokens - otpm
        if need > 0:
            when = earliest(
                now, need, ((e.t + e.late + window, e.out) for e in log), synthetic["out"]
            )
            if when > at:
                at, binding = when, "otpm"
    if limits.smoothing:
        if rpm is not None and state.pace_req > at:
            at, binding = state.pace_req, "pace_rpm"
        # A credit is never negative: a pace already behind ``at`` cannot bind, and its credit
        # (a division per admission) is only worked out when it might.
        if tpm is not None and limits.tpm is not None and state.pace_tok > at:
            when = state.pace_tok - _token_credit(limits.tpm, request.tokens, limits.window_s)
            if when > at:
                at, binding = when, "pace_tpm"
        if itpm is not None and limits.itpm is not None and state.pace_inp > at:
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


def admit_now(
    state: ModelState,
    limits: RateLimits,
    now: float,
    request: Request,
    rid: str,
    lease_s: float | None,
) -> float | None:
    """`decide` + `admit` in one pass when nothing holds the request back: its time, else None.

    The in-process backend's first ask (most calls); None is no refusal: ask `decide`. Not with
    a daily or concurrency limit, cooldown, synthetic usage, full window or pace ahead of
    ``now`` (a token pace's credit is `_decide`'s). test_schedule_props: the same states.
    """
    synthetic = state.synthetic
    if (
        limits.rpd is not None
        or limits.max_concurrency is not None
        or state.projection is not None
        or state.day_log
        or synthetic["req"]
        or synthetic["tok"]
        or synthetic["inp"]
        or synthetic["out"]
        or rid in state.inflight
        or now != now  # NaN: `observe` says what is wrong
    ):
        return None
    rpm, tpm, itpm, otpm = limits._effective
    inp, out = request.input_tokens, request.output_tokens
    if (
        (tpm is not None and inp + out > tpm)
        or (itpm is not None and inp > itpm)
        or (otpm is not None and out > otpm)
    ):
        return None  # too large: refused before any pruning, as `_decide` does
    if now < state.high:  # `observe`, inline: monotone per state, then prune
        now = state.high
    state.high = now
    window = state.window_s = limits.window_s
    log = state.log
    while log and log[0].t + log[0].late + window <= now:
        entry = log.popleft()
        state.requests -= entry.req
        state.input_tokens -= entry.inp
        state.output_tokens -= entry.out
        state.tokens -= entry.inp + entry.out
        state.cut = entry.t
    if (
        state.cooldown_until > now
        or (rpm is not None and state.requests >= rpm)
        or (tpm is not None and state.tokens + inp + out > tpm)
        or (itpm is not None and state.input_tokens + inp > itpm)
        or (otpm is not None and state.output_tokens + out > otpm)
        or (limits.smoothing and max(state.pace_req, state.pace_tok, state.pace_inp) > now)
    ):
        return None
    entry = state.inflight[rid] = _record(state, limits, now, request, True)
    if lease_s is not None:
        lease = entry.lease = now + lease_s
        if lease < state.lease_next:
            state.lease_next = lease
    return now


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


def _record(
    state: ModelState, limits: RateLimits, now: float, request: Request, decided: bool = False
) -> _Entry:
    if not decided:
        now = observe(state, limits, now)
    daily = limits.rpd is not None
    in_day = daily and limits.day == "rolling"
    day_ends = -math.inf
    if daily and limits.day == "calendar":
        if not now < state.cal_end:
            state.cal_end = day_end(state, limits, now)
            state.cal_requests = 0
        state.cal_requests += 1
        day_ends = state.cal_end
    inp, out = request.input_tokens, request.output_tokens
    entry = _Entry(now, inp, out, in_day, day_ends)
    state.log.append(entry)
    state.requests += 1
    state.input_tokens += inp
    state.output_tokens += out
    state.tokens += inp + out
    if in_day:
        state.day_log.append(entry)
        state.day_requests += 1
    if limits.smoothing:
        # Paced at what is left of the limit once others' usage (``correct``) is taken out.
        # ``slow`` stretches every interval after unexpected 429s (see ``cooldown``).
        synthetic = state.synthetic_total
        slow = state.pace_slow
        window = limits.window_s * slow
        rpm, tpm, itpm, _ = limits._effective
        # Comparisons, not ``max()``: the same values (ints and finite floats), without a
        # call each; the Lua script keeps the ``math.max`` form.
        if rpm is not None and limits.rpm is not None:
            if slow == 1.0 and not synthetic["req"]:  # full speed, ours alone: prepared once
                interval, catch_up = limits._pace_req  # type: ignore[misc]
            else:
                share = rpm - synthetic["req"]
                interval, catch_up = request_pace(window, share, limits.window_s, limits.rpm)
            pace_req = state.pace_req
            late = now - pace_req
            state.pace_req = (pace_req if 0.0 < late <= catch_up else now) + interval
        if tpm:
            share = tpm - synthetic["tok"]
            pace = state.pace_tok
            state.pace_tok = (pace if pace > now else now) + (inp + out) * window / (
                share if share > 1 else 1
            )
        if itpm:
            share = itpm - synthetic["inp"]
            pace = state.pace_inp
            state.pace_inp = (pace if pace > now else now) + inp * window / (
                share if share > 1 else 1
            )
        if slow != 1.0:
            slow *= PACE_RECOVERY
            state.pace_slow = slow if slow > 1.0 else 1.0
    return entry


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
    decided: bool = False,
) -> None:
    """Record the reservation of an admitted request; call right after ``decide`` said admit.

    ``rid=None`` records an anonymous admission that is never settled nor in flight: what a
    projection of the queue ahead uses. ``lease_s`` makes the in-flight slot a lease: freed
    by ``expire`` that long after now unless ``renew`` pushes it out (None: held until
    settled or released). ``decided=True`` says ``now`` is the time ``decide`` just answered
    for this state, with nothing in between: its pruning is then not repeated (the same
    instant prunes nothing more), which saves a walk per admission on the hot path.
    """
    _admit(state, limits, now, request, rid, lease_s, decided)


def _admit(
    state: ModelState,
    limits: RateLimits,
    now: float,
    request: Request,
    rid: str | None,
    lease_s: float | None,
    decided: bool,
) -> None:
    """`admit` with positional arguments: what a backend's admission calls, once per call."""
    if rid is None:
        _record(state, limits, now, request, decided)
        return
    if rid in state.inflight:
        raise ValueError(f"request id {rid!r} is already in flight; use a fresh id per request")
    entry = state.inflight[rid] = _record(state, limits, now, request, decided)
    if lease_s is not None:
        lease = entry.lease = now + lease_s
        if lease < state.lease_next:  # ``min``, without its call
            state.lease_next = lease
    projection = state.projection
    if projection is not None and not projection.admitted(request, rid):
        state.projection = None


def __getattr__(name: str) -> Any:
    # The projection (``project``, its cache ``_Projection``) lived here before
    # ``schedule.projection``; imported on first use, since it builds on this module.
    if name in ("project", "_Projection"):
        from llm_routing.schedule import projection

        return getattr(projection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
