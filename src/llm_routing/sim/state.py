"""The simulator's shared state: per-model limiters, quotas, fault plans, counters, timelines.

Owns every decision about a request that has been parsed (admit, 429, quota, fault) and the
statistics; knows nothing about HTTP framing, which is ``sim.app``. What an admitted request
answers is ``sim.answer``; the values and bodies it exchanges are ``sim.wire`` (re-exported
here, where they used to live).
All mutation happens under one lock, so ``stats()``/``reset()`` may be called from any thread.
The per-model runtimes and counters (and ``stats()``'s arithmetic) are ``sim.counters``; the
bodies of refusals ``sim.refusals``, shared with the in-process client ``sim.inprocess``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_routing.sim import tokens as sim_tokens
from llm_routing.sim.answer import compose
from llm_routing.sim.counters import (
    CAUSES,
    FAULT_CAUSES,
    TIMELINE_EVENTS,
    ModelRuntime,
    empty_counters,
    snapshot,
)
from llm_routing.sim.faults import FaultKind, FaultPlan
from llm_routing.sim.limiter import Decision, ProviderLimiter
from llm_routing.sim.model import SimModel, check_group_agrees
from llm_routing.sim.refusals import context_rejection, quota_rejection, rate_limit_rejection
from llm_routing.sim.wire import (
    QUOTA_MESSAGE,
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
    "TIMELINE_EVENTS",
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
    #: Output tokens the token windows were charged at admission (``max_tokens`` where
    #: ``tokens_counted`` is ``"input+max_output"``, else 0), for a client that reports what
    #: the limits counted.
    output_charge: int = 0


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
            self._runtimes[m.name] = ModelRuntime(m, self.seed, limiter)
        self._global = {"requests_received": 0, "bad_requests": 0, "not_found": 0}
        self._t0 = self.clock()

    def reset_counters(self) -> None:
        """Zero the counters and timelines only: windows, quotas and fault plans stay as they are.

        For a test that first brings a model into a state (a spent day, a full window) and then
        wants to count only what the code under test sends.
        """
        with self._lock:
            for rt in self._runtimes.values():
                rt.counters = empty_counters()
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

    def _runtime(self, name: str) -> ModelRuntime:
        canonical = self._lookup.get(name)
        if canonical is None:
            known = ", ".join(m.name for m in self._models)
            raise ValueError(f"unknown simulated model {name!r}; known: {known}")
        return self._runtimes[canonical]

    # -- counting ------------------------------------------------------------------------

    def _event(self, rt: ModelRuntime, event: str, tokens: int) -> None:
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
            if completion.scripted:
                rt.counters["scripted_replies"] += 1
            self._event(rt, "served", completion.prompt_tokens + completion.completion_tokens)

    # -- decisions -----------------------------------------------------------------------

    def check_context(self, request: ChatRequest, prompt_tokens: int) -> None:
        """Raise the 400 ``context_length_exceeded`` OpenAI sends when the window is too small."""
        rt = self._runtime(request.model)
        completion = request.max_tokens or 0
        if prompt_tokens + completion <= rt.model.context_window:
            return
        with self._lock:
            rt.counters["context_length_exceeded"] += 1
            self._event(rt, "context_length_exceeded", prompt_tokens + completion)
            headers = ratelimit_headers(rt.limiter.state(), rt.model.requests_header)
        raise context_rejection(rt.model.context_window, prompt_tokens, request.max_tokens, headers)

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
                cause = FAULT_CAUSES.get(fault)
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
                output_charge=output_charge,
            )

    def _quota_rejection(self, rt: ModelRuntime, charge: int) -> Rejection:
        model = rt.model
        headers = ratelimit_headers(rt.limiter.state(), model.requests_header)
        if model.quota_error == "insufficient_quota":
            rt.counters["insufficient_quota"] += 1
        rt.counters["rate_limited_by_cause"][model.quota_error] += 1
        self._event(rt, model.quota_error, charge)
        if model.quota_error == "spend_limit":
            self._ids += 1
        return quota_rejection(model, f"req_sim{self._ids}", headers)

    @staticmethod
    def _quota_spent(rt: ModelRuntime) -> bool:
        # Like a prepaid balance: checked before the call, charged with the real usage after,
        # so the last admitted request may overdraw it.
        model = rt.model
        if model.quota_requests is not None and rt.spent_requests >= model.quota_requests:
            return True
        return model.quota_tokens is not None and rt.spent_tokens >= model.quota_tokens

    def _rate_limited(
        self, rt: ModelRuntime, decision: Decision, headers: list[tuple[str, str]]
    ) -> Rejection:
        binding = decision.binding
        assert binding is not None  # a refused decision always names its window
        rt.counters["rate_limited"][binding.kind] += 1
        rt.counters["rate_limited_by_cause"][decision.cause or binding.cause] += 1
        self._event(rt, f"rate_limited:{binding.kind}", binding.requested)
        return rate_limit_rejection(rt.model.name, decision, headers)

    # -- reporting -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot: totals, then ``models[name]`` with counters and timeline."""
        with self._lock:
            return snapshot(self._runtimes, self._global, round(self.clock() - self._t0, 6))
