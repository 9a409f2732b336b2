"""How each provider enforces its rate limits, and what it counts: data from the providers' pages.

Pure data, standard library only. ``enforcement_for(provider)`` answers for one provider; the
simulator (``llm_routing.sim``) builds its simulated limits from it, and the scheduler may read
it to pace the way a provider admits.

Every entry below quotes the page it rests on (read on ``AS_OF``); where a page says nothing
about a field, the entry says so in its ``notes`` and picks the conservative value (the one
under which a client that assumes less will still be right).

The fields:

``mode``
    ``"sliding"``: an exact log, no more than the limit in any 60-second interval.
    ``"token_bucket"``: a bucket of capacity ``limit`` refilled continuously at ``limit / 60``
    per second (a burst up to the whole minute's limit, then the refill rate).
    ``"quantized"``: the per-minute limit, plus a per-second share of ``limit / 60`` refilled
    continuously with no burst beyond that share (60,000 RPM enforced as 1,000 per second).
``failed_requests_count``
    Whether a request refused with a 429 still counts toward the per-minute limits.
``tokens_counted``
    What the per-minute token limit (TPM, or ITPM where input and output are separate) is
    charged with: ``"input+max_output"`` (the input estimate plus the requested ``max_tokens``,
    at admission), ``"input"`` (input only) or ``"uncached_input+cache_writes"`` (cache reads
    do not count).
``output_counted``
    ``"actual"`` when an output-token limit (OTPM) counts the tokens really generated, as they
    are generated; ``"none"`` when no limit counts output after admission.
``rpd_reset``
    ``"rolling"`` (the last 24 hours), ``"midnight_pacific"`` or ``"midnight_utc"``.
``requests_limit_period_s``
    The period the provider publishes its request limit for: 60 (per minute) or 1 (per second).
``requests_header_period_s``
    The period the ``x-ratelimit-*-requests`` headers describe: 60, or 86,400 where they report
    the day's figure (Groq).
``per_second_share``
    Whether the provider says a per-minute limit may be enforced over shorter periods.
``cached_tokens_count``
    Whether cached (cache-read) input tokens count toward the token limits.
``shared_limits``
    Whether the provider documents limits shared by a group of models (a limit group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AS_OF",
    "DEFAULT_ENFORCEMENT",
    "ENFORCEMENTS",
    "Enforcement",
    "EnforcementMode",
    "OutputCounted",
    "RpdReset",
    "TokensCounted",
    "enforcement_for",
]

#: The date the quoted pages were read.
AS_OF = "2026-12-06"

EnforcementMode = Literal["sliding", "token_bucket", "quantized"]
TokensCounted = Literal["input+max_output", "input", "uncached_input+cache_writes"]
OutputCounted = Literal["none", "actual"]
RpdReset = Literal["rolling", "midnight_pacific", "midnight_utc"]

MODES: tuple[EnforcementMode, ...] = ("sliding", "token_bucket", "quantized")


@dataclass(frozen=True, slots=True)
class Enforcement:
    """How one provider enforces its limits and what it counts (see the module docstring).

    ``sources`` are the pages the values come from; ``notes`` says what they could not confirm.

    Example:
        >>> e = enforcement_for("anthropic")
        >>> e.mode, e.output_counted, e.tokens_counted
        ('quantized', 'actual', 'uncached_input+cache_writes')
        >>> enforcement_for("gemini").rpd_reset
        'midnight_pacific'
    """

    provider: str
    mode: EnforcementMode
    failed_requests_count: bool
    tokens_counted: TokensCounted
    output_counted: OutputCounted
    rpd_reset: RpdReset
    requests_limit_period_s: float = 60.0
    requests_header_period_s: float = 60.0
    per_second_share: bool = False
    cached_tokens_count: bool = True
    shared_limits: bool = False
    sources: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Enforcement.mode must be one of {MODES}, got {self.mode!r}")
        for name in ("requests_limit_period_s", "requests_header_period_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Enforcement.{name} must be seconds > 0, got {value!r}")


OPENAI = Enforcement(
    provider="openai",
    mode="quantized",
    failed_requests_count=True,
    tokens_counted="input+max_output",
    output_counted="none",
    rpd_reset="rolling",
    per_second_share=True,
    cached_tokens_count=True,
    shared_limits=True,
    sources=(
        "https://help.openai.com/en/articles/6891753-what-are-the-best-practices-for-managing-my-rate-limits-in-the-api",
        "https://platform.openai.com/docs/guides/rate-limits",
    ),
    notes=(
        "Unconfirmed: how the per-second share refills (the help article says 'quantized', "
        "not 'bucket'; we model a continuously refilled share of limit/60 per second). The "
        "guide says the charge is 'the maximum of max_tokens and the estimated number of "
        "tokens'; the help article says 'prompts+max_completion_tokens'; we charge the sum "
        "(the larger of the two readings). RPD reset time is not documented: rolling. "
        "Whether cached prompt tokens count toward TPM is not stated on these pages."
    ),
)
"""OpenAI: quantized, failed requests count, input + ``max_tokens`` at admission.

