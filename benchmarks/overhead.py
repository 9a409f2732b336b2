"""Per-call overhead of the decorators and the router over a bare chat model, without network.

Run from the repository root: ``python -m benchmarks.overhead``. Prints a table and writes
benchmarks/results/overhead.json. Every number is the median of interleaved rounds. Side by side
with what users would pick instead: LangChain's own ``with_fallbacks`` over the same three
models (and LiteLLM's Router when it is installed), for ``invoke`` and for ``ainvoke``.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import langchain_core
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llm_routing.catalog import Catalog, Limits, ModelSpec, Price, default_catalog
from llm_routing.cost import CostTracker
from llm_routing.guard import ContextGuard
from llm_routing.router import build_router
from llm_routing.schedule import RateScheduler

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "overhead.json"
ROUNDS = 15
CALLS_PER_ROUND = 300
GOAL_ROUTER_RATIO = 1.6  # issue 18: the full router within 1.6x the bare model (stretch 1.3x)
PROMPT = [("system", "You are terse."), ("user", "Say hello in one word.")]
HUGE_PROMPT = "word " * 200_000  # ~1 MB, ~200,000 tokens: counting it takes tens of ms
BIG_WINDOW = 1_000_000
GOAL_STALL_MS = 5.0  # issue 18: a ~1 MB prompt stalls the event loop <= 5 ms during ainvoke
STALL_CALLS = 5


class FixedChatModel(BaseChatModel):
    """Answers every call with the same message: no network, reusable for any number of calls."""

    model_name: str = "bench-fixed"

    @property
    def _llm_type(self) -> str:
        return "fixed"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = AIMessage(
            content="Hello.",
            usage_metadata={"input_tokens": 20, "output_tokens": 2, "total_tokens": 22},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def fixed(name: str, window: int = 128_000) -> FixedChatModel:
    """A fixed model whose profile gives the guard a window, so no catalogue entry is needed."""
    return FixedChatModel(model_name=name, profile={"max_input_tokens": window})


class Awaited:
    """An async row: ``calls`` awaits in one coroutine on a kept loop, so the loop's own start
    per ``run_until_complete`` is not in the figure (it would flatter every async ratio)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        import asyncio

        self.fn = fn
        self.loop = asyncio.new_event_loop()

    def run(self, calls: int) -> None:
        async def many() -> None:
            for _ in range(calls):
                await self.fn()

        self.loop.run_until_complete(many())


def per_call(fn: Callable[[], Any] | Awaited, calls: int = CALLS_PER_ROUND) -> float:
    start = time.perf_counter()
    if isinstance(fn, Awaited):
        fn.run(calls)
    else:
        for _ in range(calls):
            fn()
    return (time.perf_counter() - start) / calls


