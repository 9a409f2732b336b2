"""from_config: files and mappings into build_router, and one error per kind of mistake.

Models are real ChatOpenAI/ChatAnthropic instances pointed at a closed loopback port; no test
sends a request.
"""

from __future__ import annotations

import sys
import warnings

import pytest

from llm_routing.config import from_config
from llm_routing.router.config_checks import ConfigError

INIT = {"api_key": "sk-test", "base_url": "http://127.0.0.1:9/v1"}

TOML = """
[router]
primary = "openai:gpt-4o-mini"
fallbacks = ["anthropic:claude-haiku-4-5"]
large_context = ["openai:gpt-4.1", "openai:o3"]
tier = "tier1"
max_wait = 90

[guard]
safety = 0.8
reserve_output = 4096

[defaults]
timeout = 30

[models."openai:gpt-4o-mini"]
temperature = 0
"""

YAML = """
router:
  primary: anthropic:claude-haiku-4-5
  fallbacks: [openai:gpt-4o-mini]
models:
  anthropic:claude-haiku-4-5:
    temperature: 0.5
"""


def bound(router, position):
    return router.models[position].bound


def build(data, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scheduler not built in yet: tier settings warn once
        return from_config(data, init_kwargs=INIT, **overrides)


def error_for(exc_type, data, **overrides):
    with pytest.raises(exc_type) as info:
        build(data, **overrides)
    return str(info.value)


def minimal(**router):
    return {"router": {"primary": "openai:gpt-4o-mini", **router}}


# --- building ---------------------------------------------------------------------------------


def test_toml_file_builds_the_chain_in_order_with_large_context_by_window(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(TOML)
    router = build(path)
    assert router.names == (
        "openai:gpt-4o-mini",
        "anthropic:claude-haiku-4-5",
        "openai:o3",
        "openai:gpt-4.1",
    )


def test_toml_guard_table_configures_the_guard(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(TOML)
    guard = build(str(path)).settings["guard"]
    assert guard.safety == 0.8
    assert guard.reserve_output == 4096


def test_per_model_table_applies_to_that_model_only(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(TOML)
    router = build(path)
    assert bound(router, 0).temperature == 0
    assert bound(router, 2).temperature is None


def test_defaults_reach_every_model_and_retries_stay_off(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(TOML)
    router = build(path)
    assert [bound(router, i).max_retries for i in range(4)] == [0, 0, 0, 0]
    assert bound(router, 0).request_timeout == 30
    assert bound(router, 3).request_timeout == 30
    assert bound(router, 1).default_request_timeout == 30


def test_yaml_file_builds_the_same_way(tmp_path):
    path = tmp_path / "router.yaml"
    path.write_text(YAML)
    router = build(path)
    assert router.names == ("anthropic:claude-haiku-4-5", "openai:gpt-4o-mini")
    assert bound(router, 0).temperature == 0.5


def test_tier_table_is_passed_through():
    router = build(
        {
            "router": {
                "primary": "openai:gpt-4o-mini",
                "fallbacks": ["anthropic:claude-haiku-4-5"],
                "tier": {"openai": "tier2", "anthropic": "tier1"},
            }
        }
    )
    assert router.settings["tier"] == {"openai": "tier2", "anthropic": "tier1"}


def test_keyword_overrides_win_over_the_file():
    router = build(minimal(max_wait=5), max_wait=12)
    assert router.settings["max_wait"] == 12


def test_a_single_model_override_is_one_model_not_its_characters():
    router = build(minimal(), fallbacks="anthropic:claude-haiku-4-5")
    assert router.names == ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")


def test_guard_can_be_disabled():
    router = build({**minimal(), "guard": {"enabled": False}})
    assert router.settings["guard"] is None


# --- mistakes ---------------------------------------------------------------------------------


def test_unknown_key_names_the_dotted_path_the_file_and_a_suggestion(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text('[router]\nprimary = "openai:gpt-4o-mini"\nfallback = []\n')
    message = error_for(ValueError, path)
    assert "router.fallback: unknown key; did you mean 'fallbacks'?" in message
    assert str(path) in message


def test_unknown_top_level_and_guard_keys_are_rejected():
    assert "routr: unknown key" in error_for(ValueError, {"routr": {}})
    assert "guard.safty" in error_for(ValueError, {**minimal(), "guard": {"safty": 0.9}})


def test_missing_primary_is_named():
    assert "router.primary: missing" in error_for(ValueError, {"router": {}})


def test_wrong_type_names_the_key_and_expected_type():
    message = error_for(TypeError, minimal(max_wait="90"))
    assert "router.max_wait: expected a number" in message
    message = error_for(TypeError, minimal(fallbacks="anthropic:claude-haiku-4-5"))
    assert "router.fallbacks: expected a list of model names" in message


def test_wrong_type_inside_a_list_names_its_index():
    message = error_for(TypeError, minimal(fallbacks=["anthropic:claude-haiku-4-5", 3]))
    assert "router.fallbacks[1]" in message


def test_negative_max_wait_is_named():
    assert "router.max_wait: must be >= 0" in error_for(ValueError, minimal(max_wait=-1))


def test_safety_outside_zero_to_one_is_named():
    message = error_for(ValueError, {**minimal(), "guard": {"safety": 1.5}})
    assert "guard.safety: must be in (0, 1]" in message


def test_unknown_tier_names_the_model_and_the_known_tiers():
    message = error_for(ValueError, minimal(tier="tier9"))
    assert "router.tier: unknown tier 'tier9' for openai:gpt-4o-mini" in message
    assert "tier1" in message


def test_tier_table_for_a_provider_the_router_does_not_use_is_named():
    message = error_for(ValueError, minimal(tier={"anthropic": "tier1"}))
    assert "router.tier.anthropic: no model of provider 'anthropic'" in message


def test_per_model_table_for_a_model_not_in_the_router_is_named():
    message = error_for(ValueError, {**minimal(), "models": {"openai:gpt-4o-mni": {}}})
    assert 'models."openai:gpt-4o-mni": names no model of the router' in message
    assert "did you mean 'openai:gpt-4o-mini'?" in message


def test_unknown_keyword_override_is_a_type_error_with_a_suggestion():
    message = error_for(TypeError, minimal(), fallback=["x:y"])
    assert "'fallback'" in message
    assert "did you mean 'fallbacks'" in message


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(FileNotFoundError) as info:
        from_config(path)
    assert str(path) in str(info.value)


def test_invalid_toml_names_the_path_and_the_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[router]\nprimary = openai:gpt-4o-mini\n")
    message = error_for(ValueError, path)
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 2" in message


def test_invalid_yaml_names_the_path_and_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("router:\n  primary: [unclosed\n")
    message = error_for(ValueError, path)
    assert str(path) in message
    assert "not valid YAML" in message
    assert "line" in message


def test_unsupported_suffix_is_rejected(tmp_path):
    path = tmp_path / "router.json"
    path.write_text("{}")
    assert ".toml, .yaml or .yml" in error_for(ValueError, path)


def test_yaml_without_pyyaml_asks_for_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    path = tmp_path / "router.yml"
    path.write_text(YAML)
    assert "pip install pyyaml" in error_for(ImportError, path)


# --------------------------------------------------------------------------- every knob

KNOBS = """
[router]
primary = "openai:gpt-4o-mini"
fallbacks = ["openai:gpt-4o"]
max_wait = 20

[scheduler]
pacing = "burst"
max_retries = 1
reserve_output = 512
quota_cooldown = 30

[scheduler.limits."openai:gpt-4o-mini"]
rpm = 30
tpm = 200000

[budget]
total = 5.0
day = 1.0
warn_at = 0.5
hold_lease = 10

[guard]
safety = 0.8
reserve_output = 2048
"""


def test_scheduler_and_budget_tables_reach_the_scheduler_and_the_tracker(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(KNOBS)
    router = build(path)
    scheduler, tracker = router.settings["scheduler"], router.settings["tracker"]
    assert (scheduler.max_wait, scheduler.max_retries, scheduler.pacing) == (20, 1, "burst")
    assert (scheduler.reserve_output, scheduler.quota_cooldown) == (512, 30)
    assert scheduler.limits_for("openai:gpt-4o-mini").rpm == 30
    assert scheduler.limits_for("openai:gpt-4o").rpm == 500  # the catalogue's tier1
    assert {(b.period, float(b.limit_usd)) for b in tracker.budgets} == {
        ("total", 5.0),
        ("day", 1.0),
    }
    assert tracker.max_wait == 20  # router.max_wait bounds both, as build_router does
    assert router.settings["guard"].safety == 0.8


def test_router_budget_usd_goes_to_the_tracker_built_for_a_scheduler_table():
    router = build(
        {
            "router": {"primary": "openai:gpt-4o-mini", "budget_usd": 2},
            "scheduler": {"limits": {"gpt-4o-mini": {"rpm": 3}}},
        }
    )
    assert [float(b.limit_usd) for b in router.settings["tracker"].budgets] == [2.0]


def test_every_mistake_of_a_file_is_reported_at_once_with_its_dotted_key(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(
        """
[router]
primary = "openai:gpt-4o-mini"
max_wiat = 3
budget_usd = 1

[scheduler]
pacing = "fast"
lease_s = 5

[scheduler.limits."openai:gpt-4o-minii"]
rpm = 3

[scheduler.limits."openai:gpt-4o"]
rpmm = 3

[budget]
total = 1
day = "1.0"
weekly = 3

[guard]
safety = 2

[langfuse]
secret_key = "sk-lf-..."
"""
    )
    with pytest.raises(ConfigError) as info:
        build(path)
    message = str(info.value)
    assert message.startswith(f"10 mistakes in {path}; fix each:")
    for expected in (
        "- router.max_wiat: unknown key; did you mean 'max_wait'?",
        "- scheduler.pacing: must be 'auto'",
        "- scheduler.lease_s: configures the Redis backend, but router.backend is 'memory'",
        '- scheduler.limits."openai:gpt-4o-minii": the catalogue has no model '
        "'openai:gpt-4o-minii'; did you mean 'openai:gpt-4o-mini'?",
        "- scheduler.limits.\"openai:gpt-4o\": unknown key(s) ['rpmm']",
        "- budget.weekly: unknown key",
        "- budget.day: expected a number, got str '1.0'",
        "- budget.total: router.budget_usd sets the same total budget; keep one",
        "- guard.safety: must be in (0, 1]",
        "- langfuse.secret_key: a secret does not belong in a config file",
    ):
        assert expected in message
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert len(info.value.problems) == 10


def test_a_table_an_override_would_make_pointless_is_named():
    from llm_routing import RateScheduler

    message = error_for(
        ValueError,
        {"router": {"primary": "openai:gpt-4o-mini"}, "scheduler": {"max_retries": 1}},
        scheduler=RateScheduler(),
    )
    assert message.startswith("[scheduler]: configures the default scheduler")


def test_redis_options_build_the_redis_backend():
    pytest.importorskip("redis")
    router = build(
        {
            "router": {"primary": "openai:gpt-4o-mini", "backend": "redis://127.0.0.1:9/0"},
            "scheduler": {"lease_s": 7, "prefix": "team-a"},
        }
    )
    backend = router.settings["scheduler"].backend
    assert (backend.lease_s, backend.prefix) == (7, "team-a")


def test_langfuse_table_builds_a_client_and_enabled_false_turns_it_off(monkeypatch):
    pytest.importorskip("langfuse")
    made = []

    class Client:
        def __init__(self, **kwargs):
            made.append(kwargs)

    monkeypatch.setattr("langfuse.Langfuse", Client)
    monkeypatch.setattr(
        "llm_routing.router.build._langfuse_handler",
        lambda value: None if value is False else ("handler", value),
    )
    router = build(
        {
            "router": {"primary": "openai:gpt-4o-mini"},
            "langfuse": {"host": "http://127.0.0.1:9", "public_key": "pk-lf-1"},
        }
    )
    assert made == [{"host": "http://127.0.0.1:9", "public_key": "pk-lf-1"}]
    assert isinstance(router.settings["langfuse"][1], Client)
    off = build({"router": {"primary": "openai:gpt-4o-mini"}, "langfuse": {"enabled": False}})
    assert off.settings["langfuse"] is None


def test_the_readme_config_example_builds_key_for_key(monkeypatch):
    # README's "The config file" block documents every key; it must stay a working file.
    import re
    import tomllib
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The config file") :]
    data = tomllib.loads(re.search(r"```toml\n(.*?)```", section, re.DOTALL).group(1))
    made = []
    monkeypatch.setattr("langfuse.Langfuse", lambda **kwargs: made.append(kwargs) or object())
    monkeypatch.setattr("llm_routing.router.build._langfuse_handler", lambda value: None)
    data["models"] = {"openai:gpt-4o-mini": {"base_url": INIT["base_url"]}}
    router = build(data)
    assert router.settings["scheduler"].limits_for("openai:gpt-4o-mini").rpm == 30
    assert router.settings["scheduler"].limits_for("anthropic:claude-opus-4-5").rpm == 50
    assert made == [{"host": "https://cloud.langfuse.com", "sample_rate": 1.0}]


def test_several_mistakes_in_one_table_are_each_named():
    with pytest.raises(ConfigError) as info:
        build(
            {
                "router": {"primary": "openai:gpt-4o-mini"},
                "guard": {"safety": 0, "reserve_output": -1, "enabeld": True},
                "models": {"openai:gpt-4o-mni": {}, "openai:gpt-4o-mini": 3},
            }
        )
    keys = [str(p).partition(":")[0] for p in info.value.problems]
    assert keys == [
        "guard.enabeld",
        "guard.safety",
        "guard.reserve_output",
        'models."openai',
        'models."openai',
    ]
    assert "did you mean 'openai:gpt-4o-mini'?" in str(info.value)


def test_limit_groups_share_windows_and_their_mistakes_are_named():
    router = build(
        {
            "router": {"primary": "openai:gpt-4o-mini", "fallbacks": ["openai:gpt-4.1-mini"]},
            "scheduler": {
                "limit_groups": {
                    "mini": {"models": ["openai:gpt-4o-mini", "openai:gpt-4.1-mini"], "rpm": 40}
                }
            },
        }
    )
    scheduler = router.settings["scheduler"]
    assert scheduler.limits_for("openai:gpt-4.1-mini").rpm == 40
    with pytest.raises(ConfigError) as info:
        build(
            {
                "router": {"primary": "openai:gpt-4o-mini"},
                "scheduler": {
                    "limits": {"openai:gpt-4o": {"rpm": 3}},
                    "limit_groups": {
                        "a": {"models": ["openai:gpt-4o-minii"], "rpm": 3},
                        "b": {"models": ["openai:gpt-4o"], "rpm": 3},
                    },
                },
            }
        )
    message = str(info.value)
    assert "- scheduler.limit_groups.a: the catalogue has no model 'openai:gpt-4o-minii'" in message
    assert "- scheduler.limit_groups: 'openai:gpt-4o' also has limits" in message
