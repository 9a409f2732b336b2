"""Refused attempts in Langfuse: a refusal our decorators make before any model run starts.

Owns `RefusalRecorder`. A provider error ends the model's run with ``on_llm_error``, which
Langfuse records as a generation at level ``ERROR``. A refusal by our decorators (the guard's
``ContextLengthExceededError``, the scheduler's ``RateLimitExhaustedError``, a spent budget)
happens before the model's run starts, so no callback fires; `RefusalRecorder`, the
outermost decorator, records it as an ``ERROR`` generation of its own through the Langfuse
handlers of the call.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue

from llm_routing._decorator import Call, Decorator
from llm_routing.errors import LLMRoutingError
from llm_routing.observe._callbacks import handlers_of, is_langfuse_handler

__all__ = ["RefusalRecorder"]

_log = logging.getLogger("llm_routing.observe")

_OBSERVED_MARK = "_llm_routing_observed"  # same value as _handler.OBSERVED_MARK (no import)
_CAUSE_DEPTH = 16
# Numbers our errors carry, shown on a refused attempt's generation.
_ERROR_FIELDS = (
    ("model", "llm_routing.refused_model"),
    ("required_tokens", "llm_routing.required_tokens"),
    ("max_tokens", "llm_routing.token_limit"),
    ("wait_s", "llm_routing.needed_wait_s"),
    ("reason", "llm_routing.reason"),
    ("scope", "llm_routing.budget_scope"),
    ("budget_usd", "llm_routing.budget_usd"),
    ("spent_usd", "llm_routing.spent_usd"),
    ("requested_usd", "llm_routing.requested_usd"),
)


def _refused_before_run(error: BaseException) -> bool:
    """Whether ``error`` is our refusal, raised before any model run could report it.

    A provider error (or ours mapped from one: a 429 after retries, a provider's context
    overflow) has a foreign exception in its cause chain, and its run already recorded it.
    """
    if not isinstance(error, LLMRoutingError):
        return False
    seen: BaseException | None = error
    for _ in range(_CAUSE_DEPTH):
        if seen is None:
            return True
        if getattr(seen, _OBSERVED_MARK, False) or not isinstance(seen, LLMRoutingError):
            return False
        cause = seen.__cause__
        if cause is None and not seen.__suppress_context__:
            cause = seen.__context__
        seen = cause
    return True


def _messages(input: Any) -> list[BaseMessage]:
    if isinstance(input, PromptValue):
        return input.to_messages()
    if isinstance(input, str):
        return [HumanMessage(content=input)]
    try:
        return convert_to_messages(input)
    except Exception:
        return [HumanMessage(content=str(input))]


def _model_params(call: Call) -> tuple[dict[str, Any], dict[str, Any], str]:
    """What the chat model would have told its callbacks: invocation params, ls_* metadata, name."""
    model = call.model
    kwargs = call.invocation_kwargs
    stop = kwargs.get("stop")
    rest = {k: v for k, v in kwargs.items() if k != "stop"}
    invocation: dict[str, Any] = {}
    ls_params: dict[str, Any] = {}
    get_invocation = getattr(model, "_get_invocation_params", None)
    if callable(get_invocation):
        try:
            invocation = dict(get_invocation(stop=stop, **rest))
        except Exception:
            invocation = {}
    get_ls = getattr(model, "_get_ls_params", None)
    if callable(get_ls):
        try:
            ls_params = {k: v for k, v in dict(get_ls(stop=stop, **rest)).items() if v is not None}
        except Exception:
            ls_params = {}
    try:
        name = model.get_name()
    except Exception:
        name = type(model).__name__
    return invocation, ls_params, name


def _serialized(model: Any, name: str) -> dict[str, Any]:
    serialized = getattr(model, "_serialized", None)  # what BaseChatModel sends its callbacks
    if isinstance(serialized, dict):
        return serialized
    return {"lc": 1, "type": "not_implemented", "id": [type(model).__module__, name], "name": name}


def _record_refusal(call: Call, error: LLMRoutingError) -> None:
    callbacks = call.config.get("callbacks")
    handlers = [h for h in handlers_of(callbacks) if is_langfuse_handler(h)]
    if not handlers:
        return
    config_tags = list(call.config.get("tags") or [])
    config_metadata = dict(call.config.get("metadata") or {})
    if isinstance(callbacks, BaseCallbackManager):
        parent_run_id = callbacks.parent_run_id
        tags = [*callbacks.tags, *(t for t in config_tags if t not in callbacks.tags)]
        metadata = {**callbacks.metadata, **config_metadata}
    else:
        parent_run_id, tags, metadata = None, config_tags, config_metadata
    invocation, ls_params, name = _model_params(call)
    metadata.update(ls_params)
    metadata.update(call.upstream)
    metadata["llm_routing.refused"] = True
    for attribute, key in _ERROR_FIELDS:
        value = getattr(error, attribute, None)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            metadata[key] = value
    messages = _messages(call.input)
    serialized = _serialized(call.model, name)
    for handler in handlers:
        run_id = uuid4()
        handler.on_chat_model_start(
            serialized,
            [messages],
            run_id=run_id,
            parent_run_id=parent_run_id,
            tags=tags,
            metadata=dict(metadata),
            invocation_params=invocation,
            options={"stop": call.invocation_kwargs.get("stop")},
            name=name,
        )
        handler.on_llm_error(error, run_id=run_id, parent_run_id=parent_run_id)


class RefusalRecorder(Decorator):
    """Records, as an ``ERROR`` generation, an attempt our decorators refused before the network.

    Put it outermost, ahead of the guard: ``RefusalRecorder() | guard | scheduler | model``
    (``build_router(langfuse=…)`` does). When an inner decorator refuses the call (an input
    too large for the window, a wait longer than ``max_wait``, a spent budget) no model run
    starts and no callback fires; this decorator then reports the attempt to the Langfuse
    handlers of the call's config, named after the model, with the exception type, its
    message and its numbers (``llm_routing.required_tokens``, ``llm_routing.token_limit``,
    ``llm_routing.needed_wait_s``…) in the metadata. Errors a model run already reported
    (provider errors, and ours mapped from them) are not recorded twice. Without a Langfuse
    handler in the config it does nothing, and it never changes or raises an error.
    """

    def on_error(self, call: Call, error: Exception) -> Exception | None:
        """Report a refusal made before the model's run; leave the error as it is."""
        if _refused_before_run(error):
            try:
                _record_refusal(call, error)  # type: ignore[arg-type]
            except Exception:
                _log.debug("llm_routing: could not record a refused attempt", exc_info=True)
        return None

    def __repr__(self) -> str:
        return "RefusalRecorder()"
