-- Hands a build back to the queue (its daemon is draining, or its host is paused): its entry
-- leaves the consumer's pending list and a new entry for the same build is added, for any
-- daemon to read.
-- KEYS[1] the build stream   ARGV[1] group   ARGV[2] consumer   ARGV[3] entry id
-- ARGV[4] build id   ARGV[5] user id   ARGV[6] project id
-- ARGV[7] '1' when the reader is to take the build over (it was reclaimed), else ''
-- Returns the new entry's id, or false when this consumer no longer owns the entry.
if not owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then
  return false
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if ARGV[7] == '1' then
  return redis.call('XADD', KEYS[1], '*', 'build_id', ARGV[4], 'user_id', ARGV[5], 'project_id', ARGV[6],
    'take_over', '1')
end
return redis.call('XADD', KEYS[1], '*', 'build_id', ARGV[4], 'user_id', ARGV[5], 'project_id', ARGV[6])
