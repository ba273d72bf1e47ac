-- Whether a consumer still owns a stream entry (it is in the consumer's pending list).
-- Shared head of renew.lua, ack.lua, hand_back.lua and hand_to.lua (prepended to each).
local function owned(stream, group, consumer, entry)
  local p = redis.call('XPENDING', stream, group, entry, entry, 1)
  return #p == 1 and p[1][2] == consumer
end
