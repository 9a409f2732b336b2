"""Load and soak: 10,000 requests through one router in about 60 s, the simulator at its limits.

Owns the soak part of issue 9 (pacing, outcome bookkeeping, RSS/thread/task sampling, the
comparison of the router's, scheduler's, tracker's and simulator's counts). It does not own
the fault matrix, bad input or the secrets scan, nor the simulator itself (``llm_routing.sim``).

One router (``build_router`` over three real ``ChatOpenAI`` clients, the default
``ContextGuard | RateScheduler | CostTracker`` stack; the scheduler is given the simulator's
limits and a short ``max_wait`` so overflow falls back instead of queueing for the next window)
takes ``REQUESTS`` requests paced evenly over ``DURATION_S`` seconds: async tasks
(``ainvoke``/``astream``) on the event loop and, at the same time, threads of a
``ThreadPoolExecutor`` (``invoke``/``stream``/``batch``). The primary's RPM is 30 % of the
requests, so it fills and the overflow goes to the two fallbacks, whose RPMs make the three
together 1.1x the requests: everything fits, nothing should fail. The simulator runs in a
child process (`SimProcess`), so its CPU and GIL are not ours. On 2 shared cores one process
drives about 120-130 req/s through ChatOpenAI (about 7.5 ms of CPU per request, GIL-bound),
not the 167 offered: the pace is kept, async calls beyond ``ASYNC_CONCURRENCY`` wait in our
own semaphore (not in httpx's pool, whose CPU per request grows with what is in flight), and
the run ends when the machine has caught up (about 80 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import httpx
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI

from llm_routing.router import Router, build_router
from llm_routing.schedule import RateScheduler
from llm_routing.sim import Latency, SimModel
from llm_routing.sim.process import SimProcess
from llm_routing.tokens import count_tokens

__all__ = ["SimProcess", "SoakConfig", "render", "run", "unexplained_objects", "violations"]

PROVIDER = "openai"
# Three catalogued models (the guard reads their windows, the tracker their prices).
MODEL_NAMES = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o")
# Each model's RPM as a share of the requests: the primary fills after 30 % of them, the
# first fallback after the next 25 %, and the second has room for the rest (110 % in all).
RPM_SHARES = (0.30, 0.25, 0.55)
TOKENS_PER_REQUEST_LIMIT = 1_000  # TPM = RPM x this: far above any request, RPM binds
MAX_TOKENS = 8
MAX_WAIT_S = 2.0  # a full primary frees a slot only when its window slides: fall back now
# Short answers (about 40 ms), so the in-flight count, and with it the CPU per request of
# httpx's connection pool, stays small; the test is about volume and bookkeeping.
LATENCY = Latency(ttft=0.02, per_token=0.002, jitter=0.5)
REPLY_TOKENS = 4
# Entry points and their weights; a batch carries BATCH_SIZE requests.
MIX: tuple[tuple[str, int], ...] = (
    ("ainvoke", 35),
    ("astream", 20),
    ("invoke", 20),
    ("stream", 15),
    ("batch", 10),
)
ASYNC_KINDS = frozenset({"ainvoke", "astream"})
BATCH_SIZE = 4
SYNC_WORKERS = 8
ASYNC_CONCURRENCY = 32
WARMUP_CALLS = 8  # per model and entry point, on the bare clients, before the run
HTTP_TIMEOUT_S = 30.0
SAMPLE_EVERY_S = 0.5
# Memory: RSS growth after warm-up, less the ledger's records (kept by design), must stay
# under this. Measured on 2 shared cores: 17.8 MB for 10,000 requests (glibc and pymalloc
# keeping the pages of the in-flight high-water mark, plus the scheduler's window entries
# and wait sample, both bounded); tracemalloc puts the Python objects that stay, beyond the
# ledger, at about 0.3 kB a request. A leak of one request's message and call state (tens
# of kB) over 10,000 requests is hundreds of MB; 48 MB is about 2.7x the worst seen.
MEMORY_SLACK_KB = 48 * 1024
ANSWER = "answer"
_VOCABULARY = (
    "the model answers a short question about time work data code tests and people who make "
    "things every day so we can see how the router keeps up under load"
)


@dataclass(frozen=True)
class SoakConfig:
    """How big the run is; ``run(quick=True)`` uses `QUICK`."""

    requests: int = 10_000
    duration_s: float = 60.0
    seed: int = 7

    def __post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int):
            raise TypeError(f"SoakConfig.requests must be an int, got {self.requests!r}")
        if self.requests < 100:
            raise ValueError(f"SoakConfig.requests must be >= 100, got {self.requests}")
        if not self.duration_s > 0 or math.isinf(self.duration_s):
            raise ValueError(
                f"SoakConfig.duration_s must be a finite number > 0, got {self.duration_s!r}"
            )

    @property
    def rpms(self) -> tuple[int, ...]:
        """Each model's RPM (the simulator's and the scheduler's)."""
        return tuple(math.ceil(self.requests * share) for share in RPM_SHARES)


