"""Parsing a ``/v1/chat/completions`` body the way OpenAI does, and its 400s.

Everything here runs before admission and answers with OpenAI's own wording, parameter and code
(``invalid_type``, ``missing_required_parameter``, ``model_not_found``...), so clients and
error classifiers see what the real API sends. Kept apart from ``sim.app`` (HTTP framing and
faults): validation is a long list of rules, the endpoint a short life cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llm_routing.sim.state import SimState
from llm_routing.sim.wire import ChatRequest, Rejection, error_body

__all__ = ["BadRequest", "not_found_body", "parse_chat_request"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def not_found_body(name: str) -> dict[str, Any]:
    """OpenAI's 404 body for a model it does not serve (``GET /v1/models/{name}`` too)."""
    return error_body(
        f"The model `{name}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


class BadRequest(Rejection):
    """A request OpenAI would refuse before admission (400, or 404 for an unknown model).

    Carries the model it named, when known, so the 400 is counted against that model.
    """

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        model: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(status, error_body(message, param=param, code=code))
        self.model = model


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_type(param: str, expected: str, value: Any, model: str | None) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
        model=model,
    )


def parse_chat_request(data: Any, state: SimState) -> ChatRequest:
    """Validate a decoded request body the way OpenAI does (400s), resolving the model (404)."""
    if not isinstance(data, dict):
        raise _invalid_type("body", "an object", data, None)
    name = data.get("model")
    if name is None:
        raise BadRequest(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if not isinstance(name, str):
        raise _invalid_type("model", "a string", name, None)
    model = state.resolve(name)
    if model is None:
        raise BadRequest(
            not_found_body(name)["error"]["message"],
            param="model",
            code="model_not_found",
            status=404,
        )
    m = model.name
    state.note_received(m)
    messages = _messages(data.get("messages", _MISSING), m)

    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean", stream, m)
    include_usage = False
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _invalid_type("stream_options", "an object", options, m)
        if not stream:
            raise BadRequest(
                "Invalid value for 'stream_options': Setting stream_options is only allowed when "
                "'stream' is enabled.",
                param="stream_options",
                code="invalid_value",
                model=m,
            )
        include_usage = bool(options.get("include_usage", False))

    max_tokens = _max_tokens(data, model.max_output_tokens, m)
    n = data.get("n", 1)
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int):
            raise _invalid_type("n", "an integer", n, m)
        if n != 1:
            raise BadRequest(
                f"Invalid value for 'n': the simulator serves one choice per request (n=1), got "
                f"n={n}. Send separate requests instead.",
                param="n",
                code="invalid_value",
                model=m,
            )
    stop = _stop(data.get("stop"), m)
    tools = _tools(data.get("tools"), m)
    tool_choice = _tool_choice(data.get("tool_choice"), tools, m)
    response_format = _response_format(data.get("response_format"), m)
    return ChatRequest(
        model=m,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        stop=stop,
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
    )


_MISSING: Any = object()


def _messages(value: Any, m: str) -> list[dict[str, Any]]:
    if value is _MISSING or value is None:
        raise BadRequest(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
            model=m,
        )
    if not isinstance(value, list):
        raise _invalid_type("messages", "an array", value, m)
    if not value:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
            model=m,
        )
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid_type(where, "an object", message, m)
        role = message.get("role")
        if role not in _ROLES:
            raise BadRequest(
                f"Invalid value for '{where}.role': expected one of {', '.join(sorted(_ROLES))}, "
                f"got {role!r}.",
                param=f"{where}.role",
                code="invalid_value",
                model=m,
            )
        content = message.get("content")
        if content is None and role not in ("assistant", "function"):
            raise BadRequest(
                f"Missing required parameter: '{where}.content'.",
                param=f"{where}.content",
                code="missing_required_parameter",
                model=m,
            )
        if content is not None and not isinstance(content, str | list):
            raise _invalid_type(f"{where}.content", "a string or array", content, m)
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _invalid_type(f"{where}.content[{j}]", "an object with a 'type'", part, m)
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise BadRequest(
                f"Missing required parameter: '{where}.tool_call_id'.",
                param=f"{where}.tool_call_id",
                code="missing_required_parameter",
                model=m,
            )
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise _invalid_type(f"{where}.tool_calls", "an array", calls, m)
    return value


def _max_tokens(data: Mapping[str, Any], cap: int | None, m: str) -> int | None:
    given = {k: data[k] for k in ("max_completion_tokens", "max_tokens") if data.get(k) is not None}
    if len(given) == 2:
        raise BadRequest(
            "max_tokens and max_completion_tokens cannot both be set; use max_completion_tokens.",
            param="max_tokens",
            code="invalid_value",
            model=m,
        )
    if not given:
        return None
    param, value = next(iter(given.items()))
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(param, "an integer", value, m)
    if value < 1:
        raise BadRequest(
            f"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got "
            f"{value} instead.",
            param=param,
            code="integer_below_min_value",
            model=m,
        )
    if cap is not None and value > cap:
        raise BadRequest(
            f"{param} is too large: {value}. This model supports at most {cap} completion "
            f"tokens, whereas you provided {value}.",
            param=param,
            code="invalid_value",
            model=m,
        )
    return value


def _stop(value: Any, m: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _invalid_type("stop", "a string or an array of strings", value, m)
    if len(value) > 4:
        raise BadRequest(
            f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got "
            f"an array with length {len(value)} instead.",
            param="stop",
            code="array_above_max_length",
            model=m,
        )
    return tuple(value)


def _tools(value: Any, m: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid_type("tools", "an array", value, m)
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise BadRequest(
                f"Invalid value for '{where}': expected a function tool "
                "({'type': 'function', 'function': {...}}).",
                param=where,
                code="invalid_value",
                model=m,
            )
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(
                f"Missing required parameter: '{where}.function.name'.",
                param=f"{where}.function.name",
                code="missing_required_parameter",
                model=m,
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _invalid_type(f"{where}.function.parameters", "an object", parameters, m)
    return value


def _tool_choice(
    value: Any, tools: Sequence[Mapping[str, Any]], m: str
) -> str | dict[str, Any] | None:
    if value is None:
        return None
    if not tools:
        raise BadRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
            "'tools' are specified.",
            param="tool_choice",
            code="invalid_value",
            model=m,
        )
    if value in ("none", "auto", "required"):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        name = value["function"].get("name")
        if name in {t["function"]["name"] for t in tools}:
            return value
        raise BadRequest(
            f"Invalid value for 'tool_choice': function {name!r} not found in 'tools'.",
            param="tool_choice",
            code="invalid_value",
            model=m,
        )
    raise BadRequest(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        param="tool_choice",
        code="invalid_value",
        model=m,
    )


def _response_format(value: Any, m: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid_type("response_format", "an object", value, m)
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return value
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise BadRequest(
                "Missing required parameter: 'response_format.json_schema'.",
                param="response_format.json_schema",
                code="missing_required_parameter",
                model=m,
            )
        return value
    raise BadRequest(
        f"Invalid value for 'response_format.type': {kind!r}; expected 'text', "
        "'json_object' or 'json_schema'.",
        param="response_format.type",
        code="invalid_value",
        model=m,
    )
