-- chatgate commit: verify every Put/Delete version, then apply every op.
-- ARGV[1] is the writer's reckoning of Redis' time (ms: its own clock and
-- the offset Redis' last claim answer showed), the `now` of every expiry
-- below: no TIME call. Then ARGV holds each op in turn: its kind, then its
-- own arguments; KEYS holds
-- each op's key in the same order (an index op's key followed by its
-- expiry set), so no argument names a position:
--   'P', expected, "<version>\n<json>", ttl_ms ('0': no expiry)   Put
--   'D', expected                                                  Delete
--   'A', member, score, ttl_ms, renew, slack_ms, prune             IndexAdd (2 keys)
--   'R', member                                                    IndexRemove (2 keys)
--   'Q', member, score, ttl_ms, renew, slack_ms                    QueueAdd
--   'U', member                                                    QueueRemove
--   'T', ttl_ms                                                    Touch
--   'X', entry, min_id, ttl_ms, fresh                               Append
--   'N', ttl_ms, renew, at, team                                   due note
--   'S', records                                                   change signal
-- A change signal (its key: the team's change channel, in the team's
-- slot) follows every op: one PUBLISH of the logical keys of the records
-- a wait reads that the commit wrote, one a line, once it applied, for
-- the waits of every instance (docs/architecture.md#change-signals).
-- A due note (on one Redis only: its key, a due index, is in a slot of its
-- own) lists the team in the due index at `at` unless it is listed lower,
-- as `due_note.lua` does, and renews the index's life to ttl_ms when
-- `renew` is '1' (this writer has not in the last minute) or the team was
-- not listed (the key may be new: it never exists without a TTL); it
-- follows the ops whose queue adds it notes, and checks nothing.
-- The checks go in op order. A check expecting a version reads the key's
-- version line (GETRANGE, see VERSION_END); one expecting the key absent
-- ('0') reads it with GET, except where the key is nowhere else in KEYS:
-- such a Put's check is its write, `SET … NX` (a create), and such a
-- Delete, once its GET found the key absent, has nothing left to delete. A conflict, or an error reply (a key of another
-- type), deletes the keys this commit created (absent before, so that
-- restores them): nothing stays written. A key in several ops is checked
-- by reading it, against what was there before the commit, as every op's
-- version is.
-- An index's expiry set holds member -> when it expires (ms, by `now`).
-- An index of one member keeps none: the key's own lifetime is its
-- member's (most customers' indexes hold one interaction); its second
-- member writes the first's remaining life into a new expiry set. A queue
-- has none (its members stay until removed).
-- Lifetimes of indexes and queues are renewed, not set on every add: `renew`
-- is '1' when this writer has not renewed the key in the last minute (or
-- this add asks for more than it renewed it to), and a renewal raises the
-- key's life to the latest expiry the commit asks for plus `slack_ms`
-- (that minute, or the TTL asked when shorter): so until this writer's next
-- renewal, what it adds expires before the key does. Every op on a key in
-- one commit carries the same `renew` and `slack_ms`.
-- An append adds the entry to the stream (field `e`); no count cap. Once
-- per commit and stream, when `fresh` is '1' (this writer has not done so
-- in the last minute) or the stream is new, the stream is trimmed of
-- entries older than min_id (its only trim) and lives ttl_ms from now: so
-- it never exists without a TTL, and outlives its last entry by at least
-- ttl_ms less a minute. Appends go after the checks (so after the
-- creates) and before every other write: a stream Redis refuses (another
-- type at its key) undoes the creates and fails the script with Redis'
-- error, nothing written.
-- Every key is in KEYS.
-- Returns 0 when applied, else the 1-based position of the first op whose
-- version did not match (nothing applied then).

