"""``max_wait`` bounds one router call: how far past it 2,000 concurrent calls wait, end to end.

Run from the repository root: ``python -m benchmarks.max_wait`` (virtual time, then real time:
about 15 s). Prints a table and writes benchmarks/results/max_wait.json.

2,000 router calls start at once (asyncio, one event loop) on a router of two fake chat models
named like ``openai:gpt-4o-mini`` and ``openai:gpt-4o`` behind one ``RateScheduler`` with
``max_wait=6``. The limits (9,000 and 6,000 RPM) admit fewer calls within 6 s than arrive, so
calls queue for capacity, are refused at once when their turn would come too late and fall
back; each model also answers 20 % of its requests with a 429 whose Retry-After is 0.5-4 s,
so calls sleep reactively too, often on both models. A model answers after 0.2-1.5 s of its
own latency, which is not waiting and is subtracted: a call's *wait* is its time from start to
end minus the latency of the models it called. The *overshoot* is that wait minus max_wait
(negative: under it); the goal is p99 <= 50 ms. ``accounted`` is what the call's `Waiting`
counted (the schedulers' own figures).

Rows: ``virtual`` (a ``VirtualClock``: the rule itself, exact), ``real`` (``ScaledClock(1)``,
the event loop's own timer lateness and 2,000 tasks of CPU included). ``--per-attempt`` runs
the behaviour before this change (each attempt had its own max_wait) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import openai
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llm_routing import _waiting
from llm_routing.errors import AllModelsFailedError
from llm_routing.router import Router
from llm_routing.schedule import RateScheduler, ScaledClock, VirtualClock

RESULTS = Path(__file__).resolve().parent / "results" / "max_wait.json"
CALLS = 2_000
MAX_WAIT = 6.0
_EXACT = {"request_margin": 0, "token_headroom": 0.0}
LIMITS = {
    "openai:gpt-4o-mini": {"rpm": 3_000, "tpm": 100_000_000, **_EXACT},
    "openai:gpt-4o": {"rpm": 2_400, "tpm": 100_000_000, **_EXACT},
}
RATE_LIMITED = 0.01
RETRY_AFTER = (0.5, 3.0)
LATENCY = (0.2, 1.5)

# The models' own latency in the current call, so it is not counted as waiting.
_LATENCY: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "benchmark_latency", default=None
)
_REQUEST = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")


def _rate_limited(retry_after: float) -> openai.RateLimitError:
    # Typed Any: newer openai SDKs declare httpx2's Response; both carry the headers it reads.
    response: Any = httpx.Response(
        429, headers={"retry-after": f"{retry_after:.3f}"}, request=_REQUEST
    )
    body = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
    return openai.RateLimitError("Rate limit reached", response=response, body=body)


class Timed(BaseChatModel):
    """A fake chat model with its own latency and a share of 429s (seeded, so runs repeat)."""

    model_name: str
    clock: Any
    seed: int = 0
    rng: Any = None

    @property
    def _llm_type(self) -> str:
        return "benchmark-fake"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        return params

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        raise NotImplementedError("async only")

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        if self.rng is None:
            self.rng = random.Random(self.seed)
        if self.rng.random() < RATE_LIMITED:
            raise _rate_limited(self.rng.uniform(*RETRY_AFTER))
        latency = self.rng.uniform(*LATENCY)
        started = self.clock.now()
        await self.clock.asleep(latency)
        spent = _LATENCY.get()
        if spent is not None:
            spent.append(self.clock.now() - started)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok"))])


def _router(clock: Any) -> tuple[Router, RateScheduler]:
    scheduler = RateScheduler(limits=LIMITS, max_wait=MAX_WAIT, clock=clock)
    models = [
        scheduler | Timed(model_name="gpt-4o-mini", clock=clock, seed=1),
        scheduler | Timed(model_name="gpt-4o", clock=clock, seed=2),
    ]
    router = Router(models, ["openai:gpt-4o-mini", "openai:gpt-4o"], settings={})
    return router, scheduler


async def _one(router: Router, clock: Any) -> dict[str, Any]:
    spent: list[float] = []
    _LATENCY.set(spent)
    waiting = _waiting.Waiting()
    _waiting.swap(waiting)  # the router shares this call's Waiting: read back what it counted
    start = clock.now()
    try:
        answer = await router.ainvoke("hi")
        outcome = answer.response_metadata["llm_routing.model"]
    except AllModelsFailedError as exc:
        outcome = "failed: " + "+".join(attempt.kind.value for attempt in exc.attempts)
    waited = clock.now() - start - sum(spent)
    return {"outcome": outcome, "waited": waited, "accounted": waiting.waited}


async def _run(clock: Any) -> list[dict[str, Any]]:
    router, _ = _router(clock)
    return list(await asyncio.gather(*(_one(router, clock) for _ in range(CALLS))))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(rows: list[dict[str, Any]], factor: float) -> dict[str, Any]:
    over = [row["waited"] - MAX_WAIT for row in rows]
    accounted = [row["accounted"] - MAX_WAIT for row in rows]
    outcomes: dict[str, int] = {}
    for row in rows:
        outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
    waited = [row["waited"] for row in rows]
    return {
        "calls": len(rows),
        "outcomes": outcomes,
        "waited_mean_s": round(statistics.fmean(waited), 3),
        "waited_max_s": round(max(waited), 3),
        "overshoot_p50_ms": round(_quantile(over, 0.5) * 1000 / factor, 1),
        "overshoot_p99_ms": round(_quantile(over, 0.99) * 1000 / factor, 1),
        "overshoot_max_ms": round(max(over) * 1000 / factor, 1),
        "calls_that_waited": sum(1 for value in waited if value > 0.001),
        "over_max_wait": sum(1 for value in over if value > 0),
        "accounted_overshoot_max_ms": round(max(accounted) * 1000 / factor, 1),
    }


def _per_attempt() -> None:
    """The behaviour before: schedulers ignore the router call's Waiting (max_wait per attempt)."""
    from llm_routing.schedule import attempt

    attempt.current = lambda: None  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both rows, print them, write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-attempt", action="store_true", help="the old per-attempt bound")
    parser.add_argument("--only", choices=["virtual", "real"], help="run one row")
    args = parser.parse_args(argv)
    if args.per_attempt:
        _per_attempt()
    results: dict[str, Any] = {}
    for name, make in (("virtual", VirtualClock), ("real", lambda: ScaledClock(1.0))):
        if args.only and name != args.only:
            continue
        clock = make()
        began = time.perf_counter()
        rows = asyncio.run(_run(clock))
        summary = _summary(rows, 1.0)
        summary["run_s"] = round(time.perf_counter() - began, 1)
        results[name] = summary
        print(
            f"{name:8s} calls={summary['calls']} outcomes={summary['outcomes']} "
            f"waited={summary['calls_that_waited']} mean={summary['waited_mean_s']}s "
            f"max={summary['waited_max_s']}s | "
            f"overshoot past max_wait={MAX_WAIT:g}s: p50={summary['overshoot_p50_ms']} ms "
            f"p99={summary['overshoot_p99_ms']} ms max={summary['overshoot_max_ms']} ms "
            f"(calls over: {summary['over_max_wait']}; accounted max "
            f"{summary['accounted_overshoot_max_ms']} ms) [{summary['run_s']} s]"
        )
    if not args.per_attempt:
        document = {
            "machine": {"python": platform.python_version(), "cpus": _cpus()},
            "max_wait_s": MAX_WAIT,
            "calls": CALLS,
            "rows": results,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    return results


def _cpus() -> int | None:
    import os

    return os.cpu_count()


if __name__ == "__main__":
    main()
