"""Looking models up: the ``Catalog`` (names, aliases, provider prefixes) and the shared one.

It owns name resolution and the precedence of sources (override > ``model.profile`` > shipped
data > a LiteLLM file); reading each source is ``sources``'. It does not count tokens, price
calls or schedule anything.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from llm_routing.catalog.litellm import LiteLLMLoadResult, read_litellm
from llm_routing.catalog.sources import (
    guess_tokenizer,
    identify,
    merge_litellm,
    profile_sizes,
    shipped_specs,
)
from llm_routing.catalog.spec import ModelSpec
from llm_routing.errors import UnknownModelError

__all__ = ["Catalog", "default_catalog", "normalize_provider"]

# LangChain's ``init_chat_model`` prefixes and ``ls_provider`` values, mapped to our provider names.
_PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "azure_openai": "openai",
    "azure": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "google_genai": "google",
    "google_vertexai": "google",
    "google_anthropic_vertex": "anthropic",
    "gemini": "google",
    "vertex_ai": "google",
    "mistral": "mistral",
    "mistralai": "mistral",
}

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
_LATEST_SUFFIX = "-latest"
_REGISTER_HINT = 'catalog.register(ModelSpec(provider="...", name="...", context_window=...))'


def normalize_provider(provider: str) -> str:
    """Our provider name for a LangChain/LiteLLM prefix (``google_genai`` -> ``google``)."""
    lowered = provider.strip().lower()
    return _PROVIDER_ALIASES.get(lowered, lowered)


def _candidate_names(name: str) -> list[str]:
    """The name, then without its date suffix, ``-latest``, or both: the order lookups try."""
    out = [name]
    undated = _DATE_SUFFIX.sub("", name)
    if undated != name:
        out.append(undated)
    if name.endswith(_LATEST_SUFFIX):
        out.append(name.removesuffix(_LATEST_SUFFIX))
    if undated.endswith(_LATEST_SUFFIX):
        out.append(undated.removesuffix(_LATEST_SUFFIX))
    return out


class Catalog:
    """A set of ``ModelSpec`` keyed by ``provider:name``, looked up in every form users write.

    ``get`` accepts ``openai:gpt-4o-mini``, ``openai/gpt-4o-mini``, ``gpt-4o-mini``, aliases, dated
    snapshots (``gpt-4o-mini-2024-07-18``, ``claude-sonnet-4-5-20250929``), ``-latest`` names and
    LangChain's provider prefixes (``google_genai:``, ``mistralai:``, ``azure_openai:``…).
    A catalogue is mutable (``register``, ``load_litellm``); the specs in it are immutable.

    Example:
        >>> from llm_routing import Catalog, ModelSpec, Price
        >>> catalog = Catalog([ModelSpec(provider="acme", name="acme-1", context_window=32_000)])
        >>> catalog.get("acme/acme-1").key
        'acme:acme-1'
        >>> spec = catalog.get("acme-1").with_overrides(price=Price(input=0.5, output=1.5))
        >>> catalog.register(spec, replace=True).price.output
        Decimal('1.5')
    """

    def __init__(self, specs: Iterable[ModelSpec] = ()) -> None:
        self._specs: dict[str, ModelSpec] = {}
        # (provider, lowered name or alias) -> canonical key
        self._index: dict[tuple[str, str], str] = {}
        for spec in specs:
            self.register(spec)

    # -- building ---------------------------------------------------------------------------

    def register(self, spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
        """Add ``spec``; an existing key or a name another model already uses needs ``replace``."""
        if not isinstance(spec, ModelSpec):
            raise TypeError(
                f"Catalog.register(spec) needs a ModelSpec, got {type(spec).__name__}: {spec!r}"
            )
        spec = self._canonical(spec)
        names = [spec.name.lower(), *(a.lower() for a in spec.aliases)]
        if not replace:
            if spec.key in self._specs:
                raise ValueError(
                    f"{spec.key} is already in the catalogue; pass replace=True to replace it"
                )
            for name in names:
                owner = self._index.get((spec.provider, name))
                if owner is not None:
                    raise ValueError(
                        f"name {name!r} of {spec.key} is already used by {owner}; "
                        "pass replace=True to take it over"
                    )
        old = self._specs.get(spec.key)
        if old is not None:
            for name in [old.name.lower(), *(a.lower() for a in old.aliases)]:
                if self._index.get((old.provider, name)) == old.key:
                    del self._index[(old.provider, name)]
        self._specs[spec.key] = spec
        for name in names:
            self._index[(spec.provider, name)] = spec.key
        return spec

    @staticmethod
    def _canonical(spec: ModelSpec) -> ModelSpec:
        provider = normalize_provider(spec.provider)
        return spec if provider == spec.provider else spec.with_overrides(provider=provider)

    def load_litellm(
        self, source: str | os.PathLike[str] | Mapping[str, Any], *, override: bool = False
    ) -> LiteLLMLoadResult:
        """Add models from a LiteLLM ``model_prices_and_context_window.json`` (path or dict).

        Entries fill models the catalogue lacks. With ``override=True`` an entry whose name is a
        model's canonical name replaces that model's window, output cap and the prices it gives
        (rate limits, aliases and tokenizer stay). Entries that match only an alias are never
        merged into the family: a dated snapshot can be priced differently.
        """
        parsed = read_litellm(source)
        added = replaced = known = 0
        for spec in parsed.specs:
            owner = self._index.get((spec.provider, spec.name.lower()))
            if owner is None:
                self.register(spec)
                added += 1
                continue
            current = self._specs[owner]
            if override and current.name.lower() == spec.name.lower():
                self.register(merge_litellm(current, spec), replace=True)
                replaced += 1
            else:
                known += 1
        return LiteLLMLoadResult(
            added=added,
            replaced=replaced,
            skipped_known=known,
            skipped_non_chat=parsed.skipped_non_chat,
            skipped_sample_spec=parsed.skipped_sample_spec,
            invalid=parsed.invalid,
            problems=parsed.problems,
        )

    def copy(self) -> Catalog:
        """An independent catalogue with the same specs; registering on it leaves this one be."""
        return Catalog(self._specs.values())

    # -- lookups ----------------------------------------------------------------------------

    def get(self, model: str) -> ModelSpec:
        """The spec for ``model`` in any accepted form; unknown -> ``UnknownModelError``."""
        if not isinstance(model, str):
            raise TypeError(
                f"Catalog.get(model) needs a model name string such as 'openai:gpt-4o-mini', "
                f"got {type(model).__name__}: {model!r}"
            )
        text = model.strip()
        if not text:
            raise ValueError("Catalog.get(model) got an empty model name")
        provider, name = self._split(text)
        keys = self._resolve(provider, name)
        if provider is not None and not keys and provider not in self.providers():
            # A prefix we do not know (``genericfake:gpt-4o``): try the bare name.
            keys = self._resolve(None, name)
        if len(keys) == 1:
            return self._specs[keys[0]]
        if len(keys) > 1:
            raise ValueError(
                f"model {model!r} is ambiguous: it names {', '.join(keys)}. "
                "Prefix the provider, e.g. "
                f"catalog.get({keys[0]!r})"
            )
        raise self._unknown(model, provider, name)

    def _split(self, text: str) -> tuple[str | None, str]:
        for sep in (":", "/"):
            head, found, tail = text.partition(sep)
            if found and head and tail:
                provider = normalize_provider(head)
                # ``/`` is also part of some model names; only split on it for a known provider.
                if sep == ":" or provider in self.providers() or head.lower() in _PROVIDER_ALIASES:
                    return provider, tail
        return None, text

    def _resolve(self, provider: str | None, name: str) -> list[str]:
        providers = [provider] if provider is not None else self.providers()
        for candidate in _candidate_names(name.lower()):
            keys = sorted(
                {self._index[(p, candidate)] for p in providers if (p, candidate) in self._index}
            )
            if keys:
                return keys
        return []

    def _unknown(self, model: str, provider: str | None, name: str) -> UnknownModelError:
        pool = [n for (p, n) in self._index if provider is None or p == provider]
        close = difflib.get_close_matches(name.lower(), pool, n=3, cutoff=0.6)
        suggestions = sorted({self._index_key_for(n, provider) for n in close})
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        where = f" for provider {provider!r}" if provider is not None else ""
        return UnknownModelError(
            f"unknown model {model!r}{where}: the catalogue has no such model.{hint} "
            f"To use it, register its spec: {_REGISTER_HINT}, "
            "or load a LiteLLM price file with catalog.load_litellm(path).",
            model=model,
        )

    def _index_key_for(self, name: str, provider: str | None) -> str:
        for (p, n), key in self._index.items():
            if n == name and (provider is None or p == provider):
                return key
        return name

    def models(self, provider: str | None = None) -> list[ModelSpec]:
        """All specs sorted by key, optionally of one provider (unknown -> ``ValueError``)."""
        if provider is None:
            return [self._specs[k] for k in sorted(self._specs)]
        wanted = normalize_provider(provider)
        if wanted not in self.providers():
            raise ValueError(
                f"unknown provider {provider!r}; known providers: {', '.join(self.providers())}"
            )
        return [s for k, s in sorted(self._specs.items()) if s.provider == wanted]

    def providers(self) -> list[str]:
        """The provider names present, sorted."""
        return sorted({s.provider for s in self._specs.values()})

    def for_model(
        self, chat_model: Any, *, overrides: Mapping[str, Any] | None = None
    ) -> ModelSpec:
        """The spec of a LangChain chat model, with its ``profile`` and explicit overrides applied.

        Precedence: ``overrides`` > ``chat_model.profile`` (``max_input_tokens``,
        ``max_output_tokens``) > this catalogue. A model the catalogue lacks but whose profile
        gives ``max_input_tokens`` gets a spec built from the profile (prices unknown, no limits).
        """
        provider, name = identify(chat_model)
        profile = profile_sizes(chat_model)
        if name is None and profile.get("context_window") is not None:
            # A model without a name (test fakes, custom wrappers) but with a profile.
            name = provider or type(chat_model).__name__
        if name is None:
            raise TypeError(
                f"Catalog.for_model(chat_model) could not read a model name from "
                f"{type(chat_model).__name__}: it has no _get_ls_params()['ls_model_name'], "
                "model_name or model attribute. Pass a LangChain chat model, or look the spec up "
                "with catalog.get(name)."
            )
        query = f"{provider}:{name}" if provider else name
        try:
            spec = self.get(query)
        except UnknownModelError:
            if profile.get("context_window") is None:
                raise
            spec = ModelSpec(
                provider=normalize_provider(provider) if provider else "unknown",
                name=name,
                context_window=profile["context_window"],
                max_output_tokens=profile.get("max_output_tokens"),
                tokenizer=guess_tokenizer(normalize_provider(provider) if provider else None),
                source="model.profile",
            )
            profile = {}
        changes = {k: v for k, v in profile.items() if v is not None}
        if overrides:
            changes.update(overrides)
        return spec.with_overrides(**changes) if changes else spec

    # -- container protocol ---------------------------------------------------------------

    def __contains__(self, model: object) -> bool:
        if not isinstance(model, str):
            return False
        try:
            self.get(model)
        except UnknownModelError:
            return False
        except ValueError:
            return True  # ambiguous: it is here, under more than one provider
        return True

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models())

    def __repr__(self) -> str:
        return f"Catalog({len(self)} models from {', '.join(self.providers()) or 'no providers'})"


def default_catalog() -> Catalog:
    """The process-wide catalogue: the shipped models plus whatever the user registered.

    One shared instance on purpose: ``default_catalog().register(spec)`` once at start-up and the
    guard, scheduler, tracker and router all see the new model. For an isolated catalogue (tests,
    experiments) take ``default_catalog().copy()`` or build ``Catalog(specs)``.

    Example:
        >>> from llm_routing import default_catalog
        >>> spec = default_catalog().get("openai/gpt-4o-mini")
        >>> spec.key, spec.context_window, spec.price.input, spec.limits("tier1").rpm
        ('openai:gpt-4o-mini', 128000, Decimal('0.15'), 500)
    """
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = Catalog(shipped_specs())
    return _DEFAULT


_DEFAULT: Catalog | None = None
_DEFAULT_LOCK = threading.Lock()
