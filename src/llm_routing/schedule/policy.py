"""The scheduling policy: pure functions of (state, limits, time, request) -> decision and updates.

Owns the sliding-window arithmetic (RPM, TPM, ITPM/OTPM, RPD, concurrency, cooldown, smoothing).
It reads no clock, takes no lock, never sleeps and logs nothing: backends and the queue do that.

Windows are exact sliding logs. An entry recorded at time ``t`` counts at time ``x`` iff
``x < t + window_s``, i.e. ``t`` lies in the window ``(x - window_s, x]``; it stops counting at
exactly ``t + window_s``. Every comparison in this module uses that one predicate.
"""

from __future__ import annotations

import heapq
import math
from bisect import insort
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from llm_routing.catalog.spec import Limits

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

DAY_S = 86_400.0
"""Length of the rolling RPD window, and of a calendar day."""

PACE_SLOWDOWN = 1.5
"""How much a new episode of provider 429s stretches the pacing interval."""

PACE_SLOW_MAX = 4.0
"""The most the pacing interval is ever stretched."""

PACE_RECOVERY = 0.99
"""Per paced admission, the stretch decays by this factor back to 1 (about 40 for 1.5x)."""

PACE_TOKEN_CREDIT = 0.5
"""The share of the provider's per-second token bucket that paced admissions may go early into."""

NEVER_TOO_LARGE = "request larger than the limit"
"""``Decision.never`` when a request can never fit a token limit, whatever the state."""

_OPTION_ALIASES = {"margin": "request_margin", "headroom": "token_headroom"}
_OPTIONS = frozenset(
    {"request_margin", "token_headroom", "smoothing", "day", "day_start_utc_s", "window_s"}
)


def _check_count(name: str, value: object, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"RateLimits.{name} must be an int or None (unlimited), got {value!r}")
    if value < minimum:
        raise ValueError(
            f"RateLimits.{name} must be >= {minimum} or None (None means unlimited), got {value}"
        )


