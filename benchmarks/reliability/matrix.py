"""The fault matrix: each provider fault × scope × entry point through a three-model router.

Owns the matrix (faults, scopes, entry points), running one cell (real ``ChatOpenAI`` clients
over loopback HTTP to the simulated provider, the default guard | scheduler | tracker), the
invariants every cell must satisfy and the table. The faults on the wire are ``llm_routing.sim``;
routing, scheduling and pricing are the package's. ``tests/reliability`` asserts ``violations``.

Run: ``python -m benchmarks.reliability.matrix [--quick]`` prints the table.

What the ledger and the stats are compared with, and where they may legitimately differ from
the simulator (the rules `check` enforces):

* A served request is charged exactly: per model, the ledger's ``ok`` records are the
  simulator's ``requests_served``, with the same prompt and completion tokens.
* A request that ended in an HTTP error or no answer (429, quota, 5xx, 529, timeout, reset, a
  drop or a malformed body before the first chunk) is charged nothing: there is no usage to
  price. The simulator's ``quota_spent`` counts those requests as a prepaid balance would; that
  difference is expected and not asserted.
* A stream that breaks after its first chunk (a drop, a malformed frame) was processed and
  billed by the provider for its whole answer, but the client received only part of it and no
  usage. The tracker charges one ``estimated`` ``error`` record: the input as the guard counted
  it (equal to the prompt tokens the simulator admitted for that request) and the output
  counted from the chunks received, which is at most what the simulator billed. So the ledger
  under-counts such a stream by the part of the answer that never arrived, never over-counts.
* ``router.stats()`` counts that broken stream as served by its model (it had answered) and in
  ``broken_streams``; the simulator does not count it in ``requests_served``.
* Every request the scheduler admitted reached the simulator once (``admitted`` per model equals
  ``requests_received``): the SDK resends nothing on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from langchain_core.messages import BaseMessage

from llm_routing.catalog import default_catalog
from llm_routing.errors import AllModelsFailedError, ErrorKind
from llm_routing.router import Router, build_router
from llm_routing.schedule import RateScheduler
from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider
from llm_routing.tokens import count_tokens

__all__ = [
    "ENTRIES",
    "FAULTS",
    "MODELS",
    "SCOPES",
    "Fault",
    "Harness",
    "Settings",
    "cells",
    "render",
    "run",
]

#: The router's models, in fallback order (primary, fallback, large-context); the catalogue
#: knows them (windows, prices, tier1 limits), so the guard, scheduler and tracker do too.
MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
NAMES: tuple[str, ...] = tuple(f"openai:{m}" for m in MODELS)
# Limits far above a cell's few calls, enforced by the simulator and known to the scheduler.
CELL_LIMITS: dict[str, int | None] = {"rpm": 60_000, "tpm": 100_000_000, "rpd": None}

SCOPES: tuple[str, ...] = ("primary", "all", "first")
SCOPE_LABELS = {
    "primary": "primary always fails",
    "all": "every model fails",
    "first": "first request only",
}
ENTRIES: tuple[str, ...] = ("invoke", "ainvoke", "stream", "astream", "batch", "abatch")
_STREAMS = frozenset({"stream", "astream"})
_ASYNC = frozenset({"ainvoke", "astream", "abatch"})
_BATCHES = frozenset({"batch", "abatch"})

# Tokens of context the simulator's small windows allow (the guard believes the catalogue's
# 128k and 1M, so it lets the input through and the provider answers 400).
_SMALL_WINDOWS = (1_000, 3_000, 3_000)
_FITS_FALLBACK_WORDS = 800  # about 1,600 tokens: over 1,000, under 3,000
_FITS_NOTHING_WORDS = 2_000  # about 4,000 tokens: over every small window
_PROMPT = "Say hello to the fault matrix."


@dataclass(frozen=True, slots=True)
class Fault:
    """One row family: what the simulator does and what the router should make of it.

    ``sim`` picks the simulator: ``"faults"`` injects ``plan_kind`` with a `FaultPlan`,
    ``"rpd"`` exhausts a small daily request limit the catalogue does not know, ``"context"``
    sends more than the simulator's small window. ``kind`` is how the router must classify a
    model that failed this way. ``mid_stream`` faults break a stream after its first chunk.
    """

    name: str
    label: str
    kind: ErrorKind
    sim: str = "faults"
    plan_kind: str | None = None
    retry_after: bool = False
    drop_after: int | None = None
    mid_stream: bool = False
    retryable: bool = True


FAULTS: tuple[Fault, ...] = (
    Fault(
        "429_retry_after",
        "429 with Retry-After",
        ErrorKind.RATE_LIMIT,
        plan_kind="429",
        retry_after=True,
    ),
    Fault("429", "429 without Retry-After", ErrorKind.RATE_LIMIT, plan_kind="429"),
    Fault("quota", "insufficient_quota", ErrorKind.QUOTA, plan_kind="quota", retryable=False),
    Fault(
        "rpd",
        "RPD exhausted (unknown to the catalogue)",
        ErrorKind.QUOTA,
        sim="rpd",
        retryable=False,
    ),
    Fault("500", "500", ErrorKind.TRANSIENT, plan_kind="500"),
    Fault("502", "502", ErrorKind.TRANSIENT, plan_kind="502"),
    Fault("503", "503", ErrorKind.TRANSIENT, plan_kind="503"),
    Fault("529", "529 overloaded", ErrorKind.TRANSIENT, plan_kind="529"),
    Fault("timeout", "timeout (never answers)", ErrorKind.TRANSIENT, plan_kind="timeout"),
    Fault("reset", "connection reset", ErrorKind.TRANSIENT, plan_kind="reset"),
    Fault(
        "drop_0",
        "dropped before the first chunk",
        ErrorKind.TRANSIENT,
        plan_kind="drop",
        drop_after=0,
    ),
    Fault(
        "drop",
        "stream dropped after K chunks",
        ErrorKind.TRANSIENT,
        plan_kind="drop",
        mid_stream=True,
    ),
    Fault(
        "malformed_0",
        "malformed JSON before the first chunk",
        ErrorKind.TRANSIENT,
        plan_kind="malformed",
        drop_after=0,
    ),
    Fault(
        "malformed", "malformed JSON", ErrorKind.TRANSIENT, plan_kind="malformed", mid_stream=True
    ),
    Fault(
        "context",
        "context overflow the guard missed",
        ErrorKind.CONTEXT,
        sim="context",
        retryable=False,
    ),
)
_BY_NAME = {f.name: f for f in FAULTS}


@dataclass(frozen=True, slots=True)
class Settings:
    """Timeouts and limits of every cell, kept small so the whole matrix runs in about a minute.

    ``timeout`` is the ChatOpenAI request timeout (how long a ``timeout`` fault holds a call),
    ``max_wait`` the scheduler's "90 s rule", ``max_retries`` its transient retries. The timeout
    is 1 s, not less: a normal answer on loopback takes 10–30 ms, but a shared CI machine can
    stall a process for a few hundred, and a healthy call timing out would fail the cell.
    """

    timeout: float = 1.0
    max_wait: float = 0.5
    max_retries: int = 1
    retry_after: float = 0.1
    backoff_initial: float = 0.05
    backoff_max: float = 0.2
    drop_after: int = 2
    batch_size: int = 2
    slack: float = 5.0
    # How the simulator enforces CELL_LIMITS (llm_routing.catalog.enforcement's modes).
    enforcement: str = "quantized"

    def bound(self, entry: str) -> float:
        """How long one call may take before it counts as hung.

        Not a performance assertion: it is what the configuration allows, with a wide margin.
        Per model, the scheduler charges every wait (proactive, Retry-After, backoff) against
        ``max_wait``; each attempt on the wire lasts at most the client timeout per phase
        (connect and read: 2 × ``timeout``); attempts are the transient retries plus one, plus
        the 429 retries, at most ``max_wait`` over the smallest delay. The slack covers thread
        start-up, tokenizer loads and a loaded CI machine. Batch elements share the pool.
        """
        smallest_delay = min(self.retry_after, self.backoff_initial)
        attempts = self.max_retries + 2 + math.ceil(self.max_wait / smallest_delay)
        per_model = self.max_wait + attempts * 2 * self.timeout
        calls = self.batch_size if entry in _BATCHES else 1
        return calls * len(MODELS) * per_model + self.slack


def cells(quick: bool = False) -> list[tuple[str, str, str]]:
    """Every (fault, scope, entry) of the matrix; ``quick`` keeps invoke, astream and batch."""
    entries = ("invoke", "astream", "batch") if quick else ENTRIES
    found: list[tuple[str, str, str]] = []
    for fault in FAULTS:
        for scope in SCOPES:
            if not _applies(fault, scope):
                continue
            found += [(fault.name, scope, entry) for entry in entries]
    return found


def _applies(fault: Fault, scope: str) -> bool:
    # A spent day and an oversize input fail every request alike: "first only" is "always".
    return not (scope == "first" and fault.sim in ("rpd", "context"))


# --------------------------------------------------------------------------- one call's outcome


@dataclass(slots=True)
class _Outcome:
    """What one call (or one batch element) came to, as the caller saw it."""

    served_by: str | None = None
    attempts: list[tuple[str, str]] = field(default_factory=list)
    error: BaseException | None = None
    chunks: int = 0
    text: str = ""

    @property
    def broken(self) -> bool:
        return self.served_by is not None and self.error is not None

    @property
    def served(self) -> bool:
        return self.served_by is not None and self.error is None


def _from_message(message: Any) -> _Outcome:
    if not isinstance(message, BaseMessage):
        return _Outcome(error=TypeError(f"not a message: {type(message).__name__}"))
    meta = message.response_metadata
    return _Outcome(
        served_by=meta.get("llm_routing.model"),
        attempts=[(a["model"], a["kind"]) for a in meta.get("llm_routing.attempts", [])],
        text=str(message.text),
    )


def _from_error(error: BaseException) -> _Outcome:
    attempts: list[tuple[str, str]] = []
    if isinstance(error, AllModelsFailedError):
        attempts = [(a.model, a.kind.value) for a in error.attempts]
    return _Outcome(attempts=attempts, error=error)


def _from_chunks(chunks: Sequence[Any], error: BaseException | None) -> _Outcome:
    if not chunks:
        return _from_error(error) if error is not None else _Outcome(error=ValueError("empty"))
    outcome = _from_message(chunks[0])
    outcome.chunks = len(chunks)
    outcome.text = "".join(str(c.text) for c in chunks if isinstance(c, BaseMessage))
    outcome.error = error
    return outcome


# --------------------------------------------------------------------------- the harness


def _words(n: int, seed: int = 9) -> str:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(4, 8))) for _ in range(n)
    )


class Harness:
    """Three simulated providers, one private event loop, and a fresh router per cell.

    One provider injects `FaultPlan` faults, one has a daily limit of one request per model,
    one has context windows far smaller than the catalogue's. Each cell resets its provider,
    so counters are per cell. The event loop is private and long-lived because
    langchain-openai caches one async HTTP client per base URL, bound to the first loop.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._stack = ExitStack()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sims: dict[str, SimulatedProvider] = {}
        self._inputs = {
            "primary": _words(_FITS_FALLBACK_WORDS),
            "all": _words(_FITS_NOTHING_WORDS),
        }

    def __enter__(self) -> Harness:
        limits = {"rpm": CELL_LIMITS["rpm"], "tpm": CELL_LIMITS["tpm"]}
        plain = [SimModel(name=m, enforcement=self.settings.enforcement, **limits) for m in MODELS]
        # A day of one batch: the fallback serves a whole batch, and spending it takes as much.
        daily = [SimModel(name=m, rpd=self.settings.batch_size) for m in MODELS]
        small = [
            SimModel(name=m, context_window=w) for m, w in zip(MODELS, _SMALL_WINDOWS, strict=True)
        ]
        for key, models in (("faults", plain), ("rpd", daily), ("context", small)):
            sim = self._stack.enter_context(SimulatedProvider(models, seed=0))
            sim.state.warm_up()
            self.sims[key] = sim
        self._loop = asyncio.new_event_loop()
        return self

    def __exit__(self, *exc: object) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        self._stack.close()

    # --- one cell ------------------------------------------------------------------------

    def router(self, sim: SimulatedProvider) -> Router:
        """The router under test: real ChatOpenAI (no SDK retries), default guard and tracker."""
        s = self.settings
        scheduler = RateScheduler(
            # The limits the simulator enforces (paced by default, a millisecond apart): the
            # matrix is about faults, so no cell's outcome may hinge on waiting for capacity.
            limits={name: dict(CELL_LIMITS) for name in NAMES},
            max_wait=s.max_wait,
            max_retries=s.max_retries,
            backoff_initial=s.backoff_initial,
            backoff_max=s.backoff_max,
        )
        return build_router(
            NAMES[0],
            [NAMES[1]],
            large_context=[NAMES[2]],
            scheduler=scheduler,
            init_kwargs={
                "base_url": sim.base_url,
                "api_key": "sim",
                "timeout": s.timeout,
                "stream_usage": True,
            },
        )

    def run_cell(self, fault_name: str, scope: str, entry: str) -> dict[str, Any]:
        """Run one cell and return its figures, its outcome label and its ``violations``."""
        fault = _BY_NAME[fault_name]
        if scope not in SCOPES or entry not in ENTRIES or not _applies(fault, scope):
            raise ValueError(f"no such cell: {fault_name} × {scope} × {entry}")
        sim = self.sims[fault.sim]
        sim.reset()
        self._inject(sim, fault, scope)
        text = self._inputs[scope] if fault.sim == "context" else _PROMPT
        router = self.router(sim)
        started = time.monotonic()
        outcomes = self._call(router, entry, text)
        elapsed = time.monotonic() - started
        observed = _Observed(
            settings=self.settings,
            fault=fault,
            scope=scope,
            entry=entry,
            outcomes=outcomes,
            elapsed=elapsed,
            sim=sim.stats(),
            router=router,
        )
        return observed.result()

    def _inject(self, sim: SimulatedProvider, fault: Fault, scope: str) -> None:
        targets = MODELS if scope == "all" else MODELS[:1]
        if fault.sim == "rpd":
            for model in targets:
                for _ in range(self.settings.batch_size):
                    _spend_the_day(sim, model)
            sim.state.reset_counters()
            return
        if fault.plan_kind is None:
            return
        s = self.settings
        options: dict[str, Any] = {
            "drop_after": s.drop_after if fault.drop_after is None else fault.drop_after,
            "retry_after": s.retry_after if fault.retry_after else None,
        }
        for model in targets:
            plan = (
                FaultPlan.at({1: fault.plan_kind}, **options)
                if scope == "first"
                else FaultPlan.always(fault.plan_kind, **options)
            )
            sim.set_faults(model, plan)

    def _call(self, router: Router, entry: str, text: str) -> list[_Outcome]:
        assert self._loop is not None, "use the Harness as a context manager"
        return call(router, entry, text, self.settings, self._loop)


