"""The streaming entry points of `Decorated`: chunks and v3 events through one recursion.

``stream``/``astream`` and ``stream_events``/``astream_events(version="v3")`` run the same
recursion as ``invoke`` (``Decorated._run``/``_arun``) with an innermost step that opens the
model's stream and primes its first item, so admission, waiting and retry happen before the
first chunk or event; `_settle.through`/``athrough`` pass the rest on and settle. A base class
of `Decorated` so the wrapper's own module holds the recursion and the re-wrapping.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.runnables.base import Runnable
from langchain_core.runnables.config import RunnableConfig
from langchain_core.runnables.schema import StreamEvent
from langchain_core.runnables.utils import Input, Output

from llm_routing._decorator import _NOTHING, Decorator
from llm_routing._events_v3 import AsyncEventStream, EventStream, aopen_events, open_events, ready
from llm_routing._settle import _Opened, athrough, through

__all__ = ["DecoratedStreams"]


class DecoratedStreams(Runnable[Input, Output]):
    """Streams of a decorated runnable; `Decorated` supplies the recursion it runs."""

    __slots__ = ()

    if TYPE_CHECKING:
        bound: Runnable[Input, Output]
        decorators: tuple[Decorator, ...]

        def _run(
            self, index: int, step: Callable[[RunnableConfig], Any], at: Any, upstream: Any
        ) -> Any: ...

        async def _arun(
            self,
            index: int,
            step: Callable[[RunnableConfig], Awaitable[Any]],
            at: Any,
            upstream: Any,
        ) -> Any: ...

        def _level(
            self,
            input: Any,
            config: RunnableConfig | None,
            kwargs: dict[str, Any],
            streaming: bool = False,
        ) -> Any: ...

    # --- stream, and stream_events v3 (the same recursion, another innermost step) ---------

    def _streamed(
        self, step: Callable[[RunnableConfig], Any], input: Any, config: Any, kwargs: Any
    ) -> Generator[Any, None, None]:
        opened = self._run(0, step, self._level(input, config, kwargs, True), {})
        yield from through(self.decorators, opened)

    async def _astreamed(
        self, step: Callable[[RunnableConfig], Awaitable[Any]], input: Any, config: Any, kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        opened = await self._arun(0, step, self._level(input, config, kwargs, True), {})
        chunks = athrough(self.decorators, opened)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            # An async generator closed early does not close what it iterates (unlike
            # ``yield from``): close it now, so the decorators settle the cancel at once.
            await chunks.aclose()

    def _open(
        self, input: Any, kwargs: dict[str, Any]
    ) -> Callable[[RunnableConfig], _Opened[Iterator[Output]]]:
        def step(config: RunnableConfig) -> _Opened[Iterator[Output]]:
            iterator = iter(self.bound.stream(input, config, **kwargs))
            return _Opened(iterator, next(iterator, _NOTHING), [])

        return step

    def _aopen(
        self, input: Any, kwargs: dict[str, Any]
    ) -> Callable[[RunnableConfig], Awaitable[_Opened[AsyncIterator[Output]]]]:
        async def step(config: RunnableConfig) -> _Opened[AsyncIterator[Output]]:
            iterator = aiter(self.bound.astream(input, config, **kwargs))
            return _Opened(iterator, await anext(iterator, _NOTHING), [])

        return step

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        """Run ``before`` ahead of the first chunk, pass chunks through, settle on their sum."""
        return self._streamed(self._open(input, kwargs), input, config, kwargs)

    def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        """Async ``stream``: the same lifecycle with the async hooks."""
        return self._astreamed(self._aopen(input, kwargs), input, config, kwargs)

    def stream_events(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2", "v3"] = "v2",
        **kwargs: Any,
    ) -> Iterator[StreamEvent] | Any:
        """``version="v3"``: a `ChatModelStream` whose events pass through every hook.

        The model's own v3 stream is opened as ``stream`` opens its stream (admission, waits,
        retry before the first event) and settled on its assembled message (`_events_v3`).
        Other versions behave as ``Runnable.stream_events``.
        """
        if version != "v3":
            return super().stream_events(input, config, version=version, **kwargs)
        return EventStream(
            self._streamed(open_events(self.bound, input, kwargs), input, config, kwargs)
        )

    def astream_events(  # type: ignore[override]
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent] | Awaitable[Any]:
        """Like ``stream_events``: v3 through the async hooks, v1/v2 drive ``astream``."""
        if kwargs.get("version", "v2") == "v3":
            kwargs.pop("version")
            step = aopen_events(self.bound, input, kwargs)
            return ready(AsyncEventStream(self._astreamed(step, input, config, kwargs)))
        return cast("AsyncIterator[StreamEvent]", super().astream_events(input, config, **kwargs))

    # transform/atransform: Runnable's defaults gather the input and call (a)stream above.
    # astream_events v1/v2: Runnable's default drives astream above with its event handler in
    # the config, so the model's own events (on_chat_model_stream…) are the events.
