"""The simulator's shared state: per-model limiters, quotas, fault plans, counters, timelines.

Owns every decision about a request that has been parsed (admit, 429, quota, fault) and the
statistics; knows nothing about HTTP framing, which is ``sim.app``. What an admitted request
answers is ``sim.answer``; the values and bodies it exchanges are ``sim.wire`` (re-exported
here, where they used to live).
All mutation happens under one lock, so ``stats()``/``reset()`` may be called from any thread.
About 500 lines, and whole: ``SimState`` is one lock around one set of per-model runtimes, and
what is left (admission, its 429s, the counters and ``stats()``) all reads and writes them.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.answer import compose
from llm_routing.sim.faults import FaultKind, FaultPlan
from llm_routing.sim.limiter import Decision, ProviderLimiter, per_second_share
from llm_routing.sim.model import SimModel, check_group_agrees
from llm_routing.sim.wire import (
    QUOTA_MESSAGE,
    RATE_LIMIT_DOCS,
    ChatRequest,
    Completion,
    Rejection,
    ToolCall,
    daily_quota_body,
    error_body,
    format_duration,
    ratelimit_headers,
    spend_limit_body,
)

__all__ = [
    "CAUSES",
    "QUOTA_MESSAGE",
    "Admission",
    "ChatRequest",
    "Completion",
    "Rejection",
    "SimState",
    "ToolCall",
    "daily_quota_body",
    "error_body",
    "format_duration",
    "spend_limit_body",
]

#: The causes ``stats()["rate_limited_by_cause"]`` counts 429s by: a per-minute window (the
#: sliding log or the minute bucket), the per-second share of a quantized limit, a day window,
#: an Anthropic-shaped spend cap, a Gemini-shaped daily quota, OpenAI's ``insufficient_quota``,
#: and ``429`` faults injected on purpose.
CAUSES = (
    "minute",
    "per_second",
    "day",
    "spend_limit",
    "daily_quota",
    "insufficient_quota",
    "injected",
)

#: Events kept per model timeline (the newest): enough for the benchmarks' 10,000-request runs,
#: bounded so a simulator serving for days does not grow without end.
TIMELINE_EVENTS = 100_000


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted request: what to answer, how slowly, and whether to fail it on purpose."""

    completion: Completion
    fault: FaultKind | None
    drop_after: int
    hang: float | None
    ttft: float
    per_token: float
    headers: list[tuple[str, str]]
    retry_after: float | None = None


def _empty_counters() -> dict[str, Any]:
    return {
        "requests_received": 0,
        "requests_served": 0,
        "rate_limited": {"requests": 0, "tokens": 0},
        "rate_limited_by_cause": dict.fromkeys(CAUSES, 0),
        "insufficient_quota": 0,
        "context_length_exceeded": 0,
        "bad_requests": 0,
        "faults": {},
        "tokens_admitted": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
    }


class _ModelRuntime:
    """Mutable per-model state (guarded by ``SimState``'s lock)."""

    def __init__(self, model: SimModel, seed: int, limiter: ProviderLimiter) -> None:
        self.model = model
        self.limiter = limiter  # shared by every model of a limit group
        base = seed * 1_000_003 + zlib.crc32(model.name.encode())
        self.fault_rng = random.Random(base)
        self.latency_rng = random.Random(base + 1)
        self.content_rng = random.Random(base + 2)
        self.faults = model.faults
        self.fault_counter = 0
        self.spent_tokens = 0
        self.spent_requests = 0
        self.counters = _empty_counters()
        self.timeline: deque[tuple[float, str, int]] = deque(maxlen=TIMELINE_EVENTS)

    def set_faults(self, plan: FaultPlan) -> None:
        self.faults = plan
        self.fault_counter = 0


