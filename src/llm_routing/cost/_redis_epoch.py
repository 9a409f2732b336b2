"""A Redis ledger's connection and epoch: reaching Redis, and noticing that it lost the ledger.

Owns the errors a caller sees when the shared budget cannot be checked, the argument checks and
connection of `RedisLedger`, and the epoch protocol: each client remembers the ledger's epoch
key (written at its first use, never expiring); a missing or replaced epoch means Redis lost
the spend (a restart without persistence, a FLUSHALL, an eviction), and ``on_state_lost``
decides whether calls are refused or carry on from $0. ``cost.redis`` builds the money
operations on this base and re-exports the errors, their public home.
"""

from __future__ import annotations

import decimal
import logging
import math
import uuid
import warnings
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import redis

from llm_routing._redis import UNREACHABLE, Script, check_prefix, check_target, connect
from llm_routing._urls import redact_url
from llm_routing.cost._redis_codec import pico, text
from llm_routing.cost._redis_script import LEDGER_LUA
from llm_routing.cost._waiting import check_lease
from llm_routing.cost.budget import Bucket
from llm_routing.cost.ledger import DEFAULT_HOLD_LEASE, DEFAULT_MAX_RECORDS
from llm_routing.errors import LLMRoutingError

__all__ = [
    "RedisConnection",
    "RedisLedgerStateLostError",
    "RedisLedgerStateLostWarning",
    "RedisLedgerUnavailableError",
]

_log = logging.getLogger("llm_routing.cost.redis")


class RedisLedgerUnavailableError(LLMRoutingError, ConnectionError):
    """Redis could not be reached, so a budget could not be checked: the call is refused."""


class RedisLedgerStateLostError(RedisLedgerUnavailableError):
    """Redis lost the ledger (a restart without persistence): its $0 cannot be trusted.

    A subclass of `RedisLedgerUnavailableError` because it means the same to a caller: the
    shared budget cannot be checked, so the call is refused.
    """


class RedisLedgerStateLostWarning(UserWarning):
    """Redis lost the ledger and ``on_state_lost="warn"`` carries on from $0 spent."""


