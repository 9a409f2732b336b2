"""The simulator as an in-process LangChain chat model: no HTTP, in the caller's clock.

``SimChatModel`` sends an OpenAI-shaped request body through the same life cycle as
``sim.app``'s ``POST /v1/chat/completions`` (``parse_chat_request``, the prompt count, the
state's context check and admission, faults, ``note_served``), but answers by returning or
raising instead of by writing bytes, and waits with the clock it is given (a ``VirtualClock``
runs ten simulated minutes in seconds). So a planner or a test drives *the* simulator
(``SimState``: limits enforced as providers document, quotas, faults, counters), not a second one.

Refusals are raised as the exceptions ``ChatOpenAI`` (langchain-openai) raises for the same HTTP
answer: LangChain's standard classes (``ModelRateLimitError``, ``ContextOverflowError``,
``ModelInvalidRequestError``, ``ModelNotFoundError``, ``ModelAPIError``, ``ModelConnectionError``,
``ModelTimeoutError``) carrying ``status_code``, the parsed ``body`` and the response ``headers``
(``retry-after``, ``retry-after-ms``, ``x-ratelimit-*``) from ``sim.refusals``, with the openai
SDK's ``"Error code: 429 - {...}"`` message. An error classifier therefore reads a simulated
429 exactly as it reads one that came over HTTP, without this module importing it. Like
``ChatOpenAI(max_retries=0)``: nothing is retried here.

Not the product: like the rest of ``sim``, this imports only ``catalog`` and ``tokens`` of the
package (prices, if wanted, are the caller's to compute from the usage it returns).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.refusals import RATE_LIMIT_FAULTS, SERVER_FAULTS, fault_rejection
from llm_routing.sim.requests import BadRequest, parse_chat_request
from llm_routing.sim.sdk import (
    SimConnectionError,
    SimContextOverflowError,
    SimInvalidRequestError,
    SimNotFoundError,
    SimRateLimitError,
    SimServerError,
    SimTimeoutError,
    chat_result,
    error_for,
    tool_choice_value,
)
from llm_routing.sim.state import Admission, SimState
from llm_routing.sim.wire import ChatRequest, Rejection, error_body

__all__ = [
    "ANSWER_TOKENS",
    "Clock",
    "SimCall",
    "SimChatModel",
    "SimConnectionError",
    "SimContextOverflowError",
    "SimInvalidRequestError",
    "SimNotFoundError",
    "SimRateLimitError",
    "SimServerError",
    "SimTimeoutError",
    "error_for",
]

#: How many tokens a plain-text answer in this context has (``None``: the model's
#: ``reply_tokens``). A real provider decides the length itself; a planner replaying a
#: workload whose answer lengths it knows sets this in each request's task.
ANSWER_TOKENS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "llm_routing_sim_answer_tokens", default=None
)

# The request fields a caller may pass as call or bind keyword arguments, as ChatOpenAI does.
_PASSED = ("tools", "tool_choice", "response_format", "n")


class Clock(Protocol):
    """What the model waits with: ``VirtualClock`` and ``SystemClock`` both fit."""

    def now(self) -> float:
        """Seconds on the clock the ``SimState`` reads too."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait, synchronously."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Wait, on the event loop."""
        ...


class _RealClock:
    """Real time, for a model built without a clock (the ``SimState`` default too)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class SimCall:
    """One answered call, as a client saw it: when admitted and answered, and its tokens.

    ``counted_output`` is what the provider's output-token windows counted for it: the
    requested ``max_tokens`` where they count it at admission (OpenAI), the real output where
    they count it as it is generated (Anthropic's OTPM), else nothing.
    """

    model: str
    admitted: float
    answered: float
    prompt_tokens: int
    completion_tokens: int
    counted_output: int


# -- the chat model -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """An admitted request: how long until its answer, and the error it ends in, if any."""

    request: ChatRequest
    admission: Admission
    admitted: float
    wait: float
    error: BaseException | None


