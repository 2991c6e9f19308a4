-- chatgate claim-due: of the sorted index KEYS[1], claim up to ARGV[2]
-- entries whose score is <= ARGV[1], lowest first (ties: member ascending):
-- move each to score ARGV[3] (a lease) and return it with the score it had.
-- Atomic, so of several callers each entry goes to exactly one. The index's
-- expiry set is untouched: a claimed member lives as long as before.
-- ARGV[4] is when the caller stops waiting for the answer, in this Redis'
-- own time (ms): a call that runs later (queued behind a pause, a stall)
-- claims nothing, so it leases no entry to a caller that has given up.
-- Returns a flat array: this Redis' time (ms), then member, score, member,
-- score, ...
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[4]) then
  return {now}
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
if #due > 0 then
  -- One ZADD for all of them.
  local leased = {}
  for j = 1, #due, 2 do
    leased[#leased + 1] = ARGV[3]
    leased[#leased + 1] = due[j]
  end
  redis.call('ZADD', KEYS[1], 'XX', unpack(leased))
end
table.insert(due, 1, now)
return due
