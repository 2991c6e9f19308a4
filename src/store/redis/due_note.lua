-- chatgate due-note: lists each team ARGV[3], ARGV[5], ... in the due
-- index KEYS[1] at ARGV[2], ARGV[4], ..., unless it is listed lower, and
-- renews the index's TTL to ARGV[1] (ms).
local scored = {}
for i = 2, #ARGV, 2 do
  scored[#scored + 1] = ARGV[i]
  scored[#scored + 1] = ARGV[i + 1]
end
redis.call('ZADD', KEYS[1], 'LT', unpack(scored))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