-- A check of an op expecting a version reads only the value's version
-- line (GETRANGE to byte 20: a version is a u64, at most 20 digits, then
-- its newline), not the whole record. A missing key reads as '' there: no
-- version line, a conflict, as it is. A check expecting the key absent
-- reads it with GET (nothing to read but for a conflict). (Strings: Redis
-- formats a Lua number passed to a command with sprintf, every call.)
local VERSION_END = '20'
-- How many times each key is in KEYS.
local uses
local function times_in_keys(key)
  if not uses then
    -- Counted only when an op expects a key absent (most commits have none).
    uses = {}
    for _, each in ipairs(KEYS) do
      uses[each] = (uses[each] or 0) + 1
    end
  end
  return uses[key]
end
-- The keys this commit created with `SET … NX` (their positions in KEYS),
-- and the positions in KEYS whose op needs no write after its check (a
-- create, or a Delete of a key still absent).
local created = {}
local done = {}
-- Deletes the keys this commit created: they were absent before it.
local function undo()
  for _, at in ipairs(created) do
    redis.call('DEL', KEYS[at])
  end
end
-- Whether a check's or an append's reply is an error (a key of another
-- type, say): the creates are undone then, for the script to return it.
local function refused(reply)
  if type(reply) == 'table' and reply.err then
    undo()
    return true
  end
  return false
end

-- Of each kind of op: how many arguments follow its kind, and how many
-- keys it has. (A function, not a table: a table built on every call of
-- the script costs more than these comparisons.)
local function shape(kind)
  if kind == 'P' then
    return 3, 1
  elseif kind == 'A' then
    return 6, 2
  elseif kind == 'Q' then
    return 5, 1
  elseif kind == 'X' then
    return 4, 1
  elseif kind == 'N' then
    return 4, 1
  elseif kind == 'R' then
    return 1, 2
  elseif kind == 'D' or kind == 'U' or kind == 'T' or kind == 'S' then
    return 1, 1
  end
  -- A writer that knows another kind: nothing of this commit stays.
  undo()
  error('commit.lua: unknown op ' .. tostring(kind))
end

