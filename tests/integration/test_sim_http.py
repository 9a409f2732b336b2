"""The simulator's wire format, checked with a plain HTTP client (no SDK in between)."""

from __future__ import annotations

import json

import httpx
import pytest

from llm_routing.tokens import count_tokens

USER = [{"role": "user", "content": "Hello there"}]


def post(sim, body, **kwargs):
    return httpx.post(f"{sim.base_url}/chat/completions", json=body, timeout=10, **kwargs)


def sse_events(text):
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_base_url_is_loopback_and_ends_in_v1(sim):
    assert sim.base_url.startswith("http://127.0.0.1:")
    assert sim.base_url.endswith("/v1")


def test_completion_has_openai_shape_and_usage(sim):
    r = post(sim, {"model": "gpt-4o-mini", "messages": USER})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_prompt_tokens_are_counted_with_the_project_tokenizer(sim):
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    r = post(sim, {"model": "gpt-4o-mini", "messages": messages})
    spec_model = sim.state.resolve("gpt-4o-mini")
    from llm_routing.catalog.spec import ModelSpec

    spec = ModelSpec(
        provider="openai", name="gpt-4o-mini", context_window=spec_model.context_window
    )
    assert r.json()["usage"]["prompt_tokens"] == count_tokens(messages, spec)


def test_tools_count_towards_prompt_tokens(sim):
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
    plain = post(sim, {"model": "gpt-4o-mini", "messages": USER}).json()["usage"]["prompt_tokens"]
    with_tool = post(
        sim, {"model": "gpt-4o-mini", "messages": USER, "tools": [tool], "tool_choice": "none"}
    ).json()["usage"]["prompt_tokens"]
    assert with_tool > plain


def test_alias_selects_the_model(sim):
    r = post(sim, {"model": "openai:gpt-4o-mini", "messages": USER})
    assert r.status_code == 200
    assert r.json()["model"] == "gpt-4o-mini"


def test_every_success_carries_rate_limit_headers(sim):
    r = post(sim, {"model": "two-rpm", "messages": USER, "max_tokens": 50})
    assert r.headers["x-ratelimit-limit-requests"] == "2"
    assert r.headers["x-ratelimit-remaining-requests"] == "1"
    assert r.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert r.headers["x-ratelimit-limit-tokens"] == "1000000"
    prompt = r.json()["usage"]["prompt_tokens"]
    assert int(r.headers["x-ratelimit-remaining-tokens"]) == 1_000_000 - prompt - 50


