"""The one mechanism every decorator shares: the hook contract and composition with ``|``.

Owns the hooks (`Decorator`), what a hook knows about a call (`Call`) and stacks of decorators
(`DecoratorStack`); the wrapper that runs them around a model is `Decorated`
(``llm_routing._decorated``, re-exported here) and ``stream_events(version="v3")`` lives in
``llm_routing._events_v3``. No policy lives here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.runnables.base import (
    Runnable,
)
from langchain_core.runnables.config import RunnableConfig
from langchain_core.runnables.utils import Input, Output

if TYPE_CHECKING:
    from llm_routing._decorated import Decorated

__all__ = [
    "Call",
    "Decorated",
    "Decorator",
    "DecoratorStack",
    "Ensured",
]  # Decorated: from _decorated

_T = TypeVar("_T")

_ACCEPTED = (
    "a Decorator (ContextGuard, RateScheduler, CostTracker…), a DecoratorStack or a Runnable"
)


class _Nothing:
    """Marks a stream that ended before its first chunk (``None`` is a legal chunk)."""


_NOTHING = _Nothing()


class Ensured(dict):  # type: ignore[type-arg]
    """A config its caller ran through ``ensure_config`` in this same call (a router's turn).

    Only the exact type counts: a copy (``dict.copy``) is a plain dict again, so a config that
    anyone patched after ensuring it is ensured anew.
    """

    __slots__ = ()


class Call:
    """What one decorator knows about one call: created before ``before``, handed to every hook.

    ``config`` is the effective config of the call (caller's config, context config from
    LangGraph, and ``with_config``); treat it as read-only and put what you learned in
    ``metadata``, which is merged into the config of the model's own run so tracers such as
    Langfuse show it on the generation. ``state`` is the decorator's private per-call slot
    (a reservation id, a start time). ``model`` is the innermost runnable (the chat model under
    every binding) and ``invocation_kwargs`` what it will be called with (bound tools, ``stop``,
    ``max_tokens``…), both needed to count tokens and to look up limits. ``upstream`` is the
    metadata the outer decorators of the same stack set before this one ran (read-only), so
    the scheduler and the tracker reuse the guard's ``llm_routing.input_tokens`` instead of
    counting the input again. ``partial`` is the sum of the chunks a stream delivered before it
    broke, set before ``on_error`` (``None`` otherwise): the provider billed those tokens, so a
    decorator that counts or charges them needs it there, as ``on_cancel`` gets it.
    """

    __slots__ = (
        "_bound_kwargs",
        "config",
        "input",
        "kwargs",
        "metadata",
        "model",
        "partial",
        "state",
        "streaming",
        "upstream",
    )

    def __init__(
        self,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        model: Runnable[Any, Any],
        bound_kwargs: Mapping[str, Any],
        streaming: bool,
        upstream: Mapping[str, Any] | None = None,
    ) -> None:
        self.input = input
        self.upstream: Mapping[str, Any] = upstream if upstream is not None else {}
        self.config = config
        self.kwargs = kwargs
        self.model = model
        self._bound_kwargs = bound_kwargs
        self.streaming = streaming
        self.metadata: dict[str, Any] = {}
        self.state: Any = None
        self.partial: Any = None

    @property
    def invocation_kwargs(self) -> dict[str, Any]:
        """Kwargs bound on the model (``bind_tools``, ``bind``) overlaid by the call's own."""
        return {**self._bound_kwargs, **self.kwargs}

    def __repr__(self) -> str:
        return (
            f"Call(model={type(self.model).__name__}, streaming={self.streaming}, "
            f"metadata={self.metadata!r}, state={self.state!r})"
        )


class Decorator:
    """Configuration plus shared state, applied around any number of models.

    Subclasses override hooks; every hook has a no-op default. Per call of a decorated model,
    the lifecycle is ``before`` → ``around(proceed)`` → exactly one of ``after`` (success),
    ``on_error`` (the inner call, or an inner decorator, raised an ``Exception``) or
    ``on_cancel`` (the caller stopped: a stream closed early, a task cancelled,
    ``KeyboardInterrupt``). If ``before`` itself raises, no other hook of this decorator runs for
    that call: clean up your own partial state before raising. Stacked decorators nest
    like functions: ``before`` runs outer→inner, ``after``/``on_error`` inner→outer, and each
    outer ``on_error`` sees the exception as mapped by the inner ones.

    The async hooks default to the sync ones, which is right for hooks that never block; a
    decorator that waits (the scheduler) overrides both so the event loop never sleeps.
    """

    def wrap(self, runnable: Runnable[Input, Output]) -> Decorated[Input, Output]:
        """Return ``runnable`` decorated by this decorator (what ``decorator | runnable`` does)."""
        from llm_routing._decorated import Decorated

        return Decorated(runnable, (self,))

    def __or__(self, other: Any) -> Any:
        return _compose((self,), other)

    def __ror__(self, other: Any) -> Any:
        raise _bad_left_operand(other)

    def before(self, call: Call) -> None:
        """Admit the call before the model is called: may raise to refuse it, or block to wait.

        Runs before the first chunk of a stream is requested. Add what you learned (a token
        estimate, the time waited) to ``call.metadata``; keep per-call state in ``call.state``.
        """

    async def abefore(self, call: Call) -> None:
        """Async ``before``; override when admission waits."""
        self.before(call)

    def around(self, call: Call, proceed: Callable[[], _T]) -> _T:
        """Control how often the inner call runs, e.g. retry ``proceed()`` after a 429.

        Return what ``proceed()`` returned, unchanged: for a stream it is an opaque handle on
        the opened stream (the inner stream has produced its first chunk, so retrying here can
        never duplicate output). Each ``proceed()`` is a separate model run, and inner
        decorators run their whole lifecycle again for it. ``call.metadata`` is read at every
        ``proceed()``, so an attempt count set here reaches that attempt's run.
        """
        return proceed()

    async def aaround(self, call: Call, proceed: Callable[[], Awaitable[_T]]) -> _T:
        """Async ``around``; ``proceed()`` returns an awaitable."""
        return await proceed()

    def after(self, call: Call, output: Any) -> None:
        """Settle a successful call; ``output`` is the model's message (streams: all chunks added).

        A chat model's streamed ``AIMessageChunk``s are summed, so ``output.usage_metadata`` is
        there for streams too (when the provider reports it). Outputs that cannot be added give
        the last chunk. ``None`` means the stream produced no chunk.
        """

    async def aafter(self, call: Call, output: Any) -> None:
        """Async ``after``."""
        self.after(call, output)

    def on_error(self, call: Call, error: Exception) -> Exception | None:
        """Release what ``before`` took, and optionally map the error.

        Return a replacement exception (raised ``from`` the original, e.g. a provider's context
        overflow → ``ContextLengthExceededError``) or ``None`` to let ``error`` propagate.
        """
        return None

    async def aon_error(self, call: Call, error: Exception) -> Exception | None:
        """Async ``on_error``."""
        return self.on_error(call, error)

    def on_cancel(self, call: Call, partial: Any) -> None:
        """Release or settle a call the caller abandoned; it propagates regardless.

        ``partial`` is the sum of the chunks the consumer received before it stopped (``None``
        for ``invoke`` or when nothing arrived). A stream closed early usually carries no
        ``usage_metadata``: estimate from ``partial`` or release the reservation.
        """

    async def aon_cancel(self, call: Call, partial: Any) -> None:
        """Async ``on_cancel``."""
        self.on_cancel(call, partial)


_DEFAULTS: dict[type, tuple[bool, bool, bool, bool]] = {}


def _defaults(kind: type[Decorator]) -> tuple[bool, bool, bool, bool]:
    """Whether ``kind``'s ``abefore``, ``aaround``, ``aafter`` and ``around`` are the defaults.

    A default hook only calls its sync twin (or ``proceed``), so the recursion calls that
    directly: the same hooks in the same order, without a coroutine (async) or a closure
    (``around``) per hook per call.
    """
    found = _DEFAULTS.get(kind)
    if found is None:
        found = _DEFAULTS[kind] = (
            kind.abefore is Decorator.abefore,
            kind.aaround is Decorator.aaround,
            kind.aafter is Decorator.aafter,
            kind.around is Decorator.around,
        )
    return found


class DecoratorStack:
    """Decorators in order, outermost first: ``guard | scheduler | tracker``, reusable on models.

    ``stack | model`` equals ``guard.wrap(scheduler.wrap(tracker.wrap(model)))``; every model
    decorated by one stack shares the same decorator instances and therefore their state.
    """

    __slots__ = ("decorators",)

    def __init__(self, *decorators: Decorator) -> None:
        if not decorators:
            raise ValueError("DecoratorStack(*decorators) needs at least one decorator; got none")
        for position, decorator in enumerate(decorators):
            if not isinstance(decorator, Decorator):
                raise TypeError(
                    f"DecoratorStack decorator #{position} must be a Decorator; "
                    f"got {type(decorator).__name__}"
                )
        self.decorators: tuple[Decorator, ...] = decorators

    def wrap(self, runnable: Runnable[Input, Output]) -> Decorated[Input, Output]:
        """Return ``runnable`` decorated by the whole stack (what ``stack | runnable`` does)."""
        from llm_routing._decorated import Decorated

        return Decorated(runnable, self.decorators)

    def __or__(self, other: Any) -> Any:
        return _compose(self.decorators, other)

    def __ror__(self, other: Any) -> Any:
        raise _bad_left_operand(other)

    def __iter__(self) -> Iterator[Decorator]:
        return iter(self.decorators)

    def __len__(self) -> int:
        return len(self.decorators)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecoratorStack):
            return NotImplemented
        return len(self.decorators) == len(other.decorators) and all(
            a is b for a, b in zip(self.decorators, other.decorators, strict=True)
        )

    def __hash__(self) -> int:
        return hash(tuple(id(d) for d in self.decorators))

    def __repr__(self) -> str:
        return " | ".join(type(d).__name__ for d in self.decorators)


def _compose(decorators: tuple[Decorator, ...], other: Any) -> DecoratorStack | Decorated[Any, Any]:
    from llm_routing._decorated import Decorated

    if isinstance(other, Decorator):
        return DecoratorStack(*decorators, other)
    if isinstance(other, DecoratorStack):
        return DecoratorStack(*decorators, *other.decorators)
    if isinstance(other, Runnable):
        return Decorated(other, decorators)
    raise TypeError(
        f"decorator | x: x must be {_ACCEPTED} (e.g. a chat model); got {type(other).__name__}. "
        "Wrap functions in RunnableLambda first."
    )


def _bad_left_operand(other: Any) -> TypeError:
    return TypeError(
        f"x | decorator: decorators go on the left of what they wrap (decorator | model); "
        f"x must be {_ACCEPTED}, got {type(other).__name__}"
    )


def __getattr__(name: str) -> Any:
    # ``Decorated`` is built on these classes, so it lives in its own module; importing it
    # from here (as every decorator does) still works.
    if name == "Decorated":
        from llm_routing._decorated import Decorated

        return Decorated
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