class SimChatModel(BaseChatModel):
    """A chat model answered by a ``SimState`` in process, waiting on ``clock``.

    ``model_name`` is the simulated model's name or alias as a request's ``model`` field names
    it; ``provider`` is the ``ls_provider`` the catalogue identifies it by. ``clock`` should be
    the clock the state reads (``SimState(models, clock=clock.now)``); ``None`` is real time.
    ``timeout`` ends a call whose answer would take longer (the request was admitted and spent
    its capacity, as a real timed-out call does); ``on_served`` receives each answered call's
    ``SimCall``, for a report of what the provider served. Sync (``invoke``) and async
    (``ainvoke``) share one life cycle and differ only in how they wait.

    Example:
        >>> from llm_routing.sim import SimModel
        >>> from llm_routing.sim.state import SimState
        >>> state = SimState([SimModel(name="gpt-4o-mini", rpm=1)])
        >>> llm = SimChatModel(state=state, model_name="gpt-4o-mini")
        >>> llm.invoke("hi", max_tokens=8).usage_metadata["output_tokens"]
        8
        >>> try:
        ...     llm.invoke("hi")
        ... except SimRateLimitError as exc:
        ...     print(exc.status_code, exc.headers["retry-after"])
        429 60
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    state: SimState
    model_name: str
    provider: str = "openai"
    clock: Any = None
    max_tokens: int | None = None
    timeout: float | None = None
    include_response_headers: bool = False
    on_served: Callable[[SimCall], None] | None = None

    @property
    def _llm_type(self) -> str:
        return "llm-routing-sim"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "provider": self.provider}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        model = self.state.resolve(self.model_name)
        params: dict[str, Any] = {
            "ls_provider": self.provider,
            "ls_model_name": model.name if model is not None else self.model_name,
            "ls_model_type": "chat",
        }
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        if stop:
            params["ls_stop"] = stop
        return params

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Tools in the OpenAI format; ``tool_choice`` a tool's name, ``"any"`` or as OpenAI's."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice_value(tool_choice)
        return self.bind(tools=formatted, **kwargs)

    # -- one life cycle, two colours ----------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        pending = self._admit(messages, stop, kwargs)
        if pending.wait > 0:
            self._clock().sleep(pending.wait)
        return self._settle(pending)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        pending = self._admit(messages, stop, kwargs)
        if pending.wait > 0:
            await self._clock().asleep(pending.wait)
        return self._settle(pending)

    def _clock(self) -> Clock:
        clock: Clock = self.clock if self.clock is not None else _REAL
        return clock

    def _body(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": convert_to_openai_messages(messages),
        }
        max_tokens = kwargs.get("max_tokens", kwargs.get("max_completion_tokens", self.max_tokens))
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if stop:
            body["stop"] = stop
        for key in _PASSED:
            if kwargs.get(key) is not None:
                body[key] = kwargs[key]
        return body

    def _admit(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> _Pending:
        """What ``sim.app`` does before its first byte: parse, count, check, admit."""
        state = self.state
        state.note_received()
        try:
            request = parse_chat_request(self._body(messages, stop, kwargs), state)
        except BadRequest as exc:
            if exc.status == 404:
                state.note_not_found()
            else:
                state.note_bad_request(exc.model)
            raise error_for(exc) from None
        model = state.resolve(request.model)
        assert model is not None  # parse_chat_request resolved it
        try:
            prompt = sim_tokens.count_prompt(request.messages, request.tools, model)
        except (ValueError, TypeError) as exc:
            state.note_bad_request(request.model)
            rejection = Rejection(400, error_body(f"Invalid 'messages': {exc}", param="messages"))
            raise error_for(rejection) from None
        length = ANSWER_TOKENS.get()
        if length is not None:
            request = replace(request, reply_tokens=length)
        try:
            state.check_context(request, prompt)
            admission = state.admit(request, prompt)
        except Rejection as exc:
            raise error_for(exc) from None
        admitted = self._clock().now()
        wait, error = self._outcome(admission, model.rpd)
        return _Pending(request, admission, admitted, wait, error)

    def _outcome(self, admission: Admission, rpd: int | None) -> tuple[float, BaseException | None]:
        """How long the client waits, and for what error (``None``: the answer)."""
        fault = admission.fault
        completion = admission.completion
        if fault == "reset":
            return 0.0, SimConnectionError("Connection error.")
        if fault == "timeout":
            limits = [w for w in (admission.hang, self.timeout) if w is not None]
            return (min(limits) if limits else 0.0), SimTimeoutError("Request timed out.")
        if fault in SERVER_FAULTS or fault in RATE_LIMIT_FAULTS:
            refusal = fault_rejection(
                fault,
                completion.model,
                completion.id,
                admission.headers,
                retry_after=admission.retry_after,
                rpd=rpd,
            )
            return 0.0, error_for(refusal)
        wait = admission.ttft + admission.per_token * completion.completion_tokens
        if self.timeout is not None and wait > self.timeout:
            return self.timeout, SimTimeoutError("Request timed out.")
        if fault == "drop":
            return wait, SimConnectionError("peer closed connection without sending complete body")
        if fault == "malformed":
            payload = json.dumps({"id": completion.id, "choices": []})
            try:
                json.loads(payload[: len(payload) // 2])
            except json.JSONDecodeError as exc:
                return wait, exc
        return wait, None

    def _settle(self, pending: _Pending) -> ChatResult:
        if pending.error is not None:
            raise pending.error
        completion = pending.admission.completion
        self.state.note_served(completion)
        if self.on_served is not None:
            model = self.state.resolve(completion.model)
            counted = pending.admission.output_charge
            if model is not None and model.output_counted == "actual":
                counted += completion.completion_tokens
            self.on_served(
                SimCall(
                    completion.model,
                    pending.admitted,
                    self._clock().now(),
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    counted,
                )
            )
        headers = pending.admission.headers if self.include_response_headers else None
        return chat_result(completion, headers)


_REAL = _RealClock()