def test_rpm_exceeded_gives_openai_429_with_retry_after(sim):
    for _ in range(2):
        assert post(sim, {"model": "two-rpm", "messages": USER}).status_code == 200
    r = post(sim, {"model": "two-rpm", "messages": USER})
    assert r.status_code == 429
    error = r.json()["error"]
    assert error["type"] == "requests"
    assert error["code"] == "rate_limit_exceeded"
    assert error["param"] is None
    assert "requests per min (RPM): Limit 2, Used 2, Requested 1" in error["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert 0 < int(r.headers["retry-after-ms"]) <= 60_000
    assert r.headers["x-ratelimit-remaining-requests"] == "0"


def test_tpm_counts_prompt_plus_max_tokens(sim):
    first = post(sim, {"model": "small-tpm", "messages": USER, "max_tokens": 100})
    assert first.status_code == 200
    second = post(sim, {"model": "small-tpm", "messages": USER, "max_tokens": 100})
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "tokens"
    assert "tokens per min (TPM): Limit 200" in second.json()["error"]["message"]


def test_request_larger_than_tpm_is_refused_without_retry_after(sim):
    r = post(sim, {"model": "small-tpm", "messages": USER, "max_tokens": 500})
    assert r.status_code == 429
    assert r.json()["error"]["message"].startswith("Request too large for small-tpm")
    assert "retry-after" not in r.headers


def test_rpd_exceeded_is_a_requests_429_naming_the_day(sim):
    post(sim, {"model": "one-rpd", "messages": USER})
    r = post(sim, {"model": "one-rpd", "messages": USER})
    assert r.status_code == 429
    assert "requests per day (RPD)" in r.json()["error"]["message"]
    assert int(r.headers["retry-after"]) > 86_000


def test_spent_request_quota_gives_insufficient_quota(sim):
    assert post(sim, {"model": "prepaid", "messages": USER}).status_code == 200
    r = post(sim, {"model": "prepaid", "messages": USER})
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "insufficient_quota"
    assert r.json()["error"]["code"] == "insufficient_quota"


def test_token_quota_is_charged_with_real_usage(sim):
    first = post(sim, {"model": "prepaid-tokens", "messages": USER})
    assert first.status_code == 200
    assert first.json()["usage"]["total_tokens"] < 30
    post(sim, {"model": "prepaid-tokens", "messages": USER})
    r = post(sim, {"model": "prepaid-tokens", "messages": USER})
    assert r.json()["error"]["code"] == "insufficient_quota"
    spent = sim.stats()["models"]["prepaid-tokens"]["quota_spent"]["tokens"]
    assert spent >= 30


def test_context_overflow_with_max_tokens_names_both_parts(sim):
    long = [{"role": "user", "content": "word " * 250}]
    r = post(sim, {"model": "tiny-window", "messages": long, "max_tokens": 100})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded"
    prompt = count_tokens(long, "gpt-4o-mini")
    assert (
        f"maximum context length is 300 tokens. However, you requested {prompt + 100} tokens "
        f"({prompt} in the messages, 100 in the completion)"
    ) in error["message"]


def test_context_overflow_without_max_tokens_counts_messages_only(sim):
    r = post(
        sim, {"model": "tiny-window", "messages": [{"role": "user", "content": "word " * 400}]}
    )
    assert r.status_code == 400
    assert "However, your messages resulted in" in r.json()["error"]["message"]


def test_window_is_full_at_exactly_prompt_plus_max_tokens(sim):
    def messages(n):
        return [{"role": "user", "content": " ".join(["word"] * n)}]

    n = next(n for n in range(100, 300) if count_tokens(messages(n), "gpt-4o-mini") == 200)
    assert count_tokens(messages(n + 1), "gpt-4o-mini") == 201
    fits = post(sim, {"model": "tiny-window", "messages": messages(n), "max_tokens": 100})
    over = post(sim, {"model": "tiny-window", "messages": messages(n + 1), "max_tokens": 100})
    assert fits.status_code == 200
    assert over.status_code == 400


def test_max_tokens_cuts_the_reply_with_finish_reason_length(sim):
    r = post(sim, {"model": "gpt-4o-mini", "messages": USER, "max_completion_tokens": 5})
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    assert len(body["choices"][0]["message"]["content"].split()) == 5


def test_stop_sequence_ends_the_reply_before_it(sim):
    text = post(sim, {"model": "gpt-4o-mini", "messages": USER}).json()["choices"][0]["message"][
        "content"
    ]
    stop_word = text.split()[3]
    sim.reset()
    r = post(sim, {"model": "gpt-4o-mini", "messages": USER, "stop": [f" {stop_word}"]})
    content = r.json()["choices"][0]["message"]["content"]
    assert content == text[: text.find(f" {stop_word}")]
    assert r.json()["choices"][0]["finish_reason"] == "stop"


def test_same_seed_gives_the_same_answers_after_reset(sim):
    first = [
        post(sim, {"model": "gpt-4o-mini", "messages": USER}).json()["choices"][0]["message"]
        for _ in range(3)
    ]
    sim.reset()
    again = [
        post(sim, {"model": "gpt-4o-mini", "messages": USER}).json()["choices"][0]["message"]
        for _ in range(3)
    ]
    assert first == again


def test_stream_sends_chunks_usage_and_done(sim):
    r = post(
        sim,
        {
            "model": "gpt-4o-mini",
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 12
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert len(text.split()) == 12


def test_stream_without_include_usage_has_no_usage_chunk(sim):
    r = post(sim, {"model": "gpt-4o-mini", "messages": USER, "stream": True})
    chunks = [json.loads(e) for e in sse_events(r.text)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)


def test_tool_call_uses_the_first_tool_and_its_schema(sim):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "unit": {"enum": ["c", "f"]},
                        "days": {"type": "integer", "minimum": 1, "maximum": 7},
                    },
                    "required": ["city", "unit", "days"],
                },
            },
        },
        {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}},
    ]
    r = post(sim, {"model": "gpt-4o-mini", "messages": USER, "tools": tools})
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    args = json.loads(call["function"]["arguments"])
    assert args["unit"] == "c"
    assert isinstance(args["city"], str)
    assert 1 <= args["days"] <= 7


def test_auto_tool_choice_after_a_tool_result_answers_in_text(sim):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    r = post(sim, {"model": "gpt-4o-mini", "messages": messages, "tools": tools})
    message = r.json()["choices"][0]["message"]
    assert "tool_calls" not in message
    assert message["content"]


