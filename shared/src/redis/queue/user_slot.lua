-- Takes one of a user's running slots for a build (KILN_MAX_RUNNING_PER_USER), fleet-wide.
-- KEYS[1] the user's running set (sorted set: build@daemon -> lease expiry, Redis's clock in ms)
-- ARGV[1] build@daemon   ARGV[2] the cap   ARGV[3] lease in ms
-- A slot whose expiry passed (its daemon died) is free again. A holder that has a slot keeps
-- it, and its expiry moves on.
-- Returns 1 when the build holds a slot, 0 when the user's slots are all taken.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