FULL = SoakConfig()
QUICK = SoakConfig(requests=2_000, duration_s=15.0)


# --------------------------------------------------------------------------- the simulator


def sim_models(config: SoakConfig) -> list[SimModel]:
    """The simulated twins of `MODEL_NAMES` at the run's RPM/TPM."""
    return [
        SimModel(
            name=name,
            rpm=rpm,
            tpm=rpm * TOKENS_PER_REQUEST_LIMIT,
            latency=LATENCY,
            reply_tokens=REPLY_TOKENS,
            # Exact sliding windows, which take a minute's quota at once: the soak's scheduler
            # bursts into them (see scheduler_limits) so the overflow reaches the fallbacks.
            enforcement="sliding",
            failed_requests_count=False,
        )
        for name, rpm in zip(MODEL_NAMES, config.rpms, strict=True)
    ]


def scheduler_limits(config: SoakConfig) -> dict[str, dict[str, int | str | None]]:
    """The scheduler's limits: the simulator's, per model (the catalogue's tiers differ).

    The soak's simulator keeps exact sliding minute windows, which accept a whole minute's
    quota at once, so the scheduler is told to burst: the primary fills in the first seconds
    and the overflow exercises the fallbacks (paced, a closed loop of callers would only wait
    their turn within ``max_wait`` and never overflow).
    """
    return {
        f"{PROVIDER}:{name}": {
            "rpm": rpm,
            "tpm": rpm * TOKENS_PER_REQUEST_LIMIT,
            "rpd": None,
            "pacing": "burst",
        }
        for name, rpm in zip(MODEL_NAMES, config.rpms, strict=True)
    }


# --------------------------------------------------------------------------- process probes


def rss_kb() -> int:
    """This process's resident set (``VmRSS`` of /proc/self/status), in kB; 0 without /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _settled_rss_kb() -> int:
    """RSS once garbage is collected and free heap pages are handed back (glibc ``malloc_trim``).

    Without the trim, RSS keeps the high-water mark of memory that was freed inside glibc's
    per-thread arenas (dozens of threads ran here), which says nothing about what is live.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_kb()


def _object_counts() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


def _deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of ``obj`` and everything it holds that was not counted yet (``sys.getsizeof``)."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(_deep_size(item, seen) for item in obj)
    elif is_dataclass(obj) and not isinstance(obj, type):
        size += sum(_deep_size(getattr(obj, f.name), seen) for f in fields(obj))
    return size


def _ledger_kb(tracker: Any) -> float:
    """What the tracker's ledger keeps per call by design (its records), in kB."""
    records = tracker.records()
    seen: set[int] = set()
    return sum(_deep_size(record, seen) for record in records) / 1024


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Job:
    """One dispatch: an entry point, when, and the request ids (several for a batch)."""

    kind: str
    at: float
    rids: tuple[int, ...]


def _words(rng: random.Random, n: int) -> str:
    vocabulary = _VOCABULARY.split()
    return " ".join(rng.choices(vocabulary, k=n))


