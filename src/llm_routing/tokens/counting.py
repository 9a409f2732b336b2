"""``count_tokens`` and ``fits``: how many tokens an input costs a given model, offline.

Owns the totals: exact counts, "does it fit?", counts that stop at a limit and proven lower
bounds. Turning inputs into texts and fixed costs is ``messages``; resolving a model to its
tokenizer (and how that tokenizer counts one text) is ``tokenizer``. It does not know context
windows or policies: ``guard`` compares the count with a window.

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

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import tiktoken
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue

from llm_routing.tokens import _fast
from llm_routing.tokens._encodings import ENCODING_NAMES, get_encoding, max_token_bytes
from llm_routing.tokens._plain import _ROLE_OF, MAX_PLAIN_MESSAGES
from llm_routing.tokens.messages import _items, _lazy_items, _plain
from llm_routing.tokens.tokenizer import MEMO_TEXT_CHARS, _Counter, _counter, tokenizer_for

__all__ = [
    "count_tokens",
    "count_tokens_fitting",
    "count_tokens_lower_bound",
    "count_tokens_upto",
    "count_tokens_within",
    "fits",
    "tokenizer_for",
]


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
    if not tools and (fitting := count_fitting(input, counter, limit_tokens)) is not None:
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
    return count_fitting(messages, _counter(tokenizer_for(model)), limit_tokens)


def counter_for(model: Any) -> _Counter:
    """``model``'s counter, for a caller that keeps it per model and calls `count_fitting`."""
    return _counter(tokenizer_for(model))


def count_fitting(messages: Any, counter: _Counter, limit_tokens: int) -> int | None:
    """`count_tokens_fitting` with the model's counter (`counter_for`) already looked up."""
    return count_fitting_ascii(messages, counter, limit_tokens)[0]


def count_fitting_ascii(
    messages: Any, counter: _Counter, limit_tokens: int
) -> tuple[int | None, bool]:
    """`count_fitting`, and whether the input was ``(role, text)`` pairs of ASCII texts only.

    Such an input is UTF-8 by construction (no lone surrogate to refuse), so a caller that
    must check that (the guard) skips a second walk over it.
    """
    per_message, _, total = counter.overheads
    memo = counter.memo
    unknown: list[str] = []
    # The commonest input, ``[("system", …), ("user", …)]``, counted as it is walked: the
    # items `plain_items` would list for it (overhead, role, text per message) without the
    # list and its second walk. Any other element starts over on the general path below.
    # tests/property/test_tokens_props.py holds the two paths equal.
    pairs = ascii = type(messages) is list and len(messages) <= MAX_PLAIN_MESSAGES
    if pairs:
        for element in messages:
            if type(element) is not tuple or len(element) != 2:
                pairs = False
                break
            role, text = element
            role = _ROLE_OF.get(role) if type(role) is str else None
            if role is None or type(text) is not str:
                pairs = False
                break
            if ascii and not text.isascii():  # a known role is ASCII: only texts may not be
                ascii = False
            known = memo.get(role)
            if known is None:
                total += per_message
                unknown.append(role)
            else:
                total += per_message + known
            if len(text) <= MEMO_TEXT_CHARS and (known := memo.get(text)) is not None:
                total += known  # exact: remembered counts need no bound
            else:
                unknown.append(text)
    if not pairs:
        ascii = False
        plain = _plain(messages, counter)
        if plain is None:
            return None, False
        total = counter.overheads[2]
        unknown = []
        for item in plain:
            if isinstance(item, int):
                total += item
            elif len(item) <= MEMO_TEXT_CHARS and (known := memo.get(item)) is not None:
                total += known  # exact: remembered counts need no bound
            else:
                unknown.append(item)
    if unknown:
        upper = counter.upper
        utf8_len = _fast.utf8_len
        if total + sum([upper(text, utf8_len(text)) for text in unknown]) > limit_tokens:
            return None, ascii
        # Each text's exact count is <= its bound, so the whole fits.
        total += sum(map(counter.text, unknown))
    # The exact count, the number count_tokens_within returns for an input that fits.
    return (total if total <= limit_tokens else None), ascii


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
