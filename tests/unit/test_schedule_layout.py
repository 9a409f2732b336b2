"""The scheduler package's old import paths still reach the same objects after the split.

``schedule.policy`` held the values and the projection, ``schedule.queue`` the admission,
``schedule.limits`` the resolver, ``schedule.scaled`` and ``schedule.clock`` the clocks,
``schedule.redis`` was one module and ``schedule._redis_script`` the Lua: code written
against those paths keeps working.
"""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("policy", "RateLimits", "limits"),
    ("policy", "Request", "limits"),
    ("policy", "RateLimitHeaders", "limits"),
    ("policy", "Decision", "limits"),
    ("policy", "DAY_S", "limits"),
    ("policy", "NEVER_TOO_LARGE", "limits"),
    ("policy", "ModelState", "state"),
    ("policy", "project", "projection"),
    ("policy", "_Projection", "projection"),
    ("policy", "settle", "settlement"),
    ("policy", "release", "settlement"),
    ("policy", "renew", "settlement"),
    ("policy", "expire", "settlement"),
    ("policy", "cooldown", "settlement"),
    ("policy", "correct", "settlement"),
    ("policy", "PACE_SLOWDOWN", "settlement"),
    ("policy", "snapshot", "windows"),
    ("limits", "LimitResolver", "resolve"),
    ("limits", "api_key_fingerprint", "resolve"),
    ("limits", "check_pacing", "resolve"),
    ("resolve", "check_pacing", "overrides"),
    ("resolve", "paced_by_default", "overrides"),
    ("resolve", "PACING_MODES", "overrides"),
    ("queue", "Admission", "admission"),
    ("queue", "Ticket", "admission"),
    ("admission", "Ticket", "ticket"),
    ("scaled", "ScaledClock", "clock"),
    ("clock", "VirtualClock", "virtual"),
    ("_redis_script", "POLICY_LUA", "redis.script"),
    ("_redis_script", "KEY_SUFFIXES", "redis.script"),
    ("redis", "RedisBackend", "redis.backend"),
    ("redis", "RedisClock", "redis.clock"),
    ("redis", "RedisUnavailableError", "redis.health"),
    ("redis", "RedisUnavailableWarning", "redis.health"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_an_old_path_reaches_the_object_at_its_new_home(old, name, new):
    if "redis" in old + new:
        pytest.importorskip("redis")
    before = importlib.import_module(f"llm_routing.schedule.{old}")
    after = importlib.import_module(f"llm_routing.schedule.{new}")
    assert getattr(before, name) is getattr(after, name)


def test_the_package_face_is_unchanged():
    import llm_routing.schedule as schedule

    assert sorted(schedule.__all__) == sorted(
        [
            "DEFAULT_RESERVE_OUTPUT",
            "Admission",
            "Backend",
            "Clock",
            "MemoryBackend",
            "RateLimitHeaders",
            "RateLimits",
            "RateScheduler",
            "Request",
            "ScaledClock",
            "SystemClock",
            "Ticket",
            "VirtualClock",
        ]
    )


def test_an_unknown_name_is_still_an_attribute_error():
    from llm_routing.schedule import clock, limits, policy

    for module in (clock, limits, policy):
        with pytest.raises(AttributeError):
            module.no_such_name  # noqa: B018
