"""What to say when an input cannot be read as messages: which message, and why, in one line.

Apart from counting because it is only ever on the error path: LangChain's and pydantic's
messages span many lines and name internals; these name the message's index and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages.utils import convert_to_messages

__all__ = ["ACCEPTED_INPUT", "unreadable"]

ACCEPTED_INPUT = (
    "a str, a list of messages (BaseMessage, (role, content) tuples or "
    '{"role": ..., "content": ...} dicts), a PromptValue, or a dict with a "messages" key'
)


def unreadable(messages: Sequence[Any], exc: Exception) -> TypeError:
    """Which message of ``messages`` LangChain could not read, and why, in one line."""
    for index, item in enumerate(messages):
        try:
            convert_to_messages([item])
        except (ValueError, TypeError, NotImplementedError, KeyError) as item_exc:
            return TypeError(
                f"input message {index}: could not read a message: "
                f"{_why_unreadable(item, item_exc)}"
            )
    return TypeError(f"input must be {ACCEPTED_INPUT}; could not read a message: {exc}")


def _why_unreadable(item: Any, exc: Exception) -> str:
    content: Any = None
    if isinstance(item, Mapping) and "content" in item:
        content = item["content"]
    elif isinstance(item, tuple | list) and len(item) == 2:
        content = item[1]
    if content is not None and not isinstance(content, str | list):
        return (
            f"its content is of type {type(content).__name__}; content is a str or a list "
            'of content blocks (str or dicts such as {"type": "text", "text": ...})'
        )
    # LangChain's and pydantic's messages span lines; the first two say what was wrong.
    detail = " ".join(str(exc).split("\n")[:2]).strip() or type(exc).__name__
    if len(detail) > 300:
        detail = detail[:297] + "..."
    return (
        f"{detail}; a message is a BaseMessage, a (role, content) tuple "
        'or a {"role": ..., "content": ...} dict'
    )
