"""What one simulated model is: window, output cap, limits, quota, latency, faults, reply size.

Plain frozen values. ``SimModel.from_spec`` reads defaults from a catalogue ``ModelSpec``; the
catalogue itself is optional (a bare ``SimModel(name=...)`` works without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from llm_routing.sim.faults import FaultPlan
from llm_routing.sim.latency import Latency

if TYPE_CHECKING:
    from llm_routing.catalog.spec import ModelSpec, Price

__all__ = ["SimModel"]

_LIMIT_FIELDS = ("rpm", "tpm", "rpd", "itpm", "otpm", "tpd")


@dataclass(frozen=True, slots=True)
class SimModel:
    """One model the simulator serves.

    Limits (``rpm``, ``tpm``, ``rpd`` and the Anthropic-style ``itpm``/``otpm``, plus ``tpd``)
    are enforced with exact sliding windows (``sim.limiter``); ``None`` means unlimited. Token
    windows count what OpenAI counts at admission: prompt tokens plus the requested output cap
    (``max_tokens``/``max_completion_tokens``, or ``default_output_reserve`` when the request
    sets none). ``quota_tokens``/``quota_requests`` model a prepaid balance: once spent, every
    request gets 429 ``insufficient_quota`` until ``reset()``.

    ``reply_tokens`` is how long a plain-text answer is when ``max_tokens`` does not cut it.
    ``tokenizer`` names the encoding used to count prompts (as ``ModelSpec.tokenizer``).
    ``aliases`` are other names a request may use for this model (``openai:gpt-4o-mini``).
    ``price`` is carried for reports; the server never bills.
    """

    name: str
    context_window: int = 128_000
    max_output_tokens: int | None = 16_384
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    tpd: int | None = None
    quota_tokens: int | None = None
    quota_requests: int | None = None
    default_output_reserve: int = 0
    reply_tokens: int = 12
    tokenizer: str = "o200k_base"
    latency: Latency = field(default_factory=Latency)
    faults: FaultPlan = field(default_factory=FaultPlan)
    aliases: tuple[str, ...] = ()
    price: Price | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"SimModel.name must be a non-empty string, got {self.name!r}")
        _check_int("context_window", self.context_window, minimum=1)
        if self.max_output_tokens is not None:
            _check_int("max_output_tokens", self.max_output_tokens, minimum=1)
        for name in (*_LIMIT_FIELDS, "quota_tokens", "quota_requests"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, minimum=0)
        _check_int("default_output_reserve", self.default_output_reserve, minimum=0)
        _check_int("reply_tokens", self.reply_tokens, minimum=1)
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise ValueError(f"SimModel.tokenizer must be an encoding name, got {self.tokenizer!r}")
        if not isinstance(self.latency, Latency):
            raise TypeError(f"SimModel.latency must be a Latency, got {self.latency!r}")
        if not isinstance(self.faults, FaultPlan):
            raise TypeError(
                f"SimModel.faults must be a FaultPlan (e.g. FaultPlan.at({{3: 503}})), "
                f"got {self.faults!r}"
            )
        object.__setattr__(self, "aliases", tuple(self.aliases))

    @classmethod
    def from_spec(cls, spec: ModelSpec, tier: str | None = "tier1", **overrides: Any) -> SimModel:
        """A simulated twin of a catalogue model, with that tier's published limits.

        ``tier=None`` leaves the limits unlimited; ``overrides`` replace any field
        (``SimModel.from_spec(spec, rpm=5, latency=Latency.realistic())``).
        """
        limits: dict[str, int | None] = {}
        if tier is not None:
            lim = spec.limits(tier)
            limits = {name: getattr(lim, name) for name in _LIMIT_FIELDS}
        aliases = tuple(
            a for a in (spec.key, f"{spec.provider}/{spec.name}", *spec.aliases) if a != spec.name
        )
        base = cls(
            name=spec.name,
            context_window=spec.context_window,
            max_output_tokens=spec.max_output_tokens,
            tokenizer=spec.tokenizer,
            aliases=aliases,
            price=spec.price,
            **limits,  # type: ignore[arg-type]
        )
        return replace(base, **overrides) if overrides else base

    def limits(self) -> dict[str, int | None]:
        """The rate limits, as keyword arguments for ``SlidingWindowLimiter``."""
        return {name: getattr(self, name) for name in _LIMIT_FIELDS}


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"SimModel.{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"SimModel.{name} must be >= {minimum}, got {value}")
