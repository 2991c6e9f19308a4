-- chatgate commit: verify every Put/Delete version, then apply every op.
-- KEYS[i] is the key of op i. ARGV holds four fields per op:
--   'P', expected, "<version>\n<json>", ttl_ms ('0': no expiry)   Put
--   'D', expected, '', ''                                          Delete
--   'A', member, score, ttl_ms                                     IndexAdd
--   'R', member, '', ''                                            IndexRemove
--   'T', '', '', ttl_ms                                            Touch
-- Returns 0 when applied, else the 1-based position of the first conflict
-- (nothing applied then).
local n = #KEYS
for i = 1, n do
  local kind = ARGV[4 * i - 3]
  if kind == 'P' or kind == 'D' then
    local current = redis.call('GET', KEYS[i])
    local version = '0'
    if current then
      version = string.match(current, '^(%d+)\n') or 'corrupt'
    end
    if version ~= ARGV[4 * i - 2] then
      return i
    end
  end
end
for i = 1, n do
  local base = 4 * i - 3
  local kind = ARGV[base]
  local key = KEYS[i]
  if kind == 'P' then
    if ARGV[base + 3] == '0' then
      redis.call('SET', key, ARGV[base + 2])
    else
      redis.call('SET', key, ARGV[base + 2], 'PX', ARGV[base + 3])
    end
  elseif kind == 'D' then
    redis.call('DEL', key)
  elseif kind == 'A' then
    redis.call('ZADD', key, ARGV[base + 2], ARGV[base + 1])
    local ttl = tonumber(ARGV[base + 3])
    local current = redis.call('PTTL', key)
    -- PTTL is -1 without a TTL; PEXPIRE GT would not raise that, so compare here.
    if current < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
  elseif kind == 'T' then
    local ttl = tonumber(ARGV[base + 3])
    local current = redis.call('PTTL', key)
    -- Only a record that exists and would expire sooner (-1: no TTL, keep).
    if current >= 0 and current < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
  elseif kind == 'R' then
    redis.call('ZREM', key, ARGV[base + 1])
  end
end
return 0
