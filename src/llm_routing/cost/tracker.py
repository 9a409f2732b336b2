"""The cost tracker: a decorator that prices every call and keeps budgets from being overspent.

Owns the per-call lifecycle (reserve the worst case before, settle to the real usage after,
release on failure), usage estimation when a provider reports none, and warnings. Prices come
from ``cost.pricing``, money is kept by a ``cost.ledger.Ledger``, budget rules are
``cost.budget``, reading usage off outputs and counting tokens is ``cost._usage``, the
wording of refusals and warnings ``cost._messages``, summaries and tables ``cost.report``;
routing around a spent budget is the router's job.

Over 400 lines, kept whole: the hooks (before/after/on_error/on_cancel, sync and async) and
the reservation lifecycle they share (hold, then settle or release exactly once) are one state
machine that reads best in one place, and the constructor checks each argument by name.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from llm_routing._decorator import Call, Decorator
from llm_routing._waiting import Waiting, current
from llm_routing.catalog import Catalog, ModelSpec, default_catalog
from llm_routing.cost._backend import ledger_for
from llm_routing.cost._messages import crossing_message, refusal_error, unpriced_hint
from llm_routing.cost._usage import (
    ModelInfo,
    count_input,
    estimate_usage,
    parsed,
    reserved_output,
    run_ids,
    unknown_cost,
    usage_from_error,
    usage_of,
)
from llm_routing.cost.budget import (
    Bucket,
    BucketChange,
    Budget,
    buckets_for,
    crossings,
    parse_budgets,
)
from llm_routing.cost.ledger import (
    DEFAULT_HOLD_LEASE,
    DEFAULT_MAX_RECORDS,
    CostRecord,
    Ledger,
    Refusal,
    Reservation,
)
from llm_routing.cost.pricing import (
    Cost,
    TokenUsage,
    estimate_cost,
    parse_usage,
    price,
    requested_service_tier,
    service_tier_of,
)
from llm_routing.cost.report import Reporting, usd
from llm_routing.errors import LLMRoutingError, UnknownModelError

__all__ = [
    "BudgetWarning",
    "CostTracker",
    "UnknownPriceError",
    "UnknownPriceWarning",
]

logger = logging.getLogger("llm_routing.cost")

DEFAULT_MAX_WAIT = 90.0
"""Seconds a call waits for other calls' holds to settle: the scheduler's default max_wait."""
_SPEC_CACHE_SIZE = 256
_ZERO = Decimal(0)


class BudgetWarning(UserWarning):
    """A budget's spend crossed ``warn_at`` of its limit (once per budget and period)."""


class UnknownPriceWarning(UserWarning):
    """A model's calls cannot be priced; they are recorded with an unknown cost."""


class UnknownPriceError(LLMRoutingError, ValueError):
    """``strict=True`` and the model has no known price, so the call is refused before it runs."""

    def __init__(self, message: str, *, model: str | None = None) -> None:
        self.model = model
        self.message = message
        super().__init__(message)


@dataclass(slots=True)
class _State:
    """The tracker's per-call slot (``call.state``)."""

    model: ModelInfo
    started: datetime
    t0: float
    input_tokens: int | None = None
    output_reserve: int | None = None
    estimate: Decimal | None = None
    reservation: Reservation | None = None


