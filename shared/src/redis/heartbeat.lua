-- A builder's heartbeat, timed by Redis's clock (builders' clocks may disagree).
-- KEYS[1] the builders sorted set, KEYS[2] the builder's hash
-- ARGV[1] builder id, ARGV[2] capacity, ARGV[3] lease in ms, ARGV[4] the builder's report (JSON)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], 'capacity', ARGV[2], 'seen_ms', now, 'report', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return now
