//! The use cases of the MCP server (docs/agents.md): its sessions, kept in
//! the store under the keyed hash of their id so that every instance
//! honours them, each bound to the bot key that opened it; what
//! `get_verification` answers of an interaction, and whether it changed
//! since the session's last answer; `start_verification` over the
//! challenges' and login links' own use cases; and `confirm_chat_code`,
//! which takes only a binding code typed into the chat. No answer here
//! holds a code, a link, a token or a disclosed claim's value.
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::records::{Pair, StoredMcpSession};
use super::view::{ChallengeMethod, ChallengeState, Method, Status};
use super::work::Step;
use super::writes::Writes;
use super::{
    challenges, doors, login, ChallengeView, Core, InteractionView, LinkRequest, Verified,
};
use crate::config::Team;
use crate::domain::challenge::{self as rules, Challenge};
use crate::domain::interaction;
use crate::domain::secrets::Pepper;
use crate::domain::settings::TextKey;
use crate::domain::start_challenge::ChallengeRequest;
use crate::error::{Error, Result};
use crate::store::keys;
use crate::store::signals::{Watch, Woken};
use crate::time::{Clock, Timestamp};

/// The purpose of the keyed hash under which a session is stored.
const SESSION_HASH: &str = "mcp-session";

/// How long a session lives from its `initialize`.
pub const SESSION_LIFE: Duration = Duration::from_secs(24 * 3600);

/// How long a session lives unused (within [`SESSION_LIFE`]).
pub const IDLE_LIFE: Duration = Duration::from_secs(3600);

/// A use is recorded when the last recorded one is this old: a session
/// ends [`IDLE_LIFE`] after its last recorded use, up to this much before
/// an hour after its last real one, never after
/// (docs/decisions/0541-an-mcp-session-ends-unused-or-least-recently-used.md).
pub const RENEW_EVERY: Duration = Duration::from_secs(60);

/// The longest session id read from a header (ours are 43 characters).
const MAX_SESSION_ID: usize = 128;

/// The keyed hash of session `id`, and its record in `team`: `None` for
/// an id no session of ours can have.
fn session_key(core: &Core, team: &Team, id: &str) -> Option<(String, String)> {
    let fits = !id.is_empty() && id.len() <= MAX_SESSION_ID;
    fits.then(|| {
        let hash = core.pepper().keyed_hash(SESSION_HASH, id.as_bytes());
        let key = keys::mcp_session(&team.keyspace, &hash);
        (hash, key)
    })
}

/// The session's life left at `now`: to the first of its 24 hours' end
/// and an hour after its last recorded use; `None` once it ended.
fn life_left(session: &StoredMcpSession, now: Timestamp) -> Option<Duration> {
    let end = session.opened_at.plus(SESSION_LIFE);
    let idle_end = session.last_used().plus(IDLE_LIFE);
    let end = if idle_end < end { idle_end } else { end };
    (now < end).then(|| end.since(now))
}

/// `initialize`: a new session of the key `key_id`, its id (256 random
/// bits, base64url) answered once and kept only as a keyed hash. The
/// key's sessions past `server.max_mcp_sessions_per_key` end, the least
/// recently used first.
pub async fn open_session(
    core: &Core,
    team: &Team,
    key_id: &str,
    now: Timestamp,
) -> Result<String> {
    let id = crate::oidc::flow::random_value();
    let (hash, key) = session_key(core, team, &id).ok_or(Error::internal("an MCP session id"))?;
    let index = keys::mcp_sessions_of_key(&team.keyspace, key_id);
    let cap = core.config().server.limits.max_mcp_sessions_per_key;
    let ended = least_recently_used(core, &index, cap, now).await?;
    let ended_keys: Vec<String> = ended
        .iter()
        .map(|h| keys::mcp_session(&team.keyspace, h))
        .collect();
    let stored = StoredMcpSession {
        key_id: key_id.to_string(),
        opened_at: now,
        used_at: None,
        seen: Vec::new(),
    };
    core.change(&team.keyspace, &ended_keys, now, |c| {
        for (hash, key) in ended.iter().zip(&ended_keys) {
            let at = c.read::<StoredMcpSession>(key)?;
            if at.value.is_some() {
                c.delete(&at);
            }
            c.index_remove(&index, hash);
        }
        c.create(&key, &stored, Some(IDLE_LIFE))?;
        c.index_add(&index, &hash, now, IDLE_LIFE);
        Ok(Step::Write(()))
    })
    .await?;
    Ok(id)
}

