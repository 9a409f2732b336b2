"""Langfuse's LangChain ``CallbackHandler``, enriched with llm_routing's cost, usage and errors.

Owns `RoutingCallbackHandler`; imports ``langfuse`` at import time, so only
``observe.export`` imports it, and only once a user asks for a handler. Choosing where a
handler goes (``attach``) and flushing live there too; refusals recorded without a run in
``observe.refusals``.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.outputs import ChatGeneration, LLMResult
from langfuse import Langfuse
from langfuse.langchain import CallbackHandler
from langfuse.types import TraceContext

from llm_routing.catalog import Catalog, ModelSpec, default_catalog
from llm_routing.cost.pricing import parse_usage, price, usage_details
from llm_routing.errors import classify

__all__ = ["OBSERVED_MARK", "RoutingCallbackHandler", "SpecResolver"]

_log = logging.getLogger("llm_routing.observe")

OBSERVED_MARK = "_llm_routing_observed"
"""Attribute set on an exception the handler recorded as a failed generation.

The refusal recorder reads it so an error a model run already reported is not recorded twice.
"""

_ACCEPTS_TRACE_CONTEXT = "trace_context" in inspect.signature(CallbackHandler.__init__).parameters
_MISS_CACHE_SIZE = 512
# Runs whose end never came (a callback manager that dropped them) must not pile up in a
# long-lived handler; a handler with this many open runs forgets them.
_MAX_OPEN_RUNS = 10_000


class SpecResolver:
    """Finds the ``ModelSpec`` a run is priced with, from the names the run reports.

    Unknown names are remembered (bounded), because the catalogue's miss path looks for close
    matches to suggest, which is too slow to repeat on every call of an unpriced model.
    """

    def __init__(self, catalog: Catalog | None = None) -> None:
        if catalog is not None and not isinstance(catalog, Catalog):
            raise TypeError(
                f"catalog must be a llm_routing Catalog or None, got {type(catalog).__name__}"
            )
        self._catalog = catalog
        self._misses: set[str] = set()
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        """The catalogue prices come from (the shared default unless one was given)."""
        return self._catalog if self._catalog is not None else default_catalog()

    def resolve(self, names: Sequence[str]) -> ModelSpec | None:
        """The spec of the first name the catalogue knows, else ``None``."""
        catalog = self.catalog
        for name in names:
            if name in self._misses:
                continue
            try:
                return catalog.get(name)
            except (TypeError, ValueError):
                with self._lock:
                    if len(self._misses) >= _MISS_CACHE_SIZE:
                        self._misses.clear()
                    self._misses.add(name)
        return None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _start_names(metadata: Mapping[str, Any] | None, invocation: Mapping[str, Any]) -> list[str]:
    """Names a run gives its model at start, most specific first."""
    metadata = metadata or {}
    names: list[str] = []
    explicit = _text(metadata.get("llm_routing.model"))
    if explicit:
        names.append(explicit)
    provider = _text(metadata.get("ls_provider"))
    ls_name = _text(metadata.get("ls_model_name"))
    if ls_name:
        if provider:
            names.append(f"{provider}:{ls_name}")
        names.append(ls_name)
    for key in ("model_name", "model"):
        value = _text(invocation.get(key))
        if value:
            names.append(f"{provider}:{value}" if provider else value)
    return names


def _served_name(response: LLMResult) -> str | None:
    """The model the provider says answered (a dated snapshot, an Azure deployment's model)."""
    output = response.llm_output or {}
    name = _text(output.get("model_name"))
    if name:
        return name
    message = _message(response)
    if message is not None:
        return _text(message.response_metadata.get("model_name"))
    return None


def _message(response: LLMResult) -> Any:
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                return generation.message
    return None


def _usage(response: LLMResult) -> Mapping[str, Any] | None:
    """The standard ``usage_metadata`` of the run's message (streams: of the summed chunks)."""
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                usage = getattr(generation.message, "usage_metadata", None)
                if isinstance(usage, Mapping) and usage:
                    return usage
    return None


class RoutingCallbackHandler(CallbackHandler):
    """Langfuse's LangChain handler whose generations carry llm_routing's cost and usage.

    Each chat model run is still recorded once, by Langfuse's own code; this subclass only
    amends the generation it is about to end: ``usage_details`` and ``cost_details`` from
    `llm_routing.cost.pricing` (the same numbers the cost tracker books), the spec it priced
    with, and for a failed run a status message naming the exception type and its
    `ErrorKind`. The ``llm_routing.*`` keys the decorators put in the run's metadata (token
    estimate, wait, attempt) reach the generation through Langfuse's normal metadata path.
    Unknown prices leave ``cost_details`` unset and say so in the metadata, never $0.

    Nothing here can fail a call: every amendment is guarded and logged at debug level on
    the ``llm_routing.observe`` logger.
    """

    def __init__(
        self,
        client: Langfuse | None = None,
        *,
        catalog: Catalog | None = None,
        public_key: str | None = None,
        trace_context: TraceContext | None = None,
        resolver: SpecResolver | None = None,
    ) -> None:
        if client is not None and not isinstance(client, Langfuse):
            raise TypeError(
                f"client must be a langfuse.Langfuse client or None (Langfuse's environment "
                f"configuration), got {type(client).__name__}"
            )
        if public_key is None and client is not None:
            public_key = getattr(getattr(client, "_resources", None), "public_key", None)
        options: dict[str, Any] = {"public_key": public_key}
        if trace_context is not None:
            if not _ACCEPTS_TRACE_CONTEXT:
                raise TypeError(
                    "trace_context needs a langfuse SDK whose CallbackHandler accepts it "
                    "(langfuse>=3.15); upgrade with pip install -U 'llm-routing[langfuse]'"
                )
            options["trace_context"] = trace_context
        super().__init__(**options)
        if client is not None:
            # Record through the very client given (its tracer provider, its exporter),
            # not a sibling rebuilt from the same public key.
            for attribute in ("_langfuse_client", "client"):
                if hasattr(self, attribute):
                    setattr(self, attribute, client)
        self._client = client
        self._pinned_trace = trace_context
        self._resolver = resolver if resolver is not None else SpecResolver(catalog)
        self._names: dict[UUID, list[str]] = {}

    def for_request(self, trace_id: str | None = None) -> RoutingCallbackHandler:
        """A fresh handler on the same client and catalogue, for one request.

        Its root runs go to trace ``trace_id`` (32 hex digits), so the attempts of one
        router request share a trace although the router opens no run of its own; ``None``
        keeps this handler's own ``trace_context``. Being new, it carries no per-run state
        from earlier requests (Langfuse's handler keeps some for runs whose parent it never
        saw end).
        """
        context: TraceContext | None = (
            {"trace_id": trace_id} if trace_id is not None else self._pinned_trace
        )
        if not _ACCEPTS_TRACE_CONTEXT:  # an older SDK: one trace per attempt, still recorded
            context = None
        return type(self)(
            self._client,
            public_key=None if self._client is not None else self._public_key(),
            trace_context=context,
            resolver=self._resolver,
        )

    @property
    def langfuse_client(self) -> Langfuse:
        """The Langfuse client this handler records through."""
        client = getattr(self, "_langfuse_client", None) or getattr(self, "client", None)
        if not isinstance(client, Langfuse):
            raise TypeError(f"this langfuse SDK keeps no client on its handler ({client!r})")
        return client

    def _public_key(self) -> str | None:
        key = getattr(getattr(self.langfuse_client, "_resources", None), "public_key", None)
        return key if isinstance(key, str) else None

    # --- run start: remember which model to price -----------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Remember the run's model names, then let Langfuse open the generation."""
        self._remember(run_id, metadata, kwargs)
        return super().on_chat_model_start(
            serialized,
            messages,
            run_id=run_id,
            parent_run_id=parent_run_id,
            tags=tags,
            metadata=metadata,
            **kwargs,
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Remember the run's model names, then let Langfuse open the generation."""
        self._remember(run_id, metadata, kwargs)
        return super().on_llm_start(
            serialized,
            prompts,
            run_id=run_id,
            parent_run_id=parent_run_id,
            tags=tags,
            metadata=metadata,
            **kwargs,
        )

    def _remember(
        self, run_id: UUID, metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> None:
        try:
            if len(self._names) >= _MAX_OPEN_RUNS:
                self._names.clear()
            invocation = kwargs.get("invocation_params")
            self._names[run_id] = _start_names(
                metadata, invocation if isinstance(invocation, Mapping) else {}
            )
        except Exception:
            _log.debug("llm_routing: could not read the model of run %s", run_id, exc_info=True)

    # --- run end: price it ----------------------------------------------------------------

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """Amend the generation with our usage and cost, then let Langfuse end it."""
        names = self._names.pop(run_id, [])
        try:
            self._amend(run_id, self._priced(response, names))
        except Exception:
            _log.debug("llm_routing: could not price run %s", run_id, exc_info=True)
        return super().on_llm_end(response, run_id=run_id, parent_run_id=parent_run_id, **kwargs)

    def _priced(self, response: LLMResult, names: list[str]) -> dict[str, Any]:
        usage = _usage(response)
        if usage is None:
            return {"metadata": {"llm_routing.cost": "unknown: the provider reported no usage"}}
        tokens = parse_usage(usage)
        served = _served_name(response)
        spec = self._resolver.resolve([*names, served] if served else names)
        fields: dict[str, Any] = {"usage_details": usage_details(tokens)}
        if spec is None:
            fields["metadata"] = {
                "llm_routing.cost": "unknown: model not in the catalogue "
                f"({names[0] if names else served or 'no model name'})"
            }
            return fields
        cost = price(tokens, spec).as_langfuse()
        if cost:
            fields["cost_details"] = cost
            fields["metadata"] = {"llm_routing.priced_as": spec.key}
        else:
            fields["metadata"] = {
                "llm_routing.priced_as": spec.key,
                "llm_routing.cost": f"unknown: {spec.key} has no published price for this usage",
            }
        return fields

    # --- run error: say which exception, and mark it -------------------------------------

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """Name the exception type in the ERROR generation Langfuse records, and mark it."""
        self._names.pop(run_id, None)
        try:
            setattr(error, OBSERVED_MARK, True)
            self._amend(
                run_id,
                {
                    "status_message": f"{type(error).__name__}: {error}",
                    "metadata": {
                        "llm_routing.error_type": type(error).__name__,
                        "llm_routing.error_kind": classify(error).value,
                    },
                },
            )
        except Exception:
            _log.debug("llm_routing: could not describe the error of %s", run_id, exc_info=True)
        return super().on_llm_error(error, run_id=run_id, parent_run_id=parent_run_id, **kwargs)

    # --- amending the observation Langfuse is about to end -------------------------------

    def _observation(self, run_id: UUID) -> Any:
        for attribute in ("_runs", "runs"):  # langfuse>=4 / 3.x
            runs = getattr(self, attribute, None)
            if isinstance(runs, dict):
                return runs.get(run_id)
        return None

    def _amend(self, run_id: UUID, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the next ``update`` Langfuse makes on this run's observation.

        Langfuse ends the generation right after one ``update(output=…, usage_details=…)``;
        setting our values in that same call (rather than before it) is what keeps its own
        parsed usage from overwriting ours, and adds no extra span event.
        """
        observation = self._observation(run_id)
        if observation is None or not fields:
            return
        original = observation.update

        def update(**kwargs: Any) -> Any:
            observation.__dict__.pop("update", None)
            for key, value in fields.items():
                if key == "metadata":
                    kwargs["metadata"] = {**(kwargs.get("metadata") or {}), **value}
                elif key == "usage_details":
                    kwargs["usage_details"] = value
                    if "usage" in kwargs:  # langfuse 3.x passes the deprecated twin too
                        kwargs["usage"] = value
                else:
                    kwargs[key] = value
            return original(**kwargs)

        observation.__dict__["update"] = update
