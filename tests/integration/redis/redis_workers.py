"""Worker processes for the multi-process tests (spawned: importable, top-level functions)."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_openai import ChatOpenAI

from llm_routing.errors import BudgetExceededError, RateLimitExhaustedError


def _tally(results: list[Any]) -> dict[str, Any]:
    served = sum(1 for r in results if not isinstance(r, BaseException))
    refused = sum(1 for r in results if isinstance(r, RateLimitExhaustedError))
    over_budget = sum(1 for r in results if isinstance(r, BudgetExceededError))
    other = [
        repr(r)
        for r in results
        if isinstance(r, BaseException)
        and not isinstance(r, RateLimitExhaustedError | BudgetExceededError)
    ]
    return {"served": served, "refused": refused, "over_budget": over_budget, "other": other}


def burst(
    redis_url: str,
    prefix: str,
    base_url: str,
    bursts: list[tuple[str, dict[str, Any], int, int]],
    use_async: bool,
    barrier: Any,
    results: Any,
) -> None:
    """For each (model, limits, requests, max_tokens): wait for every worker, then fire at once.

    Every request goes through a RateScheduler sharing its windows in Redis and a real
    ChatOpenAI client; refusals (max_wait) are counted, every other failure is reported.
    """
    from llm_routing.schedule import RateScheduler
    from llm_routing.schedule.redis import RedisBackend

    backend = RedisBackend(redis_url, prefix=prefix)

    def model_for(model: str, limits: dict[str, Any], max_tokens: int) -> Any:
        scheduler = RateScheduler(
            limits={f"openai:{model}": limits},
            max_wait=2.0,
            backend=backend,
            clock=backend.server_clock,
        )
        return scheduler | ChatOpenAI(
            model=model, base_url=base_url, api_key="sim", max_retries=0, max_tokens=max_tokens
        )

    def prompts(count: int) -> list[str]:
        return [f"request {n} from this worker" for n in range(count)]

    async def run_async() -> list[dict[str, Any]]:
        out = []
        for model, limits, count, max_tokens in bursts:
            llm = model_for(model, limits, max_tokens)
            barrier.wait(180)
            config = {"max_concurrency": count}
            out.append(_tally(await llm.abatch(prompts(count), config, return_exceptions=True)))
        await backend.aclose()
        return out

    try:
        if use_async:
            results.put(asyncio.run(run_async()))
            return
        out = []
        for model, limits, count, max_tokens in bursts:
            llm = model_for(model, limits, max_tokens)
            barrier.wait(180)
            config = {"max_concurrency": count}
            out.append(_tally(llm.batch(prompts(count), config, return_exceptions=True)))
        results.put(out)
    finally:
        backend.close()


def spend(
    redis_url: str,
    prefix: str,
    base_url: str,
    budget_usd: float,
    count: int,
    barrier: Any,
    results: Any,
) -> None:
    """Send ``count`` priced calls through a CostTracker whose ledger and budget live in Redis."""
    from llm_routing.cost import CostTracker
    from llm_routing.cost.redis_ledger import RedisLedger

    ledger = RedisLedger(redis_url, prefix=prefix)
    try:
        tracker = CostTracker(budget_usd=budget_usd, backend=ledger)
        llm = tracker | ChatOpenAI(
            model="gpt-4o", base_url=base_url, api_key="sim", max_retries=0, max_tokens=200
        )
        prompts = [f"spend request {n}" for n in range(count)]
        barrier.wait(180)
        replies = llm.batch(prompts, {"max_concurrency": 8}, return_exceptions=True)
        results.put(_tally(replies))
    finally:
        ledger.close()


def hold_slots_and_hang(
    redis_url: str, prefix: str, lease_s: float, slots: int, started: Any
) -> None:
    """Fill every ``max_concurrency`` slot with calls to a provider that never answers.

    The provider is a socket that accepts and stays silent, so the real ChatOpenAI calls stay
    in flight (and this process renews their leases) until the test SIGKILLs the process.
    """
    import socket
    import threading

    from llm_routing.schedule import RateScheduler
    from llm_routing.schedule.redis import RedisBackend

    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            connection, _ = silent.accept()
            accepted.append(connection)
            if len(accepted) == slots:
                started.put("in flight")

    threading.Thread(target=accept, daemon=True).start()
    backend = RedisBackend(redis_url, prefix=prefix, lease_s=lease_s)
    scheduler = RateScheduler(
        limits={"openai:gpt-4o-mini": {"max_concurrency": slots}},
        backend=backend,
        clock=backend.server_clock,
    )
    model = scheduler | ChatOpenAI(
        model="gpt-4o-mini",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="sim",
        max_retries=0,
        timeout=3_600,
    )
    calls = [
        threading.Thread(target=model.invoke, args=(f"call {n}",), daemon=True)
        for n in range(slots)
    ]
    for call in calls:
        call.start()
    threading.Event().wait()  # until SIGKILL
