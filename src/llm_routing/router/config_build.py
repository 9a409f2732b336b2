"""A checked config tree turned into a `Router`: the objects its tables ask for, then build_router.

`from_config` reads and checks the format (every mistake named before anything is built); this
module is what happens after, when the values are known good: the scheduler, tracker and
Langfuse client a table asks for, models with their own ``[models.*]`` kwargs, keyword
overrides over the file, and `build_router`'s errors (about what only the catalogue or a model
instance can tell) restated under the dotted key that set the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llm_routing.errors import UnknownModelError
from llm_routing.router import config_checks as check
from llm_routing.router.build import build_router, init_model

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from llm_routing.router.router import Router

__all__ = ["build_checked"]


def build_checked(
    kwargs: dict[str, Any],
    models: tuple[str, list[str], list[str]],
    sections: dict[str, Any],
    overrides: dict[str, Any],
    problem: check.Problem,
) -> Router:
    """The `Router` of a tree `from_config` checked: ``kwargs`` and ``sections`` as it left them.

    ``models`` is (primary, fallbacks, large_context) from the file; ``overrides`` (the
    caller's `build_router` keywords, ``init_kwargs`` among them) win over the file, and an
    error about a value the file set is restated under its key.
    """
    primary, fallbacks, large = models
    defaults, per_model = sections.pop("defaults"), sections.pop("models")
    explicit = dict(overrides.pop("init_kwargs", None) or {})
    init = {**defaults, **explicit}
    build = _builder(init, per_model, explicit, problem)
    from_file = {key for key in check.ROUTER_KEYS if key not in overrides}
    kwargs.update(overrides)
    if "langfuse" in overrides:
        sections.pop("langfuse", None)  # the keyword wins over the file, as every override does
    try:
        _own_objects(kwargs, sections)
        return build_router(
            build(kwargs.pop("primary", primary)),
            [build(m) for m in _listed(kwargs.pop("fallbacks", fallbacks))],
            [build(m) for m in _listed(kwargs.pop("large_context", large))],
            init_kwargs=init,
            **kwargs,
        )
    except (TypeError, ValueError) as exc:
        raise _located(exc, from_file, problem) from exc


def _own_objects(kwargs: dict[str, Any], sections: Mapping[str, Any]) -> None:
    """Build the scheduler, tracker and Langfuse client the file's tables configure.

    `build_router` builds its defaults from ``tier``, ``max_wait``, ``backend`` and
    ``budget_usd``; a table with more options means building that object here, from those
    same values (moved out of ``kwargs``: with an instance, build_router refuses them). Its
    default tracker depends on ``max_wait`` and ``backend`` too, so an own scheduler brings
    an own tracker.
    """
    tier = kwargs.get("tier", "tier1")
    max_wait = kwargs.get("max_wait", 90.0)
    backend = kwargs.get("backend", "memory")
    sched = sections.get("scheduler")
    spend = sections.get("budget")
    if sched is not None:
        from llm_routing.schedule import RateScheduler

        options = dict(sched)
        redis = options.pop("redis", {})
        target: Any = backend
        if redis:
            from llm_routing.schedule.redis import RedisBackend

            target = RedisBackend(backend, **redis)
        kwargs["scheduler"] = RateScheduler(tier=tier, max_wait=max_wait, backend=target, **options)
        for key in ("tier", "max_wait", "backend"):
            kwargs.pop(key, None)
    if (spend is not None or sched is not None) and kwargs.get("tracker") is None:
        from llm_routing.cost import CostTracker

        ledger = backend if isinstance(backend, str) and backend != "memory" else None
        kwargs["tracker"] = CostTracker(
            budget_usd=kwargs.pop("budget_usd", None),
            backend=ledger,
            max_wait=max_wait,
            **(spend or {}),
        )
    if "langfuse" in sections:
        options = sections["langfuse"]
        kwargs["langfuse"] = False if options is None else _langfuse_client(options)


def _langfuse_client(options: Mapping[str, Any]) -> Any:
    """A ``langfuse.Langfuse`` from ``[langfuse]`` (its secret key from the environment)."""
    try:
        from langfuse import Langfuse
    except ImportError:
        raise ImportError(
            "from_config: [langfuse] needs the Langfuse SDK: pip install 'llm-routing[langfuse]'"
        ) from None
    return Langfuse(**options)


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