class RedisConnection:
    """The client, script and epoch of one `RedisLedger` (see its docstring for the arguments)."""

    hold_lease: float

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "llm_routing",
        max_records: int | None = DEFAULT_MAX_RECORDS,
        hold_lease: float = DEFAULT_HOLD_LEASE,
        socket_timeout: float = 1.0,
        hold_timeout_s: float | None = None,
        on_state_lost: Literal["fail", "warn"] = "fail",
    ) -> None:
        check_target("RedisLedger", url, client)
        check_prefix("RedisLedger", prefix)
        if max_records is not None and (
            isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 0
        ):
            raise ValueError(
                f"RedisLedger(max_records=…) must be an int >= 0 or None (keep all), got "
                f"{max_records!r}"
            )
        if hold_timeout_s is not None:
            if hold_lease != DEFAULT_HOLD_LEASE:
                raise TypeError(
                    "RedisLedger takes hold_lease=… or its former name hold_timeout_s=…, not both"
                )
            warnings.warn(
                "RedisLedger(hold_timeout_s=…) is now hold_lease=… (renewed while a call runs)",
                DeprecationWarning,
                stacklevel=2,
            )
            hold_lease = hold_timeout_s
        if (
            isinstance(socket_timeout, bool)
            or not isinstance(socket_timeout, int | float)
            or not 0 < socket_timeout < math.inf
        ):
            raise ValueError(
                "RedisLedger(socket_timeout=…) must be a finite number of seconds > 0, got "
                f"{socket_timeout!r}"
            )
        if on_state_lost not in ("fail", "warn"):
            raise ValueError(
                "RedisLedger(on_state_lost=…) must be 'fail' (refuse calls once Redis lost the "
                "spend) or 'warn' (warn and carry on from $0), got "
                f"{on_state_lost!r}"
            )
        try:
            self.hold_lease = check_lease(hold_lease, "RedisLedger")
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        self.prefix = prefix
        self.on_state_lost = on_state_lost
        # The epoch this client saw at its first use; None until then.
        self._epoch: str | None = None
        self._noticed: str | None = None
        self.max_records = max_records
        self._url = url
        self._where = redact_url(url) if url is not None else None
        self._owns_client = client is None
        self._client: redis.Redis = (
            client if client is not None else connect(url, float(socket_timeout))  # type: ignore[arg-type]
        )
        self._script = Script(LEDGER_LUA, self._client)
        self._root = f"{prefix}:{{ledger}}:"
        self._channel = self._root + "released"
        self._start()

    def _start(self) -> None:
        """Start what the ledger's operations need once connected (`RedisLedger` does)."""

    def __repr__(self) -> str:
        where = self._where if self._where is not None else repr(self._client)
        return f"RedisLedger({where!r}, prefix={self.prefix!r})"

    def _unreachable(self, exc: BaseException, more: str = "") -> RedisLedgerUnavailableError:
        """The error of a reservation Redis could not answer: no budget check, no call."""
        where = self._where if self._where is not None else "the given client"
        return RedisLedgerUnavailableError(
            f"Redis at {where} is unreachable ({exc}); the shared budget cannot be checked, "
            f"so this call is refused.{more}"
        )

    @property
    def hold_timeout_s(self) -> float:
        """The former name of ``hold_lease``."""
        return self.hold_lease

    def _run(self, op: str, *args: str) -> Any:
        if self._epoch is None:
            self._use_epoch("use")
        return self._script([self._root], [op, self._epoch or "", *args])

    def _use_epoch(self, mode: str, *args: str) -> bool:
        """Run the epoch operation and adopt its answer; True when the ledger was lost."""
        raw = self._script(
            [self._root], ["epoch", self._epoch or "", uuid.uuid4().hex, mode, *args]
        )
        self._epoch = text(raw[0])
        return int(raw[1]) == 1

    @property
    def epoch_key(self) -> str:
        """The Redis key whose absence shows that Redis lost this ledger."""
        return self._root + "epoch"

    def _state_lost(self, buckets: Sequence[Bucket], found: str) -> None:
        """Refuse (``"fail"``), or warn once and carry on from $0 (``"warn"``)."""
        where = self._where if self._where is not None else "the given client"
        named = ", ".join(f"{b.label} [{b.key!r}]" for b in buckets) or "every budget"
        lost = (
            f"Redis at {where} lost the shared budget ledger {self._root!r} (its epoch key "
            f"{self.epoch_key!r} is gone: a restart without persistence, a FLUSHALL or an "
            f"eviction). Lost: the spent totals of {named} and of every other budget, the holds "
            "of calls in flight, the call totals and records; Redis now reads $0 spent"
        )
        first = self._noticed != found
        self._noticed = found
        if self.on_state_lost == "fail":
            if first:
                _log.warning("%s; refusing calls (on_state_lost='fail')", lost)
            raise RedisLedgerStateLostError(
                f"{lost}, so this call is refused rather than let spend pass the budget "
                "(on_state_lost='fail'). Enable AOF or RDB persistence on Redis (appendonly "
                "yes) so budgets survive a restart, then re-seed what was spent and resume: "
                "ledger.acknowledge_loss(spent={bucket key: usd}) (or start over with "
                "ledger.reset()); RedisLedger(on_state_lost='warn') warns and carries on instead."
            )
        try:
            self._use_epoch("carry")
        except UNREACHABLE as exc:
            raise self._unreachable(exc) from exc
        if first:
            message = (
                f"{lost}; carrying on from $0 (on_state_lost='warn'), so spend may now pass a "
                "budget by what was lost. Enable AOF or RDB persistence on Redis so budgets "
                "survive a restart."
            )
            _log.warning("%s", message)
            warnings.warn(message, RedisLedgerStateLostWarning, stacklevel=5)

    def acknowledge_loss(self, spent: Mapping[str, Decimal | float | str] | None = None) -> None:
        """Resume every worker after Redis lost the ledger, re-seeding what was spent.

        ``spent`` maps bucket keys (``"total"``, ``"day:2025-06-01"``… as the error named
        them) to the USD spent before the loss, taken from the provider's billing; it is added
        to what was spent since. Every worker adopts the new epoch at its next call.
        """
        args: list[str] = []
        for key, value in (spent or {}).items():
            amount = Decimal(str(value))
            if not isinstance(key, str) or not amount.is_finite() or amount < 0:
                raise ValueError(
                    "RedisLedger.acknowledge_loss(spent=…) maps bucket keys (str) to USD >= 0, "
                    f"got {key!r}: {value!r}"
                )
            args += [key, pico(amount, decimal.ROUND_CEILING)]
        self._use_epoch("ack", *args)
        self._noticed = None
