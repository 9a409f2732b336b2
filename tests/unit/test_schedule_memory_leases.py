"""MemoryBackend's in-flight leases: a live owner keeps its slot, a vanished one frees it.

The owners are weak references (no removal callback), so the backend itself must drop the
reference of an owner that died once its lease runs out.
"""

import gc

from llm_routing.schedule.limits import RateLimits, Request
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.virtual import VirtualClock

LIMITS = RateLimits(rpm=1000, tpm=10**9, max_concurrency=1)
REQUEST = Request(input_tokens=10, output_tokens=10)


class Owner:
    """Stands for the admitted call's ticket."""


def _admit(backend: MemoryBackend, rid: str) -> bool:
    return backend.try_acquire("m", LIMITS, REQUEST, rid).admit


def test_a_live_owner_keeps_its_slot_past_the_lease():
    clock = VirtualClock()
    backend = MemoryBackend(clock, lease_s=10)
    assert _admit(backend, "a")
    owner = Owner()
    assert backend.own("m", "a", owner)
    clock.advance(25)
    assert not _admit(backend, "b")  # renewed: the one slot is still taken
    assert "a" in backend._owners
    backend.settle("m", LIMITS, "a", 10, 5)
    assert "a" not in backend._owners
    assert _admit(backend, "b")
    del owner


def test_a_vanished_owner_frees_its_slot_and_its_reference_after_the_lease():
    clock = VirtualClock()
    backend = MemoryBackend(clock, lease_s=10)
    assert _admit(backend, "a")
    owner = Owner()
    backend.own("m", "a", owner)
    del owner
    gc.collect()
    clock.advance(5)
    assert not _admit(backend, "b")  # within the lease the slot stays taken
    clock.advance(6)
    assert _admit(backend, "b")
    assert "a" not in backend._owners
