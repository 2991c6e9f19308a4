-- chatgate take-due: remove and return up to ARGV[2] entries of the sorted
-- index KEYS[1] whose score is <= ARGV[1], lowest first (ties: member
-- ascending), and drop them from the index's expiry set KEYS[2]. Atomic, so
-- of several callers each entry goes to exactly one.
-- Returns a flat array: member, score, member, score, ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for j = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[j])
  redis.call('ZREM', KEYS[2], due[j])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
end
return due
