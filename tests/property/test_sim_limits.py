"""The simulator's limiter is exact in every mode: no window over its limit, no false 429s."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llm_routing.sim.limiter import DAY, MINUTE, ProviderLimiter, SlidingWindowLimiter

# Times in milliseconds, so many requests share an instant or sit exactly 60 s apart.
gaps = st.lists(
    st.tuples(st.integers(0, 30_000), st.integers(0, 400), st.integers(0, 200)),
    min_size=1,
    max_size=120,
)
limits = st.tuples(st.integers(1, 12), st.integers(50, 1_500), st.integers(1, 40))


def live(admitted, now, period):
    return [a for a in admitted if now < a[0] + period]


def run(schedule, rpm, tpm, rpd):
    limiter = SlidingWindowLimiter(rpm=rpm, tpm=tpm, rpd=rpd, clock=lambda: 0.0)
    now = 0.0
    admitted, refused = [], []
    for gap_ms, prompt, output in schedule:
        now += gap_ms / 1000
        decision = limiter.acquire(prompt, output, now=now)
        entry = (now, prompt + output)
        (admitted if decision.admitted else refused).append((entry, decision))
    return admitted, refused


@settings(max_examples=150, deadline=None)
@given(schedule=gaps, caps=limits)
def test_no_window_ever_holds_more_than_its_limit(schedule, caps):
    rpm, tpm, rpd = caps
    admitted, _ = run(schedule, rpm, tpm, rpd)
    events = [e for e, _ in admitted]
    for start, _ in events:  # the worst windows start at an admitted request
        minute = [e for e in events if start <= e[0] < start + MINUTE]
        assert len(minute) <= rpm
        assert sum(tokens for _, tokens in minute) <= tpm
        assert len([e for e in events if start <= e[0] < start + DAY]) <= rpd


@settings(max_examples=150, deadline=None)
@given(schedule=gaps, caps=limits)
def test_a_request_is_refused_only_when_it_would_not_fit(schedule, caps):
    rpm, tpm, rpd = caps
    limiter = SlidingWindowLimiter(rpm=rpm, tpm=tpm, rpd=rpd)
    now = 0.0
    events = []
    for gap_ms, prompt, output in schedule:
        now += gap_ms / 1000
        tokens = prompt + output
        minute = live(events, now, MINUTE)
        fits = (
            len(minute) + 1 <= rpm
            and sum(t for _, t in minute) + tokens <= tpm
            and len(live(events, now, DAY)) + 1 <= rpd
        )
        decision = limiter.acquire(prompt, output, now=now)
        assert decision.admitted == fits
        if fits:
            events.append((now, tokens))


@settings(max_examples=150, deadline=None)
@given(schedule=gaps, caps=limits)
def test_retry_at_is_the_first_instant_the_refused_request_fits(schedule, caps):
    rpm, tpm, rpd = caps
    limiter = SlidingWindowLimiter(rpm=rpm, tpm=tpm, rpd=rpd, clock=lambda: 0.0)
    now = 0.0
    events: list[tuple[float, int]] = []
    refused = []
    for gap_ms, prompt, output in schedule:
        now += gap_ms / 1000
        decision = limiter.acquire(prompt, output, now=now)
        if decision.admitted:
            events.append((now, prompt + output))
        else:
            # What was admitted before this refusal: later admissions at the same instant
            # are not part of the state retry_at was computed from.
            refused.append(((now, prompt + output), decision, list(events)))
    for (when, tokens), decision, past in refused:
        if math.isinf(decision.retry_at):
            assert tokens > tpm  # only a request bigger than a whole window can never fit
            continue
        assert decision.retry_at > when

        def fits_at(t, past=past, tokens=tokens):
            minute = live(past, t, MINUTE)
            return (
                len(minute) + 1 <= rpm
                and sum(x for _, x in minute) + tokens <= tpm
                and len(live(past, t, DAY)) + 1 <= rpd
            )

        assert fits_at(decision.retry_at)
        assert not fits_at(decision.retry_at - 1e-6)


@settings(max_examples=100, deadline=None)
@given(schedule=gaps, caps=limits)
def test_remaining_headers_never_go_negative_and_match_the_log(schedule, caps):
    rpm, tpm, rpd = caps
    limiter = SlidingWindowLimiter(rpm=rpm, tpm=tpm, rpd=rpd)
    now = 0.0
    events = []
    for gap_ms, prompt, output in schedule:
        now += gap_ms / 1000
        decision = limiter.acquire(prompt, output, now=now)
        if decision.admitted:
            events.append((now, prompt + output))
        minute = live(events, now, MINUTE)
        assert decision.windows["rpm"].remaining == rpm - len(minute)
        assert decision.windows["tpm"].remaining == max(0, tpm - sum(t for _, t in minute))


# -- token_bucket and quantized: checked against an independent level-based model -------------


burst_gaps = st.lists(
    st.tuples(st.integers(0, 2_000), st.integers(0, 400), st.integers(0, 200)),
    min_size=1,
    max_size=150,
)
modes = st.sampled_from(["token_bucket", "quantized"])
bucket_limits = st.tuples(st.integers(1, 1_200), st.integers(50, 6_000))


def share(limit):
    """The per-second share the module documents: limit/60 per second, capacity max(1, that)."""
    rate = Fraction(limit, 60)
    return rate, max(Fraction(1), rate)


class RefBucket:
    """A bucket as a level that refills, clipped at capacity (no shared code with the limiter)."""

    def __init__(self, rate, capacity, debt):
        self.rate, self.capacity, self.debt = rate, capacity, debt
        self.level, self.t = capacity, None

    def level_at(self, now):
        if self.t is None:
            return self.level
        return min(self.capacity, self.level + self.rate * (now - self.t))

    def fits(self, amount, now):
        if amount > self.capacity and not self.debt:
            return False
        return self.level_at(now) >= min(Fraction(amount), self.capacity)

    def take(self, amount, now):
        self.level, self.t = self.level_at(now) - amount, now


class RefLog:
    """A sliding log; like the limiter's (and the tests above), entry expiry is float ``t + 60``."""

    def __init__(self, limit, period):
        self.limit, self.period, self.entries = limit, float(period), []

    def fits(self, amount, now):
        now = float(now)
        live = sum(a for t, a in self.entries if now < t + self.period)
        return amount <= self.limit and live + amount <= self.limit

    def take(self, amount, now):
        self.entries.append((float(now), amount))