class SimState:
    """Everything the server decides and counts, for a fixed set of models.

    ``clock`` drives the rate windows and the timelines (virtual time in tests); the latency
    model always sleeps in real time.
    """

    def __init__(
        self,
        models: Iterable[SimModel],
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._models = tuple(models)
        if not self._models:
            raise ValueError("SimState needs at least one SimModel (models=[SimModel(name=...)])")
        self._lookup: dict[str, str] = {}
        groups: dict[str, SimModel] = {}
        for model in self._models:
            if not isinstance(model, SimModel):
                raise TypeError(f"models must be SimModel instances, got {model!r}")
            if model.limit_group is not None:
                first = groups.setdefault(model.limit_group, model)
                check_group_agrees(first, model)
            for alias in (model.name, *model.aliases):
                owner = self._lookup.get(alias)
                if owner is not None and owner != model.name:
                    raise ValueError(
                        f"model name or alias {alias!r} is used by both {owner!r} and "
                        f"{model.name!r}; give each simulated model distinct names"
                    )
                self._lookup[alias] = model.name
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self.seed = seed
        self.clock = clock
        self._lock = threading.Lock()
        self._ids = 0
        self._reset_locked()

    # -- lifecycle -----------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the state at construction: empty windows, quotas, counters, initial faults."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        shared: dict[str, ProviderLimiter] = {}
        self._runtimes = {}
        for m in self._models:
            if m.limit_group is None:
                limiter = m.limiter(self.clock)
            else:
                limiter = shared.get(m.limit_group) or m.limiter(self.clock)
                shared[m.limit_group] = limiter
            self._runtimes[m.name] = _ModelRuntime(m, self.seed, limiter)
        self._global = {"requests_received": 0, "bad_requests": 0, "not_found": 0}
        self._t0 = self.clock()

    def reset_counters(self) -> None:
        """Zero the counters and timelines only: windows, quotas and fault plans stay as they are.

        For a test that first brings a model into a state (a spent day, a full window) and then
        wants to count only what the code under test sends.
        """
        with self._lock:
            for rt in self._runtimes.values():
                rt.counters = _empty_counters()
                rt.timeline.clear()
            self._global = {"requests_received": 0, "bad_requests": 0, "not_found": 0}

    def set_faults(self, model: str, faults: FaultPlan | Mapping[int, str | int] | None) -> None:
        """Replace a model's fault plan (``None`` clears it); its request numbering restarts."""
        if faults is None:
            plan = FaultPlan()
        elif isinstance(faults, FaultPlan):
            plan = faults
        elif isinstance(faults, Mapping):
            plan = FaultPlan(schedule={n: str(k) for n, k in faults.items()})
        else:
            raise TypeError(
                f"faults must be a FaultPlan, a {{request number: kind}} mapping or None, "
                f"got {faults!r}"
            )
        with self._lock:
            self._runtime(model).set_faults(plan)

    def warm_up(self) -> None:
        """Load every tokenizer the models need now, not inside the first request.

        Loading an encoding takes a few hundred milliseconds of CPU; done lazily it would stall
        the event loop while a burst of clients is connecting (their SYNs then get dropped and
        retried seconds later).
        """
        probe = [{"role": "user", "content": "warm up"}]
        for model in self._models:
            sim_tokens.output_encoding(model.tokenizer)
            sim_tokens.count_prompt(probe, None, model)

    # -- lookups -------------------------------------------------------------------------

    @property
    def models(self) -> tuple[SimModel, ...]:
        """The simulated models, in construction order."""
        return self._models

    def resolve(self, name: str) -> SimModel | None:
        """The model a request's ``model`` field names (by name or alias), if any."""
        canonical = self._lookup.get(name)
        return None if canonical is None else self._runtimes[canonical].model

    def _runtime(self, name: str) -> _ModelRuntime:
        canonical = self._lookup.get(name)
        if canonical is None:
            known = ", ".join(m.name for m in self._models)
            raise ValueError(f"unknown simulated model {name!r}; known: {known}")
        return self._runtimes[canonical]

    # -- counting ------------------------------------------------------------------------

    def _event(self, rt: _ModelRuntime, event: str, tokens: int) -> None:
        rt.timeline.append((round(self.clock() - self._t0, 6), event, tokens))

    def note_received(self, model: str | None = None) -> None:
        """Count an incoming request (and, once its model is known, against that model)."""
        with self._lock:
            if model is None:
                self._global["requests_received"] += 1
            else:
                self._runtime(model).counters["requests_received"] += 1

    def note_bad_request(self, model: str | None) -> None:
        """Count a 400 that is not a context overflow."""
        with self._lock:
            self._global["bad_requests"] += 1
            if model is not None:
                rt = self._runtime(model)
                rt.counters["bad_requests"] += 1
                self._event(rt, "bad_request", 0)

    def note_not_found(self) -> None:
        """Count a request for a model the simulator does not serve."""
        with self._lock:
            self._global["not_found"] += 1

    def note_served(self, completion: Completion) -> None:
        """Count a fully answered request; charge its output where output counts at completion."""
        with self._lock:
            rt = self._runtime(completion.model)
            rt.limiter.record_output(completion.completion_tokens)
            rt.counters["requests_served"] += 1
            rt.counters["prompt_tokens"] += completion.prompt_tokens
            rt.counters["completion_tokens"] += completion.completion_tokens
            self._event(rt, "served", completion.prompt_tokens + completion.completion_tokens)

    # -- decisions -----------------------------------------------------------------------

    def check_context(self, request: ChatRequest, prompt_tokens: int) -> None:
        """Raise the 400 ``context_length_exceeded`` OpenAI sends when the window is too small."""
        rt = self._runtime(request.model)
        model = rt.model
        window = model.context_window
        completion = request.max_tokens or 0
        if prompt_tokens + completion <= window:
            return
        if request.max_tokens is None:
            message = (
                f"This model's maximum context length is {window} tokens. However, your "
                f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the "
                "messages."
            )
        else:
            message = (
                f"This model's maximum context length is {window} tokens. However, you requested "
                f"{prompt_tokens + completion} tokens ({prompt_tokens} in the messages, "
                f"{completion} in the completion). Please reduce the length of the messages or "
                "completion."
            )
        # OpenAI's current wording too: langchain-openai (with openai>=2) recognises only it,
        # because the SDK no longer puts the error code into the exception text.
        message += f" Input tokens exceed the configured limit of {window} tokens."
        with self._lock:
            rt.counters["context_length_exceeded"] += 1
            self._event(rt, "context_length_exceeded", prompt_tokens + completion)
            headers = ratelimit_headers(rt.limiter.state(), model.requests_header)
        raise Rejection(
            400,
            error_body(message, param="messages", code="context_length_exceeded"),
            headers,
        )

    def admit(self, request: ChatRequest, prompt_tokens: int) -> Admission:
        """Quota, then rate limits, then faults; compose the answer of an admitted request.

        Raises ``Rejection`` (429) when the quota is spent or a window is full. What the
        windows are charged with follows the model (``SimModel.tokens_counted``,
        ``output_counted``, ``failed_requests_count``).
        """
        with self._lock:
            rt = self._runtime(request.model)
            model = rt.model
            reserve = request.max_tokens
            if reserve is None:
                reserve = model.default_output_reserve
            # What the token windows are charged at admission. The simulator serves no prompt
            # cache, so "uncached input + cache writes" is the whole prompt.
            output_charge = reserve if model.tokens_counted == "input+max_output" else 0
            charge = prompt_tokens + output_charge
            if self._quota_spent(rt):
                raise self._quota_rejection(rt, charge)
            decision = rt.limiter.acquire(
                prompt_tokens, output_charge, count_refusal=model.failed_requests_count
            )
            headers = ratelimit_headers(decision.windows, model.requests_header)
            if not decision.admitted:
                raise self._rate_limited(rt, decision, headers)
            self._ids += 1
            completion = compose(model, request, prompt_tokens, rt.content_rng, self._ids)
            rt.counters["tokens_admitted"] += charge
            rt.spent_requests += 1
            rt.spent_tokens += completion.prompt_tokens + completion.completion_tokens
            rt.fault_counter += 1
            fault = rt.faults.draw(rt.fault_counter, rt.fault_rng)
            if fault is not None:
                faults = rt.counters["faults"]
                faults[fault] = faults.get(fault, 0) + 1
                self._event(rt, f"fault:{fault}", charge)
                cause = _FAULT_CAUSES.get(fault)
                if cause is not None:
                    rt.counters["rate_limited_by_cause"][cause] += 1
                if fault in ("drop", "malformed"):
                    # The answer was generated (then cut on the wire): its output counts.
                    rt.limiter.record_output(completion.completion_tokens)
            ttft, per_token = model.latency.sample(rt.latency_rng)
            return Admission(
                completion=completion,
                fault=fault,
                drop_after=rt.faults.drop_after,
                hang=rt.faults.hang,
                retry_after=rt.faults.retry_after,
                ttft=ttft,
                per_token=per_token,
                headers=headers,
            )

    def _quota_rejection(self, rt: _ModelRuntime, charge: int) -> Rejection:
        model = rt.model
        headers = ratelimit_headers(rt.limiter.state(), model.requests_header)
        if model.quota_error == "spend_limit":
            rt.counters["rate_limited_by_cause"]["spend_limit"] += 1
            self._event(rt, "spend_limit", charge)
            self._ids += 1
            return Rejection(429, spend_limit_body(f"req_sim{self._ids}"), headers)
        if model.quota_error == "daily_quota":
            rt.counters["rate_limited_by_cause"]["daily_quota"] += 1
            self._event(rt, "daily_quota", charge)
            return Rejection(429, daily_quota_body(model.name, model.quota_requests), headers)
        rt.counters["insufficient_quota"] += 1
        rt.counters["rate_limited_by_cause"]["insufficient_quota"] += 1
        self._event(rt, "insufficient_quota", charge)
        return Rejection(
            429,
            error_body(QUOTA_MESSAGE, "insufficient_quota", code="insufficient_quota"),
            headers,
        )

    @staticmethod
    def _quota_spent(rt: _ModelRuntime) -> bool:
        # Like a prepaid balance: checked before the call, charged with the real usage after,
        # so the last admitted request may overdraw it.
        model = rt.model
        if model.quota_requests is not None and rt.spent_requests >= model.quota_requests:
            return True
        return model.quota_tokens is not None and rt.spent_tokens >= model.quota_tokens

    def _rate_limited(
        self, rt: _ModelRuntime, decision: Decision, headers: list[tuple[str, str]]
    ) -> Rejection:
        binding = decision.binding
        assert binding is not None  # a refused decision always names its window
        rt.counters["rate_limited"][binding.kind] += 1
        cause = decision.cause or binding.cause
        rt.counters["rate_limited_by_cause"][cause] += 1
        self._event(rt, f"rate_limited:{binding.kind}", binding.requested)
        where = f"{rt.model.name} in organization org-sim on {binding.label}"
        if binding.cause == "per_second":
            rate, _ = per_second_share(binding.limit)
            where += f" (enforced per second: {_share_text(rate)} per 1s)"
        if math.isinf(decision.retry_after):
            message = (
                f"Request too large for {where}: Limit {binding.limit}, Requested "
                f"{binding.requested}. The input or output tokens must be reduced in order to "
                f"run successfully. {RATE_LIMIT_DOCS}"
            )
        else:
            wait = decision.retry_after
            message = (
                f"Rate limit reached for {where}: Limit {binding.limit}, Used {binding.used}, "
                f"Requested {binding.requested}. Please try again in {format_duration(wait)}. "
                f"{RATE_LIMIT_DOCS}"
            )
            headers = [
                ("retry-after", str(max(1, math.ceil(wait - 1e-9)))),
                ("retry-after-ms", str(max(1, math.ceil(wait * 1000 - 1e-6)))),
                *headers,
            ]
        return Rejection(
            429,
            error_body(message, binding.kind, code="rate_limit_exceeded"),
            headers,
        )

    # -- reporting -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot: totals, then ``models[name]`` with counters and timeline."""
        with self._lock:
            models: dict[str, Any] = {}
            totals = _empty_counters()
            totals.update(self._global)
            for name, rt in self._runtimes.items():
                counters = json.loads(json.dumps(rt.counters))
                m = rt.model
                models[name] = {
                    **counters,
                    "enforcement": {
                        "mode": m.enforcement,
                        "failed_requests_count": m.failed_requests_count,
                        "tokens_counted": m.tokens_counted,
                        "output_counted": m.output_counted,
                        "limit_group": m.limit_group,
                    },
                    "limits": {k: v for k, v in rt.model.limits().items() if v is not None},
                    "context_window": rt.model.context_window,
                    "quota_spent": {"tokens": rt.spent_tokens, "requests": rt.spent_requests},
                    "timeline": [list(e) for e in rt.timeline],
                }
                for key in (
                    "requests_served",
                    "insufficient_quota",
                    "context_length_exceeded",
                    "tokens_admitted",
                    "prompt_tokens",
                    "completion_tokens",
                ):
                    totals[key] += counters[key]
                for kind, count in counters["rate_limited"].items():
                    totals["rate_limited"][kind] += count
                for cause, count in counters["rate_limited_by_cause"].items():
                    totals["rate_limited_by_cause"][cause] += count
                for kind, count in counters["faults"].items():
                    totals["faults"][kind] = totals["faults"].get(kind, 0) + count
            totals["uptime"] = round(self.clock() - self._t0, 6)
            totals["models"] = models
            return totals


_FAULT_CAUSES: dict[str, str] = {
    "429": "injected",
    "quota": "insufficient_quota",
    "spend_limit": "spend_limit",
    "daily_quota": "daily_quota",
}


def _share_text(rate: Fraction) -> str:
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.6g}"