/// The sessions in the key's `index` that a new one ends: those past the
/// `cap - 1` most recently used of the ones used within the hour.
async fn least_recently_used(
    core: &Core,
    index: &str,
    cap: usize,
    now: Timestamp,
) -> Result<Vec<String>> {
    // A few more than the cap: what a burst of openings left over.
    let live = core.index_desc(index, None, cap + 64).await?;
    let unused_since = now.unix_millis() - IDLE_LIFE.as_millis() as i64;
    Ok(live
        .into_iter()
        .filter(|e| e.score > unused_since)
        .skip(cap.saturating_sub(1))
        .map(|e| e.member)
        .collect())
}

/// The session `id` of the key `key_id`: 404 when there is none, it ended,
/// or another key opened it (docs/agents.md#the-server). A use whose last
/// recorded one is [`RENEW_EVERY`] old is recorded.
pub async fn session(
    core: &Core,
    team: &Team,
    key_id: &str,
    id: &str,
    now: Timestamp,
) -> Result<()> {
    let (hash, key) = session_key(core, team, id).ok_or(Error::NotFound(NO_SESSION))?;
    let loaded = doors::read::<StoredMcpSession>(core, &key).await?;
    let live = loaded
        .value
        .filter(|s| s.key_id == key_id && life_left(s, now).is_some())
        .ok_or(Error::NotFound(NO_SESSION))?;
    if now.since(live.last_used()) < RENEW_EVERY {
        return Ok(());
    }
    let index = keys::mcp_sessions_of_key(&team.keyspace, key_id);
    core.change(&team.keyspace, std::slice::from_ref(&key), now, |c| {
        let at = c.read::<StoredMcpSession>(&key)?;
        let live = at.value.as_ref().filter(|s| s.key_id == key_id);
        let Some((session, _)) = live.and_then(|s| Some((s, life_left(s, now)?))) else {
            return Ok(Step::Answer(Err(Error::NotFound(NO_SESSION))));
        };
        if now.since(session.last_used()) < RENEW_EVERY {
            return Ok(Step::Answer(Ok(())));
        }
        let mut session = session.clone();
        session.used_at = Some(now);
        let left = life_left(&session, now).unwrap_or(IDLE_LIFE);
        c.put(&at, &session, Some(left))?;
        c.index_add(&index, &hash, now, left);
        Ok(Step::Write(Ok(())))
    })
    .await?
}

const NO_SESSION: &str = "no such MCP session";

/// `DELETE /mcp`: the session ends now; 404 as [`session`].
pub async fn end_session(
    core: &Core,
    team: &Team,
    key_id: &str,
    id: &str,
    now: Timestamp,
) -> Result<()> {
    let (hash, key) = session_key(core, team, id).ok_or(Error::NotFound(NO_SESSION))?;
    let index = keys::mcp_sessions_of_key(&team.keyspace, key_id);
    core.change(&team.keyspace, std::slice::from_ref(&key), now, |c| {
        let at = c.read::<StoredMcpSession>(&key)?;
        let ours = at.value.as_ref().is_some_and(|s| s.key_id == key_id);
        if !ours {
            return Ok(Step::Answer(Err(Error::NotFound(NO_SESSION))));
        }
        c.delete(&at);
        c.index_remove(&index, &hash);
        Ok(Step::Write(Ok(())))
    })
    .await?
}

/// Notes `answer` as the session's last about `interaction`: `true` when
/// it differs from the last one (or is the first), `false` (and nothing
/// written) when it is the same. 404 as [`session`].
async fn note_answer(
    core: &Core,
    team: &Team,
    (key_id, id): (&str, &str),
    interaction: Uuid,
    answer: &Verification,
    now: Timestamp,
) -> Result<bool> {
    let (_, key) = session_key(core, team, id).ok_or(Error::NotFound(NO_SESSION))?;
    let digest = answer.digest_held();
    let interaction = interaction.to_string();
    core.change(&team.keyspace, std::slice::from_ref(&key), now, |c| {
        let at = c.read::<StoredMcpSession>(&key)?;
        let live = at.value.as_ref().filter(|s| s.key_id == key_id);
        let Some((session, left)) = live.and_then(|s| Some((s, life_left(s, now)?))) else {
            return Ok(Step::Answer(Err(Error::NotFound(NO_SESSION))));
        };
        if session.seen(&interaction) == Some(digest) {
            return Ok(Step::Answer(Ok(false)));
        }
        let mut session = session.clone();
        session.note(&interaction, digest);
        c.put(&at, &session, Some(left))?;
        Ok(Step::Write(Ok(true)))
    })
    .await?
}