def reference(mode, rpm, tpm):
    """{unit: [parts]} as the module docstring describes each mode."""
    parts = {}
    for unit, limit in (("requests", rpm), ("tokens", tpm)):
        if mode == "token_bucket":
            parts[unit] = [RefBucket(Fraction(limit, 60), Fraction(limit), debt=False)]
        else:
            rate, capacity = share(limit)
            parts[unit] = [RefLog(limit, Fraction(60)), RefBucket(rate, capacity, debt=True)]
    return parts


def run_modes(schedule, mode, rpm, tpm):
    limiter = ProviderLimiter(mode=mode, rpm=rpm, tpm=tpm, clock=lambda: 0.0)
    now = 0.0
    admitted, refused = [], []
    for gap_ms, prompt, output in schedule:
        now += gap_ms / 1000
        snapshot = copy.deepcopy(limiter)
        decision = limiter.acquire(prompt, output, now=now)
        tokens = prompt + output
        (admitted if decision.admitted else refused).append((now, tokens, decision, snapshot))
    return admitted, refused


@settings(max_examples=120, deadline=None)
@given(schedule=burst_gaps, mode=modes, caps=bucket_limits)
def test_buckets_admit_exactly_what_the_reference_admits(schedule, mode, caps):
    rpm, tpm = caps
    limiter = ProviderLimiter(mode=mode, rpm=rpm, tpm=tpm, clock=lambda: 0.0)
    ref = reference(mode, rpm, tpm)
    now = 0.0
    for gap_ms, prompt, output in schedule:
        now += gap_ms / 1000
        exact = Fraction(now)
        amounts = {"requests": 1, "tokens": prompt + output}
        fits = all(p.fits(amounts[u], exact) for u, ps in ref.items() for p in ps)
        assert limiter.acquire(prompt, output, now=now).admitted == fits
        if fits:
            for unit, ps in ref.items():
                for p in ps:
                    p.take(amounts[unit], exact)