def interleaved(fns: dict[str, Any], rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds per call for each function, rounds interleaved so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(per_call(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def litellm_row() -> Callable[[], Any] | None:
    """LiteLLM's Router with a mocked response, when litellm happens to be installed."""
    try:
        from litellm import Router as LiteRouter  # type: ignore[import-not-found]
    except ImportError:
        return None
    deployments = [
        {"model_name": "bench", "litellm_params": {"model": f"openai/bench-{i}", "api_key": "x"}}
        for i in range(3)
    ]
    lite = LiteRouter(model_list=deployments, fallbacks=[{"bench": ["bench"]}])
    messages = [{"role": role, "content": text} for role, text in PROMPT]
    return lambda: lite.completion(model="bench", messages=messages, mock_response="Hello.")


def bench_catalog() -> Catalog:
    """The fakes as priced catalogue models with limits far above what the run sends.

    So the scheduler takes its full path (windows, settle) without ever waiting, and the
    tracker prices every call, as with a real catalogued model.
    """
    catalog = default_catalog().copy()
    for name in ("bench-a", "bench-b", "bench-c", "bench-big"):
        catalog.register(
            ModelSpec(
                provider="fixedchatmodel",
                name=name,
                context_window=BIG_WINDOW if name == "bench-big" else 128_000,
                price=Price(input=0.15, output=0.6),
                rate_limits={"tier1": Limits(rpm=10**9, tpm=10**12)},
            )
        )
    return catalog


async def _heartbeat_lateness(work: Callable[[], Any], calls: int) -> list[float]:
    """How late (seconds) a coroutine sleeping 1 ms wakes, tick by tick, while ``work()`` is
    awaited ``calls`` times: the event loop's stalls, measured as benchmarks/huge_input does."""
    from benchmarks.huge_input import _with_heartbeat

    async def repeated() -> None:
        for _ in range(calls):
            await work()

    _, late = await _with_heartbeat(repeated())
    return late


def loop_stalls(router: Any) -> dict[str, float]:
    """Max and p99 event-loop stall (ms) during ``ainvoke`` of a ~1 MB prompt, and the
    heartbeat alone over as long (the machine's own noise)."""
    import asyncio

    async def measure() -> tuple[list[float], list[float], float]:
        await router.ainvoke(HUGE_PROMPT)  # warm: thread pool, encodings
        start = time.perf_counter()
        busy = await _heartbeat_lateness(lambda: router.ainvoke(HUGE_PROMPT), STALL_CALLS)
        seconds = time.perf_counter() - start
        idle = await _heartbeat_lateness(lambda: asyncio.sleep(seconds / STALL_CALLS), STALL_CALLS)
        return busy, idle, seconds / STALL_CALLS

    busy, idle, per_call_s = asyncio.run(measure())

    def ms(late: list[float], q: float) -> float:
        ordered = sorted(late)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3

    return {
        "max_stall_ms": ms(busy, 1.0),
        "p99_stall_ms": ms(busy, 0.99),
        "idle_max_stall_ms": ms(idle, 1.0),
        "idle_p99_stall_ms": ms(idle, 0.99),
        "ms_per_call": per_call_s * 1e3,
        "goal_stall_ms": GOAL_STALL_MS,
    }


def _base(name: str, base: float, base_async: float) -> float:
    return base_async if name.endswith("_ainvoke") else base


def main() -> None:
    catalog = bench_catalog()
    bare = fixed("bench-a")
    guarded = ContextGuard(catalog=catalog) | fixed("bench-a")
    stack = (
        ContextGuard(catalog=catalog)
        | RateScheduler(catalog=catalog)
        | CostTracker(catalog=catalog)
    )
    full = stack | fixed("bench-a")
    # The scheduler's own share: guard_scheduler - guard (the guard's count reaches it, so it
    # counts nothing itself), for invoke and ainvoke.
    guard_scheduler = (
        ContextGuard(catalog=catalog) | RateScheduler(catalog=catalog) | fixed("bench-a")
    )
    # The tracker's own share: guard_tracker - guard (it prices from the guard's count).
    guard_tracker = ContextGuard(catalog=catalog) | CostTracker(catalog=catalog) | fixed("bench-a")
    guard_router = build_router(
        fixed("bench-a"),
        fallbacks=[fixed("bench-b"), fixed("bench-c")],
        guard=ContextGuard(catalog=catalog),
        scheduler=False,
        tracker=False,
    )
    router = build_router(
        fixed("bench-a"),
        fallbacks=[fixed("bench-b"), fixed("bench-c")],
        guard=ContextGuard(catalog=catalog),
        scheduler=RateScheduler(catalog=catalog),
        tracker=CostTracker(catalog=catalog),
    )
    answer = router.invoke(PROMPT)
    assert answer.response_metadata["llm_routing.model"].endswith("bench-a")
    assert guarded.invoke(PROMPT).content == bare.invoke(PROMPT).content == "Hello."

    langchain = fixed("bench-a").with_fallbacks([fixed("bench-b"), fixed("bench-c")])
    fns: dict[str, Any] = {
        "bare": lambda: bare.invoke(PROMPT),
        "guard": lambda: guarded.invoke(PROMPT),
        "guard_scheduler": lambda: guard_scheduler.invoke(PROMPT),
        "guard_scheduler_tracker": lambda: full.invoke(PROMPT),
        "guard_tracker": lambda: guard_tracker.invoke(PROMPT),
        "langchain_with_fallbacks_3": lambda: langchain.invoke(PROMPT),
        "router_3_models_guard_only": lambda: guard_router.invoke(PROMPT),
        "router_3_models_full_stack": lambda: router.invoke(PROMPT),
        "bare_ainvoke": Awaited(lambda: bare.ainvoke(PROMPT)),
        "guard_ainvoke": Awaited(lambda: guarded.ainvoke(PROMPT)),
        "guard_scheduler_ainvoke": Awaited(lambda: guard_scheduler.ainvoke(PROMPT)),
        "guard_tracker_ainvoke": Awaited(lambda: guard_tracker.ainvoke(PROMPT)),
        "langchain_with_fallbacks_3_ainvoke": Awaited(lambda: langchain.ainvoke(PROMPT)),
        "router_3_models_full_stack_ainvoke": Awaited(lambda: router.ainvoke(PROMPT)),
    }
    big_router = build_router(
        fixed("bench-big", BIG_WINDOW),
        guard=ContextGuard(catalog=catalog),
        scheduler=RateScheduler(catalog=catalog),
        tracker=CostTracker(catalog=catalog),
    )
    lite = litellm_row()
    if lite is not None:
        fns["litellm_router_mock"] = lite
    for fn in fns.values():  # warm caches (encodings, spec lookups, pydantic)
        per_call(fn, 50)
    t = interleaved(fns)
    stalls = loop_stalls(big_router)

    base = t["bare"]
    base_async = t["bare_ainvoke"]
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "langchain_core": langchain_core.__version__,
        "rounds": ROUNDS,
        "calls_per_round": CALLS_PER_ROUND,
        "us_per_call": {name: seconds * 1e6 for name, seconds in t.items()},
        "ratio_vs_bare": {
            name: seconds / _base(name, base, base_async) for name, seconds in t.items()
        },
        "added_us": {
            name: (seconds - _base(name, base, base_async)) * 1e6 for name, seconds in t.items()
        },
        "goal_router_ratio": GOAL_ROUTER_RATIO,
        "huge_prompt_ainvoke": stalls,
        "litellm": "measured" if lite is not None else "not installed",
    }
    goal = f"goal <= {GOAL_ROUTER_RATIO:.1f}x"
    notes = {"router_3_models_full_stack": goal, "router_3_models_full_stack_ainvoke": goal}
    width = max(len(name) for name in t)
    print(f"{'path':<{width}}  {'us/call':>9}  {'vs bare':>8}  {'added':>9}  note")
    for name, seconds in t.items():
        ref = _base(name, base, base_async)
        print(
            f"{name:<{width}}  {seconds * 1e6:>9.1f}  {seconds / ref:>7.2f}x  "
            f"{(seconds - ref) * 1e6:>7.1f}us  {notes.get(name, '')}"
        )
    print("ratios of *_ainvoke rows are against bare_ainvoke; the others against bare")
    print(
        f"ainvoke of a ~1 MB prompt through the full stack ({stalls['ms_per_call']:.0f} ms a "
        f"call): event-loop stall max {stalls['max_stall_ms']:.1f} ms, p99 "
        f"{stalls['p99_stall_ms']:.1f} ms (goal <= {GOAL_STALL_MS:g} ms); heartbeat alone: "
        f"max {stalls['idle_max_stall_ms']:.1f} ms, p99 {stalls['idle_p99_stall_ms']:.1f} ms"
    )
    if lite is None:
        print("litellm not installed: no LiteLLM row")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
