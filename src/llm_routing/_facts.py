"""What every decorator reads off a chat model and a call: output rules, input, per-model cache.

One place, so the guard, the scheduler and the tracker agree on which ``max_tokens`` a call
sends, on how much output a call is assumed to produce, on how a plain string becomes the
message a chat model sees, and on which inputs no provider can receive (text that is not valid
Unicode), refused before any request.

The output rule, decided once (it was three rules in three decorators):

* `output_ceiling` is what a call may at most produce: an explicit ``max_tokens`` (or
  ``max_completion_tokens`` / ``max_output_tokens``), bound on the model or passed in the call,
  wins; else ``min(DEFAULT_OUTPUT_RESERVE, spec.max_output_tokens, context_window // 4)``. A
  window check (the guard: room left for the answer) and a budget hold (the tracker) must be a
  worst case, so they use the ceiling. The quarter of the window keeps a small-window model from
  being refused by a reserve meant for large ones.
* `output_estimate` is what the scheduler charges a token window at admission and corrects to
  the real usage at settlement: an explicit ``max_tokens`` wins (OpenAI counts it toward TPM
  when it is sent); else ``min(DEFAULT_OUTPUT_ESTIMATE, output_ceiling(...))``. It is not the
  ceiling because a per-second token bucket charged 4,096 per paced request makes every request
  cost more than a second's share of a modest TPM, which cuts goodput under quantized
  enforcement; the overcharge is returned at settlement anyway, so a typical answer's size is
  the better admission price.

Both take a ``default`` that a decorator's own ``reserve_output=`` setting supplies: it replaces
the rule's default (not an explicit ``max_tokens``), as that setting always has.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue

if TYPE_CHECKING:
    from llm_routing.catalog.spec import ModelSpec

__all__ = [
    "DEFAULT_OUTPUT_ESTIMATE",
    "DEFAULT_OUTPUT_RESERVE",
    "MAX_TOKENS_KEYS",
    "PerModel",
    "as_messages",
    "call_max_tokens",
    "check_sendable",
    "default_output_ceiling",
    "explicit_max_tokens",
    "model_max_tokens",
    "output_ceiling",
    "output_estimate",
    "positive_int",
]

DEFAULT_OUTPUT_RESERVE = 4096
"""The output ceiling when neither the call nor the model sets ``max_tokens``.

Capped at the model's own output limit and at a quarter of its window. Providers reserve
nothing for output when no cap is sent, so this is headroom for the answer rather than a
provider rule; raise it (or set ``max_tokens`` on the model) when answers are long.
"""

DEFAULT_OUTPUT_ESTIMATE = 1024
"""The output a rate window is charged at admission when no ``max_tokens`` is set (see above)."""

_T = TypeVar("_T")

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


class PerModel(Generic[_T]):
    """What is resolved once per model object (a spec, limits, an output cap), bounded.

    Keyed by ``id(model)`` because chat models are pydantic objects that need not be hashable
    and whose equality would cost a field-by-field compare per call. Each entry holds the model
    itself, so its id cannot be reused by another object while the entry lives. Cleared whole
    when it reaches ``size``: models built per request (``init_chat_model`` in a loop) must not
    be kept alive forever, and clearing costs one more resolution per model, no bookkeeping on
    the hot path. A failed ``build`` caches nothing, so a model fixed later is looked up again.
    """

    __slots__ = ("_build", "_entries", "_lock", "_size")

    def __init__(self, build: Callable[[Any], _T], size: int = 256) -> None:
        self._build = build
        self._size = size
        self._entries: dict[int, tuple[Any, _T]] = {}
        self._lock = threading.Lock()

    def get(self, model: Any) -> _T:
        """The value for ``model``, built on its first call (or after a clear)."""
        entry = self._entries.get(id(model))
        if entry is not None and entry[0] is model:
            return entry[1]
        value = self._build(model)
        self.put(model, value)
        return value

    def put(self, model: Any, value: _T) -> None:
        """Remember ``value`` for ``model`` (the cache's own insert; also for tests)."""
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[id(model)] = (model, value)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# A model's own output cap, read once per model object: three getattrs per call add up.
_MODEL_CAPS: PerModel[int | None] = PerModel(model_max_tokens)


def explicit_max_tokens(kwargs: Mapping[str, Any], model: Any) -> int | None:
    """The output cap a call sends: its own (or bound) kwargs' first, else the model's."""
    if kwargs:
        found = call_max_tokens(kwargs)
        if found is not None:
            return found
    return None if model is None else _MODEL_CAPS.get(model)


def default_output_ceiling(spec: ModelSpec) -> int:
    """``min(DEFAULT_OUTPUT_RESERVE, spec.max_output_tokens, spec.context_window // 4)``."""
    ceiling = min(DEFAULT_OUTPUT_RESERVE, spec.context_window // 4)
    cap = spec.max_output_tokens
    return ceiling if cap is None else min(cap, ceiling)


def output_ceiling(
    spec: ModelSpec, kwargs: Mapping[str, Any], model: Any, default: int | None = None
) -> int:
    """The most output a call may produce (for window checks and budget holds; see above).

    ``default`` (a decorator's ``reserve_output=``) replaces `default_output_ceiling` when given.
    """
    explicit = explicit_max_tokens(kwargs, model)
    if explicit is not None:
        return explicit
    return default if default is not None else default_output_ceiling(spec)


def output_estimate(
    spec: ModelSpec, kwargs: Mapping[str, Any], model: Any, default: int | None = None
) -> int:
    """The output a rate window is charged at admission, corrected at settlement (see above).

    ``default`` (a decorator's ``reserve_output=``) replaces the estimate's default when given.
    """
    explicit = explicit_max_tokens(kwargs, model)
    if explicit is not None:
        return explicit
    if default is not None:
        return default
    return min(DEFAULT_OUTPUT_ESTIMATE, default_output_ceiling(spec))


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
    if isinstance(value, (list, tuple)):  # not `list | tuple`: a union per call
        for item in value:
            if isinstance(item, str):
                if not item.isascii() and _SURROGATE.search(item) is not None:
                    return True
            elif (
                type(item) is tuple
                and len(item) == 2
                and type(role := item[0]) is str
                and type(text := item[1]) is str
            ):
                # A (role, text) message, the commonest item: its two texts without a call.
                if (not role.isascii() and _SURROGATE.search(role) is not None) or (
                    not text.isascii() and _SURROGATE.search(text) is not None
                ):
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
