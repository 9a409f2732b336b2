"""Capacity planning in virtual time: the real guard, scheduler and tracker, simulated providers.

Owns the workload format, duration and rate parsing, the in-process provider model (exact
sliding windows from ``sim.limiter``, a latency model), the run and its report. Routing,
scheduling and pricing are the package's own pieces, run unchanged; HTTP is ``llm_routing.sim``.

Workload (JSONL, one request per line, in any order)::

    {"t": 0.0, "prompt_tokens": 1200, "max_tokens": 256}
    {"t": 0.4, "prompt_tokens": 80, "max_tokens": 64, "output_tokens": 20}

``t`` is when the app sends it (seconds from the start), ``prompt_tokens`` the size of the
user message, ``max_tokens`` the output cap sent with the call, ``output_tokens`` (optional)
how long the answer is; without it the answer is drawn between a quarter of ``max_tokens``
and all of it. Blank lines are skipped.

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
configure your scheduler for your account's real limits.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import json
import math
import os
import random
import re
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from langchain_core.exceptions import ContextOverflowError, ModelRateLimitError
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableConfig

from llm_routing.catalog import Catalog, ModelSpec, Price, default_catalog
from llm_routing.cost.pricing import price
from llm_routing.errors import AllModelsFailedError, UnknownModelError, classify
from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.latency import Latency
from llm_routing.sim.limiter import SlidingWindowLimiter

__all__ = [
    "Arrival",
    "ModelResult",
    "SimulationReport",
    "parse_duration",
    "parse_rate",
    "parse_workload",
    "rate_workload",
    "read_workload",
    "simulate",
]

DEFAULT_LATENCY = Latency.realistic()
_ANSWER_SHARE = (0.25, 1.0)  # an answer without output_tokens: this share of max_tokens
_RATE_SIZES = 32  # distinct prompt sizes of a --rate workload (prompts are cached per size)
_WORKLOAD_KEYS = ("t", "prompt_tokens", "max_tokens", "output_tokens")
_SIM_KEYS = ("latency", "models")
_SIM_MODEL_KEYS = ("rpm", "tpm", "rpd", "itpm", "otpm", "input_price", "output_price")
_LATENCY_KEYS = ("ttft", "per_token", "jitter")
# from_config arguments the simulation replaces (its own scheduler and tracker, no I/O).
_NEUTRAL = {
    "tier": "tier1",
    "max_wait": 90.0,
    "budget_usd": None,
    "backend": "memory",
    "langfuse": False,
}
_MAPPING_LABEL = "(in the config mapping)"
_EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC: virtual time 0, for the tracker's periods
_REASONS = ("rate_limit", "context", "quota", "budget", "transient", "other")

# The request being answered, for the simulated provider (set per request task).
_CURRENT: contextvars.ContextVar[Arrival | None] = contextvars.ContextVar(
    "llm_routing_simulate_arrival", default=None
)


# --------------------------------------------------------------------------- parsing

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86_400.0,
    "day": 86_400.0,
    "days": 86_400.0,
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)", re.IGNORECASE)
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(?:/\s*([a-z]+)|(rps|rpm|rph))?\s*", re.IGNORECASE)
_RATE_SUFFIX = {"rps": "s", "rpm": "min", "rph": "h"}
_EXAMPLE = '{"t": 0.5, "prompt_tokens": 800, "max_tokens": 256}'


def parse_duration(text: str) -> float:
    """Seconds in ``"10m"``, ``"90s"``, ``"1h30m"``, ``"2.5min"`` or a bare ``"600"`` (seconds).

    Raises ``ValueError`` naming the text and the accepted forms.
    """
    if not isinstance(text, str):
        raise TypeError(f"duration must be a string such as '10m', got {type(text).__name__}")
    hint = "write it like 10m, 90s, 1h30m or 600 (seconds)"
    pos, total, parts = 0, 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        number, unit = match.group(1), match.group(2).lower()
        if unit and unit not in _DURATION_UNITS:
            raise ValueError(f"duration {text!r}: unknown unit {unit!r}; {hint}")
        if not unit and (parts or match.end() != len(text.rstrip())):
            raise ValueError(f"duration {text!r}: a number without a unit must stand alone; {hint}")
        total += float(number) * _DURATION_UNITS[unit or "s"]
        pos, parts = match.end(), parts + 1
    if not parts or text[pos:].strip():
        raise ValueError(f"duration {text!r} is not a duration; {hint}")
    if not 0 < total < math.inf:
        raise ValueError(f"duration {text!r} must be longer than zero; {hint}")
    return total


def parse_rate(text: str) -> float:
    """Requests per second in ``"20/s"``, ``"600/min"``, ``"1000/h"``, ``"5rps"`` or ``"20"``.

    Raises ``ValueError`` naming the text and the accepted forms.
    """
    if not isinstance(text, str):
        raise TypeError(f"rate must be a string such as '20/s', got {type(text).__name__}")
    hint = "write it like 20/s, 600/min, 1000/h or 20 (per second)"
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(f"rate {text!r} is not a rate; {hint}")
    unit = (match.group(2) or _RATE_SUFFIX.get((match.group(3) or "").lower(), "s")).lower()
    if unit not in _DURATION_UNITS or unit == "ms":
        raise ValueError(f"rate {text!r}: unknown unit {unit!r}; {hint}")
    rate = float(match.group(1)) / _DURATION_UNITS[unit]
    if not rate > 0:
        raise ValueError(f"rate {text!r} must be more than zero requests; {hint}")
    return rate


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request of a workload: when it is sent, how big it is, how long its answer is."""

    t: float
    prompt_tokens: int
    max_tokens: int
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.t, bool) or not isinstance(self.t, int | float):
            raise TypeError(f"Arrival.t must be a number of seconds, got {self.t!r}")
        if not 0 <= self.t < math.inf:
            raise ValueError(f"Arrival.t must be a finite number of seconds >= 0, got {self.t!r}")
        for name, low in (("prompt_tokens", 1), ("max_tokens", 1), ("output_tokens", 0)):
            value = getattr(self, name)
            if value is None and name == "output_tokens":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Arrival.{name} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"Arrival.{name} must be >= {low}, got {value}")
        if self.output_tokens is not None and self.output_tokens > self.max_tokens:
            raise ValueError(
                f"Arrival.output_tokens ({self.output_tokens}) cannot exceed max_tokens "
                f"({self.max_tokens}): the provider stops at max_tokens"
            )


