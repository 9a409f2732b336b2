"""What the cost tracker reads off a model, its output, an error and a call's config.

Owns the readers only (no pricing, no money): a model's provider and name when the catalogue
does not know it, the provider's reported usage on a message, on an error or its cause chain
(OpenAI's ``LengthFinishReasonError`` carries its completion), the generated text to count when
none was reported, and the run ids of a call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.messages import AIMessage, BaseMessage

from llm_routing._decorator import Call
from llm_routing._facts import (
    DEFAULT_OUTPUT_RESERVE,
    as_messages,
    explicit_max_tokens,
    output_ceiling,
    positive_int,
)
from llm_routing.catalog import ModelSpec, normalize_provider
from llm_routing.cost.pricing import Cost, TokenUsage, parse_usage, requested_service_tier
from llm_routing.tokens import count_tokens

__all__ = [
    "ModelInfo",
    "count_input",
    "estimate_usage",
    "output_text",
    "parsed",
    "reserved_output",
    "run_ids",
    "unknown_cost",
    "usage_from_error",
    "usage_of",
]

_FALLBACK_TOKENIZER = "o200k_base"

logger = logging.getLogger("llm_routing.cost")


def _identify(model: Any) -> tuple[str, str]:
    """A provider and name for a model the catalogue does not know (for records and warnings)."""
    provider: Any = None
    name: Any = None
    get_params = getattr(model, "_get_ls_params", None)
    if callable(get_params):
        try:
            params = get_params()
        except Exception:  # the model's own hook failing must not break pricing
            params = {}
        if isinstance(params, Mapping):
            provider = params.get("ls_provider")
            name = params.get("ls_model_name")
    if not name:
        for attr in ("model_name", "model"):
            value = getattr(model, attr, None)
            if isinstance(value, str) and value:
                name = value
                break
    provider_name = normalize_provider(str(provider)) if provider else "unknown"
    return provider_name, str(name) if name else type(model).__name__


class ModelInfo:
    """What the tracker knows about one model object, looked up once."""

    __slots__ = ("model", "name", "priced", "provider", "service_tier", "spec")

    def __init__(self, model: Any, spec: ModelSpec | None) -> None:
        self.model = model  # held so the id() key cannot be reused while cached
        self.spec = spec
        if spec is not None:
            self.provider, self.name = spec.provider, spec.name
        else:
            self.provider, self.name = _identify(model)
        self.priced = (
            spec is not None
            and spec.price is not None
            and spec.price.input is not None
            and spec.price.output is not None
        )
        # The tier the model object asks for on every call, read once (a pydantic model
        # without the field answers getattr by raising, slowly). Its max_tokens is read once
        # too, by `_facts.explicit_max_tokens`' own per-model cache.
        self.service_tier = requested_service_tier(model)

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.name}"

    @property
    def tokenizer(self) -> ModelSpec | str:
        return self.spec if self.spec is not None else _FALLBACK_TOKENIZER


def usage_of(output: Any) -> Mapping[str, Any] | None:
    """The provider's usage on a message, or ``None`` when it reported none (or only zeros)."""
    usage = getattr(output, "usage_metadata", None)
    if type(usage) is dict:  # LangChain's usage_metadata: no ABC check
        if not usage:
            return None
    elif not isinstance(usage, Mapping) or not usage:
        return None
    if not (usage.get("input_tokens") or usage.get("output_tokens")):
        return None
    return usage


def _usage_from_openai(usage: Any) -> dict[str, Any] | None:
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    reasoning = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
        "input_token_details": {"cache_read": cached or 0},
        "output_token_details": {"reasoning": reasoning or 0},
    }


