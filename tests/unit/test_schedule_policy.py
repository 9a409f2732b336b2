"""The pure scheduling policy: one test per semantic rule of the design."""

from __future__ import annotations

import itertools
import math

import pytest

from llm_routing.catalog.spec import Limits
from llm_routing.schedule import policy
from llm_routing.schedule.policy import (
    DAY_S,
    NEVER_TOO_LARGE,
    ModelState,
    RateLimitHeaders,
    RateLimits,
    Request,
    admit,
    cooldown,
    correct,
    decide,
    project,
    release,
    settle,
    snapshot,
)

_ids = itertools.count()
NOTHING = Request(0, 0)


def take(state: ModelState, limits: RateLimits, now: float, request: Request = NOTHING):
    """Decide and, when admitted, reserve; returns (decision, rid or None)."""
    decision = decide(state, limits, now, request)
    if not decision.admit:
        return decision, None
    rid = f"r{next(_ids)}"
    admit(state, limits, decision.at, request, rid)
    return decision, rid


def fill(state, limits, now, n, request=NOTHING):
    rids = []
    for _ in range(n):
        decision, rid = take(state, limits, now, request)
        assert decision.admit
        rids.append(rid)
    return rids


# --------------------------------------------------------------------------- limits


def test_default_headroom_is_a_margin_of_two_requests_and_two_percent_of_tokens():
    limits = RateLimits(rpm=500, tpm=200_000, itpm=50_000, otpm=10_000)
    assert (limits.request_margin, limits.token_headroom) == (2, 0.02)
    assert limits.effective_rpm == 498
    assert limits.effective_tpm == 196_000
    assert limits.effective_itpm == 49_000
    assert limits.effective_otpm == 9_800


def test_request_margin_never_leaves_less_than_one_request():
    assert RateLimits(rpm=1).effective_rpm == 1
    assert RateLimits(rpm=3, request_margin=10).effective_rpm == 1


def test_token_headroom_never_rounds_a_usable_limit_to_zero():
    assert RateLimits(tpm=1).effective_tpm == 1
    assert RateLimits(tpm=0).effective_tpm == 0


def test_none_means_unlimited():
    limits = RateLimits()
    assert limits.is_unlimited()
    assert limits.effective_rpm is None and limits.effective_tpm is None
    state = ModelState()
    fill(state, limits, 0.0, 5_000, Request(10**9, 10**9))
    assert not RateLimits(rpm=10).is_unlimited()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rpm": 0}, "rpm"),
        ({"rpm": -5}, "rpm"),
        ({"rpd": 0}, "rpd"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"tpm": -1}, "tpm"),
        ({"itpm": -1}, "itpm"),
        ({"request_margin": -1}, "request_margin"),
        ({"token_headroom": 1.0}, "token_headroom"),
        ({"token_headroom": -0.1}, "token_headroom"),
        ({"day": "weekly"}, "day"),
        ({"day_start_utc_s": 86_400}, "day_start_utc_s"),
        ({"window_s": 0}, "window_s"),
        ({"window_s": math.inf}, "window_s"),
    ],
)
def test_invalid_limits_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        RateLimits(**kwargs)


@pytest.mark.parametrize("kwargs", [{"rpm": 1.5}, {"tpm": True}, {"smoothing": "yes"}])
def test_limits_of_the_wrong_type_raise_type_error(kwargs):
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        RateLimits(**kwargs)


def test_from_limits_takes_the_catalogue_figures_and_scheduling_options():
    published = Limits(rpm=500, tpm=30_000, rpd=10_000, itpm=None, otpm=None, tpd=90_000)
    limits = RateLimits.from_limits(published, margin=5, headroom=0.1, smoothing=True)
    assert (limits.rpm, limits.tpm, limits.rpd) == (500, 30_000, 10_000)
    assert (limits.effective_rpm, limits.effective_tpm) == (495, 27_000)
    assert limits.smoothing


def test_from_limits_rejects_an_unknown_option_by_name():
    with pytest.raises(TypeError, match="burst"):
        RateLimits.from_limits(Limits(rpm=10), burst=3)


def test_requests_must_be_non_negative_ints():
    with pytest.raises(ValueError, match="input_tokens"):
        Request(-1, 0)
    with pytest.raises(TypeError, match="output_tokens"):
        Request(0, 1.5)  # type: ignore[arg-type]
    assert Request(3, 4).tokens == 7


# --------------------------------------------------------------------------- rpm


