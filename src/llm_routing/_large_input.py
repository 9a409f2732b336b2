"""Inputs large enough to stall an event loop: telling them cheaply, checking them in slices.

The guard counts small inputs on the event loop and large ones in a worker thread (paced, so
the loop's thread gets the GIL back often). Telling which is which must itself cost next to
nothing, and the checks that run before counting (lone surrogates) must be sliced like the
count. Counting itself is ``tokens``; the decision to move off the loop is the guard's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue

from llm_routing._facts import check_sendable

__all__ = ["check_sendable_in_slices", "is_large"]

# Above either size, an async call counts in a worker thread. Below both, counting costs well
# under a millisecond on the event loop, less than the ~0.1 ms a thread hand-off costs.
_OFF_LOOP_MESSAGES = 256
_OFF_LOOP_CHARS = 32_768
# Messages checked for lone surrogates per slice when paced (well under a millisecond).
_SENDABLE_SLICE = 64


def is_large(input: Any) -> bool:
    """Whether counting ``input`` may take long enough to stall an event loop (cheap to tell)."""
    if isinstance(input, str):
        return len(input) > _OFF_LOOP_CHARS
    if isinstance(input, PromptValue):
        input = input.to_messages()  # what a prompt template hands the model; cheap
    if not isinstance(input, list | tuple):
        return False
    if len(input) > _OFF_LOOP_MESSAGES:
        return True
    chars = 0
    for message in input:
        content: Any
        if isinstance(message, BaseMessage):
            content = message.content
        elif isinstance(message, tuple | list) and len(message) == 2:
            content = message[1]
        elif isinstance(message, Mapping):
            content = message.get("content")
        else:
            content = message
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(map(_block_chars, content))
        if chars > _OFF_LOOP_CHARS:
            return True
    return False


def _block_chars(block: Any) -> int:
    """Characters of a content block's strings, one level deep (a data URL is read for size)."""
    if isinstance(block, str):
        return len(block)
    if not isinstance(block, Mapping):
        return 0
    chars = 0
    for value in block.values():
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, Mapping):
            chars += sum(len(v) for v in value.values() if isinstance(v, str))
    return chars


def check_sendable_in_slices(
    messages: list[Any] | tuple[Any, ...], pace: Callable[[], None]
) -> None:
    """``check_sendable(messages)``, a slice at a time with ``pace()`` in between."""
    for start in range(0, len(messages), _SENDABLE_SLICE):
        try:
            check_sendable(messages[start : start + _SENDABLE_SLICE])
        except ValueError:
            # Found one: the whole input gives the error its true message index.
            check_sendable(messages)
            raise
        pace()
