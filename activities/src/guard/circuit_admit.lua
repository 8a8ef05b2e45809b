-- Whether a run's circuit admits a request. KEYS[1]: the run's circuit hash
-- (state, until, failures, trial, trialUntil). ARGV[1]: trial id; ARGV[2]: how long a trial
-- may take (ms) before another may start; ARGV[3]: key ttl (s).
-- Returns {'closed', 0}, {'trial', 0} (this request is the one half-open trial),
-- {'open', ms} (open; ms until it half-opens) or {'busy', ms} (another trial is running).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'state', 'until', 'trial', 'trialUntil')
local state = h[1] or 'closed'
if state == 'closed' then return {'closed', 0} end
local opened_until = tonumber(h[2] or '0') or 0
if state == 'open' and now < opened_until then
  return {'open', math.ceil(opened_until - now)}
end
local trial_until = tonumber(h[4] or '0') or 0
if h[3] and now < trial_until then
  return {'busy', math.ceil(trial_until - now)}
end
redis.call('HSET', KEYS[1], 'state', 'half', 'trial', ARGV[1],
  'trialUntil', string.format('%d', now + tonumber(ARGV[2])))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {'trial', 0}