def make_plan(config: SoakConfig) -> tuple[list[Job], list[str]]:
    """The jobs in dispatch order (evenly paced) and one prompt per request id."""
    rng = random.Random(config.seed)
    prompts = [_words(rng, rng.randint(10, 120)) for _ in range(config.requests)]
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    jobs: list[Job] = []
    spacing = config.duration_s / config.requests
    rid = 0
    while rid < config.requests:
        kind = rng.choices(kinds, weights)[0]
        size = min(BATCH_SIZE, config.requests - rid) if kind == "batch" else 1
        jobs.append(Job(kind, rid * spacing, tuple(range(rid, rid + size))))
        rid += size
    return jobs, prompts


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class Ledger:
    """Every request's outcomes (exactly one is right) and who served it, from our side."""

    size: int
    outcomes: list[list[str]] = field(init=False)
    served_by: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    completed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.outcomes = [[] for _ in range(self.size)]

    def record(
        self,
        rid: int,
        kind: str,
        outcome: str,
        model: str | None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            if error is not None and outcome not in self.examples:
                self.examples[outcome] = str(error)[:2_000]
            self.outcomes[rid].append(outcome)
            self.by_kind.setdefault(kind, Counter())[outcome] += 1
            if model is not None:
                self.served_by[model] += 1
            self.completed += 1

    def summary(self) -> dict[str, Any]:
        counts: Counter[str] = Counter()
        lost = duplicated = 0
        for found in self.outcomes:
            if not found:
                lost += 1
            elif len(found) > 1:
                duplicated += 1
            counts.update(found)
        return {
            "outcomes": dict(counts),
            "errors": {k: v for k, v in counts.items() if k != ANSWER},
            "lost": lost,
            "duplicated": duplicated,
            "by_entry_point": {k: dict(v) for k, v in sorted(self.by_kind.items())},
            "served_by_model": dict(self.served_by),
            "error_examples": dict(self.examples),
        }


def _served_model(message: Any) -> str | None:
    if isinstance(message, BaseMessage):
        model = message.response_metadata.get("llm_routing.model")
        return model if isinstance(model, str) else None
    return None


def _answer(message: Any) -> tuple[str, str | None]:
    """``(ANSWER, model)`` for a message with text, else why not."""
    model = _served_model(message)
    if model is None:
        return "no llm_routing.model on the answer", None
    if not isinstance(message.content, str) or not message.content:
        return "empty answer", model
    return ANSWER, model


def _stream_answer(chunks: list[Any]) -> tuple[str, str | None]:
    if not chunks:
        return "empty stream", None
    model = _served_model(chunks[0])
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    if model is None:
        return "no llm_routing.model on the first chunk", None
    if not isinstance(total.content, str) or not total.content:
        return "empty answer", model
    return ANSWER, model


def _sync_job(router: Router, job: Job, prompts: list[str], ledger: Ledger) -> None:
    """Run one sync job; every request id gets one outcome, an exception is an outcome."""
    if job.kind == "batch":
        results = router.batch([prompts[r] for r in job.rids], return_exceptions=True)
        for rid, result in zip(job.rids, results, strict=True):
            if isinstance(result, BaseException):
                ledger.record(rid, job.kind, type(result).__name__, None, result)
            else:
                ledger.record(rid, job.kind, *_answer(result))
        return
    [rid] = job.rids
    try:
        if job.kind == "invoke":
            outcome = _answer(router.invoke(prompts[rid]))
        else:
            outcome = _stream_answer(list(router.stream(prompts[rid])))
    except Exception as exc:
        ledger.record(rid, job.kind, type(exc).__name__, None, exc)
        return
    ledger.record(rid, job.kind, *outcome)


async def _async_job(
    router: Router, job: Job, prompts: list[str], ledger: Ledger, slots: asyncio.Semaphore
) -> None:
    [rid] = job.rids
    async with slots:
        await _async_call(router, job, rid, prompts, ledger)


async def _async_call(
    router: Router, job: Job, rid: int, prompts: list[str], ledger: Ledger
) -> None:
    try:
        if job.kind == "ainvoke":
            outcome = _answer(await router.ainvoke(prompts[rid]))
        else:
            outcome = _stream_answer([chunk async for chunk in router.astream(prompts[rid])])
    except Exception as exc:
        ledger.record(rid, job.kind, type(exc).__name__, None, exc)
        return
    ledger.record(rid, job.kind, *outcome)


# --------------------------------------------------------------------------- the run


@dataclass
class _Clients:
    """One sync and one async HTTP client per model, closed at the end (no cached pools)."""

    sync: list[httpx.Client]
    asynchronous: list[httpx.AsyncClient]

    @classmethod
    def open(cls, count: int) -> _Clients:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        timeout = httpx.Timeout(HTTP_TIMEOUT_S, connect=10.0)
        return cls(
            [httpx.Client(limits=limits, timeout=timeout) for _ in range(count)],
            [httpx.AsyncClient(limits=limits, timeout=timeout) for _ in range(count)],
        )

    async def aclose(self) -> None:
        for client in self.sync:
            client.close()
        for async_client in self.asynchronous:
            await async_client.aclose()


def _chat_models(base_url: str, clients: _Clients) -> list[ChatOpenAI]:
    return [
        ChatOpenAI(
            model=name,
            base_url=base_url,
            api_key="sim",  # type: ignore[arg-type]
            max_retries=0,
            max_tokens=MAX_TOKENS,  # type: ignore[call-arg]  # an alias pydantic accepts
            stream_usage=True,
            timeout=HTTP_TIMEOUT_S,
            http_client=sync_client,
            http_async_client=async_client,
        )
        for name, sync_client, async_client in zip(
            MODEL_NAMES, clients.sync, clients.asynchronous, strict=True
        )
    ]


def _drain(model: ChatOpenAI) -> None:
    for _ in model.stream("warm up"):
        pass


async def _warm_up(models: Sequence[ChatOpenAI]) -> None:
    """Exercise every client and entry point once per model: pools, parsers, encodings.

    On the bare clients, not the router, so no decorator or router counter sees it. The
    guard's and scheduler's token counts load each model's encoding once (o200k_base: about
    80 MB of RSS between tiktoken's rank table and its Rust copy); counting a prompt here
    keeps that one-off load out of the growth measured after warm-up.
    """
    for name in MODEL_NAMES:
        count_tokens("warm up", f"{PROVIDER}:{name}")
    for model in models:
        for _ in range(WARMUP_CALLS):
            await model.ainvoke("warm up")
            [_ async for _ in model.astream("warm up")]
            await asyncio.to_thread(model.invoke, "warm up")
            await asyncio.to_thread(_drain, model)


@dataclass
class _Samples:
    """RSS, threads, tasks and progress every `SAMPLE_EVERY_S` while the run goes."""

    rows: list[tuple[float, int, int, int, int]] = field(default_factory=list)

    def add(self, t: float, ledger: Ledger) -> None:
        self.rows.append(
            (
                round(t, 2),
                rss_kb(),
                threading.active_count(),
                len(asyncio.all_tasks()),
                ledger.completed,
            )
        )


async def _sample(samples: _Samples, ledger: Ledger, start: float, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        samples.add(loop.time() - start, ledger)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)


async def _drive(
    router: Router,
    jobs: Sequence[Job],
    prompts: list[str],
    ledger: Ledger,
    executor: ThreadPoolExecutor,
    samples: _Samples,
) -> dict[str, Any]:
    """Dispatch every job at its time; wait for all; return timing figures."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    start = loop.time()
    sampler = asyncio.create_task(_sample(samples, ledger, start, stop))
    pending: list[asyncio.Future[None]] = []
    slots = asyncio.Semaphore(ASYNC_CONCURRENCY)
    max_lag = 0.0
    for job in jobs:
        delay = start + job.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            max_lag = max(max_lag, -delay)
        if job.kind in ASYNC_KINDS:
            pending.append(asyncio.ensure_future(_async_job(router, job, prompts, ledger, slots)))
        else:
            pending.append(loop.run_in_executor(executor, _sync_job, router, job, prompts, ledger))
    dispatched = loop.time() - start
    await asyncio.gather(*pending)
    elapsed = loop.time() - start
    stop.set()
    await sampler
    return {"dispatch_s": dispatched, "elapsed_s": elapsed, "max_dispatch_lag_s": max_lag}


async def _session(
    config: SoakConfig, sim: SimProcess, executor: ThreadPoolExecutor
) -> dict[str, Any]:
    """Everything that runs on the event loop: warm-up, the run, closing the clients."""
    clients = _Clients.open(len(MODEL_NAMES))
    chat = _chat_models(sim.base_url, clients)
    scheduler = RateScheduler(limits=scheduler_limits(config), max_wait=MAX_WAIT_S)
    router = build_router(chat[0], chat[1:], scheduler=scheduler)
    jobs, prompts = make_plan(config)
    ledger = Ledger(config.requests)
    samples = _Samples()

    await _warm_up(chat)
    await asyncio.to_thread(sim.reset)
    rss_warm = rss_kb()
    objects_warm = _object_counts()
    rss_warm_gc = _settled_rss_kb()
    threads_warm = threading.active_count()

    cpu0 = time.process_time()
    sim_cpu0 = sim.cpu_s()
    timing = await _drive(router, jobs, prompts, ledger, executor, samples)
    cpu = time.process_time() - cpu0
    sim_cpu = sim.cpu_s() - sim_cpu0

    await clients.aclose()
    leaked_tasks = [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    rss_end = rss_kb()
    objects_end = _object_counts()
    rss_end_gc = _settled_rss_kb()
    tracker = router.settings["tracker"]
    return {
        "router": router.stats(),
        "scheduler": scheduler.stats(),
        "tracker": tracker.summary(),
        "ledger_kb": _ledger_kb(tracker),
        "ledger": ledger.summary(),
        "timing": timing,
        "cpu_s": cpu,
        "sim_cpu_s": sim_cpu,
        "rss_warm_kb": rss_warm,
        "rss_warm_gc_kb": rss_warm_gc,
        "rss_end_kb": rss_end,
        "rss_end_gc_kb": rss_end_gc,
        "object_growth": _growth(objects_warm, objects_end),
        "threads_warm": threads_warm,
        "samples": samples.rows,
        "leaked_tasks": leaked_tasks,
    }


def _growth(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """Garbage-collected objects per type that the run added (types that grew only)."""
    return {k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)}


def unexplained_objects(result: dict[str, Any]) -> dict[str, int]:
    """Object types that grew more than what the run keeps by design, with their growth.

    Kept by design: one record per call in the tracker's ledger (a ``MemoryLedger`` packs it as
    a row tuple holding its ``TokenUsage``, plus a tuple of run ids, tags and metadata when the
    call has any: `cost._compact`; a ledger that keeps ``CostRecord`` objects keeps a ``Cost``
    and a ``TokenUsage`` with each); one scheduler window entry (``_Entry``) per admission still
    inside a window, at most the models' RPMs; and, per request served by a fallback, the ledger
    record's metadata (a dict holding the ``llm_routing.fallback_from`` list). Any other type
    may grow by a tenth of the requests (caches filling, pools); a per-request leak of any
    garbage-collected type adds at least one object per request and shows here.
    """
    n = result["config"]["requests"]
    fallbacks = result["router"]["fallback_requests"]
    allowed = {
        "CostRecord": n,
        "Cost": n,
        "TokenUsage": n,
        "tuple": 2 * n + n // 10,
        "_Entry": sum(m["rpm"] for m in result["models"]),
        "dict": fallbacks + n // 10,
        "list": fallbacks + n // 10,
    }
    return {
        name: grown
        for name, grown in result["memory"]["object_growth"].items()
        if grown > allowed.get(name, n // 10)
    }


def _peak_per_window(timeline: Sequence[Sequence[Any]], window: float = 60.0) -> int:
    """Most ``served`` events of one model inside any ``window`` seconds of its timeline."""
    times = sorted(float(t) for t, event, *_ in timeline if event == "served")
    best = left = 0
    for right, t in enumerate(times):
        while times[left] <= t - window:
            left += 1
        best = max(best, right - left + 1)
    return best


def run(quick: bool = False, config: SoakConfig | None = None) -> dict[str, Any]:
    """Run the soak (``quick``: `QUICK`, else `FULL`, unless ``config`` says) and measure it.

    Returns JSON-ready figures; `violations` lists what broke an invariant.
    """
    config = config or (QUICK if quick else FULL)
    baseline_threads = {t.ident for t in threading.enumerate()}
    rss_start = _settled_rss_kb()
    with SimProcess(functools.partial(sim_models, config), seed=config.seed) as sim:
        url = sim.url  # started before the clock runs
        executor = ThreadPoolExecutor(SYNC_WORKERS, thread_name_prefix="soak-sync")
        try:
            session = asyncio.run(_session(config, sim, executor))
        finally:
            executor.shutdown(wait=True)
        peak_threads = max((row[2] for row in session["samples"]), default=0)
        sim_stats = sim.stats()
    del url
    gc.collect()
    leaked_threads = [
        f"{t.name} (daemon={t.daemon})"
        for t in threading.enumerate()
        if t.ident not in baseline_threads
    ]
    result = _result(config, session, sim_stats, rss_start, peak_threads, leaked_threads)
    result["violations"] = violations(result)
    return result


def _result(
    config: SoakConfig,
    session: dict[str, Any],
    sim_stats: dict[str, Any],
    rss_start: int,
    peak_threads: int,
    leaked_threads: list[str],
) -> dict[str, Any]:
    router, scheduler, tracker = session["router"], session["scheduler"], session["tracker"]
    timing = session["timing"]
    models = []
    for name, rpm in zip(MODEL_NAMES, config.rpms, strict=True):
        key = f"{PROVIDER}:{name}"
        sim_model = sim_stats["models"][name]
        capacity = rpm - 2  # the scheduler's default request margin
        served = int(sim_model["requests_served"])
        models.append(
            {
                "model": key,
                "rpm": rpm,
                "capacity": capacity,
                "sim_served": served,
                "sim_received": int(sim_model["requests_received"]),
                "sim_429s": sum(sim_model["rate_limited"].values()),
                "router_served": router["by_model"][key]["requests"],
                "router_failures": router["by_model"][key]["failures"],
                "tracker_calls": tracker["by_model"].get(key, {}).get("calls", 0),
                "ours_served": session["ledger"]["served_by_model"].get(key, 0),
                "scheduler_admitted": scheduler["by_model"].get(key, {}).get("admitted", 0),
                "share_of_capacity": served / capacity,
                "peak_60s": _peak_per_window(sim_model["timeline"]),
            }
        )
    growth = session["rss_end_gc_kb"] - session["rss_warm_gc_kb"]
    ledger_kb = session["ledger_kb"]
    samples = session["samples"]
    return {
        "config": {
            "requests": config.requests,
            "duration_s": config.duration_s,
            "offered_rps": config.requests / config.duration_s,
            "max_wait_s": MAX_WAIT_S,
            "max_tokens": MAX_TOKENS,
            "latency": {"ttft_s": LATENCY.ttft, "per_token_s": LATENCY.per_token},
            "mix": dict(MIX),
            "batch_size": BATCH_SIZE,
            "sync_workers": SYNC_WORKERS,
        },
        "timing": {
            **{k: round(v, 3) for k, v in timing.items()},
            "throughput_rps": config.requests / timing["elapsed_s"],
            "cpu_s": round(session["cpu_s"], 2),
            "sim_cpu_s": round(session["sim_cpu_s"], 2),
            "cpu_ms_per_request": session["cpu_s"] * 1e3 / config.requests,
        },
        "requests": session["ledger"],
        "models": models,
        "capacity": sum(m["capacity"] for m in models),
        "sim": {
            "served": int(sim_stats["requests_served"]),
            "received": sum(m["sim_received"] for m in models),
            "rate_limited": sim_stats["rate_limited"],
            "faults": sim_stats["faults"],
        },
        "router": {k: v for k, v in router.items() if k != "by_model"},
        "scheduler": {k: v for k, v in scheduler.items() if k != "by_model"},
        "tracker": {
            "calls": tracker["calls"],
            "unpriced_calls": tracker["unpriced_calls"],
            "total_cost": tracker["total_cost"],
        },
        "memory": {
            "rss_start_kb": rss_start,
            "rss_warm_kb": session["rss_warm_gc_kb"],
            "rss_end_kb": session["rss_end_gc_kb"],
            "rss_warm_raw_kb": session["rss_warm_kb"],
            "rss_end_raw_kb": session["rss_end_kb"],
            "rss_peak_kb": max((row[1] for row in samples), default=0),
            "growth_after_warm_kb": growth,
            "ledger_records_kb": round(ledger_kb),
            "unexplained_kb": round(growth - ledger_kb),
            "bound_kb": MEMORY_SLACK_KB,
            "object_growth": session["object_growth"],
        },
        "threads": {
            "peak": peak_threads,
            "leaked": leaked_threads,
        },
        "tasks": {
            "peak": max((row[3] for row in samples), default=0),
            "leaked": session["leaked_tasks"],
        },
        "samples": samples,
    }


def violations(result: dict[str, Any]) -> list[str]:
    """Every invariant of the soak that ``result`` breaks (empty: all held)."""
    found: list[str] = []
    n = result["config"]["requests"]
    requests = result["requests"]
    if requests["lost"] or requests["duplicated"]:
        found.append(f"{requests['lost']} lost, {requests['duplicated']} with several outcomes")
    if requests["errors"]:
        found.append(f"errors: {requests['errors']}")
    sim = result["sim"]
    if sum(sim["rate_limited"].values()):
        found.append(f"the simulator sent 429s: {sim['rate_limited']}")
    if result["scheduler"]["rate_limit_errors"]:
        found.append(f"the scheduler saw {result['scheduler']['rate_limit_errors']} 429s")
    router = result["router"]
    if router["total_requests"] != n or router["failed_requests"]:
        found.append(
            f"router total {router['total_requests']} (failed {router['failed_requests']})"
        )
    if sim["served"] != n or sim["received"] != n:
        found.append(f"simulator served {sim['served']}, received {sim['received']} of {n}")
    if result["tracker"]["calls"] != n:
        found.append(f"ledger has {result['tracker']['calls']} calls, not {n}")
    for m in result["models"]:
        counts = {m[k] for k in ("sim_served", "router_served", "tracker_calls", "ours_served")}
        if len(counts) != 1:
            found.append(f"{m['model']}: counts disagree {m}")
    memory = result["memory"]
    if memory["unexplained_kb"] > memory["bound_kb"]:
        found.append(f"memory grew {memory['unexplained_kb']} kB beyond the ledger's records")
    if unexplained_objects(result):
        found.append(f"objects grew beyond what the run keeps: {unexplained_objects(result)}")
    if result["threads"]["leaked"]:
        found.append(f"threads left: {result['threads']['leaked']}")
    if result["tasks"]["leaked"]:
        found.append(f"tasks left: {result['tasks']['leaked']}")
    return found


# --------------------------------------------------------------------------- report


def _rows(result: dict[str, Any]) -> Iterator[str]:
    cfg, timing, memory = result["config"], result["timing"], result["memory"]
    yield (
        f"Soak: {cfg['requests']:,} requests through one router (3 ChatOpenAI models, "
        f"guard | scheduler | tracker) paced over {cfg['duration_s']:g} s "
        f"({cfg['offered_rps']:.0f} req/s offered), async ainvoke/astream and "
        f"{cfg['sync_workers']} threads invoke/stream/batch at once; simulator in a child process"
    )
    yield ""
    yield "| model | RPM | served | served/(RPM-2) | peak 60 s | router | ledger | 429s |"
    yield "|---|---:|---:|---:|---:|---:|---:|---:|"
    for m in result["models"]:
        yield (
            f"| {m['model']} | {m['rpm']:,} | {m['sim_served']:,} | {m['share_of_capacity']:.3f} "
            f"| {m['peak_60s']:,} | {m['router_served']:,} | {m['tracker_calls']:,} "
            f"| {m['sim_429s']} |"
        )
    req, sched, waits = result["requests"], result["scheduler"], result["scheduler"]["waits"]
    yield ""
    yield (
        "served: over the whole run, which outlasts one 60 s window when the machine falls "
        "behind the pace, so a model may serve more than RPM-2; peak 60 s: the most it answered "
        "in any minute (the scheduler's margin keeps it at RPM-2). 429s: counted by the simulator."
    )
    yield (
        f"elapsed {timing['elapsed_s']:.1f} s (dispatch {timing['dispatch_s']:.1f} s, max lag "
        f"{timing['max_dispatch_lag_s'] * 1e3:.0f} ms); throughput {timing['throughput_rps']:.1f} "
        f"req/s = {result['sim']['served'] / result['capacity']:.3f} of the three limits' "
        f"{result['capacity']:,} per window; CPU ours {timing['cpu_s']:.1f} s "
        f"({timing['cpu_ms_per_request']:.2f} ms/request), simulator {timing['sim_cpu_s']:.1f} s"
    )
    yield (
        f"outcomes {req['outcomes']} lost {req['lost']} duplicated {req['duplicated']}; "
        f"by entry point {req['by_entry_point']}"
    )
    yield (
        f"router: primary {result['router']['primary_requests']:,}, fallback "
        f"{result['router']['fallback_requests']:,}, rate-limit fallbacks "
        f"{result['router']['rate_limit_fallbacks']:,}, "
        f"failed {result['router']['failed_requests']}"
        f"; scheduler: 429s {sched['rate_limit_errors']}, retries {sched['retries']}, refused "
        f"(max_wait) {sched['refused_max_wait']:,}; waits n={waits['count']:,} p50 "
        f"{waits['p50_s'] * 1e3:.1f} ms p95 {waits['p95_s'] * 1e3:.1f} ms max "
        f"{waits['max_s'] * 1e3:.0f} ms total {waits['total_s']:.1f} s"
    )
    yield (
        f"RSS start {memory['rss_start_kb'] / 1024:.1f} MB, after warm-up "
        f"{memory['rss_warm_kb'] / 1024:.1f} MB, end {memory['rss_end_kb'] / 1024:.1f} MB (peak "
        f"{memory['rss_peak_kb'] / 1024:.1f} MB); growth after warm-up "
        f"{memory['growth_after_warm_kb'] / 1024:.1f} MB, of which the ledger's "
        f"{cfg['requests']:,} records {memory['ledger_records_kb'] / 1024:.1f} MB, rest "
        f"{memory['unexplained_kb'] / 1024:.1f} MB (bound {memory['bound_kb'] / 1024:.0f} MB)"
    )
    top = sorted(memory["object_growth"].items(), key=lambda kv: -kv[1])[:6]
    yield (
        "objects added after warm-up (gc-tracked, top): "
        + ", ".join(f"{name} +{grown:,}" for name, grown in top)
        + f"; beyond what the run keeps by design: {unexplained_objects(result) or 'none'}"
    )
    yield (
        f"threads peak {result['threads']['peak']}, left after shutdown "
        f"{len(result['threads']['leaked'])}; asyncio tasks peak {result['tasks']['peak']}, "
        f"left {len(result['tasks']['leaked'])}"
    )
    problems = violations(result)
    yield "invariants: " + ("all held" if not problems else "BROKEN: " + "; ".join(problems))


def render(result: dict[str, Any]) -> str:
    """The soak's figures as markdown for the terminal and the README."""
    return "\n".join(_rows(result))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m benchmarks.reliability.soak [--quick]``."""
    args = sys.argv[1:] if argv is None else list(argv)
    print(render(run(quick="--quick" in args)))


if __name__ == "__main__":
    main()
