"""Memory per recorded call and CPU per call of the cost tracker, without network.

Run from the repository root: ``python -m benchmarks.tracker_memory``. Sends 10,000 calls
through ``CostTracker | fake chat model`` (priced, with ``usage_metadata``), measures with
``tracemalloc`` what the ledger keeps per record, and times the tracker side by side with
the bare model (median of interleaved rounds), and the tracker's own hooks alone (``before``
then ``after`` on a ready-made call and answer: the steadiest CPU figure on a busy machine).
``BEFORE`` holds the figures this script measured on the code before the tracker's records
were made compact (3e7be3c), so one run shows both.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage

from benchmarks.overhead import bench_catalog, fixed
from llm_routing._decorator import Call
from llm_routing.cost import CostTracker

RECORDS = 10_000
ROUNDS = 9
CALLS_PER_ROUND = 300
PROMPT = [("system", "You are terse."), ("user", "Say hello in one word.")]

BEFORE = {"bytes_per_record": 851.0, "bytes_tagged": 1019.0, "us_hooks": 27.9}
"""Measured at 3e7be3c with this script (hooks: the best of five runs on a shared machine)."""


def bytes_per_record(tracker: CostTracker, *, tags: bool) -> float:
    """What the tracker holds per recorded call, the first call's one-off state excluded."""
    model = tracker | fixed("bench-a")
    config: dict[str, Any] = {"tags": ["feature-x"], "metadata": {"user": "u1"}} if tags else {}
    model.invoke(PROMPT, config=config)  # warm caches: spec lookup, groups, periods
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(RECORDS):
        model.invoke(PROMPT, config=config)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(tracker.records()) == RECORDS + 1
    return grown / RECORDS


def per_call(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS_PER_ROUND):
        fn()
    return (time.perf_counter() - start) / CALLS_PER_ROUND


def cpu() -> dict[str, float]:
    """Median µs per ``invoke``: the bare model, the tracker without and with a budget."""
    catalog = bench_catalog()
    bare = fixed("bench-a")
    plain = CostTracker(catalog=catalog, max_records=1_000) | fixed("bench-a")
    budget = CostTracker(catalog=catalog, budget_usd=10**6, max_records=1_000) | fixed("bench-a")
    fns = {
        "bare": lambda: bare.invoke(PROMPT),
        "tracker": lambda: plain.invoke(PROMPT),
        "tracker+budget": lambda: budget.invoke(PROMPT),
    }
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        per_call(fn)  # warm-up
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            times[name].append(per_call(fn))
    return {name: statistics.median(ts) * 1e6 for name, ts in times.items()}


def hooks(budget_usd: float | None = None, upstream: dict[str, Any] | None = None) -> float:
    """Best-of-rounds µs for the tracker's ``before`` + ``after`` on a ready call and answer.

    ``upstream``: what an outer decorator told the tracker (the guard's input count).
    """
    tracker = CostTracker(catalog=bench_catalog(), max_records=1_000, budget_usd=budget_usd)
    model = fixed("bench-a")
    answer = AIMessage(
        content="Hello.",
        usage_metadata={"input_tokens": 20, "output_tokens": 2, "total_tokens": 22},
    )

    def one() -> None:
        call = Call(PROMPT, {"tags": [], "metadata": {}}, {}, model, {}, False, upstream)
        tracker.before(call)
        tracker.after(call, answer)

    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(2_000):
            one()
        rounds.append((time.perf_counter() - start) / 2_000 * 1e6)
    return min(rounds)


def main() -> None:
    catalog = bench_catalog()
    plain = bytes_per_record(CostTracker(catalog=catalog), tags=False)
    tagged = bytes_per_record(CostTracker(catalog=catalog), tags=True)
    times = cpu()
    own = hooks()
    counted = {"llm_routing.input_tokens": 20}
    own_counted = hooks(upstream=counted)
    own_budget = hooks(budget_usd=10**6, upstream=counted)
    print(f"records: {RECORDS:,} through CostTracker | fake chat model (priced, usage reported)")
    print(f"bytes per record      before {BEFORE['bytes_per_record']:7.0f}   now {plain:7.0f}")
    print(f"  with a tag and metadata  before {BEFORE['bytes_tagged']:7.0f}   now {tagged:7.0f}")
    print(f"µs per call in the tracker's hooks  before {BEFORE['us_hooks']:5.1f}   now {own:5.1f}")
    print(f"  with the guard's input count: {own_counted:5.1f}; and a budget: {own_budget:5.1f}")
    print("µs per invoke (median of interleaved rounds):")
    for name, value in times.items():
        extra = "" if name == "bare" else f"  (+{value - times['bare']:.1f} µs over bare)"
        print(f"  {name:16s} {value:7.1f}{extra}")


if __name__ == "__main__":
    main()
