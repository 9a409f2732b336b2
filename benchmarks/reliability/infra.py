"""Infrastructure faults as rows of the fault matrix: a worker SIGKILLed, Redis restarted empty.

The provider matrix (``benchmarks.reliability.matrix``) breaks the wire; these rows break what
sits behind the router when workers share it through Redis. Each cell is fault × scope × entry
point, like the matrix's, and runs against real parts: a private redis-server (no AOF, no RDB),
the simulated provider over loopback HTTP, real ``ChatOpenAI`` clients, a `RedisBackend`
scheduler and a `RedisLedger`-backed `CostTracker`.

* **Worker SIGKILLed mid-call.** A spawned worker process runs a ``build_router`` router on
  the same Redis prefix whose calls go to a socket that accepts and stays silent: they stay in
  flight holding every ``max_concurrency`` slot of the primary and as much of the budget as
  leaves no room for another call. While it lives, it renews those leases (checked past one
  lease); then it is SIGKILLed, and a second router in this process calls through the entry
  point. Invariants: every call is served by the primary (nothing refused because the slots
  "stayed busy" or the budget was held), within the lease plus its renewal period plus slack
  of the kill; afterwards nothing is in flight and nothing is held, the spend is within the
  budget, every request reached the provider once, and any error is typed.
* **Redis restarted without persistence.** A router spends, Redis is killed (a call meanwhile
  fails closed with ``RedisUnavailableError``) and started again empty; the calls after it go
  through the entry point. ``on_state_lost="fail"``: they are refused with
  `RedisLedgerStateLostError` naming what was lost, no request reaches the provider until the
  spend is re-seeded, and the re-seeded spend plus what is spent after never passes the
  budget. ``"warn"``: a `RedisLedgerStateLostWarning` naming what was lost, and the calls carry
  on from $0. Both: the scheduler warns (`RedisUnavailableWarning`) that the windows were lost.

Run: ``python -m benchmarks.reliability.infra [--quick]`` prints the rows;
``python -m benchmarks.reliability --part infra`` does too, in the full report.
``tests/reliability`` asserts ``violations``. Without ``redis-server`` or the ``redis``
package the part is skipped, saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import os
import queue
import signal
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_routing.cost import BudgetWarning, CostTracker
from llm_routing.errors import AllModelsFailedError, BudgetExceededError, LLMRoutingError
from llm_routing.router import Router, build_router
from llm_routing.schedule import RateScheduler
from llm_routing.sim import SimModel, SimulatedProvider

from .matrix import CELL_LIMITS, ENTRIES, MODELS, NAMES, Settings, _Outcome, _quiet, call

if TYPE_CHECKING:
    from tests.support.redis import RedisServer

__all__ = [
    "FAULTS",
    "InfraFault",
    "InfraHarness",
    "InfraSettings",
    "cells",
    "redis_missing",
    "render",
    "run",
]


@dataclass(frozen=True, slots=True)
class InfraFault:
    """One row family: a fault in the infrastructure, and the scopes it runs under."""

    name: str
    label: str
    scopes: tuple[str, ...]


FAULTS: tuple[InfraFault, ...] = (
    InfraFault("worker_sigkill", "worker SIGKILLed mid-call", ("slots_and_holds",)),
    InfraFault("redis_restart", "Redis restarted without persistence", ("fail", "warn")),
)
_BY_NAME = {f.name: f for f in FAULTS}
SCOPE_LABELS = {
    "slots_and_holds": "it held every concurrency slot and the budget",
    "fail": "on_state_lost='fail'",
    "warn": "on_state_lost='warn'",
}
_PROMPT = "Say hello to the infrastructure rows."

# What a RedisLedgerStateLostError / Warning must name (the test's original assertions).
LOST_NAMES = ("restart without persistence", "'total'", "spent totals")
FAIL_NAMES = (*LOST_NAMES, "AOF or RDB")
WARN_NAMES = (*LOST_NAMES, "carrying on")
WINDOWS_LOST = "lost the shared rate-limit windows"


@dataclass(frozen=True, slots=True)
class InfraSettings:
    """Leases, budgets and timeouts of the infrastructure cells.

    ``lease_s`` is both the scheduler's slot lease and the ledger's hold lease (short, so a
    cell takes seconds; the default is 30). ``slots`` is the primary's ``max_concurrency``,
    all of which the dead worker holds. Each call reserves ``max_tokens`` of output; the
    budget is ``budget_holds`` such worst cases, so the dead worker's ``slots`` holds leave
    less than one for anyone else. ``restart_budget_usd`` and ``restart_max_tokens`` are the
    Redis-restart router's (a handful of calls). ``slack`` covers process start-up and a
    loaded machine, as in the matrix.
    """

    lease_s: float = 2.0
    slots: int = 3
    max_tokens: int = 1_000
    budget_holds: float = 3.5
    max_wait: float = 20.0
    timeout: float = 5.0
    restart_budget_usd: float = 0.0004
    restart_max_tokens: int = 40
    socket_timeout: float = 0.5
    retry_interval_s: float = 0.01
    batch_size: int = 2
    slack: float = 5.0

    @property
    def renewal_s(self) -> float:
        """How often a live process renews its leases (a third of a lease)."""
        return self.lease_s / 3

    def budget_usd(self) -> float:
        """The worker-death budget: ``budget_holds`` worst-case holds of one primary call."""
        return self.budget_holds * _hold_usd(self.max_tokens)

    def bound(self, fault: str) -> float:
        """How long the calls of a cell may take before they count as stuck.

        Worker death: the dead worker renewed its leases at most a renewal period before the
        kill, so they end at most one lease after it; the waiter wakes at the earliest lease
        end. Redis restart: the calls after Redis is back, at most two socket timeouts (the
        scheduler's and the ledger's) past the scheduler's retry interval. Plus ``slack``.
        """
        if fault == "worker_sigkill":
            return self.lease_s + self.renewal_s + self.slack
        return 2 * self.socket_timeout + self.retry_interval_s + self.slack


def _hold_usd(max_tokens: int) -> float:
    """About what the tracker holds for one primary call (the prompt is a few tokens)."""
    # gpt-4o-mini: $0.15 / $0.60 per 1M input / output tokens; 20 tokens cover the prompt.
    return (20 * 0.15 + max_tokens * 0.60) / 1_000_000


def cells(quick: bool = False) -> list[tuple[str, str, str]]:
    """Every (fault, scope, entry); ``quick`` keeps invoke, astream and batch, like the matrix."""
    entries = ("invoke", "astream", "batch") if quick else ENTRIES
    return [(f.name, scope, entry) for f in FAULTS for scope in f.scopes for entry in entries]


def redis_missing() -> str | None:
    """Why the rows cannot run here (no redis package, no redis-server), or None."""
    if importlib.util.find_spec("redis") is None:
        return "the redis package is not installed (pip install 'llm-routing[redis]')"
    if _redis_binary() is None:
        return "redis-server is not installed (apt-get install redis-server)"
    return None


def _redis_binary() -> str | None:
    from tests.support.redis import find_redis_server

    return find_redis_server()


def _causes(error: BaseException | None) -> list[BaseException]:
    """The error, its attempts' errors and their causes: where a typed refusal may sit."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [current.__cause__, current.__context__]
        if isinstance(current, AllModelsFailedError):
            todo += [attempt.error for attempt in current.attempts]
    return found


