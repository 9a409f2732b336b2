"""The rate scheduler decorator: wait for capacity instead of collecting 429s, and give up early.

Owns the decorator's face: its options, the per-model lookups (spec, key, limits, cached),
the estimate of a call, and the hooks that run the attempt loop. The loop itself (acquire,
call, retry, settle; one sync and one async runner) is ``loop``'s, the reaction to each
provider error kind ``retry``'s, a call's steps and usage ``attempt``'s, the counters
``stats``'s, window arithmetic ``policy``'s, waiting ``admission``'s, which limits apply
``resolve``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable
from tenacity import Retrying, wait_exponential_jitter

from llm_routing import _facts
from llm_routing._decorator import Call, Decorator
from llm_routing._facts import (
    PerModel,
    as_messages,
    call_max_tokens,
    explicit_max_tokens,
    output_estimate,
)
from llm_routing.catalog import Catalog
from llm_routing.schedule.admission import Admission
from llm_routing.schedule.attempt import (
    Pending,
    Resolved,
    broken,
    finished,
    response_headers,
    usage,
)
from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import Clock, SystemClock
from llm_routing.schedule.langchain_limiter import SchedulerLimiter
from llm_routing.schedule.limits import RateLimits, Request
from llm_routing.schedule.loop import _AttemptLoop
from llm_routing.schedule.options import check_options, make_backend, pacing_of
from llm_routing.schedule.resolve import LimitResolver, api_key_fingerprint
from llm_routing.schedule.stats import SchedulerStats
from llm_routing.tokens import count_tokens

__all__ = ["DEFAULT_RESERVE_OUTPUT", "RateScheduler"]

_T = TypeVar("_T")
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})

DEFAULT_RESERVE_OUTPUT = _facts.DEFAULT_OUTPUT_ESTIMATE
"""Output tokens a request reserves against TPM when neither the call nor the model sets
``max_tokens`` (`_facts.output_estimate`: capped at the model's output limit and at a quarter
of its window). Settling with the real usage gives the difference back, so this only decides
how many calls can be in flight at once near the limit; OpenAI itself counts ``max_tokens``
against TPM when it is sent. An alias of `_facts.DEFAULT_OUTPUT_ESTIMATE`, kept importable.
"""


class RateScheduler(_AttemptLoop, Decorator):
    """Per-model RPM/TPM/RPD scheduling: wait for capacity, retry 429s, give up after ``max_wait``.

    Before a call it reserves 1 request and the call's tokens (the guard's input count when a
    guard runs outside it, else its own count, plus reserved output) for this model, waiting
    in FIFO order until every limit has room. A wait longer than what is left of ``max_wait``
    is not started: `RateLimitExhaustedError` is raised at once so a fallback chain moves on.
    Inside a router call the ``max_wait`` is the whole call's, shared by every model it tries
    (`llm_routing._waiting`), so a fallback waits only what the earlier models left.
    After the call the reservation is settled with the real usage.

    Provider errors: a 429 cools the model down for every caller (Retry-After when given, else
    tenacity's jittered exponential backoff) and is retried while waiting fits in
    ``max_wait`` (proactive and reactive waits share that budget), then
    `RateLimitExhaustedError`. A quota error (``insufficient_quota``, a daily limit) is not
    retried: `QuotaExceededError` now, and the model is refused without a request for
    ``quota_cooldown`` seconds (or the provider's Retry-After). Transient errors (5xx,
    timeouts, connection) are retried ``max_retries`` times, then `ProviderUnavailableError`.
    Other errors propagate untouched.

    ``tier`` names the catalogue's limits (``"tier1"`` or per provider
    ``{"openai": "tier2", "google": "free"}``); ``limits`` overrides per model
    (``{"openai:gpt-4o-mini": {"rpm": 30, "tpm": 200_000, "rpd": 10_000}}``, options such as
    ``smoothing`` too); a key naming no catalogued model is an error when it is a near miss
    of one, else warned about at the first call unless a model matched it. ``limit_groups``
    gives models that share one provider limit one set of windows
    (``{"openai-mini": {"models": ["openai:gpt-4o-mini", "openai:gpt-4.1-mini"], "rpm": 500}}``;
    the group's limits replace its members' own). ``clock`` makes time injectable
    (`VirtualClock` in tests and in ``llm-routing simulate``). One scheduler can wrap any
    number of models; each model (or group) has its own windows, and all threads and event
    loops of the process share them.

    Example:
        >>> from llm_routing import RateScheduler
        >>> scheduler = RateScheduler(tier="tier1", max_wait=30)
        >>> limits = scheduler.limits_for("openai:gpt-4o-mini")
        >>> limits.rpm, limits.effective_rpm, limits.effective_tpm
        (500, 498, 196000)
        >>> RateScheduler(tier="tier7")
        Traceback (most recent call last):
        ...
        ValueError: RateScheduler(tier=…): unknown tier 'tier7' (did you mean 'tier5'?)...
    """

    def __init__(
        self,
        tier: str | Mapping[str, str] = "tier1",
        limits: Mapping[str, Any] | None = None,
        max_wait: float = 90.0,
        backend: Literal["memory"] | Backend | str = "memory",
        clock: Clock | None = None,
        *,
        catalog: Catalog | None = None,
        request_margin: int = 2,
        token_headroom: float = 0.02,
        pacing: Literal["auto", "paced", "burst"] = "auto",
        smoothing: bool | None = None,
        rpd_reset: Literal["rolling", "calendar"] = "rolling",
        reserve_output: int | None = None,
        max_retries: int = 2,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        quota_cooldown: float = 60.0,
        per_api_key: bool = False,
        count_from: Literal["auto", "response", "admission"] = "auto",
        limit_groups: Mapping[str, Any] | None = None,
    ) -> None:
        check_options(
            max_wait=max_wait,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            quota_cooldown=quota_cooldown,
            max_retries=max_retries,
            reserve_output=reserve_output,
            clock=clock,
            count_from=count_from,
        )
        pacing = pacing_of(pacing, smoothing)
        self.pacing = pacing
        self.count_from = count_from
        self.max_wait = float(max_wait)
        self.max_retries = max_retries
        self.reserve_output = reserve_output
        self.quota_cooldown = float(quota_cooldown)
        self.per_api_key = bool(per_api_key)
        self.tier = tier
        self._limits = LimitResolver(
            tier,
            limits,
            catalog,
            {
                "request_margin": request_margin,
                "token_headroom": token_headroom,
                "pacing": pacing,
                "day": rpd_reset,
            },
            limit_groups,
        )
        self.backend: Backend = make_backend(backend, clock or SystemClock())
        if clock is None:
            # A shared backend keeps its own time (Redis TIME): waits are measured on it.
            clock = getattr(self.backend, "server_clock", None) or self.backend.clock
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.admission = Admission(self.backend, self.clock)
        self._backoff = wait_exponential_jitter(
            initial=backoff_initial, max=backoff_max, jitter=backoff_initial
        )
        self._retrying = Retrying()
        self._quota_until: dict[str, tuple[float, str]] = {}
        # Spec, key and limits per model object: one dict lookup per call, bounded.
        self._specs: PerModel[Resolved] = PerModel(self._resolved)
        self._lock = threading.Lock()
        self._stats = SchedulerStats()

    def __repr__(self) -> str:
        return f"RateScheduler(tier={self.tier!r}, max_wait={self.max_wait:g})"

    # --- per model -------------------------------------------------------------------------

    def limits_for(self, model: Any) -> RateLimits:
        """The limits this scheduler applies to ``model`` (a chat model or a name).

        Raises the configuration error a call would raise (unknown tier for the model, unknown
        model), so a builder can check every model up front.
        """
        if isinstance(model, str):
            return self._limits.for_name(model)[1]
        return self._resolve(model).limits

    def _resolve(self, model: Any) -> Resolved:
        return self._specs.get(model)

    def _resolved(self, model: Any) -> Resolved:
        """Look ``model`` up (once per model object: `_specs` keeps the answer)."""
        catalog = self._limits.catalog
        try:
            spec = catalog.for_model(model)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"RateScheduler cannot find the limits of {type(model).__name__}: {exc} "
                "Or pass limits={'<model name>': {'rpm': …, 'tpm': …}} for a registered model."
            ) from None
        schedule_key = self._limits.group_of(spec) or spec.key  # a group shares its windows
        if self.per_api_key:
            fingerprint = api_key_fingerprint(model)
            if fingerprint is not None:
                schedule_key = f"{schedule_key}@{fingerprint}"
        limits = self._limits.for_spec(spec)
        estimate = output_estimate(spec, _NO_KWARGS, None, self.reserve_output)
        return Resolved(model, spec, schedule_key, limits, explicit_max_tokens({}, model), estimate)

    def _pending(self, call: Call, resolved: Resolved) -> Pending:
        kwargs = call.invocation_kwargs
        tokens = call.upstream.get("llm_routing.input_tokens")
        if not isinstance(tokens, int):
            tools = kwargs.get("tools") or None
            tokens = count_tokens(as_messages(call.input), resolved.spec, tools=tools)
        # `_reserved`, inline (once per call): the call's max_tokens, else the model's, else
        # the default estimate (per-model facts, read from ``resolved``).
        found = call_max_tokens(kwargs) if kwargs else None
        if found is None:
            found = resolved.model_max_tokens
        if found is not None:
            return Pending(resolved, Request(tokens, found), True)
        return Pending(resolved, Request(tokens, resolved.output_estimate), False)

    def _reserved(self, resolved: Resolved, kwargs: Mapping[str, Any]) -> tuple[int, bool]:
        """The output a call's admission charges, and whether the call sends it as ``max_tokens``.

        `_facts.output_estimate`'s rule, so the three decorators agree; a sent ``max_tokens``
        is flagged because settlement then never charges less (see ``attempt.usage``). The
        model's own cap and the default estimate are per-model facts, read from ``resolved``
        (what `explicit_max_tokens` and `output_estimate` answer for the model, cached); only
        the call's kwargs are read per call.
        """
        found = call_max_tokens(kwargs) if kwargs else None
        if found is None:
            found = resolved.model_max_tokens
        if found is not None:
            return found, True
        return resolved.output_estimate, False

    # --- hooks -----------------------------------------------------------------------------

    def before(self, call: Call) -> None:
        """Estimate the call and refuse it at once if its model's quota is known to be spent."""
        resolved = self._resolve(call.model)
        if self._limits.check_unmatched:  # a limits key no model matched: say so once
            self._limits.warn_unmatched(resolved.spec)
        if self._quota_until:  # a spent quota is rare: no call per call for the check
            self._check_quota(resolved.key)
        call.state = self._pending(call, resolved)

    def around(self, call: Call, proceed: Callable[[], _T]) -> _T:
        """Acquire capacity, call, and retry 429s and transient errors within ``max_wait``."""
        result: _T = self._call(call, proceed)
        return result

    def aaround(self, call: Call, proceed: Callable[[], Awaitable[_T]]) -> Coroutine[Any, Any, _T]:
        """Async `around`: waits on the event loop, never blocking it.

        Every give-back, correction and cooldown goes through the backend's async twins.
        `_acall`'s coroutine is the hook's own (no second coroutine per call to await it).
        """
        result: Coroutine[Any, Any, _T] = self._acall(call, proceed)
        return result

    def after(self, call: Call, output: Any) -> None:
        """Settle the reservation with the real usage, and learn from rate-limit headers."""
        pending: Pending = call.state
        ticket = pending.ticket
        if ticket is None:
            return
        metadata = getattr(output, "response_metadata", None)
        # A plain dict without "headers" (most answers) needs no `response_headers` call.
        if not (type(metadata) is dict and "headers" not in metadata) and (
            response_headers(output) is not None
        ):
            effects = finished(pending, output)
            if effects is not None:
                self._apply(effects)
            return
        # No headers (most answers): `finished`'s settlement without its `Apply`, whose only
        # effect then is this settle.
        pending.ticket = None
        input_tokens, output_tokens = usage(pending, output)
        self.admission.settle(ticket, input_tokens, output_tokens, answered_at=pending.answered_at)

    async def aafter(self, call: Call, output: Any) -> None:
        """Async `after`; an in-process backend does no I/O, so it is `after` itself."""
        if self.admission.backend.in_process:
            self.after(call, output)
            return
        effects = finished(call.state, output)
        if effects is not None:
            await self._aapply(effects)

    def on_error(self, call: Call, error: Exception) -> Exception | None:
        """A stream that failed after its first chunk: the request was sent and counted.

        The provider counts what it generated against the TPM window, so the chunks that
        arrived (``call.partial``) are settled as output, as for a stream the caller closed.
        """
        effects = broken(call.state, call.partial, cancelled=False)
        if effects is not None:
            self._apply(effects)
        return None

    async def aon_error(self, call: Call, error: Exception) -> Exception | None:
        """Async `on_error`."""
        effects = broken(call.state, call.partial, cancelled=False)
        if effects is not None:
            await self._aapply(effects)
        return None

    def on_cancel(self, call: Call, partial: Any) -> None:
        """The caller stopped after the request was sent: settle with what is known of it."""
        effects = broken(call.state, partial, cancelled=True)
        if effects is not None:
            self._apply(effects)

    async def aon_cancel(self, call: Call, partial: Any) -> None:
        """Async `on_cancel`."""
        effects = broken(call.state, partial, cancelled=True)
        if effects is not None:
            await self._aapply(effects)

    # --- LangChain's rate limiter interface ------------------------------------------------

    def limiter_for(self, model: Any) -> BaseRateLimiter:
        """A LangChain ``BaseRateLimiter`` pacing requests to ``model`` with this scheduler.

        For ``ChatOpenAI(rate_limiter=…)``-style use when only request pacing is wanted: it
        counts requests (not tokens, which the limiter interface never sees) in the same
        windows the decorator uses, and raises `RateLimitExhaustedError` instead of waiting
        longer than ``max_wait``.
        """
        if isinstance(model, str):
            key, limits = self._limits.for_name(model)
        elif isinstance(model, Runnable):
            resolved = self._resolve(model)
            key, limits = resolved.key, resolved.limits
        else:
            raise TypeError(
                "limiter_for(model) needs a chat model or a model name such as "
                f"'openai:gpt-4o-mini', got {type(model).__name__}"
            )
        return SchedulerLimiter(self, key, limits)

    # --- stats -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Waits (count, total, p50/p95/max seconds), 429s seen, retries and refusals.

        ``rate_limit_errors`` counts provider 429s, ``retries`` the 429 retries sent,
        ``transient_retries`` the 5xx/timeout retries sent (a retry whose wait ran past
        ``max_wait`` is a refusal, not a retry), ``refused_max_wait`` /
        ``refused_too_large`` / ``refused_quota`` the calls refused without a request.
        """
        return self._stats.snapshot()

    def snapshot(self, model: Any) -> dict[str, Any]:
        """The current window state of ``model`` (requests and tokens in the window, cooldown)."""
        key = model if isinstance(model, str) else self._resolve(model).key
        return self.backend.snapshot(key)


# --------------------------------------------------------------------------- helpers
