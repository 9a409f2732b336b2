"""A Langfuse client whose spans land in memory (OpenTelemetry's in-memory exporter), and readers.

What the Langfuse tests assert is what the SDK would send: the generation spans and their
``langfuse.observation.*`` attributes. The client gets its own tracer provider and a unique
public key (the SDK keeps one client per key), and a base URL nobody answers on, so nothing
leaves the machine even if the exporter were bypassed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langfuse import Langfuse
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_routing.observe import flush, shutdown

__all__ = ["LangfuseMemory", "decoded", "langfuse_memory", "observation"]


class LangfuseMemory:
    """A Langfuse client exporting to memory; ``key`` prefixes its unique public key."""

    def __init__(self, key: str = "pk-test", secret_key: str = "sk-test") -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.public_key = f"{key}-{uuid.uuid4().hex}"
        self.client = Langfuse(
            public_key=self.public_key,
            secret_key=secret_key,
            base_url="http://127.0.0.1:9",
            tracer_provider=self.provider,
            span_exporter=self.exporter,
        )

    def spans(self) -> list[ReadableSpan]:
        """Every finished span, after flushing the client (so none is still queued)."""
        assert flush(self.client, timeout_s=10)
        return list(self.exporter.get_finished_spans())

    def generation_spans(self) -> list[ReadableSpan]:
        """The spans of generations (one per model run), in the order they finished."""
        return [
            s for s in self.spans() if s.attributes.get("langfuse.observation.type") == "generation"
        ]

    def generations(self) -> list[dict[str, Any]]:
        """Each generation's fields (`observation`)."""
        return [observation(span) for span in self.generation_spans()]

    def close(self) -> None:
        """Shut the client and its tracer provider down (their export threads stop)."""
        shutdown(self.client, timeout_s=10)
        self.provider.shutdown()


@contextmanager
def langfuse_memory(key: str = "pk-test", secret_key: str = "sk-test") -> Iterator[LangfuseMemory]:
    """A `LangfuseMemory`, closed afterwards (the body of a ``memory`` fixture)."""
    memory = LangfuseMemory(key, secret_key)
    try:
        yield memory
    finally:
        memory.close()


def decoded(value: Any) -> Any:
    """A metadata value: JSON in langfuse>=5, the raw value (strings unquoted) before."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return value


def observation(span: ReadableSpan) -> dict[str, Any]:
    """A span's Langfuse fields: JSON decoded, metadata keys without their prefix.

    Also ``trace_id`` (which trace the span belongs to) and ``span`` itself.
    """
    out: dict[str, Any] = {"metadata": {}, "trace_id": span.context.trace_id, "span": span}
    for key, value in (span.attributes or {}).items():
        if key.startswith("langfuse.observation.metadata."):
            out["metadata"][key.removeprefix("langfuse.observation.metadata.")] = decoded(value)
        elif key in ("langfuse.observation.cost_details", "langfuse.observation.usage_details"):
            out[key.rsplit(".", 1)[1]] = json.loads(str(value))
        elif key.startswith("langfuse.observation."):
            out[key.removeprefix("langfuse.observation.")] = value
    return out
