"""Goodput under each way a provider enforces its limits (``python -m benchmarks.goodput --part
enforcement``; issue 16 item 6).

For each enforcement mode of the simulated provider (``sliding``: an exact 60 s log;
``token_bucket``: continuous refill, burst up to the limit; ``quantized``: the minute window
plus a per-second share of limit/60, OpenAI's and Anthropic's documented behaviour), in one
run, three limiters side by side in front of the same provider:

* ``RateScheduler`` as a user writes it: ``limits={"openai:gpt-4o-mini": {"rpm": 600, "tpm":
  10_000_000, "rpd": None}}`` (the TPM high enough that the RPM binds), every other option at
  its default except ``clock`` (the run's ScaledClock) and ``max_wait=900`` (so that
  `RateLimitExhaustedError` does not happen; it would count as a failure);
* LangChain's ``InMemoryRateLimiter(requests_per_second=RPM / 60)`` with its defaults otherwise
  (``check_every_n_seconds=0.1``, ``max_bucket_size=1``), on every ``ChatOpenAI``;
* no limiter.

Setup: 200 concurrent callers, real ``ChatOpenAI`` clients (``max_retries=0``, 50 callers per
HTTP client) over HTTP against the simulator in a child process (``SimProcess`` of
``benchmarks.goodput``), RPM 600, 3 simulated minutes per row. Each caller runs a closed loop:
send a short prompt, and as soon as the call ends send the next. A call refused with a 429
(the rows without our scheduler; ours retries inside the call) is counted and sent again at
once, as the same logical call. Time runs on a ``ScaledClock`` (x5 by default,
``--enforcement-factor``) shared by the simulator (its windows and its latency), our scheduler
and the measurements; LangChain's limiter reads ``time.monotonic`` itself, so it is given
``RPM / 60 x factor`` requests per second and polls every ``0.1 / factor`` real seconds: the
same pacing, sped up. The simulator is reset before each row, so each row starts on empty
windows (a token bucket full). It counts only the requests it admits
(``failed_requests_count=False``, passed explicitly; ``--failed-requests-count`` counts refusals
too, as OpenAI documents, which mostly changes the no-limiter rows).

Measures (clock seconds throughout):

* goodput: calls completed within the row's duration, per minute, divided by the RPM. A
  token bucket allows its whole capacity at once on top of the refill, so over 3 minutes up
  to 4/3 of the limit can complete there.
* 429s / 1,000: the simulator's own counters (``/sim/stats``: 429s per 1,000 requests it
  received), with their causes (``rate_limited_by_cause``: ``minute``, ``per_second``).
* p50 / p99 s: latency of the calls completed in the row, from the first send of the logical
  call (including a wait in a limiter and any resends after 429s) to its answer.
* p50 / shortest: the p50 latency over the shortest p50 this enforcement allows to a fair
  client. "Shortest" is computed, not measured: the same closed loop (200 callers, same
  duration) in virtual time against the provider's own limiter in that mode
  (``SimModel.limiter``), each call admitted at the earliest moment the limiter admits it in
  arrival (FIFO) order, then served in the simulator's nominal latency (25 ms + 12 reply
  tokens x 1 ms), never refused. Under ``quantized`` and, after its initial burst,
  ``token_bucket`` this is Little's law's N/r = 200 / 10 per s = 20 s (a closed loop of N
  callers through a rate r spends N/r per call on average); under ``sliding`` a greedy client
  sends the whole minute's 600 at once, so two calls in three take only the service time and
  the third waits for the next minute: a p50 of the service time, the same mean of N/r. FIFO
  matters: an unfair order (newest first) could serve a few callers fast and starve the rest,
  which is how the no-limiter rows (whoever resends first wins) get under 1 with a long p99.

Scaled time is not fully faithful, and what it costs was measured (quantized, 1 simulated
minute, on a loaded 2-core machine). A wake-up that comes about 1 ms of real time late (the
event loop busy with other callers' answers) costs ``factor`` ms of clock time, and both
limiters pace each admission from the previous one, so every admission loses it: goodput
0.990 in real time, 0.953 at x5, 0.928 at x10 for our default; 0.972 / 0.892 / 0.830 for
``InMemoryRateLimiter`` (0 x 429 for both at every factor; p50 20.2 / 20.9 / 21.5 s for
ours). A caller with no limiter resends as fast as this process can, a fixed real rate, so a
scaled row sends fewer requests per clock second than a real one (goodput 0.998 / 0.964 /
0.878, 957 / 777 / 499 x 429 per 1,000). ``--enforcement-factor 1`` runs in real time (about
28 minutes for the nine rows; the no-limiter rows keep a core busy); ``--limiters ours`` at
factor 1 checks our default alone in 9 minutes with little CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import math
import random
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import openai
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_openai import ChatOpenAI

from benchmarks.goodput import (
    CALLERS_PER_CLIENT,
    H_LATENCY,
    MODEL,
    NAME,
    ROOT,
    WINDOW_S,
    SimProcess,
    _openai_kwargs,
    http_client,
    percentile,
    words,
)
from llm_routing.catalog.enforcement import MODES, EnforcementMode
from llm_routing.errors import RateLimitExhaustedError
from llm_routing.schedule import Clock, RateScheduler
from llm_routing.sim import SimModel

E_RPM = 600
E_TPM = 10_000_000  # far above 600 short requests a minute: the RPM binds
E_CALLERS = 200
E_MINUTES = 3.0
E_FACTOR = 5.0
E_MAX_WAIT = 900.0
E_REPLY_TOKENS = 12  # SimModel's default plain-text answer
GOAL_GOODPUT = 0.97
GOAL_429_PER_1000 = 1.0
LIMITERS = {
    "ours": "RateScheduler (default)",
    "langchain": "InMemoryRateLimiter",
    "none": "no limiter",
}
BUCKET_S = 10.0  # 429s per this many clock seconds, in the report of when they happened


def sim_fields(mode: EnforcementMode, failed_requests_count: bool) -> dict[str, Any]:
    """The SimModel fields of a row's provider, always explicit (the module defaults move)."""
    return {"enforcement": mode, "failed_requests_count": failed_requests_count}


