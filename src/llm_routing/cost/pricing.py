"""Pricing one call: LangChain ``usage_metadata`` plus a ``ModelSpec`` in, an exact ``Cost`` out.

Pure functions and immutable values only: no clock, no I/O, no state. Recording costs belongs to
``cost.ledger``, budgets to ``cost.budget``, reading usage off a live call to ``cost.tracker``.

How a call is priced (``usage_metadata`` is LangChain's standard field, the same for every
provider): ``input_tokens`` includes cache reads and cache writes, ``output_tokens`` includes
reasoning. Each token is charged once, at the price of its kind: cache reads at
``cached_input``, cache writes at ``cache_write``, the rest of the prompt at ``input``,
reasoning at ``reasoning`` (else ``output``), the rest of the output at ``output``. The
long-context tier (``Price.for_prompt``) is chosen by the whole prompt, cached part included,
as Google and Anthropic do. The service tier that served the call (OpenAI's ``flex`` /
``priority``, a ``batch`` job) picks its own table (``Price.service_tiers``); a tier without
a table has an unknown price, never the standard one, because flex is billed at about half
the standard rate and priority at about double. Amounts are ``Decimal`` computed in a private
60-digit context, so no sum ever drifts, whatever the caller's decimal context is.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from llm_routing.catalog.spec import ModelSpec, Price
from llm_routing.cost.amounts import (
    _CONTEXT,
    _LF_CACHE_READ,
    _LF_CACHE_WRITE,
    _LF_INPUT,
    _LF_OUTPUT,
    _LF_REASONING,
    _LF_TOTAL,
    _ZERO,
    Cost,
    TokenUsage,
    _add,
    _token_usage,
)

__all__ = [
    "ANTHROPIC_1H_CACHE_WRITE_MULTIPLIER",
    "Cost",
    "TokenUsage",
    "estimate_cost",
    "parse_usage",
    "price",
    "price_tokens",
    "requested_service_tier",
    "service_tier_of",
    "usage_details",
]

ANTHROPIC_1H_CACHE_WRITE_MULTIPLIER = Decimal(2)
"""Anthropic bills 1-hour cache writes at 2× the base input price (5-minute ones at
``cache_write``, 1.25×); ``Price`` has one cache-write field, so the 1-hour rate is derived
from this published rule (https://docs.anthropic.com/en/docs/about-claude/pricing)."""

_SERVICE_TIER_PREFIXES = ("", "flex_", "priority_")
# The tiers langchain-openai marks in usage_metadata (a detail key named after the tier, or
# prefixed with it); any other tier is only in response_metadata["service_tier"].
_USAGE_TIERS = ("flex", "priority")
# What a request may ask for that is not a tier the response reports ("auto" lets the
# provider choose; the response then says which one served it).
_UNRESOLVED_TIERS = frozenset({"auto", ""})
_MILLION_EXP = -6
# --------------------------------------------------------------------------- usage

_NO_DETAILS: Mapping[str, Any] = {}  # read only


def _count(value: Any, where: str) -> int:
    if type(value) is int and value >= 0:  # nearly every count: no isinstance, no bool check
        return value
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"usage {where} must be an int number of tokens, got {value!r}")
    if value < 0:
        raise ValueError(f"usage {where} must be >= 0 tokens, got {value}")
    return value