/// `get_verification`'s answer (docs/agents.md#get_verification): never
/// a claim's value, a code or a link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub status: Status,
    pub authenticated: bool,
    pub method: Option<Method>,
    pub expires_at: Option<Timestamp>,
    /// The proven customer's `id`, or null.
    pub customer_id: Option<String>,
    pub challenge: Option<ChallengeSummary>,
    /// What it answered, minted by the gateway ([`cursor_of`]): equal
    /// answers, equal cursors. Given back as `after`, a wait answers when
    /// the answer differs from it.
    pub cursor: String,
    /// All of the above as JSON, written once when it was made, its
    /// cursor in it: the tool's result.
    #[serde(skip)]
    json: String,
}

/// The interaction's current or last challenge, as `get_verification`
/// tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChallengeSummary {
    pub challenge_id: Uuid,
    pub method: ChallengeMethod,
    pub state: ChallengeState,
    /// A network or wallet challenge's last answer (`verified`,
    /// `mismatch`, `claims_mismatch`, …); null before one, and for other
    /// methods (`state` tells them).
    pub result: Option<serde_json::Value>,
    /// Open and waiting for a binding code typed into the chat: pass what
    /// the customer types to `confirm_chat_code`.
    pub awaiting_code: bool,
}

/// The form of [`Verification::said`], its first byte: a new form makes
/// new digests, so that no cursor of an older one is taken for an answer.
const SAID_FORM: u8 = 1;

impl Verification {
    /// What it says, its cursor aside, in a compact typed encoding: the
    /// form ([`SAID_FORM`]), then each member in order — a name (an
    /// enum's, as the JSON writes it) as its length in a byte and its
    /// text; a flag as a byte; a member that may be null as 0, or 1 and
    /// the member; a time as its milliseconds (8 bytes, little-endian); a
    /// text of the customer's, or a result's JSON, as its length in 4
    /// bytes and its bytes; an id as its 16 bytes. Each part says where
    /// it ends, so two answers that say the same encode the same and any
    /// other two do not
    /// (docs/decisions/0900-a-cursor-is-the-digest-of-what-the-answer-says.md).
    fn said(&self) -> Vec<u8> {
        // Every member named: one added is a compile error here until it
        // is encoded (or said to be no part of what the answer says).
        let Verification {
            status,
            authenticated,
            method,
            expires_at,
            customer_id,
            challenge,
            cursor: _,
            json: _,
        } = self;
        let mut out = Said(Vec::with_capacity(96));
        out.0.push(SAID_FORM);
        out.name(interaction::Status::from(*status).as_str());
        out.0.push(u8::from(*authenticated));
        out.maybe(method.as_ref(), |out, m| out.name(m.as_str()));
        out.maybe(expires_at.as_ref(), |out, at| {
            out.0.extend_from_slice(&at.unix_millis().to_le_bytes())
        });
        out.maybe(customer_id.as_ref(), |out, id| out.text(id.as_bytes()));
        out.maybe(challenge.as_ref(), |out, c| {
            let ChallengeSummary {
                challenge_id,
                method,
                state,
                result,
                awaiting_code,
            } = c;
            out.0.extend_from_slice(challenge_id.as_bytes());
            out.name(method.as_str());
            out.name(rules::ChallengeState::from(*state).as_str());
            out.maybe(result.as_ref(), |out, result| {
                // A value is written to a `Vec` without fail.
                out.text(&serde_json::to_vec(result).unwrap_or_default())
            });
            out.0.push(u8::from(*awaiting_code));
        });
        out.0
    }

    /// Its digest: the first 128 bits of the SHA-256 of
    /// [`Verification::said`], what a session remembers of it and its
    /// cursor's first part.
    fn digest(&self) -> [u8; DIGEST] {
        let mut digest = [0u8; DIGEST];
        digest.copy_from_slice(&Sha256::digest(self.said())[..DIGEST]);
        digest
    }

    /// Its cursor set and its JSON written, once.
    fn with_cursor(mut self, cursor: String) -> Self {
        self.cursor = cursor;
        // Only a map keyed by a sequence fails to be written; an answer
        // holds none.
        self.json = serde_json::to_string(&self).unwrap_or_default();
        self
    }

    /// Its JSON, as written when it was made.
    pub fn into_json(self) -> String {
        self.json
    }

    /// [`Verification::digest`], as its cursor holds it (in hex).
    fn digest_held(&self) -> &str {
        self.cursor.get(..2 * DIGEST).unwrap_or_default()
    }
}

