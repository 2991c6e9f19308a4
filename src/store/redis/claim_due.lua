-- chatgate claim-due: of the sorted index KEYS[1], claim up to ARGV[2]
-- entries whose score is <= ARGV[1], lowest first (ties: member ascending):
-- move each to score ARGV[3] (a lease) and return it with the score it had.
-- Atomic, so of several callers each entry goes to exactly one. The index's
-- expiry set is untouched: a claimed member lives as long as before.
-- Returns a flat array: member, score, member, score, ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for j = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], due[j])
end
return due
