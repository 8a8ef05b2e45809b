-- Generic cell rate algorithm (GCRA) for one run's requests, shared by every worker.
-- KEYS[1]: the run's theoretical arrival time (ms). ARGV[1]: requests per period; ARGV[2]: the
-- period (ms). A run may send ARGV[1] requests at once, then one per period/ARGV[1].
-- Returns {1, 0} when admitted (and counts it), {0, ms} when refused: ms is how long until the
-- run may send the next request. A refused request changes nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local interval = period / n
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local allow_at = tat + interval - period
if now < allow_at then
  return {0, math.ceil(allow_at - now)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, 0}
