-- The live builders' reports; forgets builders whose lease ran out.
-- KEYS[1] the builders sorted set; ARGV[1] lease in ms, ARGV[2] the builder hash key prefix
-- Returns {id, seen_ms, report, ...} and Redis's time (ms) last.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HMGET', ARGV[2] .. id, 'seen_ms', 'report')
  if h[1] then
    table.insert(out, id)
    table.insert(out, h[1])
    table.insert(out, h[2] or '{}')
  end
end
table.insert(out, tostring(now))
return out