def _details(usage: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = usage.get(key)
    if value is None:
        return _NO_DETAILS
    if type(value) is not dict and not isinstance(value, Mapping):
        raise TypeError(f"usage {key} must be a mapping such as {{'cache_read': 0}}, got {value!r}")
    return value


def _detail(details: Mapping[str, Any], name: str, where: str, *, tiers: bool = True) -> int:
    """A detail count, also under the service-tier names (``flex_cache_read``…).

    langchain-openai prefixes the detail keys of a ``flex`` or ``priority`` request with the
    tier; only one of the spellings is present in a given usage. Names are formatted for an
    error only: this runs for every priced call.
    """
    if not details:
        return 0
    total = 0
    for prefix in _SERVICE_TIER_PREFIXES if tiers else ("",):
        value = details.get(prefix + name)
        if value is not None:
            total += _count(value, f"{where}.{prefix}{name}")
    return total


def _usage_tier(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> str | None:
    """The tier langchain-openai wrote into the details (``{"flex": 90, "flex_cache_read": 4}``)."""
    for details in (inputs, outputs):
        for key in details:
            for tier in _USAGE_TIERS:
                if key == tier or key.startswith(tier + "_"):
                    return tier
    return None


def parse_usage(usage: Mapping[str, Any], service_tier: str | None = None) -> TokenUsage:
    """Split a LangChain ``usage_metadata`` into disjoint token kinds.

    ``input_tokens`` is meant to include cache reads and writes (OpenAI, Gemini, and
    langchain-anthropic all report it so). A provider integration that reports them on top
    instead (details larger than the total) is read that way, so no token is ever charged twice
    nor given a negative count. Anthropic's ``ephemeral_5m_input_tokens`` /
    ``ephemeral_1h_input_tokens`` replace the generic ``cache_creation`` when present.
    OpenAI's service tiers (``flex_cache_read``…) are counted like the plain keys, and the
    tier they name becomes ``TokenUsage.service_tier`` so `price` bills that tier's rates.
    ``service_tier`` (what the response said, see `service_tier_of`) wins over the keys: it
    also names tiers langchain-openai does not mark in the usage (``scale``, ``batch``).
    """
    if type(usage) is not dict and not isinstance(usage, Mapping):  # a plain dict: no ABC check
        raise TypeError(
            "usage must be a mapping shaped like AIMessage.usage_metadata "
            f"({{'input_tokens': …, 'output_tokens': …}}), got {type(usage).__name__}"
        )
    prompt = _count(usage.get("input_tokens"), "input_tokens")
    completion = _count(usage.get("output_tokens"), "output_tokens")
    inputs = _details(usage, "input_token_details")
    outputs = _details(usage, "output_token_details")
    if not inputs and not outputs:
        # No details (most providers' plain answers): every detail below would be 0. Read on
        # every priced call, so it skips the seven lookups that would say so.
        return _token_usage(prompt, 0, 0, 0, completion, 0, service_tier)
    cache_read = _detail(inputs, "cache_read", "input_token_details")
    write_5m = _detail(inputs, "ephemeral_5m_input_tokens", "input_token_details", tiers=False)
    write_1h = _detail(inputs, "ephemeral_1h_input_tokens", "input_token_details", tiers=False)
    if write_5m == 0 and write_1h == 0:
        write_5m = _detail(inputs, "cache_creation", "input_token_details")
    reasoning = _detail(outputs, "reasoning", "output_token_details")
    tier = service_tier if service_tier is not None else _usage_tier(inputs, outputs)

    cached = cache_read + write_5m + write_1h
    regular_in = prompt - cached if cached <= prompt else prompt
    regular_out = completion - reasoning if reasoning <= completion else completion
    return _token_usage(regular_in, cache_read, write_5m, write_1h, regular_out, reasoning, tier)


def service_tier_of(output: Any) -> str | None:
    """The service tier a provider says served a call, from the message it returned.

    langchain-openai copies the response's ``service_tier`` into ``response_metadata``
    (``"default"``, ``"flex"``, ``"priority"``, ``"scale"``); Anthropic reports it inside
    ``usage`` (``"standard"``, ``"priority"``, ``"batch"``). ``None`` when the message says
    nothing, which `price` reads as the standard tier, as providers bill it.
    """
    metadata = getattr(output, "response_metadata", None)
    if type(metadata) is dict:
        if not metadata:  # most answers of most providers: nothing to read
            return None
    elif not isinstance(metadata, Mapping):
        return None
    tier = metadata.get("service_tier")
    if tier is None:
        usage = metadata.get("usage")
        tier = usage.get("service_tier") if isinstance(usage, Mapping) else None
    return tier if isinstance(tier, str) and tier not in _UNRESOLVED_TIERS else None


def requested_service_tier(model: Any, kwargs: Mapping[str, Any] | None = None) -> str | None:
    """The tier a call asks for (``service_tier=`` on the call or the chat model), if definite.

    Used before the call, to hold a budget at the rates the call will be billed at (a
    priority call costs about twice the standard estimate). ``"auto"`` is no tier yet.
    """
    tier = (kwargs or {}).get("service_tier")
    if tier is None:
        tier = getattr(model, "service_tier", None)
    return tier if isinstance(tier, str) and tier not in _UNRESOLVED_TIERS else None


def usage_details(usage: Mapping[str, Any] | TokenUsage) -> dict[str, int]:
    """Langfuse ``usage_details``: disjoint token counts under `Cost.as_langfuse`'s keys.

    ``input`` and ``output`` are always present, the cache and reasoning keys when non-zero,
    and ``total`` is their sum (so Langfuse's own summing agrees).
    """
    tokens = usage if isinstance(usage, TokenUsage) else parse_usage(usage)
    details = {_LF_INPUT: tokens.input}
    if tokens.cached_input:
        details[_LF_CACHE_READ] = tokens.cached_input
    writes = tokens.cache_write + tokens.cache_write_1h
    if writes:
        details[_LF_CACHE_WRITE] = writes
    details[_LF_OUTPUT] = tokens.output
    if tokens.reasoning:
        details[_LF_REASONING] = tokens.reasoning
    details[_LF_TOTAL] = tokens.total_tokens
    return details


# --------------------------------------------------------------------------- pricing


def _part(tokens: int, per_million: Decimal | None) -> Decimal | None:
    if tokens == 0:
        return _ZERO
    if per_million is None:
        return None
    return _CONTEXT.multiply(per_million, Decimal(tokens)).scaleb(_MILLION_EXP, _CONTEXT)


def price_tokens(tokens: TokenUsage, table: Price | None, *, provider: str = "") -> Cost:
    """The cost of ``tokens`` at ``table`` (already the right tier), part by part.

    ``provider`` only matters for Anthropic's 1-hour cache writes (see
    `ANTHROPIC_1H_CACHE_WRITE_MULTIPLIER`); elsewhere such tokens are priced at ``cache_write``.
    """
    if table is None:
        return Cost.unknown() if tokens.total_tokens else Cost.zero()
    write_1h_price = table.cache_write
    if provider == "anthropic" and table.input is not None:
        write_1h_price = _CONTEXT.multiply(table.input, ANTHROPIC_1H_CACHE_WRITE_MULTIPLIER)
    parts = (
        _part(tokens.input, table.input),
        _part(tokens.cached_input, table.cached_input),
        _add(
            _part(tokens.cache_write, table.cache_write),
            _part(tokens.cache_write_1h, write_1h_price),
        ),
        _part(tokens.output, table.output),
        _part(tokens.reasoning, table.reasoning_or_output),
    )
    total: Decimal | None = _ZERO
    for value in parts:
        # _add, inlined: five parts on every priced call.
        total = None if total is None or value is None else _CONTEXT.add(total, value)
    return Cost(*parts, total=total)


def price(
    usage: Mapping[str, Any] | TokenUsage, spec: ModelSpec, service_tier: str | None = None
) -> Cost:
    """What one call cost, from its ``usage_metadata`` and its model's spec.

    ``usage`` is ``AIMessage.usage_metadata`` (or a parsed `TokenUsage`). The call is billed
    at its service tier's table (``tokens.service_tier``, else ``service_tier``): a tier the
    catalogue has no table for makes the cost unknown, like any unknown price, which makes
    the parts that need it, and the total, ``None``.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"price(usage, spec): spec must be a ModelSpec, got {type(spec).__name__}")
    tokens = usage if isinstance(usage, TokenUsage) else parse_usage(usage, service_tier)
    tier = tokens.service_tier if tokens.service_tier is not None else service_tier
    table = spec.price_for(tier, tokens.prompt_tokens)
    return price_tokens(tokens, table, provider=spec.provider)


def _max_price(*prices: Decimal | None) -> Decimal | None:
    known = [p for p in prices if p is not None]
    return max(known) if known else None


def estimate_cost(
    spec: ModelSpec, input_tokens: int, output_tokens: int, service_tier: str | None = None
) -> Decimal | None:
    """The most a call of this size can cost: what a budget reserves before the call.

    Every input token at the dearest input rate (a cache write costs more than plain input,
    a cache read less), every output token at the dearer of ``output`` and ``reasoning``, in
    the long-context tier ``input_tokens`` selects and the ``service_tier`` the call asks for.
    ``None`` when the input or output price is unknown.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(
            f"estimate_cost(spec, …): spec must be a ModelSpec, got {type(spec).__name__}"
        )
    prompt = _count(input_tokens, "input_tokens")
    completion = _count(output_tokens, "output_tokens")
    table = spec.price_for(service_tier, prompt)
    if table is None or table.input is None or table.output is None:
        return None
    in_rate = _max_price(table.input, table.cache_write)
    out_rate = _max_price(table.output, table.reasoning)
    inputs = _part(prompt, in_rate)
    outputs = _part(completion, out_rate)
    return _add(inputs, outputs)
