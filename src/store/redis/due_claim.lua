-- chatgate due-claim: of the teams' due index KEYS[1] and its holds
-- KEYS[2] (docs/architecture.md#many-teams), first list again each team
-- whose hold ended (its taker died) at the hold's end, then take up to
-- ARGV[2] teams listed at a time <= ARGV[1], lowest first: each leaves the
-- index and is held until ARGV[3]. ARGV[4]: the keys' TTL (ms), renewed
-- when written. ARGV[5] is when the caller stops waiting for the answer,
-- in this Redis' own time (ms): a call that runs later (queued behind a
-- pause) takes nothing, so it holds no team for a caller that has given up.
-- Returns the teams taken.
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[5]) then
  return {}
end
local back = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, 100)
if #back > 0 then
  for j = 1, #back, 2 do
    redis.call('ZADD', KEYS[1], 'LT', back[j + 1], back[j])
    redis.call('ZREM', KEYS[2], back[j])
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then
  local held = {}
  for j = 1, #due do
    held[#held + 1] = ARGV[3]
    held[#held + 1] = due[j]
  end
  redis.call('ZADD', KEYS[2], unpack(held))
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  redis.call('ZREM', KEYS[1], unpack(due))
end
return due
