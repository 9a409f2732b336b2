"""What every decorator reads off a chat model and a call: the output cap, the input as messages.

One place, so the guard, the scheduler and the tracker agree on which ``max_tokens`` a call
sends, on how a plain string becomes the message a chat model sees, and on which inputs no
provider can receive (text that is not valid Unicode), refused before any request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue

__all__ = [
    "MAX_TOKENS_KEYS",
    "as_messages",
    "call_max_tokens",
    "check_sendable",
    "model_max_tokens",
    "positive_int",
]

MAX_TOKENS_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
"""The names providers' chat models give their output cap (OpenAI, Anthropic, Gemini)."""

# A code point in this range is a lone surrogate: Python strings hold astral characters as one
# code point, so a surrogate only appears when text was decoded wrongly. UTF-8 cannot encode it.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Message structures are shallow; deeper nesting is left to the token counter to reject.
_MAX_DEPTH = 32
# ``input[3]…`` or ``input['messages'][3]…``: the path names message 3.
_MESSAGE_INDEX = re.compile(r"(\w+)(?:\['messages'\])?\[(\d+)\]")


def positive_int(value: Any) -> int | None:
    """``value`` when it is an int > 0 (not a bool), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def model_max_tokens(model: Any) -> int | None:
    """The output cap a model sends on every request (``ChatOpenAI(max_tokens=…)`` and kin)."""
    for attr in MAX_TOKENS_KEYS:
        try:
            value = getattr(model, attr, None)
        except Exception:  # an odd model property must not break a decorator
            value = None
        found = positive_int(value)
        if found is not None:
            return found
    return None


def call_max_tokens(kwargs: Mapping[str, Any]) -> int | None:
    """The output cap a call's own (or bound) kwargs set, if any."""
    for key in MAX_TOKENS_KEYS:
        found = positive_int(kwargs.get(key))
        if found is not None:
            return found
    return None


def as_messages(input: Any) -> Any:
    """What the chat model will see: a string becomes one user message (with its overhead).

    Raises ``ValueError`` for input no provider can receive (see `check_sendable`), so it is
    refused before it is counted, scheduled or sent.
    """
    check_sendable(input)
    if isinstance(input, str):
        return [("user", input)]
    if isinstance(input, Mapping) and "messages" in input:
        # count_tokens reads a graph state's messages, but a chat model takes no dict at all.
        raise TypeError(
            'input is a dict with a "messages" key (a graph state?); a chat model takes a str, '
            'a list of messages or a PromptValue, so pass input["messages"] instead'
        )
    if isinstance(input, list | tuple) and not input:
        raise ValueError(
            "input is an empty list of messages; a chat model needs at least one message, "
            'e.g. [("user", "Hello")] or a plain string'
        )
    return input


def check_sendable(value: Any, name: str = "input") -> None:
    """Refuse text that cannot be encoded as UTF-8 (lone surrogates), naming where it is.

    Every provider SDK sends JSON in UTF-8, so such text fails inside the SDK with a
    ``UnicodeEncodeError`` after the call was admitted, scheduled and held against the budget.
    Checking here makes it a ``ValueError`` before any of that, one that says which message
    holds it and how to clean it. The message quotes the surrogate escaped, so logging the
    error cannot fail the same way.
    """
    if not _has_surrogate(value, 0):
        return
    found = _find_surrogate(value, name, 0)
    if found is None:  # pragma: no cover - the two walks visit the same values
        return
    where, text, position = found
    index = _MESSAGE_INDEX.match(where)
    if index is not None and index.group(1) == name:
        where = f"message {index.group(2)} of the {name} ({where})"
    bad = text[position]
    pair = (
        position + 1 < len(text)
        and "\ud800" <= bad <= "\udbff"
        and "\udc00" <= text[position + 1] <= "\udfff"
    )
    fix = (
        "it is half of a UTF-16 surrogate pair split into two code points; join the pairs "
        "with text.encode('utf-16', 'surrogatepass').decode('utf-16')"
        if pair
        else "it usually comes from bytes decoded with errors='surrogateescape' or from a "
        "UTF-16 string cut in the middle of a pair; clean the text, e.g. "
        "text.encode('utf-8', 'replace').decode('utf-8')"
    )
    raise ValueError(
        f"{where} contains a lone surrogate {bad!a} at character {position}: it is not "
        "valid Unicode, cannot be encoded as UTF-8 and no provider can receive it, so nothing "
        f"was sent; {fix}"
    )


def _has_surrogate(value: Any, depth: int) -> bool:
    """Whether `_find_surrogate` would find one: the same walk without building any path.

    Every call scans its whole input (and kwargs) and nearly every input is clean, so the
    clean case must not pay for the labels (an f-string per value) that only an error needs.
    """
    if isinstance(value, str):
        return not value.isascii() and _SURROGATE.search(value) is not None
    if depth >= _MAX_DEPTH:
        return False
    depth += 1
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str):
                if not item.isascii() and _SURROGATE.search(item) is not None:
                    return True
            elif _has_surrogate(item, depth):
                return True
        return False
    if isinstance(value, BaseMessage):
        return (
            _has_surrogate(value.content, depth)
            or _has_surrogate(value.name, depth)
            or _has_surrogate(value.additional_kwargs, depth)
            or _has_surrogate(getattr(value, "tool_calls", None), depth)
            or _has_surrogate(getattr(value, "tool_call_id", None), depth)
            or _has_surrogate(getattr(value, "role", None), depth)
        )
    if isinstance(value, PromptValue):
        return _has_surrogate(value.to_messages(), depth)
    if isinstance(value, Mapping):
        return any(
            _has_surrogate(key, depth) or _has_surrogate(item, depth) for key, item in value.items()
        )
    return False


def _find_surrogate(value: Any, where: str, depth: int) -> tuple[str, str, int] | None:
    """``(where, text, position)`` of the first lone surrogate in ``value``, else ``None``."""
    if isinstance(value, str):
        if value.isascii():
            return None
        match = _SURROGATE.search(value)
        return None if match is None else (where, value, match.start())
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, BaseMessage):
        parts: list[tuple[str, Any]] = [
            ("content", value.content),
            ("name", value.name),
            ("additional_kwargs", value.additional_kwargs),
            ("tool_calls", getattr(value, "tool_calls", None)),
            ("tool_call_id", getattr(value, "tool_call_id", None)),
            ("role", getattr(value, "role", None)),
        ]
        for attr, part in parts:
            found = _find_surrogate(part, f"{where}.{attr}", depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, PromptValue):
        return _find_surrogate(value.to_messages(), f"{where} (as messages)", depth + 1)
    if isinstance(value, Mapping):
        for key, item in value.items():
            # The key is checked first, so quoting it in the path below is always safe.
            label = f"{where}[{key!r}]" if isinstance(key, str | int) else where
            found = _find_surrogate(key, f"{where} (a key)", depth + 1) or _find_surrogate(
                item, label, depth + 1
            )
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_surrogate(item, f"{where}[{index}]", depth + 1)
            if found is not None:
                return found
    return None