def _has(outcome: _Outcome, kind: type[BaseException]) -> bool:
    return any(isinstance(e, kind) for e in _causes(outcome.error))


def _short(name: str | None) -> str:
    return "?" if name is None else name.split(":", 1)[-1]


def _describe(outcomes: Sequence[_Outcome]) -> str:
    """``2× served by gpt-4o-mini``, ``RedisLedgerStateLostError``…, as the caller saw them."""
    parts: list[str] = []
    for o in outcomes:
        if o.served:
            parts.append(f"served by {_short(o.served_by)}")
        elif o.broken:
            parts.append(f"error after {o.chunks} chunks ({_short(o.served_by)})")
        else:
            typed = [e for e in _causes(o.error) if isinstance(e, LLMRoutingError)]
            named = typed[-1] if typed else o.error
            parts.append(type(named).__name__)
    counted = Counter(parts)
    return "; ".join(p if n == 1 else f"{n}× {p}" for p, n in counted.items())


def _untyped(outcomes: Sequence[_Outcome], where: str) -> list[str]:
    return [
        f"{where}: untyped error {type(o.error).__name__}: {o.error}"[:300]
        for o in outcomes
        if o.error is not None and not isinstance(o.error, LLMRoutingError)
    ]


# --------------------------------------------------------------------------- the dead worker


