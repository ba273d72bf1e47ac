-- Claims a project's in-flight slot and queues its build, atomically: either both happen or
-- neither does, so there is never a queued build without a claim or a claim without a build.
-- It also records which project the preview label names (idempotent).
-- KEYS[1]: the project's in-flight key   KEYS[2]: the build stream   KEYS[3]: the label key
-- ARGV[1]: build id   ARGV[2]: user id   ARGV[3]: project id   ARGV[4]: the label's JSON value
-- Returns {1, stream entry id} when queued, {0, holder build id} when the slot is taken.
local holder = redis.call('GET', KEYS[1])
if holder then
  return {0, holder}
end
redis.call('SET', KEYS[1], ARGV[1])
local entry = redis.call('XADD', KEYS[2], '*', 'build_id', ARGV[1], 'user_id', ARGV[2], 'project_id', ARGV[3])
redis.call('SET', KEYS[3], ARGV[4])
return {1, entry}
