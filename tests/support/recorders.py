"""Recorders for tests of the decorator mechanism: a `Decorator` that logs its hooks, and a
callback handler that logs the runs a tracer would see.

Every entry of a `Recorder`'s log is ``(name, hook, detail)``: the detail is what the hook was
given (``call.streaming`` for ``before``, the output for ``after``, the error for ``on_error``,
the partial output for ``on_cancel``, ``None`` for a ``retry``), so one log shows the order of
the hooks across a stack and what each saw; `kinds` drops the detail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from llm_routing._decorator import Call, Decorator

__all__ = ["Events", "Recorder", "kinds"]


class Recorder(Decorator):
    """Logs every hook into a shared ``log``; optionally adds metadata, refuses, maps, retries.

    ``refuse(input)`` true: ``before`` raises ``RuntimeError("<name> refused")``. ``map_to``:
    ``on_error`` replaces the error with ``map_to(error)``. ``retries``: ``around`` and
    ``aaround`` run the rest of the stack again after a ``ValueError``, that many times.
    """

    def __init__(
        self,
        name: str,
        log: list[Any],
        *,
        metadata: dict[str, Any] | None = None,
        refuse: Callable[[Any], bool] | None = None,
        map_to: Callable[[Exception], Exception] | None = None,
        retries: int = 0,
    ) -> None:
        self.name = name
        self.log = log
        self.extra = metadata or {}
        self.refuse = refuse
        self.map_to = map_to
        self.retries = retries
        self.calls: list[Call] = []

    def before(self, call: Call) -> None:
        self.log.append((self.name, "before", call.streaming))
        self.calls.append(call)
        if self.refuse is not None and self.refuse(call.input):
            raise RuntimeError(f"{self.name} refused")
        call.metadata.update(self.extra)

    def around(self, call: Call, proceed: Callable[[], Any]) -> Any:
        for _ in range(self.retries):
            try:
                return proceed()
            except ValueError:
                self.log.append((self.name, "retry", None))
        return proceed()

    async def aaround(self, call: Call, proceed: Callable[[], Any]) -> Any:
        for _ in range(self.retries):
            try:
                return await proceed()
            except ValueError:
                self.log.append((self.name, "retry", None))
        return await proceed()

    def after(self, call: Call, output: Any) -> None:
        self.log.append((self.name, "after", output))

    def on_error(self, call: Call, error: Exception) -> Exception | None:
        self.log.append((self.name, "on_error", error))
        return self.map_to(error) if self.map_to else None

    def on_cancel(self, call: Call, partial: Any) -> None:
        self.log.append((self.name, "on_cancel", partial))


def kinds(log: list[Any]) -> list[tuple[str, str]]:
    """A `Recorder` log without the details: ``[(name, hook), ...]``."""
    return [entry[:2] for entry in log]


class Events(BaseCallbackHandler):
    """Records the runs a tracer would see: chat model starts (ids, tags, metadata), ends, chains."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends = 0
        self.chains: list[str] = []

    def on_chat_model_start(  # type: ignore[override]
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: Any,
        parent_run_id: Any = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        self.starts.append(
            {
                "run_id": run_id,
                "parent": parent_run_id,
                "tags": tags or [],
                "metadata": metadata or {},
            }
        )

    def on_llm_end(self, response: Any, **kw: Any) -> None:
        self.ends += 1

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, **kw: Any) -> None:
        self.chains.append(str(run_id))


class PlainRecorder(Recorder):
    """A `Recorder` whose ``around`` is the default (no retries): `Decorated` then runs it in
    its loop of plain decorators, as it runs the guard and the tracker, not as a level of its
    own."""

    around = Decorator.around
    aaround = Decorator.aaround