/// [`Verification::said`]'s bytes, written part by part.
struct Said(Vec<u8>);

impl Said {
    /// A name: its length in a byte, and its text.
    fn name(&mut self, name: &str) {
        self.0.push(name.len() as u8);
        self.0.extend_from_slice(name.as_bytes());
    }

    /// A text: its length in 4 bytes (little-endian), and its bytes.
    fn text(&mut self, text: &[u8]) {
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text);
    }

    /// A member that may be null: 0, or 1 and the member as `write` writes it.
    fn maybe<T>(&mut self, member: Option<&T>, write: impl FnOnce(&mut Said, &T)) {
        match member {
            Some(m) => {
                self.0.push(1);
                write(self, m);
            }
            None => self.0.push(0),
        }
    }
}

/// The bytes of an answer's digest a cursor holds.
const DIGEST: usize = 16;

/// The bytes of a cursor's mark.
const MARK: usize = 8;

/// The purpose of the keyed hash that marks a cursor as ours.
const CURSOR_HASH: &str = "mcp-cursor";

/// The cursor of an answer of interaction `id` of the team whose
/// keyspace is `keyspace`, the answer's [`Verification::digest`] being
/// `digest`: the digest, then 64 bits of a keyed hash of it, the
/// interaction and the team, which tells one of ours (for this
/// interaction) from any other string, all in hex
/// (docs/decisions/0900-a-cursor-is-the-digest-of-what-the-answer-says.md).
fn cursor_of(pepper: &Pepper, keyspace: &str, id: Uuid, digest: &[u8; DIGEST]) -> String {
    let mark = mark_of(pepper, keyspace, id, digest);
    let mut hex = [0u8; 2 * (DIGEST + MARK)];
    let (first, second) = hex.split_at_mut(2 * DIGEST);
    // The lengths are the slices': neither fails.
    let _ = hex::encode_to_slice(digest, first);
    let _ = hex::encode_to_slice(mark, second);
    hex.iter().map(|&b| char::from(b)).collect()
}

/// The mark of a cursor's `digest` for interaction `id` of `keyspace`:
/// the first [`MARK`] bytes of the pepper's keyed hash of the id's 16
/// bytes, the digest's and the keyspace (the two first of fixed length,
/// so that the input is one way of saying them).
fn mark_of(pepper: &Pepper, keyspace: &str, id: Uuid, digest: &[u8; DIGEST]) -> [u8; MARK] {
    let mut input = Vec::with_capacity(2 * DIGEST + keyspace.len());
    input.extend_from_slice(id.as_bytes());
    input.extend_from_slice(digest);
    input.extend_from_slice(keyspace.as_bytes());
    let hash = pepper.keyed_bytes(CURSOR_HASH, &input);
    let mut mark = [0u8; MARK];
    mark.copy_from_slice(&hash[..MARK]);
    mark
}

/// The digest a cursor of ours names, in hex; `None` for any string that
/// is not a cursor minted for interaction `id` of `keyspace` (treated as
/// no `after` at all).
fn digest_of_cursor<'c>(
    pepper: &Pepper,
    keyspace: &str,
    id: Uuid,
    cursor: &'c str,
) -> Option<&'c str> {
    let (held, given) = (cursor.get(..2 * DIGEST)?, cursor.get(2 * DIGEST..)?);
    let lower = |t: &str| !t.bytes().any(|b| b.is_ascii_uppercase());
    let (mut digest, mut mark) = ([0u8; DIGEST], [0u8; MARK]);
    hex::decode_to_slice(held, &mut digest).ok()?;
    hex::decode_to_slice(given, &mut mark).ok()?;
    if !lower(cursor) {
        return None;
    }
    let ours = mark_of(pepper, keyspace, id, &digest);
    let same: bool = subtle::ConstantTimeEq::ct_eq(&ours[..], &mark[..]).into();
    same.then_some(held)
}

/// Whether challenge `c` waits for a binding code typed into the chat
/// (a login link's `chat_code`; the code a page showed after a verified
/// network answer, a verified wallet presentation or the right code typed
/// there): the only code `confirm_chat_code` passes on. The one place this
/// is asked.
fn awaits_binding_code(c: &Challenge) -> bool {
    matches!(c.proof, rules::Proof::Binding) || c.awaits_code()
}

/// The interaction `id` as `get_verification` answers it, one read.
pub async fn verification(
    core: &Core,
    team: &Team,
    id: Uuid,
    now: Timestamp,
) -> Result<Verification> {
    let pair = core.load_pair(team, id, now).await?;
    answer_of(core, team, id, &pair, now, None)
}