def _limits(slots: int) -> dict[str, dict[str, int | None]]:
    """The matrix's roomy limits, plus ``max_concurrency`` on the primary."""
    limits: dict[str, dict[str, int | None]] = {name: dict(CELL_LIMITS) for name in NAMES}
    limits[NAMES[0]]["max_concurrency"] = slots
    return limits


def hold_and_hang(
    redis_url: str, prefix: str, settings: InfraSettings, budget_usd: float, started: Any
) -> None:
    """A worker (spawned): fill every slot of the primary with calls that never end.

    Its router is ``build_router`` with a `RedisBackend` scheduler and a `RedisLedger` budget
    on ``prefix``, leases of ``settings.lease_s``, and a provider that accepts connections and
    stays silent: each call holds a slot and its worst-case cost, renewed by this process,
    until the harness SIGKILLs it. Puts ``"in flight"`` on ``started`` once every call is
    on the wire (past the scheduler and the tracker).
    """
    from llm_routing.cost.redis_ledger import RedisLedger
    from llm_routing.schedule.redis import RedisBackend

    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            connection, _ = silent.accept()
            accepted.append(connection)
            if len(accepted) == settings.slots:
                started.put("in flight")

    threading.Thread(target=accept, daemon=True).start()
    backend = RedisBackend(redis_url, prefix=prefix, lease_s=settings.lease_s)
    ledger = RedisLedger(redis_url, prefix=prefix, hold_lease=settings.lease_s)
    router = build_router(
        NAMES[0],
        [NAMES[1]],
        large_context=[NAMES[2]],
        scheduler=RateScheduler(limits=_limits(settings.slots), backend=backend),
        tracker=CostTracker(budget_usd=budget_usd, backend=ledger),
        init_kwargs={
            "base_url": f"http://127.0.0.1:{port}/v1",
            "api_key": "sim",
            "timeout": 3_600,
            "max_tokens": settings.max_tokens,
        },
    )
    for n in range(settings.slots):
        threading.Thread(target=router.invoke, args=(f"call {n}",), daemon=True).start()
    threading.Event().wait()  # until SIGKILL


