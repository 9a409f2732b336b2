"""The max-wait rule on its own: ``plan`` maps (decision, now, deadline) to Admit, Sleep or Refuse.

Pure functions, so no clock, backend or queue: each test hands a `Decision` and reads the
step. The admission loop that follows these steps is tested in test_schedule_queue.py.
"""

from __future__ import annotations

import math

import pytest

from llm_routing import QuotaExceededError, RateLimitExhaustedError
from llm_routing.schedule.limits import NEVER_TOO_LARGE, Decision, RateLimits, Request
from llm_routing.schedule.plan import (
    Admit,
    Refuse,
    Sleep,
    Why,
    plan,
    plan_behind,
    refusal_at_join,
)

WHY = Why(
    "openai:gpt-4o-mini", RateLimits(rpm=10, tpm=1_000, rpd=100, max_concurrency=2), Request(10, 5)
)


def decision(at: float, binding: str | None = "rpm", *, quota: bool = False) -> Decision:
    return Decision(False, at, binding, None, quota)


def test_an_admitted_decision_is_admitted():
    admitted = Decision(True, 5.0, None, None, False)
    assert plan(admitted, 5.0, 10.0, math.inf, WHY) == Admit(admitted)


def test_the_head_sleeps_towards_the_admissible_time_within_the_deadline():
    assert plan(decision(7.0), 5.0, 10.0, math.inf, WHY) == Sleep(2.0, 7.0)


def test_admission_after_the_deadline_refuses_now_with_the_wait_it_would_take():
    step = plan(decision(30.0), 5.0, 10.0, math.inf, WHY)
    assert isinstance(step, Refuse)
    assert isinstance(step.error, RateLimitExhaustedError)
    assert step.error.wait_s == 25.0
    assert step.error.reason == "rpm"
    assert "past its max_wait (5.0s left)" in str(step.error)


def test_a_daily_limit_past_the_deadline_is_a_quota_refusal():
    step = plan(decision(3_600.0, "rpd", quota=True), 0.0, 90.0, math.inf, WHY)
    assert isinstance(step, Refuse)
    assert isinstance(step.error, QuotaExceededError)


def test_a_request_that_never_fits_is_refused_whatever_the_deadline():
    never = Decision(False, math.inf, "tpm", NEVER_TOO_LARGE, False)
    step = plan(never, 0.0, math.inf, math.inf, WHY)
    assert isinstance(step, Refuse)
    assert step.error.reason == "request larger than the limit"


def test_a_concurrency_wait_sleeps_to_the_deadline_or_a_lease_end_and_keeps_its_target():
    assert plan(decision(math.inf, "concurrency"), 5.0, 10.0, 7.5, WHY) == Sleep(5.0, 7.5)
    assert plan(decision(8.0, "concurrency"), 5.0, 10.0, 7.5, WHY) == Sleep(3.0, 7.5)


def test_a_concurrency_wait_at_its_deadline_times_out():
    step = plan(decision(math.inf, "concurrency"), 10.0, 10.0, math.inf, WHY)
    assert isinstance(step, Refuse)
    assert step.error.reason == "concurrency"
    assert "all 2 concurrent slots" in str(step.error)


def test_a_waiter_behind_the_head_sleeps_until_its_deadline_and_counts_only_when_refused():
    counted = []

    def ahead() -> int:
        counted.append(1)
        return 3

    assert plan_behind(4.0, 10.0, ahead, WHY) == Sleep(6.0, math.inf)
    assert counted == []
    step = plan_behind(10.0, 10.0, ahead, WHY)
    assert isinstance(step, Refuse)
    assert "3 request(s) were still queued ahead" in str(step.error)
    assert counted == [1]


def test_joining_refuses_at_once_when_the_queue_ahead_passes_the_deadline():
    assert refusal_at_join(decision(9.0), 0.0, 10.0, 4, WHY) is None
    step = refusal_at_join(decision(30.0), 0.0, 10.0, 4, WHY)
    assert isinstance(step, Refuse)
    assert "with 4 request(s) queued ahead" in str(step.error)
    quota = refusal_at_join(decision(30.0, "rpd", quota=True), 0.0, 10.0, 4, WHY)
    assert isinstance(quota, Refuse)
    assert isinstance(quota.error, QuotaExceededError)


@pytest.mark.parametrize("binding", ["tpm", "itpm", "otpm"])
def test_joining_with_a_request_that_never_fits_is_refused(binding):
    never = Decision(False, math.inf, binding, NEVER_TOO_LARGE, False)
    step = refusal_at_join(never, 0.0, math.inf, 0, WHY)
    assert isinstance(step, Refuse)
    assert "can never be scheduled" in str(step.error)
