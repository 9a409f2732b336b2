"""classify() and retry_after() against the real exception classes of the SDKs we support."""

from __future__ import annotations

import email.utils
import json
import pickle

import anthropic
import httpx
import openai
import pytest
from google.genai import errors as genai_errors
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelRateLimitError,
)

from llm_routing import (
    FALLBACK_ERRORS,
    AllModelsFailedError,
    BudgetExceededError,
    ContextLengthExceededError,
    ErrorKind,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitExhaustedError,
    UnknownModelError,
    classify,
    retry_after,
)
from llm_routing.errors import malformed_response_error
from sdk_errors import anthropic_error, gemini_error, openai_error

NOW = 1_700_000_000.0


OPENAI_RATE_LIMIT = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min "
        "(TPM): Limit 200000, Used 199000, Requested 2000. Please try again in 300ms.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
OPENAI_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
OPENAI_CONTEXT = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


class TestClassifyOpenAI:
    def test_rate_limit_429_is_rate_limit(self):
        assert classify(openai_error(429, OPENAI_RATE_LIMIT)) is ErrorKind.RATE_LIMIT

    def test_insufficient_quota_429_is_quota_not_rate_limit(self):
        exc = openai_error(429, OPENAI_QUOTA)
        assert isinstance(exc, openai.RateLimitError)
        assert classify(exc) is ErrorKind.QUOTA

    def test_requests_per_day_limit_is_quota(self):
        body = {
            "error": {
                "message": "Rate limit reached for gpt-4o-mini on requests per day (RPD): "
                "Limit 10000, Used 10000, Requested 1.",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        }
        assert classify(openai_error(429, body)) is ErrorKind.QUOTA

    def test_context_length_exceeded_400_is_context(self):
        exc = openai_error(400, OPENAI_CONTEXT)
        assert isinstance(exc, openai.BadRequestError)
        assert classify(exc) is ErrorKind.CONTEXT

    def test_plain_bad_request_is_bad_request(self):
        body = {
            "error": {
                "message": "Invalid value for 'temperature'",
                "type": "invalid_request_error",
                "code": None,
            }
        }
        assert classify(openai_error(400, body)) is ErrorKind.BAD_REQUEST

    def test_unknown_model_404_is_bad_request(self):
        body = {"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}
        assert classify(openai_error(404, body)) is ErrorKind.BAD_REQUEST

    def test_invalid_key_401_is_auth(self):
        body = {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}
        assert classify(openai_error(401, body)) is ErrorKind.AUTH

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_server_errors_are_transient(self, status):
        body = {"error": {"message": "The server had an error", "type": "server_error"}}
        assert classify(openai_error(status, body)) is ErrorKind.TRANSIENT

    def test_timeout_is_transient(self):
        request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
        assert classify(openai.APITimeoutError(request=request)) is ErrorKind.TRANSIENT

    def test_connection_error_is_transient(self):
        request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
        assert classify(openai.APIConnectionError(request=request)) is ErrorKind.TRANSIENT


class TestClassifyAnthropic:
    def test_overloaded_529_is_transient(self):
        body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        assert classify(anthropic_error(529, body)) is ErrorKind.TRANSIENT

    def test_rate_limit_429_is_rate_limit(self):
        body = {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "This request would exceed the rate limit for your organization of "
                "50,000 input tokens per minute.",
            },
        }
        exc = anthropic_error(429, body, {"retry-after": "12"})
        assert classify(exc) is ErrorKind.RATE_LIMIT
        assert retry_after(exc) == 12.0

    def test_low_credit_balance_400_is_quota(self):
        body = {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "Your credit balance is too low to access the Anthropic API.",
            },
        }
        assert classify(anthropic_error(400, body)) is ErrorKind.QUOTA

    def test_prompt_too_long_is_context(self):
        body = {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 210000 tokens > 200000 maximum",
            },
        }
        assert classify(anthropic_error(400, body)) is ErrorKind.CONTEXT

    SPEND_LIMIT = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Your organization has reached its monthly spend limit.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }

    def test_spend_limit_429_is_quota_by_its_error_code(self):
        # Any SDK release: the plain RateLimitError, told apart by the body's error_code.
        exc = anthropic_error(429, self.SPEND_LIMIT)
        assert isinstance(exc, anthropic.RateLimitError)
        assert classify(exc) is ErrorKind.QUOTA
        assert retry_after(exc) is None

    def test_spend_limit_429_is_quota_by_the_sdks_own_class(self):
        cls = getattr(anthropic, "EnforcedSpendLimitReachedError", None)
        if cls is None:
            pytest.skip("this anthropic release has no spend-limit error class")
        assert classify(anthropic_error(429, self.SPEND_LIMIT, cls=cls)) is ErrorKind.QUOTA


