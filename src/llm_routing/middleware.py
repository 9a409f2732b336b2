"""`RoutingMiddleware`: an agent's model calls through the guard, scheduler, tracker and fallbacks.

LangChain v1 builds agents with ``create_agent(model, tools, middleware=[...])``; the agent's
model is a plain chat model, so without this middleware its calls bypass everything
``build_router`` gives a chain. LangChain's own ``ModelFallbackMiddleware`` falls back on any
error (a bad request too) and ``ModelRetryMiddleware`` ignores Retry-After; this middleware
applies the router's rule instead, by running the router's own loop (`router.chain.Chain`) over
handler calls: the agent's model is the primary, each attempt is ``handler(request)`` with the
request's model swapped for the decorated model, so the tools, tool choice, response format
and model settings the agent (and any other middleware) put on the request reach whichever
model answers.

LangChain is imported here, not in ``llm_routing``: the core install does not need it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, cast

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableLambda

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelRequest,
        ModelResponse,
    )
    from langchain.agents.structured_output import AutoStrategy, ProviderStrategy, ToolStrategy
except ImportError as _missing:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "llm_routing.RoutingMiddleware needs LangChain's agents (langchain>=1.5): "
        "pip install 'llm-routing[agents]' (or: pip install langchain)"
    ) from _missing

from llm_routing._decorator import Decorator
from llm_routing.guard import ContextGuard
from llm_routing.router.build import Parts, unique_names
from llm_routing.router.chain import Chain, ModelTurn, annotate
from llm_routing.router.router import Router
from llm_routing.router.stats import Stats

__all__ = ["RoutingMiddleware"]

_CACHE_SIZE = 64
"""Primary models whose decorated form and router are kept; agents use one or a few."""

Handler = Callable[[ModelRequest[Any]], ModelResponse[Any]]
AsyncHandler = Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]
Result = ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]


def _provider_strategy_checks() -> tuple[Callable[..., bool], Callable[[Any], bool]] | None:
    """LangChain's own "does this model do provider structured output" checks, when present.

    The agent decides between provider and tool structured output by ``isinstance(model,
    BaseChatModel)``, which the decorated model is not; asking the same question of the real
    model keeps the agent's choice what it would be without this middleware.
    """
    try:
        from langchain.agents.factory import (
            _is_openai_compatible_model,
            _supports_provider_strategy,
        )
    except ImportError:  # pragma: no cover - a LangChain that moved them: the agent decides
        return None
    return _supports_provider_strategy, _is_openai_compatible_model


_CHECKS = _provider_strategy_checks()


class _MergedStats(Stats):
    """The counters of every router this middleware made (one per primary model), summed.

    Lets `Router.stats` (which adds the scheduler's waits and the tracker's cost) report the
    middleware as one router, whichever primary models the agent's calls came with.
    """

    def __init__(self, parts: Sequence[Stats]) -> None:
        super().__init__(())
        self._parts = tuple(parts)

    def snapshot(self) -> dict[str, Any]:
        """The sum of the parts' snapshots (each model's requests and failures added up)."""
        merged = super().snapshot()
        by_model: dict[str, dict[str, Any]] = merged["by_model"]
        for part in self._parts:
            snapshot = part.snapshot()
            for key, value in snapshot.items():
                if key != "by_model":
                    merged[key] += value
            for name, entry in snapshot["by_model"].items():
                total = by_model.setdefault(name, {"requests": 0, "failures": {}})
                total["requests"] += entry["requests"]
                for kind, n in entry["failures"].items():
                    total["failures"][kind] = total["failures"].get(kind, 0) + n
        return merged


class _Route(NamedTuple):
    """A primary model's router and its models undecorated (what the agent would inspect)."""

    router: Router
    raw: tuple[Any, ...]


class RoutingMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Routes an agent's model calls as `build_router` routes a chain's.

    Every model call of the agent goes through ``guard | scheduler | tracker`` and falls back
    on the router's errors only (``FALLBACK_ERRORS``: the guard refused an oversize input, the
    scheduler would wait longer than ``max_wait`` for capacity or a Retry-After, a quota is
    spent, the provider is down); any other error, such as a bad request, propagates at once,
    since the next model would fail the same way. The agent's own model (``request.model``)
    is the primary; then ``fallbacks`` in order; then ``large_context`` by window, smallest
    first, so an oversize input goes to the smallest model that fits before any request is
    sent. The keyword arguments are `build_router`'s without ``primary``, resolved by the same
    code: models by name with `init_model`, the default guard, scheduler and tracker made once
    here and shared by every call of every agent this instance serves.

    The answer's message says which model served and why the others did not
    (``response_metadata["llm_routing.model"]`` and ``["llm_routing.attempts"]``), and
    `stats` counts like `Router.stats`.

    Put it last in ``middleware=[...]`` (innermost): the model it hands on is the decorated
    one, which the agent's model call uses as it would the plain model, but which is not a
    ``BaseChatModel`` for middleware that inspects ``request.model`` after it. Middleware that
    runs before the model call (``SummarizationMiddleware``) or wraps it from outside works
    as usual.

    Example:
        >>> from llm_routing import RoutingMiddleware
        >>> routing = RoutingMiddleware(
        ...     fallbacks=["openai:gpt-4o"],
        ...     large_context=["openai:gpt-4.1-mini"],
        ...     max_wait=30,
        ...     init_kwargs={"api_key": "unused"},
        ... )
        >>> routing.fallback_names
        ('openai:gpt-4o', 'openai:gpt-4.1-mini')
        >>> routing.stats()["total_requests"]
        0
    """

    def __init__(
        self,
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
    ) -> None:
        super().__init__()
        self.tools = []  # registers no tools of its own
        parts = Parts(
            "RoutingMiddleware",
            tier=tier,
            max_wait=max_wait,
            budget_usd=budget_usd,
            guard=guard,
            scheduler=scheduler,
            tracker=tracker,
            backend=backend,
            langfuse=langfuse,
            init_kwargs=init_kwargs,
        )
        entries = parts.fallbacks(fallbacks, large_context)
        self._parts = parts
        self._fallback_raw = tuple(model for model, _ in entries)
        self._fallback_models = tuple(parts.wrap(model) for model in self._fallback_raw)
        self._fallback_specs = tuple(spec for _, spec in entries)
        self.fallback_names: tuple[str, ...] = tuple(unique_names(self._fallback_specs))
        """The fallbacks' names, in the order they are tried after the agent's model."""
        self._lock = threading.Lock()
        self._routers: OrderedDict[int, tuple[Any, _Route]] = OrderedDict()
        self._stats: dict[tuple[str, ...], Stats] = {}

    @property
    def settings(self) -> dict[str, Any]:
        """What `build_router` would put in ``Router.settings``: the decorators in use and more."""
        return self._parts.settings

    @property
    def guard(self) -> Decorator | None:
        """The guard every call goes through (``None`` with ``guard=False``)."""
        return cast("Decorator | None", self.settings["guard"])

    @property
    def scheduler(self) -> Decorator | None:
        """The rate scheduler every call goes through (``None`` with ``scheduler=False``)."""
        return cast("Decorator | None", self.settings["scheduler"])

    @property
    def tracker(self) -> Decorator | None:
        """The cost tracker that prices every call (``None`` with ``tracker=False``)."""
        return cast("Decorator | None", self.settings["tracker"])

    def __repr__(self) -> str:
        chain = " -> ".join(("<agent model>", *self.fallback_names))
        return f"RoutingMiddleware({chain})"

    # --- the router for a primary model --------------------------------------------------

    def _route_for(self, model: Any) -> _Route:
        """The router whose primary is ``model`` (decorated once, then cached)."""
        key = id(model)
        with self._lock:
            entry = self._routers.get(key)
            if entry is not None and entry[0] is model:
                self._routers.move_to_end(key)
                return entry[1]
        primary, spec = self._parts.build(model, "the agent's model")
        names = tuple(unique_names([spec, *self._fallback_specs]))
        with self._lock:
            stats = self._stats.setdefault(names, Stats(names))
            router = Router(
                [self._parts.wrap(primary), *self._fallback_models],
                names,
                settings=self.settings,
                _stats=stats,
            )
            route = _Route(router, (primary, *self._fallback_raw))
            self._routers[key] = (model, route)
            if len(self._routers) > _CACHE_SIZE:
                self._routers.popitem(last=False)
        return route

    def _attempt(
        self, request: ModelRequest[Any], route: _Route, turn: ModelTurn, position: int
    ) -> ModelRequest[Any]:
        """``request`` for this turn's model, everything else as the agent (and others) set it.

        The agent calls the model without a config (it runs under the model node's), so what
        the router puts in an attempt's config travels bound to the model: a fallback's
        metadata saying why it is tried, and the Langfuse handler when there is one.
        """
        model: Runnable[Any, Any] = turn.model
        bound: dict[str, Any] = {}
        if position > 0:
            bound["metadata"] = turn.config.get("metadata", {})
        if self.settings.get("langfuse") is not None and "callbacks" in turn.config:
            bound["callbacks"] = turn.config["callbacks"]
        if bound:
            model = model.with_config(cast("Any", bound))
        overrides: dict[str, Any] = {"model": model}
        overrides.update(_structured_output(request, route.raw[position]))
        return request.override(**overrides)

    @staticmethod
    def _served(chain: Chain, result: Any) -> Any:
        """Mark the answer's AI messages with who served and why others did not; count it."""
        for message in _messages(result):
            if isinstance(message, AIMessage):
                annotate(message, chain.name, chain.attempts)
        return chain.served(result)

    # --- the hooks ---------------------------------------------------------------------------

    def wrap_model_call(self, request: ModelRequest[Any], handler: Handler) -> Result:
        """Try the agent's model, then each fallback, as the router would."""
        route = self._route_for(request.model)
        chain = Chain(route.router, None, stream=False)
        for position, turn in enumerate(chain):
            attempt = self._attempt(request, route, turn, position)
            with turn:
                return cast("Result", self._served(chain, handler(attempt)))
        raise chain.all_failed()

    async def awrap_model_call(self, request: ModelRequest[Any], handler: AsyncHandler) -> Result:
        """Async `wrap_model_call`."""
        route = self._route_for(request.model)
        chain = Chain(route.router, None, stream=False)
        for position, turn in enumerate(chain):
            attempt = self._attempt(request, route, turn, position)
            with turn:
                return cast("Result", self._served(chain, await handler(attempt)))
        raise chain.all_failed()

    # --- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """`Router.stats` for every call this middleware routed, whatever its primary model.

        Requests, which model served them, fallbacks by reason; with a scheduler its waits and
        429s; with a tracker the cost, in total and by model.
        """
        with self._lock:
            parts = list(self._stats.values())
        idle = RunnableLambda(_unused)
        view = Router([idle], ["-"], settings=self.settings, _stats=_MergedStats(parts))
        return view.stats()

    get_stats = stats


def _structured_output(request: ModelRequest[Any], real: Any) -> dict[str, Any]:
    """Keep the agent's choice of provider or tool structured output for ``real``, the model.

    The agent picks provider-native structured output only for a ``BaseChatModel`` that
    supports it; asked of the decorated model it would always pick the tool strategy. So a
    response format left to the agent (a schema or ``AutoStrategy``) is decided here, on the
    real model, as the agent would decide it.
    """
    response_format = request.response_format
    if (
        _CHECKS is None
        or response_format is None
        or isinstance(response_format, ToolStrategy | ProviderStrategy)
    ):
        return {}
    supports, openai_compatible = _CHECKS
    if not supports(real, tools=request.tools):
        return {}  # the agent picks the tool strategy, as it would for ``real``
    schema = (
        response_format.schema if isinstance(response_format, AutoStrategy) else response_format
    )
    overrides: dict[str, Any] = {"response_format": ProviderStrategy(schema=schema)}
    if openai_compatible(real) and not getattr(real, "use_responses_api", False):
        overrides["model_settings"] = {**request.model_settings, "strict": True}
    return overrides


def _messages(result: Any) -> list[BaseMessage]:
    if isinstance(result, ExtendedModelResponse):
        result = result.model_response
    if isinstance(result, ModelResponse):
        return list(result.result)
    if isinstance(result, BaseMessage):
        return [result]
    return []


def _unused(value: Any) -> Any:  # pragma: no cover - the stats view is never called
    return value
