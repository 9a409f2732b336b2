"""The simulator's state under each provider's enforcement: what counts, groups, 429 shapes, stats."""

from __future__ import annotations

import math

import pytest

from llm_routing.catalog import default_catalog
from llm_routing.catalog.enforcement import enforcement_for
from llm_routing.sim import FaultPlan, SimModel, config
from llm_routing.sim.state import ChatRequest, Rejection, SimState

USER = [{"role": "user", "content": "Hello there"}]


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(model: str, max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(model=model, messages=USER, max_tokens=max_tokens)


def serve(state: SimState, model: str, *, prompt: int = 10, max_tokens: int | None = None):
    """Admit and fully answer one request; return the admission."""
    admission = state.admit(request(model, max_tokens), prompt)
    state.note_served(admission.completion)
    return admission


def refusal(state: SimState, model: str, *, prompt: int = 10, max_tokens: int | None = None):
    with pytest.raises(Rejection) as caught:
        state.admit(request(model, max_tokens), prompt)
    return caught.value


def header(rejection_or_admission, name: str) -> str | None:
    return dict(rejection_or_admission.headers).get(name)


# -- quantized over the state: headers and retry-after ---------------------------------------


def test_quantized_rpm_600_refuses_the_eleventh_request_of_one_instant_with_truthful_headers():
    clock = Clock()
    state = SimState([SimModel(name="m", rpm=600, enforcement="quantized")], clock=clock)
    admissions = [serve(state, "m") for _ in range(10)]
    assert header(admissions[0], "x-ratelimit-remaining-requests") == "599"  # minute scale
    assert header(admissions[-1], "x-ratelimit-remaining-requests") == "590"
    assert header(admissions[-1], "x-ratelimit-limit-requests") == "600"
    rejected = refusal(state, "m")
    assert rejected.status == 429
    assert header(rejected, "retry-after-ms") == "100"
    assert header(rejected, "retry-after") == "1"
    assert "enforced per second: 10 per 1s" in rejected.body["error"]["message"]
    clock.now = 0.1  # exactly what retry-after-ms said
    serve(state, "m")
    stats = state.stats()["models"]["m"]
    assert stats["rate_limited_by_cause"]["per_second"] == 1
    assert stats["rate_limited"] == {"requests": 1, "tokens": 0}
    assert stats["enforcement"]["mode"] == "quantized"


def test_sliding_admits_the_same_burst():
    state = SimState([SimModel(name="m", rpm=600, enforcement="sliding")], clock=Clock())
    for _ in range(600):
        serve(state, "m")
    assert state.stats()["models"]["m"]["rate_limited_by_cause"]["per_second"] == 0


def test_token_bucket_header_reset_is_the_refill_time():
    state = SimState([SimModel(name="m", rpm=60, enforcement="token_bucket")], clock=Clock())
    for _ in range(30):
        admission = serve(state, "m")
    assert header(admission, "x-ratelimit-remaining-requests") == "30"
    assert header(admission, "x-ratelimit-reset-requests") == "30s"


# -- failed requests count (OpenAI) -----------------------------------------------------------


def test_openai_shaped_refusals_count_and_retry_after_accounts_for_them():
    clock = Clock()
    model = SimModel(name="m", rpm=2, enforcement="sliding", failed_requests_count=True)
    state = SimState([model], clock=clock)
    serve(state, "m")
    clock.now = 1.0
    serve(state, "m")
    clock.now = 2.0
    first = refusal(state, "m")
    assert header(first, "retry-after") == "59"  # the refusal holds a slot until t=62
    clock.now = 30.0
    again = refusal(state, "m")  # resending early pushes the wait further
    assert header(again, "retry-after") == "32"
    clock.now = 62.0
    serve(state, "m")
    assert state.stats()["models"]["m"]["rate_limited_by_cause"]["minute"] == 2


def test_without_failed_requests_counting_the_wait_is_the_plain_window():
    clock = Clock()
    model = SimModel(name="m", rpm=2, enforcement="sliding", failed_requests_count=False)
    state = SimState([model], clock=clock)
    serve(state, "m")
    clock.now = 1.0
    serve(state, "m")
    clock.now = 2.0
    assert header(refusal(state, "m"), "retry-after") == "58"


# -- what counts: Anthropic OTPM, Gemini input only -------------------------------------------


def test_anthropic_shaped_otpm_counts_real_output_not_max_tokens():
    clock = Clock()
    model = SimModel.like("anthropic", name="claude", otpm=30, enforcement="sliding")
    assert (model.tokens_counted, model.output_counted) == ("uncached_input+cache_writes", "actual")
    state = SimState([model], clock=clock)
    first = serve(state, "claude", max_tokens=1_000)  # max_tokens far above OTPM: not counted
    assert first.completion.completion_tokens == 12
    assert header(first, "x-ratelimit-remaining-tokens") is None  # no TPM window configured
    assert state.stats()["models"]["claude"]["tokens_admitted"] == 10  # input only
    serve(state, "claude", max_tokens=1_000)  # 24 used
    serve(state, "claude", max_tokens=1_000)  # room for one token is enough: 36, overdrawn
    rejected = refusal(state, "claude", max_tokens=1_000)
    assert "output tokens per min (OTPM)" in rejected.body["error"]["message"]
    clock.now = 60.0  # the first answer leaves the minute: 24 used, room again
    serve(state, "claude")


def test_anthropic_output_counts_when_the_answer_completes_not_at_admission():
    clock = Clock()
    model = SimModel.like("anthropic", name="claude", otpm=12, enforcement="sliding")
    state = SimState([model], clock=clock)
    admission = state.admit(request("claude"), 10)
    state.admit(request("claude"), 10)  # the first answer is still running: nothing counted yet
    clock.now = 5.0
    state.note_served(admission.completion)  # 12 output tokens at t=5
    rejected = refusal(state, "claude")
    assert header(rejected, "retry-after") == "60"  # counted from completion (t=5), not t=0


def test_openai_shaped_tpm_counts_max_tokens_at_admission():
    state = SimState([SimModel(name="m", tpm=100, enforcement="sliding")], clock=Clock())
    rejected = refusal(state, "m", max_tokens=1_000)
    assert "Request too large" in rejected.body["error"]["message"]


def test_gemini_shaped_tpm_counts_input_only():
    model = SimModel.like("gemini", name="gem", tpm=100, enforcement="sliding")
    assert model.tokens_counted == "input"
    state = SimState([model], clock=Clock())
    for _ in range(10):
        serve(state, "gem", prompt=10, max_tokens=1_000)
    rejected = refusal(state, "gem", prompt=10)
    assert rejected.body["error"]["type"] == "tokens"
    assert state.stats()["models"]["gem"]["tokens_admitted"] == 100


# -- limit groups -----------------------------------------------------------------------------


def test_models_of_a_limit_group_share_one_set_of_windows():
    models = [
        SimModel(name="gpt-a", rpm=2, enforcement="sliding", limit_group="family"),
        SimModel(name="gpt-b", rpm=2, enforcement="sliding", limit_group="family"),
        SimModel(name="solo", rpm=2, enforcement="sliding"),
    ]
    state = SimState(models, clock=Clock())
    serve(state, "gpt-a")
    serve(state, "gpt-b")
    refusal(state, "gpt-a")
    refusal(state, "gpt-b")
    serve(state, "solo")  # not in the group: its own windows
    stats = state.stats()["models"]
    assert stats["gpt-a"]["enforcement"]["limit_group"] == "family"
    assert (stats["gpt-a"]["requests_served"], stats["gpt-b"]["requests_served"]) == (1, 1)
    assert stats["gpt-a"]["rate_limited"]["requests"] == 1
    state.reset()  # the group's windows are rebuilt, still shared
    serve(state, "gpt-b")
    serve(state, "gpt-b")
    refusal(state, "gpt-a")


def test_a_limit_group_whose_members_disagree_is_refused_naming_both():
    models = [
        SimModel(name="a", rpm=2, limit_group="g"),
        SimModel(name="b", rpm=3, limit_group="g"),
    ]
    with pytest.raises(ValueError, match=r"'a' and 'b' share limit_group 'g'.*rpm \(2 vs 3\)"):
        SimState(models)


def test_a_limit_group_must_agree_on_enforcement_too():
    models = [
        SimModel(name="a", rpm=2, limit_group="g", enforcement="sliding"),
        SimModel(name="b", rpm=2, limit_group="g", enforcement="quantized"),
    ]
    with pytest.raises(ValueError, match="enforcement"):
        SimState(models)


# -- spend limit and daily quota --------------------------------------------------------------


def test_spend_limit_quota_answers_anthropic_shape_without_retry_after():
    model = SimModel(name="m", quota_requests=1, quota_error="spend_limit")
    state = SimState([model], clock=Clock())
    serve(state, "m")
    rejected = refusal(state, "m")
    assert rejected.status == 429
    assert rejected.body["type"] == "error"
    assert rejected.body["error"]["type"] == "rate_limit_error"
    assert rejected.body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert "regain access on" in rejected.body["error"]["message"]
    assert header(rejected, "retry-after") is None
    assert header(rejected, "retry-after-ms") is None
    stats = state.stats()
    assert stats["models"]["m"]["rate_limited_by_cause"]["spend_limit"] == 1
    assert stats["rate_limited_by_cause"]["spend_limit"] == 1
    assert stats["insufficient_quota"] == 0


def test_daily_quota_answers_gemini_resource_exhausted_per_day():
    model = SimModel(name="gem", quota_requests=1, quota_error="daily_quota")
    state = SimState([model], clock=Clock())
    serve(state, "gem")
    rejected = refusal(state, "gem")
    error = rejected.body["error"]
    assert (rejected.status, error["status"], error["code"]) == (429, "RESOURCE_EXHAUSTED", 429)
    quota_id = error["details"][0]["violations"][0]["quotaId"]
    assert "PerDay" in quota_id
    assert header(rejected, "retry-after") is None
    assert state.stats()["models"]["gem"]["rate_limited_by_cause"]["daily_quota"] == 1


def test_default_quota_error_is_still_openai_insufficient_quota():
    state = SimState([SimModel(name="m", quota_requests=0)], clock=Clock())
    rejected = refusal(state, "m")
    assert rejected.body["error"]["code"] == "insufficient_quota"
    assert state.stats()["models"]["m"]["rate_limited_by_cause"]["insufficient_quota"] == 1


@pytest.mark.parametrize(("kind", "cause"), [("spend_limit", "spend_limit"), ("429", "injected")])
def test_quota_shaped_faults_are_counted_by_cause(kind, cause):
    state = SimState([SimModel(name="m", faults=FaultPlan.always(kind))], clock=Clock())
    admission = state.admit(request("m"), 10)
    assert admission.fault == kind
    assert state.stats()["models"]["m"]["rate_limited_by_cause"][cause] == 1


def test_fault_plan_parses_the_new_kinds():
    plan = FaultPlan.parse("spend_limit@2,daily_quota:0.5")
    assert dict(plan.schedule) == {2: "spend_limit"}
    assert dict(plan.rates) == {"daily_quota": 0.5}


# -- headers per provider ---------------------------------------------------------------------


def test_groq_shaped_requests_headers_report_the_day():
    model = SimModel.like("groq", name="llama", rpm=30, rpd=1_000, enforcement="sliding")
    assert model.requests_header == "rpd"
    state = SimState([model], clock=Clock())
    admission = serve(state, "llama")
    assert header(admission, "x-ratelimit-limit-requests") == "1000"
    assert header(admission, "x-ratelimit-remaining-requests") == "999"


# -- the switch and the defaults --------------------------------------------------------------


def test_the_switch_is_on_and_bare_models_are_shaped_like_openai_documents_its_limits():
    assert config.FOLLOW_PROVIDER_DOCS is True
    assert config.DEFAULT_ENFORCEMENT == "quantized"
    model = SimModel(name="m")
    assert (model.enforcement, model.failed_requests_count) == ("quantized", True)
    assert (model.tokens_counted, model.output_counted) == ("input+max_output", "none")


def test_from_spec_follows_the_providers_documentation():
    spec = default_catalog().get("anthropic:claude-haiku-4-5")
    model = SimModel.from_spec(spec)
    assert (model.enforcement, model.output_counted) == ("quantized", "actual")
    assert SimModel.from_spec(spec, enforcement="token_bucket").enforcement == "token_bucket"


@pytest.mark.parametrize(
    ("key", "mode", "failed", "tokens", "output"),
    [
        ("openai:gpt-4o-mini", "quantized", True, "input+max_output", "none"),
        ("anthropic:claude-haiku-4-5", "quantized", False, "uncached_input+cache_writes", "actual"),
        ("google_genai:gemini-2.5-flash", "quantized", False, "input", "none"),
    ],
)
def test_from_spec_follows_the_provider_docs_when_asked(key, mode, failed, tokens, output):
    model = SimModel.from_spec(default_catalog().get(key), follow_docs=True)
    assert (model.enforcement, model.failed_requests_count) == (mode, failed)
    assert (model.tokens_counted, model.output_counted) == (tokens, output)


def test_flipping_the_switch_turns_the_provider_defaults_on(monkeypatch):
    monkeypatch.setattr(config, "FOLLOW_PROVIDER_DOCS", True)
    monkeypatch.setattr(config, "DEFAULT_ENFORCEMENT", "quantized")
    bare = SimModel(name="m")
    assert (bare.enforcement, bare.failed_requests_count) == ("quantized", True)
    spec = default_catalog().get("anthropic:claude-haiku-4-5")
    assert SimModel.from_spec(spec).output_counted == "actual"
    assert SimModel.from_spec(spec, follow_docs=False).enforcement == "sliding"


def test_like_unknown_provider_gets_the_conservative_default():
    model = SimModel.like("acme", name="x")
    assert (model.enforcement, model.failed_requests_count) == ("quantized", True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"enforcement": "fixed"}, ValueError, "enforcement"),
        ({"failed_requests_count": 1}, TypeError, "failed_requests_count"),
        ({"tokens_counted": "all"}, ValueError, "tokens_counted"),
        ({"output_counted": "max_tokens"}, ValueError, "output_counted"),
        ({"requests_header": "rph"}, ValueError, "requests_header"),
        ({"quota_error": "teapot"}, ValueError, "quota_error"),
        ({"limit_group": ""}, ValueError, "limit_group"),
    ],
)
def test_bad_enforcement_fields_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        SimModel(name="m", **kwargs)


