-- Hands a build this consumer read to the builder it prefers (the one that last built its
-- project), when that builder is alive, has a free slot, and the build is younger than the
-- affinity bound: the entry moves to that consumer's pending list (idle time reset), is noted
-- in the handoffs with its deadline (after which any daemon takes it), and the builder is nudged.
-- KEYS[1] the build stream   KEYS[2] the fleet's handoffs   KEYS[3] the live builders
-- KEYS[4] the preferred builder's hash   KEYS[5] its handoffs   KEYS[6] its nudges
-- ARGV[1] group   ARGV[2] this consumer   ARGV[3] entry id   ARGV[4] the preferred builder
-- ARGV[5] the affinity bound (ms)   ARGV[6] the heartbeat lease (ms)
-- Returns 'handed', or why not: 'lost' (not this consumer's entry any more), 'bound' (queued
-- longer ago than the bound), 'dead' (no heartbeat within the lease, or draining), 'busy' (no
-- free slot).
if not owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then
  return 'lost'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(string.match(ARGV[3], '^(%d+)')) + tonumber(ARGV[5])
if now >= deadline then
  return 'bound'
end
local seen = redis.call('ZSCORE', KEYS[3], ARGV[4])
local builder = redis.call('HMGET', KEYS[4], 'capacity', 'report')
local capacity = builder[1]
if not seen or not capacity or now - tonumber(seen) > tonumber(ARGV[6]) then
  return 'dead'
end
-- A draining builder reads no more builds.
if builder[2] and string.find(builder[2], '"draining":true', 1, true) then
  return 'dead'
end
local held = 0
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
for _, c in ipairs(summary[4] or {}) do
  if c[1] == ARGV[4] then
    held = tonumber(c[2])
  end
end
if held >= tonumber(capacity) then
  return 'busy'
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[4], 0, ARGV[3], 'JUSTID')
redis.call('ZADD', KEYS[2], deadline, ARGV[3] .. ' ' .. ARGV[4])
redis.call('ZADD', KEYS[5], deadline, ARGV[3])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', 64, '*', 'entry', ARGV[3])
return 'handed'
