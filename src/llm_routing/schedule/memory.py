"""The in-process backend: the policy's state per key in a dict, under one ``threading.Lock``.

Owns atomicity and the capacity listeners for one process. It never waits and keeps
no queue (``schedule.admission``), and shares nothing across processes (a Redis backend does).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from llm_routing.schedule import policy, projection
from llm_routing.schedule.backend import DEFAULT_LEASE_S, Backend, check_lease
from llm_routing.schedule.clock import Clock, SystemClock
from llm_routing.schedule.limits import Decision, RateLimitHeaders, RateLimits, Request
from llm_routing.schedule.state import ModelState

__all__ = ["MemoryBackend"]


def _epoch_offset(clock: Clock) -> float:
    wall = getattr(clock, "wall", None)
    now = clock.now()
    return (float(wall()) if callable(wall) else time.time()) - now


class MemoryBackend(Backend):
    """Per-key policy state in this process; thread-safe, and usable from any event loop.

    In-flight slots are leases of ``lease_s`` seconds, as in ``RedisBackend``: a call that
    vanished without settling (its thread killed, its stream dropped unclosed) frees its
    ``max_concurrency`` slot within one lease. The scheduler renews its live calls.
    """

    in_process: ClassVar[bool] = True

    def __init__(
        self, clock: Clock | None = None, *, lease_s: float | None = DEFAULT_LEASE_S
    ) -> None:
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(
                f"MemoryBackend clock must provide now(), wait() and await_(), got {clock!r}"
            )
        self.lease_s = check_lease(lease_s, "MemoryBackend")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._states: dict[str, ModelState] = {}
        self._listeners: dict[str, tuple[Callable[[], None], ...]] = {}
        # A plain dict of weak references, not a WeakValueDictionary: every admitted call
        # adds one, and a reference without a removal callback costs a fraction of a keyed
        # one. Owners that died are dropped when their lease runs out (``_expire``).
        self._owners: dict[str, weakref.ref[Any]] = {}

    @property
    def clock(self) -> Clock:
        """The clock every decision reads."""
        return self._clock

    def now(self) -> float:
        """The clock's time."""
        return self._clock.now()

    def _state(self, key: str, limits: RateLimits | None = None) -> ModelState:
        state = self._states.get(key)
        if state is None:
            if not isinstance(key, str):
                raise TypeError(f"key must be a str (a model, or model + API key), got {key!r}")
            state = self._states[key] = ModelState(_epoch_offset(self._clock))
        elif limits is not None and limits.day == "calendar" and limits.rpd is not None:
            state.epoch_offset = _epoch_offset(self._clock)  # follow wall-clock adjustments
        return state

    def _notify(self, key: str) -> None:
        # Read without the lock: a key's listeners are a tuple, replaced whole under it.
        listeners = self._listeners.get(key, ())
        for callback in listeners:
            callback()

    def try_acquire(self, key: str, limits: RateLimits, request: Request, rid: str) -> Decision:
        """Decide and reserve under the lock, reading the clock inside it (monotone per key)."""
        with self._lock:
            state = self._states.get(key)
            if state is None or limits.day == "calendar":
                state = self._state(key, limits)
            now = self._clock.now()
            if now >= state.lease_next:
                self._expire(state, now)
            at = policy.admit_now(state, limits, now, request, rid, self.lease_s)
            if at is not None:  # nothing holds it back (most calls): admitted in one pass
                return Decision(True, at, None, None, False)
            decision = policy._decide(state, limits, now, request, True)
            if decision.admit:
                policy._admit(state, limits, decision.at, request, rid, self.lease_s, True)
            return decision

    def own(self, key: str, rid: str, owner: object) -> bool:
        """Renew ``rid``'s lease for as long as ``owner`` lives (no renewal thread needed)."""
        if self.lease_s is not None:
            # No lock: one dict store is atomic, and nothing reads ``rid``'s owner before its
            # lease can run out (``lease_s`` from now), long after this returns.
            self._owners[rid] = weakref.ref(owner)
        return True

    def _expire(self, state: ModelState, now: float) -> None:
        """``policy.expire``, after renewing the leases whose owner is still alive (lock held)."""
        if now < state.lease_next or self.lease_s is None:
            return
        owners = self._owners
        alive: list[str] = []
        for rid, entry in state.inflight.items():
            if entry.lease <= now and (owner := owners.get(rid)) is not None:
                if owner() is not None:
                    alive.append(rid)
                else:  # its call vanished without settling: the lease runs out now
                    del owners[rid]
        if alive:
            policy.renew(state, now, alive, self.lease_s)
        policy.expire(state, now)

    def renew(self, key: str, rids: Sequence[str]) -> int:
        """Push the lease of these in-flight requests ``lease_s`` past now."""
        if self.lease_s is None:
            return 0
        with self._lock:
            state = self._states.get(key)
            if state is None:
                return 0
            return policy.renew(state, self._clock.now(), rids, self.lease_s)

    def settle(
        self,
        key: str,
        limits: RateLimits,
        rid: str,
        input_tokens: int,
        output_tokens: int,
        *,
        answered_at: float | None = None,
    ) -> bool:
        """Real usage replaces the estimate; listeners are called when capacity freed."""
        with self._lock:
            state = self._states.get(key)
            self._owners.pop(rid, None)
            freed = state is not None and policy.settle(
                state,
                limits,
                self._clock.now(),
                rid,
                input_tokens,
                output_tokens,
                answered_at=answered_at,
            )
        if freed:  # `_notify`, inline: once per call
            for callback in self._listeners.get(key, ()):
                callback()
        return freed

    def release(self, key: str, rid: str, *, keep_request: bool = False) -> bool:
        """Give back the reservation; listeners are called when one was held."""
        with self._lock:
            state = self._states.get(key)
            self._owners.pop(rid, None)
            freed = state is not None and policy.release(state, rid, keep_request=keep_request)
        if freed:
            self._notify(key)
        return freed

    def cooldown(self, key: str, until: float) -> None:
        """Admit nobody on ``key`` before ``until``."""
        with self._lock:
            policy.cooldown(self._state(key), until)

    def correct(
        self,
        key: str,
        limits: RateLimits,
        headers: RateLimitHeaders,
    ) -> None:
        """Tighten our view with the provider's remaining-capacity headers."""
        with self._lock:
            policy.correct(
                self._state(key, limits),
                limits,
                self._clock.now(),
                headers,
            )

    def project(
        self, key: str, limits: RateLimits, pending: Sequence[Request], request: Request
    ) -> Decision:
        """Simulate the queue ahead (cached on the key's state across a burst of joiners)."""
        with self._lock:
            return projection.project(
                self._state(key, limits), limits, self._clock.now(), pending, request
            )

    def add_listener(self, key: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` outside the lock whenever capacity on ``key`` frees."""
        with self._lock:
            self._listeners[key] = (*self._listeners.get(key, ()), callback)

    def remove_listener(self, key: str, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` for ``key``."""
        with self._lock:
            kept = tuple(cb for cb in self._listeners.get(key, ()) if cb != callback)
            if kept:
                self._listeners[key] = kept
            else:
                self._listeners.pop(key, None)

    def snapshot(self, key: str) -> dict[str, Any]:
        """Usage in the current windows (as of now), cooldown, in-flight count and day count."""
        with self._lock:
            state = self._states.get(key)
            if state is None:
                return policy.snapshot(ModelState(), self._clock.now())
            now = self._clock.now()
            self._expire(state, now)
            return policy.snapshot(state, now)
