"""Inputs (strings, messages, prompt values, tool schemas, images) as text parts and fixed costs.

Owns the walk that turns what a chat model is given into "items": texts to tokenise and
fixed token costs (message overheads, images), following the rules of ``counting``'s module
docstring. Converting to LangChain messages is lazy and chunked so a count that stops early
never converts the rest; the common plain shapes skip conversion altogether (``_plain``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, ToolMessage
from langchain_core.messages.utils import convert_to_messages
from langchain_core.prompt_values import PromptValue

from llm_routing.tokens._images import image_block
from llm_routing.tokens._plain import plain_items
from llm_routing.tokens._unreadable import ACCEPTED_INPUT as _ACCEPTED_INPUT
from llm_routing.tokens._unreadable import unreadable as _unreadable
from llm_routing.tokens.tokenizer import _Counter

__all__: list[str] = []

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_TEXT_KEYS = {"text": "text", "reasoning": "reasoning", "thinking": "thinking"}
# Messages converted per step when counting stops at a limit: large enough that the per-step
# cost vanishes, small enough (well under a millisecond) that converting less than needed
# stays cheap and a paced count (``_fast.paced``) can hand over the GIL between steps.
_CONVERT_CHUNK = 64

# A text part, or a fixed number of tokens (overheads, images).
_Item = str | int


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _content_items(content: Any, counter: _Counter, items: list[_Item], skip_ids: set[str]) -> None:
    if isinstance(content, str):
        items.append(content)
        return
    if not isinstance(content, Sequence):
        items.append(_json(content))
        return
    for block in content:
        if isinstance(block, str):
            items.append(block)
            continue
        if not isinstance(block, Mapping):
            items.append(_json(block))
            continue
        kind = block.get("type")
        if kind in _TEXT_KEYS and isinstance(block.get(_TEXT_KEYS[kind]), str):
            items.append(block[_TEXT_KEYS[kind]])
        elif kind in ("image_url", "image"):
            items.append(counter.image(*image_block(block)))
        elif kind in ("tool_use", "tool_call") and block.get("id") in skip_ids:
            continue
        else:
            items.append(_json(block))


def _message_items(message: BaseMessage, counter: _Counter, items: list[_Item]) -> None:
    per_message, per_name, _ = counter.overheads
    items.append(per_message)
    role = message.role if isinstance(message, ChatMessage) else _ROLES.get(message.type)
    items.append(role or message.type)
    skip_ids: set[str] = set()
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            items.extend((3, call["name"], _json(call["args"]), call.get("id") or ""))
            if call.get("id"):
                skip_ids.add(str(call["id"]))
        for bad in message.invalid_tool_calls:
            items.extend((3, bad.get("name") or "", bad.get("args") or "", bad.get("id") or ""))
    if isinstance(message, ToolMessage):
        items.append(message.tool_call_id)
    _content_items(message.content, counter, items, skip_ids)
    if message.name:
        items.extend((message.name, per_name))


def _to_messages(value: Any) -> list[BaseMessage]:
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        raise TypeError(f"input must be {_ACCEPTED_INPUT}; got {type(value).__name__}")
    try:
        return convert_to_messages(value)
    except (ValueError, TypeError, NotImplementedError, KeyError) as exc:
        raise _unreadable(value, exc) from exc


def _input_messages(input: Any) -> Iterator[BaseMessage]:
    """The messages of a non-``str`` input, converted a chunk at a time as they are consumed.

    Lazy so that a caller that stops early (``count_tokens_within``) never pays for converting
    the messages after the point where it stopped; every message is converted exactly as
    ``convert_to_messages`` would convert the whole list.
    """
    if isinstance(input, PromptValue):
        yield from input.to_messages()
        return
    if isinstance(input, Mapping):
        if "messages" not in input:
            raise TypeError(
                f'input is a dict without a "messages" key; input must be {_ACCEPTED_INPUT}'
            )
        value = input["messages"]
    elif input is None or isinstance(input, bytes | bytearray):
        raise TypeError(f"input must be {_ACCEPTED_INPUT}; got {type(input).__name__}")
    else:
        value = input
    if isinstance(value, BaseMessage):
        yield value
        return
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        raise TypeError(f"input must be {_ACCEPTED_INPUT}; got {type(value).__name__}")
    if len(value) <= _CONVERT_CHUNK:
        yield from _to_messages(value)
        return
    remaining = iter(value)
    while chunk := list(islice(remaining, _CONVERT_CHUNK)):
        try:
            converted = convert_to_messages(chunk)
        except (ValueError, TypeError, NotImplementedError, KeyError) as exc:
            raise _unreadable(value, exc) from exc
        yield from converted


def _tool_items(tools: Sequence[Any] | None) -> list[_Item]:
    if not tools:
        return []
    from langchain_core.utils.function_calling import convert_to_openai_tool

    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
        raise TypeError(
            "tools must be a list of LangChain tools, pydantic models, functions or OpenAI "
            f"tool dicts; got {type(tools).__name__}"
        )
    items: list[_Item] = []
    for tool in tools:
        try:
            schema = convert_to_openai_tool(tool)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tools: cannot convert {tool!r} to a tool schema: {exc}") from exc
        items.append(_json(schema))
    return items


def _plain(input: Any, counter: _Counter) -> list[_Item] | None:
    """The messages' items without converting them, for the common shapes (see ``_plain``)."""
    per_message, per_name, _ = counter.overheads
    return plain_items(
        input, per_message, per_name, lambda message, out: _message_items(message, counter, out)
    )


def _items(input: Any, counter: _Counter, tools: Sequence[Any] | None) -> list[_Item]:
    """Flatten ``input`` (and ``tools``) into text parts and fixed token costs."""
    items: list[_Item] = []
    if isinstance(input, str):
        items.append(input)
    elif (plain := _plain(input, counter)) is not None:
        items.extend(plain)
        items.append(counter.overheads[2])
    else:
        for message in _input_messages(input):
            _message_items(message, counter, items)
        items.append(counter.overheads[2])
    items.extend(_tool_items(tools))
    return items


def _lazy_items(input: Any, counter: _Counter, tools: Sequence[Any] | None) -> Iterator[_Item]:
    """``_items`` one message at a time, tools first (so a bad tool is still a TypeError)."""
    yield from _tool_items(tools)
    if isinstance(input, str):
        yield input
        return
    yield counter.overheads[2]
    plain = _plain(input, counter)
    if plain is not None:
        yield from plain
        return
    items: list[_Item] = []
    for message in _input_messages(input):
        _message_items(message, counter, items)
        yield from items
        items.clear()