/// What `get_verification` answers of `pair` at `now`, its cursor minted;
/// `known`, a cursor of ours for this interaction, is its cursor when
/// the answer is the one it names (the same digest makes the same
/// cursor: it is not made again).
fn answer_of(
    core: &Core,
    team: &Team,
    id: Uuid,
    pair: &Pair,
    now: Timestamp,
    known: Option<&str>,
) -> Result<Verification> {
    let v = pair.view(team, now)?;
    let rec = pair.rec()?;
    let last = rec.challenge.as_ref().map(|c| c.id);
    let last = last.or_else(|| rec.past_challenges.last().map(|p| p.id));
    let challenge = last
        .and_then(|cid| rec.challenge_at(cid, now))
        .map(|(c, state)| {
            let shown = ChallengeView::of(c, state);
            let network = shown
                .network
                .and_then(|n| n.result)
                .map(serde_json::to_value);
            let wallet = shown
                .wallet
                .and_then(|w| w.result)
                .map(serde_json::to_value);
            ChallengeSummary {
                challenge_id: c.id,
                method: shown.method,
                state: shown.state,
                result: network.or(wallet).and_then(std::result::Result::ok),
                awaiting_code: state == rules::ChallengeState::Open && awaits_binding_code(c),
            }
        });
    let answer = Verification {
        status: v.status,
        authenticated: v.authenticated,
        method: v.method,
        expires_at: v.expires_at,
        customer_id: v.customer.and_then(|c| c.get("id").cloned()),
        challenge,
        cursor: String::new(),
        json: String::new(),
    };
    let digest = answer.digest();
    let mut held = [0u8; 2 * DIGEST];
    // 16 bytes always fit 32 hex digits.
    let _ = hex::encode_to_slice(digest, &mut held);
    let cursor = match known {
        Some(cursor) if cursor.as_bytes().get(..2 * DIGEST) == Some(&held[..]) => {
            cursor.to_string()
        }
        _ => cursor_of(core.pepper(), &team.keyspace, id, &digest),
    };
    Ok(answer.with_cursor(cursor))
}

/// When `pair`'s answer changes by time alone after `now` (an
/// authentication's or an open challenge's end), if it does.
fn next_moment(pair: &Pair, answer: &Verification, now: Timestamp) -> Option<Timestamp> {
    let rec = pair.rec().ok()?;
    let challenge = rec.open_challenge(now).map(|c| c.expires_at);
    [answer.expires_at, challenge]
        .into_iter()
        .flatten()
        .filter(|at| *at > now)
        .min()
}

/// The longest wait `get_verification` may be asked for, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 25;

/// What `get_verification` is asked (docs/agents.md#get_verification).
pub struct Asked<'a> {
    pub id: Uuid,
    /// How long it may wait for a change, up to [`MAX_WAIT_SECONDS`];
    /// zero: it answers at once.
    pub wait: Duration,
    /// The `cursor` of an earlier answer, as given.
    pub after: Option<&'a str>,
    /// The session it is asked in (the key that holds it, and its id),
    /// if any: without an `after` of ours, its last answer about the
    /// interaction is what a change is told from.
    pub session: Option<(&'a str, &'a str)>,
}