def _gemini_429(retry_delay: str | None, quota_id: str) -> Exception:
    details: list[dict] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": quota_id,
                    "quotaValue": "10",
                }
            ],
        }
    ]
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    return gemini_error(
        429,
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED",
                "details": details,
            }
        },
    )


class TestClassifyGemini:
    def test_per_minute_resource_exhausted_is_rate_limit(self):
        exc = _gemini_429("37s", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
        assert classify(exc) is ErrorKind.RATE_LIMIT

    def test_per_day_resource_exhausted_is_quota(self):
        exc = _gemini_429(None, "GenerateRequestsPerDayPerProjectPerModel-FreeTier")
        assert classify(exc) is ErrorKind.QUOTA

    def test_retry_info_delay_is_read(self):
        exc = _gemini_429("37s", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
        assert retry_after(exc) == 37.0

    def test_fractional_retry_delay(self):
        exc = _gemini_429("1.5s", "GenerateContentInputTokensPerModelPerMinute-FreeTier")
        assert retry_after(exc) == 1.5

    def test_server_error_is_transient(self):
        exc = gemini_error(
            503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}}
        )
        assert isinstance(exc, genai_errors.ServerError)
        assert classify(exc) is ErrorKind.TRANSIENT


class TestClassifyLangChainAndBuiltins:
    def test_langchain_context_overflow(self):
        assert classify(ContextOverflowError("too long")) is ErrorKind.CONTEXT

    def test_langchain_rate_limit(self):
        assert classify(ModelRateLimitError("slow down")) is ErrorKind.RATE_LIMIT

    def test_langchain_api_error(self):
        assert classify(ModelAPIError("boom")) is ErrorKind.TRANSIENT

    def test_builtin_timeout_and_connection(self):
        assert classify(TimeoutError()) is ErrorKind.TRANSIENT
        assert classify(ConnectionResetError()) is ErrorKind.TRANSIENT

    def test_text_only_rate_limit(self):
        assert classify(RuntimeError("429 Too Many Requests")) is ErrorKind.RATE_LIMIT

    def test_text_only_unknown(self):
        assert classify(ValueError("something odd")) is ErrorKind.UNKNOWN

    def test_our_own_errors(self):
        assert classify(ContextLengthExceededError(None, 10, 5, model="m")) is ErrorKind.CONTEXT
        assert classify(RateLimitExhaustedError(model="m", wait_s=120)) is ErrorKind.RATE_LIMIT
        assert classify(QuotaExceededError(model="m")) is ErrorKind.QUOTA
        assert classify(ProviderUnavailableError(model="m", attempts=3)) is ErrorKind.TRANSIENT
        assert (
            classify(BudgetExceededError(budget_usd=1.0, spent_usd=0.9, requested_usd=0.2))
            is ErrorKind.BUDGET
        )

    def test_classify_never_raises_on_hostile_exception(self):
        class Hostile(Exception):
            def __str__(self):
                raise RuntimeError("no str for you")

            @property
            def status_code(self):
                raise RuntimeError("no status either")

        assert classify(Hostile()) is ErrorKind.UNKNOWN


class TestRetryAfter:
    def test_retry_after_seconds(self):
        exc = openai_error(429, OPENAI_RATE_LIMIT, {"retry-after": "20"})
        assert retry_after(exc) == 20.0

    def test_retry_after_ms_wins_over_seconds(self):
        exc = openai_error(429, OPENAI_RATE_LIMIT, {"retry-after": "1", "retry-after-ms": "350"})
        assert retry_after(exc) == pytest.approx(0.35)

    def test_retry_after_http_date(self):
        when = email.utils.formatdate(NOW + 42, usegmt=True)
        exc = openai_error(429, OPENAI_RATE_LIMIT, {"retry-after": when})
        assert retry_after(exc, now=NOW) == pytest.approx(42.0)

    def test_retry_after_http_date_in_the_past_is_zero(self):
        when = email.utils.formatdate(NOW - 10, usegmt=True)
        exc = openai_error(429, OPENAI_RATE_LIMIT, {"retry-after": when})
        assert retry_after(exc, now=NOW) == 0.0

    def test_x_ratelimit_reset_of_exhausted_dimension(self):
        headers = {
            "x-ratelimit-remaining-requests": "10",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "6m0s",
        }
        exc = openai_error(429, OPENAI_RATE_LIMIT, headers)
        assert retry_after(exc) == 360.0

    def test_message_hint_is_last_resort(self):
        exc = openai_error(429, OPENAI_RATE_LIMIT)
        assert retry_after(exc) == pytest.approx(0.3)

    def test_garbage_header_is_ignored(self):
        exc = openai_error(429, {"error": {"message": "slow down"}}, {"retry-after": "soon-ish"})
        assert retry_after(exc) is None

    def test_nothing_said_is_none(self):
        assert retry_after(ValueError("x")) is None

    def test_plain_dict_headers_are_case_insensitive(self):
        class WithHeaders(Exception):
            headers = {"Retry-After": "7"}

        assert retry_after(WithHeaders()) == 7.0


