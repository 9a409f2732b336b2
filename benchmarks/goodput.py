"""Goodput of the rate scheduler: how close to a provider's limits it runs, how many 429s it draws.

Run from the repository root: ``python -m benchmarks.goodput`` (part 2 in real time, about
5 minutes) or ``python -m benchmarks.goodput --quick`` (part 2 on a ScaledClock x10 shared by
the simulator and the scheduler, under a minute), then part 3 (about 2 minutes, always in real
time). ``--part``, ``--minutes``, ``--callers``, ``--jobs``, ``--factor``, ``--admission-row``
and ``--redis-url`` change what runs. Prints a table per part and writes
benchmarks/results/goodput.json (goodput-quick.json for --quick); a single ``--part`` replaces
its own section of that file and keeps the others.

Part 1, virtual time: 10 simulated minutes of RateScheduler(VirtualClock) in front of an
in-process fake provider, recounted with the provider's exact sliding window. Part 2, over
HTTP: 1,000 concurrent callers with real ChatOpenAI clients against the simulated provider (in
a child process, so its CPU is not ours): RateScheduler (and with --admission-row its
count_from='admission' twin) vs LangChain's InMemoryRateLimiter at the same rate vs no
limiter, then a smoothed RateScheduler as a probe of wake-up lateness. Part 3, several
processes: four OS processes share one limit against the simulated provider, each with its own
RateScheduler at that limit, first on a MemoryBackend each, then on one RedisBackend (a private
``redis-server`` on a free port, or ``--redis-url``; needs the ``redis`` extra). Part 4
(``--part enforcement``, benchmarks/goodput_enforcement.py, about 6 minutes on a ScaledClock
x5): for each enforcement mode of the simulated provider (sliding, token_bucket, quantized),
200 closed-loop ChatOpenAI callers for 3 simulated minutes at RPM 600 behind our default
RateScheduler, LangChain's InMemoryRateLimiter and no limiter: goodput, 429s per 1,000
requests, p50/p99 latency and p50 over the shortest the enforcement allows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import functools
import gc
import importlib.util
import json
import math
import multiprocessing
import platform
import random
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from queue import Empty
from typing import Any, Literal

import httpx
import langchain_core
import langchain_openai
import openai
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_openai import ChatOpenAI
from pydantic import ConfigDict, Field

from llm_routing.errors import RateLimitExhaustedError
from llm_routing.schedule import (
    Admission,
    Clock,
    RateScheduler,
    ScaledClock,
    SystemClock,
    Ticket,
    VirtualClock,
)
from llm_routing.sim import (
    Latency,
    ProviderLimiter,
    SimModel,
    SlidingWindowLimiter,
)
from llm_routing.sim.process import SimProcess as ChildSimulator
from llm_routing.tokens import count_tokens

CountFrom = Literal["response", "admission"]
COUNT_FROM: tuple[CountFrom, ...] = ("admission", "response")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MODEL = "openai:gpt-4o-mini"
NAME = "gpt-4o-mini"
WINDOW_S = 60.0

# Part 1: the catalogue's tier-1 limits of gpt-4o-mini, in virtual time.
V_RPM = 500
V_TPM = 200_000
V_MINUTES = 10
V_CALLERS = 600  # more than one window's worth of requests, so the queue never runs dry
V_MAX_WAIT = 3_600.0  # no fallback model here: every caller waits its turn
GOAL_THROUGHPUT = 0.97

# Part 2: RPM 600; the TPM binds in the second half of the job list (long prompts).
H_RPM = 600
H_TPM = 300_000
H_CALLERS = 1_000
CALLERS_PER_CLIENT = 50
PROBE_JOBS = 300  # short prompts only: RPM binds, smoothing spaces them 0.1 s apart
H_MAX_TOKENS = 64
H_MAX_WAIT = 900.0  # no fallback model here either
# Short answers, so even the paced rows have moments with nothing in flight, in which the
# CPU of waiting alone can be measured (part 1 covers realistic latency in virtual time).
H_LATENCY = (0.025, 0.001, 0.5)  # ttft s, per output token s, jitter
GOAL_LATENESS_MS = 10.0
GOAL_WAIT_CPU = 0.02

# Part 3: four processes, one limit, in real time (the Redis row's windows run on Redis TIME).
# 4 x 100 jobs are 1.34x the RPM and 1.77x the TPM. Admitted in job order, the first window
# fills at once with the RPM binding (TPM ~95 %) and the long prompts left over fit the next one
# (TPM ~85 %); sent all at once (memory per process), the long prompts among them make the TPM
# bind first. A row lasts one window plus the tail; a third window would double it.
M_PROCESSES = 4
M_JOBS = 100  # per process, one caller each
M_RPM = 300
M_TPM = 180_000
# How the part's provider enforces them: per second, as OpenAI and Anthropic document.
M_ENFORCEMENT = "quantized"
M_MAX_WAIT = 300.0  # everything waits its turn, nothing falls back
M_ROW_TIMEOUT = 300.0
MultiKind = Literal["memory", "redis"]
M_ROWS: tuple[tuple[MultiKind, str], ...] = (
    ("memory", "memory per process"),
    ("redis", "Redis shared"),
)

# One token each, with or without a leading space, in o200k_base: "n words" is "n tokens".
_VOCABULARY = (
    "the model that this is a simple reply from provider with some plain words about time and "
    "work people who make things for other in many ways each day so we can see how long it "
    "takes to answer when you ask one more question data code tests"
)
_WORDS = _VOCABULARY.split()


# --------------------------------------------------------------------------- shared pieces


def words(rng: random.Random, n: int) -> str:
    """A prompt of ``n`` one-token words (``count_tokens`` adds the message overhead)."""
    return " ".join(rng.choices(_WORDS, k=n))


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def recount(
    arrivals: Sequence[tuple[float, int, int]], rpm: int, tpm: int
) -> tuple[int, dict[str, int]]:
    """429s a provider with exact sliding windows at ``rpm``/``tpm`` would have sent.

    ``arrivals`` are ``(time, input tokens, output tokens counted at admission)`` in arrival
    order; a refused request records nothing (as the provider), the others count.
    """
    limiter = SlidingWindowLimiter(rpm=rpm, tpm=tpm, clock=lambda: 0.0)
    refused = 0
    by_window: dict[str, int] = {}
    for t, inp, out in arrivals:
        decision = limiter.acquire(inp, out, now=t)
        if not decision.admitted:
            refused += 1
            binding = decision.binding
            key = binding.window if binding is not None else "?"
            by_window[key] = by_window.get(key, 0) + 1
    return refused, by_window


def ideal_makespan(
    sizes: Sequence[tuple[int, int]], rpm: int, tpm: int, mode: str = "sliding"
) -> float:
    """Seconds the provider's own limiter needs to admit these requests, in this order.

    Each is admitted the moment it fits (zero latency, nothing else on the key): the best any
    client-side pacing can do against the provider's enforcement (``mode``: the simulator's
    sliding, token_bucket or quantized limiter).
    """
    limiter = ProviderLimiter(mode=mode, rpm=rpm, tpm=tpm, clock=lambda: 0.0)  # type: ignore[arg-type]
    t = 0.0
    for inp, out in sizes:
        decision = limiter.acquire(inp, out, now=t)
        if not decision.admitted:
            t = decision.retry_at
            while not limiter.acquire(inp, out, now=t).admitted:
                retry = limiter.check(inp, out, now=t).retry_at
                if retry == math.inf:
                    raise RuntimeError(f"a request of {inp + out} tokens never fits TPM {tpm}")
                t = retry
    return t


class RecordingAdmission(Admission):
    """The scheduler's own admission queue, also keeping each async ticket's timing.

    Installed as ``scheduler.admission`` before the first call: the only instrumentation
    inside the scheduler, needed because ``Ticket.computed_at`` is not exposed elsewhere.
    """

    def __init__(self, scheduler: RateScheduler, meter: WaitMeter | None = None) -> None:
        super().__init__(scheduler.backend, scheduler.clock)
        self.tickets: list[tuple[float, float, float]] = []
        self.meter = meter

    async def aacquire(self, *args: Any, **kwargs: Any) -> Ticket:
        if self.meter is None:
            ticket = await super().aacquire(*args, **kwargs)
        else:
            async with self.meter.waiting():
                ticket = await super().aacquire(*args, **kwargs)
        self.tickets.append((ticket.admitted_at, ticket.computed_at, ticket.waited_s))
        return ticket


class MeteredLimiter(InMemoryRateLimiter):
    """LangChain's limiter, unchanged, telling the meter when a caller waits in it."""

    def __init__(self, meter: WaitMeter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.meter = meter

    async def aacquire(self, *, blocking: bool = True) -> bool:
        async with self.meter.waiting():
            return await super().aacquire(blocking=blocking)


def lateness_ms(
    tickets: Sequence[tuple[float, float, float]],
    factor: float,
    gc_pauses: Sequence[tuple[float, float, int, float]] = (),
) -> dict[str, Any]:
    """How late admissions came after the time computed for them, in real ms.

    Only a timed wake-up of the head of the queue has a computed time of its own
    (``computed_at < admitted_at``): an admission at once, or one woken by the admission
    before it, keeps ``computed_at == admitted_at``. The waiters behind a timed wake-up
    follow it one by one through the event loop (a burst); ``burst_*`` measures each of them
    against the computed time of the wake-up that opened the burst: an upper bound, as a
    few may have become admissible a little later than that. A wake-up later than the goal
    is checked against the garbage collector's pauses (clock start and end): when the pauses
    inside its wait cover the excess, the collector held the whole process, not the
    scheduler.
    """
    ordered = sorted(tickets)
    late = [(a - c) * 1e3 / factor for a, c, _ in ordered if c < a]
    over = [(c, a) for a, c, _ in ordered if c < a and (a - c) * 1e3 / factor > GOAL_LATENESS_MS]
    in_gc = sum(
        1
        for c, a in over
        if sum(ms for s, e, _, ms in gc_pauses if s < a and e > c)
        >= (a - c) * 1e3 / factor - GOAL_LATENESS_MS
    )
    burst: list[float] = []
    opened = math.nan
    for admitted, computed, _ in ordered:
        if computed < admitted:
            opened = computed
        if opened == opened:
            burst.append((admitted - opened) * 1e3 / factor)
    return {
        "admissions": len(tickets),
        "timed_wakeups": len(late),
        "p50_ms": percentile(late, 0.50),
        "p99_ms": percentile(late, 0.99),
        "max_ms": max(late, default=math.nan),
        "over_goal": len(over),
        "over_goal_during_gc": in_gc,
        "burst_admissions": len(burst),
        "burst_p50_ms": percentile(burst, 0.50),
        "burst_p99_ms": percentile(burst, 0.99),
    }


class GcWatch:
    """Garbage-collector pauses while a row runs: a late wake-up may be one of them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pauses: list[tuple[float, float, int, float]] = []  # clock start, end, gen, ms
        self._started = (0.0, 0.0)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = (self.clock.now(), time.perf_counter())
        else:
            ms = (time.perf_counter() - self._started[1]) * 1e3
            self.pauses.append((self._started[0], self.clock.now(), info["generation"], ms))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        longest = max(self.pauses, key=lambda p: p[3], default=(0.0, 0.0, None, math.nan))
        return {
            "collections": len(self.pauses),
            "pauses_over_10ms": sum(1 for *_, ms in self.pauses if ms > 10),
            "longest_ms": longest[3],
            "longest_generation": longest[2],
        }


# --------------------------------------------------------------------------- part 1


class FakeProvider(BaseChatModel):
    """An in-process gpt-4o-mini: counts what the provider would see, answers after a latency.

    Each call is logged as an arrival ``(time, prompt tokens, max_tokens)`` (OpenAI counts
    ``max_tokens`` against TPM at admission), then sleeps ``0.3 s + 10 ms`` per output token
    (+-20 %) on the clock, like ``Latency.realistic()``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = NAME
    max_tokens: int = 256
    clock: Any = Field(exclude=True)
    arrivals: list[tuple[float, int, int]] = Field(default_factory=list, exclude=True)
    rng: Any = Field(default_factory=lambda: random.Random(0), exclude=True)

    @property
    def _llm_type(self) -> str:
        return "goodput-fake"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider="openai", ls_model_name=self.model_name)

    def _arrive(self, messages: list[BaseMessage]) -> tuple[float, AIMessage]:
        input_tokens = count_tokens(messages, MODEL)
        self.arrivals.append((self.clock.now(), input_tokens, self.max_tokens))
        output_tokens = self.rng.randint(16, self.max_tokens)
        latency = (0.3 + 0.01 * output_tokens) * self.rng.uniform(0.8, 1.2)
        message = AIMessage(
            content="ok",
            usage_metadata={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        )
        return latency, message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        latency, message = self._arrive(messages)
        self.clock.sleep(latency)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        latency, message = self._arrive(messages)
        await self.clock.asleep(latency)
        return ChatResult(generations=[ChatGeneration(message=message)])


@dataclass(frozen=True)
class Workload:
    name: str
    low: int
    high: int
    max_tokens: int


WORKLOADS = (
    Workload("mixed 100-3,000 tok", 100, 3_000, 256),  # TPM binds
    Workload("chat 50-300 tok", 50, 300, 64),  # RPM binds
)


async def _virtual_row(
    workload: Workload, count_from: CountFrom, minutes: int, callers: int
) -> dict[str, Any]:
    clock = VirtualClock()
    scheduler = RateScheduler(
        limits={MODEL: {"rpm": V_RPM, "tpm": V_TPM, "rpd": None}},
        clock=clock,
        max_wait=V_MAX_WAIT,
        count_from=count_from,
    )
    fake = FakeProvider(clock=clock, max_tokens=workload.max_tokens, rng=random.Random(7))
    model = scheduler | fake
    rng = random.Random(11)
    pool = [words(rng, rng.randint(workload.low, workload.high)) for _ in range(512)]

    async def caller(seed: int) -> None:
        pick = random.Random(seed)
        while True:
            await model.ainvoke(pick.choice(pool))

    duration = minutes * WINDOW_S
    cpu0, wall0 = time.process_time(), time.perf_counter()
    tasks = [asyncio.create_task(caller(i)) for i in range(callers)]
    await clock.asleep(duration)
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    failures = [o for o in outcomes if not isinstance(o, asyncio.CancelledError)]
    if failures:
        raise RuntimeError(f"virtual callers failed: {failures[:3]!r}")

    inside = [a for a in fake.arrivals if a[0] < duration]
    requests = len(inside)
    tokens = sum(inp + out for _, inp, out in inside)
    req_share = requests / (V_RPM * minutes)
    tok_share = tokens / (V_TPM * minutes)
    refused, by_window = recount(fake.arrivals, V_RPM, V_TPM)
    stats = scheduler.stats()
    return {
        "workload": workload.name,
        "count_from": count_from,
        "prompt_tokens": [workload.low, workload.high],
        "max_tokens": workload.max_tokens,
        "callers": callers,
        "simulated_s": duration,
        "requests": requests,
        "tokens": tokens,
        "requests_per_min": requests / minutes,
        "tokens_per_min": tokens / minutes,
        "share_of_rpm": req_share,
        "share_of_tpm": tok_share,
        "binding": "tpm" if tok_share >= req_share else "rpm",
        "throughput_vs_binding_limit": max(req_share, tok_share),
        "provider_429s": refused,
        "provider_429s_by_window": by_window,
        "scheduler_429s": stats["rate_limit_errors"],
        "refused_max_wait": stats["refused_max_wait"],
        "wait_p50_s": stats["waits"]["p50_s"],
        "wait_p95_s": stats["waits"]["p95_s"],
        "real_s": wall,
        "cpu_s": cpu,
    }


def part_virtual(minutes: int, callers: int) -> list[dict[str, Any]]:
    rows = []
    for workload in WORKLOADS:
        for count_from in COUNT_FROM:
            rows.append(asyncio.run(_virtual_row(workload, count_from, minutes, callers)))
    return rows


def print_virtual(rows: Sequence[dict[str, Any]], minutes: int) -> None:
    print(
        f"\nPart 1: virtual time, {minutes} simulated minutes, RPM {V_RPM} / TPM {V_TPM:,}, "
        f"{rows[0]['callers']} async callers, RateScheduler(VirtualClock) + in-process provider"
    )
    head = (
        f"{'workload':<20} {'count_from':<10} {'binds':>5} {'thru/limit':>10} {'req/min':>8} "
        f"{'tok/min':>9} {'429s':>5} {'requests':>8} {'real s':>7}  note"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ok = r["throughput_vs_binding_limit"] >= GOAL_THROUGHPUT and r["provider_429s"] == 0
        print(
            f"{r['workload']:<20} {r['count_from']:<10} {r['binding']:>5} "
            f"{r['throughput_vs_binding_limit']:>10.3f} {r['requests_per_min']:>8.1f} "
            f"{r['tokens_per_min']:>9,.0f} {r['provider_429s']:>5} {r['requests']:>8} "
            f"{r['real_s']:>7.1f}  {'meets' if ok else 'misses'} goal >= {GOAL_THROUGHPUT}, 0"
        )
    print(
        "thru/limit: what the provider admitted in the run / what the binding limit allows in "
        "it; at most 0.98 (TPM) or 0.996 (RPM) with the default headroom of 2 % and 2 requests."
        "\n429s: arrivals an exact 60 s sliding window at the real limits would refuse.\n"
        "count_from: in-process the provider counts a request at admission, so 'admission' is "
        "exact; 'response' holds each request in the window until its answer came (0.3-3.4 s "
        "later here), which only delays each window's refill by about the slowest answer of "
        "the burst before it; in these 10 minutes that lag did not cost a whole refill."
    )


# --------------------------------------------------------------------------- part 2


def sim_model(
    rpm: int,
    tpm: int,
    latency: tuple[float, float, float],
    enforcement: dict[str, Any] | None = None,
) -> list[SimModel]:
    """The one simulated model of parts 2-4, built in the simulator's child process.

    ``enforcement``: ``SimModel`` fields such as ``{"enforcement": "quantized",
    "failed_requests_count": False}``; ``None`` leaves the model's defaults.
    """
    return [
        SimModel(
            name=NAME,
            rpm=rpm,
            tpm=tpm,
            latency=Latency(ttft=latency[0], per_token=latency[1], jitter=latency[2]),
            **(enforcement or {}),
        )
    ]


@dataclass
class Job:
    index: int
    prompt: str
    input_tokens: int
    sent: bool = False
    first_sent_at: float = math.nan
    last_sent_at: float = math.nan
    admitted_at: float = math.nan  # send time of the attempt the provider answered with 200
    outcome: str = "not run"
    state: str | None = None  # WaitMeter: preparing, in_limiter, active


_JOB: contextvars.ContextVar[Job | None] = contextvars.ContextVar("goodput_job", default=None)


class WaitMeter:
    """CPU of this process while every caller is waiting for its turn, and nothing else runs.

    A job is preparing (LangChain, token counts) until it enters the limiter, waiting inside
    it, then active (sending, the answer, parsing it) until its call returns. Whenever at
    least one job waits and none prepares or is active, the process has nothing to do but
    wait, so every CPU second it spends then is the cost of waiting: polls, timers, wakeups.
    """

    def __init__(self) -> None:
        self.preparing = 0
        self.in_limiter = 0
        self.active = 0
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def _flush(self) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        if self.in_limiter and not self.preparing and not self.active:
            self.cpu_s += cpu - self._cpu
            self.wall_s += wall - self._wall
        self._cpu, self._wall = cpu, wall

    def move(self, job: Job, state: str | None) -> None:
        self._flush()
        for name, delta in ((job.state, -1), (state, 1)):
            if name is not None:
                setattr(self, name, getattr(self, name) + delta)
        job.state = state

    @contextlib.asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        job = _JOB.get()
        if job is None:
            yield
            return
        self.move(job, "in_limiter")
        try:
            yield
        finally:
            self.move(job, "active")


def make_jobs(count: int, period: int = 1_000) -> list[Job]:
    """60 % short prompts (RPM binds), then 40 % long ones (TPM binds); repeats past ``period``."""
    rng = random.Random(5)
    jobs = []
    for i in range(count):
        low, high = (100, 500) if i % period < period * 3 // 5 else (800, 2_000)
        prompt = words(rng, rng.randint(low, high))
        jobs.append(Job(i, prompt, count_tokens(prompt, MODEL)))
    return jobs


def http_client(clock: Clock) -> httpx.AsyncClient:
    """A connection per caller, and hooks that see every request leave and every answer."""

    async def on_request(request: httpx.Request) -> None:
        job = _JOB.get()
        if job is None:
            return
        job.last_sent_at = clock.now()
        if not job.sent:
            job.sent = True
            job.first_sent_at = job.last_sent_at

    async def on_response(response: httpx.Response) -> None:
        job = _JOB.get()
        if job is not None and response.status_code == 200:
            job.admitted_at = job.last_sent_at

    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=CALLERS_PER_CLIENT),
        timeout=httpx.Timeout(120.0, connect=30.0),
        event_hooks={"request": [on_request], "response": [on_response]},
    )


