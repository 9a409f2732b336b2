"""The shared ledger's Lua: every `RedisLedger` operation as one atomic script.

Owns only the script text (``LEDGER_LUA``); ``cost.redis`` encodes its arguments and decodes
its answers. Money is integer picodollars in strings, added with two 12-digit limbs since Lua
numbers are doubles; holds are leases on Redis ``TIME``; an epoch key tells a client that Redis
lost the ledger. Kept whole: one script is one unit Redis runs atomically, and splitting its
text would only scatter what must be read together.
"""

from __future__ import annotations

__all__ = ["LEDGER_LUA"]

LEDGER_LUA = r"""
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
