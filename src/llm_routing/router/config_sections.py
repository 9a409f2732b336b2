"""The config file's ``[scheduler]``, ``[budget]`` and ``[langfuse]`` tables, checked key by key.

Each table configures one object `build_router` would otherwise build with its defaults: the
`RateScheduler` (its options and per-model ``limits``), the `CostTracker` (budgets per period,
``warn_at``, ``hold_lease``) and the Langfuse client. The values are checked by the objects
themselves (a throwaway instance per key), so the file accepts exactly what the constructors
accept and says it in the same words, restated under the dotted key; every mistake of every
key is collected (`Problem.collect`) so one run names them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from llm_routing._args import is_number
from llm_routing.cost.budget import PERIODS
from llm_routing.router.config_checks import Problem, check_keys, dotted, number

__all__ = [
    "BUDGET_KEYS",
    "LANGFUSE_KEYS",
    "REDIS_KEYS",
    "SCHEDULER_KEYS",
    "budget",
    "langfuse",
    "scheduler",
]

# RateScheduler's keyword arguments a file can hold (tier, max_wait and backend are [router]'s:
# they configure the tracker too). The rest are objects (clock, catalog) or deprecated.
_SCHEDULER_OPTIONS = (
    "pacing",
    "max_retries",
    "request_margin",
    "token_headroom",
    "rpd_reset",
    "reserve_output",
    "backoff_initial",
    "backoff_max",
    "quota_cooldown",
    "per_api_key",
    "count_from",
)
REDIS_KEYS = ("lease_s", "prefix", "on_unavailable")
"""Options of the `RedisBackend` the scheduler builds from ``router.backend = "redis://…"``."""
SCHEDULER_KEYS = ("limits", "limit_groups", *_SCHEDULER_OPTIONS, *REDIS_KEYS)
BUDGET_KEYS = (*PERIODS, "warn_at", "hold_lease", "strict", "reserve_output")
LANGFUSE_KEYS = ("enabled", "host", "public_key", "environment", "release", "sample_rate")

# ``RateScheduler(max_retries=…) must…`` / ``RateScheduler(limits['x']): …`` -> ``must…`` / ``…``
_OWNER = re.compile(r"^[A-Za-z]+\((?:[^()]|\([^()]*\))*\):?\s*")


def _restated(key: str, exc: Exception, problem: Problem) -> Exception:
    """``exc`` from a constructor, worded under ``key`` of the file (same type, same advice)."""
    text = f"{key}: {_OWNER.sub('', str(exc))} (in {problem.label})"
    return TypeError(text) if isinstance(exc, TypeError) else ValueError(text)


def _checked(key: str, problem: Problem, make: Callable[[], object]) -> None:
    """Build ``make()`` only to let the constructor judge the value; restate its error."""
    try:
        make()
    except (TypeError, ValueError) as exc:
        raise _restated(key, exc, problem) from None


def scheduler(table: Mapping[str, Any], backend: Any, problem: Problem) -> dict[str, Any]:
    """``[scheduler]`` as `RateScheduler` keywords (``limits`` included, Redis ones apart).

    Returns the keywords with ``"redis"``: the `RedisBackend` keywords (empty without any).
    ``backend`` is ``router.backend``: Redis options without a Redis URL would be ignored.
    """
    from llm_routing.schedule import RateScheduler

    with problem.collect():
        check_keys(table, SCHEDULER_KEYS, "scheduler", problem)
    out: dict[str, Any] = {}
    for key in _SCHEDULER_OPTIONS:
        if key not in table:
            continue
        value = table[key]
        with problem.collect():
            if key == "per_api_key" and not isinstance(value, bool):
                raise problem.type("scheduler.per_api_key", "true or false", value)
            _checked(f"scheduler.{key}", problem, partial(RateScheduler, **{key: value}))
            out[key] = value
    with problem.collect():
        out["limits"] = _limits(table.get("limits", {}), problem)
    with problem.collect():
        out["limit_groups"] = _groups(table.get("limit_groups", {}), problem)
    if out.get("limits") and out.get("limit_groups"):
        with problem.collect():  # each was valid alone; a model in both is not
            both = partial(RateScheduler, limits=out["limits"], limit_groups=out["limit_groups"])
            _checked("scheduler.limit_groups", problem, both)
    redis: dict[str, Any] = {}
    for key in REDIS_KEYS:
        if key not in table:
            continue
        with problem.collect():
            redis[key] = _redis_option(key, table[key], backend, problem)
    out["redis"] = redis
    return out


def _redis_option(key: str, value: Any, backend: Any, problem: Problem) -> Any:
    from llm_routing.schedule.backend import check_lease

    where = f"scheduler.{key}"
    if not (isinstance(backend, str) and backend.startswith(("redis://", "rediss://", "unix://"))):
        raise problem.value(
            where,
            f"configures the Redis backend, but router.backend is {backend!r}; set "
            'router.backend = "redis://host:6379/0" or drop it',
        )
    if key == "lease_s":
        _checked(where, problem, lambda: check_lease(value, "RedisBackend"))
    elif key == "prefix" and not (isinstance(value, str) and value):
        raise problem.type(where, "a non-empty key prefix string such as 'llm_routing'", value)
    elif key == "on_unavailable" and value not in ("fail", "memory"):
        raise problem.value(
            where,
            "must be 'fail' (refuse calls while Redis is down) or 'memory' (fall back to "
            f"this process's own windows), got {value!r}",
        )
    return value


def _limits(value: Any, problem: Problem) -> dict[str, dict[str, Any]]:
    """``[scheduler.limits."provider:model"]`` tables, each checked as `RateScheduler` would."""
    outer = 'a table of tables: [scheduler.limits."openai:gpt-4o-mini"]'
    return _named_tables("limits", value, problem, outer, "{ rpm = 30, tpm = 200000 }")


def _groups(value: Any, problem: Problem) -> dict[str, dict[str, Any]]:
    """``[scheduler.limit_groups.<name>]`` tables (``models = [...]`` and the shared limits)."""
    outer = 'a table of tables: [scheduler.limit_groups.mini] models = ["openai:gpt-4o-mini"]'
    return _named_tables("limit_groups", value, problem, outer, '{ models = ["…"], rpm = 500 }')


def _named_tables(
    keyword: str, value: Any, problem: Problem, outer: str, inner: str
) -> dict[str, dict[str, Any]]:
    """``[scheduler.<keyword>.<name>]``: each table checked alone by ``RateScheduler(keyword=…)``.

    ``limits`` and ``limit_groups`` are both a table of named tables; ``outer`` and ``inner``
    are the examples their messages show.
    """
    from llm_routing.schedule import RateScheduler

    where = f"scheduler.{keyword}"
    if not isinstance(value, Mapping):
        raise problem.type(where, outer, value)
    tables: dict[str, dict[str, Any]] = {}
    for name, fields in value.items():
        key = dotted(where, str(name))
        with problem.collect():
            if not isinstance(fields, Mapping):
                raise problem.type(key, f"a table such as {inner}", fields)
            entry: dict[str, Any] = {keyword: {str(name): dict(fields)}}
            _checked(key, problem, partial(RateScheduler, **entry))
            tables[str(name)] = dict(fields)
    return tables


def budget(table: Mapping[str, Any], problem: Problem) -> dict[str, Any]:
    """``[budget]`` as `CostTracker` keywords: ``budgets`` per period, and its options."""
    from llm_routing.cost import CostTracker

    with problem.collect():
        check_keys(table, BUDGET_KEYS, "budget", problem)
    out: dict[str, Any] = {}
    budgets: dict[str, Any] = {}
    for period in PERIODS:
        with problem.collect():
            amount = number(table, period, "budget", problem)
            if amount is not None and amount < 0:
                raise problem.value(f"budget.{period}", f"must be >= 0 USD, got {amount!r}")
            if amount is not None:
                budgets[period] = amount
    if budgets:
        out["budgets"] = budgets
    for key in ("warn_at", "hold_lease", "strict", "reserve_output"):
        if key not in table:
            continue
        value = table[key]
        with problem.collect():
            _checked(f"budget.{key}", problem, partial(CostTracker, **{key: value}))
            out[key] = value
    return out


def langfuse(table: Mapping[str, Any], problem: Problem) -> dict[str, Any] | None:
    """``[langfuse]`` as ``langfuse.Langfuse`` keywords (``None``: ``enabled = false``).

    The secret key is refused: a file is shared and committed, so it comes from the
    environment (``LANGFUSE_SECRET_KEY``), as the SDK reads it.
    """
    if "secret_key" in table:
        with problem.collect():
            raise problem.value(
                "langfuse.secret_key",
                "a secret does not belong in a config file; set LANGFUSE_SECRET_KEY in the "
                "environment (the Langfuse SDK reads it) and drop this key",
            )
        table = {k: v for k, v in table.items() if k != "secret_key"}
    with problem.collect():
        check_keys(table, LANGFUSE_KEYS, "langfuse", problem)
    enabled = table.get("enabled", True)
    out: dict[str, Any] = {}
    with problem.collect():
        if not isinstance(enabled, bool):
            raise problem.type("langfuse.enabled", "true or false", enabled)
    for key in ("host", "public_key", "environment", "release"):
        if key in table:
            with problem.collect():
                if not isinstance(table[key], str) or not table[key]:
                    raise problem.type(f"langfuse.{key}", "a non-empty string", table[key])
                out[key] = table[key]
    if "sample_rate" in table:
        rate = table["sample_rate"]
        with problem.collect():
            if not is_number(rate):
                raise problem.type("langfuse.sample_rate", "a number in [0, 1]", rate)
            if not 0 <= rate <= 1:
                raise problem.value("langfuse.sample_rate", f"must be in [0, 1], got {rate!r}")
            out["sample_rate"] = rate
    return out if enabled is not False else None
