-- Acknowledges and removes a finished build's entry, when this consumer still owns it (a
-- builder that lost its lease must not take the entry from the one that reclaimed it).
-- KEYS[1] the build stream   ARGV[1] group   ARGV[2] consumer   ARGV[3] entry id
-- Returns 1 when acknowledged, 0 when another consumer owns the entry or it is gone.
if not owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
