-- Releases a project's in-flight slot only if the given build still holds it.
-- KEYS[1]: the project's in-flight key   ARGV[1]: build id
-- Returns 1 when released, 0 when another build (or none) held it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
