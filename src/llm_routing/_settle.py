"""Settling a decorated call: after, on_error or on_cancel for every decorator, innermost first.

A stream settles once its consumer is done with it, on the sum of its chunks; ``through`` and
``athrough`` pass an opened stream's chunks on and settle it. A v3 event stream passes through
the same way and settles on the message its model's stream assembled (`_Opened.summed`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Generic

from llm_routing._decorator import _NOTHING, _T, Call, Decorator
from llm_routing.errors import scrub_credentials

__all__ = ["acancel", "afail", "afinish", "athrough", "cancel", "fail", "finish", "through"]


def _add_chunk(total: Any, chunk: Any) -> Any:
    if total is _NOTHING:
        return chunk
    try:
        return total + chunk
    except TypeError:
        return chunk


class _Opened(Generic[_T]):
    """A primed inner stream: its iterator, its first chunk, and the calls entered to open it.

    ``summed`` says what the stream delivered so far when its items cannot be added (the
    events of a v3 stream: the model's stream assembles the message itself); without it the
    decorators settle on the sum of the chunks.
    """

    __slots__ = ("calls", "first", "iterator", "summed")

    def __init__(
        self,
        iterator: _T,
        first: Any,
        calls: list[Call],
        summed: Callable[[], Any] | None = None,
    ) -> None:
        self.iterator = iterator
        self.first = first
        self.calls = calls
        self.summed = summed


def fail(decorators: Sequence[Decorator], calls: list[Call], error: Exception) -> Exception:
    for decorator, call in reversed(list(zip(decorators, calls, strict=False))):
        error = _mapped(error, decorator.on_error(call, error))
    return error


async def afail(decorators: Sequence[Decorator], calls: list[Call], error: Exception) -> Exception:
    for decorator, call in reversed(list(zip(decorators, calls, strict=False))):
        error = _mapped(error, await decorator.aon_error(call, error))
    return error


def cancel(decorators: Sequence[Decorator], calls: list[Call], partial: Any) -> None:
    for decorator, call in reversed(list(zip(decorators, calls, strict=False))):
        decorator.on_cancel(call, partial)


async def acancel(decorators: Sequence[Decorator], calls: list[Call], partial: Any) -> None:
    for decorator, call in reversed(list(zip(decorators, calls, strict=False))):
        await decorator.aon_cancel(call, partial)


def finish(decorators: Sequence[Decorator], calls: list[Call], output: Any) -> None:
    error: Exception | None = None
    for decorator, call in reversed(list(zip(decorators, calls, strict=False))):
        if error is None:
            try:
                decorator.after(call, output)
            except Exception as exc:
                error = exc
        else:
            error = _mapped(error, decorator.on_error(call, error))
    if error is not None:
        raise error


async def afinish(decorators: Sequence[Decorator], calls: list[Call], output: Any) -> None:
    error: Exception | None = None
    for decorator, call in reversed(list(zip(decorators, calls, strict=False))):
        if error is None:
            try:
                await decorator.aafter(call, output)
            except Exception as exc:
                error = exc
        else:
            error = _mapped(error, await decorator.aon_error(call, error))
    if error is not None:
        raise error


def _so_far(opened: _Opened[Any], total: Any) -> Any:
    return total if opened.summed is None else opened.summed()


def _mapped(error: Exception, replacement: Exception | None) -> Exception:
    if replacement is None or replacement is error:
        return error
    replacement.__cause__ = error
    return replacement


def through(decorators: Sequence[Decorator], opened: _Opened[Iterator[Any]]) -> Iterator[Any]:
    """Pass an opened stream's chunks on, then settle every decorator on their sum."""
    calls = opened.calls
    if opened.first is _NOTHING:
        finish(decorators, calls, None)
        return
    iterator, summed = opened.iterator, opened.summed
    total: Any = opened.first
    try:
        yield opened.first
        for chunk in iterator:
            if summed is None:
                total = _add_chunk(total, chunk)
            yield chunk
    except Exception as exc:
        scrub_credentials(exc)
        for call in calls:
            call.partial = _so_far(opened, total)
        error = fail(decorators, calls, exc)
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        cancel(decorators, calls, _so_far(opened, total))
        raise
    finish(decorators, calls, _so_far(opened, total))


async def athrough(
    decorators: Sequence[Decorator], opened: _Opened[AsyncIterator[Any]]
) -> AsyncGenerator[Any, None]:
    """Async ``through``: the same lifecycle with the async hooks."""
    calls = opened.calls
    if opened.first is _NOTHING:
        await afinish(decorators, calls, None)
        return
    iterator, summed = opened.iterator, opened.summed
    total: Any = opened.first
    try:
        yield opened.first
        async for chunk in iterator:
            if summed is None:
                total = _add_chunk(total, chunk)
            yield chunk
    except Exception as exc:
        scrub_credentials(exc)
        for call in calls:
            call.partial = _so_far(opened, total)
        error = await afail(decorators, calls, exc)
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await aclose()
        await acancel(decorators, calls, _so_far(opened, total))
        raise
    await afinish(decorators, calls, _so_far(opened, total))