def call(
    router: Router, entry: str, text: str, settings: Settings, loop: asyncio.AbstractEventLoop
) -> list[_Outcome]:
    """Call ``router`` through one entry point; what each call (or batch element) came to.

    Async entry points run on ``loop`` (langchain-openai binds its cached async client to the
    first loop that uses it, so a caller keeps one loop for all its async calls).
    """
    if entry in _ASYNC:
        return loop.run_until_complete(_acall(router, entry, text, settings))
    if entry == "invoke":
        try:
            return [_from_message(router.invoke(text))]
        except Exception as exc:
            return [_from_error(exc)]
    if entry == "stream":
        chunks: list[Any] = []
        try:
            chunks.extend(router.stream(text))
        except Exception as exc:
            return [_from_chunks(chunks, exc)]
        return [_from_chunks(chunks, None)]
    results = router.batch([text] * settings.batch_size, return_exceptions=True)
    return [_from_error(r) if isinstance(r, BaseException) else _from_message(r) for r in results]


async def _acall(router: Router, entry: str, text: str, settings: Settings) -> list[_Outcome]:
    if entry == "ainvoke":
        try:
            return [_from_message(await router.ainvoke(text))]
        except Exception as exc:
            return [_from_error(exc)]
    if entry == "astream":
        chunks: list[Any] = []
        try:
            async for chunk in router.astream(text):
                chunks.append(chunk)
        except Exception as exc:
            return [_from_chunks(chunks, exc)]
        return [_from_chunks(chunks, None)]
    results = await router.abatch([text] * settings.batch_size, return_exceptions=True)
    return [_from_error(r) if isinstance(r, BaseException) else _from_message(r) for r in results]


