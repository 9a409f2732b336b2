"""Where specs come from besides a registration: the shipped data, ``model.profile``, LiteLLM.

Owns reading one row of the shipped JSON (`spec_from_dict`), what a LangChain chat model says
about itself (its name, its profile's window and output cap, a tokenizer guess by provider)
and how a LiteLLM entry merges into a spec the catalogue has. The precedence between these
sources is the `Catalog`'s (``lookup``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from llm_routing._args import is_int
from llm_routing.catalog.spec import Limits, ModelSpec, Price

__all__ = [
    "guess_tokenizer",
    "identify",
    "merge_litellm",
    "profile_sizes",
    "shipped_specs",
    "spec_from_dict",
]

_ROW_KEYS = frozenset(
    {
        "provider",
        "name",
        "aliases",
        "context_window",
        "max_output_tokens",
        "tokenizer",
        "price",
        "rate_limits",
        "source",
        "as_of",
        "deprecated",
        "notes",
    }
)


def spec_from_dict(row: Mapping[str, Any]) -> ModelSpec:
    """Build a spec from one row of the shipped JSON."""
    unknown = set(row) - _ROW_KEYS
    if unknown:
        raise ValueError(f"unknown model field(s) {sorted(unknown)}; known: {sorted(_ROW_KEYS)}")
    for required in ("provider", "name", "context_window"):
        if required not in row:
            raise ValueError(f"model row {dict(row).get('name', '?')!r} lacks {required!r}")
    price = row.get("price")
    limits = row.get("rate_limits") or {}
    return ModelSpec(
        provider=row["provider"],
        name=row["name"],
        context_window=row["context_window"],
        max_output_tokens=row.get("max_output_tokens"),
        tokenizer=row.get("tokenizer", "o200k_base"),
        price=Price.from_dict(price) if price is not None else None,
        rate_limits={tier: Limits.from_dict(lim) for tier, lim in limits.items()},
        aliases=tuple(row.get("aliases", ())),
        source=row.get("source"),
        as_of=row.get("as_of"),
        deprecated=bool(row.get("deprecated", False)),
        notes=row.get("notes"),
    )


def merge_litellm(current: ModelSpec, incoming: ModelSpec) -> ModelSpec:
    """``current`` with a LiteLLM entry's window, output cap and the prices it gives."""
    return current.with_overrides(
        context_window=incoming.context_window,
        max_output_tokens=incoming.max_output_tokens or current.max_output_tokens,
        price=_merge_price(current.price, incoming.price),
        source=f"{incoming.source} (over {current.source})",
        as_of=incoming.as_of or current.as_of,
    )


def _merge_price(current: Price | None, incoming: Price | None) -> Price | None:
    """The incoming prices where given, the current ones where the incoming table is silent."""
    if incoming is None or current is None:
        return incoming if incoming is not None else current

    def pick(name: str) -> Decimal | None:
        value: Decimal | None = getattr(incoming, name)
        return value if value is not None else getattr(current, name)

    long_source = incoming if incoming.long_context is not None else current
    return Price(
        input=pick("input"),
        output=pick("output"),
        cached_input=pick("cached_input"),
        cache_write=pick("cache_write"),
        reasoning=pick("reasoning"),
        long_context_threshold=long_source.long_context_threshold,
        long_context=long_source.long_context,
        # Tier tables LiteLLM gives replace ours one tier at a time; ours stay for the rest.
        service_tiers={**current.service_tiers, **incoming.service_tiers},
    )


def identify(chat_model: Any) -> tuple[str | None, str | None]:
    """A chat model's (provider, model name) as LangChain reports them, else its attributes."""
    provider: str | None = None
    name: str | None = None
    get_params = getattr(chat_model, "_get_ls_params", None)
    if callable(get_params):
        try:
            params = get_params()
        except Exception:  # a model's own hook failing must not hide the attribute fallbacks
            params = {}
        if isinstance(params, Mapping):
            provider = params.get("ls_provider") or None
            name = params.get("ls_model_name") or None
    if name is None:
        for attr in ("model_name", "model"):
            value = getattr(chat_model, attr, None)
            if isinstance(value, str) and value:
                name = value
                break
    return (str(provider) if provider else None), (str(name) if name else None)


def profile_sizes(chat_model: Any) -> dict[str, Any]:
    """The window and output cap a chat model's ``profile`` gives (positive ints only)."""
    profile = getattr(chat_model, "profile", None)
    if not isinstance(profile, Mapping):
        return {}
    out: dict[str, Any] = {}
    window = profile.get("max_input_tokens")
    if is_int(window) and window > 0:
        out["context_window"] = window
    max_out = profile.get("max_output_tokens")
    if is_int(max_out) and max_out > 0:
        out["max_output_tokens"] = max_out
    return out


def guess_tokenizer(family: str | None) -> str:
    """The tokenizer to assume for a model of provider ``family`` (our name) the data lacks."""
    return {
        "openai": "o200k_base",
        "anthropic": "estimate:anthropic",
        "google": "estimate:gemini",
        "mistral": "estimate:mistral",
    }.get(family or "", "estimate:generic")


@lru_cache(maxsize=1)
def shipped_specs() -> tuple[ModelSpec, ...]:
    """The models of ``data/models.json`` (read once)."""
    text = resources.files("llm_routing.catalog").joinpath("data/models.json").read_text("utf-8")
    doc = json.loads(text, parse_float=Decimal)
    if doc.get("schema") != 1:
        raise ValueError(f"catalog/data/models.json has schema {doc.get('schema')!r}; expected 1")
    return tuple(spec_from_dict(row) for row in doc["models"])
