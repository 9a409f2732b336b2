"""The router: a fallback chain of decorated chat models, built from names or instances.

Owns ``build_router``, the ``Router`` runnable (fallback loop, per-request bookkeeping, stats)
and the seed's ``create_auto_picker_llm``. Admission (context, rate, budget) belongs to the
decorators each model carries; the router only moves on when one of them says no.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_core.runnables.config import RunnableConfig, ensure_config

from llm_routing._decorator import Decorator, DecoratorStack
from llm_routing.catalog import ModelSpec, default_catalog
from llm_routing.errors import (
    FALLBACK_ERRORS,
    AllModelsFailedError,
    Attempt,
    ErrorKind,
    malformed_response_error,
)
from llm_routing.guard import ContextGuard

__all__ = ["Router", "build_router", "create_auto_picker_llm", "init_model"]

_EXTRA_HINT = "pip install 'llm-routing[models]' (or: pip install langchain)"
# The seed wrote ``provider/model`` with its own provider names; LangChain wants these.
_SEED_PROVIDERS = {
    "google": "google_genai",
    "gemini": "google_genai",
    "vertex": "google_vertexai",
    "mistral": "mistralai",
    "azure": "azure_openai",
}
_FALLBACK_KEYS: dict[ErrorKind, str] = {
    ErrorKind.RATE_LIMIT: "rate_limit_fallbacks",
    ErrorKind.QUOTA: "quota_fallbacks",
    ErrorKind.CONTEXT: "context_fallbacks",
    ErrorKind.TRANSIENT: "transient_fallbacks",
    ErrorKind.BUDGET: "budget_fallbacks",
}


def _stream_failed_note(name: str) -> str:
    return (
        f"llm_routing: the stream from {name} failed after its first chunk; the router does not "
        "fall back once output has been yielded (it would duplicate it). Retry the request."
    )


class _Stats:
    """Counters shared by a router and every router derived from it (``bind_tools``…)."""

    def __init__(self, names: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "total_requests",
                "primary_requests",
                "fallback_requests",
                "failed_requests",
                "rate_limit_fallbacks",
                "quota_fallbacks",
                "context_fallbacks",
                "transient_fallbacks",
                "budget_fallbacks",
                "other_fallbacks",
                "broken_streams",
            ),
            0,
        )
        self._by_model: dict[str, dict[str, Any]] = {
            name: {"requests": 0, "failures": {}} for name in names
        }

    def record(self, served: str | None, position: int, attempts: Sequence[Attempt]) -> None:
        with self._lock:
            counts = self._counts
            counts["total_requests"] += 1
            if served is None:
                counts["failed_requests"] += 1
            elif position == 0:
                counts["primary_requests"] += 1
            else:
                counts["fallback_requests"] += 1
            for attempt in attempts:
                kind = attempt.kind
                counts[_FALLBACK_KEYS.get(kind, "other_fallbacks")] += 1
                failures = self._by_model[attempt.model]["failures"]
                failures[kind.value] = failures.get(kind.value, 0) + 1
            if served is not None:
                self._by_model[served]["requests"] += 1

    def broken(self) -> None:
        """A stream that had opened (and was counted as served) failed mid-way."""
        with self._lock:
            self._counts["broken_streams"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self._counts,
                "by_model": {
                    name: {"requests": entry["requests"], "failures": dict(entry["failures"])}
                    for name, entry in self._by_model.items()
                },
            }


def _fallback_error(exc: Exception, name: str, *, stream: bool) -> BaseException | None:
    """The error to fall back on for ``exc``, or None when ``exc`` must propagate as it is.

    The SDKs let malformed JSON out as a bare ``JSONDecodeError``: the provider's fault, so it
    falls back, typed, as a dropped connection does. The decorators below saw the original.
    """
    if isinstance(exc, FALLBACK_ERRORS):
        return exc
    return malformed_response_error(exc, model=name, stream=stream)


def _broken_stream_error(exc: Exception, name: str) -> Exception:
    """``exc`` typed (a malformed frame) and noted: the stream broke after its first chunk."""
    error = malformed_response_error(exc, model=name, stream=True) or exc
    error.add_note(_stream_failed_note(name))
    return error


def _annotate(output: Any, name: str, attempts: Sequence[Attempt]) -> None:
    """Record on a message which model served it and which failed before (no-op otherwise)."""
    if isinstance(output, BaseMessage):
        output.response_metadata["llm_routing.model"] = name
        output.response_metadata["llm_routing.attempts"] = [
            {
                "model": a.model,
                "kind": a.kind.value,
                "error": f"{type(a.error).__name__}: {a.error}",
            }
            for a in attempts
        ]


class Router(Runnable[Any, Any]):
    """Tries its models in order and answers with the first that succeeds.

    A model is skipped when it raises one of ``FALLBACK_ERRORS`` (its guard refused the input,
    its scheduler gave up waiting, its quota is spent, its provider is down or sent malformed
    JSON, which becomes `ProviderUnavailableError`); any other error (a bad request, a bad key)
    propagates at once, since the next model would fail the same way.
    When every model fails, `AllModelsFailedError` names each model and its reason.

    A served message carries ``response_metadata["llm_routing.model"]`` (the model's
    ``provider:name``) and ``["llm_routing.attempts"]`` (the failures before it). Streams fall
    back only before their first chunk: after it, an error propagates with a note saying so.
    The router opens no callback run of its own: each attempt is the model's own run.

    Example:
        >>> from langchain_openai import ChatOpenAI
        >>> from llm_routing import Router
        >>> small = ChatOpenAI(model="gpt-4o-mini", api_key="unused", max_retries=0)
        >>> Router([small], ["openai:gpt-4o-mini"])
        Router(openai:gpt-4o-mini)
    """

    def __init__(
        self,
        models: Sequence[Runnable[Any, Any]],
        names: Sequence[str],
        *,
        settings: Mapping[str, Any] | None = None,
        _stats: _Stats | None = None,
    ) -> None:
        if not models:
            raise ValueError("Router(models=…) needs at least one model; got none")
        if len(models) != len(names):
            raise ValueError(
                f"Router needs one name per model; got {len(models)} models, {len(names)} names"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"Router model names must be unique; got {list(names)}")
        self.models: tuple[Runnable[Any, Any], ...] = tuple(models)
        self.names: tuple[str, ...] = tuple(names)
        self.settings: dict[str, Any] = dict(settings or {})
        self._stats = _stats if _stats is not None else _Stats(self.names)

    def __repr__(self) -> str:
        return f"Router({' -> '.join(self.names)})"

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        """``Router`` (with ``suffix``), as traces and graphs show it."""
        return super().get_name(suffix, name=name or "Router")

    @property
    def InputType(self) -> Any:
        """The primary model's input type."""
        return self.models[0].InputType

    @property
    def OutputType(self) -> Any:
        """The primary model's output type."""
        return self.models[0].OutputType

    # --- derived routers -------------------------------------------------------------------

    def _derive(self, transform: Callable[[Runnable[Any, Any]], Runnable[Any, Any]]) -> Router:
        return Router(
            [transform(model) for model in self.models],
            self.names,
            settings=self.settings,
            _stats=self._stats,
        )

    def _apply(self, method_name: str, what: str, *args: Any, **kwargs: Any) -> Router:
        """A router whose models are ``model.<method_name>(*args, **kwargs)``, stats shared."""
        derived: list[Runnable[Any, Any]] = []
        for name, model in zip(self.names, self.models, strict=True):
            method = getattr(model, method_name, None)
            try:
                if method is None:
                    raise NotImplementedError
                derived.append(method(*args, **kwargs))
            except NotImplementedError:
                raise TypeError(
                    f"Router.{method_name}: {name} ({type(model).__name__}) does not support "
                    f"{what}; every model of the router must, or build a router without it"
                ) from None
        return Router(derived, self.names, settings=self.settings, _stats=self._stats)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Router:
        """Bind ``tools`` on every model; the new router shares this one's stats."""
        return self._apply("bind_tools", "tool calling", tools, **kwargs)

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Router:
        """Structured output from every model; the new router shares this one's stats.

        The results are parsed objects, not messages, so they carry no ``llm_routing.model``;
        ``stats()`` still records which model served.
        """
        return self._apply("with_structured_output", "structured output", schema, **kwargs)

    def bind(self, **kwargs: Any) -> Router:
        """Bind call kwargs (``stop``, ``max_tokens``…) on every model."""
        return self._derive(lambda model: model.bind(**kwargs))

    # --- stats -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Requests, which model served them, why the router fell back, waits and cost.

        Keys: ``total_requests``, ``primary_requests``, ``fallback_requests``,
        ``failed_requests`` (every model failed), ``rate_limit_fallbacks``,
        ``quota_fallbacks``, ``context_fallbacks``, ``transient_fallbacks``,
        ``budget_fallbacks``, ``other_fallbacks`` (one per model skipped, by reason),
        ``broken_streams`` (streams that failed after their first chunk: counted as served by
        their model, which had answered, and here, because the caller got an error) and
        ``by_model``: ``{name: {"requests": served, "failures": {kind: n}}}``.

        With a scheduler: ``waits`` (``count``, ``total_s``, ``p50_s``, ``p95_s``, ``max_s``),
        ``rate_limit_errors`` (provider 429s seen), ``retries`` and ``transient_retries``.
        With a tracker: ``total_cost`` (USD) and ``by_model[name]["cost"]``. Both come from
        the decorator instances, so a scheduler or tracker shared between routers reports
        what all of them did.
        """
        snapshot = self._stats.snapshot()
        scheduler = self.settings.get("scheduler")
        if scheduler is not None and callable(getattr(scheduler, "stats", None)):
            waits = scheduler.stats()
            snapshot["waits"] = waits["waits"]
            for key in ("rate_limit_errors", "retries", "transient_retries"):
                snapshot[key] = waits.get(key, 0)
        tracker = self.settings.get("tracker")
        if tracker is not None and callable(getattr(tracker, "summary", None)):
            summary = tracker.summary()
            snapshot["total_cost"] = summary.get("total_cost", 0.0)
            snapshot["unpriced_calls"] = summary.get("unpriced_calls", 0)
            cost_for = getattr(tracker, "cost_for", None)
            if callable(cost_for):
                for name, entry in snapshot["by_model"].items():
                    entry["cost"] = cost_for(name.split("#", 1)[0])
        return snapshot

    get_stats = stats

    # --- the fallback loop -----------------------------------------------------------------

    def _config(self, config: RunnableConfig | None) -> RunnableConfig:
        config = ensure_config(config)
        handler = self.settings.get("langfuse")
        if handler is not None:
            from llm_routing.observe import attach

            config = attach(config, handler)
        return config

    @staticmethod
    def _attempt_config(
        config: RunnableConfig, position: int, attempts: Sequence[Attempt]
    ) -> RunnableConfig:
        """The primary's config is the caller's; a fallback's says why it is being tried.

        A caller's run_id names one run, so only the first attempt may take it. The metadata
        reaches the fallback model's run (and its Langfuse generation).
        """
        if position == 0:
            return config
        patched = config.copy()
        patched.pop("run_id", None)
        patched["metadata"] = {
            **config.get("metadata", {}),
            "llm_routing.router_attempt": position + 1,
            "llm_routing.fallback_from": [f"{a.model} ({a.kind.value})" for a in attempts],
        }
        return patched

    def _failed(self, attempts: list[Attempt]) -> AllModelsFailedError:
        self._stats.record(None, -1, attempts)
        return AllModelsFailedError(attempts)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Answer with the first model that does not fail with a fallback error."""
        config = self._config(config)
        attempts: list[Attempt] = []
        for position, (name, model) in enumerate(zip(self.names, self.models, strict=True)):
            try:
                output = model.invoke(
                    input, self._attempt_config(config, position, attempts), **kwargs
                )
            except Exception as exc:
                error = _fallback_error(exc, name, stream=False)
                if error is None:
                    raise
                attempts.append(Attempt(name, error))
                continue
            _annotate(output, name, attempts)
            self._stats.record(name, position, attempts)
            return output
        raise self._failed(attempts)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async `invoke`."""
        config = self._config(config)
        attempts: list[Attempt] = []
        for position, (name, model) in enumerate(zip(self.names, self.models, strict=True)):
            try:
                output = await model.ainvoke(
                    input, self._attempt_config(config, position, attempts), **kwargs
                )
            except Exception as exc:
                error = _fallback_error(exc, name, stream=False)
                if error is None:
                    raise
                attempts.append(Attempt(name, error))
                continue
            _annotate(output, name, attempts)
            self._stats.record(name, position, attempts)
            return output
        raise self._failed(attempts)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        """Stream from the first model that opens; fall back only before the first chunk."""
        config = self._config(config)
        attempts: list[Attempt] = []
        for position, (name, model) in enumerate(zip(self.names, self.models, strict=True)):
            iterator = iter(
                model.stream(input, self._attempt_config(config, position, attempts), **kwargs)
            )
            try:
                first = next(iterator)
            except StopIteration:
                self._stats.record(name, position, attempts)
                return
            except Exception as exc:
                error = _fallback_error(exc, name, stream=True)
                if error is None:
                    raise
                attempts.append(Attempt(name, error))
                continue
            _annotate(first, name, attempts)
            self._stats.record(name, position, attempts)
            yield first
            try:
                yield from iterator
            except Exception as exc:
                self._stats.broken()
                error = _broken_stream_error(exc, name)
                if error is exc:
                    raise
                raise error from exc
            return
        raise self._failed(attempts)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        """Async `stream`."""
        config = self._config(config)
        attempts: list[Attempt] = []
        for position, (name, model) in enumerate(zip(self.names, self.models, strict=True)):
            iterator = aiter(
                model.astream(input, self._attempt_config(config, position, attempts), **kwargs)
            )
            try:
                first = await anext(iterator)
            except StopAsyncIteration:
                self._stats.record(name, position, attempts)
                return
            except Exception as exc:
                error = _fallback_error(exc, name, stream=True)
                if error is None:
                    raise
                attempts.append(Attempt(name, error))
                continue
            _annotate(first, name, attempts)
            self._stats.record(name, position, attempts)
            try:
                yield first
                async for chunk in iterator:
                    yield chunk
            except Exception as exc:
                self._stats.broken()
                error = _broken_stream_error(exc, name)
                if error is exc:
                    raise
                raise error from exc
            finally:
                # A caller that stops early must close the model's stream now (its decorators
                # settle on close), not whenever the generator is garbage-collected.
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        raise self._failed(attempts)

    # batch/abatch: Runnable's defaults run invoke/ainvoke per input (thread pool / gather),
    # so each element routes on its own and return_exceptions applies per element.


# --------------------------------------------------------------------------- building


def _split_name(text: str) -> tuple[str | None, str]:
    """``provider:model`` or the seed's ``provider/model`` -> (LangChain provider, model)."""
    for sep in (":", "/"):
        head, found, tail = text.partition(sep)
        if found and head and tail:
            provider = head.strip().lower()
            provider = _SEED_PROVIDERS.get(provider, provider)
            if sep == ":" or provider in _known_langchain_providers():
                return provider, tail.strip()
    return None, text.strip()


