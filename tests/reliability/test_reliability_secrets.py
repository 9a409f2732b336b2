"""No secret leaks: a router holding fake secrets, driven through every path, every output grepped.

The engine (``benchmarks.reliability.secrets``) drives real ``ChatOpenAI`` clients over HTTP to
the simulator, a real password-protected redis-server and the real Langfuse SDK; these tests
assert what its figures must say. The engine's search itself is checked first, so a clean
scan cannot come from a blind one.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

import pytest

from benchmarks.reliability.secrets import (
    LANGFUSE_SINKS,
    REDIS_SINKS,
    SINKS,
    FakeSecrets,
    Scan,
    needles,
    render,
    run,
)

CLI_SINK = "cli: llm-routing demo --live --json"


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return run(quick=True, seed=9)


def _skip_reason(result: dict[str, Any], sink: str) -> str | None:
    skipped = result["skipped"]
    if sink in REDIS_SINKS and "redis" in skipped:
        return skipped["redis"]
    if sink in LANGFUSE_SINKS and "langfuse" in skipped:
        return skipped["langfuse"]
    if sink == CLI_SINK and "cli" in skipped:
        return skipped["cli"]
    return None


# --- the search finds what it looks for ------------------------------------------------------


@pytest.fixture
def fake() -> FakeSecrets:
    return FakeSecrets.new(seed=1)


def hits(fake: FakeSecrets, text: str | bytes) -> int:
    scan = Scan()
    scan.add("sink", "here", text)
    return scan.search(needles(fake))["sink"]["hits"]


@pytest.mark.parametrize("before", ["", "a", "ab", "user:", "pk-lf-1:"])
def test_search_finds_a_secret_base64_encoded_at_any_offset(fake, before):
    header = base64.b64encode(f"{before}{fake.api_key}".encode()).decode()
    assert hits(fake, f"Authorization: Basic {header}") >= 1


def test_search_finds_a_url_safe_base64_secret(fake):
    encoded = base64.urlsafe_b64encode(f"x{fake.langfuse_secret}y".encode()).decode()
    assert hits(fake, encoded) >= 1


def test_search_finds_a_key_masked_down_to_its_last_four(fake):
    assert hits(fake, f"Incorrect API key provided: sk-llmr-****{fake.api_key[-4:]}") == 1


def test_search_finds_a_secret_inside_pickled_bytes(fake):
    assert hits(fake, pickle.dumps({"password": fake.redis_password})) >= 1


def test_search_finds_nothing_in_hex_ids(fake):
    assert hits(fake, " ".join(f"{n:032x}" for n in range(0, 2**128, 2**112))) == 0


# --- the scan --------------------------------------------------------------------------------


@pytest.mark.parametrize("sink", SINKS)
def test_no_secret_reaches_the_sink(result, sink):
    reason = _skip_reason(result, sink)
    if reason is not None:
        pytest.skip(reason)
    entry = result["sinks"][sink]
    assert entry["hits"] == 0, entry["examples"]


@pytest.mark.parametrize("sink", SINKS)
def test_the_sink_was_filled(result, sink):
    reason = _skip_reason(result, sink)
    if reason is not None:
        pytest.skip(reason)
    assert result["sinks"][sink]["items"] > 0


def test_the_prompt_is_in_no_log_record_at_info_or_above(result):
    prompt = result["prompt"]
    assert prompt["records_at_info"] > 0
    assert prompt["prompt_hits_at_info"] == 0


def test_our_debug_logs_do_not_carry_the_prompt(result):
    assert result["prompt"]["prompt_hits_in_llm_routing_debug"] == 0


def outcome(result: dict[str, Any], variant: str, path: str) -> str:
    (found,) = [p for p in result["paths"] if p["variant"] == variant and p["path"] == path]
    return found["outcome"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("invoke", "served by openai:gpt-4o-mini"),
        ("fallback after 503", "served by openai:gpt-4o"),
        ("stream fallback after 503", "served by openai:gpt-4o"),
        ("all models 429", "AllModelsFailedError"),
        ("all models timeout", "AllModelsFailedError"),
        ("guard refuses (context)", "AllModelsFailedError"),
        ("provider refuses (context)", "AllModelsFailedError"),
        ("budget refuses", "AllModelsFailedError"),
        ("auth failure (401)", "OpenAIAuthenticationError"),
    ],
)
def test_each_path_reached_the_outcome_it_exercises(result, path, expected):
    assert outcome(result, "memory", path) == expected


def test_redis_down_is_refused_with_an_error_we_scanned(result):
    if "redis" in result["skipped"]:
        pytest.skip(result["skipped"]["redis"])
    assert outcome(result, "redis", "redis down (fail closed)") == "RedisUnavailableError"


def test_render_prints_every_sink_with_its_counts(result):
    text = render(result)
    for sink in SINKS:
        entry = result["sinks"][sink]
        assert f"| {sink} | {entry['items']} | {entry['hits']}" in text


def test_the_report_lists_no_violations(result):
    assert result["violations"] == []
