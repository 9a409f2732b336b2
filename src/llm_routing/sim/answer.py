"""What a simulated model answers: text, JSON or one tool call, cut at the output cap.

Kept apart from ``sim.state`` (which decides whether a request is answered at all) because it
is the one part of a request's life that depends on the request's content rather than its
size: tools, ``response_format``, ``stop`` sequences.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.model import SimModel
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

    tool = _chosen_tool(request)
    if tool is not None:
        name, parameters, forced = tool
        arguments = json.dumps(sample_from_schema(parameters, rng=rng))
        arguments, used, cut = sim_tokens.truncate(arguments, cap, encoding)
        return Completion(
            id=f"chatcmpl-sim{number}",
            created=int(time.time()),
            model=model.name,
            content=None,
            tool_call=ToolCall(f"call_sim{number}", name, arguments),
            finish_reason="length" if cut else ("stop" if forced else "tool_calls"),
            prompt_tokens=prompt_tokens,
            completion_tokens=used,
            pieces=sim_tokens.split_tokens(arguments, encoding),
        )

    text = _content(rng, request, model)
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
        tool_call=None,
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
        completion_tokens=used,
        pieces=sim_tokens.split_tokens(text, encoding),
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


def _chosen_tool(request: ChatRequest) -> tuple[str, dict[str, Any], bool] | None:
    """The tool the simulated model calls: the forced one, else the first; or none."""
    if not request.tools or request.tool_choice == "none":
        return None
    by_name = {t["function"]["name"]: t["function"] for t in request.tools}
    choice = request.tool_choice
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        return name, by_name[name].get("parameters") or {}, True
    last_role = request.messages[-1].get("role")
    if choice != "required" and last_role == "tool":
        return None  # "auto" after a tool result: answer in text, as an agent loop expects
    first = request.tools[0]["function"]
    return first["name"], first.get("parameters") or {}, False
