"""What an SDK client makes of the simulator's answers: the exceptions and the chat result.

``sim.inprocess`` answers without HTTP, so it builds here what ``ChatOpenAI`` (langchain-openai
over the openai SDK) would have built from the same HTTP answer: for a refusal, LangChain's
standard exception class with the SDK's ``status_code``, ``body``, ``headers`` and message; for
an answer, the ``AIMessage`` with its usage and metadata. An error classifier reading either
cannot tell it from the real client's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llm_routing.sim.wire import Completion, Rejection

__all__ = [
    "SimConnectionError",
    "SimContextOverflowError",
    "SimHTTPError",
    "SimInvalidRequestError",
    "SimNotFoundError",
    "SimRateLimitError",
    "SimServerError",
    "SimTimeoutError",
    "chat_result",
    "error_for",
    "tool_choice_value",
]


class SimHTTPError(Exception):
    """An HTTP error answer, as the openai SDK carries it: status, parsed body, headers."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"status_code": self.status_code, "body": self.body, "headers": self.headers}
        return (_rebuild, (type(self), self.message, state))


def _rebuild(cls: type[SimHTTPError], message: str, state: dict[str, Any]) -> SimHTTPError:
    return cls(message, **state)


class SimRateLimitError(SimHTTPError, ModelRateLimitError):
    """A 429: a window refused, a quota is spent, or a ``429`` fault (``ChatOpenAI``'s class)."""


class SimContextOverflowError(SimHTTPError, ContextOverflowError):
    """The 400 ``context_length_exceeded``: the prompt and ``max_tokens`` exceed the window."""


class SimInvalidRequestError(SimHTTPError, ModelInvalidRequestError):
    """Any other 400: a request the API would refuse whatever the load."""


class SimNotFoundError(SimHTTPError, ModelNotFoundError):
    """The 404 of a model the simulator does not serve."""


class SimServerError(SimHTTPError, ModelAPIError):
    """A ``500``/``502``/``503``/``529`` fault."""


class SimConnectionError(SimHTTPError, ModelConnectionError):
    """A ``reset`` or ``drop`` fault: the connection closed without a (whole) answer."""


class SimTimeoutError(SimHTTPError, ModelTimeoutError):
    """A ``timeout`` fault, or an answer slower than the model's ``timeout``."""


def error_for(rejection: Rejection) -> SimHTTPError:
    """The exception ``ChatOpenAI`` raises for the HTTP answer ``rejection`` stands for.

    The message is the openai SDK's (``Error code: 429 - {body}``); ``body`` is what the SDK
    keeps (the body's ``error`` object when there is one), ``headers`` the response headers.
    """
    status = rejection.status
    body = rejection.body
    kept = body.get("error", body) if isinstance(body, Mapping) else body
    message = f"Error code: {status} - {dict(body)}"
    cls: type[SimHTTPError]
    if status == 429:
        cls = SimRateLimitError
    elif status == 404:
        cls = SimNotFoundError
    elif status >= 500:
        cls = SimServerError
    elif isinstance(kept, Mapping) and kept.get("code") == "context_length_exceeded":
        cls = SimContextOverflowError
    else:
        cls = SimInvalidRequestError
    return cls(message, status_code=status, body=kept, headers=dict(rejection.headers))


def tool_choice_value(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """A ``bind_tools`` choice as OpenAI's ``tool_choice`` (a bare name forces that tool)."""
    if isinstance(choice, dict):
        return choice
    if choice == "any":
        return "required"
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def chat_result(completion: Completion, headers: list[tuple[str, str]] | None) -> ChatResult:
    """The answer as ``ChatOpenAI`` builds it: content or tool calls, usage, metadata."""
    usage = {
        "input_tokens": completion.prompt_tokens,
        "output_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }
    metadata: dict[str, Any] = {
        "model_name": completion.model,
        "finish_reason": completion.finish_reason,
        "id": completion.id,
        "token_usage": completion.usage(),
        "model_provider": "openai",
    }
    if headers is not None:
        metadata["headers"] = dict(headers)
    tool_calls: list[Any] = []
    invalid: list[Any] = []
    for call in completion.tool_calls:
        try:
            tool_calls.append(
                {"name": call.name, "args": json.loads(call.arguments), "id": call.id}
            )
        except json.JSONDecodeError as exc:  # cut at max_tokens, as a real model's may be
            invalid.append(
                {"name": call.name, "args": call.arguments, "id": call.id, "error": str(exc)}
            )
    message = AIMessage(
        content=completion.content or "",
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage,
        response_metadata=metadata,
        id=completion.id,
    )
    info = {"finish_reason": completion.finish_reason}
    return ChatResult(
        generations=[ChatGeneration(message=message, generation_info=info)],
        llm_output={"token_usage": completion.usage(), "model_name": completion.model},
    )
