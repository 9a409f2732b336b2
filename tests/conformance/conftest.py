"""Backends under the conformance suite: add a factory here and every test runs against it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import VirtualClock
from llm_routing.schedule.memory import MemoryBackend
from tests.support.redis import RedisServer, running_server

BackendFactory = Callable[[VirtualClock], Backend]


def _memory(clock: VirtualClock) -> Backend:
    return MemoryBackend(clock)


def _redis(clock: VirtualClock) -> Backend:
    raise AssertionError("placeholder: backend_factory builds Redis backends itself")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the session (skips with an install hint without one)."""
    yield from running_server()


@pytest.fixture(params=[_memory, _redis], ids=["memory", "redis"])
def backend_factory(request: pytest.FixtureRequest) -> BackendFactory:
    """Build a fresh, empty backend whose time is the given virtual clock."""
    if request.param is not _redis:
        return request.param
    server: RedisServer = request.getfixturevalue("redis_server")
    from llm_routing.schedule.redis import RedisBackend

    def build(clock: VirtualClock) -> Backend:
        # A prefix of its own per test: a fresh, empty state without flushing the server.
        backend = RedisBackend(server.url, prefix=f"conf-{uuid.uuid4().hex[:8]}", clock=clock)
        request.addfinalizer(backend.close)
        return backend

    return build