def _known_langchain_providers() -> frozenset[str]:
    try:
        from langchain.chat_models import base
    except ImportError:
        return frozenset(_SEED_PROVIDERS.values()) | {"openai", "anthropic"}
    return frozenset(getattr(base, "_BUILTIN_PROVIDERS", ())) | {"openai", "anthropic"}


def init_model(name: str, **kwargs: Any) -> Runnable[Any, Any]:
    """Build the chat model ``name`` (``"openai:gpt-4o-mini"``) as `build_router` would.

    Uses LangChain's ``init_chat_model`` with the SDK's own retries off (``max_retries=0``,
    unless ``kwargs`` says otherwise): retries belong to the scheduler, and an SDK that
    retries on its own delays the fallback and multiplies the scheduler's retries. Use it to
    give one model of a router its own kwargs (a different ``base_url`` or key), then pass
    the instance to `build_router`.

    Example:
        >>> from llm_routing import init_model
        >>> init_model("openai:gpt-4o-mini", api_key="unused").max_retries
        0
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"init_model(name=…) needs a model name such as 'openai:gpt-4o-mini', got {name!r}"
        )
    return _init_model(name, kwargs, "init_model")


def _init_model(text: str, init_kwargs: Mapping[str, Any], who: str) -> Runnable[Any, Any]:
    """``init_chat_model`` with SDK retries off; errors start with ``who`` (the list position)."""
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise ImportError(
            f"{who} got the model name {text!r}; building models from names needs "
            f"LangChain's init_chat_model: {_EXTRA_HINT}. Or pass a chat model instance."
        ) from None
    provider, name = _split_name(text)
    kwargs = {"max_retries": 0, **init_kwargs}
    try:
        model = cast("Runnable[Any, Any]", init_chat_model(name, model_provider=provider, **kwargs))
    except ImportError as exc:
        raise ImportError(f"{who} cannot build {text!r}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(
            f"{who} cannot build {text!r}: {exc}. Write models as 'provider:model', "
            "e.g. 'openai:gpt-4o-mini', or pass a chat model instance."
        ) from exc
    return model


def _warn_if_retrying(model: Any, where: str) -> None:
    retries = getattr(model, "max_retries", None)
    if isinstance(retries, int) and not isinstance(retries, bool) and retries > 0:
        warnings.warn(
            f"build_router: {where} ({type(model).__name__}) has max_retries={retries}: its SDK "
            "retries on its own before the router can fall back, and its retries would multiply "
            "with the scheduler's. Construct it with max_retries=0.",
            UserWarning,
            stacklevel=4,
        )


def _check_number(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"build_router({name}=…) must be a number, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"build_router({name}=…) must be >= 0, got {value!r}")


def _as_list(name: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Runnable):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise TypeError(
        f"build_router({name}=…) must be a list of models (names or chat model instances), "
        f"got {type(value).__name__}"
    )


def _decorator_slot(name: str, value: Any) -> Decorator | Literal[False] | None:
    if value is None or value is False or isinstance(value, Decorator):
        return value
    raise TypeError(
        f"build_router({name}=…) must be a Decorator instance (e.g. a shared {name} object), "
        f"None for a default one, or False for none; got {type(value).__name__}"
    )


def build_router(
    primary: str | Runnable[Any, Any],
    fallbacks: Sequence[str | Runnable[Any, Any]] = (),
    large_context: Sequence[str | Runnable[Any, Any]] = (),
    *,
    tier: str | Mapping[str, str] = "tier1",
    max_wait: float = 90.0,
    budget_usd: float | None = None,
    guard: ContextGuard | Decorator | Literal[False] | None = None,
    scheduler: Decorator | Literal[False] | None = None,
    tracker: Decorator | Literal[False] | None = None,
    backend: Any = "memory",
    langfuse: Any = False,
    init_kwargs: Mapping[str, Any] | None = None,
) -> Router:
    """Build a `Router`: ``primary``, then ``fallbacks``, then ``large_context`` by window.

    Models are chat model instances or names (``"openai:gpt-4o-mini"``, the seed's
    ``"openai/gpt-4o-mini"``), built with `init_model` (``max_retries=0``) plus
    ``init_kwargs`` (``base_url``, ``api_key``, ``temperature``…). Large-context candidates
    are ordered by context window, smallest first, so an oversize input lands on the
    smallest model that fits.

    Every model is wrapped in ``guard | scheduler | tracker``. Each slot takes a shared
    instance (to share its state across routers), ``None`` for a default one, or ``False``
    to leave it out: the default guard is ``ContextGuard()``, the default scheduler
    ``RateScheduler(tier=tier, max_wait=max_wait, backend=backend)``, the default tracker
    ``CostTracker(budget_usd=budget_usd, max_wait=max_wait)``. ``tier``, ``max_wait`` and
    ``backend`` configure the default scheduler, and ``max_wait`` also bounds how long the
    default tracker waits for calls in flight to free budget, so a caller who will not wait
    (``max_wait=0``) is refused at once by either (a ``"redis://…"`` URL also gives the
    default tracker a Redis ledger, so workers share one budget); ``budget_usd`` configures
    only the default tracker. Combined with an instance of your own they are an error rather
    than silently ignored.

    ``langfuse=True`` (Langfuse configured from the environment) or a Langfuse client adds
    llm_routing's Langfuse handler to every call, so each attempt is one generation with its
    cost, usage and the decorators' metadata (``pip install 'llm-routing[langfuse]'``).

    Example:
        >>> from llm_routing import build_router
        >>> router = build_router(
        ...     "openai:gpt-4o-mini",
        ...     fallbacks=["openai:gpt-4o"],
        ...     large_context=["openai:gpt-4.1-mini"],
        ...     init_kwargs={"api_key": "unused"},
        ... )
        >>> router.names
        ('openai:gpt-4o-mini', 'openai:gpt-4o', 'openai:gpt-4.1-mini')
        >>> router.stats()["total_requests"], router.stats()["total_cost"]
        (0, 0.0)
    """
    if not isinstance(tier, str | Mapping):
        raise TypeError(
            f"build_router(tier=…) must be a tier name such as 'tier1' or a mapping "
            f"{{provider: tier}}, got {type(tier).__name__}"
        )
    _check_number("max_wait", max_wait)
    _check_number("budget_usd", budget_usd, allow_none=True)
    if init_kwargs is not None and not isinstance(init_kwargs, Mapping):
        raise TypeError(
            f"build_router(init_kwargs=…) must be a mapping, got {type(init_kwargs).__name__}"
        )
    scheduler = _decorator_slot("scheduler", scheduler)
    tracker = _decorator_slot("tracker", tracker)
    customised = tier != "tier1" or max_wait != 90.0 or backend != "memory"
    if scheduler is None:
        from llm_routing.schedule import RateScheduler

        scheduler = RateScheduler(tier=tier, max_wait=max_wait, backend=backend)
    elif customised:
        raise ValueError(
            "build_router: tier, max_wait and backend configure the default scheduler; "
            + (
                "with scheduler=False there is none to configure. Drop them or let the "
                "router build its scheduler."
                if scheduler is False
                else "you passed your own scheduler, so set them on it: "
                "RateScheduler(tier=…, max_wait=…, backend=…)."
            )
        )
    if tracker is None:
        from llm_routing.cost import CostTracker

        # A shared backend shares the budget too: N workers, one ledger.
        ledger = None if backend in ("memory", None) else backend
        if ledger is not None and not isinstance(ledger, str):
            ledger = None  # a Backend instance is the scheduler's; the ledger stays in memory
        tracker = CostTracker(budget_usd=budget_usd, backend=ledger, max_wait=max_wait)
    elif budget_usd is not None:
        raise ValueError(
            "build_router(budget_usd=…) configures the default tracker; "
            + (
                "with tracker=False nothing would enforce it. Drop tracker=False."
                if tracker is False
                else "you passed your own tracker, so set it there: CostTracker(budget_usd=…)."
            )
        )
    if guard is None:
        guard = ContextGuard()
    elif guard is not False and not isinstance(guard, Decorator):
        raise TypeError(
            "build_router(guard=…) must be a ContextGuard (or another Decorator), None for a "
            f"default guard, or False for none; got {type(guard).__name__}"
        )
    handler = _langfuse_handler(langfuse)
    recorder: Decorator | None = None
    if handler is not None:
        from llm_routing.observe import RefusalRecorder

        # Refusals before the network start no model run; this records them as generations.
        recorder = RefusalRecorder()
    decorators = tuple(d for d in (recorder, guard, scheduler, tracker) if isinstance(d, Decorator))
    stack = DecoratorStack(*decorators) if decorators else None
    init = dict(init_kwargs or {})
    spec_guard = guard if isinstance(guard, ContextGuard) else ContextGuard()
    limits_for = getattr(scheduler, "limits_for", None)

    def build(item: Any, where: str) -> tuple[Runnable[Any, Any], ModelSpec]:
        if isinstance(item, str):
            if not item.strip():
                raise ValueError(f"build_router({where}) got an empty model name")
            model = _init_model(item, init, f"build_router({where})")
        elif isinstance(item, Runnable):
            model = item
            _warn_if_retrying(model, where)
        else:
            raise TypeError(
                f"build_router({where}) must be a model name such as 'openai:gpt-4o-mini' or a "
                f"chat model instance, got {type(item).__name__}"
            )
        try:
            spec = spec_guard.spec_for(model)
            if callable(limits_for):
                limits_for(model)  # a tier the model does not have fails now, not mid-run
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"build_router({where}): {exc}") from None
        return model, spec

    if primary is None:
        raise TypeError("build_router(primary=…) needs a model name or a chat model, got None")
    entries = [build(primary, "primary")]
    entries += [build(m, f"fallbacks[{i}]") for i, m in enumerate(_as_list("fallbacks", fallbacks))]
    large = [
        build(m, f"large_context[{i}]")
        for i, m in enumerate(_as_list("large_context", large_context))
    ]
    entries += sorted(large, key=lambda entry: entry[1].context_window)

    names: list[str] = []
    for _model, spec in entries:
        name, n = spec.key, 2
        while name in names:
            name, n = f"{spec.key}#{n}", n + 1
        names.append(name)
    models = [stack.wrap(model) if stack is not None else model for model, _ in entries]
    settings = {
        "tier": tier,
        "max_wait": max_wait,
        "budget_usd": budget_usd,
        "backend": backend,
        "langfuse": handler,
        "guard": guard or None,
        "scheduler": scheduler or None,
        "tracker": tracker or None,
    }
    return Router(models, names, settings=settings)


def _langfuse_handler(langfuse: Any) -> Any:
    """The callback handler ``langfuse=`` asks for (``None`` when off)."""
    if langfuse is False or langfuse is None:
        return None
    from llm_routing.observe import langfuse_handler

    if langfuse is True:
        return langfuse_handler()
    return langfuse_handler(client=langfuse)


# Large-context companions for the seed's entry point, per LangChain provider.
_LARGE_CONTEXT_DEFAULTS = {
    "openai": "openai:gpt-4.1-mini",
    "anthropic": "anthropic:claude-sonnet-4-6",
    "google_genai": "google_genai:gemini-2.5-flash",
    "mistralai": "mistralai:mistral-large",
}


def _window(name: str) -> int:
    """The catalogued window of ``name``, 0 when the catalogue does not know it."""
    try:
        return default_catalog().get(name).context_window
    except (TypeError, ValueError):
        return 0


def create_auto_picker_llm(
    tier: str = "tier1",
    primary_provider: str = "openai",
    primary_model: str = "gpt-4o-mini",
    streaming: bool = False,
    enable_context_fallback: bool = True,
    **router_kwargs: Any,
) -> Router:
    """The seed's entry point, now a `build_router` call.

    Builds ``primary_provider:primary_model`` and, with ``enable_context_fallback``, the same
    provider's large-context model (``gpt-4.1-mini``, ``claude-sonnet-4-6``,
    ``gemini-2.5-flash``, ``mistral-large``) when its window is larger. ``streaming=True`` makes
    the models stream internally (``invoke`` still returns one message). Other keyword
    arguments (``fallbacks``, ``guard``, ``init_kwargs``…) go to `build_router`.

    Example:
        >>> from llm_routing import create_auto_picker_llm
        >>> create_auto_picker_llm(init_kwargs={"api_key": "unused"}).names
        ('openai:gpt-4o-mini', 'openai:gpt-4.1-mini')
    """
    if not isinstance(primary_provider, str) or not primary_provider.strip():
        raise ValueError(
            f"create_auto_picker_llm(primary_provider=…) must be a provider name such as "
            f"'openai', got {primary_provider!r}"
        )
    if not isinstance(primary_model, str) or not primary_model.strip():
        raise ValueError(
            f"create_auto_picker_llm(primary_model=…) must be a model name such as "
            f"'gpt-4o-mini', got {primary_model!r}"
        )
    provider = primary_provider.strip().lower()
    provider = _SEED_PROVIDERS.get(provider, provider)
    init = dict(router_kwargs.pop("init_kwargs", None) or {})
    if streaming:
        init.setdefault("streaming", True)
    large = list(router_kwargs.pop("large_context", ()) or ())
    if enable_context_fallback and not large:
        candidate = _LARGE_CONTEXT_DEFAULTS.get(provider)
        if candidate is not None and _window(candidate) > _window(f"{provider}:{primary_model}"):
            large = [candidate]
    return build_router(
        f"{provider}:{primary_model}",
        large_context=large,
        tier=tier,
        init_kwargs=init,
        **router_kwargs,
    )