# --------------------------------------------------------------------------- the bound


def shortest(
    mode: EnforcementMode,
    *,
    callers: int = E_CALLERS,
    duration_s: float = E_MINUTES * WINDOW_S,
    rpm: int = E_RPM,
    tpm: int = E_TPM,
    service_s: float = H_LATENCY[0] + E_REPLY_TOKENS * H_LATENCY[1],
) -> dict[str, Any]:
    """The fair closed loop at its best against the provider's own limiter (see the docstring).

    Virtual time: each call is admitted at the earliest instant ``SimModel.limiter`` admits it,
    in the order the calls were sent, answered ``service_s`` later, and its caller sends the
    next at once. Returns the p50/p99/mean latency and the goodput of the calls completed within
    ``duration_s``.
    """
    limiter = SimModel(name=NAME, rpm=rpm, tpm=tpm, **sim_fields(mode, False)).limiter(lambda: 0.0)
    ready = [0.0] * callers  # send times; a heap, so popping gives FIFO order
    last = 0.0
    latencies: list[float] = []
    while ready:
        sent = heapq.heappop(ready)
        t = max(sent, last)
        decision = limiter.acquire(20, 64, now=t)
        while not decision.admitted and t <= duration_s:
            t = decision.retry_at
            decision = limiter.acquire(20, 64, now=t)
        if t > duration_s:
            break
        last = t
        done = t + service_s
        if done <= duration_s:
            latencies.append(done - sent)
        heapq.heappush(ready, done)
    return {
        "completed": len(latencies),
        "goodput": len(latencies) / (duration_s / WINDOW_S) / rpm,
        "p50_s": percentile(latencies, 0.50),
        "p99_s": percentile(latencies, 0.99),
        "mean_s": sum(latencies) / len(latencies) if latencies else math.nan,
        "littles_law_s": callers / (rpm / WINDOW_S),
        "service_s": service_s,
    }


# --------------------------------------------------------------------------- one row


@dataclass
class Tally:
    """What the callers of one row saw (clock seconds)."""

    calls: list[tuple[float, float]] = field(default_factory=list)  # first send, answer
    client_429s: int = 0
    exhausted: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def _models(
    limiter: str, sim_url: str, clock: Clock, factor: float, clients: list[httpx.AsyncClient]
) -> tuple[list[Any], RateScheduler | None]:
    base = _openai_kwargs(sim_url)
    if limiter == "ours":
        scheduler = RateScheduler(
            limits={MODEL: {"rpm": E_RPM, "tpm": E_TPM, "rpd": None}},
            max_wait=E_MAX_WAIT,
            clock=clock,
        )
        chats = [scheduler | ChatOpenAI(**base, http_async_client=c) for c in clients]
        return chats, scheduler
    if limiter == "langchain":
        # Reads time.monotonic itself: the same pacing, sped up by the clock's factor.
        shared = InMemoryRateLimiter(
            requests_per_second=E_RPM / WINDOW_S * factor, check_every_n_seconds=0.1 / factor
        )
        return [ChatOpenAI(**base, http_async_client=c, rate_limiter=shared) for c in clients], None
    return [ChatOpenAI(**base, http_async_client=c) for c in clients], None


