"""CostTracker around the real ``ChatOpenAI`` against the simulated provider over HTTP.

The simulator counts every prompt and completion token it serves; the tracker's records and
costs must match those counters exactly, for invoke, streams (with and without provider usage)
and batch, and a budget must hold under 200 concurrent async calls.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from langchain_openai import ChatOpenAI
from openai import InternalServerError

from llm_routing.catalog import Price, default_catalog
from llm_routing.cost import CostTracker, estimate_cost
from llm_routing.errors import BudgetExceededError
from llm_routing.sim import FaultPlan
from llm_routing.tokens import count_tokens

MODEL = "gpt-4o-mini"
SPEC = default_catalog().get(f"openai:{MODEL}")


def chat(sim, **kwargs):
    return ChatOpenAI(model=MODEL, base_url=sim.base_url, api_key="sim", max_retries=0, **kwargs)


def served(sim):
    stats = sim.stats()["models"][MODEL]
    return stats["requests_served"], stats["prompt_tokens"], stats["completion_tokens"]


def cost_of(prompt_tokens: int, completion_tokens: int, price: Price = SPEC.price) -> Decimal:
    """The bill by hand: tokens × USD per 1M tokens."""
    return (prompt_tokens * price.input + completion_tokens * price.output) / Decimal(1_000_000)


def assert_ledger_matches_the_simulator(tracker, sim, *, calls, estimated, price=SPEC.price):
    requests, prompt, completion = served(sim)
    summary = tracker.summary(exact=True)
    records = tracker.records()
    assert requests == calls == len(records) == summary["calls"]
    assert summary["input_tokens"] == prompt
    assert summary["output_tokens"] == completion
    assert summary["total_cost"] == cost_of(prompt, completion, price)
    assert [r.estimated for r in records] == [estimated] * calls


def test_invoke_cost_matches_the_simulator_token_counts(sim):
    tracker = CostTracker()
    message = (tracker | chat(sim)).invoke("What does a cost tracker do?")
    assert_ledger_matches_the_simulator(tracker, sim, calls=1, estimated=False)
    [record] = tracker.records()
    assert record.input_tokens == message.usage_metadata["input_tokens"]
    assert record.output_tokens == message.usage_metadata["output_tokens"]
    assert (record.provider, record.model) == ("openai", MODEL)


@pytest.mark.asyncio(loop_scope="session")
async def test_ainvoke_cost_matches_the_simulator_token_counts(sim):
    tracker = CostTracker()
    await (tracker | chat(sim)).ainvoke("Hello")
    assert_ledger_matches_the_simulator(tracker, sim, calls=1, estimated=False)


def test_stream_with_provider_usage_is_priced_from_it(sim):
    tracker = CostTracker()
    chunks = list((tracker | chat(sim, stream_usage=True)).stream("Stream me an answer"))
    assert len(chunks) > 3
    assert_ledger_matches_the_simulator(tracker, sim, calls=1, estimated=False)


def test_stream_without_provider_usage_is_estimated_to_the_same_tokens(sim):
    tracker = CostTracker()
    total = None
    for chunk in (tracker | chat(sim, stream_usage=False)).stream("Stream me an answer"):
        total = chunk if total is None else total + chunk
    assert total.usage_metadata is None  # the provider really reported nothing
    # o200k counts are exact, so the estimate equals the provider's own count.
    assert_ledger_matches_the_simulator(tracker, sim, calls=1, estimated=True)


@pytest.mark.asyncio(loop_scope="session")
async def test_astream_with_provider_usage_is_priced_from_it(sim):
    tracker = CostTracker()
    async for _ in (tracker | chat(sim, stream_usage=True)).astream("Hello"):
        pass
    assert_ledger_matches_the_simulator(tracker, sim, calls=1, estimated=False)


def test_batch_records_every_call_once(sim):
    tracker = CostTracker()
    inputs = ["one", "a longer second question about budgets", "three", "four", "five"]
    results = (tracker | chat(sim)).batch(inputs, config={"tags": ["batch-job"]})
    assert len(results) == 5
    assert_ledger_matches_the_simulator(tracker, sim, calls=5, estimated=False)
    assert tracker.summary()["by_tag"]["batch-job"]["calls"] == 5


def test_max_tokens_cut_answers_are_priced_at_what_was_generated(sim):
    tracker = CostTracker()
    (tracker | chat(sim, max_tokens=4)).invoke("Hello")
    assert served(sim)[2] == 4
    assert_ledger_matches_the_simulator(tracker, sim, calls=1, estimated=False)


def test_provider_error_releases_the_hold_and_costs_nothing(sim):
    sim.set_faults(MODEL, FaultPlan.at({1: 503}))
    tracker = CostTracker(budget_usd=1)
    with pytest.raises(InternalServerError):
        (tracker | chat(sim)).invoke("Hello")
    summary = tracker.summary()
    assert (summary["calls"], summary["total_cost"], summary["reserved_cost"]) == (0, 0.0, 0.0)


def test_stream_cut_by_the_provider_is_charged_an_estimate_of_what_arrived(sim):
    # The provider bills what it generated; with no usage reported, the tracker charges the
    # prompt plus the chunks that arrived, marked estimated (an under-count, never an over-count).
    sim.set_faults(MODEL, FaultPlan.at({1: "drop"}, drop_after=3))
    tracker = CostTracker(budget_usd=1)
    received = []
    with pytest.raises(Exception):  # noqa: B017 (httpx/openai name the cut connection variously)
        for chunk in (tracker | chat(sim, stream_usage=True)).stream("Hello"):
            received.append(chunk)
    assert received
    summary = tracker.summary()
    assert (summary["calls"], summary["reserved_cost"], summary["in_flight_calls"]) == (1, 0.0, 0)
    [record] = tracker.records()
    assert record.status == "error"
    assert record.estimated is True
    assert record.output_tokens == count_tokens("".join(c.text for c in received), SPEC)
    assert record.input_tokens == count_tokens([("user", "Hello")], SPEC)


# --------------------------------------------------------------------------- budget

# A dearer twin of gpt-4o-mini, so a $0.01 budget binds after a few dozen simulated calls.
DEAR = Price(input=10, output=40)
BUDGET = Decimal("0.01")
MAX_TOKENS = 30


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("in_flight", [200, 5], ids=["all-at-once", "5-in-flight"])
@pytest.mark.filterwarnings("ignore::llm_routing.cost.BudgetWarning")
async def test_budget_holds_under_200_concurrent_calls(sim, in_flight):
    catalog = default_catalog().copy()
    catalog.register(SPEC.with_overrides(price=DEAR), replace=True)
    tracker = CostTracker(budget_usd=BUDGET, catalog=catalog)
    llm = tracker | chat(sim, max_tokens=MAX_TOKENS)
    gate = asyncio.Semaphore(in_flight)
    prompts = [f"question number {i} " + "about money " * (i % 5) for i in range(200)]

    async def one(prompt):
        async with gate:
            try:
                await llm.ainvoke(prompt)
            except BudgetExceededError as exc:
                return exc
            return None

    outcomes = await asyncio.gather(*(one(p) for p in prompts))
    refused = [o for o in outcomes if o is not None]
    records = tracker.records()
    summary = tracker.summary(exact=True)

    # Every call either ran once and was charged once, or was refused before the network.
    requests, prompt_tokens, completion_tokens = served(sim)
    assert sim.stats()["models"][MODEL]["requests_received"] == requests == len(records)
    assert len(records) + len(refused) == 200
    assert summary["refused_calls"] == len(refused) > 0
    assert summary["input_tokens"] == prompt_tokens
    assert summary["output_tokens"] == completion_tokens
    spent = summary["total_cost"]
    assert spent == cost_of(prompt_tokens, completion_tokens, DEAR)

    # Never more than the budget plus the worst estimate error of a call (0 here: exact input
    # counts, output capped by max_tokens), and the budget was really used, not refused early.
    catalog_spec = catalog.get(f"openai:{MODEL}")
    holds = {
        p: estimate_cost(catalog_spec, count_tokens([("user", p)], catalog_spec), MAX_TOKENS)
        for p in prompts
    }
    # A record's input count is exact, so its hold is recomputable from it.
    errors = [
        r.cost.total - estimate_cost(catalog_spec, r.input_tokens, MAX_TOKENS) for r in records
    ]
    assert spent <= BUDGET + max(0, max(errors))
    assert spent <= BUDGET
    assert BUDGET - spent < max(holds.values()) * min(in_flight, len(records) + 1)
    assert summary["reserved_cost"] == 0 and summary["in_flight_calls"] == 0
    assert all(isinstance(o, BudgetExceededError) and o.model == f"openai:{MODEL}" for o in refused)
