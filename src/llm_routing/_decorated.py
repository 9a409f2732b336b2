"""`Decorated`: a runnable with decorators around every entry point, and what it unwraps.

Design: `Decorated` is a plain ``Runnable`` with ``__slots__``, not a pydantic
``RunnableSerializable``: it is built on every ``bind_tools``/``with_structured_output`` call and
must be as cheap as a tuple, it is never serialised (decorators hold live state such as locks and
ledgers), and it opens no callback run of its own, so the model's run sits directly under the
caller's run and LangGraph, Langfuse and ``astream_events`` see the model itself. A stack of
decorators around one model is one `Decorated` (flattened), so the config is ensured once and a
stream is aggregated once, however many decorators run. The streaming entry points (chunks
and v3 events, which differ only in the recursion's innermost step) are its base class in
``_streams``; the recursion and the re-wrapping are here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from langchain_core.runnables.base import (
    Runnable,
    RunnableSerializable,
)
from langchain_core.runnables.config import RunnableConfig, ensure_config, merge_configs
from langchain_core.runnables.configurable import DynamicRunnable
from langchain_core.runnables.graph import Graph
from langchain_core.runnables.utils import ConfigurableFieldSpec, Input, Output
from langchain_core.tools import BaseTool
from langchain_core.utils.pydantic import TypeBaseModel

from llm_routing._decorator import Call, Decorator, DecoratorStack, Ensured, _defaults
from llm_routing._levels import (
    Invocation,
    ascrubbed,
    aunwind,
    below,
    scrubbed,
    unwind,
)
from llm_routing._streams import DecoratedStreams
from llm_routing._unwrap import _chosen, _innermost, _replace_model_part

__all__ = ["Decorated"]

_NO_METADATA: Mapping[str, Any] = {}  # read only: what the outermost decorator sees


class Decorated(DecoratedStreams[Input, Output]):
    """A runnable (usually a chat model) with decorators around every entry point.

    Behaves like ``bound``: same input and output types, config and callbacks handed down, the
    model's run is the only run (what decorators learned travels as metadata on it).
    ``bind_tools``, ``with_structured_output``, ``bind`` and ``with_config`` return a `Decorated`
    with the same decorator instances around the inner model's result; any other attribute
    reads through to ``bound``.
    """

    __slots__ = ("_bound_kwargs", "_dynamic", "_hooks", "_model", "bound", "config", "decorators")

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
        # A configurable model is chosen per call from its config; any other is fixed here.
        self._dynamic = isinstance(self._model, DynamicRunnable)
        # Whether each decorator's hooks are the defaults, looked up once, not per call.
        self._hooks = tuple((d, _defaults(type(d))) for d in decorators)

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

    def configurable_fields(self, **kwargs: Any) -> Decorated[Input, Output]:
        """The inner model's ``configurable_fields``, decorated by the same decorators.

        Each call's hooks see the model its config selects (a configured ``model_name`` is
        counted, limited and priced as that model).
        """
        return self._same(getattr(self.bound, "configurable_fields")(**kwargs))  # noqa: B009

    def configurable_alternatives(self, which: Any, **kwargs: Any) -> Decorated[Input, Output]:
        """The inner model's ``configurable_alternatives``, decorated by the same decorators.

        Every alternative runs through the decorators, and each call's hooks see the
        alternative its config selects.
        """
        return self._same(
            getattr(self.bound, "configurable_alternatives")(which, **kwargs)  # noqa: B009
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
        # returned dict is ours to patch without touching the caller's. A router's turn hands
        # one it has just ensured in this same call (`Ensured`): ensuring it again would only
        # copy it (~2 µs a call). The hooks read a call's config and never patch it in place.
        if type(config) is Ensured and not self.config:
            return cast("RunnableConfig", config)
        return ensure_config(merge_configs(self.config, config) if self.config else config)

    # --- the recursion: one per colour, the innermost step pluggable ------------------------
    #
    # Decorator ``index`` runs before → around(proceed) → after / on_error / on_cancel, where
    # ``proceed`` runs decorators ``index + 1`` on; past the last decorator, ``step`` calls the
    # model. A decorator whose ``around`` only proceeds (the guard's, the tracker's) needs no
    # level of its own: a run of them is entered in a loop, and settled (or unwound) in reverse
    # order, as nested levels would, without a frame, closure and handler each per call. A
    # decorator with its own ``around`` (the scheduler's retries) is the loop's last entry; its
    # ``proceed`` is the rest, a fresh `_run`. ``invoke`` settles each decorator as it returns;
    # a stream returns an ``_Opened`` (the primed inner stream) and settles every decorator
    # later, on the chunks' sum.

    def _run(
        self,
        index: int,
        step: Callable[[RunnableConfig], Any],
        at: Invocation,
        upstream: Mapping[str, Any],
    ) -> Any:
        hooks = self._hooks
        entered: list[tuple[Decorator, Call]] = []  # open: before ran, no outcome yet
        try:
            while index < len(hooks):
                decorator, defaults = hooks[index]
                call = at.call(upstream)
                decorator.before(call)
                entered.append((decorator, call))
                index += 1
                if not defaults[3]:  # its own around: the rest runs at each proceed()
                    result = decorator.around(call, self._proceed(index, step, at, upstream, call))
                    break
                upstream = below(upstream, call)
            else:
                result = scrubbed(step, at.model_config(upstream))
            while entered:  # innermost first; one whose after raised is no longer open
                decorator, call = entered.pop()
                if at.streaming:
                    result.calls.insert(0, call)
                else:
                    decorator.after(call, result)
        except BaseException:
            if entered:
                unwind(entered)
            raise
        return result

    def _proceed(
        self,
        index: int,
        step: Callable[[RunnableConfig], Any],
        at: Invocation,
        upstream: Mapping[str, Any],
        call: Call,
    ) -> Callable[[], Any]:
        # ``call.metadata`` is read at each proceed(): an attempt number set in around reaches
        # that attempt's run.
        return lambda: self._run(index, step, at, below(upstream, call))

    async def _arun(
        self,
        index: int,
        step: Callable[[RunnableConfig], Awaitable[Any]],
        at: Invocation,
        upstream: Mapping[str, Any],
    ) -> Any:
        hooks = self._hooks
        entered: list[tuple[Decorator, Call]] = []
        try:
            while index < len(hooks):
                decorator, (before, around, _, _) = hooks[index]
                call = at.call(upstream)
                if before:
                    decorator.before(call)
                else:
                    await decorator.abefore(call)
                entered.append((decorator, call))
                index += 1
                if not around:
                    proceed = self._aproceed(index, step, at, upstream, call)
                    result = await decorator.aaround(call, proceed)
                    break
                upstream = below(upstream, call)
            else:
                result = await ascrubbed(step, at.model_config(upstream))
            while entered:
                decorator, call = entered.pop()
                if at.streaming:
                    result.calls.insert(0, call)
                elif _defaults(type(decorator))[2]:
                    decorator.after(call, result)
                else:
                    await decorator.aafter(call, result)
        except BaseException:
            if entered:
                await aunwind(entered)
            raise
        return result

    def _aproceed(
        self,
        index: int,
        step: Callable[[RunnableConfig], Awaitable[Any]],
        at: Invocation,
        upstream: Mapping[str, Any],
        call: Call,
    ) -> Callable[[], Awaitable[Any]]:
        return lambda: self._arun(index, step, at, below(upstream, call))

    def _level(
        self,
        input: Any,
        config: RunnableConfig | None,
        kwargs: dict[str, Any],
        streaming: bool = False,
    ) -> Invocation:
        config = self._ensure(config)
        model, bound_kwargs = self._model, self._bound_kwargs
        if self._dynamic:  # the model this call's config selects
            model, bound_kwargs = _chosen(model, config, bound_kwargs)
        return Invocation(input, config, kwargs, model, bound_kwargs, streaming)

    # --- invoke ----------------------------------------------------------------------------

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        """Run the hooks around the inner ``invoke``."""
        bound = self.bound
        return cast(
            "Output",
            self._run(
                0,
                lambda cfg: bound.invoke(input, cfg, **kwargs),
                self._level(input, config, kwargs),
                _NO_METADATA,
            ),
        )

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        """Run the async hooks around the inner ``ainvoke``."""
        bound = self.bound
        return cast(
            "Output",
            await self._arun(
                0,
                lambda cfg: bound.ainvoke(input, cfg, **kwargs),
                self._level(input, config, kwargs),
                _NO_METADATA,
            ),
        )

    # batch/abatch/batch_as_completed: Runnable's defaults call (a)invoke per input, so each
    # element gets its own hooks and return_exceptions applies per element.

    # stream/astream/stream_events/astream_events: `_streams.DecoratedStreams`, the base class.
