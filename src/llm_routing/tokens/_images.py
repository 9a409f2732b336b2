"""Image sizes from data-URL headers, and the per-family rules that turn a size into tokens.

Owns reading width and height from the first bytes of PNG, GIF, JPEG and WebP data (or from
an image content block's own keys) and the providers' published image-token formulas. It
never fetches a URL: a remote image whose size is not given counts as the family's documented
default.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping
from typing import Any

__all__ = ["image_block", "image_size_from_data_url", "image_tokens"]

# Enough base64 to reach a JPEG's SOF marker behind typical EXIF/ICC headers.
_HEADER_B64_CHARS = 96 * 1024


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def _image_size(data: bytes) -> tuple[int, int] | None:
    size: tuple[int, int] | None = None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        size = struct.unpack(">II", data[16:24])
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        size = struct.unpack("<HH", data[6:10])
    elif data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            size = (
                1 + int.from_bytes(data[24:27], "little"),
                1 + int.from_bytes(data[27:30], "little"),
            )
        elif chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            size = (width & 0x3FFF, height & 0x3FFF)
        elif chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            size = (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return size


def image_size_from_data_url(url: str) -> tuple[int, int] | None:
    """``(width, height)`` of a base64 ``data:`` URL or raw base64 image, else ``None``.

    Only the header is decoded, so a 20 MB image costs microseconds; an unreadable header is
    ``None`` (the caller then uses its conservative default) rather than an error.
    """
    payload = url.split(",", 1)[1] if url.startswith("data:") else url
    head = payload[:_HEADER_B64_CHARS]
    head = head[: len(head) - len(head) % 4]
    try:
        data = base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return None
    return _image_size(data)


def _openai_tiles(width: int, height: int) -> int:
    # https://platform.openai.com/docs/guides/images-vision#calculating-costs: fit in
    # 2048x2048, then scale so the shortest side is at most 768, then count 512px tiles.
    if width > 2048 or height > 2048:
        scale = 2048 / max(width, height)
        width, height = math.floor(width * scale), math.floor(height * scale)
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = math.floor(width * scale), math.floor(height * scale)
    return max(1, math.ceil(width / 512)) * max(1, math.ceil(height / 512))


def _anthropic_tokens(width: int, height: int) -> int:
    # https://docs.anthropic.com/en/docs/build-with-claude/vision: tokens = w*h/750 after
    # scaling the long edge to at most 1568 px and the area to about 1.15 megapixels.
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
    return max(1, math.ceil(width * scale * height * scale / 750))


def _gemini_tokens(width: int, height: int) -> int:
    # https://ai.google.dev/gemini-api/docs/tokens: both sides <= 384 px is 258 tokens,
    # larger images are cut into 768x768 tiles of 258 tokens each.
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


def image_tokens(rule: str, detail: str, size: tuple[int, int] | None, unknown: int) -> int:
    """Tokens for one image under ``rule`` ("openai", "anthropic" or "gemini").

    ``unknown`` is what an image of unknown size costs; for the OpenAI rule it is the largest
    possible high-detail cost (1445 = 85 + 8 tiles of 170), so it is an upper bound.
    """
    if rule == "openai":
        if detail == "low":
            return 85
        if size is None:
            return unknown
        return 85 + 170 * _openai_tiles(*size)
    if size is None:
        return unknown
    if rule == "anthropic":
        return _anthropic_tokens(*size)
    return _gemini_tokens(*size)


def _block_size(block: Mapping[str, Any], url: str | None) -> tuple[int, int] | None:
    """The size a block states (its keys, ``image_url``'s, ``extras``'), else its data URL's."""
    nested = block.get("image_url")
    for holder in (block, nested, block.get("extras"), block.get("metadata")):
        if isinstance(holder, Mapping):
            width, height = holder.get("width"), holder.get("height")
            if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
                return width, height
    if url is not None and not url.startswith(("http://", "https://")):
        return image_size_from_data_url(url)
    return None


def image_block(block: Mapping[str, Any]) -> tuple[str, tuple[int, int] | None]:
    """``(detail, size)`` of an image content block, in any provider's or LangChain's shape."""
    url: str | None = None
    detail: Any = block.get("detail")
    nested = block.get("image_url")
    if isinstance(nested, Mapping):
        url = nested.get("url")
        detail = nested.get("detail", detail)
    elif isinstance(nested, str):
        url = nested
    else:
        source = block.get("source")
        if isinstance(source, Mapping):
            url = source.get("data") or source.get("url")
        else:
            url = block.get("base64") or block.get("data") or block.get("url")
    extras = block.get("extras")
    if detail is None and isinstance(extras, Mapping):
        detail = extras.get("detail")
    detail_str = detail if isinstance(detail, str) else "auto"
    return detail_str, _block_size(block, url if isinstance(url, str) else None)
