"""What one model is: window, output cap, tokenizer, prices and per-tier rate limits.

These are plain immutable values. Looking them up (aliases, precedence, loaders) belongs to
``catalog.catalog``; using them (counting, scheduling, pricing) belongs to the other packages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

__all__ = ["STANDARD_TIERS", "Limits", "ModelSpec", "Price"]

STANDARD_TIERS = frozenset({"default", "standard", "on_demand"})
"""Service-tier names that mean the plain published rates (``Price`` itself).

OpenAI answers ``service_tier: "default"`` for a standard call, Anthropic ``"standard"``,
Google's Vertex ``"on_demand"``; every other name (``flex``, ``priority``, ``batch``,
``scale``…) needs its own table in ``Price.service_tiers``, and without one its price is
unknown, never the standard rate.
"""


def _check_non_negative(owner: str, name: str, value: int | Decimal | None) -> None:
    if value is not None and value < 0:
        raise ValueError(
            f"{owner}.{name} must be >= 0 or None (None means unlimited/unknown), got {value!r}"
        )


def _to_decimal(owner: str, name: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise TypeError(f"{owner}.{name} must be a number (USD per 1M tokens), got {value!r}")
    # Going through str keeps 0.15 as 0.15 instead of its binary float expansion.
    result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    _check_non_negative(owner, name, result)
    return result


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens, as providers publish them.

    ``None`` means "not published / unknown", which is different from free: the cost of a call
    that needs an unknown price is unknown, never $0. ``reasoning`` defaults to the output
    price because every provider we ship bills thinking tokens as output.
    ``long_context`` holds the prices that apply when the prompt exceeds
    ``long_context_threshold`` tokens (Gemini 2.5 Pro above 200k, Claude Sonnet 4 above 200k).
    ``service_tiers`` maps a service tier (``"flex"``, ``"priority"``, ``"batch"``) to its own
    table: providers bill the same tokens at other rates by tier, so a flex call priced at the
    standard rate would be overbilled about 2x and a priority call underbilled; `for_tier`
    returns ``None`` for a tier without a table, so such a call's cost is unknown.

    Example:
        >>> from llm_routing import Price
        >>> price = Price(input=0.15, output=0.60, cached_input=0.075)
        >>> price.input, price.reasoning_or_output
        (Decimal('0.15'), Decimal('0.6'))
    """

    input: Decimal | None
    output: Decimal | None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    long_context_threshold: int | None = None
    long_context: Price | None = None
    service_tiers: Mapping[str, Price] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write", "reasoning"):
            object.__setattr__(self, name, _to_decimal("Price", name, getattr(self, name)))
        tiers: dict[str, Price] = {}
        for tier, table in dict(self.service_tiers).items():
            if not isinstance(tier, str) or not tier or tier in STANDARD_TIERS:
                raise ValueError(
                    f"Price.service_tiers keys name a non-standard tier (flex, priority, batch), "
                    f"got {tier!r}: the standard rates are the Price itself"
                )
            if not isinstance(table, Price):
                table = Price.from_dict(table)
            if table.service_tiers:
                raise ValueError(f"Price.service_tiers[{tier!r}] cannot have tiers of its own")
            tiers[tier] = table
        object.__setattr__(self, "service_tiers", MappingProxyType(tiers))
        _check_non_negative("Price", "long_context_threshold", self.long_context_threshold)
        if (self.long_context is None) != (self.long_context_threshold is None):
            raise ValueError(
                "Price.long_context and Price.long_context_threshold go together: "
                "set both or neither"
            )

    @property
    def reasoning_or_output(self) -> Decimal | None:
        """The price a reasoning token is billed at."""
        return self.reasoning if self.reasoning is not None else self.output

    def for_prompt(self, prompt_tokens: int) -> Price:
        """The price table that applies to a prompt of this size (long-context tier or not)."""
        if (
            self.long_context is not None
            and self.long_context_threshold is not None
            and prompt_tokens > self.long_context_threshold
        ):
            return self.long_context
        return self

    def for_tier(self, tier: str | None) -> Price | None:
        """The table a call served in ``tier`` is billed at; ``None`` when it is not known.

        ``None`` or a standard name (`STANDARD_TIERS`) is this table. A tier table without
        its own long-context prices, on a model whose standard prices have a long-context
        tier, still knows ``long_context_threshold``: `price_for` then treats a prompt above it
        as unknown rather than billing it at the short-prompt tier rate.
        """
        if tier is None or tier in STANDARD_TIERS:
            return self
        return self.service_tiers.get(tier)

    def price_for(self, tier: str | None = None, prompt_tokens: int = 0) -> Price | None:
        """The rates of one call: its service tier, then its prompt's long-context tier.

        ``None`` when the provider's rate for that combination is not in the catalogue (a tier
        without a table, or a long prompt in a tier whose long-context rates are unpublished).
        """
        table = self.for_tier(tier)
        if table is None:
            return None
        if table is not self and table.long_context is None and self.long_context is not None:
            threshold = self.long_context_threshold
            if threshold is not None and prompt_tokens > threshold:
                return None
        return table.for_prompt(prompt_tokens)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Price:
        """Build from the shipped JSON form (keys as the field names)."""
        known = {
            "input",
            "output",
            "cached_input",
            "cache_write",
            "reasoning",
            "long_context_threshold",
            "long_context",
            "service_tiers",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown price field(s) {sorted(unknown)}; known: {sorted(known)}")
        long_ctx = data.get("long_context")
        return cls(
            input=data.get("input"),
            output=data.get("output"),
            cached_input=data.get("cached_input"),
            cache_write=data.get("cache_write"),
            reasoning=data.get("reasoning"),
            long_context_threshold=data.get("long_context_threshold"),
            long_context=cls.from_dict(long_ctx) if long_ctx is not None else None,
            service_tiers={
                str(tier): cls.from_dict(table)
                for tier, table in dict(data.get("service_tiers") or {}).items()
            },
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """Published rate limits of one model in one tier. ``None`` means unlimited or unknown.

    ``itpm``/``otpm`` are Anthropic-style separate input/output token limits; a provider that
    has a single combined limit uses ``tpm``. ``max_concurrency`` is for deployments that cap
    in-flight requests rather than a rate.

    Example:
        >>> from llm_routing import Limits
        >>> limits = Limits(rpm=500, tpm=200_000).merged({"rpm": 100})
        >>> limits.rpm, limits.tpm, limits.rpd
        (100, 200000, None)
    """

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    tpd: int | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "rpd", "itpm", "otpm", "tpd", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"Limits.{name} must be an int or None, got {value!r}")
            _check_non_negative("Limits", name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        """Build from a ``{"rpm": 500, "tpm": 200000}`` mapping; unknown keys are an error."""
        known = {"rpm", "tpm", "rpd", "itpm", "otpm", "tpd", "max_concurrency"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown limit key(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: data[k] for k in data})

    def merged(self, override: Limits | Mapping[str, Any]) -> Limits:
        """These limits with the fields the override names replaced (a ``Limits`` replaces all)."""
        if isinstance(override, Limits):
            return override
        checked = Limits.from_dict(override)
        return replace(self, **{k: getattr(checked, k) for k in override})

    def is_unlimited(self) -> bool:
        """True when no field limits anything."""
        return all(
            getattr(self, n) is None
            for n in ("rpm", "tpm", "rpd", "itpm", "otpm", "tpd", "max_concurrency")
        )


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything the routing pieces need to know about one model.

    ``tokenizer`` names how to count its tokens: a tiktoken encoding (``"o200k_base"``,
    ``"cl100k_base"``) for exact counts, or ``"estimate:<family>"`` (``estimate:anthropic``,
    ``estimate:gemini``, ``estimate:mistral``) for a calibrated estimate.
    ``rate_limits`` maps a tier name (``"tier1"``, ``"free"``, ``"build"``…) to its limits.
    ``source`` and ``as_of`` say where the figures come from and when they were read; ``notes``
    says which figures could not be confirmed.

    Example:
        Register your own model once; the guard, scheduler, tracker and router all see it:

        >>> from llm_routing import Limits, ModelSpec, Price, default_catalog
        >>> spec = ModelSpec(
        ...     provider="acme",
        ...     name="acme-1",
        ...     context_window=32_000,
        ...     max_output_tokens=4_096,
        ...     price=Price(input=0.5, output=1.5),
        ...     rate_limits={"tier1": Limits(rpm=60, tpm=100_000)},
        ... )
        >>> catalog = default_catalog().copy()  # or default_catalog() itself, process-wide
        >>> catalog.register(spec).key, catalog.get("acme-1").limits("tier1").rpm
        ('acme:acme-1', 60)
    """

    provider: str
    name: str
    context_window: int
    max_output_tokens: int | None = None
    tokenizer: str = "o200k_base"
    price: Price | None = None
    rate_limits: Mapping[str, Limits] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    source: str | None = None
    as_of: str | None = None
    deprecated: bool = False
    notes: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str) or not self.provider:
            raise ValueError(
                f"ModelSpec.provider must be a non-empty string, got {self.provider!r}"
            )
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ModelSpec.name must be a non-empty string, got {self.name!r}")
        if isinstance(self.context_window, bool) or not isinstance(self.context_window, int):
            raise TypeError(f"ModelSpec.context_window must be an int, got {self.context_window!r}")
        if self.context_window <= 0:
            raise ValueError(
                f"ModelSpec.context_window must be > 0, got {self.context_window} for {self.key}"
            )
        if self.max_output_tokens is not None and self.max_output_tokens <= 0:
            raise ValueError(
                f"ModelSpec.max_output_tokens must be > 0 or None, got {self.max_output_tokens}"
            )
        limits = {
            str(tier): (lim if isinstance(lim, Limits) else Limits.from_dict(lim))
            for tier, lim in dict(self.rate_limits).items()
        }
        object.__setattr__(self, "rate_limits", MappingProxyType(limits))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    @property
    def key(self) -> str:
        """The canonical ``provider:name`` form."""
        return f"{self.provider}:{self.name}"

    @property
    def tiers(self) -> tuple[str, ...]:
        """The tiers this spec has published limits for."""
        return tuple(self.rate_limits)

    def limits(self, tier: str) -> Limits:
        """The limits of ``tier``; an unknown tier is a ``ValueError`` naming the known ones."""
        try:
            return self.rate_limits[tier]
        except KeyError:
            known = ", ".join(self.rate_limits) or "none"
            raise ValueError(
                f"unknown tier {tier!r} for {self.key}; known tiers: {known}. "
                "Pass explicit limits (limits={...}) to use this model in another tier."
            ) from None

    def price_for(self, tier: str | None = None, prompt_tokens: int = 0) -> Price | None:
        """The rates a call in service ``tier`` with this prompt size is billed at, or ``None``.

        Example:
            >>> from llm_routing import default_catalog
            >>> spec = default_catalog().get("openai:o3")
            >>> spec.price_for("flex").input, spec.price_for("batch").output
            (Decimal('1'), Decimal('4'))
            >>> spec.price_for("scale") is None   # no published per-token table: unknown
            True
        """
        return self.price.price_for(tier, prompt_tokens) if self.price is not None else None

    def with_overrides(self, **changes: Any) -> ModelSpec:
        """A copy with some fields replaced (used for explicit overrides and ``model.profile``)."""
        return replace(self, **changes)