def _spend_the_day(sim: SimulatedProvider, model: str) -> None:
    """Send one of a model's requests of the day (once spent, it answers 429 for ~24 h)."""
    body = {"model": model, "messages": [{"role": "user", "content": "spend the day"}]}
    response = httpx.post(f"{sim.base_url}/chat/completions", json=body, timeout=10)
    response.raise_for_status()


# --------------------------------------------------------------------------- the invariants


@dataclass(slots=True)
class _Observed:
    """Everything one cell produced, and the rules it must satisfy."""

    settings: Settings
    fault: Fault
    scope: str
    entry: str
    outcomes: list[_Outcome]
    elapsed: float
    sim: Mapping[str, Any]
    router: Router

    def result(self) -> dict[str, Any]:
        stats = self.router.stats()
        violations = self.check(stats)
        models = self.sim["models"]
        return {
            "fault": self.fault.name,
            "fault_label": self.fault.label,
            "scope": self.scope,
            "entry": self.entry,
            "outcome": self.label(stats),
            "elapsed_s": round(self.elapsed, 3),
            "bound_s": round(self.settings.bound(self.entry), 3),
            "calls": len(self.outcomes),
            "served": sum(o.served for o in self.outcomes),
            "broken": sum(o.broken for o in self.outcomes),
            "failed": sum(o.served_by is None for o in self.outcomes),
            "requests": {m: models[m]["requests_received"] for m in MODELS},
            "retries": stats.get("retries", 0) + stats.get("transient_retries", 0),
            "violations": violations,
        }

    # --- the label -----------------------------------------------------------------------

    def label(self, stats: Mapping[str, Any]) -> str:
        parts: list[str] = []
        for outcome in self.outcomes:
            if outcome.broken:
                parts.append(f"error after {outcome.chunks} chunks ({_short(outcome.served_by)})")
            elif outcome.served:
                parts.append(f"served by {_short(outcome.served_by)}")
            elif isinstance(outcome.error, AllModelsFailedError):
                parts.append(f"AllModelsFailed[{','.join(k for _, k in outcome.attempts)}]")
            else:
                parts.append(f"{type(outcome.error).__name__}")
        counted = Counter(parts)
        text = "; ".join(p if n == 1 else f"{n}× {p}" for p, n in counted.items())
        retries = stats.get("retries", 0) + stats.get("transient_retries", 0)
        if retries:
            text += f" ({retries} retr{'y' if retries == 1 else 'ies'})"
        return text

    # --- the rules -----------------------------------------------------------------------

    def check(self, stats: Mapping[str, Any]) -> list[str]:
        found: list[str] = []
        found += self._typed_outcomes()
        if self.elapsed > self.settings.bound(self.entry):
            found.append(
                f"liveness: took {self.elapsed:.2f}s, over the bound "
                f"{self.settings.bound(self.entry):.2f}s"
            )
        found += self._no_resend()
        found += self._ledger()
        found += self._stats(stats)
        return found

    def _expected(self) -> str:
        """What a call should come to: "broken", "served:<model>", "failed"."""
        if self.fault.mid_stream and self.entry in _STREAMS:
            return "broken"
        if self.scope == "all":
            return "failed"
        if self.scope == "first" and self.fault.retryable:
            return f"served:{NAMES[0]}"
        return f"served:{NAMES[1]}"

    def _typed_outcomes(self) -> list[str]:
        found: list[str] = []
        expected = self._expected()
        kind = self.fault.kind.value
        for i, o in enumerate(self.outcomes):
            where = f"call {i}"
            if o.broken:
                note = " ".join(getattr(o.error, "__notes__", []))
                if expected != "broken":
                    found.append(f"{where}: stream broke after {o.chunks} chunks unexpectedly")
                if o.served_by is None or f"stream from {o.served_by} failed" not in note:
                    found.append(f"{where}: a broken stream's error must carry a note naming it")
                continue
            if o.served:
                if self.scope == "first" and o.served_by == NAMES[0] and not o.attempts:
                    # In a batch, the element that was not request #1 is served at once.
                    continue
                if expected != f"served:{o.served_by}":
                    found.append(f"{where}: served by {o.served_by}, expected {expected}")
                want = [] if o.served_by == NAMES[0] else [(NAMES[0], kind)]
                if o.attempts != want:
                    found.append(f"{where}: attempts {o.attempts}, expected {want}")
                continue
            if not isinstance(o.error, AllModelsFailedError):
                found.append(f"{where}: untyped error {type(o.error).__name__}: {o.error}"[:300])
                continue
            if expected != "failed":
                found.append(f"{where}: AllModelsFailed, expected {expected}")
            if [m for m, _ in o.attempts] != list(NAMES):
                found.append(f"{where}: attempts name {o.attempts}, not every model in order")
            if any(k != kind for _, k in o.attempts):
                found.append(f"{where}: attempt kinds {o.attempts}, expected all {kind}")
        return found

    def _no_resend(self) -> list[str]:
        found: list[str] = []
        models = self.sim["models"]
        served_by = Counter(o.served_by for o in self.outcomes if o.served)
        for name, model in zip(NAMES, MODELS, strict=True):
            got = models[model]["requests_served"]
            if got != served_by.get(name, 0):
                found.append(
                    f"{model}: the provider served {got} responses, the callers received "
                    f"{served_by.get(name, 0)} (a request sent again after it succeeded?)"
                )
        if all(o.served_by is not None for o in self.outcomes):
            last = max(NAMES.index(o.served_by) for o in self.outcomes if o.served_by)
            for model in MODELS[last + 1 :]:
                if models[model]["requests_received"]:
                    found.append(f"{model}: got requests after an earlier model had answered")
        if not self.fault.retryable:
            for model in MODELS:
                if models[model]["requests_received"] > len(self.outcomes):
                    found.append(f"{model}: a {self.fault.kind.value} error was retried")
        if self.scope == "first" and self.fault.retryable and self._expected() != "broken":
            sent = models[MODELS[0]]["requests_received"]
            if sent != len(self.outcomes) + 1:
                found.append(
                    f"{MODELS[0]}: {sent} requests for {len(self.outcomes)} calls; expected one "
                    "retry of the failed first request on the same model"
                )
        return found

    def _ledger(self) -> list[str]:
        found: list[str] = []
        tracker = self.router.settings["tracker"]
        records = tracker.records()
        models = self.sim["models"]
        catalog = default_catalog()
        expected_cost = Decimal(0)
        for name, model in zip(NAMES, MODELS, strict=True):
            mine = [r for r in records if r.key == name]
            ok = [r for r in mine if r.status == "ok"]
            sim = models[model]
            if len(ok) != sim["requests_served"]:
                found.append(f"{model}: {len(ok)} ok records, {sim['requests_served']} served")
            tokens = (sum(r.input_tokens for r in ok), sum(r.output_tokens for r in ok))
            if tokens != (sim["prompt_tokens"], sim["completion_tokens"]):
                found.append(
                    f"{model}: ledger tokens {tokens} != simulator "
                    f"({sim['prompt_tokens']}, {sim['completion_tokens']})"
                )
            if any(r.estimated for r in ok):
                found.append(f"{model}: an ok record is estimated although usage was reported")
            broken = [o for o in self.outcomes if o.broken and o.served_by == name]
            errors = [r for r in mine if r.status != "ok"]
            if len(errors) != len(broken) or not all(
                r.status == "error" and r.estimated for r in errors
            ):
                found.append(
                    f"{model}: {len(broken)} broken streams but records "
                    f"{[(r.status, r.estimated) for r in errors]}; each must be one estimated "
                    "error record"
                )
            found += _broken_charges(model, errors, broken, sim)
            price = catalog.get(name).price
            assert price is not None and price.input is not None and price.output is not None
            for r in mine:
                expected_cost += (
                    r.input_tokens * price.input + r.output_tokens * price.output
                ) / Decimal(1_000_000)
            if [r for r in records if r.key not in NAMES]:
                found.append(f"records for unknown models: {[r.key for r in records]}")
        total = Decimal(str(tracker.summary()["total_cost"]))
        if abs(total - expected_cost) > Decimal("1e-12"):
            found.append(f"ledger total ${total} != tokens × catalogue prices ${expected_cost}")
        return found

    def _stats(self, stats: Mapping[str, Any]) -> list[str]:
        found: list[str] = []
        outcomes = self.outcomes
        attempts = Counter((m, k) for o in outcomes for m, k in o.attempts)
        by_kind = Counter(k for _, k in attempts.elements())
        opened = [o for o in outcomes if o.served_by is not None]
        want = {
            "total_requests": len(outcomes),
            "failed_requests": sum(o.served_by is None for o in outcomes),
            "primary_requests": sum(o.served_by == NAMES[0] for o in opened),
            "fallback_requests": sum(o.served_by != NAMES[0] for o in opened),
            "broken_streams": sum(o.broken for o in outcomes),
            "rate_limit_fallbacks": by_kind["rate_limit"],
            "quota_fallbacks": by_kind["quota"],
            "context_fallbacks": by_kind["context"],
            "transient_fallbacks": by_kind["transient"],
            "other_fallbacks": sum(
                n
                for k, n in by_kind.items()
                if k not in ("rate_limit", "quota", "context", "transient", "budget")
            ),
        }
        for key, value in want.items():
            if stats.get(key) != value:
                found.append(f"router.stats()[{key!r}] = {stats.get(key)}, expected {value}")
        for name in NAMES:
            entry = stats["by_model"][name]
            served = sum(o.served_by == name for o in opened)
            failures = {k: n for (m, k), n in attempts.items() if m == name}
            if entry["requests"] != served or entry["failures"] != failures:
                found.append(
                    f"router.stats()['by_model'][{name!r}] = {entry}, expected requests="
                    f"{served} failures={failures}"
                )

        models = self.sim["models"]
        scheduler = self.router.settings["scheduler"].stats()
        for name, model in zip(NAMES, MODELS, strict=True):
            admitted = scheduler["by_model"].get(name, {}).get("admitted", 0)
            if admitted != models[model]["requests_received"]:
                found.append(
                    f"{model}: the scheduler admitted {admitted} requests, the provider received "
                    f"{models[model]['requests_received']}"
                )
        faults: Counter[str] = Counter()
        for model in MODELS:
            faults.update(models[model]["faults"])
        rate_limit_429 = faults["429"]
        if stats.get("rate_limit_errors") != rate_limit_429:
            found.append(
                f"rate_limit_errors {stats.get('rate_limit_errors')} != the provider's "
                f"{rate_limit_429} rate-limit 429s"
            )
        # Every 429 is followed by a retry that was sent, or by the end of its model's attempt
        # (at once, or when the wait before the retry passed max_wait). An attempt can also end
        # in a cooldown another call's 429 started, so the bound is two-sided, not an equality.
        retries = stats.get("retries", 0)
        if not rate_limit_429 - by_kind["rate_limit"] <= retries <= rate_limit_429:
            found.append(
                f"retries {retries}: every 429 is retried or ends the model's attempt "
                f"({rate_limit_429} 429s, {by_kind['rate_limit']} gave up)"
            )
        transient = sum(
            faults[k] for k in ("500", "502", "503", "529", "timeout", "reset", "drop", "malformed")
        )
        settled = stats.get("transient_retries", 0) + by_kind["transient"] + want["broken_streams"]
        if transient != settled:
            found.append(
                f"{transient} transient faults, but {stats.get('transient_retries')} retries + "
                f"{by_kind['transient']} unavailable + {want['broken_streams']} broken streams"
            )
        context = sum(models[m]["context_length_exceeded"] for m in MODELS)
        if context != by_kind["context"]:
            found.append(f"{context} provider context errors, {by_kind['context']} fallbacks")
        for name, model in zip(NAMES, MODELS, strict=True):
            quota_429 = (
                models[model]["faults"].get("quota", 0)
                + models[model]["insufficient_quota"]
                + models[model]["rate_limited"]["requests"]
            )
            quota_attempts = attempts[(name, "quota")]
            # Each quota fallback is the provider's quota 429, or the scheduler's cooldown that
            # such a 429 started (then no request is sent).
            if quota_429 > quota_attempts or (quota_attempts and not quota_429):
                found.append(
                    f"{model}: {quota_429} quota 429s from the provider, {quota_attempts} quota "
                    "fallbacks"
                )
        return found


