"""Routers from configuration: ``from_config`` turns a mapping, TOML or YAML file into a Router.

Owns the file format, its validation and its error messages (each names the dotted key and the
file). It does not own what the values mean: `build_router` and `ContextGuard` do.

The format (TOML shown; YAML and a plain ``dict`` take the same tree)::

    [router]
    primary = "openai:gpt-4o-mini"
    fallbacks = ["anthropic:claude-haiku-4-5"]         # optional
    large_context = ["google_genai:gemini-2.5-pro"]    # optional, ordered by window
    tier = "tier1"            # or a table {openai = "tier2", anthropic = "tier1"}
    max_wait = 90             # optional, seconds, >= 0
    budget_usd = 5.0          # optional, USD: the total budget of the default cost tracker
    backend = "memory"        # optional
    langfuse = false          # optional

    [guard]                   # optional
    enabled = true            # false builds the router without a context guard
    safety = 0.9              # share of the window to use, in (0, 1]
    reserve_output = 4096     # optional, tokens

    [defaults]                # optional init kwargs for every model (init_chat_model)
    timeout = 30

    [models."openai:gpt-4o-mini"]   # optional init kwargs for one model, over [defaults]
    temperature = 0

``from_config("router.toml", init_kwargs={"api_key": ...}, scheduler=...)``: keyword overrides
are `build_router` arguments and win over the file; ``init_kwargs`` is merged over ``[defaults]``
and every ``[models.*]`` table. A tier name is checked against the catalogue's tiers of the
model it applies to (the primary; for a table, the first model of that provider).
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llm_routing._args import is_int, is_number
from llm_routing.catalog import default_catalog, normalize_provider
from llm_routing.errors import UnknownModelError
from llm_routing.router.build import build_router, init_model

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from llm_routing.router.router import Router

__all__ = ["from_config", "read_source"]

# [simulate] (latency, limits, prices of the simulated providers) is read by
# `llm-routing simulate` only; the router ignores it, so one file serves both.
_TOP_KEYS = ("router", "guard", "defaults", "models", "simulate")
_ROUTER_KEYS = (
    "primary",
    "fallbacks",
    "large_context",
    "tier",
    "max_wait",
    "budget_usd",
    "backend",
    "langfuse",
)
_GUARD_KEYS = ("enabled", "safety", "reserve_output")
_OVERRIDES = (
    "primary",
    "fallbacks",
    "large_context",
    "tier",
    "max_wait",
    "budget_usd",
    "guard",
    "scheduler",
    "tracker",
    "backend",
    "langfuse",
    "init_kwargs",
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _Problem:
    """Builds errors that name the source (file or mapping) and the dotted key at fault."""

    def __init__(self, label: str) -> None:
        self.label = label

    def value(self, key: str, message: str) -> ValueError:
        return ValueError(f"{key}: {message} (in {self.label})")

    def type(self, key: str, expected: str, got: Any) -> TypeError:
        return TypeError(
            f"{key}: expected {expected}, got {type(got).__name__} {got!r} (in {self.label})"
        )


def _dotted(parent: str, key: str) -> str:
    part = key if _BARE_KEY.fullmatch(key) else f'"{key}"'
    return f"{parent}.{part}" if parent else part


def _check_keys(
    table: Mapping[str, Any], known: Sequence[str], parent: str, problem: _Problem
) -> None:
    for key in table:
        if not isinstance(key, str):
            raise problem.type(_dotted(parent, str(key)), "a string key", key)
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        raise problem.value(_dotted(parent, key), f"unknown key; {hint}")


def _table(data: Mapping[str, Any], key: str, parent: str, problem: _Problem) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise problem.type(_dotted(parent, key), "a table (mapping)", value)
    return dict(value)


def _number(
    table: Mapping[str, Any], key: str, parent: str, problem: _Problem
) -> float | int | None:
    value = table.get(key)
    if value is None:
        return None
    if not is_number(value):
        raise problem.type(_dotted(parent, key), "a number", value)
    if not math.isfinite(value):
        raise problem.value(_dotted(parent, key), f"must be a finite number, got {value!r}")
    return value


def _model_name(value: Any, key: str, problem: _Problem) -> str:
    if not isinstance(value, str):
        raise problem.type(key, "a model name string such as 'openai:gpt-4o-mini'", value)
    if not value.strip():
        raise problem.value(key, "empty model name; write 'provider:model'")
    return value


def _model_list(table: Mapping[str, Any], key: str, problem: _Problem) -> list[str]:
    value = table.get(key, [])
    where = _dotted("router", key)
    if not isinstance(value, list | tuple):
        raise problem.type(
            where, 'a list of model names, e.g. ["anthropic:claude-haiku-4-5"]', value
        )
    return [_model_name(item, f"{where}[{i}]", problem) for i, item in enumerate(value)]


def _provider(name: str) -> str | None:
    head, found, _tail = name.partition(":")
    return normalize_provider(head) if found and head else None


def _check_tier(tier: str, model: str, key: str, problem: _Problem) -> None:
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


def _tier(value: Any, models: Sequence[str], problem: _Problem) -> str | dict[str, str]:
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
        key = _dotted("router.tier", str(provider))
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


def _guard(table: Mapping[str, Any], problem: _Problem) -> Any:
    from llm_routing.guard import ContextGuard

    _check_keys(table, _GUARD_KEYS, "guard", problem)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise problem.type("guard.enabled", "true or false", enabled)
    safety = _number(table, "safety", "guard", problem)
    if safety is not None and not 0 < safety <= 1:
        raise problem.value(
            "guard.safety", f"must be in (0, 1] (the share of the window to use), got {safety!r}"
        )
    reserve = table.get("reserve_output")
    if reserve is not None and not is_int(reserve):
        raise problem.type("guard.reserve_output", "an integer number of tokens", reserve)
    if reserve is not None and reserve < 0:
        raise problem.value("guard.reserve_output", f"must be >= 0 tokens, got {reserve}")
    if not enabled:
        if len(table) > 1:
            raise problem.value(
                "guard.enabled", "is false, so safety and reserve_output would be ignored"
            )
        return False
    return ContextGuard(safety=0.9 if safety is None else safety, reserve_output=reserve)


def read_source(source: Mapping[str, Any] | str | os.PathLike[str]) -> tuple[Any, _Problem]:
    """The tree in ``source`` (a mapping, or a .toml/.yaml file read and parsed) and its label.

    Package-internal: `llm-routing simulate` reads its ``[simulate]`` section from the same
    file with the same messages.
    """
    if isinstance(source, Mapping):
        return source, _Problem("the config mapping")
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            "from_config(source=…) must be a mapping or the path of a .toml/.yaml file, "
            f"got {type(source).__name__}"
        )
    path = Path(source)
    problem = _Problem(str(path))
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(
            f"from_config: {path} has suffix {suffix or '(none)'!r}; "
            "use a .toml, .yaml or .yml file (or pass a dict)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"from_config: no config file at {path}") from None
    except OSError as exc:
        raise OSError(f"from_config: cannot read {path}: {exc}") from exc
    if suffix == ".toml":
        try:
            return tomllib.loads(text), problem
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"from_config: {path} is not valid TOML: {exc}") from None
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise ImportError(
            f"from_config: reading {path} needs PyYAML: pip install pyyaml (or use TOML)"
        ) from None
    try:
        return yaml.safe_load(text), problem
    except yaml.YAMLError as exc:
        raise ValueError(f"from_config: {path} is not valid YAML: {exc}") from None


def from_config(source: Mapping[str, Any] | str | os.PathLike[str], **overrides: Any) -> Router:
    """Build a `Router` from a mapping or a ``.toml``/``.yaml`` file (format: module docstring).

    The whole tree is checked before any model is built, so a typo fails at once with its
    dotted key and file rather than at the first request. ``overrides`` are `build_router`
    keyword arguments (objects a file cannot hold: ``scheduler``, ``tracker``, a shared
    ``guard``, secrets in ``init_kwargs``) and win over the file.

    Example:
        A mapping takes the same tree as a file (``from_config("router.toml")``):

        >>> from llm_routing import from_config
        >>> router = from_config(
        ...     {
        ...         "router": {
        ...             "primary": "openai:gpt-4o-mini",
        ...             "large_context": ["openai:gpt-4.1-mini"],
        ...             "max_wait": 30,
        ...         },
        ...         "guard": {"safety": 0.8},
        ...     },
        ...     init_kwargs={"api_key": "unused"},
        ... )
        >>> router
        Router(openai:gpt-4o-mini -> openai:gpt-4.1-mini)
        >>> from_config({"router": {"primary": "openai:gpt-4o-mini", "max_wiat": 5}})
        Traceback (most recent call last):
        ...
        ValueError: router.max_wiat: unknown key; did you mean 'max_wait'? (in the config mapping)
    """
    for name in overrides:
        if name not in _OVERRIDES:
            close = difflib.get_close_matches(name, _OVERRIDES, n=1)
            hint = f"did you mean {close[0]!r}" if close else f"known: {', '.join(_OVERRIDES)}"
            raise TypeError(f"from_config() got an unknown keyword argument {name!r}; {hint}")
    data, problem = read_source(source)
    if not isinstance(data, Mapping):
        raise problem.type("(top level)", "a table with a [router] section", data)
    _check_keys(data, _TOP_KEYS, "", problem)
    router = _table(data, "router", "", problem)
    _check_keys(router, _ROUTER_KEYS, "router", problem)
    if "primary" not in router:
        raise problem.value(
            "router.primary", 'missing; add primary = "provider:model" under [router]'
        )
    primary = _model_name(router["primary"], "router.primary", problem)
    fallbacks = _model_list(router, "fallbacks", problem)
    large = _model_list(router, "large_context", problem)
    names = [primary, *fallbacks, *large]
    keys = ["router.primary"]
    keys += [f"router.fallbacks[{i}]" for i in range(len(fallbacks))]
    keys += [f"router.large_context[{i}]" for i in range(len(large))]
    _check_unique(names, keys, problem)
    kwargs: dict[str, Any] = {"tier": _tier(router.get("tier", "tier1"), names, problem)}
    for key in ("max_wait", "budget_usd"):
        number = _number(router, key, "router", problem)
        if number is not None and number < 0:
            raise problem.value(f"router.{key}", f"must be >= 0, got {number!r}")
        if number is not None:
            kwargs[key] = number
    if "backend" in router:
        kwargs["backend"] = _backend(router["backend"], problem)
    if "langfuse" in router:
        if not isinstance(router["langfuse"], bool):
            raise problem.type("router.langfuse", "true or false", router["langfuse"])
        kwargs["langfuse"] = router["langfuse"]
    if "guard" not in overrides:
        kwargs["guard"] = _guard(_table(data, "guard", "", problem), problem)
    defaults = _table(data, "defaults", "", problem)
    per_model = _models(_table(data, "models", "", problem), names, problem)

    if not isinstance(data.get("simulate", {}), Mapping):
        raise problem.type("simulate", "a table (mapping)", data["simulate"])

    explicit = dict(overrides.pop("init_kwargs", None) or {})
    init = {**defaults, **explicit}
    build = _builder(init, per_model, explicit, problem)
    from_file = {key for key in _ROUTER_KEYS if key not in overrides}
    kwargs.update(overrides)
    try:
        return build_router(
            build(kwargs.pop("primary", primary)),
            [build(m) for m in _listed(kwargs.pop("fallbacks", fallbacks))],
            [build(m) for m in _listed(kwargs.pop("large_context", large))],
            init_kwargs=init,
            **kwargs,
        )
    except (TypeError, ValueError) as exc:
        raise _located(exc, from_file, problem) from exc


# What build_router and the decorators it builds call the values the file gave them.
_ARGUMENT = re.compile(
    r"^(?:build_router|RateScheduler|CostTracker)\((primary|fallbacks\[\d+\]|large_context"
    r"\[\d+\]|tier|max_wait|budget_usd|backend|langfuse)(?:=…)?\)"
)


def _located(exc: TypeError | ValueError, from_file: set[str], problem: _Problem) -> Exception:
    """``exc`` from `build_router`, restated under the dotted key of the value it is about.

    The file was checked before any model was built, but some mistakes need the catalogue
    or a model instance to see (an unknown model, a tier a model lacks): `build_router`
    names its argument, which is mapped back to the key that set it.
    """
    message = str(exc)
    found = _ARGUMENT.match(message)
    if found is None:
        return exc
    argument = found.group(1)
    if argument.partition("[")[0] not in from_file:
        return exc  # a keyword override, not the file: build_router's own words are right
    rest = message[found.end() :].lstrip(" :")
    text = f"router.{argument}: {rest} (in {problem.label})"
    if isinstance(exc, UnknownModelError):
        return UnknownModelError(text, model=exc.model)
    return TypeError(text) if isinstance(exc, TypeError) else ValueError(text)


def _backend(value: Any, problem: _Problem) -> str:
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


def _check_unique(names: Sequence[str], keys: Sequence[str], problem: _Problem) -> None:
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


def _listed(value: Any) -> Any:
    """An override may be one model, as `build_router` allows; never iterate its characters."""
    if value is None:
        return []
    return [value] if isinstance(value, str) or not isinstance(value, Sequence) else value


def _models(
    table: Mapping[str, Any], names: Sequence[str], problem: _Problem
) -> dict[str, dict[str, Any]]:
    per_model: dict[str, dict[str, Any]] = {}
    for name, kwargs in table.items():
        key = _dotted("models", str(name))
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"its models: {', '.join(names)}"
            raise problem.value(key, f"names no model of the router; {hint}")
        if not isinstance(kwargs, Mapping):
            raise problem.type(key, "a table of init kwargs", kwargs)
        per_model[name] = dict(kwargs)
    return per_model


def _builder(
    init: Mapping[str, Any],
    per_model: Mapping[str, Mapping[str, Any]],
    explicit: Mapping[str, Any],
    problem: _Problem,
) -> Callable[[Any], str | Runnable[Any, Any]]:
    """Turns a model with its own ``[models.*]`` table into an instance; others stay names.

    `build_router` takes one ``init_kwargs`` for every name, so a model with its own kwargs is
    built here with `init_model`, the same defaults (``max_retries=0``) the router would use.
    """

    def build(item: Any) -> Any:
        if isinstance(item, str) and item in per_model:
            try:
                return init_model(item, **{**init, **per_model[item], **explicit})
            except (TypeError, ValueError) as exc:
                raise problem.value(_dotted("models", item), str(exc)) from exc
        return item

    return build
