"""``count_tokens`` and ``fits``: how many tokens an input costs a given model, offline.

Owns turning inputs (strings, messages, prompt values, tool schemas, images) into text and
fixed token costs, and resolving a model to its tokenizer. It does not know context windows
or policies: ``guard`` compares the count with a window.

How inputs are counted (OpenAI's cookbook rule, cross-checked with langchain-openai's
``ChatOpenAI.get_num_tokens_from_messages``):

* a ``str`` is plain text: its tokens and nothing else (``""`` is 0). A chat model invoked
  with a string sees one user message; count ``[("user", text)]`` to include that overhead;
* a list of messages costs 3 tokens per message, plus the tokens of its role, content and
  name, plus 1 per name, plus 3 for priming the reply. An empty list therefore costs 3;
* an ``AIMessage``'s tool calls cost their name, JSON arguments and id, plus 3 each (OpenAI
  does not document this; langchain-openai uses the same approximation). A ``ToolMessage``'s
  ``tool_call_id`` is counted as text;
* ``tools=`` are converted with ``convert_to_openai_tool`` and their compact JSON is counted as
  text. OpenAI renders tools internally in a terser TypeScript-like form, so this over-counts
  slightly, which is the safe direction for a context check;
* images: see ``_images``. OpenAI detail ``low`` is 85; ``high`` and ``auto`` are 85 + 170 per
  512 px tile when the size is known (data-URL header, or ``width``/``height`` keys on the
  block, its ``image_url`` or its ``extras``), else 1445, the largest possible;
* content blocks of an unknown type are counted as their JSON text (an over-count for binary
  payloads, never an error).

Models with an ``estimate:<family>`` tokenizer get the o200k count of the same text scaled by
``estimate`` (per text part, rounded up), and that family's overheads and image rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from typing import Any

import tiktoken
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, ToolMessage
from langchain_core.messages.utils import convert_to_messages
from langchain_core.prompt_values import PromptValue

from llm_routing.catalog.spec import ModelSpec
from llm_routing.tokens import _fast
from llm_routing.tokens._encodings import ENCODING_NAMES, get_encoding, max_token_bytes
from llm_routing.tokens._images import image_block, image_tokens
from llm_routing.tokens._plain import plain_items
from llm_routing.tokens._unreadable import ACCEPTED_INPUT as _ACCEPTED_INPUT
from llm_routing.tokens._unreadable import unreadable as _unreadable
from llm_routing.tokens.estimate import Calibration, count_digits, get_calibration

__all__ = [
    "count_tokens",
    "count_tokens_fitting",
    "count_tokens_lower_bound",
    "count_tokens_upto",
    "count_tokens_within",
    "fits",
    "tokenizer_for",
]

_ACCEPTED_MODEL = (
    'a model name ("openai:gpt-4o-mini", "openai/gpt-4o-mini", "gpt-4o-mini"), a tokenizer '
    'name ("o200k_base", "cl100k_base", "estimate:<family>"), a ModelSpec, or a LangChain '
    "chat model"
)
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_TEXT_KEYS = {"text": "text", "reasoning": "reasoning", "thinking": "thinking"}
_OPENAI_OVERHEAD = (3, 1, 3)
_OPENAI_UNKNOWN_IMAGE = 1445
# Messages converted per step when counting stops at a limit: large enough that the per-step
# cost vanishes, small enough (well under a millisecond) that converting less than needed
# stays cheap and a paced count (``_fast.paced``) can hand over the GIL between steps.
_CONVERT_CHUNK = 64

# Texts up to this many characters have their count remembered, at most this many of them.
_SHORT_TEXT = 12
_SHORT_TEXTS = 4096

# A text part, or a fixed number of tokens (overheads, images).
_Item = str | int


@dataclass(frozen=True, slots=True)
class _Counter:
    """How one tokenizer counts: the encoding underneath, and the estimate if any."""

    encoding: tiktoken.Encoding
    longest_token: int
    calibration: Calibration | None
    # Counts of short texts (roles, names): every message repeats its role, and a dict lookup
    # is a small fraction of a tokeniser call. A count is a pure function of the text.
    short: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def overheads(self) -> tuple[int, int, int]:
        cal = self.calibration
        if cal is None:
            return _OPENAI_OVERHEAD
        return cal.per_message, cal.per_name, cal.reply_priming

    def image(self, detail: str, size: tuple[int, int] | None) -> int:
        cal = self.calibration
        if cal is None:
            return image_tokens("openai", detail, size, _OPENAI_UNKNOWN_IMAGE)
        return image_tokens(cal.image_rule, detail, size, cal.image_unknown_tokens)

    def text(self, text: str) -> int:
        if len(text) > _SHORT_TEXT:
            return self._text(text)
        n = self.short.get(text)
        if n is None:
            n = self._text(text)
            if len(self.short) < _SHORT_TEXTS:
                self.short[text] = n
        return n

    def _text(self, text: str) -> int:
        n = _fast.encode_count(self.encoding, text)
        if self.calibration is None:
            return n
        return self._estimate(n, text, _fast.utf8_len(text))

    def _estimate(self, n: int, text: str, size: int) -> int:
        cal = self.calibration
        assert cal is not None
        digits = count_digits(text) if cal.needs_digits else 0
        return cal.estimate(n, size, len(text), digits)

    def upper(self, text: str, size: int) -> int:
        """A bound >= ``self.text(text)`` from sizes alone (every token is >= 1 byte)."""
        cal = self.calibration
        if cal is None:
            return size
        return cal.estimate(size, size, len(text), len(text) if cal.needs_digits else 0)

    def text_upto(self, text: str, limit: int) -> int:
        """``self.text(text)`` when it is <= ``limit``, else some number in (limit, exact]."""
        size: int | None = None
        # upper() >= UTF-8 size >= characters, so a text with more characters than the limit
        # cannot be shown to fit from its size: skip measuring it.
        if len(text) <= limit:
            size = _fast.utf8_len(text)
            if self.upper(text, size) <= limit:
                return self.text(text)
        cal = self.calibration
        if cal is None:
            return _fast.count_upto(self.encoding, self.longest_token, text, limit, size)
        budget = cal.o200k_budget(limit)
        n = _fast.count_upto(self.encoding, self.longest_token, text, budget, size)
        if n > budget:
            # n is a lower bound on the o200k count here; estimate >= text_factor * n > limit.
            return -(-(n * cal.text_milli) // 1000)
        return self._estimate(n, text, _fast.utf8_len(text) if size is None else size)


@lru_cache(maxsize=64)
def _counter(tokenizer: str) -> _Counter:
    if tokenizer in ENCODING_NAMES:
        return _Counter(get_encoding(tokenizer), max_token_bytes(tokenizer), None)
    if tokenizer.startswith("estimate:"):
        calibration = get_calibration(tokenizer.removeprefix("estimate:"))
        return _Counter(get_encoding("o200k_base"), max_token_bytes("o200k_base"), calibration)
    raise ValueError(
        f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(ENCODING_NAMES)} "
        "or 'estimate:<family>'"
    )


@lru_cache(maxsize=1024)
def _tokenizer_for_name(name: str) -> str:
    if name in ENCODING_NAMES or name.startswith("estimate:"):
        return name
    from llm_routing.catalog.lookup import default_catalog

    return default_catalog().get(name).tokenizer


def tokenizer_for(model: Any) -> str:
    """The tokenizer name (``"o200k_base"``, ``"estimate:anthropic"``...) ``model`` counts with.

    The shipped catalogue is immutable, so name lookups are cached; register custom models by
    passing their ``ModelSpec``.
    """
    if isinstance(model, ModelSpec):
        return model.tokenizer
    if isinstance(model, str):
        return _tokenizer_for_name(model)
    if model is None or isinstance(model, int | float | bytes | Mapping | Sequence):
        raise TypeError(f"model must be {_ACCEPTED_MODEL}; got {type(model).__name__}")
    from llm_routing.catalog.lookup import default_catalog

    try:
        return default_catalog().for_model(model).tokenizer
    except TypeError as exc:
        raise TypeError(f"model must be {_ACCEPTED_MODEL}; {exc}") from exc


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


def count_tokens(input: Any, model: Any, *, tools: Sequence[Any] | None = None) -> int:
    """Tokens ``input`` (plus ``tools``) costs ``model``, computed offline.

    Exact for OpenAI tokenizers (text; message overheads follow OpenAI's published rule), a
    calibrated upper-biased estimate for other providers (see ``estimate``). See the module
    docstring for what counts how.

    Example:
        >>> from llm_routing import count_tokens
        >>> count_tokens("Hello, world!", "openai:gpt-4o-mini")
        4
        >>> count_tokens([("system", "Be brief."), ("user", "Hello, world!")], "gpt-4o-mini")
        18
        >>> count_tokens("Hello, world!", "anthropic:claude-haiku-4-5")  # an estimate
        6
    """
    counter = _counter(tokenizer_for(model))
    if isinstance(input, str) and not tools:
        return counter.text(input) if input else 0
    total = 0
    for item in _items(input, counter, tools):
        total += item if isinstance(item, int) else counter.text(item)
    return total


def fits(input: Any, model: Any, limit_tokens: int, *, tools: Sequence[Any] | None = None) -> bool:
    """Exactly ``count_tokens(input, model, tools=tools) <= limit_tokens``, but fast.

    Inputs far below the limit are decided from their UTF-8 size (a token is at least one
    byte), inputs far above it after counting just enough of them to pass the limit.

    Example:
        >>> from llm_routing import fits
        >>> fits("Hello, world!", "openai:gpt-4o-mini", 10)
        True
        >>> fits("word " * 1_000_000, "openai:gpt-4o-mini", 115_200)  # stops early
        False
    """
    if isinstance(limit_tokens, bool) or not isinstance(limit_tokens, int):
        raise TypeError(f"limit_tokens must be an int, got {type(limit_tokens).__name__}")
    counter = _counter(tokenizer_for(model))
    items = [input] if isinstance(input, str) and not tools else _items(input, counter, tools)
    remaining = limit_tokens - sum(item for item in items if isinstance(item, int))
    texts = [item for item in items if isinstance(item, str) and item]
    if remaining < 0:
        return False
    # upper() >= UTF-8 size >= characters: compare characters first, it costs nothing.
    if sum(map(len, texts)) <= remaining and (
        sum(counter.upper(t, _fast.utf8_len(t)) for t in texts) <= remaining
    ):
        return True
    for text in texts:
        remaining -= counter.text_upto(text, remaining)
        if remaining < 0:
            return False
    return True


def count_tokens_within(
    input: Any, model: Any, limit_tokens: int, *, tools: Sequence[Any] | None = None
) -> int:
    """``count_tokens(input, model, tools=tools)`` when ``<= limit_tokens``, else a larger number.

    One pass answers both "does it fit?" and "how many tokens?": an input that fits is
    counted exactly (once). An input over the limit is refused from its size when
    `count_tokens_lower_bound` already passes the limit, else read (messages converted, text
    tokenised) only until the running total passes it, so a 20 MB string or a million
    messages cost milliseconds rather than seconds. The number returned above the limit is a
    proven lower bound on the exact count.
    """
    if isinstance(limit_tokens, bool) or not isinstance(limit_tokens, int):
        raise TypeError(f"limit_tokens must be an int, got {type(limit_tokens).__name__}")
    counter = _counter(tokenizer_for(model))
    if isinstance(input, str) and not tools:
        return counter.text_upto(input, max(limit_tokens, 0)) if input else 0
    lower = _lower_bound(input, counter, limit_tokens)
    if lower > limit_tokens:
        return lower
    if not tools and (fitting := _fitting(input, counter, limit_tokens)) is not None:
        return fitting
    total = 0
    pace = _fast.PACING.get()
    for item in _lazy_items(input, counter, tools):
        if pace is not None:
            pace()
        if isinstance(item, int):
            total += item
        elif item:
            total += counter.text_upto(item, max(limit_tokens - total, 0))
        if total > limit_tokens:
            return max(total, lower)
    return total


def count_tokens_fitting(messages: Any, model: Any, limit_tokens: int) -> int | None:
    """``count_tokens(messages, model)`` when it provably fits ``limit_tokens``, else ``None``.

    Only for a short plain message list (see ``_plain``) whose sizes prove it fits; for any
    other input ask `count_tokens_within`. The guard's common case in one pass: no lower
    bound first (an input that fits has none above the limit), no conversion, no per-item
    limit checks.
    """
    return _fitting(messages, _counter(tokenizer_for(model)), limit_tokens)


def _fitting(messages: Any, counter: _Counter, limit_tokens: int) -> int | None:
    plain = _plain(messages, counter)
    if plain is None:
        return None
    fixed = counter.overheads[2]
    texts: list[str] = []
    for item in plain:
        if isinstance(item, int):
            fixed += item
        else:
            texts.append(item)
    upper = counter.upper
    utf8_len = _fast.utf8_len
    if fixed + sum([upper(text, utf8_len(text)) for text in texts]) > limit_tokens:
        return None
    # Each text's exact count is <= its bound, so the whole fits: this is the exact count,
    # the number count_tokens_within returns for an input that fits.
    return fixed + sum(map(counter.text, texts))


def count_tokens_lower_bound(
    input: Any, model: Any, *, stop_above: int | None = None, contents: bool = True
) -> int:
    """A proven lower bound on ``count_tokens(input, model, tools=...)``, from sizes alone.

    Exists so that an input that cannot fit a window is refused without converting or
    tokenising it: it costs one ``len`` for a message list (every message costs at least its
    overhead plus one token for its role) and, unless that already exceeds ``stop_above``,
    one pass reading only the length of each text content (a token is at most the encoding's
    longest token in bytes, so ``ceil(chars / longest)`` tokens at least; estimates are never
    below the o200k count); ``contents=False`` skips that pass, for a caller that must not
    spend more than constant time. Tools only add tokens, so the bound holds with or without
    them.
    Input that ``count_tokens`` would reject has no count; the bound is then only a number.

    Example:
        >>> from llm_routing.tokens import count_tokens_lower_bound
        >>> huge = [("user", "hi")] * 1_000_000
        >>> count_tokens_lower_bound(huge, "openai:gpt-4o-mini", stop_above=115_200)  # one len()
        4000003
        >>> count_tokens_lower_bound(huge, "openai:gpt-4o-mini")  # also reads every content
        5000003
        >>> count_tokens(huge[:2], "openai:gpt-4o-mini")  # exact: 3 + 1 + 1 per message, plus 3
        13
    """
    if stop_above is not None and (isinstance(stop_above, bool) or not isinstance(stop_above, int)):
        raise TypeError(f"stop_above must be an int or None, got {type(stop_above).__name__}")
    return _lower_bound(input, _counter(tokenizer_for(model)), stop_above, contents)


def _lower_bound(
    input: Any, counter: _Counter, stop_above: int | None, contents: bool = True
) -> int:
    longest = counter.longest_token
    if isinstance(input, str):
        return -(-len(input) // longest)
    if isinstance(input, PromptValue):
        input = input.to_messages()
    elif isinstance(input, Mapping):
        input = input.get("messages")
    if isinstance(input, BaseMessage):
        input = [input]
    if not isinstance(input, list | tuple):
        return 0
    per_message, _, priming = counter.overheads
    # Each element becomes exactly one message (LangChain's conversion), whose role (never
    # empty: the type stands in for it) is at least one token.
    bound = priming + len(input) * (per_message + 1)
    if not contents or (stop_above is not None and bound > stop_above):
        return bound
    tokens = 0
    pace = _fast.PACING.get()
    for message in input:
        if pace is not None:
            pace()
        if isinstance(message, BaseMessage):
            content: Any = message.content
        elif isinstance(message, str):
            content = message
        elif isinstance(message, tuple | list) and len(message) == 2:
            content = message[1]
        elif isinstance(message, Mapping):
            content = message.get("content")
        else:
            continue
        if isinstance(content, str) and content:
            # Per text, rounded up: ceil(a) + ceil(b) >= ceil(a + b), so this is tighter
            # than summing characters, and exact arithmetic.
            tokens += -(-len(content) // longest)
    return bound + tokens


@lru_cache(maxsize=16)
def _longest_token(encoding: tiktoken.Encoding) -> int:
    if encoding.name in ENCODING_NAMES and get_encoding(encoding.name) is encoding:
        return max_token_bytes(encoding.name)
    ranks: Mapping[bytes, int] = encoding._mergeable_ranks
    return max(map(len, ranks))


def count_tokens_upto(text: str, encoding: tiktoken.Encoding | str, limit: int) -> int:
    """The exact ordinary-token count of ``text`` if it is <= ``limit``, else a number > limit.

    The number returned above the limit is a proven lower bound on the exact count, found
    after tokenising only as much of ``text`` as needed (see ``_fast``).
    """
    if not isinstance(text, str):
        raise TypeError(f"count_tokens_upto(text=...) takes a str, got {type(text).__name__}")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    enc = get_encoding(encoding) if isinstance(encoding, str) else encoding
    return _fast.count_upto(enc, _longest_token(enc), text, limit)
