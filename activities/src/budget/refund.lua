local function fmt(x)
  local s = string.format('%.6f', x)
  s = string.gsub(s, '0+$', '')
  s = string.gsub(s, '%.$', '')
  return s
end
local ttl = tonumber(ARGV[1])
local amount = tonumber(redis.call('GET', KEYS[4]) or '')
local spent = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local lim = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if not amount then return {'none', fmt(spent), fmt(lim)} end
local give = amount
local asked = tonumber(ARGV[2] or '')
if asked and asked < amount then give = asked end
if give < 0 then give = 0 end
local left = amount - give
if left <= 1e-9 then
  redis.call('DEL', KEYS[4])
else
  redis.call('SET', KEYS[4], fmt(left), 'EX', ttl)
end
local new = spent - give
if new < 0 then new = 0 end
redis.call('SET', KEYS[2], fmt(new), 'EX', ttl)
if new + 1e-9 >= lim then
  redis.call('SET', KEYS[3], '1', 'EX', ttl)
else
  redis.call('SET', KEYS[3], '0', 'EX', ttl)
end
return {'ok', fmt(new), fmt(lim)}
