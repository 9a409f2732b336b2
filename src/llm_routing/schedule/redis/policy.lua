if redis.replicate_commands then pcall(redis.replicate_commands) end

local S, L, D, E, I = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local DIMS = {'req', 'tok', 'inp', 'out'}
local Z = {req = KEYS[6], tok = KEYS[7], inp = KEYS[8], out = KEYS[9]}
local DAY = 86400.0
local INF = math.huge
local BATCH = 128

local function f(x) return string.format('%.17g', x) end
local function opt(s) if s == nil or s == '' then return nil end return tonumber(s) end

local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[2])
end
local idle = tonumber(ARGV[3])
local channel, origin, keyname = ARGV[4], ARGV[5], ARGV[6]

-- ---------------------------------------------------------------- state
local st = {
  req = 0, tok = 0, inp = 0, out = 0, cut = -INF,
  dreq = 0, dcut = -INF, cend = -INF, creq = 0,
  cool = -INF, high = -INF, win = 60.0, seq = 0, hz = -INF,
  preq = -INF, ptok = -INF, pinp = -INF, pslow = 1.0, lnext = INF,
  s_req = 0, s_tok = 0, s_inp = 0, s_out = 0,
}
st.exp = -INF
local raw = redis.call('HGETALL', S)
local exists = #raw > 0
for i = 1, #raw, 2 do st[raw[i]] = tonumber(raw[i + 1]) end
local saved = {}
for name, value in pairs(st) do saved[name] = value end
local created = {}  -- keys this call may have created (they need a TTL)