def _broken_charges(
    model: str, errors: Sequence[Any], broken: Sequence[_Outcome], sim: Mapping[str, Any]
) -> list[str]:
    """A broken stream is charged its whole input and exactly the output that arrived."""
    if not broken or len(errors) != len(broken):
        return []
    found: list[str] = []
    spec = default_catalog().get(f"openai:{model}")
    received = sorted(count_tokens(o.text, spec) if o.text else 0 for o in broken)
    charged = sorted(r.output_tokens for r in errors)
    if received != charged:
        found.append(
            f"{model}: broken streams charged {charged} output tokens, received {received}"
        )
    admitted = sorted(
        tokens for _, event, tokens in sim["timeline"] if str(event).startswith("fault:")
    )
    inputs = sorted(r.input_tokens for r in errors)
    if inputs != admitted:
        found.append(f"{model}: broken streams charged {inputs} input tokens, admitted {admitted}")
    billed = sim["quota_spent"]["tokens"] - sim["prompt_tokens"] - sim["completion_tokens"]
    if sum(inputs) + sum(charged) > billed:
        found.append(f"{model}: broken streams charged more than the provider billed ({billed})")
    return found


def _short(name: str | None) -> str:
    return "?" if name is None else name.split(":", 1)[-1]


# --------------------------------------------------------------------------- report


