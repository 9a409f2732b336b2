"""The router's one fallback loop: a request's walk down the models, and what each failure means.

`Router`'s four entry points (``invoke``, ``ainvoke``, ``stream``, ``astream``) differ only in
how they call a model; what to try next, whether a failure falls back or propagates, what a
served answer carries and what the stats count is decided here, once (the shape of tenacity's
``for attempt in Retrying(): with attempt: ...``)::

    chain = Chain(router, config)
    for attempt in chain:
        with attempt:  # swallows a fallback error: the loop moves on to the next model
            return chain.served(attempt.model.invoke(input, attempt.config))
    raise chain.all_failed()

Streams fall back only before their first chunk; after it, `Chain.streaming` counts a failure
as a broken stream and notes on the error that the router did not fall back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_core.runnables.config import RunnableConfig, ensure_config

from llm_routing._decorator import Ensured
from llm_routing._waiting import Waiting, current, swap
from llm_routing.errors import (
    FALLBACK_ERRORS,
    AllModelsFailedError,
    Attempt,
    malformed_response_error,
)

if TYPE_CHECKING:
    from llm_routing.router.router import Router

__all__ = ["EMPTY", "Chain", "ModelTurn", "astreamed", "streamed"]

T = TypeVar("T")

EMPTY: Final[Any] = object()
"""What a stream's first chunk is when the model's stream ended without any."""


class ModelTurn:
    """One model's turn: a context manager that swallows an error that lets the next model try.

    Leaves ``failed`` set when it did; any other error (a bad request, a bad key, a
    cancellation) propagates as it is, traceback and all, since the next model would fail the
    same way. While the turn runs, the request's `Waiting` is the current one, so the model's
    scheduler and tracker wait only what is left of ``max_wait`` for the whole request.
    """

    __slots__ = ("_chain", "_outer", "config", "failed", "model", "name")

    def __init__(
        self, chain: Chain, name: str, model: Runnable[Any, Any], config: RunnableConfig
    ) -> None:
        self._chain = chain
        self.name = name
        self.model = model
        self.config = config
        self.failed = False
        self._outer: Waiting | None = None

    def __enter__(self) -> ModelTurn:
        self._outer = swap(self._chain.waiting)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        swap(self._outer)
        if not isinstance(exc, Exception):
            return False
        error = fallback_error(exc, self.name, stream=self._chain.stream)
        if error is None:
            return False
        self._chain.attempts.append(Attempt(self.name, error))
        self.failed = True
        return True


class Chain:
    """One request's walk down a router's models: the turns, the outcome, the bookkeeping.

    Iterating yields one `ModelTurn` per model, in order, each with the config its attempt
    runs under; the entry point calls the model inside the turn and reports back with
    `served`, `all_failed` or (for streams) `streaming`.

    ``waiting`` is what the request has waited, across its turns: ``max_wait`` bounds the
    request, not each model. A router called inside another's turn (nested routers) shares
    the outer request's, so the outer bound holds.
    """

    __slots__ = ("_next", "_position", "_router", "attempts", "config", "stream", "waiting")

    def __init__(self, router: Router, config: RunnableConfig | None, *, stream: bool) -> None:
        self._router = router
        self.stream = stream
        ensured = _with_handler(ensure_config(config), router.settings.get("langfuse"))
        # Marked, so the primary's decorated model does not ensure it again.
        self.config = cast("RunnableConfig", Ensured(ensured))
        self.attempts: list[Attempt] = []
        self._position = self._next = 0
        self.waiting: Waiting = current() or Waiting()

    def __iter__(self) -> Chain:
        return self

    def __next__(self) -> ModelTurn:
        # An iterator object, not a generator: a request served by its first model leaves the
        # loop by ``return``, and closing a suspended generator costs a thrown GeneratorExit.
        router, position = self._router, self._next
        if position == len(router.models):
            raise StopIteration
        self._position, self._next = position, position + 1
        config = attempt_config(self.config, position, self.attempts)
        return ModelTurn(self, router.names[position], router.models[position], config)

    @property
    def name(self) -> str:
        """The model whose turn it is (or was, once the walk stopped)."""
        return self._router.names[self._position]

    def served(self, output: T) -> T:
        """``output`` answered the request: note on it who served, count it, hand it back."""
        name = self._router.names[self._position]  # `name`, once
        annotate(output, name, self.attempts)
        self._router._stats.record(name, self._position, self.attempts)
        return output

    def all_failed(self) -> AllModelsFailedError:
        """Every model failed with a fallback error: count it, and the error naming each."""
        self._router._stats.record(None, -1, self.attempts)
        return AllModelsFailedError(self.attempts)

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Around a stream's chunks once the first is out: a failure now is no fallback.

        It is counted as a broken stream, typed when it is a malformed frame, and noted: the
        caller has output already, and a second model would duplicate it.
        """
        try:
            yield
        except Exception as exc:
            self._router._stats.broken()
            error = broken_stream_error(exc, self.name)
            if error is exc:
                raise
            raise error from exc


