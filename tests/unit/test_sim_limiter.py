from __future__ import annotations

import math

import pytest

from llm_routing.sim.limiter import SlidingWindowLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_unlimited_limiter_admits_everything():
    limiter = SlidingWindowLimiter()
    assert all(limiter.acquire(10_000, 10_000).admitted for _ in range(1_000))


def test_entry_stops_counting_exactly_one_period_later():
    clock = Clock()
    limiter = SlidingWindowLimiter(rpm=1, clock=clock)
    assert limiter.acquire(1).admitted
    clock.now += 59.999
    refused = limiter.acquire(1)
    assert not refused.admitted
    assert refused.retry_at == 1060.0
    clock.now = 1060.0
    assert limiter.acquire(1).admitted


def test_refusal_names_the_binding_window_and_its_numbers():
    limiter = SlidingWindowLimiter(rpm=10, tpm=100, clock=Clock())
    limiter.acquire(80, 10)
    decision = limiter.acquire(20)
    binding = decision.binding
    assert binding.window == "tpm"
    assert binding.kind == "tokens"
    assert (binding.limit, binding.used, binding.requested) == (100, 90, 20)
    assert decision.retry_after == pytest.approx(60.0)


def test_refused_request_records_nothing():
    clock = Clock()
    limiter = SlidingWindowLimiter(rpm=5, tpm=100, clock=clock)
    limiter.acquire(90)
    assert not limiter.acquire(50).admitted
    assert limiter.state()["rpm"].remaining == 4
    assert limiter.state()["tpm"].remaining == 10


def test_request_bigger_than_the_window_can_never_fit():
    decision = SlidingWindowLimiter(tpm=100, clock=Clock()).acquire(90, 20)
    assert not decision.admitted
    assert math.isinf(decision.retry_after)


def test_separate_input_and_output_windows():
    limiter = SlidingWindowLimiter(itpm=100, otpm=10, clock=Clock())
    assert limiter.acquire(50, 10).admitted
    decision = limiter.acquire(10, 1)
    assert not decision.admitted
    assert decision.binding.window == "otpm"


def test_reset_after_is_when_the_newest_entry_expires():
    clock = Clock()
    limiter = SlidingWindowLimiter(rpm=5, clock=clock)
    limiter.acquire(1)
    clock.now += 20
    limiter.acquire(1)
    assert limiter.state()["rpm"].reset_after == pytest.approx(60.0)
    clock.now += 30
    assert limiter.state()["rpm"].reset_after == pytest.approx(30.0)


def test_check_does_not_record():
    limiter = SlidingWindowLimiter(rpm=1, clock=Clock())
    assert limiter.check(1).admitted
    assert limiter.check(1).admitted
    assert limiter.acquire(1).admitted
    assert not limiter.check(1).admitted


def test_reset_forgets_every_request():
    limiter = SlidingWindowLimiter(rpm=1, clock=Clock())
    limiter.acquire(1)
    limiter.reset()
    assert limiter.acquire(1).admitted


def test_clock_going_backwards_is_treated_as_standing_still():
    clock = Clock()
    limiter = SlidingWindowLimiter(rpm=1, clock=clock)
    limiter.acquire(1)
    clock.now -= 100
    assert limiter.acquire(1).now == 1000.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"rpm": -1}, ValueError),
        ({"tpm": 1.5}, TypeError),
        ({"rpd": True}, TypeError),
        ({"clock": 3}, TypeError),
    ],
)
def test_bad_limits_are_rejected_with_the_argument_named(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        SlidingWindowLimiter(**kwargs)


def test_negative_token_counts_are_rejected():
    with pytest.raises(ValueError, match="input_tokens"):
        SlidingWindowLimiter().acquire(-1)
