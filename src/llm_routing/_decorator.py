"""The one mechanism every decorator shares: running hooks around a Runnable without subclassing it.

Owns the hook contract (`Decorator`, `Call`), composition with ``|`` (`DecoratorStack`) and the
wrapper (`Decorated`) with every entry point and the ``bind_tools`` family; no policy lives here.

Design: `Decorated` is a plain ``Runnable`` with ``__slots__``, not a pydantic
``RunnableSerializable``: it is built on every ``bind_tools``/``with_structured_output`` call and
must be as cheap as a tuple, it is never serialised (decorators hold live state such as locks and
ledgers), and it opens no callback run of its own, so the model's run sits directly under the
caller's run and LangGraph, Langfuse and ``astream_events`` see the model itself. A stack of
decorators around one model is one `Decorated` (flattened), so the config is ensured once and a
stream is aggregated once, however many decorators run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar, cast

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler, BaseCallbackManager
from langchain_core.language_models import BaseLanguageModel
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables.base import (
    Runnable,
    RunnableBindingBase,
    RunnableParallel,
    RunnableSequence,
    RunnableSerializable,
)
from langchain_core.runnables.config import RunnableConfig, ensure_config, merge_configs
from langchain_core.runnables.graph import Graph
from langchain_core.runnables.schema import StreamEvent
from langchain_core.runnables.utils import ConfigurableFieldSpec, Input, Output
from langchain_core.tools import BaseTool
from langchain_core.utils.pydantic import TypeBaseModel

from llm_routing.errors import scrub_credentials

__all__ = ["Call", "Decorated", "Decorator", "DecoratorStack"]

_T = TypeVar("_T")

_ACCEPTED = (
    "a Decorator (ContextGuard, RateScheduler, CostTracker…), a DecoratorStack or a Runnable"
)


class _Nothing:
    """Marks a stream that ended before its first chunk (``None`` is a legal chunk)."""


_NOTHING = _Nothing()


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


def _innermost(runnable: Runnable[Any, Any]) -> tuple[Runnable[Any, Any], dict[str, Any]]:
    """The model under every binding and decoration, and the kwargs the bindings add to it."""
    layers: list[Mapping[str, Any]] = []
    node = runnable
    while True:
        if isinstance(node, Decorated):
            node = node.bound
        elif isinstance(node, RunnableBindingBase):
            layers.append(node.kwargs)
            node = node.bound
        else:
            break
    merged: dict[str, Any] = {}
    for kwargs in reversed(layers):  # an outer binding's kwargs win, as in RunnableBinding
        merged.update(kwargs)
    return node, merged


def _is_model_part(node: Runnable[Any, Any]) -> bool:
    while isinstance(node, Decorated | RunnableBindingBase):
        node = node.bound
    return isinstance(node, BaseLanguageModel)


def _replace_model_part(
    node: Runnable[Any, Any], wrap: Callable[[Runnable[Any, Any]], Runnable[Any, Any]]
) -> Runnable[Any, Any] | None:
    """Rebuild ``node`` with its (first) language-model part wrapped; ``None`` if there is none.

    ``with_structured_output`` returns ``model.bind… | parser`` (or a ``RunnableMap(raw=…)``
    for ``include_raw``): the decorators must sit on the model part to keep seeing messages
    with ``usage_metadata`` rather than parsed objects.
    """
    if _is_model_part(node):
        return wrap(node)
    if isinstance(node, RunnableSequence):
        steps = node.steps
        for index, step in enumerate(steps):
            replaced = _replace_model_part(step, wrap)
            if replaced is not None:
                new_steps = [*steps[:index], replaced, *steps[index + 1 :]]
                return RunnableSequence(*new_steps, name=node.name)
        return None
    if isinstance(node, RunnableParallel):
        for key, step in node.steps__.items():
            replaced = _replace_model_part(step, wrap)
            if replaced is not None:
                return RunnableParallel(steps__={**node.steps__, key: replaced})
        return None
    if isinstance(node, RunnableBindingBase):
        replaced = _replace_model_part(node.bound, wrap)
        if replaced is not None:
            return node.model_copy(update={"bound": replaced})
    return None


def _add_chunk(total: Any, chunk: Any) -> Any:
    if total is _NOTHING:
        return chunk
    try:
        return total + chunk
    except TypeError:
        return chunk


def _with_handler(config: RunnableConfig, handler: BaseCallbackHandler) -> None:
    callbacks = config.get("callbacks")
    if callbacks is None:
        config["callbacks"] = [handler]
    elif isinstance(callbacks, list):
        config["callbacks"] = [*callbacks, handler]
    elif isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        manager.add_handler(handler, inherit=True)
        config["callbacks"] = manager


def _message_of(response: LLMResult) -> Any:
    generation = (
        response.generations[0][0] if response.generations and response.generations[0] else None
    )
    if isinstance(generation, ChatGeneration):
        return generation.message
    return generation.text if generation is not None else None


class _Opened(Generic[_T]):
    """A primed inner stream: its iterator, its first chunk, and the calls entered to open it."""

    __slots__ = ("calls", "first", "iterator")

    def __init__(self, iterator: _T, first: Any, calls: list[Call]) -> None:
        self.iterator = iterator
        self.first = first
        self.calls = calls


class Decorated(Runnable[Input, Output]):
    """A runnable (usually a chat model) with decorators around every entry point.

    Behaves like ``bound``: same input and output types, config and callbacks handed down, the
    model's run is the only run (what decorators learned travels as metadata on it).
    ``bind_tools``, ``with_structured_output``, ``bind`` and ``with_config`` return a `Decorated`
    with the same decorator instances around the inner model's result; any other attribute
    reads through to ``bound``.
    """

    __slots__ = ("_bound_kwargs", "_model", "bound", "config", "decorators")

    def __init__(
        self,
        bound: Runnable[Input, Output],
        decorators: Sequence[Decorator],
        config: RunnableConfig | None = None,
    ) -> None:
        if not isinstance(bound, Runnable):
            raise TypeError(
                f"Decorated(bound=…) must be a Runnable such as a chat model; "
                f"got {type(bound).__name__}"
            )
        decorators = tuple(decorators)
        if not decorators:
            raise ValueError("Decorated(decorators=…) needs at least one decorator; got none")
        for position, decorator in enumerate(decorators):
            if not isinstance(decorator, Decorator):
                raise TypeError(
                    f"Decorated decorator #{position} must be a Decorator; "
                    f"got {type(decorator).__name__}"
                )
        if isinstance(bound, Decorated) and not bound.config:
            decorators = (*decorators, *bound.decorators)
            bound = bound.bound
        self.bound: Runnable[Input, Output] = bound
        self.decorators: tuple[Decorator, ...] = decorators
        self.config: RunnableConfig = config or {}
        self._model, self._bound_kwargs = _innermost(bound)

    # --- reading through -------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        try:
            bound = object.__getattribute__(self, "bound")
        except AttributeError:  # during copy/unpickling, before __init__ ran
            raise AttributeError(name) from None
        return getattr(bound, name)

    def __repr__(self) -> str:
        stack = " | ".join(type(d).__name__ for d in self.decorators)
        return f"Decorated({stack} | {self.bound!r})"

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        """The wrapped runnable's name, so graphs and traces show the model, not a wrapper."""
        return self.bound.get_name(suffix, name=name)

    @property
    def InputType(self) -> type[Input]:
        """The wrapped runnable's input type."""
        return self.bound.InputType

    @property
    def OutputType(self) -> type[Output]:
        """The wrapped runnable's output type."""
        return self.bound.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        """The wrapped runnable's input schema."""
        return self.bound.get_input_schema(merge_configs(self.config, config))

    def get_output_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        """The wrapped runnable's output schema."""
        return self.bound.get_output_schema(merge_configs(self.config, config))

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The wrapped runnable's configurable fields."""
        return self.bound.config_specs

    def get_graph(self, config: RunnableConfig | None = None) -> Graph:
        """The wrapped runnable's graph: decorators add no node."""
        return self.bound.get_graph(merge_configs(self.config, config))

    # --- re-wrapping what the model returns ------------------------------------------------

    def _same(self, bound: Runnable[Any, Any]) -> Decorated[Any, Any]:
        return Decorated(bound, self.decorators, self.config)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Decorated[Input, Output]:
        """The inner model's ``bind_tools``, decorated by the same decorators."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self._same(getattr(self.bound, "bind_tools")(tools, **kwargs))  # noqa: B009

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[Input, Any]:
        """The inner model's ``with_structured_output``, with the decorators on its model part.

        The parser stays outside, so the decorators keep seeing the model's message and its
        usage. If the result has no recognisable model part, the whole result is decorated.
        """
        result = getattr(self.bound, "with_structured_output")(  # noqa: B009
            schema, include_raw=include_raw, **kwargs
        )
        replaced = _replace_model_part(result, self._same)
        return cast(
            "Runnable[Input, Any]", replaced if replaced is not None else self._same(result)
        )

    def bind(self, **kwargs: Any) -> Decorated[Input, Output]:
        """The inner runnable's ``bind``, decorated by the same decorators."""
        return self._same(self.bound.bind(**kwargs))

    def with_config(
        self, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Decorated[Input, Output]:
        """Bind config here, so the decorators' hooks see it too (tags for cost by tag)."""
        merged = cast("RunnableConfig", {**self.config, **(config or {}), **kwargs})
        return Decorated(self.bound, self.decorators, merged)

    def __or__(self, other: Any) -> RunnableSerializable[Input, Any]:
        if isinstance(other, Decorator | DecoratorStack):
            raise TypeError(
                "decorated | decorator: decorators go on the left of what they wrap "
                "(decorator | model); to add one, write decorator | decorated"
            )
        return super().__or__(other)

    # --- per-call plumbing -----------------------------------------------------------------

    def _ensure(self, config: RunnableConfig | None) -> RunnableConfig:
        # ensure_config picks up LangGraph's context config and copies tags/metadata, so the
        # returned dict is ours to patch without touching the caller's.
        return ensure_config(merge_configs(self.config, config) if self.config else config)

    def _call(
        self,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        streaming: bool,
        upstream: Mapping[str, Any] | None = None,
    ) -> Call:
        return Call(input, config, kwargs, self._model, self._bound_kwargs, streaming, upstream)

    @staticmethod
    def _inner_config(
        config: RunnableConfig, metadata: Mapping[str, Any], run_id: list[Any] | None
    ) -> RunnableConfig:
        if not metadata and run_id is None:
            return config
        patched = config.copy()
        if metadata:
            patched["metadata"] = {**config.get("metadata", {}), **metadata}
        if run_id is not None:
            # The caller's run_id names one run; a retried attempt must get a fresh one.
            patched.pop("run_id", None)
            if run_id:
                patched["run_id"] = run_id.pop()
        return patched

    @staticmethod
    def _run_id_box(config: RunnableConfig) -> list[Any] | None:
        return [config["run_id"]] if config.get("run_id") is not None else None

    def _fail(self, calls: list[Call], error: Exception) -> Exception:
        for decorator, call in reversed(list(zip(self.decorators, calls, strict=False))):
            error = _mapped(error, decorator.on_error(call, error))
        return error

    async def _afail(self, calls: list[Call], error: Exception) -> Exception:
        for decorator, call in reversed(list(zip(self.decorators, calls, strict=False))):
            error = _mapped(error, await decorator.aon_error(call, error))
        return error

    def _cancel(self, calls: list[Call], partial: Any) -> None:
        for decorator, call in reversed(list(zip(self.decorators, calls, strict=False))):
            decorator.on_cancel(call, partial)

    async def _acancel(self, calls: list[Call], partial: Any) -> None:
        for decorator, call in reversed(list(zip(self.decorators, calls, strict=False))):
            await decorator.aon_cancel(call, partial)

    def _finish(self, calls: list[Call], output: Any) -> None:
        error: Exception | None = None
        for decorator, call in reversed(list(zip(self.decorators, calls, strict=False))):
            if error is None:
                try:
                    decorator.after(call, output)
                except Exception as exc:
                    error = exc
            else:
                error = _mapped(error, decorator.on_error(call, error))
        if error is not None:
            raise error

    async def _afinish(self, calls: list[Call], output: Any) -> None:
        error: Exception | None = None
        for decorator, call in reversed(list(zip(self.decorators, calls, strict=False))):
            if error is None:
                try:
                    await decorator.aafter(call, output)
                except Exception as exc:
                    error = exc
            else:
                error = _mapped(error, await decorator.aon_error(call, error))
        if error is not None:
            raise error

    # --- invoke ----------------------------------------------------------------------------

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        """Run the hooks around the inner ``invoke``."""
        config = self._ensure(config)
        return self._invoke_from(0, input, config, kwargs, {}, self._run_id_box(config))

    def _invoke_from(
        self,
        index: int,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        metadata: Mapping[str, Any],
        run_id: list[Any] | None,
    ) -> Output:
        if index == len(self.decorators):
            try:
                return self.bound.invoke(
                    input, self._inner_config(config, metadata, run_id), **kwargs
                )
            except Exception as exc:
                scrub_credentials(exc)
                raise
        decorator = self.decorators[index]
        call = self._call(input, config, kwargs, False, metadata)
        decorator.before(call)
        try:
            output = decorator.around(
                call,
                lambda: self._invoke_from(
                    index + 1, input, config, kwargs, {**metadata, **call.metadata}, run_id
                ),
            )
        except Exception as exc:
            replacement = decorator.on_error(call, exc)
            if replacement is None or replacement is exc:
                raise
            raise replacement from exc
        except BaseException:
            decorator.on_cancel(call, None)
            raise
        decorator.after(call, output)
        return output

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        """Run the async hooks around the inner ``ainvoke``."""
        config = self._ensure(config)
        return await self._ainvoke_from(0, input, config, kwargs, {}, self._run_id_box(config))

    async def _ainvoke_from(
        self,
        index: int,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        metadata: Mapping[str, Any],
        run_id: list[Any] | None,
    ) -> Output:
        if index == len(self.decorators):
            try:
                return await self.bound.ainvoke(
                    input, self._inner_config(config, metadata, run_id), **kwargs
                )
            except Exception as exc:
                scrub_credentials(exc)
                raise
        decorator = self.decorators[index]
        call = self._call(input, config, kwargs, False, metadata)
        await decorator.abefore(call)
        try:
            output = await decorator.aaround(
                call,
                lambda: self._ainvoke_from(
                    index + 1, input, config, kwargs, {**metadata, **call.metadata}, run_id
                ),
            )
        except Exception as exc:
            replacement = await decorator.aon_error(call, exc)
            if replacement is None or replacement is exc:
                raise
            raise replacement from exc
        except BaseException:
            await decorator.aon_cancel(call, None)
            raise
        await decorator.aafter(call, output)
        return output

    # batch/abatch/batch_as_completed: Runnable's defaults call (a)invoke per input, so each
    # element gets its own hooks and return_exceptions applies per element.

    # --- stream ----------------------------------------------------------------------------

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        """Run ``before`` ahead of the first chunk, pass chunks through, settle on their sum."""
        config = self._ensure(config)
        opened = self._open_from(0, input, config, kwargs, {}, self._run_id_box(config))
        calls = opened.calls
        if opened.first is _NOTHING:
            self._finish(calls, None)
            return
        iterator = opened.iterator
        total: Any = opened.first
        try:
            yield opened.first
            for chunk in iterator:
                total = _add_chunk(total, chunk)
                yield chunk
        except Exception as exc:
            scrub_credentials(exc)
            for call in calls:
                call.partial = total
            error = self._fail(calls, exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            self._cancel(calls, total)
            raise
        self._finish(calls, total)

    def _open_from(
        self,
        index: int,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        metadata: Mapping[str, Any],
        run_id: list[Any] | None,
    ) -> _Opened[Iterator[Output]]:
        if index == len(self.decorators):
            iterator = iter(
                self.bound.stream(input, self._inner_config(config, metadata, run_id), **kwargs)
            )
            try:
                return _Opened(iterator, next(iterator, _NOTHING), [])
            except Exception as exc:
                scrub_credentials(exc)
                raise
        decorator = self.decorators[index]
        call = self._call(input, config, kwargs, True, metadata)
        decorator.before(call)
        try:
            opened = decorator.around(
                call,
                lambda: self._open_from(
                    index + 1, input, config, kwargs, {**metadata, **call.metadata}, run_id
                ),
            )
        except Exception as exc:
            replacement = decorator.on_error(call, exc)
            if replacement is None or replacement is exc:
                raise
            raise replacement from exc
        except BaseException:
            decorator.on_cancel(call, None)
            raise
        opened.calls.insert(0, call)
        return opened

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        """Async ``stream``: the same lifecycle with the async hooks."""
        config = self._ensure(config)
        opened = await self._aopen_from(0, input, config, kwargs, {}, self._run_id_box(config))
        calls = opened.calls
        if opened.first is _NOTHING:
            await self._afinish(calls, None)
            return
        iterator = opened.iterator
        total: Any = opened.first
        try:
            yield opened.first
            async for chunk in iterator:
                total = _add_chunk(total, chunk)
                yield chunk
        except Exception as exc:
            scrub_credentials(exc)
            for call in calls:
                call.partial = total
            error = await self._afail(calls, exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await aclose()
            await self._acancel(calls, total)
            raise
        await self._afinish(calls, total)

    async def _aopen_from(
        self,
        index: int,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        metadata: Mapping[str, Any],
        run_id: list[Any] | None,
    ) -> _Opened[AsyncIterator[Output]]:
        if index == len(self.decorators):
            iterator = aiter(
                self.bound.astream(input, self._inner_config(config, metadata, run_id), **kwargs)
            )
            try:
                return _Opened(iterator, await anext(iterator, _NOTHING), [])
            except Exception as exc:
                scrub_credentials(exc)
                raise
        decorator = self.decorators[index]
        call = self._call(input, config, kwargs, True, metadata)
        await decorator.abefore(call)
        try:
            opened = await decorator.aaround(
                call,
                lambda: self._aopen_from(
                    index + 1, input, config, kwargs, {**metadata, **call.metadata}, run_id
                ),
            )
        except Exception as exc:
            replacement = await decorator.aon_error(call, exc)
            if replacement is None or replacement is exc:
                raise
            raise replacement from exc
        except BaseException:
            await decorator.aon_cancel(call, None)
            raise
        opened.calls.insert(0, call)
        return opened

    # transform/atransform: Runnable's defaults gather the input and call (a)stream above.
    # astream_events v1/v2: Runnable's default drives astream above with its event handler in
    # the config, so the model's own events (on_chat_model_stream…) are the events.

    # --- stream_events v3 (chat models, langchain-core ≥ 1.8) ------------------------------

    def stream_events(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2", "v3"] = "v2",
        **kwargs: Any,
    ) -> Iterator[StreamEvent] | Any:
        """Delegate ``version="v3"`` to the model, with ``before`` now and settlement at its end.

        A v3 stream is pumped lazily by its consumer, so ``around`` is not applied (no retry),
        ``after``/``on_error`` run from the model run's end/error callback, and an exception
        cannot be mapped. Other versions behave as ``Runnable.stream_events``.
        """
        if version != "v3":
            return super().stream_events(input, config, version=version, **kwargs)
        config = self._ensure(config)
        calls, metadata = self._enter_all(input, config, kwargs)
        inner = self._inner_config(config, metadata, None)
        _with_handler(inner, _SettleHandler(self, calls))
        try:
            return getattr(self.bound, "stream_events")(  # noqa: B009
                input, inner, version="v3", **kwargs
            )
        except Exception as exc:
            error = self._fail(calls, exc)
            if error is exc:
                raise
            raise error from exc

    def astream_events(  # type: ignore[override]
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent] | Awaitable[Any]:
        """Like ``stream_events``: ``version="v3"`` is delegated, v1/v2 drive ``astream``."""
        if kwargs.get("version", "v2") == "v3":
            kwargs.pop("version")
            return self._astream_events_v3(input, config, **kwargs)
        return cast("AsyncIterator[StreamEvent]", super().astream_events(input, config, **kwargs))

    async def _astream_events_v3(
        self, input: Any, config: RunnableConfig | None, **kwargs: Any
    ) -> Any:
        config = self._ensure(config)
        calls, metadata = await self._aenter_all(input, config, kwargs)
        inner = self._inner_config(config, metadata, None)
        _with_handler(inner, _AsyncSettleHandler(self, calls))
        try:
            return await getattr(self.bound, "astream_events")(  # noqa: B009
                input, inner, version="v3", **kwargs
            )
        except Exception as exc:
            error = await self._afail(calls, exc)
            if error is exc:
                raise
            raise error from exc

    def _enter_all(
        self, input: Any, config: RunnableConfig, kwargs: dict[str, Any]
    ) -> tuple[list[Call], dict[str, Any]]:
        calls: list[Call] = []
        metadata: dict[str, Any] = {}
        for decorator in self.decorators:
            call = self._call(input, config, kwargs, True, dict(metadata))
            try:
                decorator.before(call)
            except Exception as exc:
                error = self._fail(calls, exc)
                if error is exc:
                    raise
                raise error from exc
            except BaseException:
                self._cancel(calls, None)
                raise
            calls.append(call)
            metadata.update(call.metadata)
        return calls, metadata

    async def _aenter_all(
        self, input: Any, config: RunnableConfig, kwargs: dict[str, Any]
    ) -> tuple[list[Call], dict[str, Any]]:
        calls: list[Call] = []
        metadata: dict[str, Any] = {}
        for decorator in self.decorators:
            call = self._call(input, config, kwargs, True, dict(metadata))
            try:
                await decorator.abefore(call)
            except Exception as exc:
                error = await self._afail(calls, exc)
                if error is exc:
                    raise
                raise error from exc
            except BaseException:
                await self._acancel(calls, None)
                raise
            calls.append(call)
            metadata.update(call.metadata)
        return calls, metadata


def _mapped(error: Exception, replacement: Exception | None) -> Exception:
    if replacement is None or replacement is error:
        return error
    replacement.__cause__ = error
    return replacement


class _SettleHandler(BaseCallbackHandler):
    """Settles a v3 stream from its model run's end or error (the only run it is attached to)."""

    run_inline = True

    def __init__(self, decorated: Decorated[Any, Any], calls: list[Call]) -> None:
        self._decorated = decorated
        self._calls: list[Call] | None = calls

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        """Run ``after`` once, with the assembled message."""
        calls, self._calls = self._calls, None
        if calls is not None:
            self._decorated._finish(calls, _message_of(response))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        """Run ``on_error`` (or ``on_cancel`` for a cancellation) once."""
        calls, self._calls = self._calls, None
        if calls is None:
            return
        if isinstance(error, Exception):
            self._decorated._fail(calls, error)
        else:
            self._decorated._cancel(calls, None)


class _AsyncSettleHandler(AsyncCallbackHandler):
    """Async twin of `_SettleHandler`, running the async hooks."""

    run_inline = True

    def __init__(self, decorated: Decorated[Any, Any], calls: list[Call]) -> None:
        self._decorated = decorated
        self._calls: list[Call] | None = calls

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        """Run ``aafter`` once, with the assembled message."""
        calls, self._calls = self._calls, None
        if calls is not None:
            await self._decorated._afinish(calls, _message_of(response))

    async def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        """Run ``aon_error`` (or ``aon_cancel`` for a cancellation) once."""
        calls, self._calls = self._calls, None
        if calls is None:
            return
        if isinstance(error, Exception):
            await self._decorated._afail(calls, error)
        else:
            await self._decorated._acancel(calls, None)