def _wait_in_flight(worker: Any, started: Any, timeout: float = 120.0) -> None:
    """Until the worker says its calls are in flight; raises if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if started.get(timeout=0.2) == "in flight":
                return
        except queue.Empty:
            if not worker.is_alive():
                raise RuntimeError(
                    f"the worker ended ({worker.exitcode}) before its calls"
                ) from None
    raise RuntimeError(f"the worker did not put its calls in flight within {timeout:.0f}s")


# --------------------------------------------------------------------------- the harness


class InfraHarness:
    """A private redis-server, the simulated provider and one event loop for every cell.

    Cells run one after another (a Redis restart would wipe a neighbour's state); each has a
    Redis prefix and routers of its own, and resets the simulator's counters.
    """

    def __init__(self, settings: InfraSettings | None = None) -> None:
        self.settings = settings or InfraSettings()
        self._stack = ExitStack()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server: RedisServer | None = None
        self.sim: SimulatedProvider | None = None

    def __enter__(self) -> InfraHarness:
        from tests.support.redis import RedisServer

        missing = redis_missing()
        if missing is not None:
            raise RuntimeError(missing)
        binary = _redis_binary()
        assert binary is not None
        try:
            directory = self._stack.enter_context(
                tempfile.TemporaryDirectory(prefix="llmr-infra-redis-")
            )
            self.server = RedisServer(binary, Path(directory)).start()
            self._stack.callback(self.server.stop)
            models = [
                SimModel(
                    name=m,
                    rpm=CELL_LIMITS["rpm"],
                    tpm=CELL_LIMITS["tpm"],
                    reply_tokens=self.settings.restart_max_tokens,
                )
                for m in MODELS
            ]
            self.sim = self._stack.enter_context(SimulatedProvider(models, seed=0))
            self.sim.state.warm_up()
            self._loop = asyncio.new_event_loop()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        self._stack.close()

    def _call(self, router: Router, entry: str, text: str = _PROMPT) -> list[_Outcome]:
        assert self._loop is not None, "use the InfraHarness as a context manager"
        settings = Settings(batch_size=self.settings.batch_size)
        return call(router, entry, text, settings, self._loop)

    def _received(self) -> dict[str, int]:
        assert self.sim is not None
        models = self.sim.stats()["models"]
        return {m: int(models[m]["requests_received"]) for m in MODELS}

    def run_cell(self, fault: str, scope: str, entry: str) -> dict[str, Any]:
        """Run one cell; its figures, its outcome label and its ``violations``."""
        if fault not in _BY_NAME or scope not in _BY_NAME[fault].scopes or entry not in ENTRIES:
            raise ValueError(f"no such cell: {fault} × {scope} × {entry}")
        assert self.sim is not None
        self.sim.reset()
        prefix = f"infra-{uuid.uuid4().hex[:8]}"
        with warnings.catch_warnings():
            # Spending a budget to its end is part of the restart cells, not news.
            warnings.filterwarnings("ignore", category=BudgetWarning)
            if fault == "worker_sigkill":
                cell = self._worker_death(prefix, entry)
            else:
                cell = self._redis_restart(prefix, scope, entry)
        return {
            "fault": fault,
            "fault_label": _BY_NAME[fault].label,
            "scope": scope,
            "entry": entry,
            **cell,
            "bound_s": round(self.settings.bound(fault), 3),
        }

    # --- worker death ------------------------------------------------------------------

    def _worker_death(self, prefix: str, entry: str) -> dict[str, Any]:
        from llm_routing.cost.redis_ledger import RedisLedger
        from llm_routing.schedule.redis import RedisBackend

        s = self.settings
        assert self.server is not None and self.sim is not None
        url = self.server.url
        budget = s.budget_usd()
        found: list[str] = []
        context = multiprocessing.get_context("spawn")
        started = context.Queue()
        worker = context.Process(
            target=hold_and_hang,
            args=(url, prefix, s, budget, started),
            name="llmr-infra-worker",
            daemon=True,
        )
        worker.start()
        backend = RedisBackend(url, prefix=prefix, lease_s=s.lease_s)
        ledger = RedisLedger(url, prefix=prefix, hold_lease=s.lease_s)
        try:
            _wait_in_flight(worker, started)
            before = self._worker_holds(backend, ledger)
            # While the worker lives it renews: its leases outlive the one they were taken with.
            time.sleep(s.lease_s + s.renewal_s)
            alive = self._worker_holds(backend, ledger)
            if before["in_flight"] != s.slots:
                found.append(f"setup: {before['in_flight']} slots in flight, not {s.slots}")
            if alive["in_flight"] != s.slots or alive["held"] != before["held"]:
                found.append(
                    f"a live worker lost its leases: {before} one lease earlier, {alive} now"
                )
            held = Decimal(before["held"])
            if not held or Decimal(str(budget)) - held >= held / s.slots:
                found.append(
                    f"setup: the worker held ${held} of ${budget}: room for another call, so "
                    "the budget side of the fault is not exercised"
                )

            router = build_router(
                NAMES[0],
                [NAMES[1]],
                large_context=[NAMES[2]],
                scheduler=RateScheduler(
                    limits=_limits(s.slots), backend=backend, max_wait=s.max_wait
                ),
                tracker=CostTracker(budget_usd=budget, backend=ledger, max_wait=s.max_wait),
                init_kwargs={
                    "base_url": self.sim.base_url,
                    "api_key": "sim",
                    "timeout": s.timeout,
                    "max_tokens": s.max_tokens,
                    "stream_usage": True,
                },
            )
            os.kill(worker.pid or 0, signal.SIGKILL)
            worker.join(30)
            killed = time.monotonic()
            if worker.exitcode != -signal.SIGKILL:
                found.append(f"setup: the worker ended with {worker.exitcode}, not SIGKILL")
            outcomes = self._call(router, entry)
            elapsed = time.monotonic() - killed
            after = self._worker_holds(backend, ledger)
            summary = ledger.summary()
            waits = router.settings["scheduler"].stats()["waits"]
        finally:
            if worker.is_alive():
                worker.kill()
                worker.join(30)
            started.close()
            backend.close()
            ledger.close()

        found += _untyped(outcomes, "after the kill")
        for i, o in enumerate(outcomes):
            if not o.served:
                text = " ".join(str(e) for e in _causes(o.error))
                why = " (the dead worker's slots stayed busy)" if "stayed busy" in text else ""
                found.append(f"call {i} not served{why}: {_describe([o])}: {text}"[:400])
            elif o.served_by != NAMES[0] or o.attempts:
                found.append(
                    f"call {i} served by {o.served_by} after {o.attempts}, not by the primary "
                    "once its slots were freed"
                )
        bound = s.bound("worker_sigkill")
        if elapsed > bound:
            found.append(f"liveness: served {elapsed:.2f}s after the kill, over {bound:.2f}s")
        if after["in_flight"] != 0:
            found.append(f"{after['in_flight']} slots still in flight after the calls")
        if Decimal(after["held"]) != 0 or summary["in_flight_calls"] != 0:
            found.append(
                f"budget still held after the calls: ${after['held']}, "
                f"{summary['in_flight_calls']} calls in flight"
            )
        if Decimal(after["spent"]) > Decimal(str(budget)):
            found.append(f"spent ${after['spent']}, over the budget ${budget}")
        received = self._received()
        if received != {MODELS[0]: len(outcomes), MODELS[1]: 0, MODELS[2]: 0}:
            found.append(f"the provider received {received} for {len(outcomes)} calls")
        if summary["calls"] != sum(o.served for o in outcomes):
            found.append(f"the ledger has {summary['calls']} calls, {len(outcomes)} were served")

        outcome = _describe(outcomes)
        if waits["count"]:
            outcome += f" (waited ≤ {waits['max_s']:.1f}s for the dead worker's leases)"
        return {
            "outcome": outcome,
            "elapsed_s": round(elapsed, 3),
            "calls": len(outcomes),
            "served": sum(o.served for o in outcomes),
            "requests": received,
            "held_before_kill": before,
            "held_a_lease_later": alive,
            "after": after,
            "budget_usd": budget,
            "max_wait_s": waits["max_s"],
            "violations": found,
        }

    @staticmethod
    def _worker_holds(backend: Any, ledger: Any) -> dict[str, Any]:
        spent, held = ledger.bucket_usage(["total"])["total"]
        return {
            "in_flight": int(backend.snapshot(NAMES[0])["in_flight"]),
            "held": str(held),
            "spent": str(spent),
        }

    # --- Redis restart -----------------------------------------------------------------

    def restart_router(self, prefix: str, on_state_lost: str) -> tuple[Router, Any, Any]:
        """A one-model router whose budget and windows live on this harness's Redis."""
        from llm_routing.cost.redis_ledger import RedisLedger
        from llm_routing.schedule.redis import RedisBackend

        s = self.settings
        assert self.server is not None and self.sim is not None
        url = self.server.url
        ledger = RedisLedger(
            url,
            prefix=prefix,
            socket_timeout=s.socket_timeout,
            on_state_lost=on_state_lost,  # type: ignore[arg-type]
        )
        backend = RedisBackend(
            url, prefix=prefix, socket_timeout=s.socket_timeout, retry_interval_s=s.retry_interval_s
        )
        router = build_router(
            NAMES[0],
            scheduler=RateScheduler(backend=backend, max_wait=5),
            tracker=CostTracker(budget_usd=s.restart_budget_usd, backend=ledger, max_wait=0),
            init_kwargs={
                "base_url": self.sim.base_url,
                "api_key": "sim",
                "timeout": s.timeout,
                "max_tokens": s.restart_max_tokens,
                "stream_usage": True,
            },
        )
        return router, ledger, backend

    def _spend_until_refused(self, router: Router, entry: str) -> tuple[int, list[str]]:
        """Call until the budget refuses; the calls served and what went wrong."""
        served = 0
        for _ in range(200):
            outcomes = self._call(router, entry)
            served += sum(o.served for o in outcomes)
            refused = [o for o in outcomes if not o.served]
            if not refused:
                continue
            wrong = [
                f"refused, but not by the budget: {_describe([o])}: {o.error}"[:300]
                for o in refused
                if not _has(o, BudgetExceededError)
            ]
            return served, wrong
        return served, ["200 rounds of calls and the budget never refused"]

    def _come_back(
        self, router: Router, entry: str
    ) -> tuple[list[_Outcome], list[_Outcome], float]:
        """Kill Redis, call once while it is down, start it again empty, call via ``entry``.

        Returns the outcomes while down, the first outcomes once Redis answers again (not
        failing for Redis being unreachable: the scheduler retries it after its retry
        interval), and how long after the restart those came.
        """
        from llm_routing.schedule.redis import RedisUnavailableError

        assert self.server is not None
        self.server.stop()
        down = self._call(router, "invoke", "hello while Redis is down")
        self.server.start()
        back = time.monotonic()
        while True:
            after = self._call(router, entry, "hello after the restart")
            unreachable = any(_has(o, RedisUnavailableError) for o in after)
            if not unreachable or time.monotonic() - back > 60:
                return down, after, time.monotonic() - back

    def _redis_restart(self, prefix: str, on_state_lost: str, entry: str) -> dict[str, Any]:
        from llm_routing.cost.redis_ledger import (
            RedisLedgerStateLostError,
            RedisLedgerStateLostWarning,
        )
        from llm_routing.schedule.redis import RedisUnavailableError, RedisUnavailableWarning

        s = self.settings
        budget = Decimal(str(s.restart_budget_usd))
        found: list[str] = []
        router, ledger, backend = self.restart_router(prefix, on_state_lost)
        figures: dict[str, Any] = {}
        try:
            # Before the restart: a few calls ("fail"), or the whole budget ("warn").
            if on_state_lost == "fail":
                spent_calls = [o for _ in range(3) for o in self._call(router, "invoke")]
                found += [f"before the restart: {e}" for e in _untyped(spent_calls, "call")]
                served_before = sum(o.served for o in spent_calls)
                wrong: list[str] = []
            else:
                served_before, wrong = self._spend_until_refused(router, "invoke")
            found += [f"before the restart: {w}" for w in wrong]
            spent_before = ledger.bucket_usage(["total"])["total"][0]
            if not served_before or spent_before <= 0:
                found.append(f"setup: {served_before} calls served, ${spent_before} spent")

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                down, after, elapsed = self._come_back(router, entry)
            found += _untyped(down, "while Redis was down")
            if not all(_has(o, RedisUnavailableError) for o in down):
                found.append(f"while Redis was down: {_describe(down)}, not RedisUnavailableError")
            found += _untyped(after, "after the restart")
            windows = [
                str(w.message) for w in caught if issubclass(w.category, RedisUnavailableWarning)
            ]
            figures["windows_warnings"] = windows
            if not any(WINDOWS_LOST in w for w in windows):
                found.append(f"the scheduler did not warn that the windows were lost: {windows}")
            figures["after_restart"] = _describe(after)
            sent = self._received()[MODELS[0]]

            if on_state_lost == "fail":
                lost = [e for o in after for e in _causes(o.error)]
                lost = [e for e in lost if isinstance(e, RedisLedgerStateLostError)]
                if any(o.served or o.broken for o in after):
                    found.append("a call went through after Redis lost the budget (fail closed)")
                if len(lost) < len(after) or not lost:
                    found.append(
                        f"after the restart: {_describe(after)}, not RedisLedgerStateLostError"
                    )
                message = str(lost[0]) if lost else ""
                missing = [n for n in FAIL_NAMES if n not in message]
                if lost and missing:
                    found.append(f"the error does not name {missing}: {message}"[:400])
                figures["message"] = message
                # Failing closed: every later call is refused too, and none reaches the provider.
                again = [o for _ in range(3) for o in self._call(router, entry)]
                found += _untyped(again, "refused again")
                if not all(_has(o, RedisLedgerStateLostError) for o in again):
                    found.append(f"later calls: {_describe(again)}, not all refused")
                figures["requests_while_refused"] = self._received()[MODELS[0]] - sent
                if figures["requests_while_refused"]:
                    found.append(
                        f"{figures['requests_while_refused']} requests reached the provider "
                        "while the budget was lost"
                    )
                # The operator re-seeds what was spent (the ledger said it before the restart).
                ledger.acknowledge_loss(spent={"total": spent_before})
                served, wrong = self._spend_until_refused(router, entry)
                found += [f"after re-seeding: {w}" for w in wrong]
                spent_after = ledger.bucket_usage(["total"])["total"][0]
                if served < 1 or spent_after <= spent_before:
                    found.append(
                        f"after re-seeding: {served} calls served, ${spent_after} spent (was "
                        f"${spent_before})"
                    )
                if spent_after > budget:
                    found.append(f"spent ${spent_after} re-seeded, over the budget ${budget}")
                figures.update(served_after_reseed=served, spent_after=str(spent_after))
                outcome = (
                    f"{_describe(after)} until re-seeded "
                    f"({figures['requests_while_refused']} requests sent); then {served} served, "
                    f"${spent_after:.6f} of ${budget} spent"
                )
            else:
                notes = [
                    str(w.message)
                    for w in caught
                    if issubclass(w.category, RedisLedgerStateLostWarning)
                ]
                text = " ".join(notes)
                missing = [n for n in WARN_NAMES if n not in text]
                if not notes or missing:
                    found.append(f"the warning does not name {missing}: {text}"[:400])
                if not all(o.served for o in after):
                    found.append(f"after the restart: {_describe(after)}, expected served")
                # The spend starts again from $0: the risk the warning names, taken knowingly.
                calls = ledger.summary()["calls"]
                if calls != sum(o.served for o in after):
                    found.append(f"the ledger counts {calls} calls since the restart")
                figures.update(message=text, calls_since_restart=calls)
                outcome = f"{_describe(after)} with RedisLedgerStateLostWarning, from $0"
            figures["in_flight_calls"] = ledger.summary()["in_flight_calls"]
            if figures["in_flight_calls"]:
                found.append(f"{figures['in_flight_calls']} budget holds left after the calls")
        finally:
            ledger.close()
            backend.close()
        bound = s.bound("redis_restart")
        if elapsed > bound:
            found.append(f"liveness: {elapsed:.2f}s after Redis came back, over {bound:.2f}s")
        return {
            "outcome": outcome,
            "elapsed_s": round(elapsed, 3),
            "calls": len(after),
            "served": sum(o.served for o in after),
            "spent_before": str(spent_before),
            "budget_usd": str(budget),
            **figures,
            "violations": found,
        }


# --------------------------------------------------------------------------- report


def run(
    quick: bool = False,
    settings: InfraSettings | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the rows (``only``: these faults) and return JSON-ready figures.

    Without Redis the result says ``skipped`` and why, and has no cells.
    """
    used = settings or InfraSettings()
    chosen = [c for c in cells(quick) if only is None or c[0] in only]
    started = time.monotonic()
    missing = redis_missing()
    done: list[dict[str, Any]] = []
    if missing is None:
        with _quiet(), InfraHarness(used) as harness:
            done = [harness.run_cell(*cell) for cell in chosen]
    worst = max(done, key=lambda r: r["elapsed_s"] / r["bound_s"], default=None)
    return {
        "skipped": missing,
        "settings": asdict(used),
        "entries": sorted({r["entry"] for r in done}, key=ENTRIES.index),
        "cells": done,
        "totals": {
            "cells": len(done),
            "violations": sum(len(r["violations"]) for r in done),
            "worst_elapsed_over_bound": (
                round(worst["elapsed_s"] / worst["bound_s"], 4) if worst else None
            ),
            "worst_cell": f"{worst['fault']}/{worst['scope']}/{worst['entry']}" if worst else None,
            "wall_s": round(time.monotonic() - started, 1),
        },
    }


def render(result: Mapping[str, Any]) -> str:
    """The rows as the matrix prints them (fault × scope rows, entry-point columns), totals."""
    if result.get("skipped"):
        return f"infrastructure rows skipped: {result['skipped']}"
    entries: list[str] = list(result["entries"])
    rows: dict[tuple[str, str], dict[str, str]] = {}
    labels: dict[str, str] = {}
    for cell in result["cells"]:
        labels[cell["fault"]] = cell["fault_label"]
        text = f"{cell['outcome']}; {cell['elapsed_s']:.2f}s of {cell['bound_s']:.2f}s"
        if cell["violations"]:
            text = f"**{len(cell['violations'])} violation(s)**: {text}"
        rows.setdefault((cell["fault"], cell["scope"]), {})[cell["entry"]] = text
    lines = [
        "Fault matrix, infrastructure rows (a private redis-server; a real worker process "
        "SIGKILLed):",
        "",
        "| fault | scope | " + " | ".join(entries) + " |",
        "|---|---|" + "---|" * len(entries),
    ]
    for (fault, scope), row in rows.items():
        lines.append(
            f"| {labels[fault]} | {SCOPE_LABELS[scope]} | "
            + " | ".join(row.get(e, "—") for e in entries)
            + " |"
        )
    totals = result["totals"]
    s = result["settings"]
    lines += [
        "",
        f"cells: {totals['cells']}, invariant violations: {totals['violations']}; worst "
        f"elapsed/bound {totals['worst_elapsed_over_bound']} ({totals['worst_cell']}); wall "
        f"{totals['wall_s']}s. Elapsed: worker death, from the SIGKILL to the answers; Redis "
        f"restart, from Redis back (empty) to the first answers. Settings: leases "
        f"{s['lease_s']}s (slots and budget holds), {s['slots']} slots, budget "
        f"{s['budget_holds']} worst-case holds, batch of {s['batch_size']}.",
    ]
    violations = [
        f"- {c['fault']}/{c['scope']}/{c['entry']}: {v}"
        for c in result["cells"]
        for v in c["violations"]
    ]
    if violations:
        lines += ["", "Violations:", *violations]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="invoke, astream and batch only")
    args = parser.parse_args(argv)
    print(render(run(quick=args.quick)))


if __name__ == "__main__":
    main()
