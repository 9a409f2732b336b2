"""Finding Langfuse's handlers in a call's callbacks, without importing the Langfuse SDK.

Shared by `attach` (``observe.export``: never add a second Langfuse handler) and
`RefusalRecorder` (``observe.refusals``: report to the handlers that are there).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackManager

__all__ = ["handlers_of", "is_langfuse_handler"]

_LANGFUSE_HANDLER_MODULE = "langfuse.langchain.CallbackHandler"


def is_langfuse_handler(handler: Any) -> bool:
    """Whether ``handler`` is a Langfuse LangChain handler (ours or the SDK's own).

    Never imports the SDK: if it is not imported yet, no handler can be one of its objects.
    """
    module = sys.modules.get(_LANGFUSE_HANDLER_MODULE)
    cls = getattr(module, "LangchainCallbackHandler", None) if module is not None else None
    return cls is not None and isinstance(handler, cls)


def handlers_of(callbacks: Any) -> list[Any]:
    """The handlers of a config's ``callbacks`` (a list, or a manager); none for others."""
    if callbacks is None:
        return []
    if isinstance(callbacks, BaseCallbackManager):
        return list(callbacks.handlers)
    if isinstance(callbacks, Sequence):
        return list(callbacks)
    return []