Help article 6891753 (https://help.openai.com/en/articles/6891753):

    "Rate limits can be quantized, meaning they are enforced over shorter periods of time
    (e.g. 60,000 requests/minute may be enforced as 1,000 requests/second). Sending short bursts
    of requests or contexts (prompts+max_completion_tokens) that are too long can lead to rate
    limit errors, even when you are technically below the rate limit per minute."

Rate limits guide (https://platform.openai.com/docs/guides/rate-limits):

    "Note that unsuccessful requests contribute to your per-minute limit, so continuously
    resending a request won't work."

    "Your rate limit is calculated as the maximum of `max_tokens` and the estimated number of
    tokens based on the character count of your request."

    "Some model families have shared rate limits. Any models listed under a "shared limit" in
    your organizations limit page share a rate limit between them."

    Headers: "x-ratelimit-reset-requests | 1s | The time until the rate limit (based on
    requests) resets to its initial state."
"""

ANTHROPIC = Enforcement(
    provider="anthropic",
    mode="quantized",
    failed_requests_count=False,
    tokens_counted="uncached_input+cache_writes",
    output_counted="actual",
    rpd_reset="rolling",
    per_second_share=True,
    cached_tokens_count=False,
    shared_limits=True,
    sources=("https://docs.anthropic.com/en/api/rate-limits",),
    notes=(
        "Quantized because the page says both: a token bucket, and 60 RPM 'may be enforced as "
        "1 request per second'; a per-second share bounds the bucket's burst. Whether a "
        "refused request counts is not documented: not counted. No daily limits are published "
        "for the Messages API (rpd_reset is moot). A spend-cap 429 "
        "(enforced_spend_limit_reached) has no retry-after: waiting cannot help. Claude Haiku "
        "3.5 also counts cache reads toward ITPM (the page's dagger)."
    ),
)
"""Anthropic: token bucket with a per-second share, ITPM uncached input, OTPM real output.

Rate limits (https://docs.anthropic.com/en/api/rate-limits, now served at
https://platform.claude.com/docs/en/api/rate-limits):

    "You may hit rate limits over shorter time intervals. For instance, a rate of 60 requests
    per minute (RPM) may be enforced as 1 request per second. Short bursts of requests at a high
    volume can surpass the rate limit and result in rate limit errors."

    "We use the token bucket algorithm to do rate limiting. This means that your capacity is
    continuously replenished up to your maximum limit, rather than being reset at fixed
    intervals."

    "For most Claude models, only uncached input tokens count toward your ITPM rate limits."
    ... "`cache_creation_input_tokens` (tokens being written to cache) ✓ Count toward ITPM"
    ... "`cache_read_input_tokens` (tokens read from cache) ✗ Do NOT count toward ITPM for
    most models"

    "OTPM rate limits are evaluated in real time as output tokens are produced, counting only
    the actual tokens generated. The `max_tokens` parameter does not factor into OTPM rate
    limit calculations"

    Spend cap: "While usage is paused, API requests return HTTP 429" ... "The error type is
    `rate_limit_error`, the same as for a rate limit, but the response has no `retry-after`
    header." ... "`error.details.error_code` is `enforced_spend_limit_reached`."

    Limit groups: "Opus rate limit is a total limit that applies to combined traffic across"
    several Opus versions.
"""

GOOGLE = Enforcement(
    provider="google",
    mode="quantized",
    failed_requests_count=False,
    tokens_counted="input",
    output_counted="none",
    rpd_reset="midnight_pacific",
    per_second_share=False,
    cached_tokens_count=True,
    shared_limits=False,
    sources=("https://ai.google.dev/gemini-api/docs/rate-limits",),
    notes=(
        "The page does not say how a per-minute limit is enforced within the minute (a forum "
        "answer at discuss.ai.google.dev/t/api-rate-limit-reset/6851 says minute limits reset "
        "at second 00, i.e. fixed windows, which no mode here models); quantized is the "
        "conservative choice. Whether refused or failed requests count is not documented: not "
        "counted. Spend-based limits over a rolling window exist (the section is on the page; "
        "a 10-minute window is reported by third parties only, unconfirmed). Quota ids "
        "(...PerMinute... / ...PerDay...) in RESOURCE_EXHAUSTED bodies tell the windows apart."
    ),
)
"""Google Gemini: RPM / TPM (input) / RPD per project, RPD resets at midnight Pacific.

Rate limits (https://ai.google.dev/gemini-api/docs/rate-limits):

    "Rate limits are usually measured across three dimensions: Requests per minute (RPM),
    Tokens per minute (input) (TPM), Requests per day (RPD)"

    "Rate limits are applied per project, not per API key."

    "Requests per day (RPD) quotas reset at midnight Pacific time."
"""

MISTRAL = Enforcement(
    provider="mistral",
    mode="quantized",
    failed_requests_count=False,
    tokens_counted="input+max_output",
    output_counted="none",
    rpd_reset="rolling",
    requests_limit_period_s=1.0,
    per_second_share=True,
    cached_tokens_count=True,
    shared_limits=True,
    sources=(
        "https://docs.mistral.ai/deployment/laplateforme/tier/",
        "https://help.mistral.ai/en/articles/424390-how-do-api-rate-limits-work-and-how-do-i-increase-them",
    ),
    notes=(
        "Requests are limited per SECOND; the catalogue ships RPS x 60 as RPM, and quantized "
        "enforcement (a share of rpm/60 per second, no burst beyond it) turns it back into "
        "the RPS. A newer page defines RPS as 'the maximum number of concurrent API requests', "
        "which we do not model. How tokens are charged (max_tokens or real output, when) and "
        "whether refused requests count are not documented: we charge input + max_tokens at "
        "admission. Limits are per workspace/organization, so every model shares them."
    ),
)
"""Mistral: requests per second, plus tokens per minute and per month, per workspace.

Rate limit and usage tiers (https://docs.mistral.ai/deployment/laplateforme/tier/):

    "We offer two types of rate limits: Requests per second (RPS) Tokens per minute/month"
    ... "Rate limits are set at the workspace level."

Help (https://help.mistral.ai/en/articles/424390): "We enforce three types of limits: Requests
per second (RPS) Tokens per minute Tokens per month" ... "Token limits include both input and
output tokens."
"""

GROQ = Enforcement(
    provider="groq",
    mode="quantized",
    failed_requests_count=False,
    tokens_counted="input+max_output",
    output_counted="none",
    rpd_reset="rolling",
    requests_header_period_s=86_400.0,
    per_second_share=False,
    cached_tokens_count=False,
    shared_limits=False,
    sources=("https://console.groq.com/docs/rate-limits",),
    notes=(
        "The x-ratelimit-*-requests headers describe the DAY (RPD), the -tokens headers the "
        "minute (TPM): a client must not read remaining-requests as per-minute room. How a "
        "minute limit is enforced within the minute, how tokens are charged and whether "
        "refused requests count are not documented: quantized, input + max_tokens, not "
        "counted. No daily reset time is published: rolling."
    ),
)
"""Groq: RPM/RPD/TPM/TPD per organization; the requests headers are the per-DAY figures.

Rate limits (https://console.groq.com/docs/rate-limits):

    "Cached tokens do not count towards your rate limits."

    "Rate limits apply at the organization level, not individual users."

    Headers table: "x-ratelimit-limit-requests | 14400 | Always refers to Requests Per Day
    (RPD)" ... "x-ratelimit-limit-tokens | 18000 | Always refers to Tokens Per Minute (TPM)"
"""

DEFAULT_ENFORCEMENT = Enforcement(
    provider="default",
    mode="quantized",
    failed_requests_count=True,
    tokens_counted="input+max_output",
    output_counted="none",
    rpd_reset="rolling",
    per_second_share=True,
    cached_tokens_count=True,
    shared_limits=False,
    notes=(
        "An unknown provider: the strictest documented behaviour (OpenAI's), so a client "
        "that copes with it copes with the others."
    ),
)
"""The conservative default for providers without an entry: quantized, failed requests count."""

ENFORCEMENTS: dict[str, Enforcement] = {
    e.provider: e for e in (OPENAI, ANTHROPIC, GOOGLE, MISTRAL, GROQ)
}

# Provider names as LangChain, LiteLLM and the catalogue spell them -> our entry.
_ALIASES: dict[str, str] = {
    "openai": "openai",
    "azure": "openai",
    "azure_openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "google_genai": "google",
    "google_vertexai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "mistral": "mistral",
    "mistralai": "mistral",
    "groq": "groq",
}


def enforcement_for(provider: str) -> Enforcement:
    """How ``provider`` enforces its limits (``"openai"``, ``"google_genai"``, ``"gemini"``…).

    An unknown provider gets ``DEFAULT_ENFORCEMENT`` (quantized, failed requests count).

    Example:
        >>> enforcement_for("openai").failed_requests_count
        True
        >>> enforcement_for("google_genai").tokens_counted
        'input'
        >>> enforcement_for("acme").mode
        'quantized'
    """
    if not isinstance(provider, str):
        raise TypeError(f"provider must be a string such as 'openai', got {provider!r}")
    key = _ALIASES.get(provider.strip().lower())
    return DEFAULT_ENFORCEMENT if key is None else ENFORCEMENTS[key]
