-- Records how an admitted request ended. KEYS[1]: the run's circuit hash. ARGV[1]: 'ok',
-- 'fail' or 'skip' (it ended without telling: the kill switch, a cancellation; a trial's place
-- is given up so the next request can be the trial); ARGV[2]: the trial id the request was admitted with ('' when it was no trial);
-- ARGV[3]: consecutive failures that open the circuit; ARGV[4]: cooldown (ms); ARGV[5]: key
-- ttl (s). Returns the state after: 'closed', 'open' or 'half'.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'state', 'trial')
local state = h[1] or 'closed'
local ttl = tonumber(ARGV[5])
local function open()
  redis.call('HSET', KEYS[1], 'state', 'open', 'failures', '0',
    'until', string.format('%d', now + tonumber(ARGV[4])))
  redis.call('HDEL', KEYS[1], 'trial', 'trialUntil')
  redis.call('EXPIRE', KEYS[1], ttl)
  return 'open'
end
if state == 'half' then
  -- Only the trial decides; requests admitted before the circuit opened do not.
  if ARGV[2] == '' or h[2] ~= ARGV[2] then return state end
  if ARGV[1] == 'skip' then
    redis.call('HDEL', KEYS[1], 'trial', 'trialUntil')
    return state
  end
  if ARGV[1] == 'ok' then
    redis.call('DEL', KEYS[1])
    return 'closed'
  end
  return open()
end
if state == 'open' or ARGV[1] == 'skip' then return state end
if ARGV[1] == 'ok' then
  redis.call('HDEL', KEYS[1], 'failures')
  return 'closed'
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('EXPIRE', KEYS[1], ttl)
if failures >= tonumber(ARGV[3]) then return open() end
return 'closed'
