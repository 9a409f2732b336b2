"""The context guard: refuse an input that cannot fit a model's window, before any network call.

Owns the fit check (input + tool schemas + reserved output against ``window × safety``), the
mapping of providers' own context-overflow errors, and the seed's ``ContextStrategy`` questions.
Counting belongs to ``tokens``, window sizes to ``catalog``, choosing the next model to the router.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable

from llm_routing._decorator import Call, Decorator
from llm_routing._facts import (
    DEFAULT_OUTPUT_RESERVE,
    PerModel,
    as_messages,
    check_sendable,
    default_output_ceiling,
    output_ceiling,
)
from llm_routing._large_input import check_sendable_in_slices, is_large
from llm_routing.catalog import Catalog, ModelSpec, default_catalog
from llm_routing.errors import (
    ContextLengthExceededError,
    ErrorKind,
    UnknownModelError,
    classify,
)
from llm_routing.tokens import count_tokens, count_tokens_lower_bound, count_tokens_within
from llm_routing.tokens._fast import PACING, paced
from llm_routing.tokens.counting import count_fitting_ascii, counter_for

__all__ = ["DEFAULT_OUTPUT_RESERVE", "ContextGuard"]


def _fmt(n: int) -> str:
    return f"{n:,}"


class _Fit:
    """What a model is checked against, resolved once per model object (see ``_check``).

    The spec, the limit (``window × safety``) and the output reserved when the call sets no
    ``max_tokens`` depend on the model and the guard's settings only; with the settings they
    were made for, so a guard whose ``safety`` or ``reserve_output`` is changed re-resolves.
    """

    __slots__ = ("counter", "limit", "reserve_output", "reserved", "safety", "spec")

    def __init__(self, guard: ContextGuard, model: Any, spec: ModelSpec) -> None:
        self.spec = spec
        self.safety = guard.safety
        self.reserve_output = guard.reserve_output
        self.limit = guard.limit_for(spec)
        self.reserved = output_ceiling(spec, {}, model, guard.reserve_output)
        self.counter = counter_for(spec)


class ContextGuard(Decorator):
    """Refuse an input that cannot fit the wrapped model, so a fallback chain moves on at once.

    For every call it counts the input as the model will see it (messages, bound tool
    schemas, images), adds the output it reserves, and checks
    ``tokens + reserved_output <= context_window × safety``. Too big: it raises
    `ContextLengthExceededError` with the numbers, no network call is made, and ``with_fallbacks``
    (or the router) tries the next model. The estimate travels as ``llm_routing.input_tokens``
    and ``llm_routing.context_window`` metadata on the model's run.

    Reserved output (`llm_routing._facts.output_ceiling`): the call's or the model's
    ``max_tokens`` (``max_completion_tokens``, ``max_output_tokens``) when set, because the
    provider holds that much of the window; else ``reserve_output``, or by default
    ``min(DEFAULT_OUTPUT_RESERVE, spec.max_output_tokens, context_window // 4)``.

    Windows come from ``catalog`` (default: the shared `default_catalog`), with the model's
    ``profile`` taking precedence. One guard can wrap any number of models.

    Example:
        >>> from langchain_openai import ChatOpenAI
        >>> from llm_routing import ContextGuard
        >>> guard = ContextGuard(safety=0.9)
        >>> model = guard | ChatOpenAI(model="gpt-4o-mini", api_key="unused", max_retries=0)
        >>> guard.check_fits("Summarise this report.", "openai:gpt-4o-mini")
        (True, 13, 115200)
        >>> guard.check_fits("word " * 200_000, "gpt-4o-mini")
        (False, 200008, 115200)
        >>> guard.get_larger_context_models(300_000)[:2]
        ['openai:gpt-5', 'openai:gpt-5-mini']
    """

    def __init__(
        self,
        safety: float = 0.9,
        reserve_output: int | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        if isinstance(safety, bool) or not isinstance(safety, int | float):
            raise TypeError(
                f"ContextGuard(safety=…) must be a number in (0, 1], got {type(safety).__name__}"
            )
        if not 0 < safety <= 1:
            raise ValueError(
                f"ContextGuard(safety=…) must be in (0, 1] (the share of the window to use, "
                f"0.9 keeps 10% headroom for counting differences), got {safety!r}"
            )
        if reserve_output is not None and (
            isinstance(reserve_output, bool) or not isinstance(reserve_output, int)
        ):
            raise TypeError(
                "ContextGuard(reserve_output=…) must be an int number of tokens or None, "
                f"got {type(reserve_output).__name__}"
            )
        if reserve_output is not None and reserve_output < 0:
            raise ValueError(
                f"ContextGuard(reserve_output=…) must be >= 0 tokens or None (use the model's "
                f"max_tokens, else a default), got {reserve_output}"
            )
        if catalog is not None and not isinstance(catalog, Catalog):
            raise TypeError(
                f"ContextGuard(catalog=…) must be a Catalog or None, got {type(catalog).__name__}"
            )
        self.safety = float(safety)
        self.reserve_output = reserve_output
        self._catalog = catalog
        self._models: PerModel[_Fit] = PerModel(
            lambda model: _Fit(self, model, self._lookup(model))
        )

    @property
    def catalog(self) -> Catalog:
        """The catalogue windows come from (the shared default unless one was given)."""
        return self._catalog if self._catalog is not None else default_catalog()

    def __repr__(self) -> str:
        return f"ContextGuard(safety={self.safety}, reserve_output={self.reserve_output})"

    # --- per model -------------------------------------------------------------------------

    def spec_for(self, model: Any) -> ModelSpec:
        """The spec the guard checks ``model`` against (cached per model object).

        An unknown model raises `UnknownModelError` (a ``ValueError``) saying how to register it.
        """
        return self._models.get(model).spec

    def _fit(self, model: Any) -> _Fit:
        fit = self._models.get(model)
        if fit.safety != self.safety or fit.reserve_output != self.reserve_output:
            fit = _Fit(self, model, fit.spec)
            self._models.put(model, fit)
        return fit

    def _lookup(self, model: Any) -> ModelSpec:
        try:
            return self.catalog.for_model(model)
        except UnknownModelError as exc:
            raise UnknownModelError(
                f"ContextGuard cannot check {type(model).__name__}: {exc.message} Alternatively "
                "give the model a profile={'max_input_tokens': N}.",
                model=exc.model,
            ) from None
        except TypeError as exc:
            raise TypeError(
                f"ContextGuard cannot find the context window of {type(model).__name__}: {exc} "
                "Or give the model a profile={'max_input_tokens': N}."
            ) from None

    def limit_for(self, spec: ModelSpec) -> int:
        """The tokens (input plus reserved output) the guard lets through to ``spec``'s model."""
        return int(spec.context_window * self.safety)

    # --- hooks -----------------------------------------------------------------------------

    def before(self, call: Call) -> None:
        """Count the input for ``call.model`` and refuse it when it cannot fit."""
        self._check(call, length_only=False)

    def _check(self, call: Call, *, length_only: bool) -> None:
        fit = self._fit(call.model)
        spec = fit.spec
        limit = fit.limit
        kwargs = call.invocation_kwargs
        if kwargs:
            check_sendable(kwargs, "kwargs")  # bound tools, stop sequences: sent as JSON too
            tools = kwargs.get("tools") or None
            reserved = output_ceiling(spec, kwargs, call.model, self.reserve_output)
        else:  # the common case: nothing in the call changes what was resolved per model
            tools = None
            reserved = fit.reserved
        room = limit - reserved
        if not length_only and tools is None and room > 0 and PACING.get() is None:
            # The common case first: a short plain input whose sizes prove it fits is counted
            # in one pass. Refusals, tools, prompt values and anything else take the full path.
            tokens, ascii = _fitting(call.input, fit.counter, room)
            if tokens is not None:
                if not ascii:  # ASCII (role, text) pairs are UTF-8 already: no second walk
                    check_sendable(call.input)  # as as_messages would: it fits, so no refusal
                self._admit(call, spec, tokens, reserved)
                return
        if isinstance(call.input, list | tuple | PromptValue) and call.input:
            # A message list that cannot fit is refused from its length (and its texts'
            # lengths) alone, before it is read for surrogates, converted or tokenised.
            lower = count_tokens_lower_bound(
                call.input, spec, stop_above=max(room, 0), contents=not length_only
            )
            if lower > room:
                call.state = lower
                raise self._too_big(spec, lower, reserved, limit)
        if length_only:
            return
        pace = PACING.get()
        if pace is not None and isinstance(call.input, list | tuple) and call.input:
            # Paced (counting in a worker thread for an event loop): the same checks as
            # as_messages, a slice at a time so the loop's thread gets the GIL in between.
            check_sendable_in_slices(call.input, pace)
            messages: Any = call.input
        else:
            messages = as_messages(call.input)
        # One pass: exact when the input fits, a lower bound (found after tokenising just
        # past the limit) when it does not, so a huge input is refused in milliseconds.
        tokens = count_tokens_within(messages, spec, max(room, 0), tools=tools)
        call.state = tokens
        if tokens > room:
            raise self._too_big(spec, tokens, reserved, limit)
        self._admit(call, spec, tokens, reserved)

    @staticmethod
    def _admit(call: Call, spec: ModelSpec, tokens: int, reserved: int) -> None:
        call.state = tokens
        call.metadata["llm_routing.input_tokens"] = tokens
        call.metadata["llm_routing.reserved_output_tokens"] = reserved
        call.metadata["llm_routing.context_window"] = spec.context_window

    async def abefore(self, call: Call) -> None:
        """``before``, in a worker thread when the input is large enough to stall the loop.

        Counting a large input is CPU work of up to seconds; on the event loop it would freeze
        every other coroutine for that long. Small inputs stay on the loop, where they cost
        less than the thread hand-off would.
        """
        if is_large(call.input):
            # A list too long to fit whatever it says is refused here, in constant time: no
            # thread hand-off for the commonest huge input.
            self._check(call, length_only=True)
            await asyncio.to_thread(self._paced_before, call)
        else:
            self.before(call)

    def _paced_before(self, call: Call) -> None:
        with paced():
            self.before(call)

    def _too_big(
        self, spec: ModelSpec, tokens: int, reserved: int, limit: int
    ) -> ContextLengthExceededError:
        # ``tokens`` is exact when the reserve alone overflows, else a lower bound: counting
        # stops once the input is known not to fit.
        needs = f"at least {_fmt(tokens)}" if tokens > max(limit - reserved, 0) else _fmt(tokens)
        message = (
            f"input needs {needs} tokens + {_fmt(reserved)} reserved for output; "
            f"{spec.key} accepts {_fmt(limit)} ({_fmt(spec.context_window)} × {self.safety:g}). "
            "Shorten the input, lower max_tokens, or route it to a larger-context model "
            "(add one to the fallbacks or large_context of the router)"
        )
        return ContextLengthExceededError(
            message, required_tokens=tokens + reserved, max_tokens=limit, model=spec.key
        )

    def on_error(self, call: Call, error: Exception) -> Exception | None:
        """Map a provider's own context overflow to `ContextLengthExceededError`."""
        if (
            isinstance(error, ContextLengthExceededError)
            or classify(error) is not ErrorKind.CONTEXT
        ):
            return None
        try:
            spec: ModelSpec | None = self.spec_for(call.model)
        except (TypeError, ValueError):
            spec = None
        key = spec.key if spec is not None else type(call.model).__name__
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        tokens = call.state if isinstance(call.state, int) else None
        return ContextLengthExceededError(
            f"{key} rejected the input as too long for its context window "
            f"(the guard estimated {_fmt(tokens) if tokens is not None else 'unknown'} input "
            f"tokens): {first}",
            required_tokens=tokens,
            max_tokens=spec.context_window if spec is not None else None,
            model=key,
        )

    # --- the seed's ContextStrategy questions ---------------------------------------------

    def estimate_tokens(self, input: Any, model_name: str | ModelSpec | Runnable[Any, Any]) -> int:
        """Tokens ``input`` costs the named model, as a chat model would see it (no tools)."""
        spec = self._spec_of(model_name)
        return count_tokens(as_messages(input), spec)

    def check_fits(
        self, input: Any, model_name: str | ModelSpec | Runnable[Any, Any]
    ) -> tuple[bool, int, int]:
        """``(fits, estimated_tokens, max_context)`` for the named model.

        ``max_context`` is what the guard admits (``window × safety``); ``fits`` also accounts
        for the default output reserve, exactly as a guarded call would.
        """
        spec = self._spec_of(model_name)
        tokens = count_tokens(as_messages(input), spec)
        limit = self.limit_for(spec)
        reserved = self._default_reserve(spec)
        return tokens + reserved <= limit, tokens, limit

    def larger_context_models(self, required_tokens: int) -> list[str]:
        """Catalogue models (``provider:name``) that admit ``required_tokens``, smallest first.

        Deprecated models are left out. Ties keep the catalogue's (alphabetical) order.
        """
        if isinstance(required_tokens, bool) or not isinstance(required_tokens, int):
            raise TypeError(
                "larger_context_models(required_tokens) needs an int, "
                f"got {type(required_tokens).__name__}"
            )
        if required_tokens < 0:
            raise ValueError(
                f"larger_context_models(required_tokens) must be >= 0, got {required_tokens}"
            )
        candidates = [
            s
            for s in self.catalog.models()
            if not s.deprecated and self.limit_for(s) >= required_tokens
        ]
        candidates.sort(key=lambda s: s.context_window)
        return [s.key for s in candidates]

    get_larger_context_models = larger_context_models
    """The seed's name for `larger_context_models`."""

    def _default_reserve(self, spec: ModelSpec) -> int:
        """The reserve of a call without ``max_tokens``: ``reserve_output``, else the ceiling."""
        if self.reserve_output is not None:
            return self.reserve_output
        return default_output_ceiling(spec)

    def _spec_of(self, model: str | ModelSpec | Runnable[Any, Any]) -> ModelSpec:
        if isinstance(model, ModelSpec):
            return model
        if isinstance(model, str):
            return self.catalog.get(model)
        if isinstance(model, Runnable):
            return self.spec_for(model)
        raise TypeError(
            "model_name must be a model name such as 'openai:gpt-4o-mini', a ModelSpec or a "
            f"chat model; got {type(model).__name__}"
        )


def _fitting(input: Any, counter: Any, room: int) -> tuple[int | None, bool]:
    """The exact count of a short plain input that provably fits ``room``, else ``None``.

    What ``count_tokens_within(as_messages(input), ...)`` returns for such an input (a string
    is the one user message a chat model makes of it). An empty list is not plain here:
    ``as_messages`` refuses it on the full path. With it, whether the input is ``(role,
    text)`` pairs of ASCII texts (`count_fitting_ascii`), which need no surrogate check.
    """
    if isinstance(input, str):
        return count_fitting_ascii([("user", input)], counter, room)
    if isinstance(input, (list, tuple)) and input:  # a tuple: `|` builds a union per call
        return count_fitting_ascii(input, counter, room)
    return None, False
