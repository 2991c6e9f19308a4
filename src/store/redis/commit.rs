//! A commit: one Lua script (`redis/commit.lua`) that checks every version
//! before it writes anything but its creates, with the lifetimes of the
//! indexes, queues and streams it writes (see `store/redis.rs`); or, for
//! the two commits that need no script, its one command: a lone create's
//! `SET … NX`, a lone queue removal's `ZREM`.
use std::time::{Duration, Instant};

use ::redis::{cmd, ScriptInvocation, Value};

use super::due::{queued, NoteMoment};
use super::prunes::Prunes;
use super::renewals::{self, Renewals};
use super::wire::{encode, ttl_ms, unexpected};
use super::{Prefix, RedisStore};
use crate::store::{keys, Commit, Op, StoreError};

pub(super) const COMMIT_LUA: &str = include_str!("commit.lua");

impl RedisStore {
    /// [`crate::store::Store::commit`]: a create alone is its `SET … NX`,
    /// removals from one queue alone its `ZREM`, any other commit the
    /// script.
    pub(super) async fn commit_ops(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        if ops.is_empty() {
            return Ok(Commit::Applied);
        }
        if !one_hash_tag(&ops) {
            // Redis Cluster would refuse it (CROSSSLOT); refused here on one
            // Redis too, so every test on Redis checks it.
            return Err(StoreError::Unavailable(
                "redis commit: keys with different hash tags (several cluster slots)".into(),
            ));
        }
        // A lone create (a short link): the script's check and write are
        // one `SET … NX`, without the cost of running a script.
        if let [Op::Put {
            key,
            expected: 0,
            version,
            value,
            ttl,
            ..
        }] = ops.as_slice()
        {
            if keys::signalled(key).is_some() {
                // Its change signal goes with it: the script.
                return self.commit_by_script(ops).await;
            }
            let mut set = cmd("SET");
            set.arg(self.prefix.key(key))
                .arg(encode(*version, value))
                .arg("NX");
            if let Some(ttl) = ttl {
                set.arg("PX").arg(ttl_ms(*ttl));
            }
            return match self.conn.query("commit", &set).await? {
                Value::Okay => {
                    self.companions.remember_written(&ops);
                    Ok(Commit::Applied)
                }
                Value::Nil => Ok(Commit::Conflict { op: 0 }),
                _ => Err(unexpected("commit")),
            };
        }
        // Removals from one queue alone (the outbox's settlements): the
        // script would run one `ZREM`; it is that `ZREM`, without the
        // script (its keeper stays, so the key does too).
        if let Some(zrem) = lone_queue_removal(&self.prefix, &ops) {
            return match self.conn.query("commit", &zrem).await? {
                Value::Int(_) => Ok(Commit::Applied),
                _ => Err(unexpected("commit")),
            };
        }
        self.commit_by_script(ops).await
    }

    /// `ops` committed by `redis/commit.lua`, the lifetimes it renews
    /// recorded once it applied.
    async fn commit_by_script(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        let started = Instant::now();
        // Redis' time as this process reckons it: the script's `now`.
        let now = self.clock.now();
        let mut args = ScriptArgs {
            prefix: &self.prefix,
            renewals: &self.renewals,
            lives: lives(&ops, now, started, &self.renewals, &self.prunes),
            given: Vec::new(),
            now,
            started,
        };
        let mut call = self.commit_script.prepare_invoke();
        call.arg(now);
        for op in &ops {
            args.push(&mut call, op);
        }
        let ScriptArgs {
            lives, mut given, ..
        } = args;
        if let Some((channel, records)) = signal(&ops) {
            call.key(self.prefix.key(&channel));
            call.arg("S").arg(records);
        }
        // On one Redis the due notes are the script's last ops; a Cluster
        // keeps them in a slot of their own, noted apart: before the
        // commit, so that an instance killed after it leaves its team
        // listed, and after it, for a worker that took the team between
        // the two (decision 0190).
        let cluster = self.conn.is_cluster();
        if cluster {
            self.note_apart(queued(&ops), NoteMoment::Before).await;
        } else {
            given.extend(self.add_due_notes(&mut call, &ops, started));
        }
        match self.conn.invoke("commit", &call).await? {
            Value::Int(0) => {
                self.companions.remember_written(&ops);
                if cluster {
                    self.note_apart(queued(&ops), NoteMoment::After).await;
                }
                let renewed = lives.iter().filter(|l| l.renew);
                let renewed = renewed.map(|l| (l.key, l.latest.saturating_add_unsigned(l.slack)));
                let streams = given.into_iter().map(|k| (k, renewals::BY_PERIOD));
                self.renewals.given(renewed.chain(streams), started);
                Ok(Commit::Applied)
            }
            Value::Int(n) => match n.checked_sub(1).map(usize::try_from) {
                Some(Ok(op)) if op < ops.len() => Ok(Commit::Conflict { op }),
                _ => Err(unexpected("commit")),
            },
            _ => Err(unexpected("commit")),
        }
    }
}

