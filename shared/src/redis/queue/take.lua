-- The build a worker takes before it reads new ones, in one step: one handed to this builder
-- (a build that prefers it), else one handed to another builder that did not take it up before
-- its deadline (overdue), else one whose consumer stopped renewing it for a lease (lost). Also
-- acknowledges and deletes the nudges the worker read.
-- KEYS[1] the build stream   KEYS[2] the fleet's handoffs   KEYS[3] this builder's handoffs
-- KEYS[4] this builder's nudges
-- ARGV[1] group   ARGV[2] this consumer   ARGV[3] lease (ms)
-- ARGV[4] the key prefix of a builder's handoffs (followed by its id)   ARGV[5..] nudge ids
-- Returns {kind, entry id, field, value, ...} with kind 'handed', 'overdue' or 'lost', or {}.
for i = 5, #ARGV do
  redis.call('XACK', KEYS[4], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[4], ARGV[i])
end
local function owner(id)
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if p[1] then
    return p[1][2]
  end
  return false
end
-- Takes entry `id` over for this consumer (resetting its idle time); false when it is gone.
local function claim(kind, id)
  local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)
  local entry = got[1]
  if not entry or type(entry[2]) ~= 'table' then
    return false
  end
  local out = {kind, entry[1]}
  for _, v in ipairs(entry[2]) do
    table.insert(out, v)
  end
  return out
end
for _ = 1, 8 do
  local id = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not id then
    break
  end
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id .. ' ' .. ARGV[2])
  if owner(id) == ARGV[2] then
    local out = claim('handed', id)
    if out then
      return out
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _ = 1, 8 do
  local member = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1)[1]
  if not member then
    break
  end
  local sep = string.find(member, ' ', 1, true)
  local id, target = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', ARGV[4] .. target, id)
  -- Still waiting for its preferred builder (not reclaimed by another meanwhile).
  if owner(id) == target then
    local out = claim('overdue', id)
    if out then
      return out
    end
  end
end
local lost = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', 1)[2][1]
if lost and type(lost[2]) == 'table' then
  local out = {'lost', lost[1]}
  for _, v in ipairs(lost[2]) do
    table.insert(out, v)
  end
  return out
end
return {}
