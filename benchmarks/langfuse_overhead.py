"""What Langfuse export costs a call, side by side in one run, with the Langfuse host down.

Run from the repository root: ``python -m benchmarks.langfuse_overhead``. Needs the
``langfuse`` extra. Prints a table and writes benchmarks/results/langfuse_overhead.json.

Two models, each called bare and with a Langfuse handler: a guarded ``ChatOpenAI`` against the
simulated provider over loopback HTTP, run in its own process like a real provider (a
realistic call without provider latency), and a guarded fake model (no network: the
handler's own cost made visible). The handlers export to
a closed port on 127.0.0.1 (an unreachable host; the SDK keeps failing to send in the
background) or to memory. Rows are interleaved per round and every number is a median.
"""

from __future__ import annotations

import json
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI
from langfuse import Langfuse
from langfuse.langchain import CallbackHandler
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks.overhead import fixed
from llm_routing.guard import ContextGuard
from llm_routing.observe import langfuse_handler, shutdown

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "langfuse_overhead.json"
ROUNDS = 9
CALLS_PER_ROUND = {"sim": 100, "fake": 200}
PROMPT = [("system", "You are terse."), ("user", "Say hello in one word.")]


def closed_port() -> int:
    from tests.support.ports import free_port

    return free_port()


def start_sim(port: int) -> subprocess.Popen[bytes]:
    """The simulator in its own process (a real provider's CPU is not ours), once it listens."""
    command = [sys.executable, "-m", "llm_routing.sim", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--models", "gpt-4o-mini", "--tier", "tier5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the simulator did not start within 60 s")


DOWN_KEY = f"pk-bench-down-{uuid.uuid4().hex}"


def clients() -> dict[str, Langfuse]:
    down = Langfuse(
        public_key=DOWN_KEY,
        secret_key="sk",
        base_url=f"http://127.0.0.1:{closed_port()}",
        tracer_provider=TracerProvider(),
        timeout=1,
    )
    memory = Langfuse(
        public_key=f"pk-bench-mem-{uuid.uuid4().hex}",
        secret_key="sk",
        base_url="http://127.0.0.1:9",
        tracer_provider=TracerProvider(),
        span_exporter=InMemorySpanExporter(),
    )
    return {"unreachable": down, "memory": memory}


def per_call(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def rows(model: Any, lf: dict[str, Langfuse]) -> dict[str, Callable[[], Any]]:
    down, memory = lf["unreachable"], lf["memory"]
    ours_down = {"callbacks": [langfuse_handler(down)]}
    ours_memory = {"callbacks": [langfuse_handler(memory)]}
    sdk_down = {"callbacks": [CallbackHandler(public_key=DOWN_KEY)]}
    return {
        "no langfuse": lambda: model.invoke(PROMPT),
        "ours, host unreachable": lambda: model.invoke(PROMPT, config=ours_down),
        "sdk handler, host unreachable": lambda: model.invoke(PROMPT, config=sdk_down),
        "ours, in-memory exporter": lambda: model.invoke(PROMPT, config=ours_memory),
    }


def measure(fns: dict[str, Callable[[], Any]], calls: int) -> dict[str, float]:
    for fn in fns.values():  # warm up: encodings, spec lookups, connections
        per_call(fn, 10)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            times[name].append(per_call(fn, calls))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    lf = clients()
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "rounds": ROUNDS,
        "calls_per_round": CALLS_PER_ROUND,
        "models": {},
    }
    port = closed_port()
    sim = start_sim(port)
    try:
        sim_model = ContextGuard() | ChatOpenAI(
            model="gpt-4o-mini",
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key="sim",
            max_retries=0,
        )
        fake_model = ContextGuard() | fixed("bench-a")
        for label, model in (("sim", sim_model), ("fake", fake_model)):
            t = measure(rows(model, lf), CALLS_PER_ROUND[label])
            base = t["no langfuse"]
            results["models"][label] = {
                "us_per_call": {name: s * 1e6 for name, s in t.items()},
                "ratio_vs_no_langfuse": {name: s / base for name, s in t.items()},
            }
            title = {
                "sim": "guard | ChatOpenAI on the simulator (own process, loopback HTTP)",
                "fake": "guard | fake chat model (no network)",
            }[label]
            print(title)
            width = max(len(name) for name in t)
            print(f"  {'path':<{width}}  {'us/call':>9}  {'ratio':>7}  {'added':>9}")
            for name, seconds in t.items():
                print(
                    f"  {name:<{width}}  {seconds * 1e6:>9.1f}  {seconds / base:>6.2f}x  "
                    f"{(seconds - base) * 1e6:>7.1f}us"
                )
    finally:
        sim.terminate()
        sim.wait(30)
    started = time.perf_counter()
    finished = {name: shutdown(client, timeout_s=2.0) for name, client in lf.items()}
    results["shutdown"] = {
        "timeout_s": 2.0,
        "finished": finished,
        "seconds": time.perf_counter() - started,
    }
    print(
        f"shutdown(timeout_s=2.0) of both clients returned after "
        f"{results['shutdown']['seconds']:.2f}s (finished: {finished})"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