/// The change signal of `ops` (docs/architecture.md#change-signals): the
/// records a wait reads that they write, each once, one a line, with
/// their team's channel; `None` when they write none. (A commit's keys
/// share one team.)
fn signal(ops: &[Op]) -> Option<(String, String)> {
    let mut channel = None;
    let mut records = String::new();
    for op in ops {
        let (Op::Put { key, .. } | Op::Delete { key, .. }) = op else {
            continue;
        };
        let Some(ch) = keys::signalled(key) else {
            continue;
        };
        if records.lines().any(|r| r == key) {
            continue;
        }
        if !records.is_empty() {
            records.push('\n');
        }
        records.push_str(key);
        channel.get_or_insert(ch);
    }
    channel.map(|c| (c, records))
}

/// The arguments of one run of the commit script, op by op.
struct ScriptArgs<'s, 'o> {
    prefix: &'s Prefix,
    renewals: &'s Renewals,
    /// The indexes and queues the commit adds to ([`lives`]).
    lives: Vec<Life<'o>>,
    /// The streams this commit gives their lifetime.
    given: Vec<&'o str>,
    /// Redis' time as this process reckons it (ms): the script's `now`.
    now: i64,
    started: Instant,
}

impl<'o> ScriptArgs<'_, 'o> {
    /// `op`'s keys and arguments. Each op's keys go in its order (an index
    /// op's followed by its expiry set): the script finds them by
    /// position, not by number.
    fn push(&mut self, call: &mut ScriptInvocation<'_>, op: &'o Op) {
        match op {
            Op::Put {
                key: k,
                expected,
                version,
                value,
                ttl,
                ..
            } => {
                self.key(call, k, false);
                let next = encode(*version, value);
                let ttl = ttl.map_or(0, ttl_ms);
                call.arg("P").arg(*expected).arg(next).arg(ttl);
            }
            Op::Delete { key: k, expected } => {
                self.key(call, k, false);
                call.arg("D").arg(*expected);
            }
            Op::IndexAdd {
                key: k,
                member,
                score,
                ttl,
            }
            | Op::QueueAdd {
                key: k,
                member,
                score,
                ttl,
            } => {
                // A queue has no expiry set.
                let index = matches!(op, Op::IndexAdd { .. });
                self.add(call, (k.as_str(), index), member, *score, *ttl);
            }
            Op::Touch { key: k, ttl } => {
                self.key(call, k, false);
                call.arg("T").arg(ttl_ms(*ttl));
            }
            Op::IndexRemove { key: k, member } => {
                self.key(call, k, true);
                call.arg("R").arg(member);
            }
            Op::QueueRemove { key: k, member } => {
                self.key(call, k, false);
                call.arg("U").arg(member);
            }
            Op::Append {
                key: k,
                entry,
                max_age,
                ttl,
            } => self.append(call, k, entry, (*max_age, *ttl)),
        }
    }

    /// `logical`'s physical key, and its expiry set's for an `index`.
    fn key(&self, call: &mut ScriptInvocation<'_>, logical: &str, index: bool) {
        call.key(self.prefix.key(logical));
        if index {
            call.key(self.prefix.key(&expiry_set(logical)));
        }
    }

    /// An `IndexAdd` (`index`) or a `QueueAdd` to `k`, with its key's
    /// lifetime.
    fn add(
        &self,
        call: &mut ScriptInvocation<'_>,
        (k, index): (&str, bool),
        member: &str,
        score: i64,
        ttl: Duration,
    ) {
        self.key(call, k, index);
        let life = self.lives.iter().find(|l| l.key == k);
        let (renew, slack) = life.map_or((false, 0), |l| (l.renew, l.slack));
        call.arg(if index { "A" } else { "Q" })
            .arg(member)
            .arg(score)
            .arg(ttl_ms(ttl))
            .arg(if renew { "1" } else { "0" })
            .arg(slack);
        if index {
            let prune = life.is_some_and(|l| l.prune);
            call.arg(if prune { "1" } else { "0" });
        }
    }

    /// An `Append` of `entry` to the history stream `k`, trimmed to
    /// `max_age` and given its `ttl` once a period.
    fn append(
        &mut self,
        call: &mut ScriptInvocation<'_>,
        k: &'o str,
        entry: &str,
        (max_age, ttl): (Duration, Duration),
    ) {
        self.key(call, k, false);
        // A stream is renewed by the period alone
        // ([`renewals::BY_PERIOD`]): each renewal gives it its
        // whole TTL, which outlives the period.
        let renewing = self.given.contains(&k);
        let fresh = renewing || self.renewals.due(k, self.started, renewals::BY_PERIOD);
        if fresh && !renewing {
            self.given.push(k);
        }
        // Entries older than `max_age` by Redis' time (stream
        // ids are Redis' ms), as the script's `now` is.
        let oldest = self
            .now
            .saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
        call.arg("X")
            .arg(entry)
            .arg(format!("{}-0", oldest.max(0)))
            .arg(ttl_ms(ttl))
            .arg(if fresh { "1" } else { "0" });
    }
}

