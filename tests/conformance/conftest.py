"""Backends under the conformance suite: add a factory here and every test runs against it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llm_routing.schedule.backend import Backend
from llm_routing.schedule.clock import VirtualClock
from llm_routing.schedule.memory import MemoryBackend

BackendFactory = Callable[[VirtualClock], Backend]


def _memory(clock: VirtualClock) -> Backend:
    return MemoryBackend(clock)


@pytest.fixture(params=[_memory], ids=["memory"])
def backend_factory(request: pytest.FixtureRequest) -> BackendFactory:
    """Build a fresh, empty backend whose time is the given virtual clock."""
    return request.param
