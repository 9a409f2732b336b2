"""The rate scheduler decorator: wait for capacity instead of collecting 429s, and give up early.

Owns the per-call lifecycle (estimate, acquire, retry, settle) as one attempt loop with a
sync and an async runner, so the async hooks reach only the backend's async twins. The
reaction to each provider error kind is ``retry``'s, a call's steps and usage ``attempt``'s,
the counters ``stats``'s, window arithmetic ``policy``'s, waiting ``admission``'s, which
limits apply ``resolve``'s. Why ~450 lines: the hooks, the loop and the per-model lookups
share one per-call state; the target was ~500.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Literal, TypeVar

from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable
from tenacity import Retrying, wait_exponential_jitter

from llm_routing._decorator import Call, Decorator
from llm_routing._model import as_messages, call_max_tokens, model_max_tokens
from llm_routing.catalog import Catalog
from llm_routing.errors import (
    QuotaExceededError,
    RateLimitExhaustedError,
)
from llm_routing.schedule._steps import adrive, drive
from llm_routing.schedule.admission import Admission, Ticket
from llm_routing.schedule.attempt import (
    Acquire,
    Apply,
    Backoff,
    Pending,
    Proceed,
    Resolved,
    Step,
    broken,
    finished,
)
from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import Clock, SystemClock
from llm_routing.schedule.langchain_limiter import SchedulerLimiter
from llm_routing.schedule.limits import RateLimits, Request
from llm_routing.schedule.options import check_options, make_backend, pacing_of
from llm_routing.schedule.resolve import LimitResolver, api_key_fingerprint
from llm_routing.schedule.retry import _Reactions
from llm_routing.schedule.stats import SchedulerStats
from llm_routing.tokens import count_tokens

__all__ = ["DEFAULT_RESERVE_OUTPUT", "RateScheduler"]

_T = TypeVar("_T")

DEFAULT_RESERVE_OUTPUT = 1024
"""Output tokens a request reserves against TPM when neither the call nor the model sets
``max_tokens`` (capped at the model's output limit). Settling with the real usage gives the
difference back, so this only decides how many calls can be in flight at once near the limit;
OpenAI itself counts ``max_tokens`` against TPM when it is sent.
"""

_SPEC_CACHE_SIZE = 256


class RateScheduler(_Reactions, Decorator):
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
        self._specs: dict[int, Resolved] = {}
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
        key = id(model)
        entry = self._specs.get(key)
        if entry is not None and entry.model is model:
            return entry
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
        entry = Resolved(
            model, spec, schedule_key, self._limits.for_spec(spec), model_max_tokens(model)
        )
        with self._lock:
            if len(self._specs) >= _SPEC_CACHE_SIZE:
                self._specs.clear()
            self._specs[key] = entry
        return entry

    def _pending(self, call: Call, resolved: Resolved) -> Pending:
        kwargs = call.invocation_kwargs
        tokens = call.upstream.get("llm_routing.input_tokens")
        if not isinstance(tokens, int):
            tools = kwargs.get("tools") or None
            tokens = count_tokens(as_messages(call.input), resolved.spec, tools=tools)
        reserved, explicit = self._reserved(resolved, kwargs)
        pending = Pending(resolved, Request(input_tokens=tokens, output_tokens=reserved))
        pending.explicit_max_tokens = explicit
        return pending

    def _reserved(self, resolved: Resolved, kwargs: Mapping[str, Any]) -> tuple[int, bool]:
        found = call_max_tokens(kwargs)
        if found is not None:
            return found, True
        if resolved.model_max_tokens is not None:
            return resolved.model_max_tokens, True
        default = self.reserve_output if self.reserve_output is not None else DEFAULT_RESERVE_OUTPUT
        cap = resolved.spec.max_output_tokens
        return (default if cap is None else min(default, cap)), False

    # --- hooks -----------------------------------------------------------------------------

    def before(self, call: Call) -> None:
        """Estimate the call and refuse it at once if its model's quota is known to be spent."""
        resolved = self._resolve(call.model)
        if self._limits.check_unmatched:  # a limits key no model matched: say so once
            self._limits.warn_unmatched(resolved.spec)
        self._check_quota(resolved.key)
        call.state = self._pending(call, resolved)

    def around(self, call: Call, proceed: Callable[[], _T]) -> _T:
        """Acquire capacity, call, and retry 429s and transient errors within ``max_wait``."""
        steps = self._attempts(call, self._at_once(call.state))
        result: _T = drive(steps, functools.partial(self._step, proceed))
        return result

    async def aaround(self, call: Call, proceed: Callable[[], Awaitable[_T]]) -> _T:
        """Async `around`: waits on the event loop, never blocking it.

        Every give-back, correction and cooldown goes through the backend's async twins.
        """
        steps = self._attempts(call, self._at_once(call.state))
        result: _T = await adrive(steps, functools.partial(self._astep, proceed))
        return result

    def _at_once(self, pending: Pending) -> Ticket | None:
        """The first attempt's ticket when nobody waits and there is room now, else ``None``.

        The path of most calls to a scheduler that is not at its limits: an in-process
        backend admits or declines without I/O, so the first `Acquire` step (its deadline,
        its arguments, the runner's round trip) is skipped. ``None`` queues as usual.
        """
        resolved = pending.resolved
        return self.admission.at_once(resolved.key, resolved.limits, pending.request, resolved.key)

    def after(self, call: Call, output: Any) -> None:
        """Settle the reservation with the real usage, and learn from rate-limit headers."""
        effects = finished(call.state, output)
        if effects is not None:
            self._apply(effects)

    async def aafter(self, call: Call, output: Any) -> None:
        """Async `after`."""
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

    # --- one attempt loop, two runners -----------------------------------------------------

    def _attempts(self, call: Call, first: Ticket | None = None) -> Generator[Step, Any, Any]:
        """Acquire, call, and on a provider error give back, wait and retry, or raise.

        Written once for both colours: it yields what needs I/O (`Acquire`, `Proceed`,
        `Apply`, `Backoff`) and ``_step`` / ``_astep`` do it, the latter on the event loop
        with the backend's async twins. ``first`` is the first attempt's ticket when it was
        admitted at once (`_at_once`).
        """
        pending: Pending = call.state
        key = pending.resolved.key
        while True:
            if first is not None:
                ticket, first = first, None
            else:
                left = self._remaining(pending)
                deadline = self.admission.now() + left
                try:
                    ticket = yield Acquire(pending, deadline)
                except RateLimitExhaustedError as exc:
                    self._refused(key, exc)
                    self._refused_after(pending, deadline - left)
                    raise
                except QuotaExceededError:
                    self._stats.add(key, "refused_quota")
                    self._refused_after(pending, deadline - left)
                    raise
            self._admitted(pending, ticket)
            self._annotate(call, pending)
            try:
                result = yield Proceed()
            except Exception as exc:
                failure = self._failed(pending, ticket, exc)
                yield failure.effects
                if failure.error is not None:
                    raise failure.error  # noqa: B904 (its cause is set by _failed, or it is exc)
                if failure.delay > 0:
                    yield Backoff(failure.delay)
                continue
            except BaseException:
                # Interrupted while the request was out: on_cancel settles the ticket.
                self._answered(pending, ticket)
                raise
            self._answered(pending, ticket)
            return result

    def _step(self, proceed: Callable[[], Any], step: Step) -> Any:
        """Do one step of `_attempts` in this thread."""
        if isinstance(step, Proceed):
            return proceed()
        if isinstance(step, Acquire):
            return self.admission.acquire(**step.arguments())
        if isinstance(step, Apply):
            return self._apply(step)
        return self.clock.wait(threading.Event(), step.delay)

    async def _astep(self, proceed: Callable[[], Awaitable[Any]], step: Step) -> Any:
        """Do one step of `_attempts` on the event loop."""
        if isinstance(step, Proceed):
            return await proceed()
        if isinstance(step, Acquire):
            return await self.admission.aacquire(**step.arguments())
        if isinstance(step, Apply):
            return await self._aapply(step)
        return await self.clock.await_(asyncio.get_running_loop().create_future(), step.delay)

    def _apply(self, effects: Apply) -> None:
        """Tell the backend how a call ended: give back, correct, cool down (in that order)."""
        admission, ticket = self.admission, effects.ticket
        if effects.tokens is not None:
            admission.settle(ticket, *effects.tokens, answered_at=effects.answered_at)
        else:
            admission.release(ticket, keep_request=effects.keep_request)
        if effects.correction is not None:
            admission.correct(ticket.key, ticket.limits, effects.correction)
        if effects.cooldown_until is not None:
            admission.cooldown(ticket.key, effects.cooldown_until)

    async def _aapply(self, effects: Apply) -> None:
        """Async `_apply`, with the backend's async twins."""
        admission, ticket = self.admission, effects.ticket
        if effects.tokens is not None:
            await admission.asettle(ticket, *effects.tokens, answered_at=effects.answered_at)
        else:
            await admission.arelease(ticket, keep_request=effects.keep_request)
        if effects.correction is not None:
            await admission.acorrect(ticket.key, ticket.limits, effects.correction)
        if effects.cooldown_until is not None:
            await admission.acooldown(ticket.key, effects.cooldown_until)

    # --- the pieces of a call (decisions only: the runners do the I/O) ---------------------

    def _answered(self, pending: Pending, ticket: Ticket) -> None:
        # proceed() returns when the answer (a stream's first chunk) is here: the provider
        # has counted the request by now.
        pending.ticket = ticket
        # Paced requests reach the provider spread out, so the minute window never fills at
        # its edge and counting from admission is exact; a burst reaches it seconds after its
        # admission, and counting from the answer is what keeps its window's edge safe.
        count_from = self.count_from
        if count_from == "auto":
            count_from = "admission" if pending.resolved.limits.smoothing else "response"
        if count_from == "response":
            pending.answered_at = self.admission.now()

    def _refused(self, key: str, exc: RateLimitExhaustedError) -> None:
        too_large = "larger than the limit" in exc.reason
        self._stats.add(key, "refused_too_large" if too_large else "refused_max_wait")

    def _refused_after(self, pending: Pending, start: float) -> None:
        """Count a refused wait's time against the router call (a queue can time out late).

        Only inside a router call, whose next model must know what is left; the clock is
        read only on this path, so an admitted call pays nothing for it.
        """
        if pending.waiting is not None:
            pending.wait(max(0.0, self.admission.now() - start))

    def _admitted(self, pending: Pending, ticket: Ticket) -> None:
        pending.attempts += 1
        pending.wait(ticket.waited_s)
        self._stats.waited(pending.resolved.key, ticket.waited_s)
        if pending.retrying is not None:
            self._stats.add(pending.resolved.key, pending.retrying)
            pending.retrying = None

    @staticmethod
    def _annotate(call: Call, pending: Pending) -> None:
        call.metadata["llm_routing.wait_s"] = round(pending.waited, 3)
        call.metadata["llm_routing.attempt"] = pending.attempts
        call.metadata["llm_routing.reserved_tokens"] = pending.request.tokens

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