def test_rpm_admits_the_effective_limit_then_waits_for_the_oldest_to_leave():
    limits = RateLimits(rpm=5, request_margin=1)
    state = ModelState()
    fill(state, limits, 10.0, 2)
    fill(state, limits, 20.0, 2)
    decision = decide(state, limits, 30.0, NOTHING)
    assert not decision.admit
    assert (decision.at, decision.binding, decision.quota) == (70.0, "rpm", False)


def test_a_window_is_half_open_an_entry_stops_counting_exactly_window_s_later():
    limits = RateLimits(rpm=1, request_margin=0)
    state = ModelState()
    fill(state, limits, 0.0, 1)
    assert not decide(state, limits, math.nextafter(60.0, 0.0), NOTHING).admit
    assert decide(state, limits, 60.0, NOTHING).admit


def test_a_shrunk_window_is_honoured():
    limits = RateLimits(rpm=2, request_margin=0, window_s=1.0)
    state = ModelState()
    fill(state, limits, 0.0, 2)
    assert decide(state, limits, 0.5, NOTHING).at == 1.0


# --------------------------------------------------------------------------- tokens


def test_tpm_counts_reserved_input_plus_output_tokens():
    limits = RateLimits(tpm=1_000, token_headroom=0)
    state = ModelState()
    fill(state, limits, 0.0, 1, Request(300, 300))
    fill(state, limits, 5.0, 1, Request(200, 100))
    decision = decide(state, limits, 6.0, Request(100, 1))
    assert (decision.admit, decision.at, decision.binding) == (False, 60.0, "tpm")
    assert decide(state, limits, 6.0, Request(100, 0)).admit


def test_tpm_wait_ends_when_enough_tokens_have_left_not_just_the_first_entry():
    limits = RateLimits(tpm=1_000, token_headroom=0)
    state = ModelState()
    fill(state, limits, 0.0, 1, Request(100, 0))
    fill(state, limits, 10.0, 1, Request(100, 0))
    fill(state, limits, 20.0, 1, Request(800, 0))
    assert decide(state, limits, 21.0, Request(300, 0)).at == 80.0


def test_the_wait_ends_when_exactly_enough_tokens_have_left():
    limits = RateLimits(tpm=1_000, token_headroom=0)
    state = ModelState()
    fill(state, limits, 0.0, 1, Request(299, 0))
    fill(state, limits, 10.0, 1, Request(1, 0))
    fill(state, limits, 20.0, 1, Request(700, 0))
    assert decide(state, limits, 21.0, Request(300, 0)).at == 70.0
    assert decide(state, limits, 21.0, Request(299, 0)).at == 60.0


def test_lowering_the_limit_mid_window_waits_until_enough_requests_left():
    state = ModelState()
    fill(state, RateLimits(rpm=3, request_margin=0), 0.0, 1)
    fill(state, RateLimits(rpm=3, request_margin=0), 10.0, 1)
    fill(state, RateLimits(rpm=3, request_margin=0), 20.0, 1)
    assert decide(state, RateLimits(rpm=2, request_margin=0), 21.0, NOTHING).at == 70.0


def test_provider_usage_beyond_our_margin_needs_several_entries_to_leave():
    limits = RateLimits(rpm=5, request_margin=2)  # 3 for us, the provider allows 5
    state = ModelState()
    fill(state, limits, 0.0, 1)
    fill(state, limits, 10.0, 1)
    fill(state, limits, 20.0, 1)
    correct(state, limits, 20.0, RateLimitHeaders(remaining_requests=0, reset_requests_s=1_000.0))
    # 5 counted (3 ours + 2 reported until 1,020): 3 must leave before one more fits under 3,
    # and ours leave first, at 60, 70 and 80.
    assert decide(state, limits, 21.0, NOTHING).at == 80.0


def test_itpm_and_otpm_bind_separately():
    limits = RateLimits(itpm=1_000, otpm=100, token_headroom=0)
    state = ModelState()
    fill(state, limits, 0.0, 1, Request(900, 10))
    fill(state, limits, 1.0, 1, Request(10, 90))
    by_input = decide(state, limits, 2.0, Request(200, 0))
    by_output = decide(state, limits, 2.0, Request(0, 15))
    assert (by_input.binding, by_input.at) == ("itpm", 60.0)
    assert (by_output.binding, by_output.at) == ("otpm", 61.0)
    assert decide(state, limits, 2.0, Request(90, 0)).admit


