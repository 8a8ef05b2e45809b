local function fmt(x)
  local s = string.format('%.6f', x)
  s = string.gsub(s, '0+$', '')
  s = string.gsub(s, '%.$', '')
  return s
end
-- KEYS: budget, spent, exceeded, charge marker, emitted alerts, alert stream.
-- ARGV: amount, default limit, ttl seconds, run id, alert stream length.
local ttl = tonumber(ARGV[3])
local limit = redis.call('GET', KEYS[1])
if not limit then
  if tonumber(ARGV[2]) <= 0 then return {'notfound', '0', '0'} end
  limit = ARGV[2]
  redis.call('SET', KEYS[1], limit, 'EX', ttl)
  redis.call('SET', KEYS[2], '0', 'EX', ttl, 'NX')
  redis.call('SET', KEYS[3], '0', 'EX', ttl, 'NX')
end
local spent = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local lim = tonumber(limit) or 0
-- A live run's budget never silently lapses: every charge attempt refreshes its TTL.
redis.call('EXPIRE', KEYS[1], ttl)
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {'dup', fmt(spent), fmt(lim)}
end
local amount = tonumber(ARGV[1])
local new = spent + amount
if new > lim + 1e-9 then
  return {'exceeded', fmt(spent), fmt(lim)}
end
redis.call('SET', KEYS[2], fmt(new), 'EX', ttl)
if new + 1e-9 >= lim then
  redis.call('SET', KEYS[3], '1', 'EX', ttl)
else
  redis.call('SET', KEYS[3], '0', 'EX', ttl)
end
redis.call('SET', KEYS[4], ARGV[1], 'EX', ttl)
-- Budget alerts (seed 001): each threshold once per run, decided here, so racing charges
-- can never emit one twice. KEYS[5]: the run's emitted thresholds; KEYS[6]: the alert stream.
local reply = {'ok', fmt(new), fmt(lim)}
if lim > 0 then
  local t = redis.call('TIME')
  local now = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  for _, pct in ipairs({50, 80, 90, 100}) do
    if new + 1e-9 >= lim * pct / 100
       and redis.call('HSETNX', KEYS[5], tostring(pct), now) == 1 then
      redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], '*', 'runId', ARGV[4],
        'threshold', tostring(pct), 'spent', fmt(new), 'limit', fmt(lim), 'timestamp', now)
      table.insert(reply, tostring(pct))
    end
  end
  redis.call('EXPIRE', KEYS[5], ttl)
end
return reply