async def _asleep(clock: Clock, seconds: float) -> None:
    """``Clock`` declares no sleep; SystemClock and ScaledClock both have ``asleep``."""
    await cast(Any, clock).asleep(seconds)


async def _caller(model: Any, prompt: str, clock: Clock, tally: Tally) -> None:
    while True:
        first = clock.now()
        while True:
            try:
                await model.ainvoke(prompt)
            except openai.RateLimitError:
                tally.client_429s += 1
                continue  # the same call, sent again at once
            except RateLimitExhaustedError:
                tally.exhausted += 1
            except Exception as exc:  # counted and reported; the loop goes on
                name = type(exc).__name__
                tally.errors[name] = tally.errors.get(name, 0) + 1
                if sum(tally.errors.values()) > 1_000:
                    raise
                await _asleep(clock, 0.1)
            else:
                tally.calls.append((first, clock.now()))
            break


async def run_row(
    mode: EnforcementMode,
    limiter: str,
    sim_url: str,
    clock: Clock,
    factor: float,
    *,
    callers: int = E_CALLERS,
    duration_s: float = E_MINUTES * WINDOW_S,
) -> dict[str, Any]:
    """One row: ``callers`` closed loops for ``duration_s`` clock seconds, then the numbers."""
    clients = [http_client(clock) for _ in range(math.ceil(callers / CALLERS_PER_CLIENT))]
    models, scheduler = _models(limiter, sim_url, clock, factor, clients)
    rng = random.Random(3)
    prompts = [words(rng, rng.randint(10, 30)) for _ in range(callers)]
    tally = Tally()
    await _warm_up(sim_url, clock)
    async with httpx.AsyncClient() as control:
        before = clock.now()
        (await control.post(f"{sim_url}/sim/reset")).raise_for_status()
        reset_at = (before + clock.now()) / 2  # the simulator's time 0, on our clock
        cpu0, wall0 = time.process_time(), time.perf_counter()
        start = clock.now()
        tasks = [
            asyncio.create_task(_caller(models[i % len(models)], prompts[i], clock, tally))
            for i in range(callers)
        ]
        await _asleep(clock, duration_s)
        end = clock.now()
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        response = await control.get(f"{sim_url}/sim/stats")
        response.raise_for_status()
        stats = response.json()["models"][NAME]
    for client in clients:
        await client.aclose()
    crashed = [o for o in outcomes if isinstance(o, BaseException) and not _cancelled(o)]
    if crashed:
        raise RuntimeError(f"{LIMITERS[limiter]} callers failed: {crashed[:3]!r}")

    done = [(s - start, e - start) for s, e in tally.calls if e <= end]
    latencies = [e - s for s, e in done]
    received = stats["requests_received"]
    refused = sum(stats["rate_limited"].values())
    offset = start - reset_at
    refusals = [t - offset for t, event, _ in stats["timeline"] if event.startswith("rate_limited")]
    by_bucket: dict[str, int] = {}
    for t in refusals:
        key = f"{int(t // BUCKET_S) * BUCKET_S:g}"
        by_bucket[key] = by_bucket.get(key, 0) + 1
    row: dict[str, Any] = {
        "enforcement": mode,
        "limiter": LIMITERS[limiter],
        "callers": callers,
        "duration_s": end - start,
        "completed": len(done),
        "goodput": len(done) / ((end - start) / WINDOW_S) / E_RPM,
        "provider_requests_received": received,
        "provider_served": stats["requests_served"],
        "provider_429s": refused,
        "provider_429s_per_1000": 1_000 * refused / received if received else math.nan,
        "provider_429s_by_cause": {k: v for k, v in stats["rate_limited_by_cause"].items() if v},
        "provider_429s_first_last_s": [min(refusals), max(refusals)] if refusals else None,
        "provider_429s_per_10s": by_bucket,
        "client_429s": tally.client_429s,
        "rate_limit_exhausted": tally.exhausted,
        "errors": tally.errors,
        "p50_s": percentile(latencies, 0.50),
        "p99_s": percentile(latencies, 0.99),
        "first_completion_s": min((e for _, e in done), default=math.nan),
        "clock_factor": factor,
        "real_s": wall,
        "cpu_s": cpu,
    }
    if scheduler is not None:
        s = scheduler.stats()
        row["scheduler"] = {
            k: s[k] for k in ("admitted", "rate_limit_errors", "retries", "refused_max_wait")
        }
        row["scheduler"]["wait_p50_s"] = s["waits"]["p50_s"]
    return row


