"""The planner's simulated providers, in process and in virtual time (no HTTP).

Exact sliding windows from ``sim.limiter``, a context-window check, a latency model and a log
of what was served; ``SimulatedChatModel`` is the face the guard, scheduler and tracker wrap.
"""

from __future__ import annotations

import contextvars
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from langchain_core.exceptions import ContextOverflowError, ModelRateLimitError
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableConfig

from llm_routing.catalog import ModelSpec
from llm_routing.cli.plan.workload import Arrival
from llm_routing.cost.pricing import price
from llm_routing.sim.latency import Latency
from llm_routing.sim.limiter import SlidingWindowLimiter

_ANSWER_SHARE = (0.25, 1.0)  # an answer without output_tokens: this share of max_tokens

#: The request being answered, for the simulated provider (set per request task).
CURRENT: contextvars.ContextVar[Arrival | None] = contextvars.ContextVar(
    "llm_routing_simulate_arrival", default=None
)


class _RateLimited(ModelRateLimitError):
    """The simulated provider's 429, with the Retry-After a real one sends."""

    def __init__(self, message: str, retry_after_s: float, kind: str) -> None:
        super().__init__(message)
        self.status_code = 429
        self.kind = kind
        self.headers = {"retry-after": f"{max(0.0, retry_after_s):.3f}"}


class _BadRequest(ValueError):
    """The simulated provider's 400 for a request no model of this kind accepts."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.status_code = 400


@dataclass(slots=True)
class _Served:
    """One answered call: when it was admitted and answered, its tokens and what the limits saw.

    ``counted_output`` is what the provider's TPM window counted (OpenAI counts ``max_tokens``
    at admission, the others the real output), so the report can set the busiest 60 s of
    counted tokens against the limit that bounds exactly them.
    """

    t: float
    input_tokens: int
    output_tokens: int
    cost: Decimal | None
    admitted: float = 0.0
    counted_output: int = 0


class Provider:
    """One simulated model: exact sliding windows, a window check, a latency model, a log."""

    def __init__(
        self,
        spec: ModelSpec,
        limits: Mapping[str, int | None],
        latency: Latency,
        seed: int,
        clock: Any,
    ) -> None:
        self.spec = spec
        self.limits = {k: v for k, v in limits.items() if v is not None}
        self.limiter = SlidingWindowLimiter(clock=clock.now, **limits)
        self.latency = latency
        self.clock = clock
        self.rng = random.Random(f"{seed}:{spec.key}")
        # OpenAI counts max_tokens against TPM at admission; the others count real output.
        self.counts_max_tokens = spec.provider == "openai"
        self.served: list[_Served] = []
        self.rate_limited = {"requests": 0, "tokens": 0}
        self.context_overflows = 0
        self.bad_requests = 0
        self._prompt_counts: dict[str, int] = {}

    def prompt_tokens(self, input: Any) -> int:
        """The prompt's tokens, counted as the guard counts them (cached: prompts repeat)."""
        from llm_routing.tokens import count_tokens

        if not isinstance(input, str):
            return count_tokens(input, self.spec)
        cached = self._prompt_counts.get(input)
        if cached is None:
            cached = count_tokens([("user", input)], self.spec)
            if len(self._prompt_counts) < 4096:
                self._prompt_counts[input] = cached
        return cached

    async def answer(self, input: Any, max_tokens: int | None) -> AIMessage:
        """Check the window and the limits, sleep the latency, answer with usage."""
        spec = self.spec
        arrival = CURRENT.get()
        prompt = self.prompt_tokens(input)
        cap = max_tokens if max_tokens is not None else (arrival.max_tokens if arrival else 256)
        if spec.max_output_tokens is not None and cap > spec.max_output_tokens:
            self.bad_requests += 1
            raise _BadRequest(
                f"max_tokens is too large: {cap}. {spec.key} supports at most "
                f"{spec.max_output_tokens} completion tokens."
            )
        if prompt + cap > spec.context_window:
            self.context_overflows += 1
            raise ContextOverflowError(
                f"{spec.key}: maximum context length is {spec.context_window} tokens; the request "
                f"needs {prompt + cap} ({prompt} in the messages, {cap} in the completion)"
            )
        if arrival is not None and arrival.output_tokens is not None:
            output = min(arrival.output_tokens, cap)
        else:
            low = max(1, math.ceil(cap * _ANSWER_SHARE[0]))
            output = self.rng.randint(min(low, cap), cap)
        decision = self.limiter.acquire(prompt, cap if self.counts_max_tokens else output)
        if not decision.admitted:
            binding = decision.binding
            kind = binding.kind if binding is not None else "requests"
            self.rate_limited[kind] += 1
            label = binding.label if binding is not None else "rate limit"
            raise _RateLimited(
                f"Rate limit reached for {spec.key} on {label}. Please try again in "
                f"{decision.retry_after:.3f}s.",
                decision.retry_after,
                kind,
            )
        admitted = self.clock.now()
        ttft, per_token = self.latency.sample(self.rng)
        await self.clock.asleep(ttft + per_token * output)
        usage = {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}
        cost = price(usage, spec).total
        counted = cap if self.counts_max_tokens else output
        self.served.append(_Served(self.clock.now(), prompt, output, cost, admitted, counted))
        return AIMessage(content="ok", usage_metadata=usage)


class SimulatedChatModel(Runnable[Any, AIMessage]):
    """The chat model face of a `Provider`: what the guard, scheduler and tracker wrap.

    A bare ``Runnable`` rather than a ``BaseChatModel``: LangChain's callback plumbing would
    double the cost of every simulated call and changes nothing the decorators see (the
    catalogue identifies the model by ``_get_ls_params``, usage comes as ``usage_metadata``).
    """

    def __init__(self, spec: ModelSpec, provider: Provider | None) -> None:
        self.model_name = spec.name
        self.ls_provider = spec.provider
        self.provider = provider

    def __repr__(self) -> str:
        return f"SimulatedChatModel({self.ls_provider}:{self.model_name})"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        return {"ls_provider": self.ls_provider, "ls_model_name": self.model_name}

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        """Not available: the simulated models answer in virtual time, on an event loop."""
        raise NotImplementedError(
            "the simulated models answer in virtual time, on an event loop: use ainvoke"
        )

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AIMessage:
        """Answer after the provider's latency, or raise its 429 / 400."""
        if self.provider is None:
            raise RuntimeError(f"{self!r} is a placeholder for checking a config; it never answers")
        return await self.provider.answer(input, kwargs.get("max_tokens"))
