"""The shared ledger: reservations, budget spend, totals and records in Redis, for N workers.

Owns `RedisLedger`, the `Ledger` whose every operation is one Lua script, so workers on many
hosts reserving at once never together pass a budget. Pricing and budget rules stay in
``cost.pricing`` and ``cost.budget``; this module only keeps the money.

Money is held as integer picodollars (1e-12 USD: exact for every catalogue price, which has
at most six decimals per million tokens) and added in the script with two 12-digit limbs, since
Lua numbers are doubles. Reservations round up to the next picodollar, charges half-even.
Holds are leases on Redis ``TIME``: the worker that took one renews it every third of
``hold_lease`` while the call runs, so a killed worker's holds stop shrinking a budget within
one lease. Every dropped hold is published on ``{prefix}:{ledger}:released``, which wakes the
callers of every worker waiting for room (`Ledger.reserve_within`). Records (JSON) sit in a
list capped at ``max_records``; totals cover every call.
"""

from __future__ import annotations

import contextlib
import decimal
import json
import logging
import math
import threading
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from llm_routing._urls import redact_url
from llm_routing.cost._waiting import Waiters, Wake, check_lease, hold_key, lease_renewer
from llm_routing.cost.budget import Bucket, BucketChange, period_keys
from llm_routing.cost.ledger import (
    DEFAULT_HOLD_LEASE,
    DEFAULT_MAX_RECORDS,
    CostRecord,
    Ledger,
    Refusal,
    Reservation,
)
from llm_routing.cost.pricing import Cost, TokenUsage
from llm_routing.errors import LLMRoutingError

__all__ = [
    "RedisLedger",
    "RedisLedgerStateLostError",
    "RedisLedgerStateLostWarning",
    "RedisLedgerUnavailableError",
]

_log = logging.getLogger(__name__)

_UNREACHABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
_SUBSCRIBER_ERRORS: tuple[type[BaseException], ...] = (*_UNREACHABLE, redis.exceptions.RedisError)
_CONTEXT = decimal.Context(prec=80)
# A waiter looks again at least this often: a net under a wake-up lost while the subscriber
# reconnected (settlements are announced; this only bounds the damage of a missed one).
_MAX_PAUSE_S = 2.0
# How long the subscriber blocks on one read before it checks whether anyone still waits.
_LISTEN_S = 0.5
_PICO = 12
_ZERO = Decimal(0)
_GROUP_COUNTS = (
    "calls",
    "unpriced_calls",
    "estimated_calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_KINDS = ("total", "model", "tag", "hour", "day", "month")
_COST_PARTS = ("input", "cached_input", "cache_write", "output", "reasoning", "total")
_TOKEN_PARTS = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning")

_LUA = r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local P = KEYS[1]
local META, SPENT, RESERVED, OPEN, EXPIRY, EXPIRED, RECORDS, STATUS =
  P .. 'meta', P .. 'spent', P .. 'reserved', P .. 'open', P .. 'expiry', P .. 'expired',
  P .. 'records', P .. 'status'
local RELEASED = P .. 'released'
local KINDS = {'total', 'model', 'tag', 'hour', 'day', 'month'}
local BASE = 1000000000000

local function parse(s)
  if not s or s == '' then return {0, 0} end
  local n = #s
  if n <= 12 then return {0, tonumber(s)} end
  return {tonumber(string.sub(s, 1, n - 12)), tonumber(string.sub(s, n - 11))}
end
local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= BASE then lo, hi = lo - BASE, hi + 1 end
  return {hi, lo}
end
local function sub(a, b)
  local hi, lo = a[1] - b[1], a[2] - b[2]
  if lo < 0 then lo, hi = lo + BASE, hi - 1 end
  if hi < 0 then return {0, 0} end
  return {hi, lo}
end
local function gt(a, b) return a[1] > b[1] or (a[1] == b[1] and a[2] > b[2]) end
local function str(a)
  if a[1] == 0 then return string.format('%d', a[2]) end
  return string.format('%d', a[1]) .. string.format('%012d', a[2])
end
local function split(s)
  local out = {}
  for part in string.gmatch(s, '[^\t]+') do out[#out + 1] = part end
  return out
end

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]

-- The epoch: written at a client's first use and never expiring, so its absence means Redis
-- lost this ledger (a restart without persistence, a flush, an eviction). Each client passes
-- the epoch it saw (ARGV[2], removed here). Lost: the key is gone although the client had seen
-- one, or it is a tombstone ('lost\t…', left by whoever noticed first, so workers started after
-- the restart learn it too), or a client's epoch was replaced by one nobody acknowledged (an
-- 'ack\t…' epoch, written by acknowledge_loss() or reset(), is adopted silently).
local EPOCH = P .. 'epoch'
local seen = table.remove(ARGV, 2)
local epoch = redis.call('GET', EPOCH)
local lost = false
if not epoch then
  if seen ~= '' then
    lost = true
    epoch = 'lost\t' .. t[1]
    redis.call('SET', EPOCH, epoch)
  end