async def _warm_up(sim_url: str, clock: Clock) -> None:
    """One call through a throwaway scheduler and client before the row (the simulator is
    reset after it): the catalogue, the encoding and the client's code paths load now, not in
    the row's first scaled seconds (a 0.3 s load is 3 s of a x10 clock)."""
    scheduler = RateScheduler(
        limits={MODEL: {"rpm": E_RPM, "tpm": E_TPM, "rpd": None}}, max_wait=E_MAX_WAIT, clock=clock
    )
    async with http_client(clock) as client:
        chat = ChatOpenAI(**_openai_kwargs(sim_url), http_async_client=client)
        await (scheduler | chat).ainvoke("warm up")


def _cancelled(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError)


# --------------------------------------------------------------------------- the part


def part_enforcement(
    *,
    factor: float = E_FACTOR,
    minutes: float = E_MINUTES,
    modes: Sequence[EnforcementMode] = MODES,
    limiters: Sequence[str] = tuple(LIMITERS),
    callers: int = E_CALLERS,
    failed_requests_count: bool = False,
) -> dict[str, Any]:
    """Every (mode, limiter) row, one simulator process per mode, one row at a time."""
    duration = minutes * WINDOW_S
    started = time.perf_counter()
    rows = []
    bounds = {mode: shortest(mode, callers=callers, duration_s=duration) for mode in modes}
    with contextlib.ExitStack() as stack:
        # All started at once: each start-up (a spawn, imports) overlaps the rows before it.
        sims = {
            mode: stack.enter_context(
                SimProcess(factor, E_RPM, E_TPM, sim_fields(mode, failed_requests_count))
            )
            for mode in modes
        }
        for mode in modes:
            sim = sims[mode]
            for limiter in limiters:
                row = asyncio.run(
                    run_row(
                        mode,
                        limiter,
                        sim.url,
                        sim.clock,
                        factor,
                        callers=callers,
                        duration_s=duration,
                    )
                )
                row["p50_vs_shortest"] = row["p50_s"] / bounds[mode]["p50_s"]
                rows.append(row)
    return {
        "rpm": E_RPM,
        "tpm": E_TPM,
        "callers": callers,
        "minutes": minutes,
        "clock_factor": factor,
        "max_wait_s": E_MAX_WAIT,
        "failed_requests_count": failed_requests_count,
        "latency_s": {"ttft": H_LATENCY[0], "per_token": H_LATENCY[1], "jitter": H_LATENCY[2]},
        "goals_for_our_default": {
            "goodput": GOAL_GOODPUT,
            "provider_429s_per_1000": GOAL_429_PER_1000,
        },
        "source": _source(),
        "shortest": bounds,
        "rows": rows,
        "real_s": time.perf_counter() - started,
    }


