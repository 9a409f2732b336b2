"""One tracked call from the tracker's side: its worst case before, its record after, its waits.

Owns `CallState` (the tracker's ``call.state``), `worst_case` (what a call may cost and the
buckets it counts against, before anything is held), the tokens a call used (``used_*``: as
reported, else counted locally), `record_of` (the `CostRecord` it leaves) and the accounting
of its wait for budget holds against ``max_wait``. The tracker
(``cost.tracker``) runs them in its hooks; keeping them here lets the hooks read as the
lifecycle they are (hold, then settle or release exactly once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from llm_routing._decorator import Call
from llm_routing._waiting import Waiting, current
from llm_routing.cost._rates import RateCard, Rates
from llm_routing.cost._usage import (
    ModelInfo,
    count_input,
    estimate_usage,
    parsed,
    reserved_output,
    run_ids,
    usage_from_error,
    usage_of,
)
from llm_routing.cost.budget import Bucket, Budget, buckets_for
from llm_routing.cost.ledger import Ledger, Reservation
from llm_routing.cost.pricing import (
    Cost,
    TokenUsage,
    parse_usage,
    requested_service_tier,
    service_tier_of,
)
from llm_routing.cost.record import Fields, _Epoch

__all__ = [
    "CallState",
    "count_wait",
    "record_of",
    "used_before_cancel",
    "used_before_error",
    "used_by_answer",
    "wait_left",
    "waiting_since",
    "worst_case",
]

logger = logging.getLogger("llm_routing.cost")

_monotonic = time.monotonic


class CallState:
    """The tracker's per-call slot (``call.state``): who, when, what it holds.

    ``now`` is the call's start as the tracker's clock gave it (seconds since the epoch); the
    UTC ``datetime`` (`started`) is made only when something reads it: a budget's periods, a
    refusal's message, or whoever reads the record's ``time``.
    """

    __slots__ = (
        "_started",
        "card",
        "estimate",
        "input_tokens",
        "model",
        "now",
        "output_reserve",
        "reservation",
        "t0",
    )

    def __init__(self, model: ModelInfo, card: RateCard | None, now: float) -> None:
        self.model = model
        self.card = card  # the model's prices, prepared once (None: unpriced)
        self.now = now
        self._started: datetime | None = None
        self.t0 = _monotonic()
        self.input_tokens: int | None = None
        self.output_reserve: int | None = None
        self.estimate: Decimal | None = None
        self.reservation: Reservation | None = None

    @property
    def started(self) -> datetime:
        """When the call started, in UTC."""
        started = self._started
        if started is None:
            started = self._started = datetime.fromtimestamp(self.now, UTC)
        return started


def worst_case(
    call: Call,
    info: ModelInfo,
    card: RateCard | None,
    budgets: Sequence[Budget],
    now: float,
    reserve_output: int | None,
) -> tuple[CallState, list[Bucket]]:
    """The call's state with its worst case, and the buckets it counts against (none held).

    The worst case is computed when a budget needs it or when the guard's count makes it
    free (it is then shown as ``llm_routing.estimated_cost_usd``); a plain priced call
    without budgets skips it.
    """
    state = CallState(info, card, now)
    buckets = buckets_for(budgets, state.started, call.config.get("tags") or ()) if budgets else []
    upstream = call.upstream.get("llm_routing.input_tokens")
    if (
        type(upstream) is int or (isinstance(upstream, int) and not isinstance(upstream, bool))
    ) and upstream >= 0:
        state.input_tokens = upstream
    if card is None or not info.priced or not (buckets or state.input_tokens is not None):
        return state, buckets
    if state.input_tokens is None:
        state.input_tokens = count_input(call, info)
    kwargs = call.invocation_kwargs  # a merged dict, built once here
    state.output_reserve = reserved_output(call, info, reserve_output, kwargs)
    # Held at the rates of the tier the call asks for: priority bills about 2x standard.
    tier = (
        info.service_tier  # the model's own, read once
        if not kwargs or kwargs.get("service_tier") is None
        else requested_service_tier(call.model, kwargs)
    )
    if not buckets:  # nothing to hold: only the float it shows, without Decimal arithmetic
        shown = card.estimate_usd(state.input_tokens, state.output_reserve, tier)
        if shown is not None:
            call.metadata["llm_routing.estimated_cost_usd"] = shown
        return state, buckets
    state.estimate = card.estimate(state.input_tokens, state.output_reserve, tier)
    if state.estimate is not None:
        call.metadata["llm_routing.estimated_cost_usd"] = float(state.estimate)
    return state, buckets


def used_by_answer(call: Call, state: CallState, output: Any) -> tuple[TokenUsage, bool]:
    """The tokens of an answer and whether they were estimated (no usage, or malformed)."""
    usage = usage_of(output)
    if usage is not None:
        try:
            # Billed at the tier the response says served it (flex, priority, scale…).
            return parse_usage(usage, service_tier_of(output)), False
        except (TypeError, ValueError) as exc:
            logger.warning("malformed usage_metadata from %s: %s", state.model.key, exc)
    return estimate_usage(call, state.model, state.input_tokens, output), True


def used_before_error(
    call: Call, state: CallState, error: Exception
) -> tuple[TokenUsage | None, bool]:
    """What a failed call used, and whether it is an estimate.

    Reported usage wins (on the error, or in the chunks a stream delivered before it broke),
    else an estimate of the chunks received; ``None`` when the provider processed nothing
    (then the hold is released).
    """
    tokens = parsed(usage_from_error(error))
    if tokens is None and call.partial is not None:
        tokens = parsed(usage_of(call.partial))
        if tokens is None:
            return estimate_usage(call, state.model, state.input_tokens, call.partial), True
    return tokens, False


def used_before_cancel(call: Call, state: CallState, partial: Any) -> tuple[TokenUsage, bool]:
    """What a stream closed early generated: its reported usage, else an estimate."""
    usage = usage_of(partial)
    try:
        tokens = parse_usage(usage) if usage is not None else None
    except (TypeError, ValueError):
        tokens = None
    if tokens is None:
        return estimate_usage(call, state.model, state.input_tokens, partial), True
    return tokens, False


def record_of(
    call: Call,
    state: CallState,
    tokens: TokenUsage,
    cost: Cost | Rates,
    estimated: bool,
    status: str,
) -> Fields:
    """The record a call leaves, as its `Fields`: its tokens, its cost, what its config says.

    Fields, because the memory ledger keeps them as they are (``add_fields``) and builds the
    `CostRecord` only when read; other ledgers get ``_record(*fields)``. Its time is the
    call's start as the clock gave it, made a ``datetime`` only when read (`cost.record._Time`),
    unless a budget needed the ``datetime`` already. ``cost`` may be the `Rates` that price it
    when it is first read (`RateCard.deferred`).
    """
    info = state.model
    config = call.config
    # Most calls have neither a run id nor callbacks in their config: run_ids only if so.
    run_id, parent = (
        run_ids(config)
        if config.get("run_id") is not None or config.get("callbacks") is not None
        else (None, None)
    )
    tags = config.get("tags")
    metadata = config.get("metadata")
    started = state._started
    return (
        _Epoch(state.now) if started is None else started,
        info.provider,
        info.name,
        tokens,
        cost,
        estimated,
        status,
        run_id,
        parent,
        tuple(tags) if tags else (),
        dict(metadata) if metadata else {},
        _monotonic() - state.t0,
    )


def wait_left(call: Call, max_wait: float) -> float:
    """What is left of ``max_wait`` once the scheduler's wait for this call is counted.

    One ``max_wait`` bounds the call's waits end to end: a call that queued 80 s for rate
    capacity waits at most 10 s more for budget holds, not another 90.
    """
    waiting = current()
    if waiting is not None:
        # Inside a router call: every attempt's waits so far, this one's scheduler's too.
        return waiting.left(max_wait)
    waited = call.upstream.get("llm_routing.wait_s")
    if isinstance(waited, int | float) and not isinstance(waited, bool) and waited > 0:
        return max(0.0, max_wait - float(waited))
    return max_wait


def waiting_since(ledger: Ledger) -> tuple[Waiting | None, float]:
    """The router call's `Waiting` and the ledger's time, when this runs inside one."""
    waiting = current()
    return waiting, (ledger.clock.now() if waiting is not None else 0.0)


def count_wait(ledger: Ledger, waiting: Waiting | None, started: float) -> None:
    """Count the wait for holds to settle against the router call, if any.

    A fallback (or the scheduler's retry) after it then waits only what is left. The
    ledger's clock is read only inside a router call: a plain call pays nothing for it.
    """
    if waiting is not None:
        waiting.add(ledger.clock.now() - started)