elseif string.sub(epoch, 1, 5) == 'lost\t' then
  lost = true
elseif seen ~= '' and epoch ~= seen and string.sub(epoch, 1, 4) ~= 'ack\t' then
  lost = true
end
if redis.call('EXISTS', META) == 0 then
  -- A new (or wiped) ledger: generations from the clock, so the holds of calls taken before a
  -- wipe (their ids restart at 1) never match the new ones.
  redis.call('HSET', META, 'generation', t[1] .. string.format('%06d', tonumber(t[2])))
end
local generation = tonumber(redis.call('HGET', META, 'generation') or '0')

if op == 'epoch' then
  -- ARGV: a new epoch, mode: 'use' (first use: create one if none), 'carry' (the loss was
  -- warned about: replace a tombstone and go on), 'ack' (the loss is acknowledged: every
  -- client adopts the new one), then for 'ack' (bucket key, picodollars) pairs to add to spend
  local mode = ARGV[3]
  if mode == 'ack' then
    epoch = 'ack\t' .. ARGV[2]
    redis.call('SET', EPOCH, epoch)
    for i = 4, #ARGV - 1, 2 do
      redis.call('HSET', P .. 'spent', ARGV[i],
        str(add(parse(redis.call('HGET', P .. 'spent', ARGV[i])), parse(ARGV[i + 1]))))
    end
    return {epoch, 0}
  end
  if not epoch or (lost and mode == 'carry' and string.sub(epoch, 1, 5) == 'lost\t') then
    epoch = ARGV[2]
    redis.call('SET', EPOCH, epoch)
    return {epoch, lost and 1 or 0}
  end
  return {epoch, lost and 1 or 0}
end

if lost and op == 'reserve' then return {-1, epoch} end

-- Drop one hold: subtract its amount from each of its buckets, and wake the waiters.
local function unhold(id)
  local held = redis.call('HGET', OPEN, id)
  if not held then return false end
  redis.call('HDEL', OPEN, id)
  redis.call('ZREM', EXPIRY, id)
  redis.call('PUBLISH', RELEASED, id)
  local parts = split(held)
  local amount = parse(parts[1])
  for i = 2, #parts do
    local left = sub(parse(redis.call('HGET', RESERVED, parts[i])), amount)
    if left[1] == 0 and left[2] == 0 then
      redis.call('HDEL', RESERVED, parts[i])
    else
      redis.call('HSET', RESERVED, parts[i], str(left))
    end
  end
  return true
end

-- Holds whose lease ran out (their worker died, or stopped renewing) stop holding money.
local function expire_holds()
  local gone = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', string.format('%.17g', now))
  for _, id in ipairs(gone) do
    unhold(id)
    redis.call('SADD', EXPIRED, id)
  end
end

