"""Invariants of the scheduler, checked against an independent recount kept by the test.

No window ``(x - 60, x]`` ever holds more admitted requests than the effective RPM, nor more
tokens than the effective TPM/ITPM/OTPM; RPD and concurrency hold; and through the queue,
every request ends exactly one way (admitted once, refused with a typed error, or cancelled).
The recount is brute force over the test's own log of admissions, not the policy's counters.
"""

from __future__ import annotations

import itertools
import math
import threading

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from llm_routing.errors import QuotaExceededError, RateLimitExhaustedError
from llm_routing.schedule import policy
from llm_routing.schedule.clock import VirtualClock
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.policy import DAY_S, ModelState, RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.queue import Admission, Ticket

WINDOW = 60.0

steps = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.75, 7.5, 15.0, 30.0, 59.75, 60.0, 90.0, DAY_S / 2])
limits_strategy = st.builds(
    RateLimits,
    rpm=st.none() | st.integers(1, 8),
    tpm=st.none() | st.integers(0, 3_000),
    itpm=st.none() | st.integers(0, 2_000),
    otpm=st.none() | st.integers(0, 1_500),
    rpd=st.none() | st.integers(1, 25),
    max_concurrency=st.none() | st.integers(1, 4),
    request_margin=st.integers(0, 2),
    token_headroom=st.sampled_from([0.0, 0.02, 0.1]),
    smoothing=st.booleans(),
)
requests = st.builds(Request, st.integers(0, 700), st.integers(0, 700))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), steps),
        st.tuples(st.just("request"), requests),
        st.tuples(st.just("request"), requests),
        st.tuples(st.just("settle"), st.integers(0, 50), st.integers(0, 700), st.integers(0, 700)),
        st.tuples(st.just("release"), st.integers(0, 50), st.booleans()),
        st.tuples(st.just("cooldown"), steps),
        st.tuples(st.just("correct"), st.integers(0, 10), st.integers(0, 3_000), steps),
    ),
    max_size=60,
)


class Recount:
    """The test's own ledger: each admission with its current counts, and brute-force sums."""

    def __init__(self) -> None:
        self.entries: dict[str, list[float]] = {}  # rid -> [t, requests, input, output]
        self.in_flight: set[str] = set()

    def admitted(self, rid: str, t: float, request: Request) -> None:
        self.entries[rid] = [t, 1, request.input_tokens, request.output_tokens]
        self.in_flight.add(rid)

    def settled(self, rid: str, inp: int, out: int) -> None:
        if rid in self.in_flight:
            self.in_flight.discard(rid)
            self.entries[rid][2:] = [inp, out]

    def released(self, rid: str, keep_request: bool) -> None:
        if rid in self.in_flight:
            self.in_flight.discard(rid)
            entry = self.entries[rid]
            entry[2:] = [0, 0]
            if not keep_request:
                entry[1] = 0

    def window(self, x: float, length: float) -> tuple[float, float, float, float]:
        """Requests, tokens, input and output tokens admitted in ``(x - length, x]``."""
        # The policy's definition of (x - length, x], written so that it holds exactly in
        # floating point too: an entry counts from its time until its time + length.
        live = [e for e in self.entries.values() if e[0] <= x < e[0] + length]
        return (
            sum(e[1] for e in live),
            sum(e[2] + e[3] for e in live),
            sum(e[2] for e in live),
            sum(e[3] for e in live),
        )

    def check(self, limits: RateLimits, x: float) -> None:
        """The window ending at an admission time x is within every limit."""
        requests_, tokens, inp, out = self.window(x, limits.window_s)
        if limits.effective_rpm is not None:
            assert requests_ <= limits.effective_rpm
        if limits.effective_tpm is not None:
            assert tokens <= limits.effective_tpm
        if limits.effective_itpm is not None:
            assert inp <= limits.effective_itpm
        if limits.effective_otpm is not None:
            assert out <= limits.effective_otpm
        if limits.rpd is not None:
            assert self.window(x, DAY_S)[0] <= limits.rpd
        if limits.max_concurrency is not None:
            assert len(self.in_flight) <= limits.max_concurrency


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=limits_strategy, ops=operations)
def test_no_window_ever_exceeds_a_limit_and_each_decision_time_is_exact(limits, ops):
    state = ModelState()
    recount = Recount()
    rids: list[str] = []
    now = 0.0
    for op in ops:
        kind = op[0]
        if kind == "advance":
            now += op[1]
        elif kind == "request":
            request = op[1]
            decision = policy.decide(state, limits, now, request)
            if decision.admit:
                rid = f"r{len(rids)}"
                policy.admit(state, limits, now, request, rid)
                rids.append(rid)
                recount.admitted(rid, now, request)
                recount.check(limits, now)
            elif decision.never is None and decision.binding != "concurrency":
                # The earliest time is exact: admissible then, and not a moment before.
                assert decision.at > now
                later = policy.decide(state.copy(), limits, decision.at, request, concurrency=False)
                assert later.admit
                before = math.nextafter(decision.at, -math.inf)
                if before >= now:
                    early = policy.decide(state.copy(), limits, before, request, concurrency=False)
                    assert not early.admit
        elif kind == "settle" and rids:
            rid = rids[op[1] % len(rids)]
            policy.settle(state, limits, now, rid, op[2], op[3])
            recount.settled(rid, op[2], op[3])
        elif kind == "release" and rids:
            rid = rids[op[1] % len(rids)]
            policy.release(state, rid, keep_request=op[2])
            recount.released(rid, op[2])
        elif kind == "cooldown":
            policy.cooldown(state, now + op[1])
        elif kind == "correct":
            policy.correct(
                state,
                limits,
                now,
                RateLimitHeaders(
                    remaining_requests=op[1], remaining_tokens=op[2], reset_requests_s=op[3]
                ),
            )
        assert len(state.inflight) == len(recount.in_flight)


