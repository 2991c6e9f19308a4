-- chatgate take-due: remove and return up to ARGV[2] entries of the sorted
-- index KEYS[1] whose score is <= ARGV[1], lowest first (ties: member
-- ascending). Atomic, so of several callers each entry goes to exactly one.
-- Returns a flat array: member, score, member, score, ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for j = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[j])
end
return due