/// `get_verification`: the interaction's answer, at once when it differs
/// from what `after` names (without an `after` of ours, from the
/// session's last answer; without either, at once); else when a change
/// signal (docs/architecture.md#change-signals) says a record it is read
/// from was written, on any instance, and its answer differs then, or
/// when time alone changes it, or at the wait's end, or when `stop`
/// ends (its waiting place was taken). The signals down, it answers what
/// it read. An unchanged answer costs one read: the interaction with
/// what its status is read from.
pub async fn get_verification(
    core: &Core,
    team: &Team,
    asked: Asked<'_>,
    clock: &dyn Clock,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Verification> {
    let until = tokio::time::Instant::now() + asked.wait;
    let id = asked.id;
    // Watching first: no change falls between the read and the wait.
    let mut watch = match asked.wait.is_zero() {
        true => None,
        false => {
            let ikey = keys::interaction(&team.keyspace, id);
            Box::pin(doors::watch(core, &[ikey])).await.ok()
        }
    };
    // `after`, when it is a cursor of ours: its digest.
    let after = asked
        .after
        .and_then(|c| Some((digest_of_cursor(core.pepper(), &team.keyspace, id, c)?, c)));
    let mut stop = std::pin::pin!(stop);
    loop {
        // The read runs boxed: its store call's future is not held
        // through the wait.
        let (pair, answer, same) = Box::pin(read(core, team, &asked, after, clock)).await?;
        let Some(w) = watch.as_mut().filter(|_| same) else {
            return Ok(answer);
        };
        // The records its status is read from besides the interaction.
        for key in pair.keys() {
            w.add(key);
        }
        let held = Held {
            core,
            team,
            id,
            pair: &pair,
            answer,
            clock,
        };
        match held.wait(w, until, stop.as_mut()).await? {
            Waited::Answer(a) => return Ok(a),
            Waited::Changed => {}
            Waited::Lost => watch = None,
        }
    }
}

/// One read of [`get_verification`]: the interaction's records, its
/// answer now, and whether that is the answer the caller has (`after`, a
/// cursor of ours and its digest; without it, the session's last answer,
/// noted).
async fn read(
    core: &Core,
    team: &Team,
    asked: &Asked<'_>,
    after: Option<(&str, &str)>,
    clock: &dyn Clock,
) -> Result<(Pair, Verification, bool)> {
    let (id, now) = (asked.id, clock.now());
    let pair = core.load_pair(team, id, now).await?;
    let answer = answer_of(core, team, id, &pair, now, after.map(|(_, c)| c))?;
    let same = match (after, asked.session) {
        (Some((digest, _)), _) => answer.digest_held() == digest,
        (None, Some(who)) => !note_answer(core, team, who, id, &answer, now).await?,
        (None, None) => false,
    };
    Ok((pair, answer, same))
}

/// What a waiting `get_verification` holds between two reads.
struct Held<'a> {
    core: &'a Core,
    team: &'a Team,
    id: Uuid,
    pair: &'a Pair,
    answer: Verification,
    clock: &'a dyn Clock,
}

/// How a wait between two reads ended.
enum Waited {
    /// The answer, as it stands now (the wait ended, or time changed it).
    Answer(Verification),
    /// A record it is read from was written: read it again.
    Changed,
    /// The signals stopped: read again and answer.
    Lost,
}

impl Held<'_> {
    /// Until watch `w` wakes, time alone changes the answer held, `until`,
    /// or `stop`.
    async fn wait(
        self,
        w: &Watch,
        until: tokio::time::Instant,
        mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Waited> {
        loop {
            let now = self.clock.now();
            let moment = next_moment(self.pair, &self.answer, now).map(|at| {
                // A millisecond past it: the end is at `at`, not before.
                tokio::time::Instant::now() + at.since(now) + Duration::from_millis(1)
            });
            let next = moment.map_or(until, |m| m.min(until));
            tokio::select! {
                woken = w.changed() => return Ok(match woken {
                    Woken::Changed => Waited::Changed,
                    Woken::Lost => Waited::Lost,
                }),
                () = tokio::time::sleep_until(next) => {}
                () = stop.as_mut() => {
                    let now = self.clock.now();
                    let known = Some(self.answer.cursor.as_str());
                    return answer_of(self.core, self.team, self.id, self.pair, now, known).map(Waited::Answer);
                }
            }
            let now = self.clock.now();
            let known = Some(self.answer.cursor.as_str());
            let answer = answer_of(self.core, self.team, self.id, self.pair, now, known)?;
            if answer != self.answer || tokio::time::Instant::now() >= until {
                return Ok(Waited::Answer(answer));
            }
        }
    }
}

/// `confirm_chat_code`: what the customer typed into the chat, for the
/// open challenge that waits for a binding code — the ordinary verify,
/// counted as such. Any other challenge is 409 `entry_page` and nothing
/// is counted; none open is 410 `challenge_expired`.
pub async fn confirm_chat_code(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    code: &str,
    now: Timestamp,
) -> Result<Verified> {
    let pair = core.load_pair(team, id, now).await?;
    let open = pair.rec()?.open_challenge(now);
    let c = open.ok_or(Error::ChallengeExpired)?;
    if !awaits_binding_code(c) {
        return Err(Error::EntryPage);
    }
    let cid = c.id;
    challenges::verify::verify_challenge(core, team, id, cid, code, now).await
}

/// What `start_verification` asks for: a login link delivered into the
/// conversation, or a challenge.
#[derive(Debug)]
pub enum Proof {
    Link(LinkRequest),
    Challenge(Box<ChallengeRequest>),
}

