"""What a decorated runnable wraps: the model under its bindings, the one a config selects.

The hooks must see the chat model a call really reaches (to count its tokens, find its limits
and price it) whatever LangChain put around it: ``bind``/``bind_tools`` bindings, a
``configurable_fields``/``alternatives`` choice, a ``with_structured_output`` chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables.base import (
    Runnable,
    RunnableBindingBase,
    RunnableParallel,
    RunnableSequence,
)
from langchain_core.runnables.config import RunnableConfig
from langchain_core.runnables.configurable import DynamicRunnable


def _innermost(runnable: Runnable[Any, Any]) -> tuple[Runnable[Any, Any], dict[str, Any]]:
    """The model under every binding and decoration, and the kwargs the bindings add to it."""
    from llm_routing._decorated import Decorated

    layers: list[Mapping[str, Any]] = []
    node = runnable
    while True:
        if isinstance(node, Decorated):
            node = node.bound
        elif isinstance(node, RunnableBindingBase):
            layers.append(node.kwargs)
            node = node.bound
        else:
            break
    merged: dict[str, Any] = {}
    for kwargs in reversed(layers):  # an outer binding's kwargs win, as in RunnableBinding
        merged.update(kwargs)
    return node, merged


def _chosen(
    node: Runnable[Any, Any], config: RunnableConfig, outer: Mapping[str, Any]
) -> tuple[Runnable[Any, Any], dict[str, Any]]:
    """The model a ``configurable_fields``/``alternatives`` runnable runs for this config.

    The hooks must count, limit and price the model the call really reaches, not the
    default one; ``outer`` (kwargs bound above the configurable runnable) win, as in
    ``RunnableBinding``.
    """
    merged: dict[str, Any] = {}
    while isinstance(node, DynamicRunnable):
        node, config = node._prepare(config)
        node, inner = _innermost(node)
        merged = {**inner, **merged}
    return node, {**merged, **outer}


def _is_model_part(node: Runnable[Any, Any]) -> bool:
    from llm_routing._decorated import Decorated

    while isinstance(node, Decorated | RunnableBindingBase):
        node = node.bound
    return isinstance(node, BaseLanguageModel)


def _replace_model_part(
    node: Runnable[Any, Any], wrap: Callable[[Runnable[Any, Any]], Runnable[Any, Any]]
) -> Runnable[Any, Any] | None:
    """Rebuild ``node`` with its (first) language-model part wrapped; ``None`` if there is none.

    ``with_structured_output`` returns ``model.bind… | parser`` (or a ``RunnableMap(raw=…)``
    for ``include_raw``): the decorators must sit on the model part to keep seeing messages
    with ``usage_metadata`` rather than parsed objects.
    """
    if _is_model_part(node):
        return wrap(node)
    if isinstance(node, RunnableSequence):
        steps = node.steps
        for index, step in enumerate(steps):
            replaced = _replace_model_part(step, wrap)
            if replaced is not None:
                new_steps = [*steps[:index], replaced, *steps[index + 1 :]]
                return RunnableSequence(*new_steps, name=node.name)
        return None
    if isinstance(node, RunnableParallel):
        for key, step in node.steps__.items():
            replaced = _replace_model_part(step, wrap)
            if replaced is not None:
                return RunnableParallel(steps__={**node.steps__, key: replaced})
        return None
    if isinstance(node, RunnableBindingBase):
        replaced = _replace_model_part(node.bound, wrap)
        if replaced is not None:
            return node.model_copy(update={"bound": replaced})
    return None