local function save_state()
  local out = {}
  for name, value in pairs(st) do
    if not exists or saved[name] ~= value then
      out[#out + 1] = name
      out[#out + 1] = f(value)
    end
  end
  if #out > 0 then redis.call('HSET', S, unpack(out)) end
end

-- Save, then keep every key alive until idle expiry after the last thing in it stops
-- counting. All keys share one deadline (exp); it is pushed out only when it falls short of
-- 90 % of the idle time, and otherwise only keys this call may have created get it.
local function finish()
  local rest = st.hz - now
  if not (rest > 0) then rest = 0 end
  if rest > 315360000 then rest = 315360000 end
  local refresh = st.exp < now + rest + 0.9 * idle
  if refresh then st.exp = now + rest + idle end
  save_state()
  local ms = string.format('%d', math.max(1, math.ceil((st.exp - now) * 1000)))
  if refresh or not exists then
    for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ms) end
  else
    for key in pairs(created) do redis.call('PEXPIRE', key, ms) end
  end
end

local function horizon(t) if t > st.hz then st.hz = t end end

-- ---------------------------------------------------------------- entries
local cache = {}

local function load(id)
  local e = cache[id]
  if e then return e end
  local s = redis.call('HGET', E, id)
  local t, late, rq, ni, no, flags, dend, rid =
    string.match(s, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) ?(.*)$')
  e = {
    id = id, t = tonumber(t), late = tonumber(late), req = tonumber(rq),
    inp = tonumber(ni), out = tonumber(no), day_end = tonumber(dend),
    in_day = string.sub(flags, 1, 1) == '1', inL = string.sub(flags, 2, 2) == '1',
    inD = string.sub(flags, 3, 3) == '1', rid = rid,
  }
  cache[id] = e
  return e
end

local function pack(e)
  local flags = (e.in_day and '1' or '0') .. (e.inL and '1' or '0') .. (e.inD and '1' or '0')
  return f(e.t) .. ' ' .. f(e.late) .. ' ' .. f(e.req) .. ' ' .. f(e.inp) .. ' ' .. f(e.out)
    .. ' ' .. flags .. ' ' .. f(e.day_end) .. ' ' .. e.rid
end

-- An entry lives while a log or the in-flight table still refers to it.
local function keep_or_drop(e)
  if e.rid ~= '' or e.inL or e.inD then
    redis.call('HSET', E, e.id, pack(e))
    created[E] = true
  else
    redis.call('HDEL', E, e.id)
  end
end

-- Iterate a log (list of ids) in order, yielding fn(entry) -> leaves_at, units.
local function walk(list, fn)
  local pos, batch, bi, done = 0, {}, 1, false
  return function()
    if bi > #batch then
      if done then return nil end
      batch = redis.call('LRANGE', list, pos, pos + BATCH - 1)
      pos = pos + BATCH
      bi = 1
      if #batch < BATCH then done = true end
      if #batch == 0 then return nil end
    end
    local e = load(batch[bi])
    bi = bi + 1
    return fn(e)
  end
end

-- ---------------------------------------------------------------- policy internals
local function observe(window)
  if now < st.high then now = st.high end
  st.high = now
  st.win = window
  while true do
    local id = redis.call('LINDEX', L, 0)
    if not id then break end
    local e = load(id)
    if e.t + e.late + window <= now then
      redis.call('LPOP', L)
      st.req = st.req - e.req
      st.inp = st.inp - e.inp
      st.out = st.out - e.out
      st.tok = st.tok - (e.inp + e.out)
      st.cut = e.t
      e.inL = false
      keep_or_drop(e)
    else
      break
    end
  end
  while true do
    local id = redis.call('LINDEX', D, 0)
    if not id then break end
    local e = load(id)
    if e.t + DAY <= now then
      redis.call('LPOP', D)
      st.dreq = st.dreq - e.req
      st.dcut = e.t
      e.inD = false
      keep_or_drop(e)
    else
      break
    end
  end
  for _, dim in ipairs(DIMS) do
    if st['s_' .. dim] ~= 0 then
      local gone = redis.call('ZRANGEBYSCORE', Z[dim], '-inf', f(now))
      if #gone > 0 then
        local sum = 0
        for _, member in ipairs(gone) do
          sum = sum + tonumber(string.match(member, '^%S+ (%S+)'))
        end
        redis.call('ZREMRANGEBYSCORE', Z[dim], '-inf', f(now))
        st['s_' .. dim] = st['s_' .. dim] - sum
      end
    end
  end
  return now
end

-- heapq.merge of the log's departures (first on ties) with the synthetic ones.
local function earliest(need, nextlog, dim)
  local syn = {}
  if dim and st['s_' .. dim] ~= 0 then
    local members = redis.call('ZRANGE', Z[dim], 0, -1)
    for i, member in ipairs(members) do
      local at, units = string.match(member, '^(%S+) (%S+)')
      syn[i] = {tonumber(at), tonumber(units)}
    end
  end
  local si = 1
  local lat, lunits = nextlog()
  local freed = 0
  local latest = now
  while true do
    local at, units
    local s = syn[si]
    if lat ~= nil and (s == nil or lat <= s[1]) then
      at, units = lat, lunits
      lat, lunits = nextlog()
    elseif s ~= nil then
      at, units = s[1], s[2]
      si = si + 1
    else
      break
    end
    if at > latest then latest = at end
    freed = freed + units
    if freed >= need then return latest end
  end
  return INF
end

local function limits_at(base)
  return {
    window = tonumber(ARGV[base]), rpm = opt(ARGV[base + 1]), tpm = opt(ARGV[base + 2]),
    itpm = opt(ARGV[base + 3]), otpm = opt(ARGV[base + 4]), rpd = opt(ARGV[base + 5]),
    maxc = opt(ARGV[base + 6]), smoothing = ARGV[base + 7] == '1',
    calendar = ARGV[base + 8] == 'calendar', day_start = tonumber(ARGV[base + 9]),
    epoch = tonumber(ARGV[base + 10]), raw_rpm = opt(ARGV[base + 11]),
    raw_tpm = opt(ARGV[base + 12]), raw_itpm = opt(ARGV[base + 13]),
    raw_otpm = opt(ARGV[base + 14]),
  }
end
local NLIMITS = 15

local function day_end(lim)
  local shifted = now + lim.epoch - lim.day_start
  local e = (math.floor(shifted / DAY) + 1) * DAY + lim.day_start - lim.epoch
  if e > now then return e end
  return e + DAY
end

local function earliest_day(lim)
  if lim.calendar then
    local used = 0
    if now < st.cend then used = st.creq end
    if used + 1 <= lim.rpd then return now end
    return st.cend
  end
  local need = st.dreq + 1 - lim.rpd
  if need <= 0 then return now end
  return earliest(need, walk(D, function(e) return e.t + DAY, e.req end), nil)
end

-- policy._token_credit: how early a paced token admission may go into the provider's bucket
local function token_credit(limit, cost, window)
  local rate = limit / window
  return 0.5 * math.max(0.0, math.max(1.0, rate) - cost) / rate  -- policy.PACE_TOKEN_CREDIT
end

local function decide(lim, rin, rout, concurrency)
  observe(lim.window)
  local window = lim.window
  local function by_req(e) return e.t + e.late + window, e.req end
  local function by_tok(e) return e.t + e.late + window, e.inp + e.out end
  local function by_inp(e) return e.t + e.late + window, e.inp end
  local function by_out(e) return e.t + e.late + window, e.out end
  local at = now
  local binding = ''
  if lim.rpd then
    local when = earliest_day(lim)
    if when > at then at, binding = when, 'rpd' end
  end
  if st.cool > at then at, binding = st.cool, 'cooldown' end
  if lim.rpm then
    local need = st.req + st.s_req + 1 - lim.rpm
    if need > 0 then
      local when = earliest(need, walk(L, by_req), 'req')
      if when > at then at, binding = when, 'rpm' end
    end
  end
  if lim.tpm then
    local need = st.tok + st.s_tok + (rin + rout) - lim.tpm
    if need > 0 then
      local when = earliest(need, walk(L, by_tok), 'tok')
      if when > at then at, binding = when, 'tpm' end
    end
  end
  if lim.itpm then
    local need = st.inp + st.s_inp + rin - lim.itpm
    if need > 0 then
      local when = earliest(need, walk(L, by_inp), 'inp')
      if when > at then at, binding = when, 'itpm' end
    end
  end
  if lim.otpm then
    local need = st.out + st.s_out + rout - lim.otpm
    if need > 0 then
      local when = earliest(need, walk(L, by_out), 'out')
      if when > at then at, binding = when, 'otpm' end
    end
  end
  if lim.smoothing then
    if lim.rpm and st.preq > at then at, binding = st.preq, 'pace_rpm' end
    if lim.tpm and lim.raw_tpm then
      local when = st.ptok - token_credit(lim.raw_tpm, rin + rout, lim.window)
      if when > at then at, binding = when, 'pace_tpm' end
    end
    if lim.itpm and lim.raw_itpm then
      local when = st.pinp - token_credit(lim.raw_itpm, rin, lim.window)
      if when > at then at, binding = when, 'pace_itpm' end
    end
  end
  if at > now then
    return {0, f(at), binding, (binding == 'rpd') and 1 or 0}
  end
  if concurrency and lim.maxc and redis.call('HLEN', I) >= lim.maxc then
    -- policy.decide: a slot frees when a call ends (published) or a lease runs out
    local freed_at = 'inf'
    if st.lnext > now then freed_at = f(st.lnext) end
    return {0, freed_at, 'concurrency', 0}
  end
  return {1, f(now), '', 0}
end

local function record(lim, rin, rout, rid, lease)
  observe(lim.window)
  local in_day = lim.rpd ~= nil and not lim.calendar
  local dend = -INF
  if lim.rpd and lim.calendar then
    if not (now < st.cend) then
      st.cend = day_end(lim)
      st.creq = 0
    end
    st.creq = st.creq + 1
    dend = st.cend
    horizon(st.cend)
  end
  st.seq = st.seq + 1
  local id = string.format('%d', st.seq)
  local e = {
    id = id, t = now, late = 0, req = 1, inp = rin, out = rout, day_end = dend,
    in_day = in_day, inL = true, inD = in_day, rid = '=' .. rid,
  }
  cache[id] = e
  redis.call('RPUSH', L, id)
  created[L] = true
  st.req = st.req + 1
  st.inp = st.inp + rin
  st.out = st.out + rout
  st.tok = st.tok + (rin + rout)
  if in_day then
    redis.call('RPUSH', D, id)
    created[D] = true
    st.dreq = st.dreq + 1
    horizon(now + DAY)
  end
  if lim.smoothing then
    local slow = st.pslow
    local pw = lim.window * slow
    if lim.rpm and lim.raw_rpm then
      -- policy._record: a late admission is paced from when it was due, within the slack
      local interval = pw / math.max(1, lim.rpm - st.s_req)
      local exact = lim.window / lim.raw_rpm
      local catch = math.max(0.0, interval - exact) * math.max(1.0, 1.0 / exact)
      local late = now - st.preq
      local start = now
      if late > 0.0 and late <= catch then start = st.preq end
      st.preq = start + interval
    end
    if lim.tpm and lim.tpm > 0 then
      st.ptok = math.max(st.ptok, now) + (rin + rout) * pw / math.max(1, lim.tpm - st.s_tok)
    end
    if lim.itpm and lim.itpm > 0 then
      st.pinp = math.max(st.pinp, now) + rin * pw / math.max(1, lim.itpm - st.s_inp)
    end
    st.pslow = math.max(1.0, slow * 0.99)  -- policy.PACE_RECOVERY
  end
  horizon(now + lim.window)
  if lease then
    local untl = now + lease
    redis.call('HSET', I, rid, id .. ' ' .. f(untl))
    if untl < st.lnext then st.lnext = untl end
  else
    redis.call('HSET', I, rid, id)
  end
  created[I] = true
  keep_or_drop(e)
end

local function shift(e, d_req, d_in, d_out)
  local counted = e.t > st.cut
  if counted then
    st.req = st.req + d_req
    st.inp = st.inp + d_in
    st.out = st.out + d_out
    st.tok = st.tok + (d_in + d_out)
  end
  if d_req ~= 0 then
    if e.in_day and e.t > st.dcut then st.dreq = st.dreq + d_req end
    if e.day_end == st.cend then st.creq = st.creq + d_req end
  end
  return counted
end

-- An in-flight value is 'id' or 'id lease' (the time its slot is freed unless renewed).
local function inflight_id(v)
  local id, lease = string.match(v, '^(%S+) ?(%S*)$')
  return id, (lease ~= '' and tonumber(lease) or INF)
end

local function take_inflight(rid)
  local v = redis.call('HGET', I, rid)
  if not v then return nil end
  redis.call('HDEL', I, rid)
  local e = load(inflight_id(v))
  e.rid = ''
  return e
end

-- policy.expire: free the in-flight slots whose owner stopped renewing them (killed mid-call);
-- what they reserved stays counted in the windows. lnext bounds the earliest lease below.
local function expire()
  if now < st.lnext then return 0 end
  local freed, earliest = 0, INF
  local all = redis.call('HGETALL', I)
  for i = 1, #all, 2 do
    local id, lease = inflight_id(all[i + 1])
    if lease <= now then
      redis.call('HDEL', I, all[i])
      local e = load(id)
      e.rid = ''
      keep_or_drop(e)
      freed = freed + 1
    elseif lease < earliest then
      earliest = lease
    end
  end
  st.lnext = earliest
  return freed
end

local function publish()
  redis.call('PUBLISH', channel, origin .. '\n' .. keyname)
end

-- ---------------------------------------------------------------- operations
local A = 7

if op == 'acquire' then
  local lim = limits_at(A)
  local rin = tonumber(ARGV[A + NLIMITS])
  local rout = tonumber(ARGV[A + NLIMITS + 1])
  local rid = ARGV[A + NLIMITS + 2]
  local lease = opt(ARGV[A + NLIMITS + 3])
  if expire() > 0 then publish() end
  local decision = decide(lim, rin, rout, true)
  if decision[1] == 1 then
    if redis.call('HEXISTS', I, rid) == 1 then
      finish()
      return {-1}
    end
    record(lim, rin, rout, rid, lease)
  end
  finish()
  decision[5] = f(now)
  return decision

elseif op == 'settle' then
  local lim = limits_at(A)
  local rid = ARGV[A + NLIMITS]
  local inp, out = tonumber(ARGV[A + NLIMITS + 1]), tonumber(ARGV[A + NLIMITS + 2])
  local answered = opt(ARGV[A + NLIMITS + 3])
  local e = take_inflight(rid)
  if not e then return 0 end
  observe(lim.window)
  if answered ~= nil and answered > e.t then
    local late = answered - e.t
    if late > e.late then e.late = late end
  end
  local d_in = inp - e.inp
  local d_out = out - e.out
  local counted = shift(e, 0, d_in, d_out)
  e.inp = inp
  e.out = out
  keep_or_drop(e)
  horizon(e.t + e.late + lim.window)
  finish()
  if lim.maxc ~= nil or (counted and (d_in < 0 or d_out < 0)) then
    publish()
    return 1
  end
  return 0

elseif op == 'release' then
  local rid, keep = ARGV[A], ARGV[A + 1] == '1'
  local e = take_inflight(rid)
  if not e then return 0 end
  local d_req = 0
  if not keep then d_req = -e.req end
  shift(e, d_req, -e.inp, -e.out)
  e.req = e.req + d_req
  e.inp = 0
  e.out = 0
  keep_or_drop(e)
  finish()
  publish()
  return 1

elseif op == 'renew' then
  -- policy.renew: ARGV lease seconds, then the rids of this process's live calls
  local untl = now + tonumber(ARGV[A])
  local renewed = 0
  for i = A + 1, #ARGV do
    local v = redis.call('HGET', I, ARGV[i])
    if v then
      local id, lease = inflight_id(v)
      if lease ~= INF then
        if untl > lease then redis.call('HSET', I, ARGV[i], id .. ' ' .. f(untl)) end
        renewed = renewed + 1
      end
    end
  end
  return renewed

elseif op == 'cooldown' then
  local untl = tonumber(ARGV[A])
  if untl > st.cool then
    -- policy.PACE_SLOW_MAX and PACE_SLOWDOWN (a test checks they agree)
    if st.cool <= st.high then st.pslow = math.min(4.0, st.pslow * 1.5) end
    st.cool = untl
    horizon(untl)
  end
  finish()
  return 1

elseif op == 'correct' then
  local lim = limits_at(A)
  local b = A + NLIMITS
  local dims = {
    {'req', lim.raw_rpm, opt(ARGV[b]), opt(ARGV[b + 1])},
    {'tok', lim.raw_tpm, opt(ARGV[b + 2]), opt(ARGV[b + 3])},
    {'inp', lim.raw_itpm, opt(ARGV[b + 4]), opt(ARGV[b + 5])},
    {'out', lim.raw_otpm, opt(ARGV[b + 6]), opt(ARGV[b + 7])},
  }
  observe(lim.window)
  local ours = {req = st.req, tok = st.tok, inp = st.inp, out = st.out}
  for _, d in ipairs(dims) do
    local dim, limit, remaining, reset = d[1], d[2], d[3], d[4]
    if remaining ~= nil and limit ~= nil then
      local deficit = (limit - math.floor(remaining)) - ours[dim] - st['s_' .. dim]
      if deficit > 0 then
        local expires
        if reset == nil then expires = now + lim.window else expires = now + reset end
        if expires > now then
          st.seq = st.seq + 1
          local member = f(expires) .. ' ' .. f(deficit) .. ' ' .. string.format('%d', st.seq)
          redis.call('ZADD', Z[dim], f(expires), member)
          created[Z[dim]] = true
          st['s_' .. dim] = st['s_' .. dim] + deficit
          horizon(expires)
        end
      end
    end
  end
  finish()
  return 1

elseif op == 'snapshot' then
  if not exists then
    return {'0', '0', '0', '0', '0', '', '0', '60', f(now)}
  end
  observe(st.win)
  expire()
  local today
  if redis.call('LLEN', D) > 0 then
    today = st.dreq
  elseif now < st.cend then
    today = st.creq
  else
    today = 0
  end
  local cool = ''
  if st.cool > now then cool = f(st.cool) end
  save_state()
  return {
    f(st.req + st.s_req), f(st.tok + st.s_tok), f(st.inp + st.s_inp), f(st.out + st.s_out),
    f(today), cool, f(redis.call('HLEN', I)), f(st.win), f(now),
  }

elseif op == 'load' then
  local lim = limits_at(A)
  local b = A + NLIMITS
  local pending = tonumber(ARGV[b])
  local sin, sout = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local rin, rout = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  observe(lim.window)
  finish()
  -- Everything queued and the request fit now: the projection admits all at once, so
  -- answer without shipping the state (the common case, and the cheap one).
  if ARGV[b + 3] == '1' and not (st.cool > now) then
    local fits = true
    if lim.rpm and st.req + st.s_req + pending + 1 > lim.rpm then fits = false end
    if lim.tpm and st.tok + st.s_tok + (sin + sout) + (rin + rout) > lim.tpm then fits = false end
    if lim.itpm and st.inp + st.s_inp + sin + rin > lim.itpm then fits = false end
    if lim.otpm and st.out + st.s_out + sout + rout > lim.otpm then fits = false end
    if lim.rpd then
      local used = st.dreq
      if lim.calendar then
        used = 0
        if now < st.cend then used = st.creq end
      end
      if used + pending + 1 > lim.rpd then fits = false end
    end
    if fits then return {f(now)} end
  end
  local fields = {}
  for name, value in pairs(st) do
    fields[#fields + 1] = name
    fields[#fields + 1] = f(value)
  end
  -- Ids, then the stored entries as they are (parsed in Python, not here: cheaper).
  local function packed(list)
    local ids = redis.call('LRANGE', list, 0, -1)
    local out = {ids, {}}
    for i = 1, #ids, 1000 do
      local values = redis.call('HMGET', E, unpack(ids, i, math.min(i + 999, #ids)))
      for _, value in ipairs(values) do out[2][#out[2] + 1] = value end
    end
    return out
  end
  local day = {{}, {}}
  if lim.rpd and not lim.calendar and st.dreq + pending + 1 > lim.rpd then day = packed(D) end
  local result = {f(now), fields, packed(L), day}
  for _, dim in ipairs(DIMS) do
    if st['s_' .. dim] ~= 0 then
      result[#result + 1] = redis.call('ZRANGE', Z[dim], 0, -1)
    else
      result[#result + 1] = {}
    end
  end
  return result
end

return redis.error_reply('llm_routing: unknown operation ' .. tostring(op))