def run(quick: bool = False, settings: Settings | None = None, workers: int = 4) -> dict[str, Any]:
    """Run the matrix (``quick``: three entry points) and return JSON-ready figures.

    Cells mostly sleep (timeouts, Retry-After, backoff), so ``workers`` harnesses, each with its
    own simulators and event loop, run cells side by side; a cell never shares a simulator,
    router or event loop with another.
    """
    chosen = cells(quick)
    workers = max(1, min(workers, len(chosen)))
    results: list[dict[str, Any] | None] = [None] * len(chosen)
    used = settings or Settings()
    started = time.monotonic()

    def work(offset: int) -> None:
        with Harness(used) as harness:
            for index in range(offset, len(chosen), workers):
                results[index] = harness.run_cell(*chosen[index])

    with ThreadPoolExecutor(workers, thread_name_prefix="fault-matrix") as pool:
        for future in [pool.submit(work, offset) for offset in range(workers)]:
            future.result()
    done = [r for r in results if r is not None]
    worst = max(done, key=lambda r: r["elapsed_s"] / r["bound_s"])
    return {
        "settings": asdict(used),
        "entries": sorted({r["entry"] for r in done}, key=ENTRIES.index),
        "cells": done,
        "totals": {
            "cells": len(done),
            "violations": sum(len(r["violations"]) for r in done),
            "max_elapsed_s": max(r["elapsed_s"] for r in done),
            "worst_elapsed_over_bound": round(worst["elapsed_s"] / worst["bound_s"], 4),
            "worst_cell": f"{worst['fault']}/{worst['scope']}/{worst['entry']}",
            "workers": workers,
            "wall_s": round(time.monotonic() - started, 1),
        },
    }


