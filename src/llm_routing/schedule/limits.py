"""What the scheduler is told and what it answers: limits, requests, provider headers, decisions.

Plain frozen values with their own checks, shared by the policy, both backends, the queue and
the scheduler; no arithmetic on windows (``policy``) and no lookup of which limits apply to a
model (``resolve``, whose names this module also re-exports: they lived here before).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from llm_routing.catalog.spec import Limits
    from llm_routing.schedule.resolve import (
        PACING_MODES,
        LimitResolver,
        api_key_fingerprint,
        check_pacing,
        paced_by_default,
    )

__all__ = [
    "DAY_S",
    "NEVER_TOO_LARGE",
    "PACING_MODES",
    "Decision",
    "LimitResolver",
    "RateLimitHeaders",
    "RateLimits",
    "Request",
    "api_key_fingerprint",
    "check_pacing",
    "paced_by_default",
]

DAY_S = 86_400.0
"""Length of the rolling RPD window, and of a calendar day."""

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
    # `policy._record`'s request pace at full speed with no one else's usage (its common case):
    # (interval, catch_up), computed as it computes them, once.
    _pace_req: tuple[float, float] | None = field(init=False, repr=False, compare=False)

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
        pace = None
        if rpm is not None and self.rpm is not None:
            pace = request_pace(self.window_s * 1.0, rpm, self.window_s, self.rpm)
        object.__setattr__(self, "_pace_req", pace)

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


def request_pace(window: float, share: int, window_s: float, rpm: int) -> tuple[float, float]:
    """The request pace's (interval, catch-up) for ``share`` requests per stretched ``window``.

    An admission a little late (a wake-up after its time) is paced from when it was due, not
    from when it ran, or every late wake-up would be lost for good: up to the slack our margin
    leaves within one second of the provider's exact spacing (``window_s / rpm``).
    """
    interval = window / (share if share > 1 else 1)
    exact = window_s / rpm
    slack = interval - exact
    per_second = 1.0 / exact
    return interval, (slack if slack > 0.0 else 0.0) * (per_second if per_second > 1.0 else 1.0)


@dataclass(frozen=True, slots=True)
class Request:
    """What one call reserves: its estimated input tokens and its reserved output tokens."""

    input_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        # One request per call is built: the common case (two plain ints >= 0) takes one test.
        inp, out = self.input_tokens, self.output_tokens
        if type(inp) is int and type(out) is int and inp >= 0 and out >= 0:
            return
        for name, value in (("input_tokens", inp), ("output_tokens", out)):
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


_RESOLVE_NAMES = frozenset(
    ["LimitResolver", "PACING_MODES", "api_key_fingerprint", "check_pacing", "paced_by_default"]
)


def __getattr__(name: str) -> Any:
    # ``schedule.limits`` held the LimitResolver before ``schedule.resolve``; imported on first
    # use, since ``resolve`` builds on the values above.
    if name in _RESOLVE_NAMES:
        from llm_routing.schedule import resolve

        return getattr(resolve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
