"""Routers from configuration: ``from_config`` turns a mapping, TOML or YAML file into a Router.

Owns the file format, its validation and its error messages (each names the dotted key and the
file). It does not own what the values mean: `build_router` and `ContextGuard` do; building the
checked tree (the objects its tables configure, overrides, errors mapped back to keys) is
`router.config_build`'s.

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

    [scheduler]               # optional: RateScheduler options (tier, max_wait, backend: [router])
    pacing = "auto"           # "auto" | "paced" | "burst"; also max_retries, request_margin,
                              # token_headroom, rpd_reset, reserve_output, backoff_initial,
                              # backoff_max, quota_cooldown, per_api_key, count_from
    lease_s = 30              # with a Redis backend: lease_s, prefix, on_unavailable

    [scheduler.limits."openai:gpt-4o-mini"]   # RateScheduler(limits=…): one table per model
    rpm = 30
    tpm = 200000

    [scheduler.limit_groups.mini]             # RateScheduler(limit_groups=…): shared windows
    models = ["openai:gpt-4o-mini", "openai:gpt-4.1-mini"]
    rpm = 500

    [guard]                   # optional
    enabled = true            # false builds the router without a context guard
    safety = 0.9              # share of the window to use, in (0, 1]
    reserve_output = 4096     # optional, tokens

    [budget]                  # optional: CostTracker options; total = router.budget_usd
    day = 1.0                 # USD per UTC hour / day / month, and total
    warn_at = 0.8             # also hold_lease, strict, reserve_output

    [langfuse]                # optional: a Langfuse client (secret key from the environment)
    host = "https://cloud.langfuse.com"       # also public_key, environment, release,
                                              # sample_rate, enabled

    [defaults]                # optional init kwargs for every model (init_chat_model)
    timeout = 30

    [models."openai:gpt-4o-mini"]   # optional init kwargs for one model, over [defaults]
    temperature = 0

Every mistake in the tree is reported at once: one as its own error, several as one
`ConfigError` (a ``TypeError`` and a ``ValueError``) listing each with its dotted key.

``from_config("router.toml", init_kwargs={"api_key": ...}, scheduler=...)``: keyword overrides
are `build_router` arguments and win over the file; ``init_kwargs`` is merged over ``[defaults]``
and every ``[models.*]`` table. A tier name is checked against the catalogue's tiers of the
model it applies to (the primary; for a table, the first model of that provider).
"""

from __future__ import annotations

import difflib
import importlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_routing.router import config_checks as check
from llm_routing.router import config_sections as cfg
from llm_routing.router.config_build import build_checked

if TYPE_CHECKING:
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
    checked = _check(data, overrides, problem)
    problem.raise_collected()  # every mistake of the file at once, before any model is built
    kwargs, primary, fallbacks, large, sections = checked
    return build_checked(kwargs, (primary, fallbacks, large), sections, overrides, problem)


def _check(
    data: Mapping[str, Any], overrides: Mapping[str, Any], problem: check.Problem
) -> tuple[dict[str, Any], str, list[str], list[str], dict[str, Any]]:
    """The whole tree checked, each mistake collected in ``problem`` (none raised here).

    Returns `build_router` keywords from ``[router]`` and ``[guard]``, the models, and the
    other tables' checked values (``defaults``, ``models``, and ``scheduler``, ``budget``,
    ``langfuse`` when present). A value that failed its check is left out, so the later
    checks still run on the rest.
    """
    with problem.collect():
        check.check_keys(data, check.TOP_KEYS, "", problem)
    tables: dict[str, dict[str, Any]] = {}
    for name in ("router", "scheduler", "guard", "budget", "langfuse", "defaults", "models"):
        tables[name] = {}
        with problem.collect():
            tables[name] = check.table(data, name, "", problem)
    router = tables["router"]
    with problem.collect():
        check.check_keys(router, check.ROUTER_KEYS, "router", problem)
    primary = ""
    with problem.collect():
        if "primary" not in router:
            raise problem.value(
                "router.primary", 'missing; add primary = "provider:model" under [router]'
            )
        primary = check.model_name(router["primary"], "router.primary", problem)
    fallbacks: list[str] = []
    large: list[str] = []
    with problem.collect():
        fallbacks = check.model_list(router, "fallbacks", problem)
    with problem.collect():
        large = check.model_list(router, "large_context", problem)
    names = [primary, *fallbacks, *large] if primary else [*fallbacks, *large]
    keys = ["router.primary"] if primary else []
    keys += [f"router.fallbacks[{i}]" for i in range(len(fallbacks))]
    keys += [f"router.large_context[{i}]" for i in range(len(large))]
    with problem.collect():
        check.check_unique(names, keys, problem)
    kwargs: dict[str, Any] = {}
    if names:
        with problem.collect():
            kwargs["tier"] = check.tier(router.get("tier", "tier1"), names, problem)
    for key in ("max_wait", "budget_usd"):
        with problem.collect():
            number = check.number(router, key, "router", problem)
            if number is not None and number < 0:
                raise problem.value(f"router.{key}", f"must be >= 0, got {number!r}")
            if number is not None:
                kwargs[key] = number
    if "backend" in router:
        with problem.collect():
            kwargs["backend"] = check.backend(router["backend"], problem)
    if "langfuse" in router:
        with problem.collect():
            if not isinstance(router["langfuse"], bool):
                raise problem.type("router.langfuse", "true or false", router["langfuse"])
            kwargs["langfuse"] = router["langfuse"]
    if "guard" not in overrides:
        with problem.collect():
            kwargs["guard"] = check.guard(tables["guard"], problem)
    sections: dict[str, Any] = {"defaults": tables["defaults"], "models": {}}
    with problem.collect():
        sections["models"] = check.models(tables["models"], names, problem)
    with problem.collect():
        if not isinstance(data.get("simulate", {}), Mapping):
            raise problem.type("simulate", "a table (mapping)", data["simulate"])
    _check_sections(data, tables, router, overrides, sections, problem)
    return kwargs, primary, fallbacks, large, sections


def _check_sections(
    data: Mapping[str, Any],
    tables: Mapping[str, dict[str, Any]],
    router: Mapping[str, Any],
    overrides: Mapping[str, Any],
    sections: dict[str, Any],
    problem: check.Problem,
) -> None:
    """``[scheduler]``, ``[budget]``, ``[langfuse]`` into ``sections``; each conflict named.

    A table that an override or another key would make pointless is an error, never ignored.
    """
    for table, override, what in (
        ("scheduler", "scheduler", "RateScheduler(…)"),
        ("budget", "tracker", "CostTracker(…)"),
    ):
        if table in data and override in overrides:
            with problem.collect():
                raise problem.value(
                    f"[{table}]",
                    f"configures the default {override}, but from_config got {override}=…; "
                    f"set these options on your {what} or drop the table",
                )
    if "scheduler" in data and "scheduler" not in overrides:
        sections["scheduler"] = cfg.scheduler(
            tables["scheduler"], router.get("backend", "memory"), problem
        )
    if "budget" in data and "tracker" not in overrides:
        sections["budget"] = cfg.budget(tables["budget"], problem)
        if "total" in tables["budget"] and "budget_usd" in router:
            with problem.collect():
                raise problem.value(
                    "budget.total", "router.budget_usd sets the same total budget; keep one"
                )
    if "langfuse" in data:
        sections["langfuse"] = cfg.langfuse(tables["langfuse"], problem)
        if router.get("langfuse") is False:
            with problem.collect():
                raise problem.value(
                    "router.langfuse",
                    "is false while a [langfuse] table configures it; drop one (enabled = "
                    "false in [langfuse] turns it off)",
                )