-- The appends' positions in ARGV and KEYS, in op order: applied once
-- every check passed.
local appends = {}
local a, k, i = 2, 1, 0
while a <= #ARGV do
  local kind = ARGV[a]
  i = i + 1
  if kind == 'X' then
    appends[#appends + 1] = {a, k}
  elseif kind == 'P' or kind == 'D' then
    local key = KEYS[k]
    local expected = ARGV[a + 1]
    local alone = expected == '0' and times_in_keys(key) == 1
    local set = false
    if alone and kind == 'P' then
      if ARGV[a + 3] == '0' then
        set = redis.pcall('SET', key, ARGV[a + 2], 'NX')
      else
        set = redis.pcall('SET', key, ARGV[a + 2], 'NX', 'PX', ARGV[a + 3])
      end
      if refused(set) then
        return set
      end
    end
    if set then
      created[#created + 1] = k
      done[k] = true
    else
      -- (A create refused: the read names the conflict, or the error of a
      -- key of another type, as for any other op.)
      local current
      if expected == '0' then
        current = redis.pcall('GET', key)
      else
        current = redis.pcall('GETRANGE', key, '0', VERSION_END)
      end
      if refused(current) then
        return current
      end
      local version = '0'
      if current then
        version = string.match(current, '^(%d+)\n') or 'corrupt'
        if version == '0' then
          -- No writer stores version 0: it would read as absent.
          version = 'corrupt'
        end
      end
      if version ~= expected then
        undo()
        return i
      end
      done[k] = alone and kind == 'D'
    end
  end
  local args, keys = shape(kind)
  a = a + 1 + args
  k = k + keys
end

-- Appends next, in op order (commit order is history order). A stream
-- given its lifetime by this commit: name -> its op's position in ARGV and
-- KEYS.
local lived = {}
for _, at in ipairs(appends) do
  local stream = KEYS[at[2]]
  local entry = ARGV[at[1] + 1]
  local added = false
  if ARGV[at[1] + 4] ~= '1' then
    added = redis.pcall('XADD', stream, 'NOMKSTREAM', '*', 'e', entry)
    if refused(added) then
      return added
    end
  end
  if not added then
    -- Fresh, or no stream (it expired, or was deleted): a new one, given
    -- its lifetime below.
    added = redis.pcall('XADD', stream, '*', 'e', entry)
    if refused(added) then
      return added
    end
    lived[stream] = at
  end
end
for _, at in pairs(lived) do
  local stream = KEYS[at[2]]
  redis.call('XTRIM', stream, 'MINID', '~', ARGV[at[1] + 2])
  redis.call('PEXPIRE', stream, ARGV[at[1] + 3])
end

local now = tonumber(ARGV[1])
-- How many dead members one write removes from an index, at most: a
-- writer asks for a prune on one add in eight to an index (`prune` '1'),
-- so that is 32 an add.
local PRUNE = 256

-- The index and its expiry set live exactly as long as their longest-lived
-- member. (Redis deletes a sorted set when its last member goes.)
local function expire_with_members(index, expiry)
  local last = redis.call('ZRANGE', expiry, -1, -1, 'WITHSCORES')
  if #last > 0 then
    redis.call('PEXPIREAT', index, last[2])
    redis.call('PEXPIREAT', expiry, last[2])
  end
end

-- Raises a key's life to `life` (ms, unix): never lowers it. GT counts a
-- key without a TTL as living for ever: such a key (another writer's)
-- gets its first with NX.
local function raise_life(key, life)
  if redis.call('PEXPIREAT', key, life, 'GT') == 0 then
    redis.call('PEXPIREAT', key, life, 'NX')
  end
end

-- Adds `member`, new to its index and added between its writer's
-- renewals, to the index's expiry set where that set was there with its
-- life: every write that gives an expiry set its life gives its index the
-- same or a longer one (expire_with_members and a pair's `known` set both,
-- raise_life raises both to the same time, raise_expiry's set is followed
-- by its index's raise; the alone index drops its set), so the index had
-- other members, each with its expiry there, and lives at least as long
-- as the set: the set's life says whether the index's needs raising
-- (noted in `index.life`), with no ZCARD and no check of the index's own.
-- (An index key that goes alone, its expiry set left, as only an eviction
-- does, is made again by the add without a life: it gets one at its
-- writer's next renewal.)
-- Returns false, the set as it was, where it had no life: absent (the
-- index had at most one member, or is new) or left without one by
-- another writer; or where it held the member already.
local function add_to_living_expiry(index, expiry, member, at)
  if redis.call('ZADD', expiry, 'GT', 'CH', at, member) == 0 then
    return false
  end
  local life = redis.call('PEXPIRETIME', expiry)
  if life < 0 then
    -- A set this ZADD made (gone again with its one member), or one
    -- without a life: the index is counted instead, and its expiry set
    -- (new, or another writer's) given a life at the end, as at a renewal.
    redis.call('ZREM', expiry, member)
    index.lifeless = true
    return false
  end
  index.life = math.min(index.life or life, life)
  return true
end

-- Raises the life of `expiry`, the expiry set of an index this add
-- renews, to the new member's plus the renewal's slack, as the renewal at
-- the end would (noted in `index.set_life`): true when it did, which says
-- the set was there with a life, so the index had other members (its lone
-- member keeps no set, and a set left by a removal lives no longer than
-- the index; only an eviction of the index, which
-- docs/operations.md#redis-memory rules out, leaves a set behind it);
-- false, nothing changed, when there was no set, one without a life, or
-- one living longer already: the index is counted then.
local function raise_expiry(index, expiry, at)
  local life = at + index.slack
  if redis.call('PEXPIREAT', expiry, life, 'GT') == 0 then
    return false
  end
  index.set_life = math.max(index.set_life or 0, life)
  return true
end

-- Indexes this commit changed, by name (each op passes its keys anew, so
-- one index may sit at several positions of KEYS): index key -> a record
-- of it, made at its first op. `expiry` is its expiry set while the
-- lifetime is to be settled at the end; `full`, whether to recompute the
-- lifetime; `latest`, the latest expiry this commit gave one of its
-- members; `pruned`, whether dead members were pruned; `renew` and
-- `slack`, the last add's renewal (whether, and its slack in ms); `life`,
-- the expiry set's life as add_to_living_expiry found it; `counted`,
-- whether an add of two or more members counted them (ZRANGE of the
-- first three) instead; `lifeless`, whether add_to_living_expiry found the
-- set without a life; `set_life`, what an add raised the expiry set's
-- life to (raise_expiry); `known`, the life of an index this commit made
-- a pair (below).
-- While every op on an index only added members or raised their expiries,
-- its longest-lived member is the old one or the latest added or raised,
-- so the lifetime only needs raising: a renewal raises it with PEXPIREAT
-- GT (NX for a key without one) to the latest plus the slack; between
-- renewals (another writer's recompute below may have lowered it under
-- what this writer renewed it to) the `life` found, or where an add
-- counted, one PEXPIREAT GT to the latest, checks it, and only when it is
-- under the latest are both keys raised to the latest plus the slack. An
-- expiry moved earlier, a removal or an expiry set made anew by another
-- writer's loss recompute it from the longest-lived member, renewal or
-- not; an index made a pair (a second member added to a lone one) knows
-- both lives, and takes the later. Dead members are pruned once per
-- index, when it gains a third member or more (only that makes it grow;
-- a pair's two are alive) and its writer asks for it: on its first add
-- to the index, then every eighth.
local indexes = {}
-- An index made a pair by this commit has its life in `known` (the
-- later of its two members'), to be set at the end without reading its
-- expiry set. Another op on it in the same commit makes that unsure: its
-- life is then recomputed from the set.
local function settle_known(index)
  if index.known then
    index.known = nil
    index.full = true
  end
end
-- Queues this commit changed, by name (each a key in KEYS): queue key -> a
-- record of it, made at its first op. `queued` is the latest lifetime an
-- add asked for, `renew` and `slack` the last add's renewal, `new_key`
-- whether the key is new. A queue's adds wait in `adding` (score, member,
-- …) and go in one ZADD, its removals in `removing` and go in one ZREM:
-- each at the end, or before an op of the other kind on that queue (so at
-- most one of the two waits, and op order is kept).
-- A queue is never emptied: each ZADD also adds its keeper, the member ''
-- at 2^53 (never due, never read: see redis.rs; a finite score, which the
-- previous version's readers parse, and skip as an item they cannot
-- read), so Redis never deletes the key when its last real member goes
-- (Redis deletes a sorted set when its last member goes). The key lives
-- its renewed life: only renewals raise it, nothing lowers it, and until
-- this writer's next renewal its adds ask for no later time than that; so
-- an add between renewals finds the key there, with its TTL, and spends
-- nothing on its life. A ZADD that adds the keeper too (it counts one more
-- new member than it adds) made a new key: another writer's DEL, or an
-- eviction, took the old one. It gets its life at once, as a renewal.
local queues = {}
-- The record of `key` in `records` (`indexes` or `queues`), made empty at
-- its first op.
local function record_of(records, key)
  local record = records[key]
  if not record then
    record = {}
    records[key] = record
  end
  return record
end
local function add_queued(key, queue)
  local pairs_ = queue.adding
  if pairs_ then
    queue.adding = nil
    local added_pairs = #pairs_
    pairs_[added_pairs + 1] = '9007199254740992'
    pairs_[added_pairs + 2] = ''
    local added = redis.call('ZADD', key, unpack(pairs_))
    -- A renewal gives the key its life whether it is new or not.
    if not queue.renew then
      -- Members, each once (a member added twice counts once as new).
      local members, seen = 0, {}
      for j = 2, added_pairs, 2 do
        if not seen[pairs_[j]] then
          seen[pairs_[j]] = true
          members = members + 1
        end
      end
      if added > members then
        queue.new_key = true
      end
    end
  end
end
local function remove_queued(key, queue)
  local members = queue.removing
  if members then
    queue.removing = nil
    redis.call('ZREM', key, unpack(members))
  end
end

a, k = 2, 1
while a <= #ARGV do
  local kind = ARGV[a]
  local key = KEYS[k]
  if done[k] then
    -- Written (or nothing to write) by its check.
  elseif kind == 'P' then
    if ARGV[a + 3] == '0' then
      redis.call('SET', key, ARGV[a + 2])
    else
      redis.call('SET', key, ARGV[a + 2], 'PX', ARGV[a + 3])
    end
  elseif kind == 'D' then
    redis.call('DEL', key)
  elseif kind == 'A' then
    local index = record_of(indexes, key)
    settle_known(index)
    -- Whether an earlier op of this commit changed the index: what the
    -- key's own TTL says is then not yet settled.
    local touched = index.touched
    index.touched = true
    local expiry = KEYS[k + 1]
    local member = ARGV[a + 1]
    local at = now + tonumber(ARGV[a + 3])
    index.renew = ARGV[a + 4] == '1'
    index.slack = tonumber(ARGV[a + 5])
    index.prune = ARGV[a + 6] == '1'
    local added = redis.call('ZADD', key, ARGV[a + 2], member) == 1
    -- A member added to a key without a TTL, where this writer has not
    -- renewed the key lately (most often a customer's first interaction):
    -- a new key, as every index this script writes has a TTL. It is alone,
    -- and that PEXPIREAT gave it its member's life: no count. (Where the
    -- writer renewed it lately, the key is there, most often with other
    -- members and their expiry set: add_to_living_expiry, else counted.)
    local new_key = added and index.renew and redis.call('PEXPIREAT', key, at, 'NX') == 1
    local listed = added and not index.renew and add_to_living_expiry(index, expiry, member, at)
    -- Renewed, and the key was there: an index of several members, whose
    -- expiry set has a life, is known by raising that life (a returning
    -- customer's third interaction and on), as the renewal does anyway.
    local raised = added and index.renew and not new_key and raise_expiry(index, expiry, at)
    -- Counted up to three: the members' names come with the count, for the
    -- index of two below (a returning customer's second interaction).
    local first = (new_key or listed or raised) or redis.call('ZRANGE', key, 0, 2)
    local size = (new_key and 1) or ((listed or raised) and 3) or #first
    if not listed and size > 1 then
      -- Counted: its life is checked at the end.
      index.counted = true
    end
    if size == 1 then
      -- Alone: the key lives exactly as long as its member, shorter or
      -- longer than before; an expiry set left from more members goes.
      -- (A new key has none: an expiry set lives no longer than its index
      -- and empties with it.)
      if not new_key then
        redis.call('PEXPIREAT', key, at)
      end
      if not added or (new_key and touched) then
        -- (A key made anew after this commit's removals: what its set
        -- still holds is of members no longer in it.)
        redis.call('DEL', expiry)
        index.set_life = nil
      end
      index.expiry = nil
      index.full = nil
      index.latest = nil
    else
      index.expiry = expiry
      local pair = added and size == 2
      if pair then
        -- The other member was alone: its life is what is left of the
        -- key's, which is also what an expiry set a removal of an earlier
        -- commit left behind holds for it (a prune that left it alone may
        -- have left the key up to a renewal's slack longer: the member is
        -- then recorded, and the index kept, that much longer, as any index
        -- is between renewals). Both go into the set in one ZADD, and the
        -- two keys' life is the longer of the two, known without reading
        -- the set back. Both are alive: nothing to prune.
        -- Where the key has no TTL (another writer left it without), or an
        -- earlier op of this commit changed the index (a removal's
        -- recompute is still to come: the TTL is not yet the other's), an
        -- entry the set holds for the other is kept, and the life is
        -- recomputed from the set at the end, as for any other change.
        local other = first[1] == member and first[2] or first[1]
        local left = redis.call('PTTL', key)
        if left > 0 and not touched then
          redis.call('ZADD', expiry, now + left, other, at, member)
          index.known = math.max(now + left, at)
        else
          if left > 0 then
            redis.call('ZADD', expiry, 'NX', now + left, other)
          end
          redis.call('ZADD', expiry, at, member)
          index.full = true
        end
      elseif added then
        if index.prune and not index.pruned then
          index.pruned = true
          local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, PRUNE)
          if #dead > 0 then
            redis.call('ZREM', key, unpack(dead))
            redis.call('ZREM', expiry, unpack(dead))
            -- The set may be gone with them, and made again below without
            -- a life: it gets one at the end.
            index.set_life = nil
          end
        end
      end
      -- GT CH: 1 when the member is new or its expiry raised; otherwise it
      -- had a later (or the same) one, which is moved here. (A listed
      -- member, or one of a pair, is in already.)
      if not (listed or pair) and redis.call('ZADD', expiry, 'GT', 'CH', at, member) == 0 then
        redis.call('ZADD', expiry, at, member)
        index.full = true
      end
      index.latest = math.max(index.latest or 0, at)
    end
  elseif kind == 'R' then
    local index = record_of(indexes, key)
    settle_known(index)
    index.touched = true
    local expiry = KEYS[k + 1]
    redis.call('ZREM', key, ARGV[a + 1])
    -- Only a member that had an expiry can have been the longest-lived.
    if redis.call('ZREM', expiry, ARGV[a + 1]) == 1 then
      index.expiry = expiry
      index.full = true
    end
  elseif kind == 'Q' then
    local queue = record_of(queues, key)
    remove_queued(key, queue)
    local waiting = queue.adding or {}
    waiting[#waiting + 1] = ARGV[a + 2]
    waiting[#waiting + 1] = ARGV[a + 1]
    queue.adding = waiting
    queue.queued = math.max(queue.queued or 0, now + tonumber(ARGV[a + 3]))
    queue.renew = ARGV[a + 4] == '1'
    queue.slack = tonumber(ARGV[a + 5])
  elseif kind == 'U' then
    local queue = record_of(queues, key)
    add_queued(key, queue)
    local waiting = queue.removing or {}
    waiting[#waiting + 1] = ARGV[a + 1]
    queue.removing = waiting
  elseif kind == 'T' then
    -- Only a record that exists and would expire sooner (GT: a key
    -- without a TTL counts as never expiring, and keeps none).
    redis.call('PEXPIRE', key, ARGV[a + 1], 'GT')
  elseif kind == 'S' then
    redis.call('PUBLISH', key, ARGV[a + 1])
  elseif kind == 'N' then
    local listed = redis.call('ZADD', key, 'LT', ARGV[a + 3], ARGV[a + 4])
    if listed == 1 or ARGV[a + 2] == '1' then
      redis.call('PEXPIRE', key, ARGV[a + 1])
    end
  end
  local args, keys = shape(kind)
  a = a + 1 + args
  k = k + keys
end
for key, index in pairs(indexes) do
  local expiry = index.expiry
  if not expiry then
    -- Alone, or only removals of members without an expiry: settled.
  elseif index.full then
    expire_with_members(key, expiry)
  elseif index.known then
    redis.call('PEXPIREAT', key, index.known)
    redis.call('PEXPIREAT', expiry, index.known)
  elseif
    index.renew
    or index.lifeless
    or (index.counted and redis.call('PEXPIREAT', key, index.latest, 'GT') == 1)
    or (not index.counted and index.life < index.latest)
  then
    -- Only raised (the expiry set, unless an add raised it that far).
    local life = index.latest + index.slack
    raise_life(key, life)
    if (index.set_life or 0) < life then
      raise_life(expiry, life)
    end
  end
end
-- What waits of each queue (at most one of its adds and its removals),
-- then its life, only ever raised: at a renewal or for a new key.
for key, queue in pairs(queues) do
  remove_queued(key, queue)
  add_queued(key, queue)
  if queue.queued and (queue.renew or queue.new_key) then
    raise_life(key, queue.queued + queue.slack)
  end
end
return 0
