-- chatgate due-release: ends the hold on team ARGV[1] in KEYS[2] if it is
-- still the one taken, until ARGV[2] (another taker's is left alone), and
-- lists the team in the due index KEYS[1] at ARGV[3] unless it is listed
-- lower (a write noted it meanwhile); ARGV[3] empty: nothing is queued.
-- ARGV[4]: the index's TTL (ms), renewed when written.
local held = redis.call('ZSCORE', KEYS[2], ARGV[1])
if held and tonumber(held) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], 'LT', ARGV[3], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
