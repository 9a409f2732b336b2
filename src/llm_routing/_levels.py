"""What `Decorated`'s recursion hands down, and how it calls the model and unwinds a failure.

Its own module so ``_decorated`` reads as the wrapper (re-wrapping, reading through) plus the
recursion itself. Everything here runs once or a few times per call, so it builds as little
as it can: one `Invocation` per call (not one object per decorator), the model's config
patched only when a decorator learned something, and the unwinding of a failure (rare)
written as the nested frames it replaces, so every hook sees what it saw when each decorator
was a frame of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.runnables.base import Runnable
from langchain_core.runnables.config import RunnableConfig

from llm_routing._decorator import _T, Call, Decorator
from llm_routing.errors import scrub_credentials

__all__: list[str] = []


class Invocation:
    """One call of a decorated runnable: what every decorator's `Call` of it shares.

    The arguments, the effective config, the model the config selects (resolved once, not
    per decorator) and the caller's ``run_id`` in a box: only the first attempt that reaches
    the model may take it.
    """

    __slots__ = ("bound_kwargs", "config", "input", "kwargs", "model", "run_id", "streaming")

    def __init__(
        self,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        model: Runnable[Any, Any],
        bound_kwargs: Mapping[str, Any],
        streaming: bool,
    ) -> None:
        self.input = input
        self.config = config
        self.kwargs = kwargs
        self.model = model
        self.bound_kwargs = bound_kwargs
        self.streaming = streaming
        self.run_id: list[Any] | None = (
            [config["run_id"]] if config.get("run_id") is not None else None
        )

    def call(self, upstream: Mapping[str, Any]) -> Call:
        """A decorator's `Call` of this invocation, under what the outer ones learned."""
        return Call(
            self.input,
            self.config,
            self.kwargs,
            self.model,
            self.bound_kwargs,
            self.streaming,
            upstream,
        )

    def model_config(self, metadata: Mapping[str, Any]) -> RunnableConfig:
        """The config of the model's own run: the decorators' metadata, a fresh run_id.

        The caller's run_id names one run, so a retried attempt gets a fresh one.
        """
        run_id = self.run_id
        config = self.config
        if not metadata and run_id is None:
            return config
        patched = config.copy()
        if metadata:
            patched["metadata"] = {**config.get("metadata", {}), **metadata}
        if run_id is not None:
            patched.pop("run_id", None)
            if run_id:
                patched["run_id"] = run_id.pop()
        return patched


def below(upstream: Mapping[str, Any], call: Call) -> Mapping[str, Any]:
    """What the decorators inside ``call``'s see as ``upstream``: its metadata on top."""
    return {**upstream, **call.metadata} if call.metadata else upstream


def scrubbed(step: Callable[[RunnableConfig], _T], config: RunnableConfig) -> _T:
    """The model's own call: an API key in its error must not reach logs or traces."""
    try:
        return step(config)
    except Exception as exc:
        scrub_credentials(exc)
        raise


async def ascrubbed(step: Callable[[RunnableConfig], Awaitable[_T]], config: RunnableConfig) -> _T:
    """Async `scrubbed`."""
    try:
        return await step(config)
    except Exception as exc:
        scrub_credentials(exc)
        raise


def unwind(entered: list[tuple[Decorator, Call]]) -> None:
    """Raise what nested levels would: each open decorator, innermost first, sees the error.

    Called in the handler of the failure, so ``raise`` re-raises it with its context intact;
    ``on_error`` sees the exception as the inner decorators mapped it (a replacement is raised
    from the original), a ``BaseException`` goes to ``on_cancel``, and whatever a hook raises
    is what the next one out sees, exactly as when each decorator was a frame of its own.
    """
    decorator, call = entered.pop()
    try:
        error = sys.exc_info()[1]
        if not isinstance(error, Exception):
            decorator.on_cancel(call, None)
            raise
        replacement = decorator.on_error(call, error)
        if replacement is None or replacement is error:
            raise
        raise replacement from error
    except BaseException:
        if entered:
            unwind(entered)
        raise


async def aunwind(entered: list[tuple[Decorator, Call]]) -> None:
    """Async `unwind`, with the async ``aon_error`` / ``aon_cancel``."""
    decorator, call = entered.pop()
    try:
        error = sys.exc_info()[1]
        if not isinstance(error, Exception):
            await decorator.aon_cancel(call, None)
            raise
        replacement = await decorator.aon_error(call, error)
        if replacement is None or replacement is error:
            raise
        raise replacement from error
    except BaseException:
        if entered:
            await aunwind(entered)
        raise