@pytest.mark.parametrize(
    ("limits", "request_", "binding"),
    [
        (RateLimits(tpm=1_000), Request(900, 200), "tpm"),
        (RateLimits(itpm=1_000), Request(1_000, 0), "itpm"),
        (RateLimits(otpm=100, token_headroom=0), Request(0, 101), "otpm"),
        (RateLimits(tpm=0), Request(0, 1), "tpm"),
    ],
)
def test_a_request_larger_than_a_token_limit_can_never_be_admitted(limits, request_, binding):
    decision = decide(ModelState(), limits, 0.0, request_)
    assert decision.never == NEVER_TOO_LARGE
    assert (decision.admit, decision.at, decision.binding) == (False, math.inf, binding)


def test_a_request_exactly_at_the_effective_limit_fits_an_empty_window():
    limits = RateLimits(tpm=1_000)
    assert decide(ModelState(), limits, 0.0, Request(980, 0)).admit


# --------------------------------------------------------------------------- rpd


def test_rpd_rolling_counts_the_last_24_hours_and_reports_quota():
    limits = RateLimits(rpd=3)
    state = ModelState()
    fill(state, limits, 100.0, 1)
    fill(state, limits, 5_000.0, 2)
    decision = decide(state, limits, 50_000.0, NOTHING)
    assert (decision.admit, decision.binding, decision.quota) == (False, "rpd", True)
    assert decision.at == 100.0 + DAY_S
    assert decide(state, limits, 100.0 + DAY_S, NOTHING).admit


def test_rpd_is_not_reduced_by_the_request_margin():
    limits = RateLimits(rpd=3, request_margin=2)
    state = ModelState()
    fill(state, limits, 0.0, 3)
    assert decide(state, limits, 1.0, NOTHING).binding == "rpd"


def test_rpd_calendar_resets_at_the_configured_utc_day_start():
    # Clock time 0 is 1970-01-02 00:00 UTC; days start at 06:00 UTC.
    limits = RateLimits(rpd=2, day="calendar", day_start_utc_s=6 * 3600)
    state = ModelState(epoch_offset=DAY_S)
    fill(state, limits, 3 * 3600, 2)  # 03:00, the day that started yesterday 06:00
    decision = decide(state, limits, 4 * 3600, NOTHING)
    assert (decision.binding, decision.quota, decision.at) == ("rpd", True, 6 * 3600)
    assert decide(state, limits, 6 * 3600, NOTHING).admit
    fill(state, limits, 6 * 3600, 2)
    assert decide(state, limits, 20 * 3600, NOTHING).at == 6 * 3600 + DAY_S


def test_rpd_calendar_release_gives_the_slot_back_the_same_day():
    limits = RateLimits(rpd=1, day="calendar")
    state = ModelState()
    (rid,) = fill(state, limits, 10.0, 1)
    assert release(state, rid)
    assert decide(state, limits, 11.0, NOTHING).admit


def test_rpd_wins_a_tie_with_the_minute_limit_so_quota_is_reported():
    limits = RateLimits(rpm=1, request_margin=0, rpd=1, window_s=DAY_S)
    state = ModelState()
    fill(state, limits, 0.0, 1)
    assert decide(state, limits, 1.0, NOTHING).quota


# --------------------------------------------------------------------------- concurrency


def test_concurrency_blocks_with_an_unknown_time_until_a_settle_or_release():
    limits = RateLimits(max_concurrency=2)
    state = ModelState()
    first, second = fill(state, limits, 0.0, 2)
    decision = decide(state, limits, 1.0, NOTHING)
    assert (decision.admit, decision.at, decision.binding) == (False, math.inf, "concurrency")
    assert settle(state, limits, 2.0, first, 0, 0) is True
    assert decide(state, limits, 2.0, NOTHING).admit
    fill(state, limits, 2.0, 1)
    assert release(state, second) is True
    assert decide(state, limits, 3.0, NOTHING).admit


def test_a_time_limit_is_reported_before_a_full_concurrency_limit():
    limits = RateLimits(rpm=1, request_margin=0, max_concurrency=1)
    state = ModelState()
    fill(state, limits, 0.0, 1)
    decision = decide(state, limits, 1.0, NOTHING)
    assert (decision.binding, decision.at) == ("rpm", 60.0)


def test_projections_ignore_concurrency():
    limits = RateLimits(max_concurrency=1)
    state = ModelState()
    fill(state, limits, 0.0, 1)
    assert decide(state, limits, 0.0, NOTHING, concurrency=False).admit


# --------------------------------------------------------------------------- cooldown, smoothing


def test_cooldown_admits_nobody_before_its_end_and_never_shortens():
    limits = RateLimits(rpm=100)
    state = ModelState()
    cooldown(state, 30.0)
    cooldown(state, 10.0)
    decision = decide(state, limits, 5.0, NOTHING)
    assert (decision.admit, decision.at, decision.binding) == (False, 30.0, "cooldown")
    assert decide(state, limits, 30.0, NOTHING).admit


