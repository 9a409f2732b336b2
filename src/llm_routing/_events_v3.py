"""``stream_events(version="v3")`` through the hooks: a real `ChatModelStream` fed by our generator.

LangChain's v3 stream is pumped lazily by its consumer (sync: a pump callback; async: a producer
task). A decorated model or a router answers with a subclass of the same stream type, fed by a
generator that does what ``stream``/``astream`` do: open the model's own v3 stream inside the
hooks (admission, waiting, retry before the first event; a router's fallback before it), pass
its events on, and settle on the message that stream assembled (its final usage). So v3 takes
the same path through every hook as ``astream``, with nothing written twice: the generators are
``Decorated``'s stream recursion and the router's one attempt loop, with the steps below.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from typing import Any

from langchain_core.language_models.chat_model_stream import (
    AsyncChatModelStream,
    ChatModelStream,
)
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import Runnable
from langchain_core.runnables.config import RunnableConfig

from llm_routing._decorator import _NOTHING
from llm_routing._settle import _Opened

__all__ = [
    "AEvents",
    "AsyncEventStream",
    "EventStream",
    "Events",
    "aopen_events",
    "open_events",
    "ready",
]


def _note(text: list[str], event: Mapping[str, Any]) -> None:
    """Keep a delta's text: a stream cut short is settled on what it delivered."""
    if event.get("event") != "content-block-delta":
        return
    delta = event.get("delta")
    if isinstance(delta, Mapping):
        piece = delta.get("text", delta.get("reasoning"))
        if isinstance(piece, str):
            text.append(piece)


def _message(stream: Any, text: list[str]) -> Any:
    """The assembled message (with the provider's usage) or, unfinished, the text so far."""
    message = getattr(stream, "output_message", None)
    if message is not None:
        return message
    return AIMessageChunk(content="".join(text)) if text else None


class Events:
    """A model's v3 stream as an iterator of its events that knows what it delivered so far."""

    __slots__ = ("_events", "_text", "stream")

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._events = iter(stream)
        self._text: list[str] = []

    def __iter__(self) -> Events:
        return self

    def __next__(self) -> Any:
        event = next(self._events)
        _note(self._text, event)
        return event

    def close(self) -> None:
        """Close the model's stream when it can be (ours can; LangChain's has no ``close``)."""
        close = getattr(self.stream, "close", None)
        if callable(close):
            close()

    def so_far(self) -> Any:
        """What the stream delivered: its message once finished, else its text."""
        return _message(self.stream, self._text)


class AEvents:
    """Async `Events`: awaits the model's ``astream_events(version="v3")`` on the first pull."""

    __slots__ = ("_events", "_opening", "_text", "stream")

    def __init__(self, opening: Awaitable[Any]) -> None:
        self._opening = opening
        self.stream: Any = None
        self._events: Any = None
        self._text: list[str] = []

    def __aiter__(self) -> AEvents:
        return self

    async def __anext__(self) -> Any:
        if self._events is None:
            self.stream = await self._opening
            self._events = aiter(self.stream)
        try:
            event = await anext(self._events)
        except StopAsyncIteration:
            # The events end at message-finish; the run's end callbacks (an inner decorated
            # model's settlement) finish in its producer task: wait for them.
            await self.aclose()
            raise
        _note(self._text, event)
        return event

    async def aclose(self) -> None:
        """Close the model's stream (cancels its producer unless it finished)."""
        if self.stream is not None:
            await self.stream.aclose()

    def so_far(self) -> Any:
        """What the stream delivered: its message once finished, else its text."""
        return _message(self.stream, self._text)


def open_events(
    bound: Runnable[Any, Any], input: Any, kwargs: dict[str, Any]
) -> Callable[[RunnableConfig], _Opened[Events]]:
    """The innermost step of a decorated v3 call: open the model's v3 stream, take one event.

    An error before that event is raised here, inside every decorator's ``around``, so the
    scheduler retries it and a router falls back; after it, the error reaches the consumer.
    """

    def step(config: RunnableConfig) -> _Opened[Events]:
        events = Events(getattr(bound, "stream_events")(input, config, version="v3", **kwargs))  # noqa: B009
        return _Opened(events, next(events, _NOTHING), [], events.so_far)

    return step


def aopen_events(
    bound: Runnable[Any, Any], input: Any, kwargs: dict[str, Any]
) -> Callable[[RunnableConfig], Awaitable[_Opened[AEvents]]]:
    """Async `open_events`."""

    async def step(config: RunnableConfig) -> _Opened[AEvents]:
        events = AEvents(getattr(bound, "astream_events")(input, config, version="v3", **kwargs))  # noqa: B009
        return _Opened(events, await anext(events, _NOTHING), [], events.so_far)

    return step


class EventStream(ChatModelStream):
    """A `ChatModelStream` whose events come from ``events``, a generator that runs the hooks.

    Nothing runs until the consumer reads. ``close()`` (or leaving a ``with`` block) stops an
    unfinished stream and settles it at once (the scheduler's slot is released); dropping the
    last reference does the same, since the pump holds the stream weakly and no cycle keeps
    the generator alive.
    """

    def __init__(self, events: Generator[Any, None, None]) -> None:
        super().__init__()
        self._source = events
        self.bind_pump(_pump(weakref.ref(self), events))

    def close(self) -> None:
        """Stop the stream; an unfinished one is cancelled and its hooks settle now."""
        self._source.close()
        if not self.done:
            self.fail(RuntimeError("the stream was closed before it finished"))

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pump(
    ref: weakref.ReferenceType[EventStream], events: Generator[Any, None, None]
) -> Callable[[], bool]:
    def pump_one() -> bool:
        stream = ref()
        if stream is None or stream.done:
            return False
        try:
            event = next(events)
        except StopIteration:
            _ended(stream)
            return False
        except BaseException as exc:  # as LangChain's pump: the consumer's read raises it
            stream.fail(exc)
            return False
        stream.dispatch(event)
        if stream.done:
            # The message is complete; run the generator to its end, where the hooks settle.
            try:
                for _ in events:
                    pass
            except BaseException as exc:
                stream.fail(exc)
        return True

    return pump_one


def _ended(stream: ChatModelStream | AsyncChatModelStream) -> None:
    """The events ended without message-finish: close the message, or fail an empty stream."""
    if stream.done:
        return
    if stream.has_events:
        stream.dispatch({"event": "message-finish"})
    else:
        stream.fail(ValueError("No generation chunks were returned"))


class AsyncEventStream(AsyncChatModelStream):
    """Async `EventStream`: a producer task, started by the first read, pumps ``events``.

    ``aclose()`` cancels the producer, and the generator settles the cancellation (the slot is
    released); ``await stream`` returns once the hooks have settled.
    """

    def __init__(self, events: AsyncGenerator[Any, None]) -> None:
        super().__init__()
        self._source = events
        self.set_start(self._start)

    async def _start(self) -> None:
        if self._producer_task is None:
            self._producer_task = asyncio.get_running_loop().create_task(
                _produce(self, self._source)
            )


async def _produce(stream: AsyncEventStream, events: AsyncGenerator[Any, None]) -> None:
    try:
        async for event in events:  # after message-finish too: the hooks settle at its end
            if not stream.done:
                stream.dispatch(event)
        _ended(stream)
    except asyncio.CancelledError as exc:
        stream.fail(exc)
        raise
    except BaseException as exc:
        stream.fail(exc)


async def ready(stream: AsyncEventStream) -> AsyncEventStream:
    """``astream_events(version="v3")`` returns an awaitable of the stream, as LangChain's does."""
    return stream
