"""Reading LiteLLM's ``model_prices_and_context_window.json`` format into ``ModelSpec`` values.

It owns the key mapping (per-token USD -> per-1M, exact with ``Decimal``) and tolerance of bad
rows. It does not decide precedence against the shipped data: ``Catalog.load_litellm`` does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from llm_routing.catalog.spec import ModelSpec, Price

__all__ = ["LiteLLMLoadResult", "LiteLLMParse", "read_litellm"]

_PER_MILLION = Decimal(1_000_000)
_MAX_PROBLEMS = 50
_ABOVE = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")
# LiteLLM provider names that differ from ours; everything else keeps its LiteLLM name.
_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "mistral": "mistral",
}


@dataclass(frozen=True, slots=True)
class LiteLLMParse:
    """The chat specs found in one file, and what was left out."""

    specs: tuple[ModelSpec, ...]
    skipped_non_chat: int
    skipped_sample_spec: int
    invalid: int
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LiteLLMLoadResult:
    """What ``Catalog.load_litellm`` did with a file.

    ``problems`` holds one line per invalid entry (the first 50), naming the entry and the reason.
    """

    added: int
    replaced: int
    skipped_known: int
    skipped_non_chat: int
    skipped_sample_spec: int
    invalid: int
    problems: tuple[str, ...] = ()

    @property
    def skipped(self) -> int:
        """Entries left out on purpose (already known, not a chat model, or the sample)."""
        return self.skipped_known + self.skipped_non_chat + self.skipped_sample_spec


def read_litellm(source: str | os.PathLike[str] | Mapping[str, Any]) -> LiteLLMParse:
    """Parse a LiteLLM price file (a path, or the already-loaded mapping); never fails on a row."""
    data, origin = _load(source)
    specs: list[ModelSpec] = []
    problems: list[str] = []
    non_chat = sample = 0
    for key, entry in data.items():
        if key == "sample_spec":
            sample += 1
            continue
        if not isinstance(entry, Mapping):
            problems.append(f"{key}: entry is {type(entry).__name__}, not an object")
            continue
        mode = entry.get("mode", "chat")
        if mode != "chat":
            non_chat += 1
            continue
        try:
            specs.append(_entry_to_spec(str(key), entry, origin))
        except (TypeError, ValueError, InvalidOperation) as exc:
            problems.append(f"{key}: {exc}")
    shown = problems[:_MAX_PROBLEMS]
    if len(problems) > _MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - _MAX_PROBLEMS} more invalid entries")
    return LiteLLMParse(
        specs=tuple(specs),
        skipped_non_chat=non_chat,
        skipped_sample_spec=sample,
        invalid=len(problems),
        problems=tuple(shown),
    )


def _load(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    if isinstance(source, Mapping):
        return source, "LiteLLM price data (dict)"
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            "load_litellm(source) needs a path to model_prices_and_context_window.json or the "
            f"loaded dict, got {type(source).__name__}"
        )
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(
            f"load_litellm(source): no file at {str(path)!r}; pass the path of a LiteLLM "
            "model_prices_and_context_window.json you downloaded"
        ) from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ValueError(f"load_litellm(source): {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ValueError(
            f"load_litellm(source): {str(path)!r} holds a JSON {type(data).__name__}; "
            "LiteLLM's format is one object keyed by model name"
        )
    return data, str(path)


def _entry_to_spec(key: str, entry: Mapping[str, Any], origin: str) -> ModelSpec:
    raw_provider = entry.get("litellm_provider")
    if not isinstance(raw_provider, str) or not raw_provider:
        raise ValueError("missing litellm_provider")
    provider = _PROVIDERS.get(raw_provider, raw_provider)
    name = _strip_prefix(key, raw_provider, provider)
    window = entry.get("max_input_tokens", entry.get("max_tokens"))
    if isinstance(window, bool) or not isinstance(window, int):
        raise ValueError(f"max_input_tokens must be an int, got {window!r}")
    max_out = entry.get("max_output_tokens")
    if max_out is not None and (isinstance(max_out, bool) or not isinstance(max_out, int)):
        raise ValueError(f"max_output_tokens must be an int, got {max_out!r}")
    return ModelSpec(
        provider=provider,
        name=name,
        context_window=window,
        max_output_tokens=max_out,
        tokenizer=_tokenizer(provider, name),
        price=_price(entry),
        source=origin,
    )


def _strip_prefix(key: str, raw_provider: str, provider: str) -> str:
    head, sep, tail = key.partition("/")
    if (
        sep
        and tail
        and head in {raw_provider, provider} | {k for k, v in _PROVIDERS.items() if v == provider}
    ):
        return tail
    return key


def _per_million(entry: Mapping[str, Any], field: str) -> Decimal | None:
    value = entry.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"{field} must be a number, got {value!r}")
    # str(float) is the shortest repr, i.e. what the JSON said: 1.5e-07 -> 0.15 exactly.
    per_token = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if per_token < 0:
        raise ValueError(f"{field} must be >= 0, got {value!r}")
    return _tidy(per_token * _PER_MILLION)


def _tidy(value: Decimal) -> Decimal:
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    # normalize() writes 10 as 1E+1; keep whole numbers readable.
    return normal.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normal


def _price(entry: Mapping[str, Any]) -> Price | None:
    base = _Rates(
        input=_per_million(entry, "input_cost_per_token"),
        output=_per_million(entry, "output_cost_per_token"),
        cached_input=_per_million(entry, "cache_read_input_token_cost"),
        cache_write=_per_million(entry, "cache_creation_input_token_cost"),
        reasoning=_per_million(entry, "output_cost_per_reasoning_token"),
    )
    if base == _Rates(None, None, None, None, None):
        return None
    tiers = _service_tiers(entry)
    thresholds = sorted(int(m.group(1)) for k in entry if (m := _ABOVE.match(k)))
    if not thresholds:
        return base.price(service_tiers=tiers)
    suffix = f"_above_{thresholds[0]}k_tokens"
    long_ctx = _Rates(
        input=_per_million(entry, f"input_cost_per_token{suffix}"),
        output=_first(_per_million(entry, f"output_cost_per_token{suffix}"), base.output),
        cached_input=_first(
            _per_million(entry, f"cache_read_input_token_cost{suffix}"), base.cached_input
        ),
        cache_write=_first(
            _per_million(entry, f"cache_creation_input_token_cost{suffix}"), base.cache_write
        ),
        reasoning=base.reasoning,
    )
    return base.price(
        long_context_threshold=thresholds[0] * 1000,
        long_context=long_ctx.price(),
        service_tiers=tiers,
    )


# LiteLLM's suffix for each service tier's rates (``input_cost_per_token_flex``…).
_TIER_SUFFIXES = {"flex": "_flex", "priority": "_priority", "batch": "_batches"}


def _service_tiers(entry: Mapping[str, Any]) -> dict[str, Price]:
    """The flex / priority / batch tables LiteLLM gives, so ``models --check`` can compare them."""
    tiers: dict[str, Price] = {}
    for tier, suffix in _TIER_SUFFIXES.items():
        rates = _Rates(
            input=_per_million(entry, f"input_cost_per_token{suffix}"),
            output=_per_million(entry, f"output_cost_per_token{suffix}"),
            cached_input=_per_million(entry, f"cache_read_input_token_cost{suffix}"),
            cache_write=None,
            reasoning=None,
        )
        if rates.input is not None or rates.output is not None:
            tiers[tier] = rates.price()
    return tiers


@dataclass(frozen=True, slots=True)
class _Rates:
    input: Decimal | None
    output: Decimal | None
    cached_input: Decimal | None
    cache_write: Decimal | None
    reasoning: Decimal | None

    def price(
        self,
        long_context_threshold: int | None = None,
        long_context: Price | None = None,
        service_tiers: Mapping[str, Price] | None = None,
    ) -> Price:
        return Price(
            input=self.input,
            output=self.output,
            cached_input=self.cached_input,
            cache_write=self.cache_write,
            reasoning=self.reasoning,
            long_context_threshold=long_context_threshold,
            long_context=long_context,
            service_tiers=service_tiers or {},
        )


def _first(value: Decimal | None, fallback: Decimal | None) -> Decimal | None:
    return value if value is not None else fallback


def _tokenizer(provider: str, name: str) -> str:
    if provider == "openai":
        legacy = name.startswith(("gpt-4", "gpt-3.5")) and not name.startswith(
            ("gpt-4o", "gpt-4.1", "gpt-4.5")
        )
        return "cl100k_base" if legacy else "o200k_base"
    return {
        "anthropic": "estimate:anthropic",
        "google": "estimate:gemini",
        "mistral": "estimate:mistral",
    }.get(provider, "estimate:generic")
