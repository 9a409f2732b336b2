"""The scheduler's async path calls only the backend's async twins: no blocking call on the loop.

A networked backend (Redis) does a round trip in every sync method; called from ``ainvoke`` or
``astream`` that would stall every other coroutine of the loop. The backend here is the memory
backend posing as a networked one (``in_process = False``) and recording which of its methods
ran: through a 429 (release, correction, cooldown), a retry and a success (settle, correction),
and a stream broken after its first chunk (settle of what arrived), only ``a*`` methods may.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from test_scheduler import Fake, rate_limited, usage

from llm_routing.schedule import MemoryBackend, RateScheduler, VirtualClock

SYNC = ("try_acquire", "settle", "release", "cooldown", "correct", "project", "renew")
HEADERS = {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1s"}


class Networked(MemoryBackend):
    """The memory backend as a networked one would be called, recording each method that ran."""

    in_process: ClassVar[bool] = False

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.ran: list[str] = []
        self._ran_lock = threading.Lock()

    def _note(self, name: str) -> None:
        with self._ran_lock:
            self.ran.append(name)


def _recorded(name: str) -> tuple[Any, Any]:
    sync = getattr(MemoryBackend, name)

    def method(self: Networked, *args: Any, **kwargs: Any) -> Any:
        self._note(name)
        return sync(self, *args, **kwargs)

    async def amethod(self: Networked, *args: Any, **kwargs: Any) -> Any:
        self._note("a" + name)
        return sync(self, *args, **kwargs)

    return method, amethod


for _name in SYNC:
    _sync, _async = _recorded(_name)
    setattr(Networked, _name, _sync)
    setattr(Networked, "a" + _name, _async)


class WithHeaders(Fake):
    """A fake whose answers carry OpenAI's rate-limit headers, so ``after`` corrects."""

    def _result(self) -> ChatResult:
        message = AIMessage(
            content=self.reply,
            usage_metadata=self.usage,
            response_metadata={"headers": HEADERS},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _scheduled(model: Fake, backend: Networked, clock: VirtualClock) -> Any:
    scheduler = RateScheduler(
        clock=clock,
        backend=backend,
        pacing="burst",
        limits={"openai:gpt-4o-mini": {"rpm": 100, "tpm": 100_000}},
    )
    return scheduler | model


def _sync_calls(backend: Networked) -> list[str]:
    return [name for name in backend.ran if name in SYNC]


async def test_ainvoke_through_a_429_and_a_success_calls_only_async_twins():
    clock = VirtualClock()
    backend = Networked(clock)
    model = WithHeaders(clock=clock, usage=usage(10, 5), errors=[rate_limited(1.0), None])
    answer = await _scheduled(model, backend, clock).ainvoke("hi")
    assert answer.content == "ok"
    assert model.calls == 2
    assert _sync_calls(backend) == []
    # The 429's give-back and cooldown, the retry's admission, its settlement and correction.
    for name in ("atry_acquire", "arelease", "acooldown", "asettle", "acorrect"):
        assert name in backend.ran


async def test_astream_through_a_429_and_a_success_calls_only_async_twins():
    clock = VirtualClock()
    backend = Networked(clock)
    model = Fake(clock=clock, reply="one two three", errors=[rate_limited(1.0), None])
    chunks = [chunk async for chunk in _scheduled(model, backend, clock).astream("hi")]
    assert "".join(chunk.content for chunk in chunks) == "one two three"
    assert _sync_calls(backend) == []
    for name in ("atry_acquire", "arelease", "acooldown", "asettle"):
        assert name in backend.ran


async def test_a_stream_broken_after_its_first_chunk_settles_with_the_async_twin():
    clock = VirtualClock()
    backend = Networked(clock)
    model = Fake(clock=clock, reply="one two three", break_after=1)
    with pytest.raises(ConnectionError):
        async for _ in _scheduled(model, backend, clock).astream("hi"):
            pass
    assert _sync_calls(backend) == []
    assert backend.ran.count("asettle") == 1


def test_the_sync_path_still_calls_the_sync_methods():
    clock = VirtualClock()
    backend = Networked(clock)
    model = WithHeaders(clock=clock, usage=usage(10, 5), errors=[rate_limited(1.0), None])
    assert _scheduled(model, backend, clock).invoke("hi").content == "ok"
    assert [name for name in backend.ran if name.startswith("a")] == []
    for name in ("try_acquire", "release", "cooldown", "settle", "correct"):
        assert name in backend.ran
