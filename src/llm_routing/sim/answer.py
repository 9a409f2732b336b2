"""What a simulated model answers: text, JSON or tool calls, cut at the output cap.

Kept apart from ``sim.state`` (which decides whether a request is answered at all) because it
is the one part of a request's life that depends on the request's content rather than its
size: tools, ``response_format``, ``stop`` sequences, and the scripted replies
(``sim.replies``) a model may have for it.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.model import SimModel
from llm_routing.sim.replies import ScriptedCall, pick_reply
from llm_routing.sim.schema_gen import sample_from_schema
from llm_routing.sim.wire import ChatRequest, Completion, ToolCall

__all__ = ["compose"]


def compose(
    model: SimModel, request: ChatRequest, prompt_tokens: int, rng: random.Random, number: int
) -> Completion:
    """The complete answer to ``request``, composed before any byte is sent.

    ``number`` makes the completion and tool-call ids unique within a simulator. The output is
    cut to the smallest of the room left in the window, the model's output cap and
    ``max_tokens``; a ``stop`` sequence ends plain text early.
    """
    encoding = sim_tokens.output_encoding(model.tokenizer)
    cap = max(0, model.context_window - prompt_tokens)
    if model.max_output_tokens is not None:
        cap = min(cap, model.max_output_tokens)
    if request.max_tokens is not None:
        cap = min(cap, request.max_tokens)

    reply = pick_reply(model.replies, request.messages, request.tools, request.tool_choice)
    if reply is not None and reply.tool_calls:
        return _tool_answer(model, request, prompt_tokens, number, reply.calls, cap, scripted=True)

    tool = None if reply is not None else _chosen_tool(request)
    if tool is not None:
        name, parameters = tool
        call = ScriptedCall(name, json.dumps(sample_from_schema(parameters, rng=rng)))
        return _tool_answer(model, request, prompt_tokens, number, (call,), cap)

    text = _content(rng, request, model) if reply is None else str(reply.content)
    text, used, cut = sim_tokens.truncate(text, cap, encoding)
    finish = "length" if cut else "stop"
    if request.stop and request.response_format is None:
        hits = [i for i in (text.find(s) for s in request.stop if s) if i >= 0]
        if hits:
            text = text[: min(hits)]
            used = len(encoding.encode(text, disallowed_special=()))
            finish = "stop"
    return Completion(
        id=f"chatcmpl-sim{number}",
        created=int(time.time()),
        model=model.name,
        content=text,
        tool_calls=(),
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
        completion_tokens=used,
        pieces=sim_tokens.split_tokens(text, encoding),
        scripted=reply is not None,
    )


def _tool_answer(
    model: SimModel,
    request: ChatRequest,
    prompt_tokens: int,
    number: int,
    calls: tuple[ScriptedCall, ...],
    cap: int,
    *,
    scripted: bool = False,
) -> Completion:
    """An answer of tool calls, their arguments cut (in order) at ``cap`` output tokens.

    Usage counts the arguments' tokens, what the model generated. ``finish_reason`` is
    ``"stop"`` when a function was forced by name (as OpenAI answers), else ``"tool_calls"``.
    """
    encoding = sim_tokens.output_encoding(model.tokenizer)
    made: list[ToolCall] = []
    pieces: list[str] = []
    total, cut = 0, False
    for index, call in enumerate(calls):
        arguments, used, cut = sim_tokens.truncate(call.arguments, cap - total, encoding)
        total += used
        split = sim_tokens.split_tokens(arguments, encoding)
        pieces += split
        suffix = "" if len(calls) == 1 else f"_{index}"
        made.append(ToolCall(f"call_sim{number}{suffix}", call.name, arguments, tuple(split)))
        if cut:
            break
    forced = isinstance(request.tool_choice, dict)
    return Completion(
        id=f"chatcmpl-sim{number}",
        created=int(time.time()),
        model=model.name,
        content=None,
        tool_calls=tuple(made),
        finish_reason="length" if cut else ("stop" if forced else "tool_calls"),
        prompt_tokens=prompt_tokens,
        completion_tokens=total,
        pieces=pieces,
        scripted=scripted,
    )


def _content(rng: random.Random, request: ChatRequest, model: SimModel) -> str:
    fmt = request.response_format or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return json.dumps(sample_from_schema(schema, rng=rng))
    if fmt.get("type") == "json_object":
        return json.dumps({"answer": sim_tokens.reply_text(rng, model.reply_tokens)})
    length = request.reply_tokens if request.reply_tokens is not None else model.reply_tokens
    return sim_tokens.reply_text(rng, length)


def _chosen_tool(request: ChatRequest) -> tuple[str, dict[str, Any]] | None:
    """The tool the simulated model calls: the forced one, else the first; or none."""
    if not request.tools or request.tool_choice == "none":
        return None
    by_name = {t["function"]["name"]: t["function"] for t in request.tools}
    choice = request.tool_choice
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        return name, by_name[name].get("parameters") or {}
    last_role = request.messages[-1].get("role")
    if choice != "required" and last_role == "tool":
        return None  # "auto" after a tool result: answer in text, as an agent loop expects
    first = request.tools[0]["function"]
    return first["name"], first.get("parameters") or {}