def test_cooldown_rejects_nan():
    with pytest.raises(ValueError, match="nan"):
        cooldown(ModelState(), math.nan)


def test_smoothing_spaces_admissions_by_window_over_effective_rpm():
    limits = RateLimits(rpm=62, smoothing=True)  # 60 per minute: one per second
    state = ModelState()
    fill(state, limits, 10.0, 1)
    decision = decide(state, limits, 10.2, NOTHING)
    assert (decision.at, decision.binding) == (11.0, "pace_rpm")
    assert decide(state, limits, 11.0, NOTHING).admit


def test_without_smoothing_a_burst_up_to_the_limit_is_admitted_at_once():
    limits = RateLimits(rpm=62)
    fill(ModelState(), limits, 10.0, 60)


def test_token_pacing_holds_the_next_admission_by_its_tokens_at_the_per_second_rate():
    limits = RateLimits(tpm=6_000, token_headroom=0, smoothing=True)  # 100 tokens per second
    state = ModelState()
    take(state, limits, 0.0, Request(150, 50))
    decision = decide(state, limits, 0.5, Request(10, 0))
    # Due at 2.0 s, less the credit: half of what the provider's one-second bucket (100
    # tokens) holds beyond this request, 0.5 * 90 / 100 s.
    assert (decision.admit, decision.at, decision.binding) == (False, 1.55, "pace_tpm")
    assert decide(state, limits, 1.55, Request(10, 0)).admit
    # A request of a whole second's share gets no credit.
    assert decide(state, limits, 1.55, Request(100, 0)).at == 2.0


def test_itpm_pacing_counts_input_tokens_only():
    limits = RateLimits(itpm=6_000, token_headroom=0, smoothing=True)
    state = ModelState()
    take(state, limits, 0.0, Request(300, 5_000))
    decision = decide(state, limits, 1.0, NOTHING)
    assert (decision.at, decision.binding) == (3.0 - 0.5, "pace_itpm")  # less the credit


def test_pacing_never_refuses_a_request_larger_than_one_seconds_share():
    # 5,000 tokens is 50 s of a 6,000 TPM: admitted now, and the next one waits those 50 s.
    limits = RateLimits(tpm=6_000, token_headroom=0, smoothing=True)
    state = ModelState()
    assert decide(state, limits, 0.0, Request(5_000, 0)).admit
    take(state, limits, 0.0, Request(5_000, 0))
    assert decide(state, limits, 0.0, Request(100, 0)).at == 50.0


def test_after_a_cooldown_pacing_resumes_at_the_rate_not_in_a_burst():
    limits = RateLimits(rpm=62, tpm=6_000, token_headroom=0, smoothing=True)
    state = ModelState()
    cooldown(state, 30.0)
    assert decide(state, limits, 10.0, NOTHING).at == 30.0
    take(state, limits, 30.0, Request(50, 0))
    decision = decide(state, limits, 30.0, Request(50, 0))
    # One request a second, stretched by half after the 429 that caused the cooldown.
    assert (decision.at, decision.binding) == (31.5, "pace_rpm")


def test_a_new_429_episode_stretches_the_pace_once_and_admissions_give_it_back():
    limits = RateLimits(rpm=62, smoothing=True)  # one request a second
    state = ModelState()
    take(state, limits, 0.0)
    cooldown(state, 1.0)
    cooldown(state, 1.2)  # the same episode: the first cooldown is not over yet
    assert state.pace_slow == 1.5
    now = 1.2
    for _ in range(200):
        now = decide(state, limits, now, NOTHING).at
        take(state, limits, now)
    assert state.pace_slow == 1.0
    take_at = decide(state, limits, now, NOTHING).at
    assert take_at - now == 1.0  # back to the full rate
    state.high = 500.0  # time has passed the cooldown: a new 429 is a new episode
    for until in (501.0, 502.0, 503.0, 504.0, 505.0):
        state.high = until
        cooldown(state, until + 0.5)
    assert state.pace_slow == 4.0  # capped


def test_a_projection_of_the_queue_ahead_paces_tokens_too():
    limits = RateLimits(tpm=6_000, token_headroom=0, smoothing=True)
    state = ModelState()
    ahead = [Request(100, 0), Request(200, 0)]
    decision = project(state, limits, 0.0, ahead, Request(10, 0))
    # 100 + 200 tokens at 100/s, less the credit of the 10 tokens asked (0.5 * 90 / 100 s).
    assert (decision.admit, decision.at) == (False, 2.55)


