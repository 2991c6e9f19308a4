-- chatgate commit: verify every Put/Delete version, then apply every op.
-- ARGV holds each op in turn: its kind, then its own arguments; KEYS holds
-- each op's key in the same order (an index op's key followed by its
-- expiry set), so no argument names a position:
--   'P', expected, "<version>\n<json>", ttl_ms ('0': no expiry)   Put
--   'D', expected                                                  Delete
--   'A', member, score, ttl_ms                                     IndexAdd (2 keys)
--   'R', member                                                    IndexRemove (2 keys)
--   'Q', member, score, ttl_ms                                     QueueAdd
--   'U', member                                                    QueueRemove
--   'T', ttl_ms                                                    Touch
-- An index's expiry set holds member -> when it expires (ms, Redis time).
-- An index of one member keeps none: the key's own lifetime is its
-- member's (most customers' indexes hold one interaction); its second
-- member writes the first's remaining life into a new expiry set. A queue
-- has none (its members stay until removed).
-- Every key is in KEYS.
-- Returns 0 when applied, else the 1-based position of the first op whose
-- version did not match (nothing applied then).

-- Of each kind of op: its arguments after the kind, and its keys.
local ARGS = {P = 3, D = 1, A = 3, R = 1, Q = 3, U = 1, T = 1}
local KEYN = {P = 1, D = 1, A = 2, R = 2, Q = 1, U = 1, T = 1}
local a, k, i = 1, 1, 0
while a <= #ARGV do
  local kind = ARGV[a]
  i = i + 1
  if kind == 'P' or kind == 'D' then
    local current = redis.call('GET', KEYS[k])
    local version = '0'
    if current then
      version = string.match(current, '^(%d+)\n') or 'corrupt'
    end
    if version ~= ARGV[a + 1] then
      return i
    end
  end
  a = a + 1 + ARGS[kind]
  k = k + KEYN[kind]
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- How many dead members one write removes from an index, at most.
local PRUNE = 32

-- The index and its expiry set live exactly as long as their longest-lived
-- member. (Redis deletes a sorted set when its last member goes.)
local function expire_with_members(index, expiry)
  local last = redis.call('ZRANGE', expiry, -1, -1, 'WITHSCORES')
  if #last > 0 then
    redis.call('PEXPIREAT', index, last[2])
    redis.call('PEXPIREAT', expiry, last[2])
  end
end

-- Indexes this commit changed, by name (each op passes its keys anew, so
-- one index may sit at several positions of KEYS): index key -> its expiry
-- set (`touched`), whether to recompute its lifetime (`full`) and the
-- latest expiry this commit gave one of its members (`latest`). While every
-- op on an index only raised its members' expiries, its longest-lived
-- member is the old one or the latest raised, so the lifetime is set with
-- PEXPIREAT GT; a new member (the key may be new, with no lifetime yet), an
-- expiry moved earlier or a removal recompute it from the longest-lived
-- member. Dead members are pruned once per index, when it gains a member
-- (only that makes it grow).
local touched = {}
local full = {}
local latest = {}
local pruned = {}
-- Queues this commit added to, by name: a position of the queue in KEYS
-- (`queue_at`), the latest lifetime an add asked for (`queued`), and whether
-- one of its members is new (`grew`: the key may be new then, with no
-- lifetime to raise).
local queue_at = {}
local queued = {}
local grew = {}

a, k = 1, 1
while a <= #ARGV do
  local kind = ARGV[a]
  local key = KEYS[k]
  if kind == 'P' then
    if ARGV[a + 3] == '0' then
      redis.call('SET', key, ARGV[a + 2])
    else
      redis.call('SET', key, ARGV[a + 2], 'PX', ARGV[a + 3])
    end
  elseif kind == 'D' then
    redis.call('DEL', key)
  elseif kind == 'A' then
    local expiry = KEYS[k + 1]
    local member = ARGV[a + 1]
    local at = now + tonumber(ARGV[a + 3])
    local added = redis.call('ZADD', key, ARGV[a + 2], member) == 1
    local size = redis.call('ZCARD', key)
    if size == 1 then
      -- Alone: the key lives exactly as long as its member, shorter or
      -- longer than before; an expiry set left from more members goes.
      redis.call('PEXPIREAT', key, at)
      redis.call('DEL', expiry)
      touched[key] = nil
      full[key] = nil
      latest[key] = nil
    else
      touched[key] = expiry
      if added then
        full[key] = true
        if size == 2 then
          -- The other member was alone: its life is what is left of the
          -- key's (none to keep for a key some other writer left without).
          local both = redis.call('ZRANGE', key, 0, -1)
          local other = both[1] == member and both[2] or both[1]
          local left = redis.call('PTTL', key)
          if left > 0 and not redis.call('ZSCORE', expiry, other) then
            redis.call('ZADD', expiry, now + left, other)
          end
        end
        if not pruned[key] then
          pruned[key] = true
          local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, PRUNE)
          if #dead > 0 then
            redis.call('ZREM', key, unpack(dead))
            redis.call('ZREM', expiry, unpack(dead))
          end
        end
      end
      -- GT CH: 1 when the member is new or its expiry raised; otherwise it
      -- had a later (or the same) one, which is moved here.
      if redis.call('ZADD', expiry, 'GT', 'CH', at, member) == 0 then
        redis.call('ZADD', expiry, at, member)
        full[key] = true
      end
      latest[key] = math.max(latest[key] or 0, at)
    end
  elseif kind == 'R' then
    local expiry = KEYS[k + 1]
    redis.call('ZREM', key, ARGV[a + 1])
    -- Only a member that had an expiry can have been the longest-lived.
    if redis.call('ZREM', expiry, ARGV[a + 1]) == 1 then
      touched[key] = expiry
      full[key] = true
    end
  elseif kind == 'Q' then
    if redis.call('ZADD', key, ARGV[a + 2], ARGV[a + 1]) == 1 then
      grew[key] = true
    end
    queue_at[key] = k
    queued[key] = math.max(queued[key] or 0, now + tonumber(ARGV[a + 3]))
  elseif kind == 'U' then
    redis.call('ZREM', key, ARGV[a + 1])
  elseif kind == 'T' then
    -- Only a record that exists and would expire sooner (GT: a key
    -- without a TTL counts as never expiring, and keeps none).
    redis.call('PEXPIRE', key, ARGV[a + 1], 'GT')
  end
  a = a + 1 + ARGS[kind]
  k = k + KEYN[kind]
end
for index, expiry in pairs(touched) do
  if full[index] then
    expire_with_members(index, expiry)
  else
    -- Only raised. GT counts a key without a TTL as living for ever: such
    -- a key (another writer's index, or the expiry set this commit gave
    -- it) gets its first.
    for _, key in ipairs({index, expiry}) do
      if redis.call('PEXPIREAT', key, latest[index], 'GT') == 0
          and redis.call('PTTL', key) == -1 then
        redis.call('PEXPIREAT', key, latest[index])
      end
    end
  end
end
-- A queue's life is only ever raised. GT counts a key without a TTL as
-- living for ever: when it raises nothing and the queue grew (it may be
-- new), a key without one gets its first.
for queue, at in pairs(queued) do
  local k = queue_at[queue]
  if redis.call('PEXPIREAT', KEYS[k], at, 'GT') == 0 and grew[queue]
      and redis.call('PTTL', KEYS[k]) == -1 then
    redis.call('PEXPIREAT', KEYS[k], at)
  end
end
return 0
