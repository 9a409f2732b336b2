"""The common chat input read without building LangChain messages: same items, no pydantic.

Why: on a short prompt, ``convert_to_messages`` (a pydantic model per message) costs more than
tokenising the text, and every guarded call counts its input. Most inputs are a few
``(role, text)`` tuples, ``{"role": ..., "content": ...}`` dicts, strings or ready
``BaseMessage`` objects; for exactly those shapes this module yields the items ``counting``
would produce from the converted messages, so the count is the same number by construction.
Anything else (tool calls, content blocks, other keys, unknown roles, long lists) returns
``None`` and takes the converting path, which also owns every error message.
tests/property/test_tokens_props.py checks "same items as converting" on generated inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import BaseMessage

__all__ = ["MAX_PLAIN_MESSAGES", "plain_items"]

MAX_PLAIN_MESSAGES = 64
"""Longer lists keep the chunked, lazily converting path (it stops early past a limit)."""

# The role LangChain's conversion gives each role string of a tuple or dict (its message
# type), spelled as counting names it. "developer" becomes a SystemMessage.
_ROLE_OF = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}
_DICT_KEYS = frozenset({"role", "content"})
_NAMED_DICT_KEYS = frozenset({"role", "content", "name"})


def plain_items(
    value: Any,
    per_message: int,
    per_name: int,
    message_items: Callable[[BaseMessage, list[str | int]], None],
) -> list[str | int] | None:
    """The items of a message list of plain shapes, or ``None`` when any element is not plain.

    ``message_items(message, items)`` appends a ready ``BaseMessage``'s items (it is counted
    as it is, exactly as after conversion, which hands such messages through unchanged).
    """
    if not isinstance(value, list | tuple) or len(value) > MAX_PLAIN_MESSAGES:
        return None
    items: list[str | int] = []
    for element in value:
        name: Any = None
        # Cheapest tests first: a BaseMessage check goes through pydantic's ABC metaclass.
        if isinstance(element, tuple | list):
            if len(element) != 2:
                return None
            role: Any = _ROLE_OF.get(element[0]) if isinstance(element[0], str) else None
            content: Any = element[1]
        elif isinstance(element, str):
            # A bare string in a message list is a human message.
            role = "user"
            content = element
        elif type(element) is dict:
            keys = element.keys()
            if keys == _NAMED_DICT_KEYS:
                name = element["name"]
                if not isinstance(name, str):
                    return None
            elif keys != _DICT_KEYS:
                return None
            role = element["role"]
            role = _ROLE_OF.get(role) if isinstance(role, str) else None
            content = element["content"]
        elif isinstance(element, BaseMessage):
            message_items(element, items)
            continue
        else:
            return None
        if role is None or type(content) is not str:
            return None
        items.append(per_message)
        items.append(role)
        items.append(content)
        if name:
            items.append(name)
            items.append(per_name)
    return items
