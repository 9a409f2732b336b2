"""Moved: the scheduler's Lua script lives in ``schedule.redis.script``; old imports still work."""

from llm_routing.schedule.redis.script import KEY_SUFFIXES, POLICY_LUA

__all__ = ["KEY_SUFFIXES", "POLICY_LUA"]
