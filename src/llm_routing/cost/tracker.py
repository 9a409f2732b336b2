"""The cost tracker: a decorator that prices every call and keeps budgets from being overspent.

Owns the per-call lifecycle: hold the worst case before a call, then settle it to the real
usage or release it, exactly once, in every hook (sync and async). What a call may cost and
the record it leaves are ``cost._per_call``; a model's prices, prepared once, ``cost._rates``;
argument checks ``cost._options``; prices ``cost.pricing``; money a ``cost.ledger.Ledger``;
budget rules ``cost.budget``; reading usage off outputs ``cost._usage``; the wording of
refusals and warnings (and their classes) ``cost._messages``; summaries and tables
``cost.report``. Routing around a spent budget is the router's job.

The async hooks never make a blocking backend call on the event loop: a ledger that does I/O
(``Ledger.blocks``, e.g. Redis) is called from a worker thread, the in-memory one inline.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from llm_routing._decorator import Call, Decorator
from llm_routing._facts import PerModel
from llm_routing.catalog import Catalog, ModelSpec, default_catalog
from llm_routing.cost._backend import ledger_for
from llm_routing.cost._messages import (
    BudgetWarning,
    UnknownPriceError,
    UnknownPriceWarning,
    crossing_message,
    refusal_error,
    unpriced_hint,
)
from llm_routing.cost._options import check_options
from llm_routing.cost._per_call import (
    CallState,
    count_wait,
    record_of,
    used_before_cancel,
    used_before_error,
    used_by_answer,
    wait_left,
    waiting_since,
    worst_case,
)
from llm_routing.cost._rates import RateCard, Rates
from llm_routing.cost._usage import ModelInfo, unknown_cost
from llm_routing.cost.budget import Bucket, BucketChange, Budget, crossings, parse_budgets
from llm_routing.cost.ledger import (
    DEFAULT_HOLD_LEASE,
    DEFAULT_MAX_RECORDS,
    Ledger,
    Refusal,
    Reservation,
)
from llm_routing.cost.pricing import Cost, TokenUsage
from llm_routing.cost.record import Fields, _record
from llm_routing.cost.report import Reporting, usd
from llm_routing.errors import UnknownModelError

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
_PARTS = ("input", "cached_input", "cache_write", "output", "reasoning")

_Booking = tuple[Reservation | None, Fields | None]
"""What a finished call leaves for the ledger: its hold (if any), its record (``None``: release)."""


class CostTracker(Reporting, Decorator):
    """Price every call from its real usage and refuse calls a budget cannot cover.

    Before a call it holds the worst case against every budget that applies (input tokens, from
    the guard's count when it ran, plus the reserved output: the guard's, else
    `llm_routing._facts.output_ceiling`, the one output rule every decorator shares: the call's
    or model's ``max_tokens``, else ``reserve_output``, by default ``min(DEFAULT_OUTPUT_RESERVE,
    spec.max_output_tokens, context_window // 4)``; all at this model's dearest rates). If the
    settled spend leaves no room for that, it raises `BudgetExceededError` at once; if only the
    holds of other calls in flight are in the way, it waits for them to settle, up to
    ``max_wait`` seconds (90, the scheduler's default; less what the call already waited: the
    scheduler's wait, and inside a router every earlier attempt's), and raises only then. After
    the call it replaces the hold by the price of the reported ``usage_metadata`` (invoke, and
    the summed chunks of a stream); a provider that reports no usage gets its tokens counted
    locally and the record marked ``estimated``. A call that fails before the provider answered
    costs nothing; a stream that breaks after its first chunk is charged (status ``"error"``)
    its input and the output received, estimated unless the provider's usage had arrived. So
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
        check_options(
            warn_at=warn_at,
            catalog=catalog,
            strict=strict,
            reserve_output=reserve_output,
            clock=clock,
            max_wait=max_wait,
            hold_lease=hold_lease,
            backend=backend,
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
        self._models: PerModel[tuple[ModelInfo, RateCard | None]] = PerModel(
            self._look_up, _SPEC_CACHE_SIZE
        )
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

    def _look_up(self, model: Any) -> tuple[ModelInfo, RateCard | None]:
        """What the tracker needs of a model, once per model object (`PerModel`)."""
        try:
            spec: ModelSpec | None = self.catalog.for_model(model)
        except (UnknownModelError, TypeError):
            spec = None
        return ModelInfo(model, spec), (RateCard(spec) if spec is not None else None)

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

    # --- before: hold the worst case -------------------------------------------------------

    def before(self, call: Call) -> None:
        """Hold the call's worst-case cost against every budget, or refuse it.

        Blocks while only other calls' holds are in the way (up to ``max_wait``).
        """
        state, buckets = self._prepare(call)
        if buckets:
            waiting, started = waiting_since(self.ledger)
            amount = state.estimate if state.estimate is not None else _ZERO
            outcome = self.ledger.reserve_within(amount, buckets, wait_left(call, self.max_wait))
            count_wait(self.ledger, waiting, started)
            self._admit(state, outcome)
        call.state = state

    async def abefore(self, call: Call) -> None:
        """Async `before`: a wait for holds to settle sleeps on the event loop."""
        state, buckets = self._prepare(call)
        if buckets:
            waiting, started = waiting_since(self.ledger)
            amount = state.estimate if state.estimate is not None else _ZERO
            left = wait_left(call, self.max_wait)
            outcome = await self.ledger.areserve_within(amount, buckets, left)
            count_wait(self.ledger, waiting, started)
            self._admit(state, outcome)
        call.state = state

    def _prepare(self, call: Call) -> tuple[CallState, list[Bucket]]:
        info, card = self._models.get(call.model)
        if not info.priced:
            self._unpriced(info)
        return worst_case(call, info, card, self.budgets, self._clock(), self.reserve_output)

    def _admit(self, state: CallState, outcome: Reservation | Refusal) -> None:
        if isinstance(outcome, Refusal):
            raise refusal_error(
                outcome,
                state.model.key,
                state.started,
                (state.input_tokens, state.output_reserve),
                self.max_wait,
            )
        state.reservation = outcome

    # --- after: settle or release, exactly once --------------------------------------------

    def after(self, call: Call, output: Any) -> None:
        """Price the real usage (or an estimate when none was reported) and settle the hold."""
        booking = self._answered(call, output)
        if booking is not None:
            self._book(booking)

    async def aafter(self, call: Call, output: Any) -> None:
        """Async `after`: a ledger that does I/O is called from a worker thread."""
        booking = self._answered(call, output)
        if booking is not None:
            await self._abook(booking)

    def on_error(self, call: Call, error: Exception) -> Exception | None:
        """Charge what the provider processed before failing; release the hold if nothing.

        Reported usage wins (on the error, or in the chunks a stream delivered before it
        broke). A stream that broke after its first chunk without reporting usage was
        processed and billed by the provider, so it is charged an estimate (``estimated``):
        the input as counted before the call, the output counted from the chunks received.
        That is a lower bound: the provider may have generated, and billed, more than arrived.
        """
        booking = self._failed(call, error)
        if booking is not None:
            self._book(booking)
        return None

    async def aon_error(self, call: Call, error: Exception) -> Exception | None:
        """Async `on_error`."""
        booking = self._failed(call, error)
        if booking is not None:
            await self._abook(booking)
        return None

    def on_cancel(self, call: Call, partial: Any) -> None:
        """A stream closed early: charge what was generated (estimated); else release."""
        booking = self._cancelled(call, partial)
        if booking is not None:
            self._book(booking)

    async def aon_cancel(self, call: Call, partial: Any) -> None:
        """Async `on_cancel`."""
        booking = self._cancelled(call, partial)
        if booking is not None:
            await self._abook(booking)

    def _answered(self, call: Call, output: Any) -> _Booking | None:
        state = call.state
        if not isinstance(state, CallState):
            return None
        tokens, estimated = used_by_answer(call, state, output)
        return self._settled(call, state, tokens, estimated, "ok")

    def _failed(self, call: Call, error: Exception) -> _Booking | None:
        state = call.state
        if not isinstance(state, CallState):
            return None
        tokens, estimated = used_before_error(call, state, error)
        if tokens is None:
            return self._released(call, state)
        return self._settled(call, state, tokens, estimated, "error")

    def _cancelled(self, call: Call, partial: Any) -> _Booking | None:
        state = call.state
        if not isinstance(state, CallState):
            return None
        if partial is None:
            return self._released(call, state)
        tokens, estimated = used_before_cancel(call, state, partial)
        return self._settled(call, state, tokens, estimated, "cancelled")

    def _released(self, call: Call, state: CallState) -> _Booking | None:
        reservation, state.reservation = state.reservation, None
        call.state = None
        return None if reservation is None else (reservation, None)

    def _settled(
        self, call: Call, state: CallState, tokens: TokenUsage, estimated: bool, status: str
    ) -> tuple[Reservation | None, Fields]:
        info = state.model
        card = state.card
        # Priced when first read, if its price is certainly known (most calls): see
        # `RateCard.deferred`. Else now, so an unknown price is warned about at this call.
        cost: Cost | Rates | None = card.deferred(tokens) if card is not None else None
        if cost is None:
            cost = card.price(tokens) if card is not None else unknown_cost(tokens)
        if type(cost) is Cost and cost.total is None and info.priced:
            missing = ", ".join(name for name in _PARTS if getattr(cost, name) is None)
            self._warn_once(
                f"{info.key}#{missing}",
                f"llm_routing: {info.key} used tokens whose price is unknown ({missing}); that "
                "call is recorded with an unknown cost. Add the missing price to its spec.",
            )
        record = record_of(call, state, tokens, cost, estimated, status)
        reservation, state.reservation = state.reservation, None
        call.state = None
        return reservation, record

    # --- the ledger: inline, or off the event loop when it does I/O -------------------------

    def _commit(self, reservation: Reservation | None, fields: Fields | None) -> list[BucketChange]:
        if fields is None:
            if reservation is not None:
                self.ledger.release(reservation)
            return []
        if reservation is not None:
            return self.ledger.settle(reservation, _record(*fields))
        add_fields = getattr(self.ledger, "add_fields", None)  # the memory ledger: no record
        return add_fields(fields) if add_fields is not None else self.ledger.add(_record(*fields))

    def _book(self, booking: _Booking) -> None:
        self._warn_crossings(self._commit(*booking))

    async def _abook(self, booking: _Booking) -> None:
        if self.ledger.blocks:
            changes = await asyncio.to_thread(self._commit, *booking)
        else:
            changes = self._commit(*booking)
        self._warn_crossings(changes)

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
