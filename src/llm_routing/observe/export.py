"""Langfuse export: cost-carrying generations, refused attempts, and a flush that cannot hang.

Owns the public entry points (`langfuse_handler`, `attach`, `LangfuseExport`, `flush`,
`shutdown`); `RefusalRecorder` is ``observe.refusals``. Pricing belongs to ``cost.pricing``;
sending spans belongs to the Langfuse SDK. Importable without ``langfuse`` installed.

Why a subclass of ``langfuse.langchain.CallbackHandler`` rather than a second handler or a
wrapper: Langfuse prices a generation once from the observation its handler records, so a
second handler (or a second observation for the same call) would be billed twice. A
wrapper delegating each callback would still have to reach into the handler's private run
table to amend the observation before it ends, and it would stop being the
``CallbackHandler`` that Langfuse's own helpers and users' ``isinstance`` checks expect. The
subclass keeps Langfuse's recording intact and amends only the one ``update`` Langfuse makes
before ending a generation (see ``_handler.RoutingCallbackHandler``).

Failed attempts our decorators refuse before any run starts are recorded by
`RefusalRecorder` (``observe.refusals``).

One trace per request: the router opens no run, so each attempt is a root run, and
Langfuse would start a trace per attempt. `attach` therefore gives each request its own
copy of our handler whose root runs share one new trace id (inside an active
OpenTelemetry span they nest under it instead).

Latency: the SDK only queues a finished span; a background thread batches and exports it
(every ``flush_interval`` seconds, default 5, or ``flush_at`` spans), so an unreachable host
costs nothing on the request path. `flush` and `shutdown` run the SDK's blocking versions in
a daemon thread and return after ``timeout_s`` at most, reporting whether they finished.
At interpreter exit the SDK flushes once more on its own; that export is bounded by the
client's ``timeout`` (``LANGFUSE_TIMEOUT``, default 5 s) per batch.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.runnables.config import RunnableConfig

from llm_routing.catalog import Catalog
from llm_routing.observe._callbacks import handlers_of, is_langfuse_handler
from llm_routing.observe.refusals import RefusalRecorder

if TYPE_CHECKING:
    from llm_routing.observe._handler import RoutingCallbackHandler

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT_S",
    "INSTALL_HINT",
    "LangfuseExport",
    "RefusalRecorder",
    "attach",
    "flush",
    "is_langfuse_handler",
    "langfuse_handler",
    "shutdown",
]

_log = logging.getLogger("llm_routing.observe")

INSTALL_HINT = "pip install 'llm-routing[langfuse]'"
DEFAULT_FLUSH_TIMEOUT_S = 5.0
"""How long `flush` and `shutdown` wait by default before giving up (the export goes on in
the background)."""


def _handler_module() -> ModuleType:
    """``observe._handler``, which needs the SDK; a clear ImportError names the extra."""
    try:
        return importlib.import_module("llm_routing.observe._handler")
    except ImportError as exc:
        if not _is_missing_langfuse(exc):
            raise
        raise ImportError(
            f"Langfuse export needs the Langfuse SDK, which is not installed: {INSTALL_HINT}"
        ) from exc


def _is_missing_langfuse(exc: ImportError) -> bool:
    name = getattr(exc, "name", None) or ""
    return name == "langfuse" or name.startswith(("langfuse.", "opentelemetry"))


def _check_client(client: Any) -> None:
    if client is None:
        return
    langfuse = sys.modules.get("langfuse")
    if langfuse is None or not isinstance(client, langfuse.Langfuse):
        raise TypeError(
            "client must be a langfuse.Langfuse client or None (Langfuse's environment "
            f"configuration: LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_BASE_URL), "
            f"got {type(client).__name__}"
        )


def langfuse_handler(
    client: Any = None, *, catalog: Catalog | None = None, **kwargs: Any
) -> RoutingCallbackHandler:
    """A Langfuse LangChain ``CallbackHandler`` whose generations carry llm_routing's cost.

    Use it where you would use ``langfuse.langchain.CallbackHandler()``:
    ``chain.invoke(x, config={"callbacks": [langfuse_handler()]})``. ``client`` is a
    ``langfuse.Langfuse`` (``None``: the SDK's environment configuration); ``catalog`` the
    catalogue prices come from (default: the shared one); other keyword arguments
    (``public_key``, ``trace_context``) go to Langfuse's handler.

    Raises ImportError naming ``pip install 'llm-routing[langfuse]'`` without the SDK.
    """
    module = _handler_module()
    _check_client(client)
    handler: RoutingCallbackHandler = module.RoutingCallbackHandler(
        client, catalog=catalog, **kwargs
    )
    return handler


def handler_class() -> type[RoutingCallbackHandler]:
    """`RoutingCallbackHandler`, imported on demand (ImportError names the extra)."""
    cls: type[RoutingCallbackHandler] = _handler_module().RoutingCallbackHandler
    return cls


# --------------------------------------------------------------------------- configs


def _is_routing_handler(handler: Any) -> bool:
    module = sys.modules.get("llm_routing.observe._handler")
    cls = getattr(module, "RoutingCallbackHandler", None) if module is not None else None
    return cls is not None and isinstance(handler, cls)


def _request_trace_id() -> str | None:
    """A new trace id for a request, unless an OpenTelemetry span is active to nest under."""
    from opentelemetry import trace

    if trace.get_current_span().get_span_context().is_valid:
        return None
    return uuid4().hex


def attach(config: RunnableConfig | None, handler: BaseCallbackHandler) -> RunnableConfig:
    """``config`` with ``handler`` added to its callbacks, unless a Langfuse handler is there.

    What the router calls once per request. Any Langfuse handler already in the callbacks
    (this one, another of ours, or the SDK's own ``CallbackHandler``) wins: two would record
    every call twice and Langfuse would count its cost twice. Works with a list of handlers
    and with the callback manager LangChain hands a nested runnable; the caller's config is
    never modified.

    A `RoutingCallbackHandler` is attached as ``handler.for_request(trace_id)``: a copy on
    the same client whose root runs share a new trace, so the attempts of one request
    (each a root run, since the router opens no run of its own) land in one Langfuse
    trace; inside an active OpenTelemetry span (a Langfuse ``@observe`` function) they nest
    under it instead. Other handlers are attached as they are.
    """
    if not isinstance(handler, BaseCallbackHandler):
        raise TypeError(
            "attach(config, handler): handler must be a LangChain callback handler such as "
            f"langfuse_handler(), got {type(handler).__name__}"
        )
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(
            f"attach(config, handler): config must be a RunnableConfig dict or None, "
            f"got {type(config).__name__}"
        )
    patched = dict(config or {})
    callbacks = patched.get("callbacks")
    if callbacks is not None and (
        isinstance(callbacks, str) or not isinstance(callbacks, BaseCallbackManager | Sequence)
    ):
        raise TypeError(
            "attach(config, handler): config['callbacks'] must be a list of handlers or a "
            f"callback manager, got {type(callbacks).__name__}"
        )
    if any(h is handler or is_langfuse_handler(h) for h in handlers_of(callbacks)):
        return patched  # type: ignore[return-value]
    if _is_routing_handler(handler):
        handler = handler.for_request(_request_trace_id())  # type: ignore[attr-defined]
    if callbacks is None:
        patched["callbacks"] = [handler]
    elif isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        manager.add_handler(handler, inherit=True)
        patched["callbacks"] = manager
    else:
        patched["callbacks"] = [*callbacks, handler]
    return patched  # type: ignore[return-value]


# --------------------------------------------------------------------------- flushing


def _check_timeout(timeout_s: Any, where: str) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise TypeError(f"{where}(timeout_s=…) must be a number of seconds, got {timeout_s!r}")
    if not timeout_s > 0:
        raise ValueError(
            f"{where}(timeout_s=…) must be > 0 seconds (a bound on the wait), got {timeout_s!r}"
        )
    return float(timeout_s)


def _bounded(action: Callable[[], Any], timeout_s: float, what: str) -> bool:
    """Run ``action`` in a daemon thread; ``True`` if it finished within ``timeout_s``."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"llm_routing-langfuse-{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        _log.warning(
            "llm_routing: Langfuse %s did not finish within %.1fs; it goes on in the background "
            "(is the Langfuse host reachable?)",
            what,
            timeout_s,
        )
        return False
    if failure:
        _log.warning("llm_routing: Langfuse %s failed: %s", what, failure[0])
        return False
    return True


def _client_or_default(client: Any) -> Any:
    if client is not None:
        _check_client(client)
        return client
    _handler_module()  # the clear ImportError when the SDK is missing
    from langfuse import get_client

    return get_client()


def flush(client: Any = None, *, timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
    """Send the spans queued so far; wait ``timeout_s`` at most.

    Returns ``True`` when the SDK's flush finished in time (delivered, or given up after
    its own export timeout), ``False`` when it is still running in the background.
    ``client=None`` flushes the SDK's default client.
    """
    timeout = _check_timeout(timeout_s, "flush")
    target = _client_or_default(client)
    return _bounded(target.flush, timeout, "flush")


def shutdown(client: Any = None, *, timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
    """Flush and stop the client's background threads; wait ``timeout_s`` at most.

    Returns like `flush`. Call it when the process is done with Langfuse (e.g. in a web
    app's shutdown hook); it never hangs the caller, even with the host unreachable.
    """
    timeout = _check_timeout(timeout_s, "shutdown")
    target = _client_or_default(client)
    return _bounded(target.shutdown, timeout, "shutdown")


# --------------------------------------------------------------------------- the router's


class LangfuseExport:
    """Everything a router needs to export its calls to Langfuse, built from one client.

    ``handler`` is the `RoutingCallbackHandler` to `attach` to each request's config,
    ``recorder`` the `RefusalRecorder` to put outermost in each model's decorator stack, and
    `flush`/`shutdown` bound the SDK's blocking calls. ``client=None`` uses the SDK's
    environment configuration (``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY``,
    ``LANGFUSE_BASE_URL``).
    """

    def __init__(self, client: Any = None, *, catalog: Catalog | None = None) -> None:
        self.handler: RoutingCallbackHandler = langfuse_handler(client, catalog=catalog)
        self.client: Any = client if client is not None else self.handler.langfuse_client
        self.recorder = RefusalRecorder()

    def __repr__(self) -> str:
        return f"LangfuseExport(client={type(self.client).__name__})"

    def attach(self, config: RunnableConfig | None) -> RunnableConfig:
        """`attach` this export's handler to ``config`` (one trace per request)."""
        return attach(config, self.handler)

    def flush(self, timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
        """`flush` this export's client."""
        return flush(self.client, timeout_s=timeout_s)

    def shutdown(self, timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
        """`shutdown` this export's client."""
        return shutdown(self.client, timeout_s=timeout_s)
