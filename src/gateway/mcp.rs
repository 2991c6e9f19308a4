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
    /// All of the above as JSON, written once when it was made: the
    /// tool's result, and (with its cursor empty) what its digest is of.
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

impl Verification {
    /// Writes its JSON while its cursor is still empty and answers its
    /// digest, the first 128 bits of the SHA-256 of that JSON, in hex:
    /// what a session remembers of it, and its cursor's first part. The
    /// cursor is put in the JSON by [`Verification::with_cursor`].
    fn digest(&mut self) -> String {
        debug_assert!(self.cursor.is_empty());
        // Only a map keyed by a sequence fails to be written; an answer
        // holds none.
        let json = serde_json::to_string(self).unwrap_or_default();
        let digest = hex::encode(&Sha256::digest(json.as_bytes())[..16]);
        self.json = json;
        digest
    }

    /// Its cursor set, in its JSON too: the JSON ends with the cursor's
    /// member, written empty (`"cursor":""}`), and a cursor is hex, which
    /// JSON writes as it is.
    fn with_cursor(mut self, cursor: String) -> Self {
        match self.json.strip_suffix("\"\"}") {
            Some(head) => {
                let mut json = String::with_capacity(head.len() + cursor.len() + 2);
                json.push_str(head);
                json.push('"');
                json.push_str(&cursor);
                json.push_str("\"}");
                self.json = json;
                self.cursor = cursor;
            }
            None => {
                self.cursor = cursor;
                self.json = serde_json::to_string(&self).unwrap_or_default();
            }
        }
        self
    }

    /// Its JSON, as written when it was made.
    pub fn into_json(self) -> String {
        self.json
    }

    /// [`Verification::digest`], as its cursor holds it.
    fn digest_held(&self) -> &str {
        self.cursor.get(..32).unwrap_or_default()
    }
}

/// The purpose of the keyed hash that marks a cursor as ours.
const CURSOR_HASH: &str = "mcp-cursor";

/// The cursor of an answer of interaction `id` whose [`Verification::digest`]
/// is `digest`: the digest, then 64 bits of a keyed hash of it and the
/// interaction, which tells one of ours (for this interaction) from any
/// other string (docs/decisions/0641-a-cursor-is-the-answer-s-digest-marked-as-ours.md).
fn cursor_of(core: &Core, team: &Team, id: Uuid, digest: &str) -> String {
    format!("{digest}{}", &mark_of(core, team, id, digest)[..16])
}

/// The keyed hash of a cursor's `digest` for interaction `id`, in hex; a
/// cursor holds its first 16 digits.
fn mark_of(core: &Core, team: &Team, id: Uuid, digest: &str) -> String {
    core.pepper()
        .keyed_hash(CURSOR_HASH, cursor_input(team, id, digest).as_bytes())
}

fn cursor_input(team: &Team, id: Uuid, digest: &str) -> String {
    format!("{}\n{id}\n{digest}", team.keyspace)
}

/// The digest a cursor of ours names; `None` for any string that is not
/// a cursor minted for interaction `id` (treated as no `after` at all).
fn digest_of_cursor<'c>(core: &Core, team: &Team, id: Uuid, cursor: &'c str) -> Option<&'c str> {
    let (digest, mark) = (cursor.get(..32)?, cursor.get(32..)?);
    let hexes = |t: &str| {
        t.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if mark.len() != 16 || !hexes(digest) || !hexes(mark) {
        return None;
    }
    let ours = mark_of(core, team, id, digest);
    let ours = ours.as_bytes().get(..16).unwrap_or_default();
    let same: bool = subtle::ConstantTimeEq::ct_eq(ours, mark.as_bytes()).into();
    same.then_some(digest)
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
    let mut answer = Verification {
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
    let cursor = match known {
        Some(cursor) if cursor.get(..32) == Some(digest.as_str()) => cursor.to_string(),
        _ => cursor_of(core, team, id, &digest),
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
        .and_then(|c| Some((digest_of_cursor(core, team, id, c)?, c)));
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
    match req.method {
        M::App => ("app", TextKey::SayAppSent),
        M::Network => (to, TextKey::SayNetworkSent),
        M::Wallet => (to, TextKey::SayWalletSent),
        _ => (to, TextKey::SayCodePageSent),
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

    /// An answer's JSON is written once, with its cursor empty for its
    /// digest, and its cursor put in after: the same text serde writes of
    /// it with the cursor, the digest the same as when the JSON was
    /// written into the hash (docs/performance.md#an-mcp-tool-call).
    #[test]
    fn an_answer_s_json_is_written_once_and_its_digest_is_of_it_without_its_cursor() {
        for customer in [None, Some("cust \"1\" \u{e9}\n".to_string())] {
            let mut answer = Verification {
                status: Status::Pending,
                authenticated: false,
                method: None,
                expires_at: None,
                customer_id: customer,
                challenge: None,
                cursor: String::new(),
                json: String::new(),
            };
            let mut hash = Sha256::new();
            serde_json::to_writer(&mut hash, &answer).unwrap();
            let before = hex::encode(&hash.finalize()[..16]);
            let digest = answer.digest();
            assert_eq!(digest, before);
            let answer = answer.with_cursor(format!("{digest}0123456789abcdef"));
            assert_eq!(answer.cursor, format!("{digest}0123456789abcdef"));
            assert_eq!(answer.json, serde_json::to_string(&answer).unwrap());
        }
    }
}
