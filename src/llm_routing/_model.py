"""What every decorator reads off a chat model and a call: the output cap, the input as messages.

One place, so the guard, the scheduler and the tracker agree on which ``max_tokens`` a call
sends and on how a plain string becomes the message a chat model sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_TOKENS_KEYS", "as_messages", "call_max_tokens", "model_max_tokens", "positive_int"]

MAX_TOKENS_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
"""The names providers' chat models give their output cap (OpenAI, Anthropic, Gemini)."""


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
    """What the chat model will see: a string becomes one user message (with its overhead)."""
    if isinstance(input, str):
        return [("user", input)]
    if isinstance(input, list | tuple) and not input:
        raise ValueError(
            "input is an empty list of messages; a chat model needs at least one message, "
            'e.g. [("user", "Hello")] or a plain string'
        )
    return input
