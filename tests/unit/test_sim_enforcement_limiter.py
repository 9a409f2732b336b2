"""ProviderLimiter: each enforcement mode, exactly at its boundaries, in virtual time."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from llm_routing.sim.limiter import ProviderLimiter, SlidingWindowLimiter, per_second_share


def before(t: float) -> float:
    return math.nextafter(t, -math.inf)


def limiter(mode, **limits):
    return ProviderLimiter(mode=mode, clock=lambda: 0.0, **limits)


# -- quantized: the minute window plus a per-second share ---------------------------------


@pytest.mark.parametrize(
    ("limit", "rate", "capacity"),
    [
        (600, Fraction(10), Fraction(10)),
        (60, Fraction(1), Fraction(1)),
        (30, Fraction(1, 2), Fraction(1)),
        (90, Fraction(3, 2), Fraction(3, 2)),
        (100_000, Fraction(5_000, 3), Fraction(5_000, 3)),
        (1, Fraction(1, 60), Fraction(1)),
    ],
)
def test_per_second_share_is_exact(limit, rate, capacity):
    assert per_second_share(limit) == (rate, capacity)


def test_quantized_rpm_600_admits_ten_at_once_then_one_every_tenth_of_a_second():
    lim = limiter("quantized", rpm=600)
    assert [lim.acquire(5, now=0.0).admitted for _ in range(12)] == [True] * 10 + [False] * 2
    refused = lim.acquire(5, now=0.05)
    assert refused.cause == "per_second"
    assert refused.binding.window == "rpm"
    assert refused.retry_at == 0.1  # the smallest float >= 1/10
    assert not lim.acquire(5, now=before(0.1)).admitted
    assert lim.acquire(5, now=0.1).admitted
    assert not lim.acquire(5, now=0.15).admitted
    assert lim.acquire(5, now=0.2).admitted


def test_quantized_below_one_per_second_spaces_requests():
    lim = limiter("quantized", rpm=30)  # half a request per second, capacity one
    assert lim.acquire(1, now=10.0).admitted
    refused = lim.acquire(1, now=10.5)
    assert (refused.admitted, refused.retry_at) == (False, 12.0)
    assert not lim.acquire(1, now=before(12.0)).admitted
    assert lim.acquire(1, now=12.0).admitted


def test_quantized_fractional_share_refills_exactly():
    lim = limiter("quantized", rpm=90)  # 1.5 per second, capacity 1.5
    assert lim.acquire(1, now=0.0).admitted  # level 0.5
    refused = lim.acquire(1, now=0.0)
    assert refused.retry_at == float(Fraction(1, 3)) or refused.retry_at == math.nextafter(
        float(Fraction(1, 3)), math.inf
    )
    assert Fraction(refused.retry_at) >= Fraction(1, 3)
    assert lim.acquire(1, now=refused.retry_at).admitted


def test_quantized_minute_window_still_caps_the_minute():
    lim = limiter("quantized", rpm=120)  # 2 per second, burst 2
    admitted = []
    for i in range(120):  # t = 0, 0.5, ..., 59.5: the 121st attempt hits the minute
        t = i * 0.5
        if lim.acquire(1, now=t).admitted:
            admitted.append(t)
    minute = [t for t in admitted if t < 60.0]
    assert len(minute) == 120
    refused = lim.acquire(1, now=59.75)
    assert not refused.admitted
    assert refused.cause == "minute"
    assert refused.retry_at == 60.0  # the first entry leaves the minute window


def test_quantized_big_token_request_waits_for_a_full_share_and_leaves_a_debt():
    lim = limiter("quantized", tpm=6_000)  # 100 tokens per second, capacity 100
    assert lim.acquire(250, now=0.0).admitted  # full share: admitted, 150 in debt
    small = lim.acquire(1, now=0.0)
    assert not small.admitted
    assert small.cause == "per_second"
    assert small.retry_at == pytest.approx(1.51)
    assert Fraction(small.retry_at) >= Fraction(151, 100)
    big = lim.check(250, now=0.0)
    assert big.retry_at == 2.5  # needs the share full again
    assert not lim.check(250, now=before(2.5)).admitted
    assert lim.acquire(250, now=2.5).admitted


def test_quantized_request_larger_than_the_minute_limit_never_fits():
    decision = limiter("quantized", tpm=6_000).acquire(6_001)
    assert not decision.admitted
    assert math.isinf(decision.retry_after)


# -- token bucket: burst up to the limit, continuous refill ----------------------------------


def test_token_bucket_bursts_the_whole_limit_then_refills_continuously():
    lim = limiter("token_bucket", rpm=60)
    assert all(lim.acquire(1, now=0.0).admitted for _ in range(60))
    refused = lim.acquire(1, now=0.0)
    assert (refused.admitted, refused.cause, refused.retry_at) == (False, "minute", 1.0)
    assert not lim.acquire(1, now=before(1.0)).admitted
    assert lim.acquire(1, now=1.0).admitted
    # 30 s idle refills 30 requests, no more
    assert sum(lim.acquire(1, now=31.0).admitted for _ in range(40)) == 30


def test_token_bucket_tokens_refill_at_limit_over_sixty():
    lim = limiter("token_bucket", tpm=6_000)
    assert lim.acquire(6_000, now=0.0).admitted
    refused = lim.acquire(500, now=0.0)
    assert refused.retry_at == 5.0
    assert lim.acquire(500, now=5.0).admitted


def test_token_bucket_request_larger_than_the_bucket_never_fits():
    decision = limiter("token_bucket", tpm=100).acquire(90, 20)
    assert math.isinf(decision.retry_after)


def test_zero_limit_refuses_everything_in_every_mode():
    for mode in ("sliding", "token_bucket", "quantized"):
        decision = limiter(mode, rpm=0).acquire(1)
        assert not decision.admitted, mode
        assert math.isinf(decision.retry_after), mode


# -- headers: remaining is what fits now, reset is back to full ------------------------------


def test_quantized_headers_report_the_minute_limit_as_providers_document_them():
    # "x-ratelimit-remaining-requests: the remaining number of requests that are permitted
    # before exhausting the rate limit" (OpenAI), on the per-minute scale; the per-second
    # share shows only in a 429's retry-after.
    lim = limiter("quantized", rpm=600)
    for _ in range(3):
        decision = lim.acquire(1, now=0.0)
    state = decision.windows["rpm"]
    assert (state.limit, state.remaining) == (600, 597)
    assert state.reset_after == 60.0  # the minute log empties last
    later = lim.state(now=0.5)["rpm"]
    assert later.remaining == 597
    assert later.reset_after == 59.5


def test_token_bucket_headers_report_level_and_refill_time():
    lim = limiter("token_bucket", rpm=60)
    for _ in range(30):
        decision = lim.acquire(1, now=0.0)
    assert decision.windows["rpm"].remaining == 30
    assert decision.windows["rpm"].reset_after == 30.0
    assert lim.state(now=15.0)["rpm"].remaining == 45


def test_remaining_headers_count_down_to_exactly_what_fits():
    # In a quantized limit the share binds first: remaining says what the minute allows.
    for mode in ("sliding", "token_bucket"):
        lim = limiter(mode, rpm=600)
        remaining = lim.state(now=0.0)["rpm"].remaining
        admitted = sum(lim.acquire(1, now=0.0).admitted for _ in range(1_000))
        assert admitted == remaining, mode


# -- failed requests count (OpenAI) -----------------------------------------------------------


def test_refused_request_counts_toward_the_minute_when_asked():
    lim = limiter("sliding", rpm=2)
    lim.acquire(1, now=0.0)
    lim.acquire(1, now=1.0)
    refused = lim.acquire(1, now=2.0, count_refusal=True)
    assert refused.charged
    assert refused.retry_at == 61.0  # the refusal itself occupies a slot until t=62
    assert lim.state(now=2.0)["rpm"].remaining == 0
    # resending early is refused and pushes the wait further
    early = lim.acquire(1, now=30.0, count_refusal=True)
    assert early.retry_at == 62.0
    assert not lim.acquire(1, now=before(62.0)).admitted
    assert lim.acquire(1, now=62.0).admitted


def test_without_counting_a_refusal_records_nothing():
    lim = limiter("sliding", rpm=2)
    lim.acquire(1, now=0.0)
    lim.acquire(1, now=1.0)
    refused = lim.acquire(1, now=2.0)
    assert not refused.charged
    assert refused.retry_at == 60.0


def test_refusal_in_a_quantized_limit_is_charged_to_the_minute_not_the_share():
    lim = limiter("quantized", rpm=120)  # 2 per second
    lim.acquire(1, now=0.0)
    lim.acquire(1, now=0.0)
    refused = lim.acquire(1, now=0.0, count_refusal=True)
    assert refused.charged
    assert refused.refused_by == "per_second"
    assert refused.retry_at == 0.5  # the share is not charged
    assert lim.state(now=0.0)["rpm"].remaining == 117  # the minute is: 3 of 120


def test_request_that_can_never_fit_is_not_charged():
    lim = limiter("sliding", tpm=100)
    refused = lim.acquire(200, count_refusal=True)
    assert not refused.charged
    assert lim.state()["tpm"].remaining == 100


def test_token_bucket_refusal_charge_drives_the_bucket_into_debt():
    lim = limiter("token_bucket", rpm=60)
    for _ in range(60):
        lim.acquire(1, now=0.0)
    refused = lim.acquire(1, now=0.0, count_refusal=True)
    assert refused.retry_at == 2.0
    assert lim.acquire(1, now=2.0).admitted


# -- output counted at completion (Anthropic OTPM) --------------------------------------------


def test_output_counted_at_completion_ignores_max_tokens_and_counts_real_output():
    lim = ProviderLimiter(mode="sliding", otpm=100, output_at="completion", clock=lambda: 0.0)
    assert lim.acquire(10, now=0.0).admitted
    lim.record_output(99, now=1.0)
    assert lim.acquire(10, now=2.0).admitted  # one token of room is enough to start
    lim.record_output(30, now=3.0)  # a running answer may overdraw the minute
    refused = lim.acquire(10, now=4.0)
    assert not refused.admitted
    assert refused.binding.window == "otpm"
    assert refused.retry_at == 61.0  # the 99 leave; 30 remain, room again
    assert lim.acquire(10, now=61.0).admitted


def test_record_output_is_a_no_op_when_output_counts_at_admission():
    lim = ProviderLimiter(mode="sliding", tpm=100, clock=lambda: 0.0)
    lim.record_output(1_000)
    assert lim.state()["tpm"].remaining == 100


def test_output_at_completion_also_reaches_the_combined_token_window():
    lim = ProviderLimiter(mode="sliding", tpm=100, output_at="completion", clock=lambda: 0.0)
    assert lim.acquire(40, 0, now=0.0).admitted
    lim.record_output(50, now=0.0)
    assert lim.state(now=0.0)["tpm"].remaining == 10


# -- the sliding log is unchanged -------------------------------------------------------------


def test_sliding_window_limiter_is_the_sliding_mode():
    lim = SlidingWindowLimiter(rpm=2, clock=lambda: 0.0)
    assert lim.mode == "sliding"
    assert [lim.acquire(1, now=0.0).admitted for _ in range(3)] == [True, True, False]
    assert lim.acquire(1, now=0.0).retry_at == 60.0


def test_day_windows_stay_sliding_logs_in_every_mode():
    for mode in ("token_bucket", "quantized"):
        lim = limiter(mode, rpd=2)
        assert lim.acquire(1, now=0.0).admitted
        assert lim.acquire(1, now=10.0).admitted
        refused = lim.acquire(1, now=20.0)
        assert (refused.cause, refused.retry_at) == ("day", 86_400.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "fixed"}, ValueError, "mode"),
        ({"output_at": "later"}, ValueError, "output_at"),
        ({"rpm": -1}, ValueError, "rpm"),
        ({"tpm": 1.5}, TypeError, "tpm"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        ProviderLimiter(**kwargs)
