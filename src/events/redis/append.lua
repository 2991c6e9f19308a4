-- chatgate event log append, once per batch even when sent again.
-- KEYS[1]: the team's stream; KEYS[2]: the batches appended lately
-- (a sorted set: batch id -> when, ms, Redis time).
-- ARGV[1]: the batch id; ARGV[2]: how long an entry is kept, ms (older
-- ones are trimmed, by Redis' own clock: the only trim, no count cap);
-- ARGV[3]: the stream's time to live, ms; ARGV[4]: how long a batch id is
-- remembered, ms; ARGV[5..]: the events' JSON.
-- A batch whose answer was lost (Redis applied it, then the link broke or
-- the answer came too late) is sent again by the appender: found among the
-- recent batches, it is not appended twice. Returns the number of entries
-- appended.
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 5, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
end
-- Stream ids are Redis' ms: entries older than the age go, once a batch.
redis.call('XTRIM', KEYS[1], 'MINID', '~', (now - tonumber(ARGV[2])) .. '-0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return #ARGV - 4
