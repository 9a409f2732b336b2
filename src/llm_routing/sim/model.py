"""What one simulated model is: window, output cap, limits and their enforcement, quota, faults.

Also latency and reply size. Plain frozen values. ``SimModel.from_spec`` reads defaults from
a catalogue ``ModelSpec``; the catalogue itself is optional (a bare ``SimModel(name=...)``
works without it). How limits are enforced follows the providers' documentation
(``llm_routing.catalog.enforcement``); ``FOLLOW_PROVIDER_DOCS`` turns that off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from llm_routing.catalog.enforcement import (
    MODES,
    Enforcement,
    EnforcementMode,
    OutputCounted,
    TokensCounted,
    enforcement_for,
)
from llm_routing.sim.faults import FaultPlan
from llm_routing.sim.latency import Latency
from llm_routing.sim.limiter import ProviderLimiter
from llm_routing.sim.replies import Reply

if TYPE_CHECKING:
    from llm_routing.catalog.spec import ModelSpec, Price

__all__ = [
    "DEFAULT_ENFORCEMENT",
    "FOLLOW_PROVIDER_DOCS",
    "QuotaError",
    "SimModel",
    "check_group_agrees",
]

_LIMIT_FIELDS = ("rpm", "tpm", "rpd", "itpm", "otpm", "tpd")

#: ``True`` (the default since the scheduler paces to per-second enforcement, issue 16):
#: simulated models enforce limits the way their provider documents
#: (``enforcement_for(provider)``): ``SimModel.from_spec`` follows the spec's provider, and a
#: bare ``SimModel`` is OpenAI-shaped (quantized, refused requests count). ``False``: every
#: model enforces the exact 60-second sliding log and counts like the simulator of version one,
#: unless it names ``enforcement=`` / ``failed_requests_count=`` itself or is built with
#: ``SimModel.like(provider)`` or ``from_spec(..., follow_docs=True)``. A test double must not
#: share the idealisation of the code it tests: keep it on.
FOLLOW_PROVIDER_DOCS: bool = True

#: The enforcement of a bare ``SimModel`` (one that names no ``enforcement``): OpenAI's
#: documented ``"quantized"`` when ``FOLLOW_PROVIDER_DOCS`` is on, else ``"sliding"``.
DEFAULT_ENFORCEMENT: EnforcementMode = "quantized" if FOLLOW_PROVIDER_DOCS else "sliding"

#: What a spent ``quota_tokens``/``quota_requests`` answers (all HTTP 429, none with
#: ``retry-after``): OpenAI's ``insufficient_quota``, Anthropic's spend cap
#: (``enforced_spend_limit_reached``) or a Gemini ``RESOURCE_EXHAUSTED`` per-day quota.
QuotaError = Literal["insufficient_quota", "spend_limit", "daily_quota"]
_QUOTA_ERRORS: tuple[QuotaError, ...] = ("insufficient_quota", "spend_limit", "daily_quota")
_TOKENS_COUNTED: tuple[TokensCounted, ...] = (
    "input+max_output",
    "input",
    "uncached_input+cache_writes",
)
_OUTPUT_COUNTED: tuple[OutputCounted, ...] = ("none", "actual")


def _default_enforcement() -> EnforcementMode:
    return DEFAULT_ENFORCEMENT


def _default_failed_requests_count() -> bool:
    # A bare SimModel is OpenAI-shaped: OpenAI counts refused requests, once docs are followed.
    return FOLLOW_PROVIDER_DOCS and enforcement_for("openai").failed_requests_count


def _follow(enforcement: Enforcement) -> dict[str, Any]:
    """The ``SimModel`` fields that make a model enforce and count like ``enforcement``."""
    return {
        "enforcement": enforcement.mode,
        "failed_requests_count": enforcement.failed_requests_count,
        "tokens_counted": enforcement.tokens_counted,
        "output_counted": enforcement.output_counted,
        "requests_header": "rpd" if enforcement.requests_header_period_s >= 86_400 else "rpm",
    }


# What ``from_spec`` uses while FOLLOW_PROVIDER_DOCS is off: the simulator's historical behaviour.
_HISTORICAL: dict[str, Any] = {
    "enforcement": "sliding",
    "failed_requests_count": False,
    "tokens_counted": "input+max_output",
    "output_counted": "none",
    "requests_header": "rpm",
}


@dataclass(frozen=True, slots=True)
class SimModel:
    """One model the simulator serves.

    Limits (``rpm``, ``tpm``, ``rpd`` and the Anthropic-style ``itpm``/``otpm``, plus ``tpd``)
    are enforced by ``sim.limiter.ProviderLimiter``; ``None`` means unlimited.

    How they are enforced (``enforcement``): ``"sliding"`` (an exact 60-second log),
    ``"token_bucket"`` (continuous refill at limit/60 per second, burst up to the limit) or
    ``"quantized"`` (the minute window plus a per-second share of limit/60 with no burst beyond
    it: RPM 600 admits 10 at once, then one every 0.1 s). Day windows are 24-hour logs in every
    mode. Defaults follow the provider the model is shaped like (``from_spec``: the spec's
    provider; ``SimModel.like(provider)``; a bare ``SimModel`` is OpenAI-shaped), which for
    OpenAI and Anthropic is ``"quantized"`` (``DEFAULT_ENFORCEMENT``; with the module switch
    ``FOLLOW_PROVIDER_DOCS`` off, ``"sliding"``).

    What counts:

    * ``tokens_counted``: ``"input+max_output"`` (OpenAI: the prompt plus the requested output
      cap, ``max_tokens``/``max_completion_tokens`` or ``default_output_reserve``, charged at
      admission), ``"input"`` (Gemini: TPM counts input only) or
      ``"uncached_input+cache_writes"`` (Anthropic ITPM; the simulator serves no prompt cache,
      so every prompt token is uncached input).
    * ``output_counted="actual"`` (Anthropic OTPM): the output really generated is charged when
      the answer completes, ``max_tokens`` never; ``"none"``: nothing after admission.
    * ``failed_requests_count`` (OpenAI): a request refused with 429 still counts toward the
      per-minute windows, so retrying early pushes the wait further.

    ``limit_group``: models naming the same group share one set of windows (OpenAI's "shared
    limits", Anthropic's combined Opus limit); every member must declare the same limits and
    enforcement. ``requests_header="rpd"`` reports the day window in the
    ``x-ratelimit-*-requests`` headers, as Groq does.

    ``quota_tokens``/``quota_requests`` model a prepaid balance or spend cap: once spent, every
    request gets the 429 ``quota_error`` names (``"insufficient_quota"``, ``"spend_limit"``,
    ``"daily_quota"``; never a ``retry-after``: waiting cannot help) until ``reset()``.

    ``reply_tokens`` is how long a plain-text answer is when ``max_tokens`` does not cut it.
    ``tokenizer`` names the encoding used to count prompts (as ``ModelSpec.tokenizer``).
    ``aliases`` are other names a request may use for this model (``openai:gpt-4o-mini``).
    ``price`` is carried for reports; the server never bills.

    ``replies`` are recorded answers (``sim.replies.Reply``): the first whose pattern matches
    the last user message, and that the request allows, is the answer instead of invented
    text or tool arguments; it is admitted, counted and streamed like any other answer.
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
    enforcement: EnforcementMode = field(default_factory=_default_enforcement)
    failed_requests_count: bool = field(default_factory=_default_failed_requests_count)
    tokens_counted: TokensCounted = "input+max_output"
    output_counted: OutputCounted = "none"
    limit_group: str | None = None
    requests_header: Literal["rpm", "rpd"] = "rpm"
    quota_error: QuotaError = "insufficient_quota"
    replies: Sequence[Reply] = ()

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
        object.__setattr__(self, "replies", tuple(self.replies))
        for reply in self.replies:
            if not isinstance(reply, Reply):
                raise TypeError(
                    f"SimModel.replies must be Reply values (Reply(when=..., content=...)), "
                    f"got {reply!r}"
                )
        _check_choice("enforcement", self.enforcement, MODES)
        if not isinstance(self.failed_requests_count, bool):
            raise TypeError(
                f"SimModel.failed_requests_count must be a bool, got {self.failed_requests_count!r}"
            )
        _check_choice("tokens_counted", self.tokens_counted, _TOKENS_COUNTED)
        _check_choice("output_counted", self.output_counted, _OUTPUT_COUNTED)
        _check_choice("requests_header", self.requests_header, ("rpm", "rpd"))
        _check_choice("quota_error", self.quota_error, _QUOTA_ERRORS)
        if self.limit_group is not None and (
            not isinstance(self.limit_group, str) or not self.limit_group
        ):
            raise ValueError(
                f"SimModel.limit_group must be a non-empty string or None, got {self.limit_group!r}"
            )

    @classmethod
    def like(cls, provider: str, **fields: Any) -> SimModel:
        """A model enforcing and counting the way ``provider`` documents, whatever the switch.

        ``SimModel.like("anthropic", name="claude", itpm=400_000, otpm=80_000)`` is quantized,
        counts ITPM as uncached input and OTPM as the output really generated. ``fields``
        replace any field, the enforcement ones included.
        """
        return cls(**{**_follow(enforcement_for(provider)), **fields})

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        tier: str | None = "tier1",
        *,
        follow_docs: bool | None = None,
        **overrides: Any,
    ) -> SimModel:
        """A simulated twin of a catalogue model, with that tier's published limits.

        Limits are enforced the way ``enforcement_for(spec.provider)`` documents (OpenAI and
        Anthropic: quantized; what counts per provider) when ``follow_docs`` is true; ``None``
        means the module switch ``FOLLOW_PROVIDER_DOCS`` (on: the provider's documentation;
        off: the exact sliding log and version one's counting). ``tier=None`` leaves the
        limits unlimited; ``overrides`` replace any field (``SimModel.from_spec(spec, rpm=5,
        enforcement="token_bucket")``).
        """
        docs = FOLLOW_PROVIDER_DOCS if follow_docs is None else follow_docs
        shape = _follow(enforcement_for(spec.provider)) if docs else dict(_HISTORICAL)
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
            **shape,
        )
        return replace(base, **overrides) if overrides else base

    def limits(self) -> dict[str, int | None]:
        """The rate limits, as keyword arguments for ``SlidingWindowLimiter``."""
        return {name: getattr(self, name) for name in _LIMIT_FIELDS}

    def limiter(self, clock: Callable[[], float] = time.monotonic) -> ProviderLimiter:
        """A fresh limiter enforcing this model's limits its way (for virtual-time runs too).

        Example:
            >>> SimModel(name="m", rpm=600, enforcement="quantized").limiter().mode
            'quantized'
        """
        return ProviderLimiter(
            mode=self.enforcement,
            output_at="completion" if self.output_counted == "actual" else "admission",
            clock=clock,
            **self.limits(),
        )


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"SimModel.{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"SimModel.{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"SimModel.{name} must be >= {minimum}, got {value}")


# What must agree between the members of a limit group (they share one limiter).
_GROUP_FIELDS = (
    "rpm",
    "tpm",
    "rpd",
    "itpm",
    "otpm",
    "tpd",
    "enforcement",
    "failed_requests_count",
    "tokens_counted",
    "output_counted",
)


def check_group_agrees(first: SimModel, model: SimModel) -> None:
    """Raise ``ValueError`` unless ``model`` declares the limits and enforcement of ``first``.

    Members of one ``limit_group`` share one limiter, so they must agree on what it enforces.
    """
    for name in _GROUP_FIELDS:
        a, b = getattr(first, name), getattr(model, name)
        if a != b:
            raise ValueError(
                f"models {first.name!r} and {model.name!r} share limit_group "
                f"{model.limit_group!r} but declare different {name} ({a!r} vs {b!r}); a limit "
                "group has one set of windows, so give every member the same limits and "
                "enforcement"
            )