/// `start_verification`'s answer (docs/agents.md#start_verification).
#[derive(Debug, Clone, Serialize)]
pub struct StartedVerification {
    pub interaction_id: Uuid,
    /// Null for a login link.
    pub challenge_id: Option<Uuid>,
    pub status: Status,
    /// `chat`, `sms`, `email`, `voice` or `app`.
    pub sent_to: &'static str,
    /// One sentence for the customer, in the conversation's language.
    pub say: String,
}

/// Starts `proof` on interaction `id` through the login links' or the
/// challenges' own use case; a link the channel did not deliver is 502
/// `channel_error` (the link is never answered).
pub async fn start_verification(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    proof: Proof,
    clock: &dyn Clock,
) -> Result<StartedVerification> {
    let (challenge_id, sent_to, key, after) = match proof {
        Proof::Link(req) => {
            let (issued, after) = login::issue_link_seen(core, team, id, req, clock.now()).await?;
            if !issued.delivered {
                return Err(Error::Channel(
                    "the link could not be delivered into the conversation".into(),
                ));
            }
            (None, "chat", TextKey::SayLinkSent, after)
        }
        Proof::Challenge(req) => {
            let (sent_to, key) = said_of(&req);
            let (started, after) =
                challenges::start_challenge_seen(core, team, id, *req, clock).await?;
            (Some(started.challenge_id), sent_to, key, after)
        }
    };
    let v = match after {
        Some(v) => v,
        None => super::interactions::get_interaction(core, team, id, clock.now()).await?,
    };
    Ok(StartedVerification {
        interaction_id: id,
        challenge_id,
        status: v.status,
        sent_to,
        say: say(core, team, &v, key),
    })
}

/// Where a challenge's message goes, and the text that says so.
fn said_of(req: &ChallengeRequest) -> (&'static str, TextKey) {
    use rules::{ChallengeMethod as M, Delivery as D};
    let to = match req.delivery {
        D::Sms => "sms",
        D::Email => "email",
        D::Voice => "voice",
        _ => "chat",
    };
    // Every method named: one added says here what `start_verification`
    // tells the customer of it.
    match req.method {
        M::App => ("app", TextKey::SayAppSent),
        M::Network => (to, TextKey::SayNetworkSent),
        M::Wallet => (to, TextKey::SayWalletSent),
        M::Otp | M::Pin | M::Binding => (to, TextKey::SayCodePageSent),
    }
}

