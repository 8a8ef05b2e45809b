local function fmt(x)
  local s = string.format('%.6f', x)
  s = string.gsub(s, '0+$', '')
  s = string.gsub(s, '%.$', '')
  return s
end
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
return {'ok', fmt(new), fmt(lim)}
