"""``stream_events(version="v3")`` on a decorated model: hooks now, settlement at the run's end.

A v3 stream is pumped lazily by its consumer, so the settlement of the decorators runs from the
model run's end or error callback (`_SettleHandler`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler, BaseCallbackManager
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables.config import RunnableConfig

from llm_routing._decorator import Call
from llm_routing._settle import acancel, afail, afinish, cancel, fail, finish

if TYPE_CHECKING:
    from llm_routing._decorated import Decorated

__all__ = ["astream_events_v3", "stream_events_v3"]


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


def stream_events_v3(
    decorated: Decorated[Any, Any],
    input: Any,
    config: RunnableConfig | None,
    kwargs: dict[str, Any],
) -> Any:
    """``Decorated.stream_events(version="v3")``: ``before`` now, settlement at the run's end.

    ``around`` is not applied (no retry), ``after``/``on_error`` run from the model run's
    end/error callback, and an exception raised while it streams cannot be mapped.
    """
    config = decorated._ensure(config)
    calls, metadata = _enter_all(decorated, input, config, kwargs)
    inner = decorated._inner_config(config, metadata, None)
    _with_handler(inner, _SettleHandler(decorated, calls))
    try:
        return getattr(decorated.bound, "stream_events")(  # noqa: B009
            input, inner, version="v3", **kwargs
        )
    except Exception as exc:
        error = fail(decorated.decorators, calls, exc)
        if error is exc:
            raise
        raise error from exc


async def astream_events_v3(
    decorated: Decorated[Any, Any],
    input: Any,
    config: RunnableConfig | None,
    kwargs: dict[str, Any],
) -> Any:
    """Async ``stream_events_v3``."""
    config = decorated._ensure(config)
    calls, metadata = await _aenter_all(decorated, input, config, kwargs)
    inner = decorated._inner_config(config, metadata, None)
    _with_handler(inner, _AsyncSettleHandler(decorated, calls))
    try:
        return await getattr(decorated.bound, "astream_events")(  # noqa: B009
            input, inner, version="v3", **kwargs
        )
    except Exception as exc:
        error = await afail(decorated.decorators, calls, exc)
        if error is exc:
            raise
        raise error from exc


def _enter_all(
    decorated: Decorated[Any, Any], input: Any, config: RunnableConfig, kwargs: dict[str, Any]
) -> tuple[list[Call], dict[str, Any]]:
    calls: list[Call] = []
    metadata: dict[str, Any] = {}
    for decorator in decorated.decorators:
        call = decorated._call(input, config, kwargs, True, dict(metadata))
        try:
            decorator.before(call)
        except Exception as exc:
            error = fail(decorated.decorators, calls, exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            cancel(decorated.decorators, calls, None)
            raise
        calls.append(call)
        metadata.update(call.metadata)
    return calls, metadata


async def _aenter_all(
    decorated: Decorated[Any, Any], input: Any, config: RunnableConfig, kwargs: dict[str, Any]
) -> tuple[list[Call], dict[str, Any]]:
    calls: list[Call] = []
    metadata: dict[str, Any] = {}
    for decorator in decorated.decorators:
        call = decorated._call(input, config, kwargs, True, dict(metadata))
        try:
            await decorator.abefore(call)
        except Exception as exc:
            error = await afail(decorated.decorators, calls, exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            await acancel(decorated.decorators, calls, None)
            raise
        calls.append(call)
        metadata.update(call.metadata)
    return calls, metadata


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
            finish(self._decorated.decorators, calls, _message_of(response))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        """Run ``on_error`` (or ``on_cancel`` for a cancellation) once."""
        calls, self._calls = self._calls, None
        if calls is None:
            return
        if isinstance(error, Exception):
            fail(self._decorated.decorators, calls, error)
        else:
            cancel(self._decorated.decorators, calls, None)


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
            await afinish(self._decorated.decorators, calls, _message_of(response))

    async def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        """Run ``aon_error`` (or ``aon_cancel`` for a cancellation) once."""
        calls, self._calls = self._calls, None
        if calls is None:
            return
        if isinstance(error, Exception):
            await afail(self._decorated.decorators, calls, error)
        else:
            await acancel(self._decorated.decorators, calls, None)
