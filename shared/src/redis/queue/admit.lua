-- Claims a project's in-flight slot and queues its build, atomically: either both happen or
-- neither does, so there is never a queued build without a claim or a claim without a build.
-- It also records which project the preview label names (idempotent), and counts the build
-- against its quota (a sliding window of build ids scored by Redis time, one sorted set per
-- user for new projects and per project for rebuilds): a project whose label key does not exist
-- yet has never been admitted, so its build is a new project; any later build is a rebuild.
-- KEYS[1]: the project's in-flight key   KEYS[2]: the build stream   KEYS[3]: the label key
-- KEYS[4]: the user's new-projects quota   KEYS[5]: the project's rebuilds quota
-- KEYS[6]: the project's affinity (the builder that last built it), copied into the entry as
-- `prefer`
-- ARGV[1]: build id   ARGV[2]: user id   ARGV[3]: project id   ARGV[4]: the label's JSON value
-- ARGV[5]: new projects per window (0: no quota)   ARGV[6]: rebuilds per window (0: no quota)
-- ARGV[7]: the window (ms)   ARGV[8]: '1' when the caller will replace a live holder of the slot
-- Returns {3, the label's value, 0} when the label already names another project (a label is
-- the first admitted project's for good: a later project whose label collides is refused,
-- never handed the other's latest URL); {1, stream entry id, 0} when queued; {0, holder build
-- id, 0} when the slot is taken
-- (with ARGV[8] = '1' the build's quota unit is then reserved: the caller replaces the holder
-- and comes back, or gives the unit back); {2, quota name, ms until a unit frees} when the
-- quota is used up (nothing written).
local named = redis.call('GET', KEYS[3])
if named and named ~= ARGV[4] then
  return {3, named, 0}
end
local holder = redis.call('GET', KEYS[1])
if holder and ARGV[8] ~= '1' then
  return {0, holder, 0}
end
local quota, limit, name = KEYS[5], tonumber(ARGV[6]), 'rebuilds'
if redis.call('EXISTS', KEYS[3]) == 0 then
  quota, limit, name = KEYS[4], tonumber(ARGV[5]), 'new_projects'
end
-- Only a replacer can come back with its unit already taken. Units that left the window are
-- removed only when the set looks full: it never holds more than the limit, and expires a window
-- after its newest unit.
if limit > 0 and not (ARGV[8] == '1' and redis.call('ZSCORE', quota, ARGV[1])) then
  local window = tonumber(ARGV[7])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if redis.call('ZCARD', quota) >= limit then
    redis.call('ZREMRANGEBYSCORE', quota, '-inf', now - window)
    if redis.call('ZCARD', quota) >= limit then
      local oldest = redis.call('ZRANGE', quota, 0, 0, 'WITHSCORES')
      return {2, name, tonumber(oldest[2]) + window - now}
    end
  end
  redis.call('ZADD', quota, now, ARGV[1])
  redis.call('PEXPIRE', quota, window)
end
if holder then
  return {0, holder, 0}
end
redis.call('SET', KEYS[1], ARGV[1])
local prefer = redis.call('GET', KEYS[6])
local entry
if prefer then
  entry = redis.call('XADD', KEYS[2], '*', 'build_id', ARGV[1], 'user_id', ARGV[2], 'project_id', ARGV[3],
    'prefer', prefer)
else
  entry = redis.call('XADD', KEYS[2], '*', 'build_id', ARGV[1], 'user_id', ARGV[2], 'project_id', ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[4])
return {1, entry, 0}