@settings(max_examples=60, deadline=None)
@given(
    rpm=st.integers(1, 6),
    tpm=st.integers(100, 2_000),
    sizes=st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=40),
    gaps=st.lists(st.sampled_from([0.0, 0.25, 3.0, 20.0]), min_size=40, max_size=40),
    shrink=st.lists(st.integers(0, 100), min_size=40, max_size=40),
)
def test_with_settles_below_reservations_every_window_stays_within_limits(
    rpm, tpm, sizes, gaps, shrink
):
    """Settling lower only frees capacity, so even the final counts fit every window."""
    limits = RateLimits(rpm=rpm, tpm=tpm, request_margin=0, token_headroom=0)
    state = ModelState()
    recount = Recount()
    now = 0.0
    for index, (inp, out) in enumerate(sizes):
        now += gaps[index]
        request = Request(inp, out)
        decision = policy.decide(state, limits, now, request)
        if decision.never is not None:
            continue
        now = max(now, decision.at)  # wait for it, then it must be admitted
        decision = policy.decide(state, limits, now, request)
        assert decision.admit
        rid = f"r{index}"
        policy.admit(state, limits, now, request, rid)
        recount.admitted(rid, now, request)
        settled_out = out * shrink[index] // 100
        policy.settle(state, limits, now, rid, inp, settled_out)
        recount.settled(rid, inp, settled_out)
    for t, *_ in recount.entries.values():
        recount.check(limits, t)


# --------------------------------------------------------------------------- the queue


class _Interrupt(BaseException):
    """Stands for KeyboardInterrupt while a sync waiter sleeps."""


class _ScriptedClock(VirtualClock):
    def __init__(self) -> None:
        super().__init__()
        self.interrupt_next_wait = False

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if self.interrupt_next_wait:
            self.interrupt_next_wait = False
            raise _Interrupt
        return super().wait(event, timeout)


KEYS = ("openai:a", "anthropic:b")
QUEUE_LIMITS = {
    "openai:a": RateLimits(rpm=4, request_margin=1, tpm=2_000, rpd=20, token_headroom=0),
    "anthropic:b": RateLimits(
        itpm=1_500, otpm=600, max_concurrency=2, smoothing=True, rpm=30, token_headroom=0.1
    ),
}


