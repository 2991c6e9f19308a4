-- chatgate event log append, once per batch even when sent again.
-- KEYS[1]: the team's stream; KEYS[2]: the batches appended lately
-- (a sorted set: batch id -> when, ms, Redis time).
-- ARGV[1]: the batch id; ARGV[2]: MINID (older entries are trimmed; the
-- only trim: no count cap); ARGV[3]: the stream's time to live, ms;
-- ARGV[4]: how long a batch id is remembered, ms; ARGV[5..]: the events'
-- JSON.
-- A batch whose answer was lost (Redis applied it, then the link broke or
-- the answer came too late) is sent again by the appender: found among the
-- recent batches, it is not appended twice. Returns the number of entries
-- appended.
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
for i = 5, #ARGV do
  redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'e', ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return #ARGV - 4