class CostTracker(Reporting, Decorator):
    """Price every call from its real usage and refuse calls a budget cannot cover.

    Before a call it holds the worst case against every budget that applies (input tokens,
    from the guard's count when it ran, plus the reserved output: the guard's, else the call's
    or model's ``max_tokens``, else ``reserve_output``, by default
    ``min(DEFAULT_OUTPUT_RESERVE, spec.max_output_tokens)``, all at this model's dearest
    rates). If the settled spend leaves no room for that, it raises `BudgetExceededError` at
    once; if only the holds of other calls in flight are in the way, it waits for them to
    settle, up to ``max_wait`` seconds (90, the scheduler's default; less what the call
    already waited: the scheduler's wait, and inside a router every earlier attempt's), and
    raises only then. After the call it
    replaces the hold by the price of the reported ``usage_metadata`` (invoke, and the summed
    chunks of a stream); a provider that reports no usage gets its tokens counted locally and
    the record marked ``estimated``. A call that fails before the provider answered costs
    nothing; a stream that breaks after its first chunk is charged (status ``"error"``) its
    input and the output received, estimated unless the provider's usage had arrived. So
    however many callers run at once, spend passes a budget only by the error of the estimate
    (an answer longer than the reserve when no ``max_tokens`` is set, or an estimated
    tokenizer's miscount).

    Budgets: ``budget_usd`` (total, until ``reset()``) and ``budgets``, a ``{period: usd}``
    mapping over calendar UTC periods (``"hour"``, ``"day"``, ``"month"``, ``"total"``) or
    `Budget` values, which may apply to one tag only. Crossing ``warn_at`` of a budget emits one
    `BudgetWarning` (``warnings`` and the ``llm_routing.cost`` logger) per budget and period.

    A model without a known price has its calls recorded with cost ``None`` (one
    `UnknownPriceWarning` per model, counted as ``unpriced_calls``; budgets cannot hold them);
    ``strict=True`` refuses such calls with `UnknownPriceError` instead.

    ``backend``: ``None`` or ``"memory"`` (this process), a ``"redis://…"`` URL or a `Ledger`
    instance. Each call adds ``llm_routing.estimated_cost_usd`` to the model run's metadata
    when a hold was computed. Holds are leases of ``hold_lease`` seconds (30 by default; set
    it here when the tracker builds its ledger, else on the ledger) that this process renews
    while the call runs: the holds of a worker killed mid-call free the budget within one lease.

    Example:
        >>> from llm_routing import CostTracker
        >>> tracker = CostTracker(budget_usd=5.0, budgets={"day": 1.0})
        >>> summary = tracker.summary()
        >>> summary["total_cost"], summary["calls"], summary["unpriced_calls"]
        (0.0, 0, 0)
    """

    def __init__(
        self,
        budget_usd: float | Decimal | None = None,
        budgets: Mapping[str, Any] | Iterable[Budget] | Budget | None = None,
        warn_at: float = 0.8,
        catalog: Catalog | None = None,
        strict: bool = False,
        backend: Any = None,
        *,
        reserve_output: int | None = None,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Callable[[], float] | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
        hold_lease: float | None = None,
    ) -> None:
        self.budgets: tuple[Budget, ...] = parse_budgets(budget_usd, budgets)
        if isinstance(warn_at, bool) or not isinstance(warn_at, int | float):
            raise TypeError(f"CostTracker(warn_at=…) must be a number in (0, 1], got {warn_at!r}")
        if not (math.isfinite(warn_at) and 0 < warn_at <= 1):
            raise ValueError(
                "CostTracker(warn_at=…) must be in (0, 1] (the share of a budget at which to "
                f"warn, 0.8 warns at 80%), got {warn_at!r}"
            )
        if catalog is not None and not isinstance(catalog, Catalog):
            raise TypeError(
                f"CostTracker(catalog=…) must be a Catalog or None, got {type(catalog).__name__}"
            )
        if not isinstance(strict, bool):
            raise TypeError(f"CostTracker(strict=…) must be True or False, got {strict!r}")
        if reserve_output is not None and (
            isinstance(reserve_output, bool) or not isinstance(reserve_output, int)
        ):
            raise TypeError(
                "CostTracker(reserve_output=…) must be an int number of tokens or None, "
                f"got {reserve_output!r}"
            )
        if reserve_output is not None and reserve_output < 0:
            raise ValueError(
                f"CostTracker(reserve_output=…) must be >= 0 tokens or None, got {reserve_output}"
            )
        if clock is not None and not callable(clock):
            raise TypeError(
                f"CostTracker(clock=…) must be a callable returning epoch seconds, got {clock!r}"
            )
        if isinstance(max_wait, bool) or not isinstance(max_wait, int | float):
            raise TypeError(
                f"CostTracker(max_wait=…) must be a number of seconds, got {max_wait!r}"
            )
        if not (max_wait >= 0 and math.isfinite(max_wait)):
            raise ValueError(
                "CostTracker(max_wait=…) must be a finite number of seconds >= 0 (how long a "
                "call waits for calls in flight to settle; 0 refuses at once), got "
                f"{max_wait!r}"
            )
        if hold_lease is not None:
            if isinstance(hold_lease, bool) or not isinstance(hold_lease, int | float):
                raise TypeError(
                    f"CostTracker(hold_lease=…) must be a number of seconds, got {hold_lease!r}"
                )
            if not 0 < hold_lease < math.inf:
                raise ValueError(
                    "CostTracker(hold_lease=…) must be a finite number of seconds > 0, got "
                    f"{hold_lease!r}"
                )
            if isinstance(backend, Ledger):
                raise ValueError(
                    "CostTracker(hold_lease=…) configures the ledger the tracker builds; you "
                    "passed a Ledger, so set it there: MemoryLedger(hold_lease=…) or "
                    "RedisLedger(url, hold_lease=…)"
                )
        self.warn_at = float(warn_at)
        self.strict = strict
        self.reserve_output = reserve_output
        self.max_wait = float(max_wait)
        self._catalog = catalog
        self._clock: Callable[[], float] = clock if clock is not None else time.time
        self.ledger: Ledger = ledger_for(
            backend, max_records, DEFAULT_HOLD_LEASE if hold_lease is None else float(hold_lease)
        )
        self._models: dict[int, ModelInfo] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        """The catalogue prices come from (the shared default unless one was given)."""
        return self._catalog if self._catalog is not None else default_catalog()

    def __repr__(self) -> str:
        budgets = ", ".join(f"{b.name}={usd(b.limit_usd)}" for b in self.budgets) or "none"
        return (
            f"CostTracker(budgets: {budgets}, warn_at={self.warn_at:g}, strict={self.strict}, "
            f"max_wait={self.max_wait:g})"
        )

    # --- per model -------------------------------------------------------------------------

    def _resolve(self, model: Any) -> ModelInfo:
        key = id(model)
        entry = self._models.get(key)
        if entry is not None and entry.model is model:
            return entry
        try:
            spec: ModelSpec | None = self.catalog.for_model(model)
        except (UnknownModelError, TypeError):
            spec = None
        entry = ModelInfo(model, spec)
        with self._lock:
            if len(self._models) >= _SPEC_CACHE_SIZE:
                self._models.clear()
            self._models[key] = entry
        return entry

    def _warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning(message)
        warnings.warn(message, UnknownPriceWarning, stacklevel=3)

    def _unpriced(self, info: ModelInfo) -> None:
        hint = unpriced_hint(info.spec is not None)
        if self.strict:
            raise UnknownPriceError(
                f"CostTracker(strict=True) refuses calls to {info.key}: its price is unknown, so "
                f"their cost could not be recorded or held against a budget. To use it, {hint}; "
                "or pass strict=False to record its calls with an unknown cost.",
                model=info.key,
            )
        budget_note = " and no budget can hold them" if self.budgets else ""
        self._warn_once(
            info.key,
            f"llm_routing: no price known for {info.key}; its calls are recorded with an unknown "
            f"cost (summary()['unpriced_calls']){budget_note}. To price them, {hint}.",
        )

    # --- hooks -----------------------------------------------------------------------------

    def before(self, call: Call) -> None:
        """Hold the call's worst-case cost against every budget, or refuse it.

        Blocks while only other calls' holds are in the way (up to ``max_wait``).
        """
        state, buckets = self._prepare(call)
        if buckets:
            amount = state.estimate if state.estimate is not None else _ZERO
            waiting, started = self._waiting_since()
            outcome = self.ledger.reserve_within(amount, buckets, self._wait_left(call))
            self._count_wait(waiting, started)
            self._admit(call, state, outcome)
        call.state = state

    async def abefore(self, call: Call) -> None:
        """Async `before`: a wait for holds to settle sleeps on the event loop."""
        state, buckets = self._prepare(call)
        if buckets:
            amount = state.estimate if state.estimate is not None else _ZERO
            waiting, started = self._waiting_since()
            outcome = await self.ledger.areserve_within(amount, buckets, self._wait_left(call))
            self._count_wait(waiting, started)
            self._admit(call, state, outcome)
        call.state = state

    def _prepare(self, call: Call) -> tuple[_State, list[Bucket]]:
        """The call's worst case and the buckets it counts against (nothing held yet)."""
        info = self._resolve(call.model)
        if not info.priced:
            self._unpriced(info)
        now = self._clock()
        state = _State(info, datetime.fromtimestamp(now, UTC), time.monotonic())
        buckets = buckets_for(self.budgets, state.started, call.config.get("tags") or ())
        upstream = call.upstream.get("llm_routing.input_tokens")
        if isinstance(upstream, int) and not isinstance(upstream, bool) and upstream >= 0:
            state.input_tokens = upstream
        if info.priced and info.spec is not None and (buckets or state.input_tokens is not None):
            if state.input_tokens is None:
                state.input_tokens = count_input(call, info)
            state.output_reserve = reserved_output(call, info, self.reserve_output)
            # Held at the rates of the tier the call asks for: priority bills about 2x standard.
            kwargs = call.invocation_kwargs
            tier = (
                info.service_tier  # the model's own, read once
                if kwargs.get("service_tier") is None
                else requested_service_tier(call.model, kwargs)
            )
            state.estimate = estimate_cost(
                info.spec, state.input_tokens, state.output_reserve, tier
            )
            if state.estimate is not None:
                call.metadata["llm_routing.estimated_cost_usd"] = float(state.estimate)
        return state, buckets

    def _wait_left(self, call: Call) -> float:
        """What is left of ``max_wait`` once the scheduler's wait for this call is counted.

        One ``max_wait`` bounds the call's waits end to end: a call that queued 80 s for rate
        capacity waits at most 10 s more for budget holds, not another 90.
        """
        waiting = current()
        if waiting is not None:
            # Inside a router call: every attempt's waits so far, this one's scheduler's too.
            return waiting.left(self.max_wait)
        waited = call.upstream.get("llm_routing.wait_s")
        if isinstance(waited, int | float) and not isinstance(waited, bool) and waited > 0:
            return max(0.0, self.max_wait - float(waited))
        return self.max_wait

    def _waiting_since(self) -> tuple[Waiting | None, float]:
        """The router call's `Waiting` and the ledger's time, when this runs inside one."""
        waiting = current()
        return waiting, (self.ledger.clock.now() if waiting is not None else 0.0)

    def _count_wait(self, waiting: Waiting | None, started: float) -> None:
        """Count the wait for holds to settle against the router call, if any.

        A fallback (or the scheduler's retry) after it then waits only what is left. The
        ledger's clock is read only inside a router call: a plain call pays nothing for it.
        """
        if waiting is not None:
            waiting.add(self.ledger.clock.now() - started)

    def _admit(self, call: Call, state: _State, outcome: Reservation | Refusal) -> None:
        if isinstance(outcome, Refusal):
            raise refusal_error(
                outcome,
                state.model.key,
                state.started,
                (state.input_tokens, state.output_reserve),
                self.max_wait,
            )
        state.reservation = outcome

    def after(self, call: Call, output: Any) -> None:
        """Price the real usage (or an estimate when none was reported) and settle the hold."""
        state = call.state
        if not isinstance(state, _State):
            return
        usage = usage_of(output)
        tokens: TokenUsage | None = None
        if usage is not None:
            try:
                # Billed at the tier the response says served it (flex, priority, scale…).
                tokens = parse_usage(usage, service_tier_of(output))
            except (TypeError, ValueError) as exc:
                logger.warning("malformed usage_metadata from %s: %s", state.model.key, exc)
        estimated = tokens is None
        if tokens is None:
            tokens = estimate_usage(call, state.model, state.input_tokens, output)
        cost = self._settle(call, state, tokens, estimated=estimated, status="ok")
        if cost.total is not None:
            call.metadata["llm_routing.cost_usd"] = float(cost.total)

    def on_error(self, call: Call, error: Exception) -> Exception | None:
        """Charge what the provider processed before failing; release the hold if nothing.

        Reported usage wins (on the error, or in the chunks a stream delivered before it
        broke). A stream that broke after its first chunk without reporting usage was
        processed and billed by the provider, so it is charged an estimate (``estimated``):
        the input as counted before the call, the output counted from the chunks received.
        That is a lower bound: the provider may have generated, and billed, more than arrived.
        """
        state = call.state
        if not isinstance(state, _State):
            return None
        tokens = parsed(usage_from_error(error))
        estimated = False
        if tokens is None and call.partial is not None:
            tokens = parsed(usage_of(call.partial))
            if tokens is None:
                tokens, estimated = (
                    estimate_usage(call, state.model, state.input_tokens, call.partial),
                    True,
                )
        if tokens is None:
            self._release(call, state)
        else:
            self._settle(call, state, tokens, estimated=estimated, status="error")
        return None

    def on_cancel(self, call: Call, partial: Any) -> None:
        """A stream closed early: charge what was generated (estimated); else release."""
        state = call.state
        if not isinstance(state, _State):
            return
        if partial is None:
            self._release(call, state)
            return
        usage = usage_of(partial)
        try:
            tokens = parse_usage(usage) if usage is not None else None
        except (TypeError, ValueError):
            tokens = None
        estimated = tokens is None
        if tokens is None:
            tokens = estimate_usage(call, state.model, state.input_tokens, partial)
        self._settle(call, state, tokens, estimated=estimated, status="cancelled")

    # --- settling --------------------------------------------------------------------------

    def _release(self, call: Call, state: _State) -> None:
        if state.reservation is not None:
            self.ledger.release(state.reservation)
            state.reservation = None
        call.state = None

    def _settle(
        self, call: Call, state: _State, tokens: TokenUsage, *, estimated: bool, status: str
    ) -> Cost:
        info = state.model
        cost = price(tokens, info.spec) if info.spec is not None else unknown_cost(tokens)
        if cost.total is None and info.priced:
            missing = ", ".join(
                name
                for name in ("input", "cached_input", "cache_write", "output", "reasoning")
                if getattr(cost, name) is None
            )
            self._warn_once(
                f"{info.key}#{missing}",
                f"llm_routing: {info.key} used tokens whose price is unknown ({missing}); that "
                "call is recorded with an unknown cost. Add the missing price to its spec.",
            )
        run_id, parent = run_ids(call.config)
        config = call.config
        record = CostRecord(
            time=state.started,
            provider=info.provider,
            model=info.name,
            tokens=tokens,
            cost=cost,
            estimated=estimated,
            status=status,
            run_id=run_id,
            parent_run_id=parent,
            tags=tuple(config.get("tags") or ()),
            metadata=dict(config.get("metadata") or {}),
            duration_s=time.monotonic() - state.t0,
        )
        reservation, state.reservation = state.reservation, None
        call.state = None
        if reservation is not None:
            changes = self.ledger.settle(reservation, record)
        else:
            changes = self.ledger.add(record)
        self._warn_crossings(changes)
        return cost

    def _warn_crossings(self, changes: list[BucketChange]) -> None:
        if not changes:  # no budget applies (most calls of a tracker without budgets)
            return
        for change in crossings(changes, self.warn_at):
            message = crossing_message(change, self.warn_at)
            # One report, not two: the warning is what users see and filter; a WARNING log would
            # print the same line again through logging's last-resort handler.
            logger.info(message)
            warnings.warn(message, BudgetWarning, stacklevel=4)

    # --- reading ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all records, totals and budget spend (warnings may fire again)."""
        self.ledger.reset()
        with self._lock:
            self._warned.clear()