def usage_from_error(error: BaseException) -> Mapping[str, Any] | None:
    """Usage the provider reported before the call failed, if any.

    OpenAI's ``LengthFinishReasonError`` carries its completion; mapped errors keep the
    original as ``__cause__``, so the chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        usage = usage_of(current)
        if usage is not None:
            return usage
        completion = getattr(current, "completion", None)
        if completion is not None:
            found = _usage_from_openai(getattr(completion, "usage", None))
            if found is not None and (found["input_tokens"] or found["output_tokens"]):
                return found
        current = current.__cause__
    return None


def output_text(output: Any) -> str:
    """Everything the model generated, as text to count (content and tool-call arguments)."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, BaseMessage):
        parts: list[str] = [str(output.text)]
        if isinstance(output, AIMessage):
            for call in output.tool_calls:
                parts.append(call["name"])
                parts.append(json.dumps(call["args"], ensure_ascii=False))
            for bad in output.invalid_tool_calls:
                parts.append(bad.get("name") or "")
                parts.append(bad.get("args") or "")
        return "".join(parts)
    return str(output)


def run_ids(config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    run_id = config.get("run_id")
    callbacks = config.get("callbacks")
    parent = (
        getattr(callbacks, "parent_run_id", None)
        if callbacks is not None and isinstance(callbacks, BaseCallbackManager)
        else None
    )
    return (
        str(run_id) if run_id is not None else None,
        str(parent) if parent is not None else None,
    )


def parsed(usage: Mapping[str, Any] | None) -> TokenUsage | None:
    if usage is None:
        return None
    try:
        return parse_usage(usage)
    except (TypeError, ValueError):
        return None


def unknown_cost(tokens: TokenUsage) -> Cost:
    return Cost.zero() if tokens == TokenUsage() else Cost.unknown()


def count_input(call: Call, info: ModelInfo) -> int:
    """The call's input tokens (messages and tools) with the model's tokenizer."""
    tools = call.invocation_kwargs.get("tools") or None
    return count_tokens(as_messages(call.input), info.tokenizer, tools=tools)


def reserved_output(
    call: Call,
    info: ModelInfo,
    reserve_output: int | None,
    kwargs: Mapping[str, Any] | None = None,
) -> int:
    """Output tokens a call holds: the guard's reserve when it ran, else `_facts.output_ceiling`.

    The hold is a worst case, so it is the ceiling the window check uses too (the call's or
    the model's ``max_tokens``, else ``reserve_output``, else ``min(DEFAULT_OUTPUT_RESERVE,
    spec.max_output_tokens, context_window // 4)``), decided in one place for every decorator.
    ``kwargs``: the call's invocation kwargs when the caller has them already.
    """
    upstream = call.upstream.get("llm_routing.reserved_output_tokens")
    if type(upstream) is int and upstream > 0:  # the guard's, as it always sets it
        return upstream
    if upstream is not None:
        found = positive_int(upstream)
        if found is not None:
            return found
    if kwargs is None:
        kwargs = call.invocation_kwargs
    if info.spec is not None:
        return output_ceiling(info.spec, kwargs, call.model, reserve_output)
    # No spec (no window, no output limit): only the explicit cap or the setting can say.
    explicit = explicit_max_tokens(kwargs, call.model)
    if explicit is not None:
        return explicit
    return reserve_output if reserve_output is not None else DEFAULT_OUTPUT_RESERVE


def estimate_usage(
    call: Call, info: ModelInfo, input_tokens: int | None, output: Any
) -> TokenUsage:
    """Tokens counted locally when the provider reported none (never raises)."""
    prompt = input_tokens
    if prompt is None:
        try:
            prompt = count_input(call, info)
        except Exception as exc:  # an input we cannot count still gets a record
            logger.warning("could not count the input of a %s call: %s", info.key, exc)
            prompt = 0
    try:
        text = output_text(output)
        completion = count_tokens(text, info.tokenizer) if text else 0
    except Exception as exc:  # as above, for the output
        logger.warning("could not count the output of a %s call: %s", info.key, exc)
        completion = 0
    return TokenUsage(input=prompt, output=completion)