def _source() -> str:
    """The commit measured, and whether the working tree differed from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head


def _num(value: float, spec: str) -> str:
    return "n/a" if value != value else format(value, spec)


def print_enforcement(section: dict[str, Any]) -> None:
    rows = section["rows"]
    mode = (
        "real time"
        if section["clock_factor"] == 1.0
        else (f"ScaledClock x{section['clock_factor']:g}")
    )
    print(
        f"\nPart 4: enforcement modes, {mode}, {section['callers']} closed-loop ChatOpenAI "
        f"callers over HTTP, RPM {section['rpm']} (TPM {section['tpm']:,}, never binding), "
        f"{section['minutes']:g} simulated minutes per row, failed requests "
        f"{'count' if section['failed_requests_count'] else 'do not count'}; source "
        f"{section['source']}\n"
    )
    if section["clock_factor"] != 1.0:
        print(
            f"(scaled time: a wake-up ~1 ms late in real time costs {section['clock_factor']:g} "
            "ms of clock time at every paced admission, so the two limiters' goodput reads "
            "lower than in real time; see the module docstring)\n"
        )
    print("| enforcement | limiter | goodput | 429s / 1,000 | p50 s | p99 s | p50 / shortest |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['enforcement']} | {r['limiter']} | {r['goodput']:.3f} | "
            f"{_num(r['provider_429s_per_1000'], '.1f')} | {_num(r['p50_s'], '.2f')} | "
            f"{_num(r['p99_s'], '.2f')} | {_num(r['p50_vs_shortest'], '.2f')} |"
        )
    print(
        "\ngoodput: calls completed in the row per minute / RPM. 429s / 1,000: the simulator's "
        "429s per 1,000 requests it received. p50/p99: from a call's first send to its answer "
        "(waits and resends included), clock s.\nshortest: the p50 of the same fair (FIFO) "
        "closed loop against the provider's own limiter in virtual time, never refused:"
    )
    for name, b in section["shortest"].items():
        print(
            f"  {name}: p50 {b['p50_s']:.3f} s, mean {b['mean_s']:.1f} s (Little's law N/r "
            f"{b['littles_law_s']:.0f} s), goodput {b['goodput']:.3f}"
        )
    print("Details (sent = requests the simulator received; causes of its 429s; ours' retries):")
    for r in rows:
        line = (
            f"  {r['enforcement']:<12} {r['limiter']:<24} completed {r['completed']:>5}, sent "
            f"{r['provider_requests_received']:>6}, 429s {r['provider_429s']:>6} "
            f"{r['provider_429s_by_cause'] or ''}"
        )
        if "scheduler" in r:
            s = r["scheduler"]
            line += f", retries {s['retries']}, refused max_wait {s['refused_max_wait']}"
        if r["provider_429s"] and r["limiter"] != LIMITERS["none"]:
            first, last = r["provider_429s_first_last_s"]
            line += f"; at {first:.1f}-{last:.1f} s, per 10 s {r['provider_429s_per_10s']}"
        if r["errors"] or r["rate_limit_exhausted"]:
            line += f"; failed {r['errors']}, RateLimitExhaustedError {r['rate_limit_exhausted']}"
        print(line + f"; {r['real_s']:.0f} real s")
    for r in rows:
        if r["limiter"] == LIMITERS["ours"]:
            ok = r["goodput"] >= GOAL_GOODPUT and r["provider_429s_per_1000"] <= GOAL_429_PER_1000
            print(
                f"  our default under {r['enforcement']}: {'meets' if ok else 'MISSES'} the goal "
                f"(goodput >= {GOAL_GOODPUT}, <= {GOAL_429_PER_1000:g} x 429 per 1,000)"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("part enforcement")
    group.add_argument(
        "--enforcement-factor",
        type=float,
        default=E_FACTOR,
        help=f"ScaledClock speed-up of the enforcement part ({E_FACTOR:g}; 1 = real time)",
    )
    group.add_argument(
        "--enforcement-minutes",
        type=float,
        default=E_MINUTES,
        help=f"simulated minutes per row of the enforcement part ({E_MINUTES:g})",
    )
    group.add_argument(
        "--modes", default=",".join(MODES), help="enforcement modes to run, comma-separated"
    )
    group.add_argument(
        "--limiters",
        default=",".join(LIMITERS),
        help=f"limiters to run, comma-separated, of {', '.join(LIMITERS)}",
    )
    group.add_argument(
        "--failed-requests-count",
        action="store_true",
        help="the simulator counts refused requests toward its windows (as OpenAI documents)",
    )


def check_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[str], list[str]]:
    """This part's options, checked before any part runs: (modes, limiters)."""
    modes = [m for m in args.modes.split(",") if m]
    limiters = [m for m in args.limiters.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: comma-separated, of {', '.join(MODES)}")
    if not limiters or any(m not in LIMITERS for m in limiters):
        parser.error(f"--limiters: comma-separated, of {', '.join(LIMITERS)}")
    if not args.enforcement_factor >= 1 or not args.enforcement_minutes > 0:
        parser.error("--enforcement-factor must be >= 1 and --enforcement-minutes > 0")
    return modes, limiters


def run_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    modes, limiters = check_args(parser, args)
    section = part_enforcement(
        factor=args.enforcement_factor,
        minutes=args.enforcement_minutes,
        modes=modes,  # type: ignore[arg-type]
        limiters=limiters,
        failed_requests_count=args.failed_requests_count,
    )
    print_enforcement(section)
    return section
