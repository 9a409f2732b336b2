"""Observability exports: Langfuse generations that carry llm_routing's cost (extra ``langfuse``).

Owns nothing but the public names; importing this package never imports the Langfuse SDK.
``RoutingCallbackHandler`` is loaded on first access and then needs the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_routing.observe.export import (
    DEFAULT_FLUSH_TIMEOUT_S,
    INSTALL_HINT,
    LangfuseExport,
    RefusalRecorder,
    attach,
    flush,
    handler_class,
    is_langfuse_handler,
    langfuse_handler,
    shutdown,
)

if TYPE_CHECKING:
    from llm_routing.observe._handler import RoutingCallbackHandler

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT_S",
    "INSTALL_HINT",
    "LangfuseExport",
    "RefusalRecorder",
    "RoutingCallbackHandler",
    "attach",
    "flush",
    "is_langfuse_handler",
    "langfuse_handler",
    "shutdown",
]


def __getattr__(name: str) -> Any:
    if name == "RoutingCallbackHandler":
        return handler_class()
    raise AttributeError(f"module 'llm_routing.observe' has no attribute {name!r}")