if op == 'reserve' then
  -- ARGV: amount, lease, final ('1': count a refusal due to holds), n, n x (key, limit)
  expire_holds()
  local amount = parse(ARGV[2])
  local lease = tonumber(ARGV[3])
  local final = ARGV[4] == '1'
  local n = tonumber(ARGV[5])
  -- The settled spend alone: no settlement can make room, refuse (and count) at once.
  for i = 1, n do
    local key, limit = ARGV[5 + 2 * i - 1], parse(ARGV[5 + 2 * i])
    local spent = redis.call('HGET', SPENT, key) or '0'
    if gt(add(parse(spent), amount), limit) then
      redis.call('HINCRBY', META, 'refused', 1)
      return {0, i, spent, redis.call('HGET', RESERVED, key) or '0', 0, ''}
    end
  end
  for i = 1, n do
    local key, limit = ARGV[5 + 2 * i - 1], parse(ARGV[5 + 2 * i])
    local spent = redis.call('HGET', SPENT, key) or '0'
    local reserved = redis.call('HGET', RESERVED, key) or '0'
    if gt(add(add(parse(spent), parse(reserved)), amount), limit) then
      if final then redis.call('HINCRBY', META, 'refused', 1) end
      local first = redis.call('ZRANGE', EXPIRY, 0, 0, 'WITHSCORES')
      local retry = ''
      if first[2] then retry = string.format('%.17g', tonumber(first[2]) - now) end
      return {0, i, spent, reserved, 1, retry}
    end
  end
  local id = redis.call('HINCRBY', META, 'seq', 1)
  local held = {str(amount)}
  for i = 1, n do
    local key = ARGV[5 + 2 * i - 1]
    held[#held + 1] = key
    redis.call('HSET', RESERVED, key, str(add(parse(redis.call('HGET', RESERVED, key)), amount)))
  end
  redis.call('HSET', OPEN, id, table.concat(held, '\t'))
  redis.call('ZADD', EXPIRY, string.format('%.17g', now + lease), id)
  return {1, id, generation}
end

if op == 'renew' then
  -- ARGV: lease, then (id, generation) pairs; settled, expired or older holds are skipped
  local until_ = now + tonumber(ARGV[2])
  local renewed = 0
  for i = 3, #ARGV - 1, 2 do
    local id = ARGV[i]
    if tonumber(ARGV[i + 1]) == generation and redis.call('HEXISTS', OPEN, id) == 1 then
      local current = tonumber(redis.call('ZSCORE', EXPIRY, id) or '0')
      if until_ > current then
        redis.call('ZADD', EXPIRY, string.format('%.17g', until_), id)
      end
      renewed = renewed + 1
    end
  end
  return renewed
end

if op == 'unhold' then
  -- ARGV: id, generation of the reservation
  if tonumber(ARGV[3]) ~= generation then return 1 end
  if unhold(ARGV[2]) then return 1 end
  if redis.call('SREM', EXPIRED, ARGV[2]) == 1 then return 1 end
  return 0
end

if op == 'charge' then
  -- ARGV: reservation id ('' for none), its generation, amount ('' when unpriced),
  -- nbuckets, bucket keys, ngroups, groups (kind \t name), 8 increments, status, record, cap
  local a = 2
  local id, gen = ARGV[a], tonumber(ARGV[a + 1])
  if id ~= '' and gen == generation then
    if not unhold(id) and redis.call('SREM', EXPIRED, id) == 0 then return {-1} end
  end
  local amount = parse(ARGV[a + 2])
  local priced = ARGV[a + 2] ~= ''
  local n = tonumber(ARGV[a + 3])
  local changes = {1}
  for i = 1, n do
    local key = ARGV[a + 3 + i]
    local before = redis.call('HGET', SPENT, key) or '0'
    local after = str(add(parse(before), amount))
    redis.call('HSET', SPENT, key, after)
    changes[#changes + 1] = before
    changes[#changes + 1] = after
  end
  local g = a + 4 + n
  local ngroups = tonumber(ARGV[g])
  local counts = {}
  for j = 1, 8 do counts[j] = ARGV[g + ngroups + j] end
  local names = {'calls', 'unpriced_calls', 'estimated_calls', 'input_tokens', 'output_tokens',
    'cached_input_tokens', 'cache_write_tokens', 'reasoning_tokens'}
  for i = 1, ngroups do
    local kind, name = string.match(ARGV[g + i], '^([^\t]*)\t(.*)$')
    local hash = P .. 'g:' .. kind .. ':' .. name
    redis.call('SADD', P .. 'gi:' .. kind, name)
    for j = 1, 8 do
      if counts[j] ~= '0' then redis.call('HINCRBY', hash, names[j], counts[j]) end
    end
    if priced then
      redis.call('HSET', hash, 'cost', str(add(parse(redis.call('HGET', hash, 'cost')), amount)))
    else
      redis.call('HSETNX', hash, 'cost', '0')
    end
  end
  local r = g + ngroups + 9
  redis.call('HINCRBY', STATUS, ARGV[r], 1)
  local cap = tonumber(ARGV[r + 2])
  if cap ~= 0 then
    redis.call('RPUSH', RECORDS, ARGV[r + 1])
    if cap > 0 then redis.call('LTRIM', RECORDS, -cap, -1) end
  end
  return changes
end

if op == 'usage' then
  expire_holds()
  local out = {}
  for i = 2, #ARGV do
    out[#out + 1] = redis.call('HGET', SPENT, ARGV[i]) or '0'
    out[#out + 1] = redis.call('HGET', RESERVED, ARGV[i]) or '0'
  end
  return out
end

if op == 'summary' then
  expire_holds()
  local reserved = {0, 0}
  local held = redis.call('HVALS', OPEN)
  for _, value in ipairs(held) do reserved = add(reserved, parse(split(value)[1])) end
  local groups = {}
  for _, kind in ipairs(KINDS) do
    local names = redis.call('SMEMBERS', P .. 'gi:' .. kind)
    local found = {}
    for _, name in ipairs(names) do
      found[#found + 1] = {name, redis.call('HGETALL', P .. 'g:' .. kind .. ':' .. name)}
    end
    groups[#groups + 1] = found
  end
  return {
    redis.call('HGET', META, 'refused') or '0', #held, str(reserved),
    redis.call('HGETALL', STATUS), groups,
  }
end

if op == 'reset' then
  -- ARGV: a new epoch (starting over acknowledges any loss)
  for _, kind in ipairs(KINDS) do
    local names = redis.call('SMEMBERS', P .. 'gi:' .. kind)
    for _, name in ipairs(names) do redis.call('DEL', P .. 'g:' .. kind .. ':' .. name) end
    redis.call('DEL', P .. 'gi:' .. kind)
  end
  redis.call('DEL', SPENT, RESERVED, OPEN, EXPIRY, EXPIRED, RECORDS, STATUS)
  redis.call('HDEL', META, 'refused')
  redis.call('HINCRBY', META, 'generation', 1)
  redis.call('PUBLISH', RELEASED, 'reset')
  epoch = 'ack\t' .. ARGV[2]
  redis.call('SET', EPOCH, epoch)
  return epoch
end

return redis.error_reply('llm_routing ledger: unknown operation ' .. tostring(op))
"""


class RedisLedgerUnavailableError(LLMRoutingError, ConnectionError):
    """Redis could not be reached, so a budget could not be checked: the call is refused."""


class RedisLedgerStateLostError(RedisLedgerUnavailableError):
    """Redis lost the ledger (a restart without persistence): its $0 cannot be trusted.

    A subclass of `RedisLedgerUnavailableError` because it means the same to a caller: the
    shared budget cannot be checked, so the call is refused.
    """


class RedisLedgerStateLostWarning(UserWarning):
    """Redis lost the ledger and ``on_state_lost="warn"`` carries on from $0 spent."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pico(amount: Decimal, rounding: str) -> str:
    scaled = _CONTEXT.scaleb(amount, _PICO)
    return str(int(scaled.to_integral_value(rounding=rounding, context=_CONTEXT)))


def _usd(pico: Any) -> Decimal:
    units = int(_text(pico))
    return _ZERO if units == 0 else _CONTEXT.scaleb(Decimal(units), -_PICO)


def _cost_json(cost: Cost) -> dict[str, str | None]:
    return {
        name: None if getattr(cost, name) is None else str(getattr(cost, name))
        for name in _COST_PARTS
    }


def _record_json(record: CostRecord) -> str:
    return json.dumps(
        {
            "time": record.time.isoformat(),
            "provider": record.provider,
            "model": record.model,
            "tokens": [getattr(record.tokens, name) for name in _TOKEN_PARTS],
            "cost": _cost_json(record.cost),
            "estimated": record.estimated,
            "status": record.status,
            "run_id": record.run_id,
            "parent_run_id": record.parent_run_id,
            "tags": list(record.tags),
            "metadata": dict(record.metadata),
            "duration_s": record.duration_s,
        },
        default=str,  # metadata may hold objects JSON cannot: kept as their text
        separators=(",", ":"),
    )


def _record_from(text: Any) -> CostRecord:
    data = json.loads(_text(text))
    cost = data["cost"]
    return CostRecord(
        time=datetime.fromisoformat(data["time"]),
        provider=data["provider"],
        model=data["model"],
        tokens=TokenUsage(*data["tokens"]),
        cost=Cost(*(None if cost[n] is None else Decimal(cost[n]) for n in _COST_PARTS)),
        estimated=data["estimated"],
        status=data["status"],
        run_id=data["run_id"],
        parent_run_id=data["parent_run_id"],
        tags=tuple(data["tags"]),
        metadata=data["metadata"],
        duration_s=data["duration_s"],
    )


def _group(fields: Sequence[Any]) -> dict[str, Any]:
    flat = [_text(item) for item in fields]
    values = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
    group: dict[str, Any] = {name: int(values.get(name, "0")) for name in _GROUP_COUNTS}
    priced = group["calls"] - group["unpriced_calls"]
    cost = _usd(values.get("cost", "0"))
    # A group whose every call is unpriced has an unknown cost, not $0.
    group["cost"] = cost if priced > 0 or group["calls"] == 0 else None
    return {
        "calls": group["calls"],
        "cost": group["cost"],
        **{name: group[name] for name in _GROUP_COUNTS if name != "calls"},
    }


class RedisLedger(Ledger):
    """A `Ledger` in Redis: N workers share one budget and one set of totals and records.

    ``RedisLedger("redis://localhost:6379/0")`` or ``RedisLedger(client=redis.Redis(...))``,
    then ``CostTracker(budget_usd=5, backend=ledger)`` in every worker. Keys live under
    ``{prefix}:{ledger}:``; they do not expire (a budget lasts until ``reset()``), except
    holds: each is a lease of ``hold_lease`` seconds (30 by default) that this process renews
    every third of it while the call runs, so the holds of a worker killed mid-call are dropped
    within one lease. ``hold_timeout_s`` is the former name of ``hold_lease``.

    When Redis cannot be reached within ``socket_timeout``, ``reserve`` raises
    `RedisLedgerUnavailableError` (no budget check, no call); settling a call already made
    logs a warning instead of raising, and that call's cost is missing from the shared totals.

    A Redis restarted without persistence (AOF or RDB) comes back empty: every budget would
    read $0 spent. Each client remembers the ledger's epoch key, written at its first use and
    never expiring, and a missing or replaced epoch tells it the spend was lost. Then
    ``on_state_lost="fail"`` (the default, like an unreachable Redis) makes ``reserve`` raise
    `RedisLedgerStateLostError` in every worker until someone re-seeds the spend with
    ``acknowledge_loss(spent={...})`` or starts over with ``reset()``; ``"warn"`` emits one
    `RedisLedgerStateLostWarning` naming what was lost and carries on from $0. Calls already
    made still settle (charged, without their lost holds). Workers that all start after the
    wipe cannot tell it from a first use: nothing remembers the old epoch.
    """

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
        if (url is None) == (client is None):
            raise TypeError(
                "RedisLedger needs exactly one of url ('redis://host:6379/0') or "
                "client=redis.Redis(...)"
            )
        if url is not None and not isinstance(url, str):
            raise TypeError(f"RedisLedger(url=…) must be a str such as 'redis://…', got {url!r}")
        if client is not None and not isinstance(client, redis.Redis):
            raise TypeError(f"RedisLedger(client=…) must be a redis.Redis, got {client!r}")
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(
                f"RedisLedger(prefix=…) must be a non-empty str without braces, got {prefix!r}"
            )
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
            client
            if client is not None
            else redis.Redis.from_url(
                url,  # type: ignore[arg-type]
                socket_timeout=float(socket_timeout),
                socket_connect_timeout=float(socket_timeout),
                retry=Retry(NoBackoff(), 0),
            )
        )
        self._script: Script = self._client.register_script(_LUA)
        self._root = f"{prefix}:{{ledger}}:"
        self._channel = self._root + "released"
        self._renewer = lease_renewer(self.renew, self.hold_lease, f"llm_routing-leases-{prefix}")
        self._waiters = Waiters()
        self._lock = threading.Lock()
        self._subscriber: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._closing = threading.Event()

    def __repr__(self) -> str:
        where = self._where if self._where is not None else repr(self._client)
        return f"RedisLedger({where!r}, prefix={self.prefix!r})"

    @property
    def hold_timeout_s(self) -> float:
        """The former name of ``hold_lease``."""
        return self.hold_lease

    def _run(self, op: str, *args: str) -> Any:
        if self._epoch is None:
            self._use_epoch("use")
        return self._script(keys=[self._root], args=[op, self._epoch or "", *args])

    def _use_epoch(self, mode: str, *args: str) -> bool:
        """Run the epoch operation and adopt its answer; True when the ledger was lost."""
        raw = self._script(
            keys=[self._root], args=["epoch", self._epoch or "", uuid.uuid4().hex, mode, *args]
        )
        self._epoch = _text(raw[0])
        return int(raw[1]) == 1

    @property
    def epoch_key(self) -> str:
        """The Redis key whose absence shows that Redis lost this ledger."""
        return self._root + "epoch"

    # --- money -----------------------------------------------------------------------------

    def reserve(self, amount: Decimal, buckets: Sequence[Bucket]) -> Reservation | Refusal:
        """Hold ``amount`` in every bucket in one script, or refuse (counted as refused)."""
        return self._attempt(amount, buckets, final=True)

    def _attempt(
        self, amount: Decimal, buckets: Sequence[Bucket], *, final: bool
    ) -> Reservation | Refusal:
        args = [
            _pico(amount, decimal.ROUND_CEILING),
            repr(self.hold_lease),
            "1" if final else "0",
            str(len(buckets)),
        ]
        for bucket in buckets:
            args += [bucket.key, _pico(bucket.limit, decimal.ROUND_FLOOR)]
        try:
            raw = self._run("reserve", *args)
        except _UNREACHABLE as exc:
            where = self._where if self._where is not None else "the given client"
            raise RedisLedgerUnavailableError(
                f"Redis at {where} is unreachable ({exc}); the shared budget cannot be checked, "
                "so this call is refused. Start or reach Redis, or use an in-memory ledger "
                "(CostTracker(backend=None)) for budgets per process."
            ) from exc
        if int(raw[0]) == -1:
            self._state_lost(buckets, _text(raw[1]))
            return self._attempt(amount, buckets, final=final)
        if int(raw[0]) == 0:
            bucket = buckets[int(raw[1]) - 1]
            retry = _text(raw[5])
            return Refusal(
                bucket=bucket,
                spent=_usd(raw[2]),
                reserved=_usd(raw[3]),
                requested=amount,
                held_only=int(raw[4]) == 1,
                retry_in=float(retry) if retry else None,
            )
        reservation = Reservation(int(raw[1]), amount, tuple(buckets), int(raw[2]))
        self._renewer.add(hold_key(reservation), reservation)
        return reservation

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
        except _UNREACHABLE as exc:
            raise RedisLedgerUnavailableError(
                f"Redis at {where} is unreachable ({exc}); the shared budget cannot be checked, "
                "so this call is refused."
            ) from exc
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
        for key, usd in (spent or {}).items():
            amount = Decimal(str(usd))
            if not isinstance(key, str) or not amount.is_finite() or amount < 0:
                raise ValueError(
                    "RedisLedger.acknowledge_loss(spent=…) maps bucket keys (str) to USD >= 0, "
                    f"got {key!r}: {usd!r}"
                )
            args += [key, _pico(amount, decimal.ROUND_CEILING)]
        self._use_epoch("ack", *args)
        self._noticed = None

    def renew(self, reservations: Sequence[Reservation]) -> None:
        """Push these holds' expiry to ``hold_lease`` from now (Redis time), in one script."""
        if not reservations:
            return
        args = ["renew", repr(self.hold_lease)]
        for reservation in reservations:
            args += [str(reservation.id), str(reservation.generation)]
        self._run(*args)

    def settle(self, reservation: Reservation, record: CostRecord) -> list[BucketChange]:
        """Swap the hold for the record's cost, atomically (an unknown cost charges nothing)."""
        self._renewer.discard(hold_key(reservation))
        return self._charge(record, reservation.buckets, reservation)

    def release(self, reservation: Reservation) -> None:
        """Drop the hold; nothing is recorded."""
        self._renewer.discard(hold_key(reservation))
        try:
            raw = self._run("unhold", str(reservation.id), str(reservation.generation))
        except _UNREACHABLE as exc:
            _log.warning("Redis unreachable (%s): hold %s not released", exc, reservation.id)
            return
        if int(raw) == 0:
            raise RuntimeError(
                f"reservation {reservation.id} was already settled or released; cannot release "
                "it again (a call must be charged once)"
            )

    def add(self, record: CostRecord, buckets: Sequence[Bucket] = ()) -> list[BucketChange]:
        """Record a call without a reservation."""
        return self._charge(record, buckets, None)

    def _charge(
        self, record: CostRecord, buckets: Sequence[Bucket], reservation: Reservation | None
    ) -> list[BucketChange]:
        total = record.cost.total
        groups = ["total\tall", f"model\t{record.key}"]
        groups += [f"tag\t{tag}" for tag in dict.fromkeys(record.tags)]
        groups += [f"{period}\t{key}" for period, key in period_keys(record.time).items()]
        counts = (
            1,
            1 if total is None else 0,
            1 if record.estimated else 0,
            record.input_tokens,
            record.output_tokens,
            record.cached_input_tokens,
            record.cache_write_tokens,
            record.reasoning_tokens,
        )
        args = [
            "" if reservation is None else str(reservation.id),
            "-1" if reservation is None else str(reservation.generation),
            "" if total is None else _pico(total, decimal.ROUND_HALF_EVEN),
            str(len(buckets)),
            *(bucket.key for bucket in buckets),
            str(len(groups)),
            *groups,
            *(str(count) for count in counts),
            record.status,
            _record_json(record),
            "-1" if self.max_records is None else str(self.max_records),
        ]
        try:
            raw = self._run("charge", *args)
        except _UNREACHABLE as exc:
            _log.warning(
                "Redis unreachable (%s): the cost of a %s call is missing from the shared ledger",
                exc,
                record.key,
            )
            return []
        if int(raw[0]) == -1:
            assert reservation is not None
            raise RuntimeError(
                f"reservation {reservation.id} was already settled or released; cannot settle "
                "it again (a call must be charged once)"
            )
        return [
            BucketChange(bucket, _usd(raw[1 + 2 * i]), _usd(raw[2 + 2 * i]))
            for i, bucket in enumerate(buckets)
        ]

    # --- reading ---------------------------------------------------------------------------

    def records(self) -> list[CostRecord]:
        """The kept records (the newest ``max_records``), oldest first."""
        return [_record_from(item) for item in self._client.lrange(self._root + "records", 0, -1)]

    def summary(self) -> dict[str, Any]:
        """Exact totals over every worker, shaped like `MemoryLedger.summary`."""
        refused, in_flight, reserved, status_flat, kinds = self._run("summary")
        by_kind: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, found in zip(_KINDS, kinds, strict=True):
            by_kind[kind] = {_text(name): _group(fields) for name, fields in found}
        total = by_kind["total"].get("all") or _group([])
        statuses = [_text(item) for item in status_flat]
        status = {statuses[i]: int(statuses[i + 1]) for i in range(0, len(statuses), 2)}
        return {
            "total_cost": total["cost"] if total["cost"] is not None else _ZERO,
            "calls": total["calls"],
            "unpriced_calls": total["unpriced_calls"],
            "estimated_calls": total["estimated_calls"],
            "refused_calls": int(refused),
            "error_calls": status.get("error", 0),
            "cancelled_calls": status.get("cancelled", 0),
            "in_flight_calls": int(in_flight),
            "reserved_cost": _usd(reserved),
            "input_tokens": total["input_tokens"],
            "output_tokens": total["output_tokens"],
            "cached_input_tokens": total["cached_input_tokens"],
            "cache_write_tokens": total["cache_write_tokens"],
            "reasoning_tokens": total["reasoning_tokens"],
            "by_model": dict(sorted(by_kind["model"].items())),
            "by_tag": dict(sorted(by_kind["tag"].items())),
            "by_period": {p: dict(sorted(by_kind[p].items())) for p in ("hour", "day", "month")},
        }

    def bucket_usage(self, keys: Iterable[str]) -> dict[str, tuple[Decimal, Decimal]]:
        """``{key: (committed, reserved)}``; unknown keys are ``(0, 0)``."""
        wanted = list(keys)
        if not wanted:
            return {}
        raw = self._run("usage", *wanted)
        return {k: (_usd(raw[2 * i]), _usd(raw[2 * i + 1])) for i, k in enumerate(wanted)}

    def reset(self) -> None:
        """Start over for every worker; holds of calls in flight are dropped.

        Starting over also acknowledges a loss of the ledger (every worker resumes).
        """
        self._epoch = _text(self._run("reset", uuid.uuid4().hex))
        self._noticed = None

    # --- waiting -------------------------------------------------------------------------

    def _max_pause(self) -> float:
        return _MAX_PAUSE_S

    def _listen(self, wake: Wake) -> bool:
        """Register ``wake``; start the subscriber if none runs, and wait until it listens.

        Waiting for the subscription matters: a hold dropped before it is live would go
        unheard (at most the socket timeout; a dead Redis fails the next attempt anyway).
        """
        with self._lock:
            if self._closing.is_set():
                return False
            self._waiters.add(wake)
            start = self._subscriber is None
            if start:
                self._subscribed.clear()
                self._subscriber = threading.Thread(
                    target=self._subscribe, name=f"llm_routing-ledger-{self.prefix}", daemon=True
                )
            subscriber = self._subscriber
        if start:
            assert subscriber is not None
            subscriber.start()
        self._subscribed.wait(self._socket_timeout())
        return True

    def _unlisten(self, wake: Wake) -> None:
        self._waiters.discard(wake)

    def _socket_timeout(self) -> float:
        kwargs = self._client.connection_pool.connection_kwargs
        timeout = kwargs.get("socket_timeout")
        return float(timeout) if isinstance(timeout, int | float) else 1.0

    def _subscribe(self) -> None:
        """The pub/sub thread: wake this process's waiters when any worker drops a hold.

        Runs only while someone waits (it leaves within ``_LISTEN_S`` after the last one), so
        a ledger nobody waits on keeps no thread and no connection.
        """
        me = threading.current_thread()
        pubsub = None
        try:
            while not self._closing.is_set():
                try:
                    if pubsub is None:
                        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
                        pubsub.subscribe(self._channel)
                    message = pubsub.get_message(timeout=_LISTEN_S)
                except _SUBSCRIBER_ERRORS:
                    # Lost Redis: wake everyone (their next attempt reports it), then retry.
                    self._subscribed.clear()
                    self._waiters.wake_all()
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            pubsub.close()
                    pubsub = None
                    self._closing.wait(_LISTEN_S)
                    message = None
                if message is not None:
                    kind = _text(message.get("type"))
                    if kind == "subscribe":
                        self._subscribed.set()
                        self._waiters.wake_all()  # anything dropped before this went unheard
                    elif kind == "message":
                        self._waiters.wake_all()
                with self._lock:
                    if not len(self._waiters):
                        self._subscriber = None
                        self._subscribed.clear()
                        return
        finally:
            with self._lock:
                if self._subscriber is me:
                    self._subscriber = None
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    pubsub.close()

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop renewing and listening, and close the client this ledger opened.

        Holds still open stop being renewed: they expire within ``hold_lease``.
        """
        self._closing.set()
        self._renewer.close()
        with self._lock:
            subscriber = self._subscriber
        if subscriber is not None and subscriber is not threading.current_thread():
            subscriber.join(_LISTEN_S + self._socket_timeout() + 1.0)
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> RedisLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
