"""The two runners of a step generator: one for threads, one for event loops (the tenacity shape).

A loop that must run in both colours (admission, the scheduler's attempts) is written once as
a generator that yields the I/O it needs as small step objects and gets the answers sent back;
``drive`` does each step in this thread, ``adrive`` awaits it. An exception of a step (a
refusal, a provider error, a cancellation) is thrown into the generator at its ``yield``, so
its own ``try`` blocks handle it as if the call had been made inline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = ["adrive", "drive"]

_S = TypeVar("_S")
_R = TypeVar("_R")


def drive(steps: Generator[_S, Any, _R], do: Callable[[_S], Any]) -> _R:
    """Run ``steps`` to its return value, doing each yielded step with ``do``."""
    try:
        step = next(steps)
        while True:
            try:
                reply = do(step)
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(reply)
    except StopIteration as done:
        result: _R = done.value
        return result


async def adrive(steps: Generator[_S, Any, _R], do: Callable[[_S], Awaitable[Any]]) -> _R:
    """Async ``drive``: each step is awaited on the running loop."""
    try:
        step = next(steps)
        while True:
            try:
                reply = await do(step)
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(reply)
    except StopIteration as done:
        result: _R = done.value
        return result
