"""Generate a sample value that conforms to a JSON schema (tool arguments, structured output).

Covers what tool and response schemas use in practice: objects, arrays, enums, const, scalars
with bounds and common string formats, anyOf/oneOf/allOf, nullable types and local ``$ref``
into ``$defs``/``definitions`` (recursion is cut off at a fixed depth). It does not validate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

__all__ = ["sample_from_schema"]

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
_MAX_DEPTH = 6
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "ipv4": "127.0.0.1",
}


def sample_from_schema(schema: Mapping[str, Any], *, rng: random.Random | None = None) -> Any:
    """A value valid for ``schema`` (best effort), deterministic for a given ``rng`` state.

    ``schema`` is the root document: local references (``#/$defs/Name``) resolve against it.
    """
    if not isinstance(schema, Mapping):
        raise TypeError(f"schema must be a JSON-schema mapping, got {type(schema).__name__}")
    return _Generator(schema, rng or random.Random(0)).value(schema, 0)


class _Generator:
    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref (starting with '#') is supported, got {ref!r}")
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or key not in node:
                raise ValueError(f"$ref {ref!r} does not resolve inside the schema")
            node = node[key]
        if not isinstance(node, Mapping):
            raise ValueError(f"$ref {ref!r} resolves to a non-schema value")
        return node

    def value(self, schema: Mapping[str, Any] | bool, depth: int) -> Any:
        if isinstance(schema, bool) or not schema:
            return self.word()
        if "$ref" in schema:
            target = dict(self.resolve(str(schema["$ref"])))
            target.update({k: v for k, v in schema.items() if k != "$ref"})
            return self.value(target, depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if options:
                return self.value(self.pick_option(options), depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                resolved = self.resolve(part["$ref"]) if "$ref" in part else part
                _merge(merged, resolved)
            _merge(merged, {k: v for k, v in schema.items() if k != "allOf"})
            return self.value(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            non_null = [k for k in kind if k != "null"]
            kind = non_null[0] if non_null else "null"
        if kind is None:
            kind = "object" if "properties" in schema else "string"
            if "items" in schema:
                kind = "array"
        return self.typed(str(kind), schema, depth)

    def pick_option(self, options: list[Any]) -> Any:
        for option in options:
            if not (isinstance(option, Mapping) and option.get("type") == "null"):
                return option
        return options[0]

    def typed(self, kind: str, schema: Mapping[str, Any], depth: int) -> Any:
        if kind == "object":
            return self.obj(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "string":
            return self.string(schema)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        raise ValueError(f"unsupported JSON-schema type {kind!r}")

    def obj(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if depth >= _MAX_DEPTH and name not in required:
                continue
            out[name] = self.value(sub, depth + 1)
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, Mapping) and extra and depth < _MAX_DEPTH:
            out["key"] = self.value(extra, depth + 1)
        return out

    def array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        minimum = int(schema.get("minItems", 0))
        maximum = schema.get("maxItems")
        count = max(minimum, 0 if depth >= _MAX_DEPTH else 2)
        if maximum is not None:
            count = min(count, int(maximum))
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        out = [self.value(p, depth + 1) for p in prefix[:count]]
        while len(out) < count:
            out.append(self.value(items if isinstance(items, Mapping) else {}, depth + 1))
        return out

    def string(self, schema: Mapping[str, Any]) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        text = self.word()
        min_len = int(schema.get("minLength", 0))
        max_len = schema.get("maxLength")
        while len(text) < min_len:
            text += self.word()
        if max_len is not None:
            text = text[: int(max_len)]
        return text

    def integer(self, schema: Mapping[str, Any]) -> int:
        low, high = _bounds(schema, integer=True)
        lowest, highest = math.ceil(low), max(math.ceil(low), math.floor(high))
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            return -(-lowest // step) * step  # the smallest multiple in range
        return self.rng.randint(lowest, highest)

    def number(self, schema: Mapping[str, Any]) -> float:
        low, high = _bounds(schema, integer=False)
        return round(self.rng.uniform(low, high), 3) if high > low else float(low)

    def word(self) -> str:
        return self.rng.choice(_WORDS)


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> tuple[float, float]:
    """``(low, high)`` for a numeric schema: its bounds, else a range around 0..100."""
    step = 1 if integer else 1e-3
    low: float | None = schema.get("minimum")
    high: float | None = schema.get("maximum")
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        low = float(schema["exclusiveMinimum"]) + step
    if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
        high = float(schema["exclusiveMaximum"]) - step
    if low is None and high is None:
        return 0.0, 100.0
    if low is None:
        assert high is not None
        return min(0.0, high), high
    if high is None:
        return low, max(low, 100.0)
    return low, max(low, high)


def _merge(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if key == "properties" and isinstance(value, Mapping):
            into.setdefault("properties", {}).update(value)
        elif key == "required":
            into["required"] = [*into.get("required", []), *value]
        else:
            into.setdefault(key, value)