def render(result: Mapping[str, Any]) -> str:
    """The matrix as a markdown table (fault × scope rows, entry-point columns) and totals."""
    entries: list[str] = list(result["entries"])
    rows: dict[tuple[str, str], dict[str, str]] = {}
    labels: dict[str, str] = {}
    for cell in result["cells"]:
        key = (cell["fault"], cell["scope"])
        labels[cell["fault"]] = cell["fault_label"]
        text = cell["outcome"]
        if cell["violations"]:
            text = f"**{len(cell['violations'])} violation(s)**: {text}"
        rows.setdefault(key, {})[cell["entry"]] = text
    lines = [
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
    settings = result["settings"]
    lines += [
        "",
        f"cells: {totals['cells']}, invariant violations: {totals['violations']}, max elapsed "
        f"{totals['max_elapsed_s']:.2f}s; worst elapsed/bound "
        f"{totals['worst_elapsed_over_bound']:.3f} ({totals['worst_cell']}); wall "
        f"{totals['wall_s']}s on {totals['workers']} workers. Settings: timeout "
        f"{settings['timeout']}s, max_wait {settings['max_wait']}s, max_retries "
        f"{settings['max_retries']}, Retry-After {settings['retry_after']}s, stream cut after "
        f"{settings['drop_after']} chunks, batch of {settings['batch_size']}.",
    ]
    violations = [
        f"- {c['fault']}/{c['scope']}/{c['entry']}: {v}"
        for c in result["cells"]
        for v in c["violations"]
    ]
    if violations:
        lines += ["", "Violations:", *violations]
    return "\n".join(lines)


@contextmanager
def _quiet() -> Iterator[None]:
    # The scheduler and the tracker log every fallback and estimate; the table says it all.
    logger = logging.getLogger("llm_routing")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="invoke, astream and batch only")
    args = parser.parse_args(argv)
    with _quiet():
        print(render(run(quick=args.quick)))


if __name__ == "__main__":
    main()
