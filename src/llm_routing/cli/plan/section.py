"""The planner's reading of a router config: its models, and the ``[simulate]`` section.

Config: a router file as ``from_config`` reads it, plus an optional ``[simulate]`` section
(read here only)::

    [simulate]
    latency = { ttft = 0.3, per_token = 0.01, jitter = 0.2 }   # seconds, as sim.Latency

    [simulate.models."openai:gpt-4o-mini"]   # a model of the router; every key optional
    rpm = 30                                 # limits instead of the catalogue's tier
    tpm = 100000
    rpd = 5000                               # also itpm, otpm
    input_price = 0.15                       # USD per 1M tokens instead of the catalogue's
    output_price = 0.60

Such limits bind both sides, the simulated provider and the scheduler, as they would when you
configure your scheduler for your account's real limits. ``from_config`` checks the rest of
the file itself; this module only reads what the simulation needs before it builds a router.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_routing.catalog import ModelSpec, Price, default_catalog
from llm_routing.cli._usage import did_you_mean
from llm_routing.errors import UnknownModelError
from llm_routing.sim.latency import Latency

__all__ = ["DEFAULT_LATENCY", "MAPPING_LABEL", "Plan", "read_plan", "relabel"]

#: The simulated providers' latency when the config's ``[simulate]`` section names none.
DEFAULT_LATENCY = Latency.realistic()
#: How ``from_config`` names a mapping in its messages; ``relabel`` swaps in the file's name.
MAPPING_LABEL = "(in the config mapping)"
_SIM_KEYS = ("latency", "models")
_SIM_MODEL_KEYS = ("rpm", "tpm", "rpd", "itpm", "otpm", "input_price", "output_price")
_LATENCY_KEYS = ("ttft", "per_token", "jitter")


@dataclass(slots=True)
class Plan:
    """What the config asks for, checked: the router's models and the simulation's overrides."""

    data: dict[str, Any]
    label: str | None
    names: list[str]
    specs: dict[str, ModelSpec]
    tier: Any
    max_wait: float
    budget_usd: float | None
    latency: Latency
    limits: dict[str, dict[str, int | None]]
    prices: dict[str, Price]
    notes: list[str]


def relabel(exc: Exception, label: str | None) -> Exception:
    """``exc`` naming the config file rather than "the config mapping" it was read into."""
    text = str(exc)
    if label is None or MAPPING_LABEL not in text:
        return exc
    kind = TypeError if isinstance(exc, TypeError) else ValueError
    return kind(text.replace(MAPPING_LABEL, f"(in {label})"))


def _load(config: Mapping[str, Any] | str | os.PathLike[str]) -> tuple[dict[str, Any], str | None]:
    # The same reader (and messages) as from_config; the [simulate] section is taken out
    # before from_config sees the rest.
    from llm_routing.router.from_config import read_source

    if isinstance(config, Mapping):
        return dict(config), None
    data, _problem = read_source(config)
    if not isinstance(data, Mapping):
        raise TypeError(f"{config}: expected a table with a [router] section, got {data!r}")
    return dict(data), str(config)


def _names(data: Mapping[str, Any]) -> list[str]:
    """The router's model names, read loosely: from_config reports a malformed tree itself."""
    router = data.get("router")
    if not isinstance(router, Mapping):
        return []
    names = [router.get("primary")]
    for key in ("fallbacks", "large_context"):
        value = router.get(key, [])
        if isinstance(value, list | tuple):
            names.extend(value)
    return [n for n in names if isinstance(n, str) and n.strip()]