def streamed(
    router: Router,
    config: RunnableConfig | None,
    open: Callable[[Runnable[Any, Any], RunnableConfig], Iterator[Any]],
) -> Generator[Any, None, None]:
    """A stream's walk: open each model's stream in its turn, fall back only before its first item.

    ``open`` says what to stream (chunks with ``model.stream``, v3 events with
    ``model.stream_events``), so both share this one loop. A consumer that stops early closes
    the model's stream, whose decorators settle the cancel.
    """
    chain = Chain(router, config, stream=True)
    for turn in chain:
        items = iter(open(turn.model, turn.config))
        with turn:
            first = next(items, EMPTY)
        if turn.failed:
            continue
        try:
            if chain.served(first) is not EMPTY:
                with chain.streaming():
                    yield first
                    yield from items
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        return
    raise chain.all_failed()


async def astreamed(
    router: Router,
    config: RunnableConfig | None,
    open: Callable[[Runnable[Any, Any], RunnableConfig], AsyncIterator[Any]],
) -> AsyncGenerator[Any, None]:
    """Async `streamed`."""
    chain = Chain(router, config, stream=True)
    for turn in chain:
        items = aiter(open(turn.model, turn.config))
        with turn:
            first = await anext(items, EMPTY)
        if turn.failed:
            continue
        try:
            if chain.served(first) is not EMPTY:
                with chain.streaming():
                    yield first
                    async for item in items:
                        yield item
        finally:
            # A caller that stops early must close the model's stream now (its decorators
            # settle on close), not whenever the generator is garbage-collected.
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    raise chain.all_failed()


def fallback_error(exc: Exception, name: str, *, stream: bool) -> BaseException | None:
    """The error to fall back on for ``exc``, or None when ``exc`` must propagate as it is.

    The SDKs let malformed JSON out as a bare ``JSONDecodeError``: the provider's fault, so it
    falls back, typed, as a dropped connection does. The decorators below saw the original.
    """
    if isinstance(exc, FALLBACK_ERRORS):
        return exc
    return malformed_response_error(exc, model=name, stream=stream)


def broken_stream_error(exc: Exception, name: str) -> Exception:
    """``exc`` typed (a malformed frame) and noted: the stream broke after its first chunk."""
    error = malformed_response_error(exc, model=name, stream=True) or exc
    error.add_note(
        f"llm_routing: the stream from {name} failed after its first chunk; the router does not "
        "fall back once output has been yielded (it would duplicate it). Retry the request."
    )
    return error


def attempt_config(
    config: RunnableConfig, position: int, attempts: Sequence[Attempt]
) -> RunnableConfig:
    """The primary's config is the caller's; a fallback's says why it is being tried.

    A caller's run_id names one run, so only the first attempt may take it. The metadata
    reaches the fallback model's run (and its Langfuse generation).
    """
    if position == 0:
        return config
    patched = config.copy()
    patched.pop("run_id", None)
    patched["metadata"] = {
        **config.get("metadata", {}),
        "llm_routing.router_attempt": position + 1,
        "llm_routing.fallback_from": [f"{a.model} ({a.kind.value})" for a in attempts],
    }
    return patched


def annotate(output: Any, name: str, attempts: Sequence[Attempt]) -> None:
    """Record on a message which model served it and which failed before (no-op otherwise)."""
    if isinstance(output, BaseMessage):
        output.response_metadata["llm_routing.model"] = name
        output.response_metadata["llm_routing.attempts"] = (
            [
                {
                    "model": a.model,
                    "kind": a.kind.value,
                    "error": f"{type(a.error).__name__}: {a.error}",
                }
                for a in attempts
            ]
            if attempts  # most requests: served first time, no comprehension to run
            else []
        )


def _with_handler(config: RunnableConfig, handler: Any) -> RunnableConfig:
    """``config`` with the router's Langfuse handler attached, when it has one."""
    if handler is None:
        return config
    from llm_routing.observe import attach

    return attach(config, handler)
