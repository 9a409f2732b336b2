"""The shared Redis plumbing (llm_routing._redis) on a real redis-server: one script, both colours."""

from __future__ import annotations

import asyncio

import pytest
import redis

from llm_routing._redis import (
    UNREACHABLE,
    Script,
    check_prefix,
    check_target,
    connect,
    socket_timeout_of,
)

LUA = "return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}"


def test_a_script_runs_on_the_sync_client_and_on_the_running_loop(redis_server):
    client = connect(redis_server.url, 1.0)
    assert socket_timeout_of(client) == 1.0
    script = Script(LUA, client, url=redis_server.url, socket_timeout=1.0)
    client.delete("plumbing:n")
    assert script(["plumbing:n"], ["2"])[2] == 2

    async def twice() -> list[int]:
        first = await script.acall(["plumbing:n"], ["3"])
        assert script.for_loop() is script.for_loop()  # one client per loop
        second = await script.acall(["plumbing:n"], ["4"])
        await script.aclose_loop()
        return [first[2], second[2]]

    assert asyncio.run(twice()) == [5, 9]
    client.close()


def test_without_a_url_async_callers_run_the_sync_script_off_the_loop(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    script = Script(LUA, client)
    client.delete("plumbing:m")

    async def once() -> int:
        assert script.for_loop() is None
        return int((await script.acall(["plumbing:m"], ["7"]))[2])

    assert asyncio.run(once()) == 7
    assert socket_timeout_of(client) == 1.0  # none set: the default
    client.close()


def test_an_unreachable_redis_fails_within_the_socket_timeout():
    script = Script(LUA, connect("redis://127.0.0.1:1/0", 0.2))
    with pytest.raises(UNREACHABLE):
        script(["k"], ["1"])


@pytest.mark.parametrize(
    ("url", "client", "match"),
    [
        (None, None, "exactly one of url"),
        ("redis://x", object(), "exactly one of url"),
        (b"redis://x", None, "must be a str"),
        (None, object(), "must be a redis.Redis"),
    ],
)
def test_targets_are_checked_in_the_owners_name(url, client, match):
    with pytest.raises(TypeError, match=match) as caught:
        check_target("Owner", url, client)
    assert str(caught.value).startswith("Owner")


@pytest.mark.parametrize("prefix", ["", "a{b", "b}", 3])
def test_a_prefix_with_braces_or_empty_is_refused(prefix):
    with pytest.raises(ValueError, match=r"Owner\(prefix=…\)"):
        check_prefix("Owner", prefix)
