-- Reads KEYS[1] and, in the same round trip, the record it names as its
-- companion: the top-level string member "companion" of its JSON (after the
-- "<version>\n" line). ARGV[1] is the key prefix including its ':'.
-- The companion shares KEYS[1]'s hash tag by construction ({team}).
-- Returns { record or false, companion key or false, companion or false }.
local v = redis.call('GET', KEYS[1])
if not v then return { false, false, false } end
local nl = string.find(v, '\n', 1, true)
if not nl then return { v, false, false } end
local ok, rec = pcall(cjson.decode, string.sub(v, nl + 1))
if not ok or type(rec) ~= 'table' or type(rec['companion']) ~= 'string' then
  return { v, false, false }
end
local c = rec['companion']
return { v, c, redis.call('GET', ARGV[1] .. c) }
