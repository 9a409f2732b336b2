"""Huge message lists: how fast a two-model router refuses them, and how long the loop stalls.

Run from the repository root: ``python -m benchmarks.huge_input`` (add ``--baseline`` to also
time an exact count of the 1,000,000 messages, which is what every model of the router paid
before the lower-bound early exit: about 9 s each). Prints a table and writes
benchmarks/results/huge_input.json.

* refusal: 1,000,000 tiny messages through ``gpt-4o-mini -> gpt-4.1-mini`` (the default stack
  around real ``ChatOpenAI`` clients pointed at a closed port, so nothing could be sent), sync
  and async; goal <= 1 s.
* stall: a heartbeat coroutine sleeping 1 ms records how late it wakes (max and p99) while
  another task awaits: the refusal; the guard alone counting 300,000 messages that fit a
  4,000,000-token window (in a worker thread, paced to hand over the GIL every 0.5 ms); and a
  whole ``ainvoke`` of them with and without the guard, which shows the share of LangChain's own
  on-loop work (validating the messages into a prompt value), outside the guard. The first
  row, the heartbeat alone, is the machine's own noise; goal <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_openai import ChatOpenAI

from llm_routing import AllModelsFailedError, ContextGuard, build_router, count_tokens
from llm_routing._decorator import Call

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "huge_input.json"
REFUSE_MESSAGES = 1_000_000
FIT_MESSAGES = 300_000
BIG_WINDOW = 4_000_000
HEARTBEAT_S = 0.001
REPEATS = 5


class _Answers(BaseChatModel):
    """A model that answers at once, so a call costs only the guard's count and LangChain's."""

    @property
    def _llm_type(self) -> str:
        return "answers"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])


def _closed_port(model: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=model, base_url="http://127.0.0.1:9/v1", api_key="sk-unused", max_retries=0
    )


def _refuse_sync(router: Any, messages: list[Any]) -> None:
    try:
        router.invoke(messages)
    except AllModelsFailedError:
        return
    raise AssertionError("the router answered an input that cannot fit")


async def _refuse_async(router: Any, messages: list[Any]) -> None:
    try:
        await router.ainvoke(messages)
    except AllModelsFailedError:
        return
    raise AssertionError("the router answered an input that cannot fit")


async def _with_heartbeat(work: Any) -> tuple[float, list[float]]:
    """``(seconds of work, heartbeat lateness in seconds per tick)`` while ``work`` runs."""
    done = asyncio.Event()
    late: list[float] = []

    async def heartbeat() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(HEARTBEAT_S)
            late.append(time.perf_counter() - before - HEARTBEAT_S)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(HEARTBEAT_S * 3)  # the heartbeat is running before the work starts
    late.clear()
    start = time.perf_counter()
    try:
        await work
    finally:
        seconds = time.perf_counter() - start
        done.set()
        await beat
    return seconds, late


def _stalls(late: list[float]) -> dict[str, float]:
    ordered = sorted(late)
    return {
        "max_stall_ms": ordered[-1] * 1e3,
        "p99_stall_ms": ordered[int(len(ordered) * 0.99)] * 1e3,
        "heartbeat_ticks": len(ordered),
    }


async def _guard_only(guard: ContextGuard, model: Any, messages: list[Any]) -> None:
    call = Call(messages, {}, {}, model, {}, streaming=False)
    await guard.abefore(call)
    assert call.metadata["llm_routing.input_tokens"] > len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="store_true", help="also time an exact count")
    args = parser.parse_args()

    router = build_router(_closed_port("gpt-4o-mini"), fallbacks=[_closed_port("gpt-4.1-mini")])
    answers = _Answers(profile={"max_input_tokens": BIG_WINDOW})
    big = build_router(answers, scheduler=False, tracker=False)
    big_unguarded = build_router(answers, guard=False, scheduler=False, tracker=False)
    huge = [("user", "hi")] * REFUSE_MESSAGES
    fitting = [HumanMessage("hi") for _ in range(FIT_MESSAGES)]
    _refuse_sync(router, huge[:100_000])  # warm up imports, catalogue and encodings
    count_tokens("warm up", "estimate:generic")

    sync_s: list[float] = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        _refuse_sync(router, huge)
        sync_s.append(time.perf_counter() - start)

    async def measure() -> dict[str, Any]:
        _, idle = await _with_heartbeat(asyncio.sleep(2.0))
        async_s: list[float] = []
        refusal_late: list[float] = []
        for _ in range(REPEATS):
            seconds, late = await _with_heartbeat(_refuse_async(router, huge))
            async_s.append(seconds)
            refusal_late += late
        guard_s, guard_late = await _with_heartbeat(_guard_only(ContextGuard(), answers, fitting))
        routed_s, routed_late = await _with_heartbeat(big.ainvoke(fitting))
        bare_s, bare_late = await _with_heartbeat(big_unguarded.ainvoke(fitting))
        return {
            "idle": _stalls(idle),
            "refusal": {"async_ms": statistics.median(async_s) * 1e3, **_stalls(refusal_late)},
            "guard": {"seconds": guard_s, **_stalls(guard_late)},
            "routed": {"seconds": routed_s, **_stalls(routed_late)},
            "unguarded": {"seconds": bare_s, **_stalls(bare_late)},
        }

    measured = asyncio.run(measure())
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "switch_interval_ms": sys.getswitchinterval() * 1e3,
        "heartbeat_idle_2s": measured["idle"],
        "refuse_1m_messages_two_model_router": {
            "messages": REFUSE_MESSAGES,
            "sync_ms": statistics.median(sync_s) * 1e3,
            **measured["refusal"],
            "goal_ms": 1000.0,
            "goal_stall_ms": 5.0,
        },
        "count_300k_messages_fitting_4m_window_async": {
            "messages": FIT_MESSAGES,
            "guard_only": measured["guard"],
            "router_with_guard": measured["routed"],
            "router_without_guard": measured["unguarded"],
            "goal_stall_ms": 5.0,
        },
    }
    if args.baseline:
        start = time.perf_counter()
        count_tokens(huge, "openai:gpt-4o-mini")
        results["baseline_exact_count_1m_messages_s"] = time.perf_counter() - start

    idle = results["heartbeat_idle_2s"]
    refuse = results["refuse_1m_messages_two_model_router"]
    count = results["count_300k_messages_fitting_4m_window_async"]

    def stall(entry: dict[str, Any]) -> str:
        return f"{entry['max_stall_ms']:.1f} / {entry['p99_stall_ms']:.1f} ms"

    rows = [
        ("heartbeat alone (machine noise)", stall(idle), "max / p99 lateness"),
        ("refuse 1M messages, router, sync", f"{refuse['sync_ms']:.2f} ms", "goal <= 1000 ms"),
        ("refuse 1M messages, router, async", f"{refuse['async_ms']:.2f} ms", "goal <= 1000 ms"),
        ("  loop stall meanwhile", stall(refuse), "goal <= 5 ms"),
        ("count 300k messages, guard alone", f"{count['guard_only']['seconds']:.2f} s", ""),
        ("  loop stall meanwhile", stall(count["guard_only"]), "goal <= 5 ms"),
        ("ainvoke 300k messages, guarded", f"{count['router_with_guard']['seconds']:.2f} s", ""),
        ("  loop stall meanwhile", stall(count["router_with_guard"]), ""),
        ("ainvoke 300k, no guard", f"{count['router_without_guard']['seconds']:.2f} s", ""),
        ("  loop stall meanwhile", stall(count["router_without_guard"]), "LangChain's own"),
    ]
    if args.baseline:
        base = results["baseline_exact_count_1m_messages_s"]
        rows.append(("exact count of 1M (before, per model)", f"{base:.2f} s", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>16}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>16}  {note}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
