"""The router file format's values: what each key may hold, checked before any model is built.

One function per key or table, each raising an error that names the dotted key and the source
(``router.max_wait: must be >= 0, got -1 (in router.toml)``). Apart from `from_config`, which
reads the source, and `config_build`, which turns the checked tree into a router, because these are
the format's rules and that is its use. What the values mean is `build_router`'s and
`ContextGuard`'s.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from llm_routing._args import is_int, is_number
from llm_routing._hints import did_you_mean
from llm_routing.catalog import default_catalog, normalize_provider
from llm_routing.errors import UnknownModelError

__all__ = [
    "GUARD_KEYS",
    "ROUTER_KEYS",
    "TOP_KEYS",
    "ConfigError",
    "Problem",
    "backend",
    "check_keys",
    "check_unique",
    "dotted",
    "guard",
    "model_list",
    "model_name",
    "models",
    "number",
    "table",
    "tier",
]

# [simulate] (latency, limits, prices of the simulated providers) is read by
# `llm-routing simulate` only; the router ignores it, so one file serves both.
TOP_KEYS = ("router", "scheduler", "guard", "budget", "langfuse", "defaults", "models", "simulate")
ROUTER_KEYS = (
    "primary",
    "fallbacks",
    "large_context",
    "tier",
    "max_wait",
    "budget_usd",
    "backend",
    "langfuse",
)
GUARD_KEYS = ("enabled", "safety", "reserve_output")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(TypeError, ValueError):
    """Several mistakes in one config, each with its dotted key: all of them, not the first.

    Both a ``TypeError`` and a ``ValueError``, so code that catches either kind for one
    mistake catches a list of them too. ``problems`` holds each mistake's error.
    """

    def __init__(self, label: str, problems: Sequence[Exception]) -> None:
        self.problems = tuple(problems)
        suffix = f" (in {label})"
        lines = [str(p).removesuffix(suffix) for p in self.problems]
        super().__init__(
            f"{len(lines)} mistakes in {label}; fix each:\n" + "\n".join(f"- {x}" for x in lines)
        )


class Problem:
    """Builds errors that name the source (file or mapping) and the dotted key at fault.

    Collects them too (`collect`, `raise_collected`): a user who fixes one mistake per run
    would otherwise meet a file's mistakes one at a time.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.errors: list[Exception] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run a check; a ``TypeError``/``ValueError`` it raises is kept for later, not raised."""
        try:
            yield
        except ConfigError as exc:
            self.errors.extend(exc.problems)
        except (TypeError, ValueError) as exc:
            self.errors.append(exc)

    def raise_collected(self) -> None:
        """Raise what `collect` kept: one mistake as itself, several as one `ConfigError`."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigError(self.label, self.errors)

    def value(self, key: str, message: str) -> ValueError:
        """A ``ValueError``: the value at ``key`` is of the right type but wrong."""
        return ValueError(f"{key}: {message} (in {self.label})")

    def type(self, key: str, expected: str, got: Any) -> TypeError:
        """A ``TypeError``: ``key`` holds ``got``, of another type than ``expected``."""
        return TypeError(
            f"{key}: expected {expected}, got {type(got).__name__} {got!r} (in {self.label})"
        )


def dotted(parent: str, key: str) -> str:
    """``parent.key`` as TOML writes it (a key that is not bare is quoted)."""
    part = key if _BARE_KEY.fullmatch(key) else f'"{key}"'
    return f"{parent}.{part}" if parent else part


def check_keys(
    table: Mapping[str, Any], known: Sequence[str], parent: str, problem: Problem
) -> None:
    """Every key of ``table`` is one of ``known``; a typo gets a "did you mean" (all reported)."""
    found = Problem(problem.label)
    for key in table:
        with found.collect():
            if not isinstance(key, str):
                raise problem.type(dotted(parent, str(key)), "a string key", key)
            if key not in known:
                raise problem.value(dotted(parent, key), f"unknown key; {did_you_mean(key, known)}")
    found.raise_collected()


def table(data: Mapping[str, Any], key: str, parent: str, problem: Problem) -> dict[str, Any]:
    """The sub-table ``key`` (empty when absent); anything but a mapping is an error."""
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise problem.type(dotted(parent, key), "a table (mapping)", value)
    return dict(value)


def number(table: Mapping[str, Any], key: str, parent: str, problem: Problem) -> float | int | None:
    """The number at ``key`` (None when absent): finite, and never a bool."""
    value = table.get(key)
    if value is None:
        return None
    if not is_number(value):
        raise problem.type(dotted(parent, key), "a number", value)
    if not math.isfinite(value):
        raise problem.value(dotted(parent, key), f"must be a finite number, got {value!r}")
    return value


def model_name(value: Any, key: str, problem: Problem) -> str:
    """A non-empty model name string."""
    if not isinstance(value, str):
        raise problem.type(key, "a model name string such as 'openai:gpt-4o-mini'", value)
    if not value.strip():
        raise problem.value(key, "empty model name; write 'provider:model'")
    return value


def model_list(table: Mapping[str, Any], key: str, problem: Problem) -> list[str]:
    """``router.<key>``: a list of model names (empty when absent)."""
    value = table.get(key, [])
    where = dotted("router", key)
    if not isinstance(value, list | tuple):
        raise problem.type(
            where, 'a list of model names, e.g. ["anthropic:claude-haiku-4-5"]', value
        )
    return [model_name(item, f"{where}[{i}]", problem) for i, item in enumerate(value)]


def _provider(name: str) -> str | None:
    head, found, _tail = name.partition(":")
    return normalize_provider(head) if found and head else None


def _check_tier(tier: str, model: str, key: str, problem: Problem) -> None:
    try:
        known = default_catalog().get(model).tiers
    except (UnknownModelError, TypeError, ValueError):
        return  # an uncatalogued model has no tier list; build_router reports the model itself
    if known and tier not in known:
        close = difflib.get_close_matches(tier, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise problem.value(
            key, f"unknown tier {tier!r} for {model}; {hint}known tiers: {', '.join(known)}"
        )


def tier(value: Any, models: Sequence[str], problem: Problem) -> str | dict[str, str]:
    """``router.tier``: a tier name, or ``{provider: tier}`` for providers the router uses."""
    if isinstance(value, str):
        _check_tier(value, models[0], "router.tier", problem)
        return value
    if not isinstance(value, Mapping):
        raise problem.type(
            "router.tier", "a tier name such as 'tier1' or a table {provider = tier}", value
        )
    by_provider: dict[str, str] = {}
    for model in models:
        provider = _provider(model)
        if provider is not None:
            by_provider.setdefault(provider, model)
    tiers: dict[str, str] = {}
    for provider, tier in value.items():
        key = dotted("router.tier", str(provider))
        if not isinstance(tier, str):
            raise problem.type(key, "a tier name such as 'tier1'", tier)
        target = by_provider.get(normalize_provider(str(provider)))
        if target is None:
            used = ", ".join(sorted(by_provider)) or "none"
            raise problem.value(
                key, f"no model of provider {provider!r} in the router; its providers: {used}"
            )
        _check_tier(tier, target, key, problem)
        tiers[str(provider)] = tier
    return tiers


def guard(table: Mapping[str, Any], problem: Problem) -> Any:
    """``[guard]`` as the ``guard=`` argument: a `ContextGuard`, or False when disabled."""
    from llm_routing.guard import ContextGuard

    found = Problem(problem.label)  # each key's mistake, all reported
    with found.collect():
        check_keys(table, GUARD_KEYS, "guard", problem)
    enabled = table.get("enabled", True)
    with found.collect():
        if not isinstance(enabled, bool):
            raise problem.type("guard.enabled", "true or false", enabled)
    safety = None
    with found.collect():
        safety = number(table, "safety", "guard", problem)
        if safety is not None and not 0 < safety <= 1:
            raise problem.value(
                "guard.safety",
                f"must be in (0, 1] (the share of the window to use), got {safety!r}",
            )
    reserve = table.get("reserve_output")
    with found.collect():
        if reserve is not None and not is_int(reserve):
            raise problem.type("guard.reserve_output", "an integer number of tokens", reserve)
        if reserve is not None and reserve < 0:
            raise problem.value("guard.reserve_output", f"must be >= 0 tokens, got {reserve}")
    with found.collect():
        if enabled is False and len(table) > 1:
            raise problem.value(
                "guard.enabled", "is false, so safety and reserve_output would be ignored"
            )
    found.raise_collected()
    if not enabled:
        return False
    return ContextGuard(safety=0.9 if safety is None else safety, reserve_output=reserve)


def backend(value: Any, problem: Problem) -> str:
    """``"memory"`` or a well-formed Redis URL: a malformed one would fail at the first call."""
    if not isinstance(value, str):
        raise problem.type("router.backend", "'memory' or a 'redis://host:port/db' URL", value)
    if value == "memory":
        return value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise problem.value("router.backend", f"malformed URL {value!r}: {exc}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        close = difflib.get_close_matches(value, ["memory"], n=1)
        hint = "did you mean 'memory'? " if close else ""
        raise problem.value(
            "router.backend",
            f"{value!r} is neither 'memory' nor a Redis URL; {hint}"
            "write 'memory' or 'redis://host:6379/0' (rediss:// for TLS, unix:///path.sock)",
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise problem.value("router.backend", f"{value!r} names no socket path")
        return value
    if not parts.hostname:
        raise problem.value(
            "router.backend", f"{value!r} names no host; write 'redis://host:6379/0'"
        )
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise problem.value(
            "router.backend",
            f"{value!r}: the database after the port must be a number such as /0, got {db!r}",
        )
    del port  # read only to check it (urlsplit raises on a non-numeric port)
    return value


def check_unique(names: Sequence[str], keys: Sequence[str], problem: Problem) -> None:
    """One model appears once: a second entry would share the first's ``[models]`` table."""
    seen: dict[str, str] = {}
    for name, key in zip(names, keys, strict=True):
        try:
            ident = default_catalog().get(name).key
        except (UnknownModelError, TypeError, ValueError):
            ident = name.strip().lower().replace("/", ":", 1)
        if ident in seen:
            raise problem.value(
                key,
                f"{name!r} is already {seen[ident]}; list each model once (a second entry "
                "would be the same model with the same settings)",
            )
        seen[ident] = key


def models(
    table: Mapping[str, Any], names: Sequence[str], problem: Problem
) -> dict[str, dict[str, Any]]:
    """``[models.*]``: init kwargs per model, each naming a model of the router."""
    per_model: dict[str, dict[str, Any]] = {}
    found = Problem(problem.label)  # each table's mistake, all reported
    for name, kwargs in table.items():
        key = dotted("models", str(name))
        with found.collect():
            if name not in names:
                hint = did_you_mean(name, names, "its models")
                raise problem.value(key, f"names no model of the router; {hint}")
            if not isinstance(kwargs, Mapping):
                raise problem.type(key, "a table of init kwargs", kwargs)
            per_model[name] = dict(kwargs)
    found.raise_collected()
    return per_model
