"""The user's limit tables, checked: ``tier=``, ``limits=``, ``limit_groups=`` and pacing.

Owns every error and warning a scheduler's limit configuration can raise (an unknown tier or
provider, a near miss of a catalogued model with "did you mean", a model in two groups, a
limits key that no model matched by the first call) and the mapping of the ``pacing`` option
onto `RateLimits.smoothing`. ``resolve.LimitResolver`` builds on these checks to answer one
model's limits; kept apart so the resolution reads without the messages.
"""

from __future__ import annotations

import difflib
import threading
import warnings
from collections.abc import Mapping
from typing import Any

from llm_routing._hints import close_match
from llm_routing.catalog import Catalog, Limits, ModelSpec, default_catalog
from llm_routing.catalog.enforcement import enforcement_for
from llm_routing.errors import UnknownModelError
from llm_routing.schedule.limits import RateLimits

__all__ = ["PACING_MODES", "check_pacing", "limit_options", "paced_by_default", "provider_of"]

_LIMIT_KEYS = frozenset({"rpm", "tpm", "rpd", "itpm", "otpm", "max_concurrency"})
_OPTION_KEYS = frozenset({"request_margin", "token_headroom", "smoothing", "pacing", "day"})
PACING_MODES = ("auto", "paced", "burst")
# LangChain's provider names (and the seed's) for the catalogue's.
_PROVIDER_ALIASES = {
    "google_genai": "google",
    "google_vertexai": "google",
    "gemini": "google",
    "vertex": "google",
    "mistralai": "mistral",
    "azure_openai": "openai",
    "azure": "openai",
}
# How alike a limits key and a catalogued name of the same provider must be for the key to be
# called a typo (an error) rather than a model the catalogue lacks (a warning at the first call):
# "gpt-4o-minii" is 0.96 like "gpt-4o-mini", a fine-tune "ft:gpt-4o-mini:org::id" 0.69.
_TYPO_CUTOFF = 0.85


# RateScheduler's keyword for each RateLimits option, so an error names what the caller wrote.
_OPTION_ARGUMENTS = {
    "request_margin": "request_margin",
    "token_headroom": "token_headroom",
    "smoothing": "smoothing",
    "day": "rpd_reset",
}


def _as_argument(message: str) -> str:
    """``RateLimits.day must be…`` -> ``RateScheduler(rpd_reset=…) must be…``."""
    for field, argument in _OPTION_ARGUMENTS.items():
        prefix = f"RateLimits.{field} "
        if message.startswith(prefix):
            return f"RateScheduler({argument}=…) {message.removeprefix(prefix)}"
    return message


def check_pacing(value: Any, where: str) -> None:
    """``pacing`` is one of `PACING_MODES`; the error says what each means."""
    if value not in PACING_MODES:
        raise ValueError(
            f"{where} must be 'auto' (pace where the provider enforces its limits per "
            "second, burst where its bucket allows it: the catalogue's enforcement), 'paced' "
            f"or 'burst'; got {value!r}"
        )


def paced_by_default(provider: str) -> bool:
    """Whether ``provider`` enforces per-minute limits over shorter periods (so we pace).

    From `llm_routing.catalog.enforcement`: every provider documented so far says its limits
    may be quantized (enforced per second), and an unknown provider is treated the same way,
    since pacing costs little where a minute-sized bucket would have allowed a burst.
    """
    return enforcement_for(provider).mode == "quantized"


def provider_of(name: str) -> str:
    """The catalogue's name of a provider LangChain (or the seed) calls ``name``."""
    name = name.strip().lower()
    return _PROVIDER_ALIASES.get(name, name)


def limit_options(fields: Mapping[str, Any], provider: str | None) -> dict[str, Any]:
    """``fields`` as `RateLimits` keywords: ``pacing`` becomes ``smoothing``.

    An explicit ``smoothing`` (deprecated) or ``pacing='paced'|'burst'`` wins; ``auto``
    follows the provider's documented enforcement (``provider=None``: only validating).
    """
    out = {k: v for k, v in fields.items() if k != "pacing"}
    pacing = fields.get("pacing", "auto")
    if out.get("smoothing") is None:
        if pacing == "paced":
            out["smoothing"] = True
        elif pacing == "burst" or provider is None:
            out["smoothing"] = False
        else:
            out["smoothing"] = paced_by_default(provider)
    return out


