"""Paced admissions are accepted by every enforcement the providers document.

Hypothesis draws limits, request sizes and arrival times; each request is admitted by the
policy (``RateLimits(smoothing=True)``, what ``RateScheduler(pacing="auto")`` resolves to) at
the earliest time it allows, in FIFO order, and then offered at that very time to the
simulator's own limiter in each mode (``sim.limiter.ProviderLimiter``: the exact sliding log,
the minute bucket, and the quantized per-second share with its debt rule). The provider side
is built from the providers' pages, not from the policy, so agreement is a real check: no
paced request is ever refused, in any mode. Only time between admission and arrival (network,
event loop) can break this, which the request margin and token headroom leave room for. Late
wake-ups are drawn too: the tolerance that lets token pacing keep its pace after one (the
provider's per-second bucket filled meanwhile) must never send more than that bucket holds.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from llm_routing.schedule.policy import ModelState, RateLimits, Request, admit, decide
from llm_routing.sim.limiter import ProviderLimiter

MODES = ("quantized", "token_bucket", "sliding")


@settings(max_examples=150, deadline=None)
@given(
    rpm=st.integers(4, 3_000),  # above the margin, so our pace is strictly below the limit
    tpm=st.none() | st.integers(2_000, 400_000),
    # At least the defaults' slack: with none, our float pace lands on the provider's exact
    # (Fraction) boundary, within one ulp of it, on either side.
    margin=st.integers(1, 3),
    headroom=st.sampled_from([0.01, 0.02, 0.1]),
    requests=st.lists(
        st.tuples(
            st.integers(0, 1_500),
            st.integers(0, 800),
            st.just(0.0) | st.floats(0, 5),  # the caller's arrival after the previous admission
            st.just(0.0) | st.floats(0, 1),  # how late its wake-up is, after the time allowed
        ),
        min_size=1,
        max_size=120,
    ),
)
def test_no_paced_request_is_refused_by_any_documented_enforcement(
    rpm, tpm, margin, headroom, requests
):
    limits = RateLimits(
        rpm=rpm, tpm=tpm, request_margin=margin, token_headroom=headroom, smoothing=True
    )
    providers = {mode: ProviderLimiter(mode=mode, rpm=rpm, tpm=tpm) for mode in MODES}
    state = ModelState()
    now = 0.0
    for number, (inp, out, gap, late) in enumerate(requests):
        request = Request(inp, out)
        if tpm is not None and request.tokens > limits.effective_tpm:
            continue  # never admissible: the scheduler refuses it before any wait
        now += gap
        decision = decide(state, limits, now, request)
        assert decision.never is None
        now = max(now, decision.at) + late
        assert decide(state, limits, now, request).admit
        admit(state, limits, now, request, f"r{number}")
        for mode, provider in providers.items():
            accepted = provider.acquire(inp, out, now=now)
            assert accepted.admitted, (mode, number, now, accepted.violations)
