"""Budgets under a burst: how much of the budget is spent before the first call is refused.

Run from the repository root: ``python -m benchmarks.budget`` (about half a minute; ``--url
redis://…`` uses a running Redis instead of a private ``redis-server`` from PATH on a free
port). Prints a table and writes benchmarks/results/budget.json.

200 concurrent callers, each calling again as soon as it is answered, until the budget refuses
it. Every call goes through a ``CostTracker`` that holds the worst case (prompt + ``max_tokens``
at gpt-4o-mini's catalogue prices) and settles to the real usage. The model is a fake chat
model, not the simulated provider: it identifies as ``openai:gpt-4o-mini``, answers after 20-200
ms of real time and reports real ``usage_metadata`` (the prompt's tokens, 5-40 % of
``max_tokens`` as output), so the ledger logic is measured without HTTP in the way. Rows: the
in-memory ledger and a Redis ledger in one process, four processes x 50 callers sharing one
Redis ledger, each with waiting for holds (``max_wait=90``, the default) and without
(``max_wait=0``, the behaviour before holds could be waited for). ``share`` is the settled spend
at the first refusal over the budget (goal >= 0.9); ``over`` whether the spend ever passed it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import random
import time
import uuid
import warnings
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llm_routing.cost import BudgetWarning, CostTracker, Ledger, MemoryLedger
from llm_routing.errors import BudgetExceededError

RESULTS = Path(__file__).resolve().parent / "results" / "budget.json"
CALLERS = 200
PROCESSES = 4
BUDGET = Decimal("0.05")
MAX_TOKENS = 1_000
PROMPT = "Summarise the budget benchmark in one paragraph. " * 20  # about 200 tokens


class PricedFake(BaseChatModel):
    """Answers as openai:gpt-4o-mini after a short real delay, with real usage_metadata."""

    model_name: str = "gpt-4o-mini"
    max_tokens: int = MAX_TOKENS
    seed: int = 0

    @property
    def _llm_type(self) -> str:
        return "priced-fake"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider="openai", ls_model_name=self.model_name)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        raise NotImplementedError("the benchmark calls ainvoke")

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        rng = random.Random()
        await asyncio.sleep(rng.uniform(0.02, 0.2))
        prompt = sum(len(str(m.content)) for m in messages) // 4
        output = rng.randint(MAX_TOKENS // 20, MAX_TOKENS * 2 // 5)
        usage = {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}
        message = AIMessage(content="x " * output, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


async def _callers(tracker: CostTracker, count: int, start_at: float | None) -> dict[str, Any]:
    """``count`` closed-loop callers until each is refused; the first refusal's settled spend."""
    model = tracker | PricedFake()
    first: dict[str, Any] = {}
    served = 0
    if start_at is not None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()

    async def caller() -> None:
        nonlocal served
        while True:
            try:
                await model.ainvoke(PROMPT)
            except BudgetExceededError as exc:
                if not first:
                    spent = tracker.ledger.summary()["total_cost"]
                    first.update(at=time.time(), spent=str(spent), reason=str(exc)[:200])
                return
            served += 1

    await asyncio.gather(*(caller() for _ in range(count)))
    return {"served": served, "first": first, "seconds": time.perf_counter() - began}


def _ledger(kind: str, url: str | None, prefix: str) -> Ledger:
    if kind == "memory":
        return MemoryLedger()
    from llm_routing.cost.redis_ledger import RedisLedger

    assert url is not None
    return RedisLedger(url, prefix=prefix)


def _worker(url: str, prefix: str, max_wait: float, count: int, start_at: float, out: Any) -> None:
    warnings.simplefilter("ignore", BudgetWarning)  # every run crosses 80 % by design
    ledger = _ledger("redis", url, prefix)
    tracker = CostTracker(budget_usd=BUDGET, backend=ledger, max_wait=max_wait)
    try:
        out.put(asyncio.run(_callers(tracker, count, start_at)))
    finally:
        ledger.close()  # type: ignore[attr-defined]


def _row(kind: str, max_wait: float, url: str | None) -> dict[str, Any]:
    prefix = f"budget-bench-{uuid.uuid4().hex[:8]}"
    if kind == "redis x4":
        assert url is not None
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        start_at = time.time() + 3.0  # every process starts its burst at once
        processes = [
            context.Process(
                target=_worker,
                args=(url, prefix, max_wait, CALLERS // PROCESSES, start_at, out),
            )
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        parts = [out.get(timeout=600) for _ in processes]
        for process in processes:
            process.join(60)
        firsts = [p["first"] for p in parts if p["first"]]
        first = min(firsts, key=lambda f: f["at"]) if firsts else {}
        result = {
            "served": sum(p["served"] for p in parts),
            "first": first,
            "seconds": max(p["seconds"] for p in parts),
        }
        ledger = _ledger("redis", url, prefix)
    else:
        ledger = _ledger("redis" if kind == "redis" else "memory", url, prefix)
        tracker = CostTracker(budget_usd=BUDGET, backend=ledger, max_wait=max_wait)
        result = asyncio.run(_callers(tracker, CALLERS, None))
    summary = ledger.summary()
    if kind != "memory":
        ledger.reset()
        ledger.close()  # type: ignore[attr-defined]
    spent = Decimal(summary["total_cost"])
    first_spent = Decimal(result["first"]["spent"]) if result["first"] else spent
    return {
        "ledger": kind,
        "max_wait": max_wait,
        "callers": CALLERS,
        "budget_usd": str(BUDGET),
        "served": result["served"],
        "refused": summary["refused_calls"],
        "share_spent_at_first_refusal": float(first_spent / BUDGET),
        "share_spent_in_the_end": float(spent / BUDGET),
        "over": spent > BUDGET,
        "held_at_the_end": str(summary["reserved_cost"]),
        "seconds": round(result["seconds"], 2),
        "first_refusal": result["first"].get("reason"),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget", description=__doc__)
    parser.add_argument("--url", default=None, help="a running Redis (default: a private one)")
    parser.add_argument("--no-redis", action="store_true", help="the memory rows only")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", BudgetWarning)  # every run crosses 80 % by design
    rows: list[dict[str, Any]] = []
    kinds = ["memory"] if args.no_redis else ["memory", "redis", "redis x4"]
    if args.no_redis:
        url_context: Any = None
    else:
        from benchmarks.redis_ops import _server

        url_context = _server(args.url)
    url = url_context.__enter__() if url_context is not None else None
    try:
        for kind in kinds:
            for max_wait in (90.0, 0.0):
                row = _row(kind, max_wait, url)
                rows.append(row)
                print(
                    f"{kind:9} max_wait={max_wait:>4g}: share spent at first refusal "
                    f"{row['share_spent_at_first_refusal']:.3f}, in the end "
                    f"{row['share_spent_in_the_end']:.3f}, over={row['over']}, "
                    f"served {row['served']}, refused {row['refused']}, {row['seconds']}s",
                    flush=True,
                )
    finally:
        if url_context is not None:
            url_context.__exit__(None, None, None)
    results = {
        "machine": {"python": platform.python_version(), "cpus": multiprocessing.cpu_count()},
        "workload": {
            "callers": CALLERS,
            "budget_usd": str(BUDGET),
            "model": "openai:gpt-4o-mini prices, fake chat model with real usage_metadata",
            "max_tokens": MAX_TOKENS,
            "output_tokens": f"{MAX_TOKENS // 20}-{MAX_TOKENS * 2 // 5} uniform",
            "latency_s": "0.02-0.2 uniform",
        },
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
