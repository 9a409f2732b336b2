"""The `Router` runnable: a fallback chain of chat models, with derived routers and stats.

Admission (context, rate, budget) belongs to the decorators each model carries; the router only
moves on when one of them says no. The loop that decides what to try next is `chain.Chain`,
written once (with `chain.streamed`/`astreamed` for streams, v3 events included): the entry
points below differ only in how they call a model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.runnables import Runnable
from langchain_core.runnables.config import RunnableConfig

from llm_routing._events_v3 import AEvents, AsyncEventStream, Events, EventStream, ready
from llm_routing.router.chain import Chain, astreamed, streamed
from llm_routing.router.stats import Stats

__all__ = ["Router"]


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
        _stats: Stats | None = None,
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
        self._stats = _stats if _stats is not None else Stats(self.names)

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

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Router:
        """Bind ``tools`` on every model; the new router shares this one's stats."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
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

    # --- the entry points: how each calls a model; the loop itself is `Chain` ------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Answer with the first model that does not fail with a fallback error."""
        chain = Chain(self, config, stream=False)
        for turn in chain:
            with turn:
                return chain.served(turn.model.invoke(input, turn.config, **kwargs))
        raise chain.all_failed()

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async `invoke`."""
        chain = Chain(self, config, stream=False)
        for turn in chain:
            with turn:
                return chain.served(await turn.model.ainvoke(input, turn.config, **kwargs))
        raise chain.all_failed()

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        """Stream from the first model that opens; fall back only before the first chunk."""
        return streamed(self, config, lambda model, cfg: model.stream(input, cfg, **kwargs))

    def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        """Async `stream`."""
        return astreamed(self, config, lambda model, cfg: model.astream(input, cfg, **kwargs))

    def stream_events(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2", "v3"] = "v2",
        **kwargs: Any,
    ) -> Any:
        """``version="v3"``: the first model's `ChatModelStream` that opens, as `stream` picks it.

        Each model's own v3 stream runs through its decorators; the router falls back only
        before the first event. Other versions behave as ``Runnable.stream_events``.
        """
        if version != "v3":
            return super().stream_events(input, config, version=version, **kwargs)

        def open_v3(model: Runnable[Any, Any], cfg: RunnableConfig) -> Events:
            return Events(getattr(model, "stream_events")(input, cfg, version="v3", **kwargs))  # noqa: B009

        return EventStream(streamed(self, config, open_v3))

    def astream_events(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        """Async `stream_events`: ``version="v3"`` returns an awaitable of the stream."""
        if kwargs.get("version", "v2") != "v3":
            return super().astream_events(input, config, **kwargs)
        kwargs.pop("version")

        def open_v3(model: Runnable[Any, Any], cfg: RunnableConfig) -> AEvents:
            return AEvents(getattr(model, "astream_events")(input, cfg, version="v3", **kwargs))  # noqa: B009

        return ready(AsyncEventStream(astreamed(self, config, open_v3)))

    # batch/abatch: Runnable's defaults run invoke/ainvoke per input (thread pool / gather),
    # so each element routes on its own and return_exceptions applies per element.