def test_json_schema_response_format_returns_a_conforming_document(sim):
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["title", "tags"],
        "additionalProperties": False,
    }
    r = post(
        sim,
        {
            "model": "gpt-4o-mini",
            "messages": USER,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "doc", "schema": schema, "strict": True},
            },
        },
    )
    document = json.loads(r.json()["choices"][0]["message"]["content"])
    assert set(document) == {"title", "tags"}
    assert all(isinstance(t, str) for t in document["tags"])


def test_models_endpoint_lists_every_model(sim):
    r = httpx.get(f"{sim.base_url}/models")
    assert {m["id"] for m in r.json()["data"]} == {m.name for m in sim.models}


def test_stats_over_http_match_stats_in_process(sim):
    post(sim, {"model": "gpt-4o-mini", "messages": USER})
    over_http = httpx.get(f"{sim.url}/sim/stats").json()
    assert over_http["requests_served"] == 1
    assert over_http["models"]["gpt-4o-mini"]["timeline"][0][1] == "served"
    assert sim.stats()["requests_served"] == 1


def test_reset_over_http_empties_the_windows(sim):
    post(sim, {"model": "two-rpm", "messages": USER})
    post(sim, {"model": "two-rpm", "messages": USER})
    httpx.post(f"{sim.url}/sim/reset")
    assert post(sim, {"model": "two-rpm", "messages": USER}).status_code == 200


def test_stats_count_each_outcome(sim):
    post(sim, {"model": "two-rpm", "messages": USER})
    post(sim, {"model": "two-rpm", "messages": USER})
    post(sim, {"model": "two-rpm", "messages": USER})
    post(sim, {"model": "tiny-window", "messages": [{"role": "user", "content": "w " * 400}]})
    post(sim, {"model": "gpt-4o-mini"})
    post(sim, {"model": "nope", "messages": USER})
    stats = sim.stats()
    assert stats["requests_received"] == 6
    assert stats["requests_served"] == 2
    assert stats["rate_limited"] == {"requests": 1, "tokens": 0}
    assert stats["context_length_exceeded"] == 1
    assert stats["bad_requests"] == 1
    assert stats["not_found"] == 1
    two = stats["models"]["two-rpm"]
    assert [event for _, event, _ in two["timeline"]] == [
        "served",
        "served",
        "rate_limited:requests",
    ]
    assert two["tokens_admitted"] == two["prompt_tokens"]


def test_authorization_header_is_accepted_and_optional(sim):
    with_key = post(
        sim,
        {"model": "gpt-4o-mini", "messages": USER},
        headers={"Authorization": "Bearer sk-anything"},
    )
    without = post(sim, {"model": "gpt-4o-mini", "messages": USER})
    assert with_key.status_code == without.status_code == 200


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": USER}, "model", "missing_required_parameter"),
        ({"model": 3, "messages": USER}, "model", "invalid_type"),
        ({"model": "gpt-4o-mini"}, "messages", "missing_required_parameter"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages", "empty_array"),
        ({"model": "gpt-4o-mini", "messages": "hi"}, "messages", "invalid_type"),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "invalid_type",
        ),
        ({"model": "gpt-4o-mini", "messages": USER, "n": 2}, "n", "invalid_value"),
        (
            {"model": "gpt-4o-mini", "messages": USER, "max_tokens": 0},
            "max_tokens",
            "integer_below_min_value",
        ),
        (
            {"model": "gpt-4o-mini", "messages": USER, "max_tokens": "many"},
            "max_tokens",
            "invalid_type",
        ),
        ({"model": "gpt-4o-mini", "messages": USER, "stream": "yes"}, "stream", "invalid_type"),
        ({"model": "gpt-4o-mini", "messages": USER, "stop": [1]}, "stop", "invalid_type"),
        (
            {"model": "gpt-4o-mini", "messages": USER, "tool_choice": "auto"},
            "tool_choice",
            "invalid_value",
        ),
        (
            {"model": "gpt-4o-mini", "messages": USER, "stream_options": {"include_usage": True}},
            "stream_options",
            "invalid_value",
        ),
    ],
)
def test_bad_requests_get_openai_shaped_400s(sim, body, param, code):
    r = post(sim, body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code
    assert error["message"]


def test_invalid_json_body_is_a_400(sim):
    r = httpx.post(
        f"{sim.base_url}/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert "could not parse the JSON body" in r.json()["error"]["message"]


def test_unknown_model_is_a_404_model_not_found(sim):
    r = post(sim, {"model": "gpt-9", "messages": USER})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    assert "`gpt-9`" in r.json()["error"]["message"]


def test_unknown_route_is_an_openai_shaped_404(sim):
    r = httpx.get(f"{sim.base_url}/embeddings")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (GET /v1/embeddings)"