def test_stats_report_enforcement_and_every_cause():
    state = SimState([SimModel.like("openai", name="m", rpm=60)], clock=Clock())
    stats = state.stats()
    model = stats["models"]["m"]
    assert model["enforcement"] == {
        "mode": "quantized",
        "failed_requests_count": True,
        "tokens_counted": "input+max_output",
        "output_counted": "none",
        "limit_group": None,
    }
    assert set(model["rate_limited_by_cause"]) == {
        "minute",
        "per_second",
        "day",
        "spend_limit",
        "daily_quota",
        "insufficient_quota",
        "injected",
    }
    assert set(stats["rate_limited_by_cause"]) == set(model["rate_limited_by_cause"])


# -- the catalogue entries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("openai", "openai"),
        ("azure_openai", "openai"),
        ("anthropic", "anthropic"),
        ("google_genai", "google"),
        ("google", "google"),
        ("Gemini", "google"),
        ("mistralai", "mistral"),
        ("groq", "groq"),
        ("somebody-else", "default"),
    ],
)
def test_enforcement_for_resolves_aliases(name, provider):
    assert enforcement_for(name).provider == provider


def test_entries_say_what_the_providers_document():
    assert enforcement_for("openai").failed_requests_count
    assert enforcement_for("anthropic").mode == "quantized"
    assert enforcement_for("gemini").rpd_reset == "midnight_pacific"
    assert enforcement_for("mistral").requests_limit_period_s == 1.0
    assert enforcement_for("groq").requests_header_period_s == 86_400.0
    assert not enforcement_for("groq").cached_tokens_count
    for provider in ("openai", "anthropic", "google", "mistral", "groq"):
        entry = enforcement_for(provider)
        assert entry.sources and all(url.startswith("https://") for url in entry.sources)
        assert entry.notes


def test_entries_quote_their_pages():
    import inspect

    from llm_routing.catalog import enforcement

    source = inspect.getsource(enforcement)
    for quote in (
        "60,000 requests/minute may be enforced as 1,000 requests/second",
        "unsuccessful requests contribute to your per-minute limit",
        "continuously replenished up to your maximum limit",
        "Requests per day (RPD) quotas reset at midnight Pacific time.",
        "Always refers to Requests Per Day",
        "Requests per second (RPS)",
    ):
        assert quote in source, quote


def test_retry_after_is_never_zero_for_a_refusal():
    state = SimState([SimModel(name="m", rpm=6_000, enforcement="quantized")], clock=Clock())
    for _ in range(100):
        serve(state, "m")
    rejected = refusal(state, "m")
    assert int(header(rejected, "retry-after-ms")) >= 1
    assert not math.isnan(float(header(rejected, "retry-after")))


def test_a_model_builds_its_own_limiter_for_virtual_time_runs():
    clock = Clock()
    limiter = SimModel.like("anthropic", name="c", rpm=60, otpm=100).limiter(clock)
    assert (limiter.mode, limiter.output_at) == ("quantized", "completion")
    assert limiter.limits == {"rpm": 60, "otpm": 100}
