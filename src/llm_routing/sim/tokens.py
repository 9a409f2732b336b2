"""Token arithmetic for the simulator: prompt counts via ``llm_routing.tokens``, output text.

Prompt tokens are counted exactly as the rest of the project counts them (``count_tokens`` with
the model's tokenizer, messages plus tool schemas), so a guard and the simulator agree. Output
text is built from words that are one token each in both shipped encodings.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

    from llm_routing.sim.model import SimModel

# Every word here is a single token, with and without a leading space, in o200k_base and
# cl100k_base, so "n words" is "n tokens" and a reply can be cut at an exact token count.
_VOCABULARY = (
    "the",
    "model",
    "that",
    "this",
    "is",
    "a",
    "simple",
    "reply",
    "from",
    "provider",
    "with",
    "some",
    "plain",
    "words",
    "about",
    "time",
    "and",
    "work",
    "people",
    "who",
    "make",
    "things",
    "for",
    "other",
    "in",
    "many",
    "ways",
    "each",
    "day",
    "so",
    "we",
    "can",
    "see",
    "how",
    "long",
    "it",
    "takes",
    "to",
    "answer",
    "when",
    "you",
    "ask",
    "one",
    "more",
    "question",
    "data",
    "code",
    "tests",
)
_OUTPUT_ENCODING = "o200k_base"


@lru_cache(maxsize=8)
def output_encoding(tokenizer: str) -> tiktoken.Encoding:
    """The encoding that measures and cuts this model's output.

    Estimated tokenizers (``estimate:anthropic``…) have no exact encoding; their output is
    measured with o200k_base, which is what the simulator then reports as usage.
    """
    from llm_routing.tokens import get_encoding

    name = tokenizer if not tokenizer.startswith("estimate:") else _OUTPUT_ENCODING
    try:
        return get_encoding(name)
    except ValueError:
        return get_encoding(_OUTPUT_ENCODING)


def count_prompt(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    model: SimModel,
) -> int:
    """Prompt tokens of an OpenAI-format request for ``model`` (messages and tool schemas)."""
    from llm_routing.catalog.spec import ModelSpec
    from llm_routing.tokens import count_tokens

    spec = ModelSpec(
        provider="openai",
        name=model.name,
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        tokenizer=model.tokenizer,
    )
    return count_tokens(list(messages), spec, tools=list(tools) if tools else None)


def reply_text(rng: random.Random, tokens: int) -> str:
    """A plain reply of exactly ``tokens`` vocabulary words (one token each)."""
    return " ".join(rng.choice(_VOCABULARY) for _ in range(tokens))


def split_tokens(text: str, encoding: tiktoken.Encoding) -> list[str]:
    """``text`` as a list of pieces, one per token where the bytes allow it.

    Tokens that end inside a multi-byte character are merged with the next ones, so every
    piece is valid UTF-8 (a stream never sends half a character).
    """
    pieces: list[str] = []
    pending = b""
    for token in encoding.encode(text, disallowed_special=()):
        pending += encoding.decode_single_token_bytes(token)
        try:
            pieces.append(pending.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        pending = b""
    if pending:
        pieces.append(pending.decode("utf-8", errors="replace"))
    return pieces


def truncate(text: str, max_tokens: int, encoding: tiktoken.Encoding) -> tuple[str, int, bool]:
    """``text`` cut to at most ``max_tokens`` tokens: ``(text, token count, was_cut)``."""
    tokens = encoding.encode(text, disallowed_special=())
    if len(tokens) <= max_tokens:
        return text, len(tokens), False
    cut = encoding.decode_bytes(tokens[:max_tokens]).decode("utf-8", errors="ignore")
    return cut, max_tokens, True
