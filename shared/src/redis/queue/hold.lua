-- Holds a project's in-flight slot for a short operation (a rollback), with an expiry, unless
-- something holds it already.
-- KEYS[1]: the project's in-flight key   ARGV[1]: the holder's value   ARGV[2]: expiry in ms
-- Returns nil when held now, else the current holder.
local holder = redis.call('GET', KEYS[1])
if holder then
  return holder
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
