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

from llm_routing._decorator import _T, Call, Decorator, DecoratorStack, Ensured, _defaults
from llm_routing._streams import DecoratedStreams
from llm_routing._unwrap import _chosen, _innermost, _replace_model_part
from llm_routing.errors import scrub_credentials

__all__ = ["Decorated"]


class _Level:
    """What one level of the recursion hands the next.

    The call's arguments, and what the outer decorators learned (``metadata``, read at each
    ``proceed()``, so a retry's attempt number reaches its run).
    """

    __slots__ = ("config", "input", "kwargs", "metadata", "run_id")

    def __init__(
        self,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        metadata: Mapping[str, Any],
        run_id: list[Any] | None,
    ) -> None:
        self.input = input
        self.config = config
        self.kwargs = kwargs
        self.metadata = metadata
        self.run_id = run_id

    def under(self, call: Call) -> _Level:
        metadata = {**self.metadata, **call.metadata} if call.metadata else self.metadata
        return _Level(self.input, self.config, self.kwargs, metadata, self.run_id)


def _scrubbed(step: Callable[[RunnableConfig], _T], config: RunnableConfig) -> _T:
    """The model's own call: an API key in its error must not reach logs or traces."""
    try:
        return step(config)
    except Exception as exc:
        scrub_credentials(exc)
        raise


async def _ascrubbed(step: Callable[[RunnableConfig], Awaitable[_T]], config: RunnableConfig) -> _T:
    """Async ``_scrubbed``."""
    try:
        return await step(config)
    except Exception as exc:
        scrub_credentials(exc)
        raise


class Decorated(DecoratedStreams[Input, Output]):
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

    def _call(
        self,
        input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        streaming: bool,
        upstream: Mapping[str, Any] | None = None,
    ) -> Call:
        model, bound_kwargs = self._model, self._bound_kwargs
        if isinstance(model, DynamicRunnable):
            model, bound_kwargs = _chosen(model, config, bound_kwargs)
        return Call(input, config, kwargs, model, bound_kwargs, streaming, upstream)

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

    # --- the recursion: one per colour, the innermost step pluggable ------------------------
    #
    # Level ``index`` runs decorator ``index``'s before → around(proceed) → after / on_error /
    # on_cancel, where ``proceed`` runs level ``index + 1``; past the last decorator, ``step``
    # calls the model. ``invoke`` settles each level as it returns; a stream returns an
    # ``_Opened`` (the primed inner stream) and settles every level later, on the chunks' sum.

    def _run(
        self, index: int, step: Callable[[RunnableConfig], Any], at: _Level, streaming: bool
    ) -> Any:
        if index == len(self.decorators):
            return _scrubbed(step, self._inner_config(at.config, at.metadata, at.run_id))
        decorator = self.decorators[index]
        call = self._call(at.input, at.config, at.kwargs, streaming, at.metadata)
        decorator.before(call)
        try:
            if _defaults(type(decorator))[3]:  # around only proceeds: proceed here
                result = self._run(index + 1, step, at.under(call), streaming)
            else:
                result = decorator.around(
                    call, lambda: self._run(index + 1, step, at.under(call), streaming)
                )
        except Exception as exc:
            replacement = decorator.on_error(call, exc)
            if replacement is None or replacement is exc:
                raise
            raise replacement from exc
        except BaseException:
            decorator.on_cancel(call, None)
            raise
        if streaming:
            result.calls.insert(0, call)
        else:
            decorator.after(call, result)
        return result

    async def _arun(
        self,
        index: int,
        step: Callable[[RunnableConfig], Awaitable[Any]],
        at: _Level,
        streaming: bool,
    ) -> Any:
        if index == len(self.decorators):
            return await _ascrubbed(step, self._inner_config(at.config, at.metadata, at.run_id))
        decorator = self.decorators[index]
        before, around, after, _ = _defaults(type(decorator))
        call = self._call(at.input, at.config, at.kwargs, streaming, at.metadata)
        if before:
            decorator.before(call)
        else:
            await decorator.abefore(call)
        try:
            if around:
                result = await self._arun(index + 1, step, at.under(call), streaming)
            else:
                result = await decorator.aaround(
                    call, lambda: self._arun(index + 1, step, at.under(call), streaming)
                )
        except Exception as exc:
            replacement = await decorator.aon_error(call, exc)
            if replacement is None or replacement is exc:
                raise
            raise replacement from exc
        except BaseException:
            await decorator.aon_cancel(call, None)
            raise
        if streaming:
            result.calls.insert(0, call)
        elif after:
            decorator.after(call, result)
        else:
            await decorator.aafter(call, result)
        return result

    def _level(self, input: Any, config: RunnableConfig | None, kwargs: dict[str, Any]) -> _Level:
        config = self._ensure(config)
        return _Level(input, config, kwargs, {}, self._run_id_box(config))

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
                False,
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
                False,
            ),
        )

    # batch/abatch/batch_as_completed: Runnable's defaults call (a)invoke per input, so each
    # element gets its own hooks and return_exceptions applies per element.

    # stream/astream/stream_events/astream_events: `_streams.DecoratedStreams`, the base class.
