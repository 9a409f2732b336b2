"""Rate-limit headers read on each provider's own scale (``llm_routing.schedule.headers``)."""

from __future__ import annotations

from datetime import datetime

import pytest

from llm_routing.schedule.headers import error_headers, parse_ratelimit_headers
from sdk_errors import anthropic_error, openai_error

NOW = datetime.fromisoformat("2026-12-06T10:00:00Z").timestamp()


def test_openai_remaining_and_duration_resets():
    seen = parse_ratelimit_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-remaining-tokens": "199000.5",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        "openai",
    )
    assert (seen.remaining_requests, seen.reset_requests_s) == (499, 0.12)
    assert (seen.remaining_tokens, seen.reset_tokens_s) == (199_000, 360.0)


def test_anthropic_headers_with_rfc3339_resets_map_to_itpm_and_otpm():
    seen = parse_ratelimit_headers(
        {
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2026-12-06T10:00:01Z",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-input-tokens-reset": "2026-12-06T10:00:12.5+00:00",
            "anthropic-ratelimit-output-tokens-remaining": "7000",
            "anthropic-ratelimit-output-tokens-reset": "2026-12-06T10:00:06Z",
        },
        "anthropic",
        now_epoch=NOW,
    )
    assert (seen.remaining_requests, seen.reset_requests_s) == (49, 1.0)
    assert (seen.remaining_input_tokens, seen.reset_input_tokens_s) == (39_000, 12.5)
    assert (seen.remaining_output_tokens, seen.reset_output_tokens_s) == (7_000, 6.0)


def test_anthropic_reset_in_the_past_is_now():
    seen = parse_ratelimit_headers(
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2026-12-06T09:59:00Z",
        },
        "anthropic",
        now_epoch=NOW,
    )
    assert seen.reset_requests_s == 0.0


def test_groq_request_headers_are_per_day_and_stay_out_of_the_minute_view():
    headers = {
        "x-ratelimit-limit-requests": "14400",
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-remaining-tokens": "5800",
        "x-ratelimit-reset-tokens": "2s",
    }
    seen = parse_ratelimit_headers(headers, "groq")
    assert seen.remaining_requests is None
    assert (seen.remaining_tokens, seen.reset_tokens_s) == (5_800, 2.0)
    # The same names from OpenAI are per minute.
    assert parse_ratelimit_headers(headers, "openai").remaining_requests == 3


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-remaining-requests": "-1", "x-ratelimit-reset-requests": "1s"},
        {"x-ratelimit-remaining-requests": "inf", "x-ratelimit-reset-requests": "1s"},
        {"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "soon"},
        {
            "anthropic-ratelimit-requests-remaining": "5",
            "anthropic-ratelimit-requests-reset": "2026-12-06T10:00:01",  # no zone
        },
        {"anthropic-ratelimit-requests-remaining": "x", "anthropic-ratelimit-requests-reset": "y"},
        {},
    ],
)
def test_odd_headers_are_skipped_not_raised(headers):
    assert parse_ratelimit_headers(headers, "anthropic", now_epoch=NOW) is None


def test_error_headers_finds_each_providers_names_on_a_429():
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    anthropic_429 = anthropic_error(
        429,
        body,
        {
            "retry-after": "3",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2026-12-06T10:00:03Z",
        },
    )
    assert error_headers(anthropic_429) == {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-12-06T10:00:03Z",
    }
    openai_429 = openai_error(
        429,
        {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
        {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1s"},
    )
    assert error_headers(openai_429) == {
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1s",
    }
    assert error_headers(ValueError("no response")) is None
