-- chatgate move-unchanged: of the queue KEYS[1], move each member
-- ARGV[2], ARGV[4], ... that is still there at the score read, ARGV[3],
-- ARGV[5], ..., to the score ARGV[1]. An entry claimed, moved or removed
-- since it was read is left as it is: a removed one is never brought
-- back, a claimed one keeps its lease. The queue's expiry is untouched.
-- Returns how many moved.
local moved = 0
for i = 2, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
    moved = moved + 1
  end
end
return moved