/// The text `key` in force on the interaction's channel, in its language.
fn say(core: &Core, team: &Team, v: &InteractionView, key: TextKey) -> String {
    let settings = team.settings_for(&v.channel);
    let channel = core.config().channels.get(&v.channel);
    crate::config::text(key, settings, channel, &v.locale).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An answer that says something in each of its members.
    fn full() -> Verification {
        Verification {
            status: Status::Authenticated,
            authenticated: true,
            method: Some(Method::Otp),
            expires_at: Some(Timestamp::from_unix_millis(1_790_000_000_123)),
            customer_id: Some("cust-1".into()),
            challenge: Some(ChallengeSummary {
                challenge_id: Uuid::from_u128(7),
                method: ChallengeMethod::Network,
                state: ChallengeState::Used,
                result: Some(serde_json::json!("verified")),
                awaiting_code: false,
            }),
            cursor: String::new(),
            json: String::new(),
        }
    }

    /// Every member of an answer, changed one at a time (to another
    /// value, and to null where it may be), changes its digest; the same
    /// answer made again has the same one.
    #[test]
    fn every_member_of_an_answer_changes_its_digest() {
        type Change = fn(&mut Verification);
        fn challenge(v: &mut Verification) -> &mut ChallengeSummary {
            v.challenge.as_mut().unwrap()
        }
        let changes: [(&str, Change); 14] = [
            ("status", |v| v.status = Status::Expired),
            ("authenticated", |v| v.authenticated = false),
            ("method", |v| v.method = Some(Method::Pin)),
            ("method null", |v| v.method = None),
            ("expires_at", |v| {
                v.expires_at = Some(Timestamp::from_unix_millis(1_790_000_000_124))
            }),
            ("expires_at null", |v| v.expires_at = None),
            ("customer_id", |v| v.customer_id = Some("cust-2".into())),
            ("customer_id null", |v| v.customer_id = None),
            ("challenge_id", |v| {
                challenge(v).challenge_id = Uuid::from_u128(8)
            }),
            ("challenge.method", |v| {
                challenge(v).method = ChallengeMethod::Wallet
            }),
            ("challenge.state", |v| {
                challenge(v).state = ChallengeState::Expired
            }),
            ("challenge.result", |v| {
                challenge(v).result = Some(serde_json::json!("mismatch"))
            }),
            ("challenge.awaiting_code", |v| {
                challenge(v).awaiting_code = true
            }),
            ("challenge null", |v| v.challenge = None),
        ];
        let base = full().digest();
        assert_eq!(full().digest(), base, "the same answer, the same digest");
        let mut seen = vec![base];
        for (member, change) in changes {
            let mut v = full();
            change(&mut v);
            let digest = v.digest();
            assert!(!seen.contains(&digest), "{member}: its digest is another's");
            seen.push(digest);
        }
        let mut v = full();
        challenge(&mut v).result = None;
        assert_ne!(v.digest(), base, "challenge.result null");
    }

    /// A cursor tells one of ours for this interaction of this team:
    /// another team's, another interaction's, another pepper's, a mark
    /// changed, a cursor cut or in capitals, are not.
    #[test]
    fn a_cursor_is_ours_only_for_its_team_and_interaction() {
        let pepper = Pepper::new("pepper-of-at-least-some-length");
        let (id, digest) = (Uuid::from_u128(42), full().digest());
        let cursor = cursor_of(&pepper, "acme", id, &digest);
        assert_eq!(cursor.len(), 48);
        assert_eq!(&cursor[..32], hex::encode(digest));
        assert_eq!(
            digest_of_cursor(&pepper, "acme", id, &cursor),
            Some(&cursor[..32])
        );
        let other = Pepper::new("another-pepper-of-some-length");
        let mut forged = cursor[..47].to_string();
        forged.push(if cursor.ends_with('0') { '1' } else { '0' });
        for (what, pepper, keyspace, id, cursor) in [
            ("another team", &pepper, "acme~2", id, cursor.clone()),
            (
                "another interaction",
                &pepper,
                "acme",
                Uuid::from_u128(43),
                cursor.clone(),
            ),
            ("another pepper", &other, "acme", id, cursor.clone()),
            ("a mark changed", &pepper, "acme", id, forged),
            ("cut", &pepper, "acme", id, cursor[..46].to_string()),
            ("in capitals", &pepper, "acme", id, cursor.to_uppercase()),
            ("garbage", &pepper, "acme", id, "ü".repeat(40)),
        ] {
            assert_eq!(
                digest_of_cursor(pepper, keyspace, id, &cursor),
                None,
                "{what}"
            );
        }
    }

    fn answers() -> impl Strategy<Value = Verification> {
        let challenge = (
            0u128..2,
            prop::sample::select(vec![ChallengeMethod::Otp, ChallengeMethod::Network]),
            prop::sample::select(vec![ChallengeState::Open, ChallengeState::Used]),
            prop::option::of(prop::sample::select(vec!["verified", "mismatch"])),
            any::<bool>(),
        )
            .prop_map(
                |(id, method, state, result, awaiting_code)| ChallengeSummary {
                    challenge_id: Uuid::from_u128(id),
                    method,
                    state,
                    result: result.map(serde_json::Value::from),
                    awaiting_code,
                },
            );
        (
            prop::sample::select(vec![Status::Pending, Status::Authenticated]),
            any::<bool>(),
            prop::option::of(prop::sample::select(vec![Method::Otp, Method::Oidc])),
            prop::option::of(
                (0i64..3).prop_map(|ms| Timestamp::from_unix_millis(1_790_000_000_000 + ms)),
            ),
            prop::option::of(prop::sample::select(vec!["", "a", "a\u{1}", "ab"])),
            prop::option::of(challenge),
        )
            .prop_map(
                |(status, authenticated, method, expires_at, customer, challenge)| Verification {
                    status,
                    authenticated,
                    method,
                    expires_at,
                    customer_id: customer.map(String::from),
                    challenge,
                    cursor: String::new(),
                    json: String::new(),
                },
            )
    }

    proptest! {
        /// Two answers have the same digest exactly when their JSON says
        /// the same.
        #[test]
        fn answers_have_one_digest_when_they_say_the_same(a in answers(), b in answers()) {
            let (ja, jb) = (serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
            prop_assert_eq!(a.said() == b.said(), ja == jb);
            prop_assert_eq!(a.digest() == b.digest(), ja == jb);
        }
    }

    /// An answer's JSON is written once, with its cursor: the text serde
    /// writes of it.
    #[test]
    fn an_answer_s_json_is_written_with_its_cursor() {
        let answer = full().with_cursor("00ff".into());
        assert_eq!(answer.json, serde_json::to_string(&answer).unwrap());
        assert!(
            answer.json.ends_with(r#""cursor":"00ff"}"#),
            "{}",
            answer.json
        );
    }
}
