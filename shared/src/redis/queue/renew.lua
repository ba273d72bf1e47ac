-- Renews a running build's claim: resets its entry's idle time, when this consumer still owns
-- it. Another daemon reclaims an entry idle for longer than the lease.
-- KEYS[1] the build stream   ARGV[1] group   ARGV[2] consumer   ARGV[3] entry id
-- Returns 1 when renewed, 0 when the entry is gone or another consumer owns it.
if not owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