# --------------------------------------------------------------------------- settle, release


def test_settle_with_fewer_tokens_frees_capacity_and_returns_true():
    limits = RateLimits(tpm=1_000, token_headroom=0)
    state = ModelState()
    (rid,) = fill(state, limits, 0.0, 1, Request(100, 900))
    assert decide(state, limits, 1.0, Request(500, 0)).at == 60.0
    assert settle(state, limits, 2.0, rid, 100, 50) is True
    assert decide(state, limits, 2.0, Request(500, 0)).admit


def test_settle_with_more_tokens_counts_them_and_later_requests_wait_longer():
    limits = RateLimits(tpm=1_000, token_headroom=0)
    state = ModelState()
    (rid,) = fill(state, limits, 0.0, 1, Request(100, 100))
    fill(state, limits, 10.0, 1, Request(100, 0))
    assert settle(state, limits, 11.0, rid, 100, 1_500) is False
    assert snapshot(state, 11.0)["tokens_in_window"] == 1_700
    assert decide(state, limits, 12.0, Request(0, 0)).at == 60.0
    assert decide(state, limits, 60.0, Request(900, 0)).admit


def test_settle_twice_never_double_counts():
    limits = RateLimits(tpm=1_000, token_headroom=0)
    state = ModelState()
    (rid,) = fill(state, limits, 0.0, 1, Request(100, 400))
    assert settle(state, limits, 1.0, rid, 100, 100) is True
    assert settle(state, limits, 1.0, rid, 100, 100) is False
    assert settle(state, limits, 1.0, "unknown", 1, 1) is False
    assert snapshot(state, 1.0)["tokens_in_window"] == 200


def test_settle_rejects_negative_usage():
    state = ModelState()
    (rid,) = fill(state, RateLimits(), 0.0, 1)
    with pytest.raises(ValueError, match="output_tokens"):
        settle(state, RateLimits(), 0.0, rid, 0, -1)


def test_settle_after_the_window_passed_frees_no_tokens():
    limits = RateLimits(tpm=1_000)
    state = ModelState()
    (rid,) = fill(state, limits, 0.0, 1, Request(100, 100))
    assert settle(state, limits, 90.0, rid, 1, 1) is False
    assert snapshot(state, 90.0)["tokens_in_window"] == 0


def test_release_without_keep_request_removes_the_request_and_its_tokens():
    limits = RateLimits(rpm=1, request_margin=0, tpm=1_000, token_headroom=0)
    state = ModelState()
    (rid,) = fill(state, limits, 0.0, 1, Request(500, 500))
    assert release(state, rid) is True
    assert decide(state, limits, 1.0, Request(500, 500)).admit
    assert release(state, rid) is False


def test_release_with_keep_request_keeps_the_request_but_returns_the_tokens():
    limits = RateLimits(rpm=2, request_margin=0, tpm=1_000, token_headroom=0)
    state = ModelState()
    (rid,) = fill(state, limits, 0.0, 1, Request(500, 500))
    assert release(state, rid, keep_request=True)
    fill(state, limits, 1.0, 1, Request(500, 500))
    decision = decide(state, limits, 2.0, NOTHING)
    assert (decision.binding, decision.at) == ("rpm", 60.0)


def test_release_of_a_day_entry_returns_the_daily_slot():
    limits = RateLimits(rpd=1)
    state = ModelState()
    (rid,) = fill(state, limits, 0.0, 1)
    release(state, rid)
    assert decide(state, limits, 1.0, NOTHING).admit


def test_admitting_an_id_twice_is_refused():
    state = ModelState()
    admit(state, RateLimits(), 0.0, NOTHING, "same")
    with pytest.raises(ValueError, match="same"):
        admit(state, RateLimits(), 0.0, NOTHING, "same")


def test_time_going_backwards_is_treated_as_now():
    limits = RateLimits(rpm=1, request_margin=0)
    state = ModelState()
    fill(state, limits, 100.0, 1)
    assert decide(state, limits, 50.0, NOTHING).at == 160.0


# --------------------------------------------------------------------------- correct


def test_correct_adds_usage_the_provider_saw_from_others_until_its_reset():
    limits = RateLimits(rpm=10, request_margin=0)
    state = ModelState()
    fill(state, limits, 0.0, 2)
    correct(state, limits, 1.0, RateLimitHeaders(remaining_requests=3, reset_requests_s=5.0))
    assert snapshot(state, 1.0)["requests_in_window"] == 7
    fill(state, limits, 1.0, 3)
    decision = decide(state, limits, 1.0, NOTHING)
    assert (decision.binding, decision.at) == ("rpm", 6.0)
    assert decide(state, limits, 6.0, NOTHING).admit


