-- A per-run semaphore whose slots are leases: a sorted set of lease ids scored by when each
-- lease lapses. Lapsed leases (their worker died) are dropped before counting.
-- KEYS[1]: the run's slot set. ARGV[1]: slots; ARGV[2]: lease id; ARGV[3]: lease ttl (ms).
-- Returns 1 when the lease holds a slot (taken or renewed), 0 when every slot is taken.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2])
   or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
  return 1
end
return 0