def _headroomed(limit: int | None, headroom: Fraction) -> int | None:
    if limit is None:
        return None
    if limit == 0:
        return 0
    # Like the request margin, headroom never rounds a usable limit down to "nothing fits".
    return max(1, math.floor(limit * (1 - headroom)))


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Limits for one key (a model, or a model + API key). ``None`` = unlimited (never -1).

    ``request_margin`` and ``token_headroom`` keep us just under the provider's limits, so
    clock skew between us and the provider, and requests the provider counts slightly
    differently, do not turn into 429s.

    ``smoothing`` paces admissions to the per-minute limits' per-second rate, which is how
    providers that quantize their limits enforce them (OpenAI: 60,000 RPM "may be enforced"
    as 1,000 per second; Anthropic: 60 RPM "as 1 request per second"): one request every
    ``window_s / effective_rpm`` seconds, and for tokens a GCRA with no burst, where each
    admission holds the next one back by ``tokens * window_s / effective_tpm`` seconds (the
    same for ``itpm``). Without it, the minute windows alone allow a whole minute's quota in
    one burst, which only a provider with a minute-sized bucket accepts. ``RateScheduler``
    sets it per provider from `llm_routing.catalog.enforcement`.
    """

    rpm: int | None = None
    tpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    rpd: int | None = None
    max_concurrency: int | None = None
    request_margin: int = 2
    token_headroom: float = 0.02
    smoothing: bool = False
    day: Literal["rolling", "calendar"] = "rolling"
    day_start_utc_s: float = 0.0
    window_s: float = 60.0
    _effective: tuple[int | None, int | None, int | None, int | None] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("rpm", "rpd", "max_concurrency"):
            _check_count(name, getattr(self, name), 1)
        for name in ("tpm", "itpm", "otpm"):
            _check_count(name, getattr(self, name), 0)
        if isinstance(self.request_margin, bool) or not isinstance(self.request_margin, int):
            raise TypeError(
                f"RateLimits.request_margin must be an int, got {self.request_margin!r}"
            )
        if self.request_margin < 0:
            raise ValueError(f"RateLimits.request_margin must be >= 0, got {self.request_margin}")
        headroom = self.token_headroom
        if isinstance(headroom, bool) or not isinstance(headroom, int | float):
            raise TypeError(f"RateLimits.token_headroom must be a number, got {headroom!r}")
        if not 0 <= headroom < 1:
            raise ValueError(
                "RateLimits.token_headroom must be in [0, 1) (a fraction of the token limit, "
                f"0.02 = 2 %), got {headroom!r}"
            )
        if not isinstance(self.smoothing, bool):
            raise TypeError(f"RateLimits.smoothing must be a bool, got {self.smoothing!r}")
        if self.day not in ("rolling", "calendar"):
            raise ValueError(f"RateLimits.day must be 'rolling' or 'calendar', got {self.day!r}")
        start = self.day_start_utc_s
        if isinstance(start, bool) or not isinstance(start, int | float) or not 0 <= start < DAY_S:
            raise ValueError(
                "RateLimits.day_start_utc_s must be a number of seconds in [0, 86400) after UTC "
                f"midnight, got {start!r}"
            )
        window = self.window_s
        if (
            isinstance(window, bool)
            or not isinstance(window, int | float)
            or not 0 < window < math.inf
        ):
            raise ValueError(f"RateLimits.window_s must be a finite number > 0, got {window!r}")
        # repr() keeps 0.02 as the decimal 2/100, not its binary expansion, so
        # 200,000 TPM with 2 % headroom is exactly 196,000.
        fraction = Fraction(repr(float(headroom)))
        rpm = None if self.rpm is None else max(1, self.rpm - self.request_margin)
        effective = (
            rpm,
            _headroomed(self.tpm, fraction),
            _headroomed(self.itpm, fraction),
            _headroomed(self.otpm, fraction),
        )
        object.__setattr__(self, "_effective", effective)

    @property
    def effective_rpm(self) -> int | None:
        """Requests admitted per window: ``rpm - request_margin``, never below 1."""
        return self._effective[0]

    @property
    def effective_tpm(self) -> int | None:
        """Tokens admitted per window: ``floor(tpm * (1 - token_headroom))``."""
        return self._effective[1]

    @property
    def effective_itpm(self) -> int | None:
        """Input tokens admitted per window, after headroom."""
        return self._effective[2]

    @property
    def effective_otpm(self) -> int | None:
        """Output tokens admitted per window, after headroom."""
        return self._effective[3]

    @classmethod
    def from_limits(cls, limits: Limits, **options: Any) -> RateLimits:
        """Build from the catalogue's published ``Limits`` plus scheduling options.

        Options are the scheduling fields of this class (``request_margin``,
        ``token_headroom``, ``smoothing``, ``day``, ``day_start_utc_s``, ``window_s``), with
        ``margin`` and ``headroom`` as short aliases. The catalogue's ``tpd`` is not enforced.
        """
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            name = _OPTION_ALIASES.get(key, key)
            if name not in _OPTIONS:
                known = ", ".join(sorted(_OPTIONS | set(_OPTION_ALIASES)))
                raise TypeError(
                    f"RateLimits.from_limits() got an unknown option {key!r}; known: {known}"
                )
            kwargs[name] = value
        return cls(
            rpm=limits.rpm,
            tpm=limits.tpm,
            itpm=limits.itpm,
            otpm=limits.otpm,
            rpd=limits.rpd,
            max_concurrency=limits.max_concurrency,
            **kwargs,
        )

    def is_unlimited(self) -> bool:
        """True when no limit applies, so a caller may skip scheduling altogether."""
        return (
            self.rpm is None
            and self.tpm is None
            and self.itpm is None
            and self.otpm is None
            and self.rpd is None
            and self.max_concurrency is None
        )


@dataclass(frozen=True, slots=True)
class Request:
    """What one call reserves: its estimated input tokens and its reserved output tokens."""

    input_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Request.{name} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(f"Request.{name} must be >= 0, got {value}")

    @property
    def tokens(self) -> int:
        """Input plus output: what a combined TPM limit counts."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """What a provider said it has left: ``x-ratelimit-remaining-*`` and when each resets.

    One value instead of eight keyword arguments, so the policy, both backends and the queue
    pass it along unchanged. ``None`` means the provider did not say. Requests and tokens
    are OpenAI's (checked against ``rpm``/``tpm``); the input and output forms are Anthropic's
    (``itpm``/``otpm``). Resets are seconds from now.
    """

    remaining_requests: float | None = None
    reset_requests_s: float | None = None
    remaining_tokens: float | None = None
    reset_tokens_s: float | None = None
    remaining_input_tokens: float | None = None
    reset_input_tokens_s: float | None = None
    remaining_output_tokens: float | None = None
    reset_output_tokens_s: float | None = None

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"RateLimitHeaders.{name} must be a number or None, got {value!r}")
            if not 0 <= value < math.inf:
                raise ValueError(
                    f"RateLimitHeaders.{name} must be a finite number >= 0, got {value!r}"
                )

    def dimensions(self) -> tuple[tuple[str, float | None, float | None], ...]:
        """``(what, remaining, reset_s)`` for requests, tokens, input and output tokens."""
        return (
            ("requests", self.remaining_requests, self.reset_requests_s),
            ("tokens", self.remaining_tokens, self.reset_tokens_s),
            ("input_tokens", self.remaining_input_tokens, self.reset_input_tokens_s),
            ("output_tokens", self.remaining_output_tokens, self.reset_output_tokens_s),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one request at one time.

    ``at`` is the earliest time the request is admissible (``now`` when admitted; ``inf`` for
    ``never`` and for ``concurrency``, whose end is a release event, not a time). ``binding``
    names what holds it back; ``quota`` is True when that is the daily limit.
    """

    admit: bool
    at: float
    binding: str | None
    never: str | None
    quota: bool


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


# --------------------------------------------------------------------------- projection


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
            _shift(self.state, live, d_req, inp - live.inp, out - live.out)
        else:
            _shift(self.state, entry, d_req, inp - entry.inp, out - entry.out)
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
    now = _observe(state, limits, now)
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