/// An index or a queue a commit adds to (see [`lives`]).
struct Life<'o> {
    key: &'o str,
    latest: i64,
    renew: bool,
    /// ms.
    slack: u64,
    /// An index this commit prunes of its dead members.
    prune: bool,
}

/// The indexes and queues `ops` add to, each once: the latest time an
/// add asks it to live until (ms, Redis' time as reckoned: `now` plus
/// the add's TTL), whether this commit renews its lifetime, and the
/// slack of a renewal: the renewal period, or that add's TTL when
/// shorter (a short-lived key outlives what it holds by no more than
/// it lives; it is renewed as often, when an add asks for more).
fn lives<'o>(
    ops: &'o [Op],
    now: i64,
    started: Instant,
    renewals: &Renewals,
    prunes: &Prunes,
) -> Vec<Life<'o>> {
    let mut lives: Vec<Life<'o>> = Vec::new();
    for op in ops {
        let (Op::IndexAdd { key, ttl, .. } | Op::QueueAdd { key, ttl, .. }) = op else {
            continue;
        };
        let until = now.saturating_add_unsigned(ttl_ms(*ttl));
        match lives.iter_mut().find(|l| l.key == key) {
            Some(life) => life.latest = life.latest.max(until),
            None => lives.push(Life {
                key,
                latest: until,
                renew: false,
                slack: 0,
                prune: matches!(op, Op::IndexAdd { .. }) && prunes.due(key),
            }),
        }
    }
    let every = u64::try_from(renewals.every().as_millis()).unwrap_or(u64::MAX);
    for life in &mut lives {
        life.renew = renewals.due(life.key, started, life.latest);
        life.slack = every.min(life.latest.saturating_sub(now).unsigned_abs());
    }
    lives
}

/// The one `ZREM` that is a commit of removals from one queue alone
/// (nothing checked, nothing else written), if `ops` are that.
fn lone_queue_removal(prefix: &Prefix, ops: &[Op]) -> Option<::redis::Cmd> {
    let Some(Op::QueueRemove { key: queue, .. }) = ops.first() else {
        return None;
    };
    let mut zrem = cmd("ZREM");
    zrem.arg(prefix.key(queue));
    for op in ops {
        match op {
            Op::QueueRemove { key, member } if key == queue => zrem.arg(member),
            _ => return None,
        };
    }
    Some(zrem)
}

/// Beside every sorted index, a sorted set of when each member expires
/// (Redis time, ms): writes drop the members whose time is up, and the index
/// lives as long as its longest-lived member. Same hash tag as the index.
fn expiry_set(index: &str) -> String {
    format!("{index}:exp")
}

/// The part of `key` Redis Cluster hashes: the text between the first `{`
/// and the next `}` when not empty, else the whole key. (The key prefix
/// has no braces, so a logical key's tag is its physical key's.)
fn hash_tag(key: &str) -> &str {
    key.split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(tag, _)| tag)
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key)
}

/// Whether every key of `ops` has the same hash tag (so one cluster slot).
fn one_hash_tag(ops: &[Op]) -> bool {
    let mut tags = ops.iter().map(|op| hash_tag(op.key()));
    let first = tags.next();
    tags.all(|t| Some(t) == first)
}

#[cfg(test)]
mod tests {
    use super::super::{prunes, KEEPER_SCORE};
    use super::*;

    #[test]
    fn the_commit_script_prunes_as_many_as_prunes_says() {
        let line = format!("local PRUNE = {}\n", prunes::PRUNED_AT_MOST);
        assert!(COMMIT_LUA.contains(&line), "commit.lua: {line}");
    }

    #[test]
    fn the_commit_script_writes_the_keeper_at_its_score() {
        let literal = format!("'{KEEPER_SCORE}'");
        assert!(COMMIT_LUA.contains(&literal), "commit.lua names {literal}");
        assert_eq!(
            KEEPER_SCORE as f64 as i64, KEEPER_SCORE,
            "a double holds it"
        );
    }

    #[test]
    fn hash_tags_follow_redis_cluster() {
        assert_eq!(hash_tag("{acme}:i:1"), "acme");
        assert_eq!(hash_tag("p:{acme}:s:{x}"), "acme");
        assert_eq!(hash_tag("l:abc"), "l:abc");
        assert_eq!(hash_tag("{}:a"), "{}:a");
        assert_eq!(hash_tag("{open"), "{open");
        let put = |key: &str| Op::Put {
            key: key.into(),
            expected: 0,
            version: crate::store::fresh_version(),
            value: "{}".into(),
            ttl: None,
            companion: None,
        };
        assert!(one_hash_tag(&[put("{a}:x"), put("{a}:y")]));
        assert!(one_hash_tag(&[put("l:x")]));
        assert!(!one_hash_tag(&[put("{a}:x"), put("{b}:x")]));
        assert!(!one_hash_tag(&[put("{a}:x"), put("l:x")]));
    }
}
