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
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_routing.errors import UnknownModelError
from llm_routing.router import config_checks as check
from llm_routing.router.build import build_router, init_model

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from llm_routing.router.router import Router

__all__ = ["from_config", "read_source"]

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


def read_source(source: Mapping[str, Any] | str | os.PathLike[str]) -> tuple[Any, check.Problem]:
    """The tree in ``source`` (a mapping, or a .toml/.yaml file read and parsed) and its label.

    Package-internal: `llm-routing simulate` reads its ``[simulate]`` section from the same
    file with the same messages.
    """
    if isinstance(source, Mapping):
        return source, check.Problem("the config mapping")
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            "from_config(source=…) must be a mapping or the path of a .toml/.yaml file, "
            f"got {type(source).__name__}"
        )
    path = Path(source)
    problem = check.Problem(str(path))
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
    check.check_keys(data, check.TOP_KEYS, "", problem)
    router = check.table(data, "router", "", problem)
    check.check_keys(router, check.ROUTER_KEYS, "router", problem)
    if "primary" not in router:
        raise problem.value(
            "router.primary", 'missing; add primary = "provider:model" under [router]'
        )
    primary = check.model_name(router["primary"], "router.primary", problem)
    fallbacks = check.model_list(router, "fallbacks", problem)
    large = check.model_list(router, "large_context", problem)
    names = [primary, *fallbacks, *large]
    keys = ["router.primary"]
    keys += [f"router.fallbacks[{i}]" for i in range(len(fallbacks))]
    keys += [f"router.large_context[{i}]" for i in range(len(large))]
    check.check_unique(names, keys, problem)
    kwargs: dict[str, Any] = {"tier": check.tier(router.get("tier", "tier1"), names, problem)}
    for key in ("max_wait", "budget_usd"):
        number = check.number(router, key, "router", problem)
        if number is not None and number < 0:
            raise problem.value(f"router.{key}", f"must be >= 0, got {number!r}")
        if number is not None:
            kwargs[key] = number
    if "backend" in router:
        kwargs["backend"] = check.backend(router["backend"], problem)
    if "langfuse" in router:
        if not isinstance(router["langfuse"], bool):
            raise problem.type("router.langfuse", "true or false", router["langfuse"])
        kwargs["langfuse"] = router["langfuse"]
    if "guard" not in overrides:
        kwargs["guard"] = check.guard(check.table(data, "guard", "", problem), problem)
    defaults = check.table(data, "defaults", "", problem)
    per_model = check.models(check.table(data, "models", "", problem), names, problem)

    if not isinstance(data.get("simulate", {}), Mapping):
        raise problem.type("simulate", "a table (mapping)", data["simulate"])

    explicit = dict(overrides.pop("init_kwargs", None) or {})
    init = {**defaults, **explicit}
    build = _builder(init, per_model, explicit, problem)
    from_file = {key for key in check.ROUTER_KEYS if key not in overrides}
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


def _located(exc: TypeError | ValueError, from_file: set[str], problem: check.Problem) -> Exception:
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


def _listed(value: Any) -> Any:
    """An override may be one model, as `build_router` allows; never iterate its characters."""
    if value is None:
        return []
    return [value] if isinstance(value, str) or not isinstance(value, Sequence) else value


def _builder(
    init: Mapping[str, Any],
    per_model: Mapping[str, Mapping[str, Any]],
    explicit: Mapping[str, Any],
    problem: check.Problem,
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
                raise problem.value(check.dotted("models", item), str(exc)) from exc
        return item

    return build
