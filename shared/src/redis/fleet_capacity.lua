-- The live builders and their summed capacity; forgets builders whose lease ran out.
-- KEYS[1] the builders sorted set; ARGV[1] lease in ms, ARGV[2] the builder hash key prefix
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local capacity = 0
local live = 0
for _, id in ipairs(ids) do
  local c = redis.call('HGET', ARGV[2] .. id, 'capacity')
  if c then
    live = live + 1
    capacity = capacity + tonumber(c)
  end
end
return {live, capacity}