class TestTaxonomy:
    def test_context_error_is_langchain_context_overflow_and_carries_numbers(self):
        exc = ContextLengthExceededError(None, 152_311, 115_200, model="openai:gpt-4o-mini")
        assert isinstance(exc, ContextOverflowError)
        assert (exc.required_tokens, exc.max_tokens, exc.model) == (
            152_311,
            115_200,
            "openai:gpt-4o-mini",
        )
        assert "152,311" in str(exc) and "115,200" in str(exc)

    def test_seed_positional_form(self):
        exc = ContextLengthExceededError("too big", 10, 5)
        assert str(exc) == "too big" and exc.required_tokens == 10 and exc.max_tokens == 5

    def test_rate_limit_exhausted_is_not_retryable(self):
        exc = RateLimitExhaustedError(model="openai:gpt-4o-mini", wait_s=140.0, reason="tpm")
        assert isinstance(exc, ModelRateLimitError)
        assert exc.is_retryable is False
        assert "140.0s" in str(exc) and exc.reason == "tpm"

    def test_all_models_failed_names_every_attempt_and_is_runtime_error(self):
        exc = AllModelsFailedError(
            [
                (
                    "openai:gpt-4o-mini",
                    RateLimitExhaustedError(model="openai:gpt-4o-mini", wait_s=100),
                ),
                (
                    "anthropic:claude-haiku-4-5",
                    QuotaExceededError(model="anthropic:claude-haiku-4-5"),
                ),
            ]
        )
        assert isinstance(exc, RuntimeError)
        assert [a.model for a in exc.attempts] == [
            "openai:gpt-4o-mini",
            "anthropic:claude-haiku-4-5",
        ]
        assert [a.kind for a in exc.attempts] == [ErrorKind.RATE_LIMIT, ErrorKind.QUOTA]
        assert "openai:gpt-4o-mini: rate_limit" in str(exc)
        assert "anthropic:claude-haiku-4-5: quota" in str(exc)

    def test_unknown_model_error_is_value_error_with_readable_message(self):
        exc = UnknownModelError("unknown model 'x'; register it", model="x")
        assert isinstance(exc, ValueError) and isinstance(exc, LookupError)
        assert str(exc) == "unknown model 'x'; register it"

    @pytest.mark.parametrize(
        "exc",
        [
            ContextLengthExceededError(None, 10, 5, model="m"),
            RateLimitExhaustedError(model="m", wait_s=3.0, reason="rpm"),
            QuotaExceededError(model="m"),
            ProviderUnavailableError(model="m", attempts=2),
            BudgetExceededError(budget_usd=1.0, spent_usd=1.0, requested_usd=0.1),
            UnknownModelError("nope", model="m"),
            AllModelsFailedError([("m", QuotaExceededError(model="m"))]),
        ],
        ids=lambda e: type(e).__name__,
    )
    def test_errors_survive_pickling(self, exc):
        # Workers in other processes (multiprocessing, Celery) send these back to the parent.
        clone = pickle.loads(pickle.dumps(exc))
        assert type(clone) is type(exc) and str(clone) == str(exc)

    def test_fallback_errors_cover_our_fallback_kinds_and_not_bad_requests(self):
        for exc in (
            ContextLengthExceededError(None, 10, 5),
            RateLimitExhaustedError(),
            QuotaExceededError(),
            ProviderUnavailableError(),
            BudgetExceededError(),
            ModelRateLimitError("a model we did not wrap"),
        ):
            assert isinstance(exc, FALLBACK_ERRORS), type(exc)
        assert not isinstance(ValueError("bad"), FALLBACK_ERRORS)


def test_malformed_provider_json_is_transient():
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads("{not json")
    assert classify(info.value) is ErrorKind.TRANSIENT


def _decode_error() -> json.JSONDecodeError:
    try:
        json.loads("{not json")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("json.loads accepted '{not json'")


@pytest.mark.parametrize(("stream", "what"), [(True, "stream"), (False, "response")])
def test_malformed_json_becomes_a_fallback_worthy_provider_error(stream, what):
    original = _decode_error()
    error = malformed_response_error(original, model="openai:gpt-4o-mini", stream=stream)
    assert isinstance(error, ProviderUnavailableError)
    assert isinstance(error, FALLBACK_ERRORS)
    assert classify(error) is ErrorKind.TRANSIENT
    assert error.__cause__ is original
    assert error.model == "openai:gpt-4o-mini"
    assert str(error).startswith(
        f"openai:gpt-4o-mini sent a malformed {what}: not valid JSON (Expecting property name"
    )
    assert "the provider is at fault, not the request" in str(error)
    assert pickle.loads(pickle.dumps(error)).message == error.message