class TableChecks:
    """The checks of a scheduler's limit tables, and the bookkeeping of their unmatched keys.

    A base of `resolve.LimitResolver`, which sets these attributes in its ``__init__``.
    """

    _catalog: Catalog | None
    _options: dict[str, Any]
    _unmatched: dict[str, str]
    _overrides: dict[str, dict[str, Any]]
    _members: dict[str, str]
    _seen: list[str]
    _lock: threading.Lock
    check_unmatched: bool

    @property
    def catalog(self) -> Catalog:
        """The catalogue limits come from (the shared default unless one was given)."""
        return self._catalog if self._catalog is not None else default_catalog()

    # --- validation ------------------------------------------------------------------------

    def _known_tiers(self) -> dict[str, set[str]]:
        tiers: dict[str, set[str]] = {}
        for spec in self.catalog.models():
            tiers.setdefault(spec.provider, set()).update(spec.rate_limits)
        return tiers

    def _check_tier(self, tier: Any) -> dict[str, str]:
        known = self._known_tiers()
        every = sorted(set().union(*known.values())) if known else []
        if isinstance(tier, str):
            if tier not in every:
                close = difflib.get_close_matches(tier, every, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"RateScheduler(tier=…): unknown tier {tier!r}{hint}; the catalogue knows "
                    f"{', '.join(every)}. Per provider: tier={{'openai': 'tier2', "
                    f"'google': 'free'}}; or pass limits={{model: {{'rpm': …}}}}."
                )
            return {}
        if not isinstance(tier, Mapping):
            raise TypeError(
                "RateScheduler(tier=…) must be a tier name such as 'tier1' or a mapping "
                f"{{provider: tier}}, got {type(tier).__name__}"
            )
        resolved: dict[str, str] = {}
        for provider, name in tier.items():
            if not isinstance(provider, str) or not isinstance(name, str):
                raise TypeError(
                    f"RateScheduler(tier=…) maps provider names to tier names; got "
                    f"{provider!r}: {name!r}"
                )
            canonical = provider_of(provider)
            if canonical not in known:
                raise ValueError(
                    f"RateScheduler(tier=…): unknown provider {provider!r}; the catalogue has "
                    f"{', '.join(sorted(known))}"
                )
            if name not in known[canonical]:
                raise ValueError(
                    f"RateScheduler(tier=…): unknown tier {name!r} for {provider!r}; known: "
                    f"{', '.join(sorted(known[canonical]))}"
                )
            resolved[canonical] = name
        return resolved

    def _check_limits(self, limits: Any) -> dict[str, dict[str, Any]]:
        if limits is None:
            return {}
        if not isinstance(limits, Mapping):
            raise TypeError(
                "RateScheduler(limits=…) must map model names to limits, e.g. "
                "{'openai:gpt-4o-mini': {'rpm': 30, 'tpm': 200_000}}; "
                f"got {type(limits).__name__}"
            )
        out: dict[str, dict[str, Any]] = {}
        for name, entry in limits.items():
            if not isinstance(name, str) or not name.strip():
                raise TypeError(f"RateScheduler(limits=…) keys must be model names, got {name!r}")
            where = f"RateScheduler(limits[{name!r}])"
            if isinstance(entry, Limits):
                fields: dict[str, Any] = {k: getattr(entry, k) for k in _LIMIT_KEYS}
            elif isinstance(entry, Mapping):
                fields = dict(entry)
            else:
                raise TypeError(
                    f"{where} must be a mapping such as {{'rpm': 30, 'tpm': 200_000}} or a "
                    f"Limits, got {type(entry).__name__}"
                )
            self._check_fields(fields, where, "limits")
            key = self._known_key(name, where)
            if key is None:
                key = name.strip()
                self._unmatched[key] = f"limits[{name!r}]"
            out[key] = fields
        return out

    def _check_fields(self, fields: Mapping[str, Any], where: str, keys: str) -> None:
        """One ``limits`` entry or group's limits and options, checked as RateLimits would."""
        unknown = set(fields) - _LIMIT_KEYS - _OPTION_KEYS
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {sorted(unknown)}; {keys}: {sorted(_LIMIT_KEYS)}, "
                f"options: {sorted(_OPTION_KEYS)}"
            )
        if "pacing" in fields:
            check_pacing(fields["pacing"], f"{where}['pacing']")
        try:
            RateLimits(**limit_options({**self._options, **fields}, None))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None

    def _check_groups(self, groups: Any) -> dict[str, dict[str, Any]]:
        """``limit_groups={name: {"models": [...], "rpm": …}}``: models sharing one set of windows.

        Providers document limits shared by a family (OpenAI's "shared limit", Anthropic's
        Opus 4.x pool); scheduled per model, N members would each be sent the whole limit.
        A member belongs to one group and has no ``limits`` entry of its own (which would
        win is not obvious, so neither does).
        """
        if groups is None:
            return {}
        if not isinstance(groups, Mapping):
            raise TypeError(
                "RateScheduler(limit_groups=…) must map group names to tables, e.g. "
                "{'openai-mini': {'models': ['openai:gpt-4o-mini', 'openai:gpt-4.1-mini'], "
                f"'rpm': 500}}}}; got {type(groups).__name__}"
            )
        out: dict[str, dict[str, Any]] = {}
        for group, entry in groups.items():
            where = f"RateScheduler(limit_groups[{group!r}])"
            if not isinstance(group, str) or not group.strip():
                raise TypeError(f"RateScheduler(limit_groups=…) keys must be names, got {group!r}")
            if not isinstance(entry, Mapping):
                raise TypeError(
                    f"{where} must be a mapping such as {{'models': [...], 'rpm': 500}}, got "
                    f"{type(entry).__name__}"
                )
            fields = {k: v for k, v in entry.items() if k != "models"}
            models = entry.get("models")
            if not isinstance(models, list | tuple) or not models:
                raise ValueError(f"{where}['models'] must be a non-empty list of model names")
            self._check_fields(fields, where, "models, limits")
            for model in models:
                if not isinstance(model, str) or not model.strip():
                    raise TypeError(f"{where}['models'] holds {model!r}, not a model name")
                key = self._known_key(model, f"RateScheduler(limit_groups[{group!r}]['models'])")
                if key is None:
                    key = model.strip()
                    self._unmatched[key] = f"limit_groups[{group!r}] member {model!r}"
                if key in self._members:
                    raise ValueError(
                        f"{where}: {model!r} is already in group {self._members[key]!r}; a "
                        "model shares one set of windows, so it belongs to one group"
                    )
                if key in self._overrides:
                    raise ValueError(
                        f"{where}: {model!r} also has limits[{model!r}]; a member is limited "
                        "by its group, so drop one of them"
                    )
                self._members[key] = group
            out[group] = fields
        return out

    def _known_key(self, name: str, where: str) -> str | None:
        """The catalogue's key for the limits key ``name``; ``None`` for a model it lacks.

        A near miss of a catalogued model of a catalogued provider is a typo, and an error
        now: otherwise the real model would run on the catalogue's limits, not these.
        """
        try:
            return self.catalog.get(name).key
        except UnknownModelError:
            pass
        except (TypeError, ValueError):
            return None  # ambiguous without a provider: kept as written, like a custom model
        provider, found, model = name.strip().partition(":")
        if not found:
            provider, model = "", name.strip()
        specs = [
            spec
            for spec in self.catalog.models()
            if not provider or spec.provider == provider_of(provider)
        ]
        names = {spec.name: spec.key for spec in specs}
        for spec in specs:
            names.update(dict.fromkeys(spec.aliases, spec.key))
        close = close_match(model.lower(), names, cutoff=_TYPO_CUTOFF)
        if close is None:
            return None
        raise ValueError(
            f"{where}: the catalogue has no model {name!r}; did you mean {names[close]!r}? "
            "(A model the catalogue lacks, such as a new release, needs its spec registered "
            "first: default_catalog().register(ModelSpec(...)).)"
        )

    def _matched(self, key: str) -> None:
        if key in self._unmatched:
            with self._lock:
                self._unmatched.pop(key, None)

    def warn_unmatched(self, model: ModelSpec) -> None:
        """At the first call (of ``model``): warn about each limits key no model has matched.

        Such a key names no catalogued model, so it could be a custom model this scheduler
        will wrap later, or a typo that leaves the real model on the catalogue's limits. Only
        the first call looks: by then `build_router` has resolved every model of its router.
        """
        with self._lock:
            if not self.check_unmatched:
                return
            self.check_unmatched = False
            unmatched = dict(self._unmatched)
            seen = list(self._seen)
        for key, written in unmatched.items():
            close = close_match(key, seen)
            hint = f"did you mean {close!r}? " if close is not None else ""
            warnings.warn(
                f"RateScheduler({written}) has matched no model by the first call "
                f"(of {model.key}): the catalogue has no such model and none this scheduler "
                f"resolved ({', '.join(seen) or 'none'}) is called that. {hint}If it is "
                "misspelt, the model it meant runs on the catalogue's limits instead; if it "
                "names a model you call later, register its spec in the catalogue "
                "(default_catalog().register(ModelSpec(...))) to silence this.",
                UserWarning,
                stacklevel=4,
            )
