"""The Redis operations as one table: script operation, arguments, reply, what an outage means.

An ``_op_*`` method builds the entry (or answers at once, `_Done`, when Redis is not needed:
a request that never fits, a reservation the in-process fallback holds); ``RedisBackend``'s
one sync and one async runner run every entry, so no operation is written twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar

from llm_routing.schedule import policy
from llm_routing.schedule.limits import Decision, RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.memory import MemoryBackend
from llm_routing.schedule.projection import project
from llm_routing.schedule.redis.codec import (
    acquire_args,
    check_key,
    check_rid,
    correct_args,
    decision,
    load_args,
    settle_args,
    state_from,
    text,
    until_arg,
)
from llm_routing.schedule.state import ModelState

if TYPE_CHECKING:
    from llm_routing.schedule.redis.health import RedisUnavailableError, _Down

__all__: list[str] = []

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Op(Generic[_T]):
    """One script run: its operation, key and encoded arguments, and how it ends.

    ``decode`` reads the reply; ``down`` says what Redis being unreachable means for it (fall
    back to memory, log it lost, or raise).
    """

    name: str
    key: str
    args: Sequence[str]
    decode: Callable[[Any], _T]
    down: Callable[[_Down], _T]


@dataclass(frozen=True, slots=True)
class _Done(Generic[_T]):
    """An operation answered without Redis."""

    value: _T


def _nothing(raw: Any) -> None:
    """The reply of an operation that answers nothing the caller needs."""


class _Operations:
    """The operations half of `RedisBackend`: its state is the backend's own attributes."""

    on_unavailable: Literal["fail", "memory"]
    lease_s: float | None
    _lock: threading.Lock
    _fallback_rids: set[str]

    if TYPE_CHECKING:

        def _offset_arg(self) -> str: ...
        def _memory(self) -> MemoryBackend: ...
        def _notify(self, key: str) -> None: ...
        def _lost(self, what: str, key: str, down: _Down) -> None: ...
        def _unavailable(self, down: _Down) -> RedisUnavailableError: ...

    # ------------------------------------------------------------------ what Redis being down means

    def _refuse(self, down: _Down) -> NoReturn:
        raise self._unavailable(down) from down.cause

    def _memory_or_refuse(self, down: _Down, fallback: Callable[[MemoryBackend], _T]) -> _T:
        """Admission and reading: per-process limits with ``on_unavailable="memory"``."""
        if self.on_unavailable == "memory":
            return fallback(self._memory())
        self._refuse(down)

    def _memory_or_lost(
        self, down: _Down, what: str, key: str, fallback: Callable[[MemoryBackend], None]
    ) -> None:
        """News for the windows (a cooldown, a correction): kept in memory, or logged lost."""
        if self.on_unavailable == "memory":
            fallback(self._memory())
        else:
            self._lost(what, key, down)

    def _lost_settlement(self, down: _Down, what: str, key: str) -> bool:
        """A settle or release of a request already sent never raises: it is logged."""
        self._lost(what, key, down)
        return False

    def _freed(self, key: str, freed: bool) -> bool:
        if freed:
            self._notify(key)
        return freed

    # ------------------------------------------------------------------ the table

    def _op_acquire(
        self, key: str, limits: RateLimits, request: Request, rid: str
    ) -> _Op[Decision] | _Done[Decision]:
        check_key(key)
        check_rid(rid)
        never = policy.decide(ModelState(), limits, 0.0, request)
        if never.never is not None:
            return _Done(never)
        return _Op(
            "acquire",
            key,
            acquire_args(limits, request, rid, self._offset_arg(), self.lease_s),
            lambda raw: decision(raw, rid),
            lambda down: self._memory_or_refuse(
                down, lambda _: self._admitted_locally(key, limits, request, rid)
            ),
        )

    def _admitted_locally(
        self, key: str, limits: RateLimits, request: Request, rid: str
    ) -> Decision:
        found = self._memory().try_acquire(key, limits, request, rid)
        if found.admit:
            with self._lock:
                self._fallback_rids.add(rid)
        return found

    def _op_renew(self, key: str, rids: Sequence[str]) -> _Op[int] | _Done[int]:
        check_key(key)
        if self.lease_s is None or not rids:
            return _Done(0)
        local = self._local_rids(rids)
        renewed = self._memory().renew(key, local) if local else 0
        remote = [rid for rid in rids if rid not in local]
        if not remote:
            return _Done(renewed)
        args = [repr(self.lease_s), *remote]
        return _Op("renew", key, args, lambda raw: renewed + int(raw), self._refuse)

    def _op_settle(
        self,
        key: str,
        limits: RateLimits,
        rid: str,
        input_tokens: int,
        output_tokens: int,
        answered_at: float | None,
    ) -> _Op[bool] | _Done[bool]:
        check_key(key)
        check_rid(rid)
        offset = self._offset_arg()
        args = settle_args(limits, rid, input_tokens, output_tokens, answered_at, offset)
        if self._is_local(rid):
            memory = self._memory()
            tokens = (input_tokens, output_tokens)
            freed = memory.settle(key, limits, rid, *tokens, answered_at=answered_at)
            return _Done(self._freed(key, freed))
        return _Op(
            "settle",
            key,
            args,
            lambda raw: self._freed(key, int(raw) == 1),
            lambda down: self._lost_settlement(down, "settle", key),
        )

    def _op_release(self, key: str, rid: str, keep_request: bool) -> _Op[bool] | _Done[bool]:
        check_key(key)
        check_rid(rid)
        if self._is_local(rid):
            freed = self._memory().release(key, rid, keep_request=keep_request)
            return _Done(self._freed(key, freed))
        return _Op(
            "release",
            key,
            [rid, "1" if keep_request else "0"],
            lambda raw: self._freed(key, int(raw) == 1),
            lambda down: self._lost_settlement(down, "release", key),
        )

    def _op_cooldown(self, key: str, until: float) -> _Op[None]:
        check_key(key)
        return _Op(
            "cooldown",
            key,
            [until_arg(until)],
            _nothing,
            lambda down: self._memory_or_lost(
                down, "cooldown", key, lambda memory: memory.cooldown(key, until)
            ),
        )

    def _op_correct(self, key: str, limits: RateLimits, headers: RateLimitHeaders) -> _Op[None]:
        check_key(key)
        return _Op(
            "correct",
            key,
            correct_args(limits, headers, self._offset_arg()),
            _nothing,
            lambda down: self._memory_or_lost(
                down, "correct", key, lambda memory: memory.correct(key, limits, headers)
            ),
        )

    def _op_project(
        self, key: str, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> _Op[Decision] | _Done[Decision]:
        check_key(key)
        if not pending:
            never = policy.decide(ModelState(), limits, 0.0, request)
            if never.never is not None:
                return _Done(never)
        return _Op(
            "load",
            key,
            load_args(limits, pending, request, self._offset_arg()),
            lambda raw: self._project_on(raw, limits, pending, request),
            lambda down: self._memory_or_refuse(
                down, lambda memory: memory.project(key, limits, pending, request)
            ),
        )

    def _project_on(
        self, raw: Any, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        if len(raw) == 1:
            return Decision(True, float(text(raw[0])), None, None, False)
        now, state = state_from(raw, float(self._offset_arg()))
        return project(state, limits, now, pending, request)

    def _local_rids(self, rids: Sequence[str]) -> list[str]:
        """The rids admitted by the in-process fallback while Redis was away."""
        with self._lock:
            return [rid for rid in rids if rid in self._fallback_rids]

    def _is_local(self, rid: str) -> bool:
        with self._lock:
            if rid in self._fallback_rids:
                self._fallback_rids.discard(rid)
                return True
            return False
