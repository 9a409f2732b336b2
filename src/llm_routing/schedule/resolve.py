"""Which rate limits apply to a model: the catalogue's tier, the user's overrides, the headroom.

Owns the resolution of one model's `RateLimits` (cached per model) and its scheduling key
(its limit group's, its API key's); the checks of the tables it resolves from are
``overrides``'s (re-exported here), the arithmetic of windows ``policy``'s.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Mapping
from typing import Any

from llm_routing.catalog import Catalog, ModelSpec
from llm_routing.errors import UnknownModelError
from llm_routing.schedule.limits import RateLimits
from llm_routing.schedule.overrides import (
    _LIMIT_KEYS,
    PACING_MODES,
    TableChecks,
    _as_argument,
    check_pacing,
    limit_options,
    paced_by_default,
    provider_of,
)

__all__ = [
    "PACING_MODES",
    "LimitResolver",
    "api_key_fingerprint",
    "check_pacing",
    "paced_by_default",
]

_KEY_ATTRS = ("openai_api_key", "anthropic_api_key", "google_api_key", "mistral_api_key", "api_key")


def api_key_fingerprint(model: Any) -> str | None:
    """A short hash of the model's API key (never the key itself), or ``None`` without one.

    Limits belong to an organisation or project, so keys are opt-in (``per_api_key=True``):
    two keys of two projects get two sets of windows.
    """
    for attr in _KEY_ATTRS:
        try:
            value = getattr(model, attr, None)
        except Exception:  # an odd model property must not break scheduling
            value = None
        if value is None:
            continue
        secret = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        if isinstance(secret, str) and secret:
            return hashlib.sha256(secret.encode()).hexdigest()[:12]
    return None


class LimitResolver(TableChecks):
    """Resolves and caches the `RateLimits` of each model for one scheduler.

    Precedence: an explicit ``limits[model]`` entry (its fields replace the tier's; a field set
    to ``None`` removes that limit) > the catalogue's limits for the model's tier. A model the
    catalogue has no limits for is unlimited, with one warning, unless ``limits`` names it.
    """

    def __init__(
        self,
        tier: str | Mapping[str, str],
        limits: Mapping[str, Any] | None,
        catalog: Catalog | None,
        options: Mapping[str, Any],
        groups: Mapping[str, Any] | None = None,
    ) -> None:
        if catalog is not None and not isinstance(catalog, Catalog):
            raise TypeError(
                f"RateScheduler(catalog=…) must be a Catalog or None, got {type(catalog).__name__}"
            )
        self._catalog = catalog
        self._tiers = self._check_tier(tier)
        self._default_tier = tier if isinstance(tier, str) else None
        self._options = dict(options)
        try:
            RateLimits(**limit_options(self._options, None))  # names the bad option
        except (TypeError, ValueError) as exc:
            raise type(exc)(_as_argument(str(exc))) from None
        # Keys naming no catalogued model (a custom provider's, a fine-tune): legitimate, or a
        # typo nobody can tell yet; each is struck off when a model matches it, and what is
        # left at the first call is warned about (`warn_unmatched`), never silently ignored.
        self._unmatched: dict[str, str] = {}
        self._overrides = self._check_limits(limits)
        self._members: dict[str, str] = {}
        self._groups = self._check_groups(groups)
        self._cache: dict[str, RateLimits] = {}
        self._warned: set[str] = set()
        self._seen: list[str] = []
        self._lock = threading.Lock()
        self.check_unmatched = bool(self._unmatched)
        """True until the first call has looked for limits keys no model matched."""

    def group_of(self, spec: ModelSpec) -> str | None:
        """The windows key of ``spec``'s limit group (``None``: it is scheduled on its own)."""
        group = self._members.get(spec.key) or self._members.get(spec.name)
        return None if group is None else f"group:{group}"

    def _canonical(self, name: str) -> str:
        try:
            return self.catalog.get(name).key
        except (TypeError, ValueError):
            return name.strip()

    # --- resolution ------------------------------------------------------------------------

    def tier_for(self, provider: str) -> str | None:
        """The tier configured for ``provider`` (``None``: not configured)."""
        if self._default_tier is not None:
            return self._default_tier
        return self._tiers.get(provider_of(provider))

    def for_spec(self, spec: ModelSpec) -> RateLimits:
        """The limits of the model ``spec`` describes (cached)."""
        cached = self._cache.get(spec.key)
        if cached is not None:
            return cached
        group = self._members.get(spec.key) or self._members.get(spec.name)
        if group is not None:
            self._matched(spec.key)
            self._matched(spec.name)
            fields = {**self._options, **self._groups[group]}
            resolved = RateLimits(**limit_options(fields, spec.provider))
            with self._lock:
                self._cache[spec.key] = resolved
                if spec.key not in self._seen:
                    self._seen.append(spec.key)
            return resolved
        override = self._overrides.get(spec.key)
        self._matched(spec.key)
        if override is None:
            # A model the catalogue lacks keeps the bare name it was given under (``_canonical``
            # has no provider to add), while its spec (from ``model.profile``) has one.
            override = self._overrides.get(spec.name)
            self._matched(spec.name)
        with self._lock:
            if spec.key not in self._seen:
                self._seen.append(spec.key)
        base: dict[str, Any] = {}
        tier = self.tier_for(spec.provider)
        if tier is not None and tier in spec.rate_limits:
            published = spec.rate_limits[tier]
            base = {k: getattr(published, k) for k in _LIMIT_KEYS}
        elif override is None:
            if tier is None:
                raise ValueError(
                    f"RateScheduler has no tier for provider {spec.provider!r} (model "
                    f"{spec.key}); add it to tier={{'{spec.provider}': 'tier1', …}} or pass "
                    f"limits={{'{spec.key}': {{'rpm': …, 'tpm': …}}}}"
                )
            if spec.rate_limits:
                raise ValueError(
                    f"RateScheduler: {spec.key} has no published limits for tier {tier!r} "
                    f"(known: {', '.join(spec.rate_limits)}); pick one of those or pass "
                    f"limits={{'{spec.key}': {{'rpm': …, 'tpm': …}}}}"
                )
            self._warn_once(
                spec.key,
                f"RateScheduler: the catalogue has no rate limits for {spec.key}; it is not "
                f"paced (429s are still retried). Pass limits={{'{spec.key}': {{...}}}}.",
            )
        merged = {**self._options, **base, **(override or {})}
        resolved = RateLimits(**limit_options(merged, spec.provider))
        with self._lock:
            self._cache[spec.key] = resolved
        return resolved

    def for_name(self, name: str) -> tuple[str, RateLimits]:
        """``(key, limits)`` for a model known only by name (``limiter_for``, custom models)."""
        key = self._canonical(name)
        try:
            spec = self.catalog.get(name)
        except (TypeError, ValueError):
            override = self._overrides.get(key)
            self._matched(key)
            if override is None:
                raise UnknownModelError(
                    f"RateScheduler does not know the model {name!r}: register it in the "
                    f"catalogue (default_catalog().register(ModelSpec(...))) or pass "
                    f"limits={{'{name}': {{'rpm': …, 'tpm': …}}}}",
                    model=name,
                ) from None
            provider = key.split(":", 1)[0] if ":" in key else ""
            return key, RateLimits(**limit_options({**self._options, **override}, provider))
        return spec.key, self.for_spec(spec)

    def _warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=5)
