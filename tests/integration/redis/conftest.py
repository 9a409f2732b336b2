"""Fixtures for the Redis backend tests: a shared private redis-server, and throwaway ones."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis import RedisServer, redis_binary, running_server

if importlib.util.find_spec("redis") is None:
    # Without the client library these modules cannot even be imported: leave them out (the
    # conformance suite's Redis case still skips, with the install hint).
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the tests that leave it running."""
    yield from running_server()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, which it may stop, restart or pause."""
    server = RedisServer(redis_binary(), tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_backend(redis_server: RedisServer) -> Iterator[Callable[..., Any]]:
    """Build RedisBackends on the shared server, each test under a prefix of its own."""
    from llm_routing.schedule.redis import RedisBackend

    prefix = f"t-{uuid.uuid4().hex[:10]}"
    built: list[RedisBackend] = []

    def make(**kwargs: Any) -> RedisBackend:
        kwargs.setdefault("prefix", prefix)
        backend = RedisBackend(kwargs.pop("url", redis_server.url), **kwargs)
        built.append(backend)
        return backend

    yield make
    for backend in built:
        backend.close()


@pytest.fixture
def raw_redis(redis_server: RedisServer) -> Iterator[Any]:
    """A plain redis client on the shared server, to look at what the backend stored."""
    import redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()