def test_openai_strict_validation_error_is_a_malformed_response():
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    original = openai.APIResponseValidationError(
        response=httpx.Response(200, request=request), body={"choices": "no"}
    )
    error = malformed_response_error(original)
    assert isinstance(error, ProviderUnavailableError)
    assert str(error).startswith(
        "the provider sent a malformed response: not the expected shape (Data returned by API"
    )
    assert error.__cause__ is original


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug of ours"),
        KeyError("choices"),
        ConnectionResetError(),
        ProviderUnavailableError("already typed"),
    ],
)
def test_other_errors_are_not_malformed_responses(exc):
    assert malformed_response_error(exc, model="openai:gpt-4o-mini") is None


def test_a_malformed_response_error_whose_message_cannot_be_read_is_left_alone():
    class Unprintable(json.JSONDecodeError):
        def __str__(self) -> str:
            raise RuntimeError("no message")

    assert malformed_response_error(Unprintable("x", "{", 0)) is None


# --------------------------------------------------------------------------- credentials


KEY = "sk-FAKE-scrub-0123456789"
CREDENTIAL_HEADERS = ["Authorization", "x-api-key", "api-key", "x-goog-api-key"]


def _carried_requests(exc):
    """The HTTP requests an error keeps (its own and its response's), without duplicates."""
    found = []
    for holder in (exc, getattr(exc, "response", None)):
        try:
            request = getattr(holder, "request", None)
        except RuntimeError:  # httpx: a response built without a request
            request = None
        if request is not None and all(request is not r for r in found):
            found.append(request)
    return found


def _httpx_error(header, value):
    request = httpx.Request("POST", "https://api.example.com/v1/chat", headers={header: value})
    response = httpx.Response(401, json={"error": {"message": "bad key"}}, request=request)
    return httpx.HTTPStatusError("401 Unauthorized", request=request, response=response)


def _openai_401(header, value):
    return openai_error(401, {"error": {"message": "bad key"}}, request_headers={header: value})


def _anthropic_401(header, value):
    body = {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}
    request = httpx.Request(
        "POST", "https://api.anthropic.com/v1/messages", headers={header: value}
    )
    response = httpx.Response(401, json=body, request=request)
    return anthropic.AuthenticationError("bad key", response=response, body=body)


def _authorised_error(factory, header, value):
    """An error whose kept request carries ``header: value``, whatever the SDK release does.

    Newer SDKs (openai 3.x) already drop some credential headers from the request they keep;
    older ones (and httpx, and other headers) keep them. Our promise must hold either way, so
    the header is put back on every kept request when the SDK removed it.
    """
    exc = factory(header, value)
    for request in _carried_requests(exc):
        if request.headers.get(header) != value:
            request.headers[header] = value
    assert KEY.encode() in pickle.dumps(exc)  # the precondition: there is a key to scrub
    return exc


@pytest.mark.parametrize("factory", [_httpx_error, _openai_401, _anthropic_401])
@pytest.mark.parametrize("header", CREDENTIAL_HEADERS)
def test_scrub_credentials_leaves_the_key_nowhere_in_an_error_that_kept_its_request(
    factory, header
):
    from llm_routing.errors import scrub_credentials

    exc = _authorised_error(factory, header, f"Bearer {KEY}")
    assert scrub_credentials(exc) is exc
    assert KEY not in str(exc)
    assert KEY not in repr(exc)
    assert all(KEY not in repr(arg) for arg in exc.args)
    assert KEY.encode() not in pickle.dumps(exc)
    requests = _carried_requests(exc)
    assert requests
    for request in requests:
        assert request.headers[header] == "[redacted by llm_routing]"
        assert all(KEY not in value for value in request.headers.values())


def test_scrub_credentials_keeps_everything_but_the_key():
    from llm_routing.errors import scrub_credentials

    exc = _authorised_error(_openai_401, "Authorization", f"Bearer {KEY}")
    status, url = exc.status_code, str(exc.request.url)
    scrub_credentials(exc)
    assert (exc.status_code, str(exc.request.url)) == (status, url)
    assert classify(exc) is ErrorKind.AUTH


def test_scrub_credentials_follows_the_cause_chain_and_ignores_errors_without_a_request():
    from llm_routing.errors import scrub_credentials

    inner = _authorised_error(_openai_401, "Authorization", f"Bearer {KEY}-chained")
    try:
        try:
            raise inner
        except openai.AuthenticationError as cause:
            raise RuntimeError("wrapped") from cause
    except RuntimeError as outer:
        scrub_credentials(outer)
    assert KEY.encode() not in pickle.dumps(inner)
    scrub_credentials(httpx.ConnectError("no request attached"))  # .request raises: ignored
