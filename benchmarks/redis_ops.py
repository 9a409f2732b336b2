"""Round trips of the shared (Redis) backends on loopback: acquire+settle, projections, budgets.

Run from the repository root: ``python -m benchmarks.redis_ops`` (starts a private
``redis-server`` from PATH on a free port; ``--url redis://…`` uses a running one instead).
Prints a table of p50/p99 latencies per operation (and the in-memory backend for scale) and
writes benchmarks/results/redis_ops.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from llm_routing.cost import Budget, CostRecord
from llm_routing.cost.pricing import Cost, TokenUsage
from llm_routing.cost.redis_ledger import RedisLedger
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.policy import RateLimits, Request
from llm_routing.schedule.redis import RedisBackend

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "redis_ops.json"
CALLS = 3_000
KEY = "openai:gpt-4o-mini"
# Limits high enough that the benchmark never waits; the window grows to ~10,000 entries.
LIMITS = RateLimits(rpm=30_000, tpm=60_000_000)
FULL = 1_000


@contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from tests.support.redis import RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install redis-server, or pass --url")
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(binary, Path(directory)).start()
        try:
            yield server.url
        finally:
            server.stop()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_us": pick(0.50) * 1e6, "p99_us": pick(0.99) * 1e6, "calls": len(samples)}


def _time(step: Callable[[int], Any], calls: int = CALLS) -> dict[str, float]:
    for n in range(50):  # warm up: scripts loaded, connections open
        step(-1 - n)
    samples = []
    for n in range(calls):
        start = time.perf_counter()
        step(n)
        samples.append(time.perf_counter() - start)
    return _percentiles(samples)


def _acquire_settle(backend: Any, tag: str) -> Callable[[int], Any]:
    def step(n: int) -> None:
        rid = f"{tag}-{n}"
        backend.try_acquire(KEY, LIMITS, Request(200, 100), rid)
        backend.settle(KEY, LIMITS, rid, 200, 40)

    return step


def _async_acquire_settle(backend: RedisBackend, calls: int = CALLS) -> dict[str, float]:
    async def run() -> dict[str, float]:
        for n in range(50):
            await backend.atry_acquire(KEY, LIMITS, Request(200, 100), f"aw-{n}")
            await backend.asettle(KEY, LIMITS, f"aw-{n}", 200, 40)
        samples = []
        for n in range(calls):
            start = time.perf_counter()
            await backend.atry_acquire(KEY, LIMITS, Request(200, 100), f"a-{n}")
            await backend.asettle(KEY, LIMITS, f"a-{n}", 200, 40)
            samples.append(time.perf_counter() - start)
        await backend.aclose()
        return _percentiles(samples)

    return asyncio.run(run())


def _record() -> CostRecord:
    cost = Decimal("0.000125")
    return CostRecord(
        time=datetime.now(UTC),
        provider="openai",
        model="gpt-4o-mini",
        tokens=TokenUsage(input=200, output=40),
        cost=Cost(cost, Decimal(0), Decimal(0), Decimal(0), Decimal(0), cost),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running Redis to use instead of a private one")
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    calls = args.calls
    rows: dict[str, dict[str, float]] = {}
    with _server(args.url) as url:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        rows["memory acquire+settle"] = _time(_acquire_settle(MemoryBackend(), "m"), calls)
        backend = RedisBackend(url, prefix=prefix)
        rows["redis acquire+settle (sync)"] = _time(_acquire_settle(backend, "s"), calls)
        rows["redis acquire+settle (async)"] = _async_acquire_settle(backend, calls)
        rows["redis try_acquire alone"] = _time(
            lambda n: backend.try_acquire(KEY, LIMITS, Request(200, 100), f"t-{n}"), calls
        )
        ahead = [Request(200, 100)] * 10
        rows["redis project (10 queued, room)"] = _time(
            lambda n: backend.project(KEY, LIMITS, ahead, Request(200, 100)), calls
        )
        # A full window: the projection needs the state itself (every entry in the window).
        full = RateLimits(rpm=FULL + 2, tpm=None)
        for n in range(FULL):
            backend.try_acquire("bench:full", full, Request(200, 100), f"f-{n}")
        rows[f"redis project (window full, {FULL:,} entries)"] = _time(
            lambda n: backend.project("bench:full", full, ahead, Request(200, 100)), 200
        )
        rows["redis now()"] = _time(lambda n: backend.now(), calls)
        entries = backend.snapshot(KEY)["requests_in_window"]
        backend.close()
        ledger = RedisLedger(url, prefix=prefix)
        bucket = Budget(Decimal("1000000")).bucket(datetime.now(UTC))
        record = _record()

        def reserve_settle(n: int) -> None:
            hold = ledger.reserve(Decimal("0.0004"), [bucket])
            assert not hasattr(hold, "requested")
            ledger.settle(hold, record)  # type: ignore[arg-type]

        rows["ledger reserve+settle"] = _time(reserve_settle, calls)
        ledger.reset()
        ledger.close()
        server = redis.Redis.from_url(url).info("server")["redis_version"]
    width = max(len(name) for name in rows)
    print(f"{'operation':<{width}}  {'p50 µs':>9}  {'p99 µs':>9}")
    for name, row in rows.items():
        print(f"{name:<{width}}  {row['p50_us']:>9.1f}  {row['p99_us']:>9.1f}")
    ratio = rows["redis acquire+settle (sync)"]["p50_us"] / rows["memory acquire+settle"]["p50_us"]
    print(f"\nRedis / memory acquire+settle (p50): {ratio:.1f}x; window held {entries:,} entries")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "redis_server": server,
                "redis_py": redis.__version__,
                "calls": calls,
                "window_entries": entries,
                "rows": rows,
                "redis_over_memory_p50": ratio,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
