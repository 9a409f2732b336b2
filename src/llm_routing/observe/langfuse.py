"""The former home of the Langfuse export, kept so ``llm_routing.observe.langfuse`` imports.

The entry points live in ``observe.export``, `RefusalRecorder` in ``observe.refusals``; every
public name of this module is re-exported from there.
"""

from llm_routing.observe._callbacks import is_langfuse_handler
from llm_routing.observe.export import (
    DEFAULT_FLUSH_TIMEOUT_S,
    INSTALL_HINT,
    LangfuseExport,
    attach,
    flush,
    handler_class,
    langfuse_handler,
    shutdown,
)
from llm_routing.observe.refusals import RefusalRecorder, _refused_before_run

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT_S",
    "INSTALL_HINT",
    "LangfuseExport",
    "RefusalRecorder",
    "_refused_before_run",
    "attach",
    "flush",
    "handler_class",
    "is_langfuse_handler",
    "langfuse_handler",
    "shutdown",
]
