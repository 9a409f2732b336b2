"""The scheduler's attempt loop, written once, and its two runners (the tenacity shape).

Acquire, call, and on a provider error give back, wait and retry, or raise: `_attempts`
yields the steps that need I/O (`attempt.Acquire`, `Proceed`, `Apply`, `Backoff`) and
``_step`` does them in this thread, ``_astep`` on the event loop with the backend's async
twins, so a fix to the loop lands in both colours. A call admitted at once that answers
(most calls) never enters the loop: `_call` / `_acall` send it directly and hand anything
else (a wait, a failure to react to) to the loop. What a failure means is ``retry``'s (a
base of this mixin); the hooks that start the loop are `scheduler.RateScheduler`'s, whose
attributes it reads.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Literal

from llm_routing._decorator import Call
from llm_routing.errors import QuotaExceededError, RateLimitExhaustedError
from llm_routing.schedule._steps import adrive, drive
from llm_routing.schedule.admission import Ticket
from llm_routing.schedule.attempt import Acquire, Apply, Backoff, Pending, Proceed, Step
from llm_routing.schedule.clock import Clock
from llm_routing.schedule.retry import _Reactions

__all__: list[str] = []


class _AttemptLoop(_Reactions):
    """The attempt loop of `RateScheduler`: its settings and state are the scheduler's."""

    clock: Clock
    count_from: Literal["auto", "response", "admission"]

    def _at_once(self, pending: Pending) -> Ticket | None:
        """The first attempt's ticket when nobody waits and there is room now, else ``None``.

        The path of most calls to a scheduler that is not at its limits: an in-process
        backend admits or declines without I/O, so the first `Acquire` step (its deadline,
        its arguments, the runner's round trip) is skipped. ``None`` queues as usual.
        """
        resolved = pending.resolved
        key = resolved.key
        return self.admission.at_once(key, resolved.limits, pending.request, key)

    def _call(self, call: Call, proceed: Callable[[], Any]) -> Any:
        """`RateScheduler.around`: admitted at once, the call runs without the step loop.

        Most calls to a scheduler that is not at its limits are admitted at once and answer:
        for them the generator, its runner and a step object per I/O would be most of the
        scheduler's cost per call. The fast path does what the loop's first attempt does
        (`_started`, then `_answered`), and anything else (no room now, a provider error to
        react to) goes to the loop, which is still the only place that waits or retries.
        """
        pending: Pending = call.state
        resolved = pending.resolved  # `_at_once`, inline: once per call
        key = resolved.key
        ticket = self.admission.at_once(key, resolved.limits, pending.request, key)
        if ticket is None:
            return drive(self._attempts(call), functools.partial(self._step, proceed))
        self._started(call, pending, ticket)
        try:
            result = proceed()
        except Exception as exc:
            # Raised from this handler, as the loop raises from its own: the same context.
            steps = self._attempts(call, failed=(ticket, exc))
            return drive(steps, functools.partial(self._step, proceed))
        except BaseException:
            # Interrupted while the request was out: on_cancel settles the ticket.
            self._answered(pending, ticket)
            raise
        self._answered(pending, ticket)
        return result

    async def _acall(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """`RateScheduler.aaround`: the async `_call`, with the loop's async runner."""
        pending: Pending = call.state
        resolved = pending.resolved  # `_at_once`, inline: once per call
        key = resolved.key
        ticket = self.admission.at_once(key, resolved.limits, pending.request, key)
        if ticket is None:
            return await adrive(self._attempts(call), functools.partial(self._astep, proceed))
        self._started(call, pending, ticket)
        try:
            result = await proceed()
        except Exception as exc:
            steps = self._attempts(call, failed=(ticket, exc))
            return await adrive(steps, functools.partial(self._astep, proceed))
        except BaseException:
            self._answered(pending, ticket)
            raise
        self._answered(pending, ticket)
        return result

    def _attempts(
        self,
        call: Call,
        first: Ticket | None = None,
        failed: tuple[Ticket, Exception] | None = None,
    ) -> Generator[Step, Any, Any]:
        """Acquire, call, and on a provider error give back, wait and retry, or raise.

        Written once for both colours: it yields what needs I/O (`Acquire`, `Proceed`,
        `Apply`, `Backoff`) and ``_step`` / ``_astep`` do it, the latter on the event loop
        with the backend's async twins. ``first`` is the first attempt's ticket when it was
        admitted at once (`_at_once`); ``failed`` is a first attempt that was admitted at
        once, sent and failed (`_call`'s fast path): the loop starts with its reaction.
        """
        pending: Pending = call.state
        key = pending.resolved.key
        if failed is not None:
            yield from self._recover(pending, *failed)
        while True:
            if first is not None:
                ticket, first = first, None
            else:
                left = self._remaining(pending)
                deadline = self.admission.now() + left
                try:
                    ticket = yield Acquire(pending, deadline)
                except RateLimitExhaustedError as exc:
                    self._refused(key, exc)
                    self._refused_after(pending, deadline - left)
                    raise
                except QuotaExceededError:
                    self._stats.add(key, "refused_quota")
                    self._refused_after(pending, deadline - left)
                    raise
            self._started(call, pending, ticket)
            try:
                result = yield Proceed()
            except Exception as exc:
                yield from self._recover(pending, ticket, exc)
                continue
            except BaseException:
                # Interrupted while the request was out: on_cancel settles the ticket.
                self._answered(pending, ticket)
                raise
            self._answered(pending, ticket)
            return result

    def _recover(
        self, pending: Pending, ticket: Ticket, exc: Exception
    ) -> Generator[Step, Any, None]:
        """A sent attempt failed: tell the backend, then raise, or return to retry.

        Runs while ``exc`` is being handled (the loop's handler, or `_call`'s), so what it
        raises has ``exc`` as its context, as when this was inline in the loop.
        """
        failure = self._failed(pending, ticket, exc)
        yield failure.effects
        if failure.error is not None:
            raise failure.error
        if failure.delay > 0:
            yield Backoff(failure.delay)

    def _step(self, proceed: Callable[[], Any], step: Step) -> Any:
        """Do one step of `_attempts` in this thread."""
        if isinstance(step, Proceed):
            return proceed()
        if isinstance(step, Acquire):
            return self.admission.acquire(**step.arguments())
        if isinstance(step, Apply):
            return self._apply(step)
        return self.clock.wait(threading.Event(), step.delay)

    async def _astep(self, proceed: Callable[[], Awaitable[Any]], step: Step) -> Any:
        """Do one step of `_attempts` on the event loop."""
        if isinstance(step, Proceed):
            return await proceed()
        if isinstance(step, Acquire):
            return await self.admission.aacquire(**step.arguments())
        if isinstance(step, Apply):
            return await self._aapply(step)
        return await self.clock.await_(asyncio.get_running_loop().create_future(), step.delay)

    def _apply(self, effects: Apply) -> None:
        """Tell the backend how a call ended: give back, correct, cool down (in that order)."""
        admission, ticket = self.admission, effects.ticket
        if effects.tokens is not None:
            admission.settle(ticket, *effects.tokens, answered_at=effects.answered_at)
        else:
            admission.release(ticket, keep_request=effects.keep_request)
        if effects.correction is not None:
            admission.correct(ticket.key, ticket.limits, effects.correction)
        if effects.cooldown_until is not None:
            admission.cooldown(ticket.key, effects.cooldown_until)

    async def _aapply(self, effects: Apply) -> None:
        """Async `_apply`, with the backend's async twins.

        An in-process backend does no I/O, and its twins only wrap the sync methods: they
        are called directly, as `Admission` does for its own steps.
        """
        admission, ticket = self.admission, effects.ticket
        if admission.backend.in_process:
            self._apply(effects)
            return
        if effects.tokens is not None:
            await admission.asettle(ticket, *effects.tokens, answered_at=effects.answered_at)
        else:
            await admission.arelease(ticket, keep_request=effects.keep_request)
        if effects.correction is not None:
            await admission.acorrect(ticket.key, ticket.limits, effects.correction)
        if effects.cooldown_until is not None:
            await admission.acooldown(ticket.key, effects.cooldown_until)

    # --- the pieces of a call (decisions only: the runners do the I/O) ---------------------

    def _answered(self, pending: Pending, ticket: Ticket) -> None:
        # proceed() returns when the answer (a stream's first chunk) is here: the provider
        # has counted the request by now.
        pending.ticket = ticket
        # Paced requests reach the provider spread out, so the minute window never fills at
        # its edge and counting from admission is exact; a burst reaches it seconds after its
        # admission, and counting from the answer is what keeps its window's edge safe.
        count_from = self.count_from
        if count_from == "admission" or (
            count_from == "auto" and pending.resolved.limits.smoothing
        ):
            return
        pending.answered_at = self.admission.now()

    def _refused(self, key: str, exc: RateLimitExhaustedError) -> None:
        too_large = "larger than the limit" in exc.reason
        self._stats.add(key, "refused_too_large" if too_large else "refused_max_wait")

    def _refused_after(self, pending: Pending, start: float) -> None:
        """Count a refused wait's time against the router call (a queue can time out late).

        Only inside a router call, whose next model must know what is left; the clock is
        read only on this path, so an admitted call pays nothing for it.
        """
        if pending.waiting is not None:
            pending.wait(max(0.0, self.admission.now() - start))

    def _started(self, call: Call, pending: Pending, ticket: Ticket) -> None:
        """An attempt was admitted and is about to be sent: count it and say so downstream."""
        attempts = pending.attempts = pending.attempts + 1
        waited = ticket.waited_s
        key = pending.resolved.key
        if waited:
            pending.waited += waited  # `Pending.wait`, inline: once per attempt
            if pending.waiting is not None:
                pending.waiting.add(waited)
            self._stats.waited(key, waited)
        else:  # admitted at once (the common case): nothing to add, a counter without a lock
            self._stats.at_once(key)
        if pending.retrying is not None:
            self._stats.add(key, pending.retrying)
            pending.retrying = None
        total = pending.waited
        metadata = call.metadata
        # round() is the costly part and gives 0.0 to any wait under half a millisecond: an
        # admission at once (the common case) skips it.
        metadata["llm_routing.wait_s"] = 0.0 if 0.0 <= total < 0.0004 else round(total, 3)
        metadata["llm_routing.attempt"] = attempts
        metadata["llm_routing.reserved_tokens"] = pending.request.tokens