def test_correct_never_loosens_our_own_view():
    limits = RateLimits(rpm=10, request_margin=0, tpm=1_000, token_headroom=0)
    state = ModelState()
    fill(state, limits, 0.0, 10, Request(50, 50))
    correct(state, limits, 1.0, RateLimitHeaders(remaining_requests=10, remaining_tokens=1_000))
    assert decide(state, limits, 1.0, NOTHING).at == 60.0
    assert snapshot(state, 1.0)["tokens_in_window"] == 1_000


def test_correct_of_tokens_without_a_reset_lasts_one_window():
    limits = RateLimits(tpm=1_000, token_headroom=0)
    state = ModelState()
    correct(state, limits, 10.0, RateLimitHeaders(remaining_tokens=100))
    decision = decide(state, limits, 10.0, Request(200, 0))
    assert (decision.binding, decision.at) == ("tpm", 70.0)


def test_correct_does_not_double_count_on_a_repeated_header():
    limits = RateLimits(rpm=10, request_margin=0)
    state = ModelState()
    correct(state, limits, 0.0, RateLimitHeaders(remaining_requests=4, reset_requests_s=30))
    correct(state, limits, 1.0, RateLimitHeaders(remaining_requests=4, reset_requests_s=30))
    assert snapshot(state, 1.0)["requests_in_window"] == 6


def test_correct_checks_input_and_output_token_headers_against_itpm_and_otpm():
    limits = RateLimits(itpm=1_000, otpm=100, token_headroom=0)
    state = ModelState()
    correct(
        state, limits, 0.0, RateLimitHeaders(remaining_input_tokens=0, reset_input_tokens_s=2.0)
    )
    correct(
        state, limits, 0.0, RateLimitHeaders(remaining_output_tokens=50, reset_output_tokens_s=3.0)
    )
    assert decide(state, limits, 0.0, Request(1, 0)).at == 2.0
    assert decide(state, limits, 0.0, Request(0, 60)).at == 3.0


def test_correct_ignores_a_dimension_without_a_configured_limit():
    state = ModelState()
    correct(state, RateLimits(), 0.0, RateLimitHeaders(remaining_requests=0, remaining_tokens=0))
    assert decide(state, RateLimits(), 0.0, NOTHING).admit


