"""The two OpenAI encodings we ship, built from package data with no network, ever.

Owns loading, hash-checking and caching ``tiktoken.Encoding`` objects; counting lives in
``counting``. ``tiktoken.get_encoding`` is never called because it downloads on a cold cache.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from dataclasses import dataclass
from importlib import resources

import tiktoken

__all__ = ["ENCODING_NAMES", "get_encoding", "max_token_bytes"]

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True, slots=True)
class _EncodingSource:
    filename: str
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14): the same files, hashes, split
# patterns and special tokens, so the encodings are byte-for-byte the ones OpenAI serves.
_SOURCES: dict[str, _EncodingSource] = {
    "o200k_base": _EncodingSource(
        filename="o200k_base.tiktoken",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
    "cl100k_base": _EncodingSource(
        filename="cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
            r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
}

ENCODING_NAMES: tuple[str, ...] = tuple(_SOURCES)

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}
_max_token_bytes: dict[str, int] = {}


def _read_ranks(name: str, source: _EncodingSource) -> dict[bytes, int]:
    data = (
        resources.files("llm_routing.tokens")
        .joinpath("data")
        .joinpath(source.filename)
        .read_bytes()
    )
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        raise RuntimeError(
            f"the packaged tokenizer file {source.filename} is corrupted or was replaced: "
            f"sha256 {digest}, expected {source.sha256}. Reinstall llm-routing to restore it "
            f"(token counts for {name} would otherwise be wrong)."
        )
    ranks: dict[bytes, int] = {}
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error) as exc:
            raise RuntimeError(
                f"{source.filename} line {line_no} is not '<base64 token> <rank>': {line[:60]!r}"
            ) from exc
    return ranks


def get_encoding(name: str) -> tiktoken.Encoding:
    """The ``tiktoken.Encoding`` for ``name``, built once from the shipped files.

    Thread-safe: concurrent first callers wait for one build (about 0.3 s for o200k) instead of
    each parsing the file.
    """
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    source = _SOURCES.get(name) if isinstance(name, str) else None
    if source is None:
        raise ValueError(
            f"unknown encoding {name!r}; shipped encodings: {', '.join(ENCODING_NAMES)}. "
            "Other providers' models use a calibrated estimate (tokenizer 'estimate:<family>')."
        )
    with _lock:
        encoding = _encodings.get(name)
        if encoding is None:
            ranks = _read_ranks(name, source)
            encoding = tiktoken.Encoding(
                name=name,
                pat_str=source.pat_str,
                mergeable_ranks=ranks,
                special_tokens=dict(source.special_tokens),
            )
            _max_token_bytes[name] = max(map(len, ranks))
            _encodings[name] = encoding
    return encoding


def max_token_bytes(name: str) -> int:
    """The byte length of the longest ordinary token of ``name`` (128 for both encodings).

    Every token covers at most this many bytes, so ``utf8_bytes / max_token_bytes`` is a sound
    lower bound on any text's token count.
    """
    get_encoding(name)
    return _max_token_bytes[name]