@settings(max_examples=120, deadline=None)
@given(schedule=burst_gaps, caps=bucket_limits)
def test_quantized_never_exceeds_the_minute_nor_the_share(schedule, caps):
    rpm, tpm = caps
    admitted, _ = run_modes(schedule, "quantized", rpm, tpm)
    events = [(Fraction(t), tokens) for t, tokens, _, _ in admitted]
    r_rate, r_cap = share(rpm)
    t_rate, t_cap = share(tpm)
    biggest = max((tokens for _, tokens in events), default=0)
    for i, (start, _) in enumerate(events):
        minute = [e for e in events if start <= e[0] < start + 60]
        assert len(minute) <= rpm
        assert sum(tokens for _, tokens in minute) <= tpm
        for end, _ in events[i:]:
            inside = [e for e in events if start <= e[0] <= end]
            # A bucket: at most its capacity at once plus the refill over the interval; a
            # request bigger than the share (admitted on a full share) may add its excess.
            assert len(inside) <= r_cap + r_rate * (end - start)
            assert sum(t for _, t in inside) <= max(t_cap, biggest) + t_rate * (end - start)
        one_second = [e for e in events if start <= e[0] < start + 1]
        assert len(one_second) <= r_cap + r_rate  # never more than ~2 shares in any second


@settings(max_examples=120, deadline=None)
@given(schedule=burst_gaps, caps=bucket_limits)
def test_token_bucket_never_exceeds_capacity_plus_refill(schedule, caps):
    rpm, tpm = caps
    admitted, _ = run_modes(schedule, "token_bucket", rpm, tpm)
    events = [(Fraction(t), tokens) for t, tokens, _, _ in admitted]
    for i, (start, _) in enumerate(events):
        for end, _ in events[i:]:
            inside = [e for e in events if start <= e[0] <= end]
            assert len(inside) <= rpm + Fraction(rpm, 60) * (end - start)
            assert sum(t for _, t in inside) <= tpm + Fraction(tpm, 60) * (end - start)


def ref_fits(ref, tokens, now):
    amounts = {"requests": 1, "tokens": tokens}
    return all(p.fits(amounts[u], Fraction(now)) for u, ps in ref.items() for p in ps)


@settings(max_examples=120, deadline=None)
@given(
    schedule=burst_gaps,
    mode=st.sampled_from(["sliding", "token_bucket", "quantized"]),
    caps=st.sampled_from([(30, 1_200), (90, 700), (600, 20_000), (7, 100)]),
)
def test_retrying_exactly_at_retry_at_is_admitted_and_a_hair_earlier_is_not(schedule, mode, caps):
    rpm, tpm = caps
    limiter = ProviderLimiter(mode=mode, rpm=rpm, tpm=tpm, clock=lambda: 0.0)
    # The reference: the documented semantics, with no code shared with the limiter.
    if mode == "sliding":
        ref = {"requests": [RefLog(rpm, 60)], "tokens": [RefLog(tpm, 60)]}
    else:
        ref = reference(mode, rpm, tpm)
    now = 0.0
    refusals = 0
    for gap_ms, prompt, output in schedule:
        now += gap_ms / 1000
        tokens = prompt + output
        decision = limiter.acquire(prompt, output, now=now)
        if decision.admitted:
            for unit, ps in ref.items():
                for p in ps:
                    p.take(1 if unit == "requests" else tokens, Fraction(now))
            continue
        refusals += 1
        if math.isinf(decision.retry_at):
            assert tokens > tpm  # only a request bigger than the whole minute never fits
            continue
        assert decision.retry_at > now
        assert ref_fits(ref, tokens, decision.retry_at)
        assert not ref_fits(ref, tokens, math.nextafter(decision.retry_at, -math.inf))
        # and the limiter agrees with itself when the client comes back on time
        assert copy.deepcopy(limiter).check(prompt, output, now=decision.retry_at).admitted
    assume(refusals)


@settings(max_examples=100, deadline=None)
@given(schedule=gaps, caps=limits)
def test_counted_refusals_fill_the_window_like_admissions(schedule, caps):
    rpm, tpm, _ = caps
    limiter = ProviderLimiter(mode="sliding", rpm=rpm, tpm=tpm, clock=lambda: 0.0)
    counted: list[tuple[float, int]] = []  # admissions and charged refusals alike
    now = 0.0
    for gap_ms, prompt, output in schedule:
        now += gap_ms / 1000
        tokens = prompt + output
        minute = live(counted, now, MINUTE)
        fits = len(minute) + 1 <= rpm and sum(t for _, t in minute) + tokens <= tpm
        decision = limiter.acquire(prompt, output, now=now, count_refusal=True)
        assert decision.admitted == fits
        if fits or tokens <= tpm:
            counted.append((now, tokens))
        if not fits and tokens <= tpm:
            assert decision.charged
            assert decision.retry_at > now