@pytest.mark.parametrize(
    "kwargs",
    [{"remaining_requests": -1}, {"reset_tokens_s": math.inf}, {"remaining_tokens": math.nan}],
)
def test_bad_header_values_are_rejected_naming_them(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RateLimitHeaders(**kwargs)


def test_correct_takes_only_a_rate_limit_headers_value():
    with pytest.raises(TypeError, match="RateLimitHeaders"):
        correct(ModelState(), RateLimits(rpm=10), 0.0, {"remaining_requests": 0})


# --------------------------------------------------------------------------- memory, projection


def test_pruning_keeps_memory_flat_over_100k_admissions():
    limits = RateLimits(rpm=1_000, request_margin=0, tpm=10**6, rpd=10**7)
    state = ModelState()
    for i in range(100_000):
        now = i * 0.1  # 600 per minute
        decision, rid = take(state, limits, now, Request(10, 5))
        assert decision.admit
        settle(state, limits, now, rid, 10, 1)
    assert len(state.log) <= 601
    assert not state.inflight
    assert len(state.day_log) == 100_000  # all inside 24 h: the day log is bounded by rpd
    later = 100_000 * 0.1 + DAY_S
    decide(state, limits, later, NOTHING)
    assert len(state.log) == 0 and len(state.day_log) == 0
    assert (state.requests, state.tokens, state.day_requests) == (0, 0, 0)


def test_without_an_rpd_limit_no_day_log_is_kept():
    state = ModelState()
    fill(state, RateLimits(rpm=100), 0.0, 50)
    assert len(state.day_log) == 0


def test_projection_with_no_queue_ahead_is_the_decision():
    limits = RateLimits(rpm=1, request_margin=0)
    state = ModelState()
    fill(state, limits, 0.0, 1)
    assert project(state, limits, 1.0, [], NOTHING).at == 60.0


def test_projection_reports_a_request_that_can_never_fit_with_or_without_a_queue():
    limits = RateLimits(tpm=100)
    for pending in ([], [Request(1, 1)]):
        assert project(ModelState(), limits, 0.0, pending, Request(500, 0)).never == NEVER_TOO_LARGE


def test_projection_admits_the_queue_ahead_first_each_at_its_earliest_time():
    limits = RateLimits(rpm=2, request_margin=0)
    state = ModelState()
    fill(state, limits, 0.0, 2)
    pending = [Request(0, 0), Request(0, 0), Request(0, 0)]
    decision = project(state, limits, 1.0, pending, Request(0, 0))
    assert (decision.admit, decision.at, decision.binding) == (False, 120.0, "rpm")
    assert len(state.log) == 2  # the live state is untouched


def test_projection_skips_queued_requests_that_can_never_be_admitted():
    limits = RateLimits(rpm=1, request_margin=0, tpm=100, token_headroom=0)
    state = ModelState()
    decision = project(state, limits, 0.0, [Request(500, 0)], Request(10, 0))
    assert decision.at == 0.0


def _fresh_projection(state, limits, now, pending, request):
    copy = state.copy()
    return project(
        copy, limits, now, [Request(r.input_tokens, r.output_tokens) for r in pending], request
    )


def test_cached_projection_matches_a_fresh_one_through_admissions_and_settles():
    limits = RateLimits(rpm=5, request_margin=0, tpm=1_000, token_headroom=0)
    state = ModelState()
    rids = fill(state, limits, 0.0, 3, Request(100, 100))
    queue = [Request(50, 150) for _ in range(3)]
    for request in queue[1:]:
        project(state, limits, 0.0, queue[: queue.index(request)], request)
    settle(state, limits, 1.0, rids[0], 100, 10)
    newcomer = Request(100, 0)
    cached = project(state, limits, 1.0, queue, newcomer)
    assert cached == _fresh_projection(state, limits, 1.0, queue, newcomer)


def _joined(state, limits, now, size, request):
    """A queue built the way Admission builds one: each joiner projected on the queue ahead."""
    queue: list[Request] = []
    for _ in range(size):
        joiner = Request(request.input_tokens, request.output_tokens)
        project(state, limits, now, queue, joiner)
        queue.append(joiner)
    return queue


def test_a_long_cached_projection_stays_exact_when_the_head_is_admitted_on_time():
    limits = RateLimits(rpm=10, request_margin=0, tpm=10_000, token_headroom=0)
    state = ModelState()
    fill(state, limits, 0.0, 10, Request(100, 900))
    queue = _joined(state, limits, 0.0, 40, Request(100, 900))
    head = queue.pop(0)
    decision = decide(state, limits, 60.0, head)
    assert (decision.admit, decision.at) == (True, 60.0)
    admit(state, limits, 60.0, head, "head")
    # The cache followed the admission (the last joiner is still only a candidate on top).
    assert state.projection is not None and len(state.projection.pending) == 38
    newcomer = Request(100, 900)
    assert project(state, limits, 60.0, queue, newcomer) == _fresh_projection(
        state, limits, 60.0, queue, newcomer
    )


def test_a_long_cached_projection_is_never_earlier_than_a_fresh_one_after_settles():
    limits = RateLimits(rpm=10, request_margin=0, tpm=10_000, token_headroom=0)
    state = ModelState()
    rids = fill(state, limits, 0.0, 10, Request(100, 900))
    queue = _joined(state, limits, 0.0, 40, Request(100, 900))
    for rid in rids[:3]:
        settle(state, limits, 1.0, rid, 100, 100)
    newcomer = Request(2_000, 0)
    cached = project(state, limits, 1.0, queue, newcomer)
    fresh = _fresh_projection(state, limits, 1.0, queue, newcomer)
    assert state.projection is not None and state.projection.changes == 3
    assert cached.at >= fresh.at


def test_a_burst_of_1000_joiners_simulates_each_queued_request_about_once(monkeypatch):
    calls = 0
    original = policy._Projection.add

    def counting(self, request, at):
        nonlocal calls
        calls += 1
        return original(self, request, at)

    monkeypatch.setattr(policy._Projection, "add", counting)
    limits = RateLimits(rpm=100, tpm=100_000)
    state = ModelState()
    fill(state, limits, 0.0, 98, Request(10, 10))
    queue: list[Request] = [Request(10, 10)]
    for _ in range(999):
        joiner = Request(10, 10)
        decision = project(state, limits, 0.0, queue, joiner)
        assert decision.at > 0.0
        queue.append(joiner)
    assert calls < 2 * len(queue)


def test_a_projection_is_rebuilt_when_the_queue_changed_other_than_at_its_tail():
    limits = RateLimits(rpm=1, request_margin=0)
    state = ModelState()
    fill(state, limits, 0.0, 1)
    queue = [Request(0, 0) for _ in range(4)]
    assert project(state, limits, 0.0, queue, Request(0, 0)).at == 300.0
    del queue[1]  # a waiter in the middle was cancelled
    assert project(state, limits, 0.0, queue, Request(0, 0)).at == 240.0


def test_snapshot_reports_usage_cooldown_and_in_flight():
    limits = RateLimits(rpm=10, rpd=100)
    state = ModelState()
    fill(state, limits, 0.0, 2, Request(3, 4))
    cooldown(state, 50.0)
    snap = snapshot(state, 1.0)
    assert snap["requests_in_window"] == 2
    assert snap["tokens_in_window"] == 14
    assert snap["input_tokens_in_window"] == 6
    assert snap["requests_today"] == 2
    assert snap["cooldown_until"] == 50.0
    assert snap["in_flight"] == 2
    assert snapshot(state, 61.0)["cooldown_until"] is None


# --------------------------------------------------------------------------- answered_at


def test_a_request_answered_late_counts_until_its_answer_plus_the_window():
    limits = RateLimits(rpm=1, request_margin=0)
    state = ModelState()
    (rid,) = fill(state, limits, 0.0, 1)
    settle(state, limits, 5.0, rid, 0, 0, answered_at=5.0)
    assert decide(state, limits, 30.0, NOTHING).at == 65.0
    assert decide(state, limits, 65.0, NOTHING).admit


def test_answered_at_never_moves_a_request_earlier():
    limits = RateLimits(rpm=1, request_margin=0)
    state = ModelState()
    (rid,) = fill(state, limits, 10.0, 1)
    settle(state, limits, 10.0, rid, 0, 0, answered_at=3.0)
    assert decide(state, limits, 10.0, NOTHING).at == 70.0


def test_a_late_head_holds_the_entries_behind_it_which_only_over_counts():
    limits = RateLimits(rpm=2, request_margin=0)
    state = ModelState()
    first, second = fill(state, limits, 0.0, 2)
    settle(state, limits, 0.0, first, 0, 0, answered_at=20.0)
    settle(state, limits, 0.0, second, 0, 0)
    # "second" alone frees a slot at 60, but departures are walked in admission order: the
    # answer is the later 80, never earlier than the truth.
    assert decide(state, limits, 0.0, NOTHING).at == 80.0
    assert snapshot(state, 70.0)["requests_in_window"] == 2
    assert snapshot(state, 80.0)["requests_in_window"] == 0


def test_the_lua_policy_uses_the_same_pacing_constants():
    from llm_routing.schedule import policy
    from llm_routing.schedule._redis_script import POLICY_LUA

    slowdown = f"math.min({policy.PACE_SLOW_MAX!r}, st.pslow * {policy.PACE_SLOWDOWN!r})"
    assert slowdown in POLICY_LUA
    assert f"math.max(1.0, slow * {policy.PACE_RECOVERY!r})" in POLICY_LUA
    assert (
        f"return {policy.PACE_TOKEN_CREDIT!r} * math.max(0.0, math.max(1.0, rate) - cost)"
        in POLICY_LUA
    )


def test_paced_token_admissions_may_go_early_into_the_providers_bucket():
    # TPM 60,000 quantized: a per-second bucket of 1,000 tokens. Each request costs 100
    # tokens; paced at 98 % of the limit, one every 100 / 980 s. A request may go before its
    # pace by half of what the bucket holds beyond it: 0.5 * (1,000 - 100) / 1,000 s.
    limits = RateLimits(tpm=60_000, token_headroom=0.02, smoothing=True)
    step, credit = 100 / 980, 0.45
    request = Request(100, 0)

    def burst(state: ModelState, now: float) -> int:
        admitted = 0
        while decide(state, limits, now, request).admit:
            admit(state, limits, now, request, f"r{now}-{admitted}")
            admitted += 1
        return admitted

    state = ModelState()
    # From idle: 500 tokens at once, half the provider's bucket (the credit, plus one).
    assert burst(state, 0.0) == 1 + math.floor(credit / step) == 5
    assert decide(state, limits, 0.0, request).at == pytest.approx(5 * step - credit)
    # A wake-up late by less than the credit loses nothing: the pace is kept.
    pace = state.pace_tok
    assert burst(state, pace - credit + 0.3) == 3
    assert state.pace_tok == pytest.approx(pace + 3 * step)
    # After any lateness, no more than the credit's burst.
    assert burst(state, 60.0) == 5
    # A request of a whole second's share never goes early (the bucket must be full for it).
    big = Request(1_000, 0)
    state = ModelState()
    admit(state, limits, 0.0, big, "a")
    assert decide(state, limits, 0.0, big).at == pytest.approx(1_000 / 980)
