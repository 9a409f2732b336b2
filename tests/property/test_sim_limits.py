"""The simulator's limiter is exact: no window ever over its limit, and no false 429s."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_routing.sim.limiter import DAY, MINUTE, SlidingWindowLimiter

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