def _number(value: Any, key: str, label: str, *, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value < math.inf:
        raise ValueError(f"{key}: expected a finite number >= {low:g}, got {value!r} (in {label})")
    return float(value)


def _sim_section(
    section: Any, names: Sequence[str], specs: Mapping[str, ModelSpec], label: str
) -> tuple[Latency, dict[str, dict[str, int | None]], dict[str, Price]]:
    if not isinstance(section, Mapping):
        raise TypeError(f"simulate: expected a table, got {section!r} (in {label})")
    for key in section:
        if key not in _SIM_KEYS:
            raise ValueError(
                f"simulate.{key}: unknown key; known keys: {', '.join(_SIM_KEYS)} (in {label})"
            )
    latency = DEFAULT_LATENCY
    raw = section.get("latency")
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise TypeError(
                f"simulate.latency: expected a table such as {{ ttft = 0.3, per_token = 0.01 }}, "
                f"got {raw!r} (in {label})"
            )
        unknown = [k for k in raw if k not in _LATENCY_KEYS]
        if unknown:
            raise ValueError(
                f"simulate.latency.{unknown[0]}: unknown key; known keys: "
                f"{', '.join(_LATENCY_KEYS)} (in {label})"
            )
        values = {k: _number(v, f"simulate.latency.{k}", label) for k, v in raw.items()}
        try:
            latency = Latency(**{"ttft": 0.0, "per_token": 0.0, "jitter": 0.0, **values})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"simulate.latency: {exc} (in {label})") from None
    models = section.get("models", {})
    if not isinstance(models, Mapping):
        raise TypeError(f"simulate.models: expected a table of models, got {models!r} (in {label})")
    limits: dict[str, dict[str, int | None]] = {}
    prices: dict[str, Price] = {}
    for name, table in models.items():
        where = f'simulate.models."{name}"'
        if name not in names:
            hint = did_you_mean(name, names, "its models")
            raise ValueError(f"{where}: names no model of the router; {hint} (in {label})")
        if not isinstance(table, Mapping):
            raise TypeError(f"{where}: expected a table, got {table!r} (in {label})")
        for key, value in table.items():
            if key not in _SIM_MODEL_KEYS:
                hint = did_you_mean(key, _SIM_MODEL_KEYS)
                raise ValueError(f"{where}.{key}: unknown key; {hint} (in {label})")
            if key.endswith("_price"):
                _number(value, f"{where}.{key}", label)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{where}.{key}: expected an integer limit >= 1, got {value!r} (in {label})"
                )
        spec = specs[name]
        key = spec.key
        chosen = {k: v for k, v in table.items() if not k.endswith("_price")}
        if chosen:
            limits[key] = {**limits.get(key, {}), **chosen}
        if "input_price" in table or "output_price" in table:
            base = spec.price or Price(None, None)
            prices[key] = Price(
                input=table.get("input_price", base.input),
                output=table.get("output_price", base.output),
                cached_input=base.cached_input,
                cache_write=base.cache_write,
                reasoning=table.get("output_price", base.reasoning),
            )
    return latency, limits, prices


def read_plan(config: Mapping[str, Any] | str | os.PathLike[str]) -> Plan:
    """The checked ``Plan`` of a config file or mapping (errors name the file and the key)."""
    data, label = _load(config)
    section = data.pop("simulate", {})
    names = _names(data)
    catalog = default_catalog()
    specs: dict[str, ModelSpec] = {}
    for name in names:
        try:
            specs[name] = catalog.get(name)
        except (UnknownModelError, ValueError) as exc:
            where = f" (in {label})" if label else ""
            raise ValueError(
                f"router model {name!r}{where}: {exc} The simulation shapes each provider "
                "from the catalogue: `llm-routing models` lists the models it knows."
            ) from None
    where = label or "the config mapping"
    latency, limits, prices = _sim_section(section, names, specs, where)
    found = data.get("router")
    router: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    notes: list[str] = []
    for key, what in (("backend", "memory"), ("langfuse", "off")):
        if key in router and router[key] not in ("memory", False):
            notes.append(f"router.{key} = {router[key]!r} is not used: the simulation runs {what}")
    max_wait = router.get("max_wait", 90.0)
    budget = router.get("budget_usd")
    return Plan(
        data=data,
        label=label,
        names=names,
        specs=specs,
        tier=router.get("tier", "tier1"),
        max_wait=float(max_wait) if isinstance(max_wait, int | float) else 90.0,
        budget_usd=float(budget) if isinstance(budget, int | float) else None,
        latency=latency,
        limits=limits,
        prices=prices,
        notes=notes,
    )