async def _run_job(model: Any, job: Job, meter: WaitMeter) -> None:
    """One call, its outcome recorded on the job (a failure is an outcome, never raised)."""
    meter.move(job, "preparing")
    token = _JOB.set(job)
    try:
        await model.ainvoke(job.prompt)
        job.outcome = "served"
    except openai.RateLimitError:
        job.outcome = "429"
    except RateLimitExhaustedError:
        job.outcome = "refused (max_wait)"
    except Exception as exc:
        job.outcome = f"error: {type(exc).__name__}"
    finally:
        meter.move(job, None)
        _JOB.reset(token)


@dataclass
class Row:
    """One limiter of part 2: how to build its model on an HTTP client, and its meter."""

    label: str
    make_model: Callable[[httpx.AsyncClient], Any]
    meter: WaitMeter
    recorder: RecordingAdmission | None = None
    scheduler: RateScheduler | None = None


async def _http_row(
    row: Row, jobs: list[Job], callers: int, clock: Clock, factor: float, sim_url: str
) -> dict[str, Any]:
    async with httpx.AsyncClient() as control:
        (await control.post(f"{sim_url}/sim/reset")).raise_for_status()
    meter = row.meter
    # One ChatOpenAI (and one connection pool) per CALLERS_PER_CLIENT callers, all sharing
    # the row's limiter: httpcore's pool costs O(n^2) CPU with n requests in flight on it
    # (a single pool of 1,000 spent 26 s of CPU on 1,000 calls), which is not what is
    # measured here.
    clients = [http_client(clock) for _ in range(math.ceil(callers / CALLERS_PER_CLIENT))]
    models = [row.make_model(client) for client in clients]
    queue = deque(jobs)

    async def caller(model: Any) -> None:
        while queue:
            await _run_job(model, queue.popleft(), meter)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    with GcWatch(clock) as gc_watch:
        await asyncio.gather(*(caller(models[i % len(models)]) for i in range(callers)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for client in clients:
        await client.aclose()
    async with httpx.AsyncClient() as control:
        response = await control.get(f"{sim_url}/sim/stats")
        response.raise_for_status()
        stats = response.json()["models"][NAME]

    served = sorted((j for j in jobs if j.outcome == "served"), key=lambda j: j.admitted_at)
    outcomes: dict[str, int] = {}
    for job in jobs:
        outcomes[job.outcome] = outcomes.get(job.outcome, 0) + 1
    start = min((j.first_sent_at for j in jobs if j.sent), default=math.nan)
    makespan = (served[-1].admitted_at - start) if served else math.nan
    ideal = ideal_makespan([(j.input_tokens, H_MAX_TOKENS) for j in served], H_RPM, H_TPM)
    # Everything served fitting the first window at once leaves nothing to pace: no ratio.
    ratio = ideal / makespan if served and ideal >= 1.0 else math.nan
    result: dict[str, Any] = {
        "limiter": row.label,
        "jobs": len(jobs),
        "callers": callers,
        "http_clients": len(clients),
        "served": len(served),
        "outcomes": outcomes,
        "provider_429s": sum(stats["rate_limited"].values()),
        "provider_429s_by_kind": stats["rate_limited"],
        "provider_requests_received": stats["requests_received"],
        "makespan_s": makespan,
        "ideal_makespan_s": ideal,
        "throughput_vs_limit": ratio,
        "wait_cpu_s": meter.cpu_s,
        "wait_wall_s": meter.wall_s,
        "wait_cpu_share": meter.cpu_s / meter.wall_s if meter.wall_s > 0 else math.nan,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_share": cpu / wall,
        "clock_factor": factor,
        "gc": gc_watch.summary(),
    }
    if row.recorder is not None:
        result["lateness"] = lateness_ms(row.recorder.tickets, factor, gc_watch.pauses)
    if row.scheduler is not None:
        result["scheduler_stats"] = row.scheduler.stats()
    return result


def _openai_kwargs(sim_url: str) -> dict[str, Any]:
    """ChatOpenAI on the simulator: no retries of its own (a 429 is the limiter's to handle)."""
    return {
        "model": NAME,
        "base_url": f"{sim_url}/v1",
        "api_key": "sim",
        "max_retries": 0,
        "max_tokens": H_MAX_TOKENS,
    }


def _rows(sim_url: str, clock: Clock, factor: float, admission_row: bool) -> list[Row]:
    base = _openai_kwargs(sim_url)

    def ours(count_from: CountFrom, smoothing: bool = False) -> Row:
        meter = WaitMeter()
        scheduler = RateScheduler(
            limits={MODEL: {"rpm": H_RPM, "tpm": H_TPM, "rpd": None, "smoothing": smoothing}},
            clock=clock,
            max_wait=H_MAX_WAIT,
            count_from=count_from,
        )
        recorder = RecordingAdmission(scheduler, meter)
        scheduler.admission = recorder
        return Row(
            f"RateScheduler ({'smoothing' if smoothing else count_from})",
            lambda client: scheduler | ChatOpenAI(**base, http_async_client=client),
            meter,
            recorder,
            scheduler,
        )

    lc_meter = WaitMeter()
    # The same rate. In --quick its time is scaled by hand: it reads time.monotonic itself.
    limiter = MeteredLimiter(
        lc_meter,
        requests_per_second=H_RPM / WINDOW_S * factor,
        check_every_n_seconds=0.1 / factor,
    )
    return [
        ours("response"),
        *([ours("admission")] if admission_row else []),
        Row(
            "InMemoryRateLimiter",
            lambda client: ChatOpenAI(**base, http_async_client=client, rate_limiter=limiter),
            lc_meter,
        ),
        Row(
            "no limiter",
            lambda client: ChatOpenAI(**base, http_async_client=client),
            WaitMeter(),
        ),
        ours("response", smoothing=True),  # the lateness probe, run last
    ]


async def _part_http(
    jobs: int, callers: int, clock: Clock, factor: float, sim_url: str, admission_row: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    *rows, probe = _rows(sim_url, clock, factor, admission_row)
    template = make_jobs(jobs)
    results = [
        await _http_row(row, [replace(j) for j in template], callers, clock, factor, sim_url)
        for row in rows
    ]
    # Every admission of a smoothed schedule is a timed wake-up: the lateness sample.
    probe_jobs = [replace(j) for j in template[: min(PROBE_JOBS, jobs)]]
    return results, await _http_row(probe, probe_jobs, len(probe_jobs), clock, factor, sim_url)


class SimProcess(ChildSimulator):
    """The simulated provider in a child process; started first, so its start-up overlaps part 1.

    With ``factor != 1`` the provider and the schedulers share one `ScaledClock` (``now()`` reads
    the system-wide monotonic clock, so the pickled copy in the child agrees with ours).
    """

    def __init__(
        self,
        factor: float,
        rpm: int = H_RPM,
        tpm: int = H_TPM,
        enforcement: dict[str, Any] | None = None,
    ) -> None:
        self.scaled = ScaledClock(factor) if factor != 1.0 else None
        self.clock: Clock = self.scaled if self.scaled is not None else SystemClock()
        latency = (H_LATENCY[0] / factor, H_LATENCY[1] / factor, H_LATENCY[2])
        models = functools.partial(sim_model, rpm, tpm, latency, enforcement)
        super().__init__(models, seed=0, clock=self.scaled)


def _fmt(value: float, spec: str, suffix: str = "") -> str:
    return "n/a" if value != value else format(value, spec) + suffix


def print_http(rows: Sequence[dict[str, Any]], probe: dict[str, Any], factor: float) -> None:
    mode = "real time" if factor == 1.0 else f"ScaledClock x{factor:g} (--quick)"
    first = rows[0]
    print(
        f"\nPart 2: {mode}, simulated provider over HTTP, {first['callers']:,} concurrent "
        f"ChatOpenAI callers, {first['jobs']:,} jobs (60 % short, then 40 % long prompts), "
        f"RPM {H_RPM} / TPM {H_TPM:,}, max_tokens {H_MAX_TOKENS}"
    )
    head = (
        f"{'limiter':<25} {'served':>6} {'429s':>5} {'makespan':>8} {'ideal':>6} "
        f"{'thru/limit':>10} {'late p50':>8} {'late p99':>8} {'wait CPU':>8} {'wait s':>6} "
        f"{'CPU s':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        late = r.get("lateness", {})
        print(
            f"{r['limiter']:<25} {r['served']:>6} {r['provider_429s']:>5} "
            f"{_fmt(r['makespan_s'], '.1f'):>8} {r['ideal_makespan_s']:>6.1f} "
            f"{_fmt(r['throughput_vs_limit'], '.3f'):>10} "
            f"{_fmt(late.get('p50_ms', math.nan), '.2f'):>8} "
            f"{_fmt(late.get('p99_ms', math.nan), '.2f'):>8} "
            f"{_fmt(r['wait_cpu_share'] * 100, '.2f', '%'):>8} {r['wait_wall_s']:>6.1f} "
            f"{r['cpu_s']:>6.1f}"
        )
    print(
        "served: jobs answered (a 429 is not retried: max_retries=0, and the limiters have no "
        "retry of their own; ours retries).\n429s: counted by the provider. makespan: first "
        "request sent to the last one the provider admitted (clock seconds); ideal: the time "
        "the provider's exact limits need for the same served jobs in the same order.\n"
        "thru/limit: ideal / makespan (n/a: everything served fit the first window at once).\n"
        "late p50/p99: real ms from the time the head of the queue slept towards to its "
        f"admission, over timed wake-ups (goal p99 <= {GOAL_LATENESS_MS:g} ms). On Linux an "
        "asyncio sleep overshoots by about 0.1 % of its length (epoll timer slack, at most "
        "100 ms): a head that sleeps ~60 s to the next window wakes ~60 ms late.\n"
        "count_from: 'response' counts a request from its answer, 'admission' from its "
        "admission; over HTTP the provider counts it on arrival, in between.\n"
        "wait CPU: this process's CPU while callers waited and nothing was in flight, as a "
        f"share of one core over those {'' if factor == 1.0 else 'real '}seconds (wait s; "
        f"goal < {GOAL_WAIT_CPU:.0%}); the simulator runs in a child process. CPU s: the "
        "whole row."
    )
    for r in (*rows, probe):
        late, gcs = r.get("lateness"), r["gc"]
        line = f"  {r['limiter']}:"
        if late is not None:
            line += (
                f" {late['timed_wakeups']} timed wake-ups (late p50 {_fmt(late['p50_ms'], '.2f')}"
                f" / p99 {_fmt(late['p99_ms'], '.2f')} / max {_fmt(late['max_ms'], '.2f')} ms,"
                f" {late['over_goal']} over {GOAL_LATENESS_MS:g} ms of which"
                f" {late['over_goal_during_gc']} explained by GC pauses);"
                f" {late['burst_admissions']} admissions in their bursts, p50"
                f" {_fmt(late['burst_p50_ms'], '.1f')} / p99 {_fmt(late['burst_p99_ms'], '.1f')}"
                " ms after the burst's computed time;"
            )
        print(
            f"{line} {gcs['collections']} GC runs, {gcs['pauses_over_10ms']} over 10 ms, "
            f"longest {_fmt(gcs['longest_ms'], '.0f')} ms"
        )
    plate = probe["lateness"]
    print(
        f"Lateness probe: RateScheduler(smoothing=True), {probe['jobs']} short jobs, "
        f"{probe['callers']} callers, one admission every {WINDOW_S / (H_RPM - 2):.3f} clock s, "
        f"each a timed wake-up: {plate['timed_wakeups']} wake-ups, late p50 "
        f"{_fmt(plate['p50_ms'], '.2f')} / p99 {_fmt(plate['p99_ms'], '.2f')} / max "
        f"{_fmt(plate['max_ms'], '.2f')} ms (goal p99 <= {GOAL_LATENESS_MS:g}; "
        f"{plate['over_goal']} over it, {plate['over_goal_during_gc']} explained by GC pauses); "
        f"429s {probe['provider_429s']}; wait CPU "
        f"{_fmt(probe['wait_cpu_share'] * 100, '.2f', '%')} over {probe['wait_wall_s']:.1f} s."
    )
    if factor != 1.0:
        print(
            f"--quick: the provider and our scheduler share a ScaledClock x{factor:g}; "
            f"InMemoryRateLimiter gets {H_RPM / WINDOW_S * factor:g} req/s and polls every "
            f"{100 / factor:g} ms of real time (the same pacing, {factor:g}x faster). Sending "
            f"a burst takes {factor:g}x more clock time, so makespans are longer than in real "
            "time; quote the default mode."
        )


# --------------------------------------------------------------------------- part 3


async def _multi_row(
    kind: MultiKind, jobs: list[Job], sim_url: str, redis_url: str, prefix: str, barrier: Any
) -> dict[str, Any]:
    """One process's share of a part 3 row: its own scheduler at the whole limit, its callers."""
    limits = {MODEL: {"rpm": M_RPM, "tpm": M_TPM, "rpd": None}}
    backend: Any = None
    if kind == "redis":
        from llm_routing.schedule.redis import RedisBackend

        backend = RedisBackend(redis_url, prefix=prefix)
        scheduler = RateScheduler(
            limits=limits, max_wait=M_MAX_WAIT, backend=backend, clock=backend.server_clock
        )
        backend.now()  # the first TIME read, before the start
    else:
        scheduler = RateScheduler(limits=limits, max_wait=M_MAX_WAIT)
    clock = SystemClock()  # time.monotonic is system-wide: the processes' send times agree
    clients = [http_client(clock) for _ in range(math.ceil(len(jobs) / CALLERS_PER_CLIENT))]
    base = _openai_kwargs(sim_url)
    models = [scheduler | ChatOpenAI(**base, http_async_client=client) for client in clients]
    meter = WaitMeter()
    await asyncio.to_thread(barrier.wait, M_ROW_TIMEOUT)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(
        *(_run_job(models[i % len(models)], job, meter) for i, job in enumerate(jobs))
    )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for client in clients:
        await client.aclose()
    if backend is not None:
        await backend.aclose()
    stats = scheduler.stats()
    return {
        # Plain tuples: a Job pickled here would name this process's __mp_main__ module.
        "jobs": [(j.input_tokens, j.sent, j.first_sent_at, j.admitted_at, j.outcome) for j in jobs],
        "scheduler": {
            name: stats[name]
            for name in ("admitted", "rate_limit_errors", "retries", "refused_max_wait")
        },
        "cpu_s": cpu,
        "wall_s": wall,
    }


def multi_worker(
    jobs: list[Job], sim_url: str, redis_url: str, prefix: str, barrier: Any, results: Any
) -> None:
    """A part 3 process: each row of ``M_ROWS`` in turn, each started by ``barrier``."""
    count_tokens("warm up", MODEL)  # load the encoding before the start, not inside the burst
    for kind, _ in M_ROWS:
        try:
            row = [replace(j) for j in jobs]
            results.put(asyncio.run(_multi_row(kind, row, sim_url, redis_url, prefix, barrier)))
        except BaseException as exc:
            results.put({"error": f"{kind} row: {type(exc).__name__}: {exc}"})
            barrier.abort()
            raise


def _multi_summary(
    label: str, shares: Sequence[dict[str, Any]], stats: dict[str, Any], wall: float
) -> dict[str, Any]:
    jobs = [job for share in shares for job in share["jobs"]]
    outcomes: dict[str, int] = {}
    for *_, outcome in jobs:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    served = sorted((j for j in jobs if j[4] == "served"), key=lambda j: j[3])
    start = min((j[2] for j in jobs if j[1]), default=math.nan)
    makespan = (served[-1][3] - start) if served else math.nan
    ideal = ideal_makespan([(j[0], H_MAX_TOKENS) for j in served], M_RPM, M_TPM, M_ENFORCEMENT)
    scheduler = {
        name: sum(share["scheduler"][name] for share in shares) for name in shares[0]["scheduler"]
    }
    return {
        "backend": label,
        "processes": len(shares),
        "jobs": len(jobs),
        "jobs_tokens": sum(j[0] + H_MAX_TOKENS for j in jobs),
        "served": len(served),
        "outcomes": outcomes,
        "provider_429s": sum(stats["rate_limited"].values()),
        "provider_429s_by_kind": stats["rate_limited"],
        "provider_requests_received": stats["requests_received"],
        "makespan_s": makespan,
        "ideal_makespan_s": ideal,
        "throughput_vs_limit": ideal / makespan if served and ideal >= 1.0 else math.nan,
        "scheduler": scheduler,
        "cpu_s_per_process": [share["cpu_s"] for share in shares],
        "wall_s": wall,
    }


def part_multiprocess(sim_url: str, redis_url: str) -> list[dict[str, Any]]:
    """Both rows of part 3 on the same four processes, the simulator reset before each."""
    template = make_jobs(M_PROCESSES * M_JOBS, period=M_PROCESSES * M_JOBS)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(M_PROCESSES + 1)  # and this process, which starts the clock
    results = context.Queue()
    prefix = f"goodput-{uuid.uuid4().hex[:8]}"
    processes = [
        context.Process(
            target=multi_worker,
            args=(template[n::M_PROCESSES], sim_url, redis_url, prefix, barrier, results),
            daemon=True,
        )
        for n in range(M_PROCESSES)
    ]
    for process in processes:
        process.start()
    rows = []
    try:
        for _, label in M_ROWS:
            httpx.post(f"{sim_url}/sim/reset").raise_for_status()
            try:
                barrier.wait(M_ROW_TIMEOUT)
            except threading.BrokenBarrierError:
                raise RuntimeError(_multi_failure(results, "did not start")) from None
            wall0 = time.perf_counter()
            shares = []
            for _ in processes:
                try:
                    share = results.get(timeout=M_ROW_TIMEOUT)
                except Empty:
                    raise RuntimeError(_multi_failure(results, "did not finish")) from None
                if "error" in share:
                    raise RuntimeError(f"a part 3 process failed: {share['error']}")
                shares.append(share)
            wall = time.perf_counter() - wall0
            stats = httpx.get(f"{sim_url}/sim/stats").json()["models"][NAME]
            rows.append(_multi_summary(label, shares, stats, wall))
    finally:
        barrier.abort()  # releases any process still waiting for a row that will not start
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    return rows


def _multi_failure(results: Any, what: str) -> str:
    try:
        share = results.get(timeout=5)
    except Empty:
        return f"the part 3 processes {what} within {M_ROW_TIMEOUT:g} s"
    return f"a part 3 process failed: {share.get('error', 'no error reported')}"


def print_multiprocess(rows: Sequence[dict[str, Any]]) -> None:
    first = rows[0]
    print(
        f"\nPart 3: real time, {M_PROCESSES} OS processes, {M_JOBS} ChatOpenAI callers each "
        f"(60 % short, then 40 % long prompts), one simulated provider over HTTP at RPM "
        f"{M_RPM} / TPM {M_TPM:,}, max_tokens {H_MAX_TOKENS}; every process runs its own "
        f"RateScheduler at that same limit. The {first['jobs']} jobs are "
        f"{first['jobs'] / M_RPM:.2f}x the RPM and {first['jobs_tokens'] / M_TPM:.2f}x the TPM "
        "(prompt + max_tokens)"
    )
    head = (
        f"{'backend':<20} {'served':>6} {'429s':>5} {'received':>8} {'retries':>7} "
        f"{'makespan':>8} {'ideal':>6} {'thru/limit':>10} {'wall s':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['backend']:<20} {r['served']:>6} {r['provider_429s']:>5} "
            f"{r['provider_requests_received']:>8} {r['scheduler']['retries']:>7} "
            f"{_fmt(r['makespan_s'], '.1f'):>8} {r['ideal_makespan_s']:>6.1f} "
            f"{_fmt(r['throughput_vs_limit'], '.3f'):>10} {r['wall_s']:>6.1f}"
        )
    print(
        "memory per process: a MemoryBackend in each process, so together they admit up to "
        f"{M_PROCESSES}x the limit; Redis shared: one RedisBackend (a Lua script per decision, "
        "Redis TIME) for all four.\n429s: counted by the provider (by kind: "
        + "; ".join(f"{r['backend']} {r['provider_429s_by_kind']}" for r in rows)
        + "). received: requests the provider received, 429s included. retries: 429s our "
        "schedulers retried (ChatOpenAI's own retries are off).\nmakespan: first request sent "
        "to the last one the provider admitted (s); ideal: the time the provider's exact "
        "limits need for the same served jobs in the same order; thru/limit: ideal / makespan."
        "\nwall s: from the start signal to the last process's answer."
    )
    for r in rows:
        failed = {k: v for k, v in r["outcomes"].items() if k != "served"}
        if failed:
            print(f"  {r['backend']}: not served {failed}")


# --------------------------------------------------------------------------- main


def _json_safe(value: Any) -> Any:
    """NaN (a measure that does not apply) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.goodput", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run part 2 on a ScaledClock shared by the simulator and the scheduler",
    )
    parser.add_argument(
        "--factor", type=float, default=10.0, help="ScaledClock speed-up for --quick (10)"
    )
    parser.add_argument(
        "--part", choices=("all", "virtual", "http", "multiprocess", "enforcement"), default="all"
    )
    parser.add_argument(
        "--admission-row",
        action="store_true",
        help="part 2 also runs RateScheduler(count_from='admission'): 3-4 more minutes",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="part 3 on this Redis (default: a private redis-server from PATH on a free port)",
    )
    parser.add_argument("--minutes", type=int, default=V_MINUTES, help="part 1 virtual minutes")
    parser.add_argument("--callers", type=int, default=H_CALLERS, help="part 2 async callers")
    parser.add_argument(
        "--jobs", type=int, default=None, help="part 2 requests in all (default: one per caller)"
    )
    from benchmarks import goodput_enforcement

    goodput_enforcement.add_arguments(parser)
    args = parser.parse_args(argv)
    goodput_enforcement.check_args(parser, args)
    if args.minutes < 1 or args.callers < 1 or (args.jobs is not None and args.jobs < 1):
        parser.error("--minutes, --callers and --jobs must be >= 1")
    if args.quick and not args.factor > 1:
        parser.error("--factor must be > 1 (how many times faster than real time)")
    multi = args.part in ("all", "multiprocess")
    if multi and importlib.util.find_spec("redis") is None:
        parser.error("part 3 needs the redis client: pip install 'llm-routing[redis]'")
    if multi and args.redis_url is None and shutil.which("redis-server") is None:
        parser.error(
            "part 3 needs redis-server on PATH (apt-get install redis-server) or --redis-url"
        )
    factor = args.factor if args.quick else 1.0
    jobs = args.jobs if args.jobs is not None else args.callers

    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "versions": {
            "langchain_core": langchain_core.__version__,
            "langchain_openai": getattr(langchain_openai, "__version__", "?"),
            "openai": openai.__version__,
        },
        "mode": "quick" if args.quick else "real-time",
        "clock_factor": factor,
        "goals": {
            "throughput_vs_limit": GOAL_THROUGHPUT,
            "provider_429s": 0,
            "lateness_p99_ms": GOAL_LATENESS_MS,
            "wait_cpu_share": GOAL_WAIT_CPU,
        },
    }
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(SimProcess(factor)) if args.part in ("all", "http") else None
        # Started now too, so their start-up overlaps the other parts.
        multi_sim = (
            stack.enter_context(SimProcess(1.0, M_RPM, M_TPM, {"enforcement": M_ENFORCEMENT}))
            if multi
            else None
        )
        redis_url: str | None = None
        if multi:
            from benchmarks.redis_ops import _server as redis_server

            redis_url = stack.enter_context(redis_server(args.redis_url))
        if args.part in ("all", "virtual"):
            rows = part_virtual(args.minutes, V_CALLERS)
            print_virtual(rows, args.minutes)
            results["virtual"] = {
                "rpm": V_RPM,
                "tpm": V_TPM,
                "minutes": args.minutes,
                "max_wait_s": V_MAX_WAIT,
                "latency": "0.3 s + 10 ms per output token, +-20 %",
                "rows": rows,
            }
        if sim is not None:
            http_rows, probe = asyncio.run(
                _part_http(jobs, args.callers, sim.clock, factor, sim.url, args.admission_row)
            )
            print_http(http_rows, probe, factor)
            results["http"] = {
                "rpm": H_RPM,
                "tpm": H_TPM,
                "max_tokens": H_MAX_TOKENS,
                "max_wait_s": H_MAX_WAIT,
                "latency_real_s": {"ttft": H_LATENCY[0], "per_token": H_LATENCY[1]},
                "callers_per_http_client": CALLERS_PER_CLIENT,
                "rows": http_rows,
                "lateness_probe": probe,
            }
        if multi_sim is not None and redis_url is not None:
            multi_rows = part_multiprocess(multi_sim.url, redis_url)
            print_multiprocess(multi_rows)
            results["multiprocess"] = {
                "rpm": M_RPM,
                "tpm": M_TPM,
                "processes": M_PROCESSES,
                "callers_per_process": M_JOBS,
                "max_tokens": H_MAX_TOKENS,
                "max_wait_s": M_MAX_WAIT,
                "latency_real_s": {"ttft": H_LATENCY[0], "per_token": H_LATENCY[1]},
                "rows": multi_rows,
            }
    if args.part in ("all", "enforcement"):
        results["enforcement"] = goodput_enforcement.run_from_args(parser, args)
    results["total_real_s"] = time.perf_counter() - started
    out = RESULTS / ("goodput-quick.json" if args.quick else "goodput.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.part != "all" and out.exists():
        # One part re-run: the file keeps the other parts' last results.
        with contextlib.suppress(ValueError):
            results = {**json.loads(out.read_text()), **results}
    out.write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    print(f"\ntotal {results['total_real_s']:.0f} s; wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