def parse_workload(lines: Iterable[str], *, source: str = "workload") -> list[Arrival]:
    """The arrivals of a JSONL workload (format: module docstring), sorted by ``t``.

    Every problem raises ``ValueError`` naming ``source``, the line number and the field.
    """
    arrivals: list[Arrival] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg}); expected {_EXAMPLE}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object such as {_EXAMPLE}, got {line!r}")
        for key in row:
            if key not in _WORKLOAD_KEYS:
                close = difflib.get_close_matches(str(key), _WORKLOAD_KEYS, n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"known: {', '.join(_WORKLOAD_KEYS)}"
                )
                raise ValueError(f"{where}: unknown field {key!r}; {hint}")
        for key in ("t", "prompt_tokens", "max_tokens"):
            if key not in row:
                raise ValueError(f"{where}: missing field {key!r}; expected {_EXAMPLE}")
        try:
            arrivals.append(
                Arrival(
                    t=row["t"],
                    prompt_tokens=row["prompt_tokens"],
                    max_tokens=row["max_tokens"],
                    output_tokens=row.get("output_tokens"),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {str(exc).replace('Arrival.', '')}") from None
    if not arrivals:
        raise ValueError(f"{source}: no requests (expected one JSON object per line: {_EXAMPLE})")
    arrivals.sort(key=lambda a: a.t)
    return arrivals


def read_workload(path: str | os.PathLike[str]) -> list[Arrival]:
    """`parse_workload` of a file; a missing or unreadable file is a clear ``ValueError``."""
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_workload(fh, source=str(path))
    except FileNotFoundError:
        raise ValueError(f"workload file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read workload file {str(path)!r}: {exc}") from None


def rate_workload(
    rate: float,
    duration_s: float,
    *,
    prompt_tokens: int = 500,
    max_tokens: int = 256,
    seed: int = 0,
) -> list[Arrival]:
    """Poisson arrivals at ``rate`` per second for ``duration_s`` seconds.

    Prompt sizes spread evenly over 50-150 % of ``prompt_tokens`` (a few dozen distinct sizes);
    every request asks for ``max_tokens``.
    """
    for name, value in (("rate", rate), ("duration_s", duration_s)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"rate_workload({name}=…) must be a number, got {value!r}")
        if not 0 < value < math.inf:
            raise ValueError(f"rate_workload({name}=…) must be a finite number > 0, got {value!r}")
    for name, count in (("prompt_tokens", prompt_tokens), ("max_tokens", max_tokens)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"rate_workload({name}=…) must be an integer >= 1, got {count!r}")
    rng = random.Random(seed)
    low, high = max(1, prompt_tokens // 2), max(1, prompt_tokens * 3 // 2)
    sizes = sorted({round(low + (high - low) * i / (_RATE_SIZES - 1)) for i in range(_RATE_SIZES)})
    arrivals: list[Arrival] = []
    t = rng.expovariate(rate)
    while t < duration_s:
        arrivals.append(Arrival(t, rng.choice(sizes), max_tokens))
        t += rng.expovariate(rate)
    return arrivals


# --------------------------------------------------------------------------- the provider


class _RateLimited(ModelRateLimitError):
    """The simulated provider's 429, with the Retry-After a real one sends."""

    def __init__(self, message: str, retry_after_s: float, kind: str) -> None:
        super().__init__(message)
        self.status_code = 429
        self.kind = kind
        self.headers = {"retry-after": f"{max(0.0, retry_after_s):.3f}"}


class _BadRequest(ValueError):
    """The simulated provider's 400 for a request no model of this kind accepts."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.status_code = 400


@dataclass(slots=True)
class _Served:
    t: float
    input_tokens: int
    output_tokens: int
    cost: Decimal | None


class _Provider:
    """One simulated model: exact sliding windows, a window check, a latency model, a log."""

    def __init__(
        self,
        spec: ModelSpec,
        limits: Mapping[str, int | None],
        latency: Latency,
        seed: int,
        clock: Any,
    ) -> None:
        self.spec = spec
        self.limits = {k: v for k, v in limits.items() if v is not None}
        self.limiter = SlidingWindowLimiter(clock=clock.now, **limits)
        self.latency = latency
        self.clock = clock
        self.rng = random.Random(f"{seed}:{spec.key}")
        # OpenAI counts max_tokens against TPM at admission; the others count real output.
        self.counts_max_tokens = spec.provider == "openai"
        self.served: list[_Served] = []
        self.rate_limited = {"requests": 0, "tokens": 0}
        self.context_overflows = 0
        self.bad_requests = 0
        self._prompt_counts: dict[str, int] = {}

    def prompt_tokens(self, input: Any) -> int:
        """The prompt's tokens, counted as the guard counts them (cached: prompts repeat)."""
        from llm_routing.tokens import count_tokens

        if not isinstance(input, str):
            return count_tokens(input, self.spec)
        cached = self._prompt_counts.get(input)
        if cached is None:
            cached = count_tokens([("user", input)], self.spec)
            if len(self._prompt_counts) < 4096:
                self._prompt_counts[input] = cached
        return cached

    async def answer(self, input: Any, max_tokens: int | None) -> AIMessage:
        """Check the window and the limits, sleep the latency, answer with usage."""
        spec = self.spec
        arrival = _CURRENT.get()
        prompt = self.prompt_tokens(input)
        cap = max_tokens if max_tokens is not None else (arrival.max_tokens if arrival else 256)
        if spec.max_output_tokens is not None and cap > spec.max_output_tokens:
            self.bad_requests += 1
            raise _BadRequest(
                f"max_tokens is too large: {cap}. {spec.key} supports at most "
                f"{spec.max_output_tokens} completion tokens."
            )
        if prompt + cap > spec.context_window:
            self.context_overflows += 1
            raise ContextOverflowError(
                f"{spec.key}: maximum context length is {spec.context_window} tokens; the request "
                f"needs {prompt + cap} ({prompt} in the messages, {cap} in the completion)"
            )
        if arrival is not None and arrival.output_tokens is not None:
            output = min(arrival.output_tokens, cap)
        else:
            low = max(1, math.ceil(cap * _ANSWER_SHARE[0]))
            output = self.rng.randint(min(low, cap), cap)
        decision = self.limiter.acquire(prompt, cap if self.counts_max_tokens else output)
        if not decision.admitted:
            binding = decision.binding
            kind = binding.kind if binding is not None else "requests"
            self.rate_limited[kind] += 1
            label = binding.label if binding is not None else "rate limit"
            raise _RateLimited(
                f"Rate limit reached for {spec.key} on {label}. Please try again in "
                f"{decision.retry_after:.3f}s.",
                decision.retry_after,
                kind,
            )
        ttft, per_token = self.latency.sample(self.rng)
        await self.clock.asleep(ttft + per_token * output)
        usage = {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}
        cost = price(usage, spec).total
        self.served.append(_Served(self.clock.now(), prompt, output, cost))
        return AIMessage(content="ok", usage_metadata=usage)


class _SimulatedChatModel(Runnable[Any, AIMessage]):
    """The chat model face of a `_Provider`: what the guard, scheduler and tracker wrap.

    A bare ``Runnable`` rather than a ``BaseChatModel``: LangChain's callback plumbing would
    double the cost of every simulated call and changes nothing the decorators see (the
    catalogue identifies the model by ``_get_ls_params``, usage comes as ``usage_metadata``).
    """

    def __init__(self, spec: ModelSpec, provider: _Provider | None) -> None:
        self.model_name = spec.name
        self.ls_provider = spec.provider
        self.provider = provider

    def __repr__(self) -> str:
        return f"SimulatedChatModel({self.ls_provider}:{self.model_name})"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        return {"ls_provider": self.ls_provider, "ls_model_name": self.model_name}

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        """Not available: the simulated models answer in virtual time, on an event loop."""
        raise NotImplementedError(
            "the simulated models answer in virtual time, on an event loop: use ainvoke"
        )

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AIMessage:
        """Answer after the provider's latency, or raise its 429 / 400."""
        if self.provider is None:
            raise RuntimeError(f"{self!r} is a placeholder for checking a config; it never answers")
        return await self.provider.answer(input, kwargs.get("max_tokens"))


# --------------------------------------------------------------------------- the config


@dataclass(slots=True)
class _Plan:
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


def _relabel(exc: Exception, label: str | None) -> Exception:
    """``exc`` naming the config file rather than "the config mapping" it was read into."""
    text = str(exc)
    if label is None or _MAPPING_LABEL not in text:
        return exc
    kind = TypeError if isinstance(exc, TypeError) else ValueError
    return kind(text.replace(_MAPPING_LABEL, f"(in {label})"))


def _load(config: Mapping[str, Any] | str | os.PathLike[str]) -> tuple[dict[str, Any], str | None]:
    # The same reader (and messages) as from_config; the [simulate] section is taken out
    # before from_config sees the rest.
    from llm_routing.config import _parsed

    if isinstance(config, Mapping):
        return dict(config), None
    data, _problem = _parsed(config)
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
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"its models: {', '.join(names)}"
            raise ValueError(f"{where}: names no model of the router; {hint} (in {label})")
        if not isinstance(table, Mapping):
            raise TypeError(f"{where}: expected a table, got {table!r} (in {label})")
        for key, value in table.items():
            if key not in _SIM_MODEL_KEYS:
                close = difflib.get_close_matches(str(key), _SIM_MODEL_KEYS, n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"known keys: {', '.join(_SIM_MODEL_KEYS)}"
                )
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


def _plan(config: Mapping[str, Any] | str | os.PathLike[str]) -> _Plan:
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
    return _Plan(
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


# --------------------------------------------------------------------------- the report


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _fmt_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _fmt_usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if abs(value) >= 10 else f"${value:,.4f}"


@dataclass(slots=True)
class ModelResult:
    """What one model did in the simulation."""

    name: str
    limits: dict[str, int]
    served: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    provider_429s: dict[str, int] = field(default_factory=lambda: {"requests": 0, "tokens": 0})
    context_overflows: int = 0
    bad_requests: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = 0.0
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    mean_wait_s: float = 0.0
    served_at: list[float] = field(default_factory=list, repr=False)

    @property
    def rate_limited(self) -> int:
        """429s the provider returned, requests and tokens windows together."""
        return sum(self.provider_429s.values())

    def per_minute(self, seconds: float) -> tuple[float, float]:
        """Average requests and tokens (input + output) per minute over ``seconds``."""
        minutes = seconds / 60 if seconds > 0 else 1.0
        return self.served / minutes, (self.input_tokens + self.output_tokens) / minutes

    def as_dict(self, seconds: float) -> dict[str, Any]:
        """JSON-ready, with the throughput over ``seconds``."""
        rpm, tpm = self.per_minute(seconds)
        return {
            "limits": self.limits,
            "served": self.served,
            "requests_per_min": round(rpm, 3),
            "tokens_per_min": round(tpm, 1),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "provider_429s": dict(self.provider_429s),
            "context_overflows": self.context_overflows,
            "bad_requests": self.bad_requests,
            "skipped": dict(self.skipped),
            "cost_usd": self.cost_usd,
            "latency_p50_s": round(self.latency_p50_s, 3),
            "latency_p95_s": round(self.latency_p95_s, 3),
            "mean_wait_s": round(self.mean_wait_s, 3),
        }


@dataclass(slots=True)
class SimulationReport:
    """The outcome of `simulate`: per-model throughput, waits, fallbacks, 429s and cost.

    Times are simulated seconds. ``duration_s`` is how long requests were sent for,
    ``simulated_s`` until the last one was answered (or given up), ``wall_s`` the real time
    the run took.
    """

    chain: list[str]
    duration_s: float
    simulated_s: float = 0.0
    wall_s: float = 0.0
    requests: int = 0
    answered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    fallbacks: dict[str, int] = field(default_factory=dict)
    waits: dict[str, float] = field(default_factory=dict)
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    retries: int = 0
    total_cost_usd: float = 0.0
    unpriced_calls: int = 0
    models: dict[str, ModelResult] = field(default_factory=dict)
    cost_timeline: list[tuple[float, float]] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def provider_429s(self) -> int:
        """429s every simulated provider returned, in all."""
        return sum(m.rate_limited for m in self.models.values())

    @property
    def failures(self) -> int:
        """Requests that no model answered (the errors the app would see)."""
        return sum(self.failed.values())

    @property
    def cost_per_hour_usd(self) -> float:
        """The spend rate while requests were sent, in USD per hour."""
        return self.total_cost_usd * 3600 / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``)."""
        return {
            "chain": list(self.chain),
            "seed": self.seed,
            "duration_s": self.duration_s,
            "simulated_s": round(self.simulated_s, 3),
            "wall_s": round(self.wall_s, 3),
            "requests": self.requests,
            "answered": self.answered,
            "failed": dict(self.failed),
            "fallbacks": dict(self.fallbacks),
            "waits": dict(self.waits),
            "latency_p50_s": round(self.latency_p50_s, 3),
            "latency_p95_s": round(self.latency_p95_s, 3),
            "provider_429s": self.provider_429s,
            "retries": self.retries,
            "total_cost_usd": self.total_cost_usd,
            "cost_per_hour_usd": round(self.cost_per_hour_usd, 6),
            "unpriced_calls": self.unpriced_calls,
            "models": {k: m.as_dict(self.duration_s) for k, m in self.models.items()},
            "notes": list(self.notes),
        }

    # --- text -----------------------------------------------------------------------------

    _HEADER = (
        "model",
        "served",
        "req/min",
        "RPM limit",
        "tok/min",
        "TPM limit",
        "429s",
        "passed over",
        "latency p50/p95",
        "cost",
    )

    def rows(self) -> list[list[str]]:
        """The per-model table, then a total row."""
        rows: list[list[str]] = []
        for name, m in self.models.items():
            rpm, tpm = m.per_minute(self.duration_s)
            tpm_limit = m.limits.get("tpm")
            if tpm_limit is None and ("itpm" in m.limits or "otpm" in m.limits):
                tpm_text = f"{m.limits.get('itpm', '—'):,}/{m.limits.get('otpm', '—'):,}"
            else:
                tpm_text = "—" if tpm_limit is None else f"{tpm_limit:,}"
            skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(m.skipped.items())) or "0"
            rows.append(
                [
                    name,
                    f"{m.served:,}",
                    f"{rpm:,.1f}",
                    "—" if "rpm" not in m.limits else f"{m.limits['rpm']:,}",
                    f"{tpm:,.0f}",
                    tpm_text,
                    f"{m.rate_limited:,}",
                    skipped,
                    f"{_fmt_s(m.latency_p50_s)} / {_fmt_s(m.latency_p95_s)}",
                    _fmt_usd(m.cost_usd),
                ]
            )
        served = sum(m.served for m in self.models.values())
        tokens = sum(m.input_tokens + m.output_tokens for m in self.models.values())
        minutes = self.duration_s / 60
        rows.append(
            [
                "total",
                f"{served:,}",
                f"{served / minutes:,.1f}",
                "",
                f"{tokens / minutes:,.0f}",
                "",
                f"{self.provider_429s:,}",
                f"{sum(self.fallbacks.values()):,}",
                f"{_fmt_s(self.latency_p50_s)} / {_fmt_s(self.latency_p95_s)}",
                _fmt_usd(self.total_cost_usd),
            ]
        )
        return rows

    def title(self) -> str:
        """One line: what was simulated."""
        rate = self.requests / self.duration_s if self.duration_s else 0.0
        return (
            f"{_fmt_s(self.duration_s)} simulated ({self.requests:,} requests, {rate:,.2f}/s) "
            f"in {self.wall_s:.1f} s: {' -> '.join(self.chain)}"
        )

    def summary(self) -> list[str]:
        """The lines under the table."""
        failed = (
            " (" + ", ".join(f"{k} {v:,}" for k, v in sorted(self.failed.items())) + ")"
            if self.failed
            else ""
        )
        reasons = (
            ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in self.fallbacks.items() if v)
            or "none"
        )
        waits = self.waits
        lines = [
            f"answered {self.answered:,} of {self.requests:,}; failed {self.failures:,}{failed}; "
            f"last answer at {_fmt_s(self.simulated_s)}",
            f"fallbacks by reason: {reasons}",
            f"scheduler waits: p50 {_fmt_s(waits.get('p50_s', 0.0))}, "
            f"p95 {_fmt_s(waits.get('p95_s', 0.0))}, max {_fmt_s(waits.get('max_s', 0.0))}; "
            f"429s the providers returned: {self.provider_429s:,} (retried: {self.retries:,})",
            f"cost: {_fmt_usd(self.total_cost_usd)} in {_fmt_s(self.duration_s)} "
            f"({_fmt_usd(self.cost_per_hour_usd)} per hour at this rate)"
            + (f"; {self.unpriced_calls:,} calls unpriced" if self.unpriced_calls else ""),
        ]
        return lines + [f"note: {n}" for n in self.notes]

    def __str__(self) -> str:
        table = [list(self._HEADER), *self.rows()]
        widths = [max(len(r[i]) for r in table) for i in range(len(self._HEADER))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in table
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
        return "\n".join([self.title(), *lines, *self.summary()])

    def print(self, file: TextIO | None = None) -> None:
        """Print as a rich table (plain text when rich is not installed)."""
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            print(self, file=file)
            return
        # A terminal gets its own width; a pipe or file gets room for the whole table.
        console = Console(file=file, highlight=False)
        if not console.is_terminal:
            console = Console(file=file, highlight=False, width=160)
        table = Table(title=self.title(), title_justify="left")
        for i, header in enumerate(self._HEADER):
            table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
        rows = self.rows()
        for i, row in enumerate(rows):
            table.add_row(*row, end_section=i == len(rows) - 2)
        console.print(table)
        for line in self.summary():
            console.print(line, markup=False)

    # --- plot -----------------------------------------------------------------------------

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Write a PNG: requests answered per model over time, and the cumulative cost.

        Needs matplotlib (``pip install 'llm-routing[notebook]'``); raises ``ImportError``
        saying so otherwise.
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError(
                "plotting needs matplotlib, which is not installed: "
                "pip install matplotlib (or pip install 'llm-routing[notebook]')"
            ) from exc
        end = max(self.duration_s, self.simulated_s)
        width = _bin_width(end)
        bins = max(1, math.ceil(end / width))
        scale, unit = (60.0, "min") if end > 600 else (1.0, "s")
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
        edges = [i * width / scale for i in range(bins)]
        for name, m in self.models.items():
            counts = [0] * bins
            for t in m.served_at:
                counts[min(bins - 1, int(t // width))] += 1
            per_min = [c * 60 / width for c in counts]
            (line,) = top.step(edges, per_min, where="post", label=name)
            if "rpm" in m.limits:  # the model's RPM limit, dotted, in its colour
                top.axhline(m.limits["rpm"], linestyle=":", linewidth=0.8, color=line.get_color())
        top.set_ylabel("requests answered per minute")
        top.set_title(self.title(), fontsize=9)
        top.legend(loc="upper right", fontsize=8)
        xs = [0.0] + [t / scale for t, _ in self.cost_timeline]
        ys = [0.0] + [c for _, c in self.cost_timeline]
        bottom.plot(xs, ys, color="black")
        bottom.set_ylabel("cumulative cost (USD)")
        bottom.set_xlabel(f"simulated time ({unit})")
        fig.tight_layout()
        target = Path(path)
        fig.savefig(target, dpi=100)
        plt.close(fig)
        return target


def _bin_width(seconds: float) -> float:
    for width in (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 3600.0):
        if seconds / width <= 120:
            return width
    return 3600.0 * math.ceil(seconds / 3600 / 120)


# --------------------------------------------------------------------------- the run


def simulate(
    config: Mapping[str, Any] | str | os.PathLike[str],
    workload: Sequence[Arrival],
    duration_s: float | None = None,
    seed: int = 0,
) -> SimulationReport:
    """Run ``workload`` through the router ``config`` describes, in virtual time.

    The router is built by ``from_config`` (its guard, fallbacks and large-context models as
    in production) with a `RateScheduler` and a `CostTracker` on a `VirtualClock`, over
    in-process providers shaped like the configured models: the catalogue's context window,
    output cap, prices and the tier's limits (or the config's ``[simulate]`` overrides),
    enforced with exact sliding windows, answering after a latency model. Requests with
    ``t >= duration_s`` are not sent (``duration_s`` defaults to just past the last one).
    The run then waits for every request to be answered or given up. Ten simulated minutes
    of thousands of requests take seconds.
    """
    from llm_routing.config import from_config
    from llm_routing.cost import CostTracker
    from llm_routing.schedule import RateScheduler, VirtualClock

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"simulate(seed=…) must be an int, got {seed!r}")
    arrivals = sorted(workload, key=lambda a: a.t)
    if not arrivals:
        raise ValueError("simulate(workload=…) has no requests; give at least one Arrival")
    for a in arrivals:
        if not isinstance(a, Arrival):
            raise TypeError(f"simulate(workload=…) must hold Arrival values, got {a!r}")
    if duration_s is None:
        duration_s = math.nextafter(arrivals[-1].t, math.inf) if arrivals[-1].t > 0 else 1.0
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise TypeError(f"simulate(duration_s=…) must be a number of seconds, got {duration_s!r}")
    if not 0 < duration_s < math.inf:
        raise ValueError(f"simulate(duration_s=…) must be a finite number > 0, got {duration_s!r}")
    plan = _plan(config)
    sent = [a for a in arrivals if a.t < duration_s]
    if len(sent) < len(arrivals):
        plan.notes.append(
            f"{len(arrivals) - len(sent):,} requests of the workload come at or after "
            f"{_fmt_s(duration_s)} and were not sent"
        )
    if not sent:
        raise ValueError(
            f"no request of the workload comes before {_fmt_s(duration_s)} (duration); "
            f"the first is at {_fmt_s(arrivals[0].t)}"
        )

    clock = VirtualClock()
    prices = default_catalog().copy() if plan.prices else None
    if prices is not None:
        for key, table in plan.prices.items():
            prices.register(prices.get(key).with_overrides(price=table), replace=True)
    price_catalog: Catalog = prices if prices is not None else default_catalog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # A first pass over placeholder models checks the whole file, with the file's
            # name in its messages, before its values configure the scheduler and tracker.
            from_config(
                plan.data,
                **_chain(plan.data, [_placeholder(plan.specs[n]) for n in plan.names]),
                scheduler=False,
                tracker=False,
                **_NEUTRAL,
            )
            scheduler = RateScheduler(
                tier=plan.tier,
                limits=plan.limits or None,
                max_wait=plan.max_wait,
                clock=clock,
            )
            tracker = CostTracker(
                budget_usd=plan.budget_usd,
                catalog=price_catalog,
                clock=lambda: _EPOCH + clock.now(),
            )
            providers, models = _providers(plan, scheduler, price_catalog, clock, seed)
            router = from_config(
                plan.data,
                **_chain(plan.data, models),
                scheduler=scheduler,
                tracker=tracker,
                **_NEUTRAL,
            )
        except (TypeError, ValueError) as exc:
            raise _relabel(exc, plan.label) from None
        report = SimulationReport(chain=list(router.names), duration_s=float(duration_s), seed=seed)
        report.notes.extend(plan.notes)
        started = time.perf_counter()
        outcomes = asyncio.run(_drive(router, sent, clock))
        report.wall_s = time.perf_counter() - started
    for warning in caught:
        text = str(warning.message)
        if text not in report.notes:
            report.notes.append(text)
    _fill(report, outcomes, router, scheduler, tracker, providers, clock)
    return report


def _chain(data: Mapping[str, Any], models: Sequence[Any]) -> dict[str, Any]:
    """``primary``, ``fallbacks`` and ``large_context`` overrides, in the file's order."""
    if not models:
        return {}  # a file without models: from_config says what is missing
    router = data.get("router")
    value = router.get("fallbacks", []) if isinstance(router, Mapping) else []
    count = len(value) if isinstance(value, list | tuple) else 0
    return {
        "primary": models[0],
        "fallbacks": list(models[1 : 1 + count]),
        "large_context": list(models[1 + count :]),
    }


def _placeholder(spec: ModelSpec) -> _SimulatedChatModel:
    return _SimulatedChatModel(spec, None)


def _providers(
    plan: _Plan, scheduler: Any, prices: Catalog, clock: Any, seed: int
) -> tuple[dict[str, _Provider], list[_SimulatedChatModel]]:
    providers: dict[str, _Provider] = {}
    models: list[_SimulatedChatModel] = []
    for name in plan.names:
        spec = prices.get(plan.specs[name].key)
        provider = providers.get(spec.key)
        if provider is None:
            limits = scheduler.limits_for(spec.key)
            shape = {k: getattr(limits, k) for k in ("rpm", "tpm", "rpd", "itpm", "otpm")}
            provider = _Provider(spec, shape, plan.latency, seed, clock)
            providers[spec.key] = provider
        models.append(_SimulatedChatModel(spec, provider))
    return providers, models


@dataclass(slots=True)
class _Outcome:
    arrival: Arrival
    finished: float
    model: str | None = None
    failure: str | None = None
    error: str | None = None


async def _drive(router: Any, arrivals: Sequence[Arrival], clock: Any) -> list[_Outcome]:
    rng = random.Random(0)
    prompts: dict[int, str] = {}
    outcomes: list[_Outcome] = []

    async def one(arrival: Arrival) -> None:
        _CURRENT.set(arrival)
        text = prompts.get(arrival.prompt_tokens)
        if text is None:
            text = prompts[arrival.prompt_tokens] = sim_tokens.reply_text(
                rng, arrival.prompt_tokens
            )
        outcome = _Outcome(arrival, arrival.t)
        try:
            message = await router.ainvoke(text, max_tokens=arrival.max_tokens)
        except AllModelsFailedError as exc:
            outcome.failure = exc.attempts[-1].kind.value if exc.attempts else "other"
        except Exception as exc:  # the report counts what the app would have seen
            outcome.failure = classify(exc).value
            outcome.error = f"{type(exc).__name__}: {exc}"
        else:
            outcome.model = message.response_metadata.get("llm_routing.model")
        outcome.finished = clock.now()
        outcomes.append(outcome)

    tasks: list[asyncio.Task[None]] = []
    for arrival in arrivals:
        delay = arrival.t - clock.now()
        if delay > 0:
            await clock.asleep(delay)
        tasks.append(asyncio.create_task(one(arrival)))
    await asyncio.gather(*tasks)
    return outcomes


def _fill(
    report: SimulationReport,
    outcomes: Sequence[_Outcome],
    router: Any,
    scheduler: Any,
    tracker: Any,
    providers: Mapping[str, _Provider],
    clock: Any,
) -> None:
    stats = router.stats()
    sched = scheduler.stats()
    summary = tracker.summary()
    report.requests = len(outcomes)
    report.simulated_s = clock.now()
    latencies: dict[str | None, list[float]] = {}
    errors: list[str] = []
    for o in outcomes:
        if o.failure is not None:
            report.failed[o.failure] = report.failed.get(o.failure, 0) + 1
            if o.error is not None:
                errors.append(o.error)
            continue
        report.answered += 1
        latencies.setdefault(o.model, []).append(o.finished - o.arrival.t)
    every = [x for values in latencies.values() for x in values]
    report.latency_p50_s = _percentile(every, 0.5)
    report.latency_p95_s = _percentile(every, 0.95)
    report.fallbacks = {reason: int(stats.get(f"{reason}_fallbacks", 0)) for reason in _REASONS}
    report.waits = {k: float(v) for k, v in sched["waits"].items()}
    report.retries = int(sched.get("retries", 0))
    report.total_cost_usd = float(summary.get("total_cost", 0.0))
    report.unpriced_calls = int(summary.get("unpriced_calls", 0))
    if errors:
        report.notes.append(
            f"{len(errors):,} requests failed with an error; the first: {errors[0]}"
        )
    for name in router.names:
        key = name.split("#", 1)[0]
        provider = providers[key]
        entry = stats["by_model"].get(name, {})
        result = report.models.get(key)
        if result is None:
            result = ModelResult(name=key, limits=dict(provider.limits))
            served = provider.served
            result.served = len(served)
            result.input_tokens = sum(s.input_tokens for s in served)
            result.output_tokens = sum(s.output_tokens for s in served)
            result.provider_429s = dict(provider.rate_limited)
            result.context_overflows = provider.context_overflows
            result.bad_requests = provider.bad_requests
            result.cost_usd = entry.get("cost", 0.0)
            values = latencies.get(name, [])
            result.latency_p50_s = _percentile(values, 0.5)
            result.latency_p95_s = _percentile(values, 0.95)
            by_model = sched["by_model"].get(key, {})
            admitted = by_model.get("admitted", 0)
            result.mean_wait_s = by_model.get("wait_total_s", 0.0) / admitted if admitted else 0.0
            result.served_at = sorted(s.t for s in served)
            report.models[key] = result
        for kind, n in entry.get("failures", {}).items():
            result.skipped[kind] = result.skipped.get(kind, 0) + int(n)
    timeline = sorted(
        (s.t, float(s.cost)) for p in providers.values() for s in p.served if s.cost is not None
    )
    running = 0.0
    for t, cost in timeline:
        running += cost
        report.cost_timeline.append((t, running))