class AdmissionMachine(RuleBasedStateMachine):
    """One thread driving the real Admission on a virtual clock, with a ledger of outcomes."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = _ScriptedClock()
        self.backend = MemoryBackend(self.clock)
        self.admission = Admission(self.backend)
        self.recounts = {key: Recount() for key in KEYS}
        self.outstanding: dict[str, Ticket] = {}
        self.admitted_rids: set[str] = set()
        self.last_admitted = dict.fromkeys(KEYS, -math.inf)
        self.outcomes: dict[int, str] = {}
        self.calls = itertools.count()

    def _outcome(self, call: int, outcome: str) -> None:
        assert call not in self.outcomes, "a request ended twice"
        self.outcomes[call] = outcome

    @rule(
        key=st.sampled_from(KEYS),
        request=st.builds(Request, st.integers(0, 800), st.integers(0, 400)),
        max_wait=st.sampled_from([0.0, 5.0, 30.0, 90.0, 400.0]),
        interrupt=st.booleans(),
    )
    def acquire(self, key, request, max_wait, interrupt):
        call = next(self.calls)
        start = self.clock.now()
        deadline = start + max_wait
        limits = QUEUE_LIMITS[key]
        in_flight_before = self.backend.snapshot(key)["in_flight"]
        self.clock.interrupt_next_wait = interrupt
        try:
            ticket = self.admission.acquire(key, limits, request, deadline=deadline, model=key)
        except _Interrupt:
            self._outcome(call, "cancelled")
            assert self.backend.snapshot(key)["in_flight"] == in_flight_before
        except (RateLimitExhaustedError, QuotaExceededError) as exc:
            self._outcome(call, type(exc).__name__)
            assert self.clock.now() <= deadline
            if exc.__class__ is QuotaExceededError or getattr(exc, "wait_s", None) is not None:
                assert self.clock.now() == start, "a refusal known in advance must not wait"
        else:
            self._outcome(call, "admitted")
            assert ticket.rid not in self.admitted_rids, "admitted twice"
            self.admitted_rids.add(ticket.rid)
            assert start <= ticket.admitted_at <= deadline
            assert ticket.admitted_at >= self.last_admitted[key], "FIFO order broken"
            self.last_admitted[key] = ticket.admitted_at
            self.outstanding[ticket.rid] = ticket
            self.recounts[key].admitted(ticket.rid, ticket.admitted_at, request)
            self.recounts[key].check(limits, ticket.admitted_at)
        finally:
            self.clock.interrupt_next_wait = False

    @precondition(lambda self: self.outstanding)
    @rule(pick=st.integers(0, 10**6), inp=st.integers(0, 800), out=st.integers(0, 400))
    def settle(self, pick, inp, out):
        ticket = self.outstanding.pop(sorted(self.outstanding)[pick % len(self.outstanding)])
        self.admission.settle(ticket, inp, out)
        self.recounts[ticket.key].settled(ticket.rid, inp, out)

    @precondition(lambda self: self.outstanding)
    @rule(pick=st.integers(0, 10**6), keep_request=st.booleans())
    def release(self, pick, keep_request):
        ticket = self.outstanding.pop(sorted(self.outstanding)[pick % len(self.outstanding)])
        self.admission.release(ticket, keep_request=keep_request)
        self.recounts[ticket.key].released(ticket.rid, keep_request)

    @rule(seconds=steps)
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule(key=st.sampled_from(KEYS), seconds=st.sampled_from([1.0, 20.0, 120.0]))
    def cooldown(self, key, seconds):
        self.admission.cooldown(key, self.clock.now() + seconds)

    @invariant()
    def nobody_is_left_waiting_and_no_reservation_is_lost(self):
        for key in KEYS:
            assert self.admission.waiting(key) == 0
            in_flight = sum(1 for t in self.outstanding.values() if t.key == key)
            assert self.backend.snapshot(key)["in_flight"] == in_flight


AdmissionMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestAdmission = AdmissionMachine.TestCase


def _facts(state: ModelState) -> dict:
    """Everything a state holds, entries by value (the two states never share entries)."""

    def entry(e):
        return (e.t, e.req, e.inp, e.out, e.late, e.lease, e.in_day, e.day_end)

    facts = {name: getattr(state, name) for name in ModelState.__slots__}
    facts["log"] = [entry(e) for e in state.log]
    facts["day_log"] = [entry(e) for e in state.day_log]
    facts["inflight"] = {rid: entry(e) for rid, e in state.inflight.items()}
    facts["projection"] = state.projection is not None
    return facts


# Limits the one-pass admission takes (no daily or concurrency limit), most often not binding.
roomy_limits = st.builds(
    RateLimits,
    rpm=st.none() | st.integers(1, 60),
    tpm=st.none() | st.integers(0, 30_000),
    itpm=st.none() | st.integers(0, 20_000),
    otpm=st.none() | st.integers(0, 15_000),
    request_margin=st.integers(0, 2),
    token_headroom=st.sampled_from([0.0, 0.02, 0.1]),
    smoothing=st.booleans(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=st.one_of(limits_strategy, roomy_limits),
    ops=operations,
    lease_s=st.none() | st.sampled_from([5.0, 30.0]),
)
def test_admit_now_admits_as_decide_and_admit_do_and_leaves_the_same_state(limits, ops, lease_s):
    """The in-process backend's one-pass admission (`policy.admit_now`, None: ask `decide`)
    answers every request as `decide` + `admit` do and leaves the state they leave, through
    settles, releases, cooldowns and the provider's corrections."""
    slow, fast = ModelState(), ModelState()
    rids: list[str] = []
    now = 0.0
    for op in ops:
        kind = op[0]
        if kind == "advance":
            now += op[1]
        elif kind == "request":
            request, rid = op[1], f"r{len(rids)}"
            decision = policy.decide(slow, limits, now, request)
            if decision.admit:
                policy.admit(slow, limits, decision.at, request, rid, lease_s=lease_s)
            at = policy.admit_now(fast, limits, now, request, rid, lease_s)
            if at is None:
                again = policy.decide(fast, limits, now, request)
                assert (again.admit, again.at, again.binding) == (
                    decision.admit,
                    decision.at,
                    decision.binding,
                )
                if again.admit:
                    policy.admit(fast, limits, again.at, request, rid, lease_s=lease_s)
            else:
                assert decision.admit and at == decision.at
            if decision.admit:
                rids.append(rid)
        elif kind == "settle" and rids:
            for state in (slow, fast):
                policy.settle(state, limits, now, rids[op[1] % len(rids)], op[2], op[3])
        elif kind == "release" and rids:
            for state in (slow, fast):
                policy.release(state, rids[op[1] % len(rids)], keep_request=op[2])
        elif kind == "cooldown":
            for state in (slow, fast):
                policy.cooldown(state, now + op[1])
        elif kind == "correct":
            headers = RateLimitHeaders(
                remaining_requests=op[1], remaining_tokens=op[2], reset_requests_s=op[3]
            )
            for state in (slow, fast):
                policy.correct(state, limits, now, headers)
        assert _facts(fast) == _facts(slow)
