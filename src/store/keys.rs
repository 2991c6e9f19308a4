//! The logical key layout. Every key of a team starts with the hash tag
//! `{team}`; user-supplied parts (conversation ids, subjects, jtis) are
//! hashed so they cannot break out of their segment.
//!
//! A team's keys are made from its keyspace ([`keyspace`]): its id, or,
//! for a team written through the operator API since incarnations were
//! kept, its id and its incarnation (`acme~<hex>`), whose keys are
//! `{acme}:~<hex>:…` — in the id's slot, apart from every other
//! incarnation's (docs/decisions/0437-a-team-id-written-again-is-a-new-tenant.md).
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Hex digits of a hashed part ([`with_digest`]).
const DIGEST: usize = 32;

/// `key`, then the first 16 bytes of the SHA-256 of `parts` joined by `\n`,
/// in hex. No formatting machinery: keys are made on every request.
fn with_digest(mut key: String, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut hex = [0u8; DIGEST];
    // 16 bytes always fit 32 hex digits.
    let _ = hex::encode_to_slice(&digest[..16], &mut hex);
    key.extend(hex.iter().map(|&b| char::from(b)));
    key
}

/// The keyspace of team `id` in `incarnation` (`None`: a file team, or
/// an API team stored before incarnations were kept): `id`, or
/// `id~incarnation`. No team id has a `~`.
pub fn keyspace(id: &str, incarnation: Option<&str>) -> String {
    match incarnation {
        Some(gen) => format!("{id}~{gen}"),
        None => id.to_string(),
    }
}

/// The team id of a [`keyspace`].
pub fn team_of(keyspace: &str) -> &str {
    keyspace.split_once('~').map_or(keyspace, |(id, _)| id)
}

/// The incarnation of a [`keyspace`], if it has one.
pub fn incarnation_of(keyspace: &str) -> Option<&str> {
    keyspace.split_once('~').map(|(_, gen)| gen)
}

/// `{team}:` then `rest`, with room for `more` bytes after it: one
/// allocation for the whole key. `team` is a [`keyspace`]: in an
/// incarnation, `{id}:~<incarnation>:` then `rest`.
fn scoped(team: &str, rest: &str, more: usize) -> String {
    let (id, gen) = (team_of(team), incarnation_of(team));
    let extra = gen.map_or(0, |g| g.len() + 2);
    let mut key = String::with_capacity(id.len() + 3 + extra + rest.len() + more);
    key.push('{');
    key.push_str(id);
    key.push_str("}:");
    if let Some(gen) = gen {
        key.push('~');
        key.push_str(gen);
        key.push(':');
    }
    key.push_str(rest);
    key
}

/// The keyspace a team's key is made from, and the rest of the key after
/// it: the inverse of [`scoped`]. `None` for a key of no team.
fn unscoped(key: &str) -> Option<(Cow<'_, str>, &str)> {
    let (id, rest) = key.strip_prefix('{')?.split_once("}:")?;
    match rest.strip_prefix('~').and_then(|r| r.split_once(':')) {
        Some((gen, rest)) => Some((Cow::Owned(format!("{id}~{gen}")), rest)),
        None => Some((Cow::Borrowed(id), rest)),
    }
}

/// `{team}:` then `rest` and the id, hyphenated and lower-case.
fn scoped_id(team: &str, rest: &str, id: Uuid) -> String {
    let mut buf = Uuid::encode_buffer();
    let id = id.hyphenated().encode_lower(&mut buf);
    scoped(team, rest, id.len()) + id
}

/// The interaction record.
pub fn interaction(team: &str, id: Uuid) -> String {
    scoped_id(team, "i:", id)
}

/// The id an [`interaction`] key names (the record leaves it out).
pub fn interaction_id(key: &str) -> Option<Uuid> {
    let (_, rest) = unscoped(key)?;
    Uuid::parse_str(rest.strip_prefix("i:")?).ok()
}

/// The channel a team's change signals go by (docs/architecture.md#change-signals):
/// in the team's slot, so a commit publishes it with its own keys.
pub fn changes(team: &str) -> String {
    scoped(team, "chg", 0)
}

/// The [`changes`] channel of `key`'s team, when a write of `key` raises
/// a change signal: an interaction, a subject or a recognized
/// conversation, what an interaction's answer is read from.
pub fn signalled(key: &str) -> Option<String> {
    let (team, rest) = unscoped(key)?;
    let kinds = ["i:", "s:", "rc:"];
    kinds
        .iter()
        .any(|k| rest.starts_with(k))
        .then(|| changes(&team))
}

/// (channel, conversation_id) → the interaction's id, for create-or-get.
pub fn conversation(team: &str, channel: &str, conversation_id: &str) -> String {
    with_digest(scoped(team, "c:", DIGEST), &[channel, conversation_id])
}

/// A message a channel sent, by the provider's id for it: which challenge
/// sent it, and the receipts that came before that was known
/// (docs/receipts.md).
pub fn message(team: &str, channel: &str, message_id: &str) -> String {
    with_digest(scoped(team, "msg:", DIGEST), &[channel, message_id])
}

/// A voice call's key press, by its gather id: the challenge whose code
/// it reads, the code sealed, and how often it was read
/// (docs/decisions/0110-a-code-read-aloud-is-sealed-until-the-press.md).
pub fn gather(team: &str, channel: &str, gather: &str) -> String {
    with_digest(scoped(team, "vg:", DIGEST), &[channel, gather])
}

/// The head of a team's audit trail: its latest entry's `seq`, `hash` and
/// time (docs/audit.md#how-it-is-stored).
pub fn audit_head(team: &str) -> String {
    scoped(team, "ah", 0)
}

/// Where the team's entries stand at the `[audit.syslog]` sink: the last
/// `seq` written, and which instance sends them until when.
pub fn audit_syslog_cursor(team: &str) -> String {
    scoped(team, "asl", 0)
}

/// Where the team's entries stand at its `[audit] webhook`: the last
/// `seq` taken, and which instance sends them until when.
pub fn audit_webhook_cursor(team: &str) -> String {
    scoped(team, "awh", 0)
}

/// The team's configuration as last recorded in its audit trail: its
/// digest and the digests of its keys.
pub fn audit_config(team: &str) -> String {
    scoped(team, "acfg", 0)
}

/// The digest alone of [`audit_config`], written with it: what a start
/// reads of every team, in batches (a whole record is some 10 KB).
pub fn audit_config_digest(team: &str) -> String {
    scoped(team, "acfgd", 0)
}

/// One entry of a team's audit trail, by its `seq`.
pub fn audit_entry(team: &str, seq: u64) -> String {
    let digits = seq.to_string();
    scoped(team, "a:", digits.len()) + &digits
}

/// The subject record: failures, lockouts, ban.
pub fn subject(team: &str, subject: &str) -> String {
    with_digest(scoped(team, "s:", DIGEST), &[subject])
}

/// A used pre-chat assertion `jti`.
pub fn assertion_jti(team: &str, jti: &str) -> String {
    with_digest(scoped(team, "aj:", DIGEST), &[jti])
}

/// Newest-first index of the team's interactions (score: created, ms).
pub fn interactions_index(team: &str) -> String {
    scoped(team, "idx", 0)
}

/// Index of the interactions a customer id or `customer_ref` names.
pub fn customer_index(team: &str, customer_id: &str) -> String {
    with_digest(scoped(team, "cu:", DIGEST), &[customer_id])
}

/// The team's store marker: when its data began (or was found lost), so
/// that a store that comes back empty is noticed
/// (docs/operations.md#when-redis-comes-back-empty).
pub fn store_epoch(team: &str) -> String {
    scoped(team, "ep", 0)
}

/// A store marker of no team: the `n`th, whose hash tag (`~ep<n>`, no
/// team id has a `~`) puts it in a slot of its own. One per Redis Cluster
/// master (the least `n` whose slot the master serves), or the 0th on one
/// Redis, tells whether that node lost its data without a read per team
/// (docs/operations.md#when-redis-comes-back-empty).
pub fn node_marker(n: u32) -> String {
    format!("{{~ep{n}}}:ep")
}

/// A team written through the operator API: its JSON form, secrets
/// sealed, its incarnation (docs/operator-api.md#how-the-store-keeps-them).
/// In its team's slot, so it commits with the team's audit entry. By the
/// team's id, whatever its incarnation.
pub fn api_team(id: &str) -> String {
    scoped(team_of(id), "tm", 0)
}

/// The keyspace of the API team last deleted under `id`: where its audit
/// trail stays for its retention (`chatgate audit export --deleted`).
/// By the team's id, beside [`api_team`].
pub fn deleted_team(id: &str) -> String {
    scoped(team_of(id), "tmd", 0)
}

/// The index of the teams written through the operator API as an earlier
/// version kept it, whole; now what says it is kept in parts
/// ([`api_teams_part`]). The hash tag `~teams` (no team id has a `~`)
/// puts it, its parts and [`api_teams_generation`] in one slot of their
/// own.
pub fn api_teams() -> String {
    "{~teams}:ix".to_string()
}

/// Part `n` of the index of the teams written through the operator API:
/// the ids whose hash names it, with their digests; beside [`api_teams`],
/// in its slot.
pub fn api_teams_part(n: u16) -> String {
    format!("{{~teams}}:ix:{n}")
}

/// A channel written through the operator API: its JSON form, secrets
/// sealed, in the slot of [`api_teams`], so that it commits with
/// [`api_channels`] and the generation.
pub fn api_channel(name: &str) -> String {
    api_kept("ch", name)
}

/// The API teams whose writes claimed API channel `name`, beside it in
/// its slot (tag `cu`): what a delete of the channel reads.
pub fn api_channel_uses(name: &str) -> String {
    api_kept("cu", name)
}

/// One of a resource kept by name beside [`api_teams`], in its slot
/// (a channel: tag `ch`, [`api_channel`]): its JSON form, secrets sealed,
/// committed with its index ([`api_kept_index`]) and the generation.
pub fn api_kept(tag: &str, name: &str) -> String {
    format!("{{~teams}}:{tag}:{name}")
}

/// The index of a resource kept by name beside [`api_teams`] (a
/// channel's: `cx`, [`api_channels`]): name → digest, in its slot.
pub fn api_kept_index(index: &str) -> String {
    format!("{{~teams}}:{index}")
}

/// The index of the channels written through the operator API, by name
/// with their digests: beside [`api_teams`], in its slot.
pub fn api_channels() -> String {
    api_kept_index("cx")
}

/// The claim of the API key whose SHA-256 is `sha256_hex` (64 lowercase
/// hex digits) by the API team that holds it, beside [`api_teams`] in its
/// slot, so that the claims of one write commit together
/// (docs/operator-api.md#keys).
pub fn api_key_claim(sha256_hex: &str) -> String {
    format!("{{~teams}}:key:{sha256_hex}")
}

/// The reservation of the key whose SHA-256 is `sha256_hex` by an
/// instance's configuration (a file team's API key, an `[operator]` key),
/// beside the claims ([`api_key_claim`]) in their slot, so that a claim's
/// change reads it too (docs/operator-api.md#keys).
pub fn api_key_reserved(sha256_hex: &str) -> String {
    format!("{{~teams}}:rk:{sha256_hex}")
}

/// A number moved with every change of [`api_teams`]: what each instance
/// reads once a second, whatever the number of teams.
pub fn api_teams_generation() -> String {
    "{~teams}:gen".to_string()
}

/// An app challenge's pending approval at the team's identity provider
/// (docs/api.md#approval-in-the-customers-app): its `auth_req_id` and poll
/// interval.
pub fn app_poll(team: &str, challenge_id: Uuid) -> String {
    scoped_id(team, "ap:", challenge_id)
}

/// The queue of expiry work (notices, expirations), score: due, ms.
pub fn due_queue(team: &str) -> String {
    scoped(team, "dueq", 0)
}

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// The slot Redis Cluster gives `key`: CRC16 of its hash tag (the text
/// between the first `{` and the next `}`, when not empty), else of the
/// whole key.
pub fn slot_of(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % SLOTS
}

/// The slot of every key of team `team` (a [`keyspace`]): its id's.
pub fn team_slot(team: &str) -> u16 {
    slot_of(scoped(team_of(team), "", 0).as_bytes())
}

/// Hex digits of the slot a code found by a browser carries ([`marked`]).
const MARK: usize = 4;

/// `code` marked with the slot of team `team` (a [`keyspace`]): four hex
/// digits, a `.`, then `code`. What a browser brings back is then enough
/// to find the record in its team's slot, so that a Redis Cluster
/// master's failure reaches no link of a team whose keys are elsewhere
/// (docs/decisions/0590-a-browser-s-code-carries-its-team-s-slot.md). The
/// mark chooses where the record is looked for, never which: the whole
/// marked code is hashed into the key, so another mark finds nothing.
pub fn marked(team: &str, code: &str) -> String {
    let mut out = String::with_capacity(MARK + 1 + code.len());
    let _ = write!(out, "{:04x}.", team_slot(team));
    out.push_str(code);
    out
}

/// The slot a [`marked`] code names; `None` for a code without a mark (one
/// made before codes were marked: no base64url code has a `.`).
fn mark_of(code: &str) -> Option<u16> {
    let (mark, rest) = code.split_once('.')?;
    let hex = mark.len() == MARK && mark.bytes().all(|b| b.is_ascii_hexdigit());
    let slot = u16::from_str_radix(mark, 16).ok().filter(|_| hex)?;
    (slot < SLOTS && !rest.is_empty()).then_some(slot)
}

/// `code` without the mark [`marked`] put before it (a code without one
/// as it is).
pub fn without_mark(code: &str) -> &str {
    match mark_of(code) {
        Some(_) => &code[MARK + 1..],
        None => code,
    }
}

/// A hash tag in slot `slot`: `~s<n>`, `n` the least that puts it there
/// (no team id has a `~`). Found once for every slot, on first use.
fn slot_tag(slot: u16) -> String {
    static TAGS: OnceLock<Vec<u32>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut found = vec![u32::MAX; usize::from(SLOTS)];
        let (mut missing, mut n, mut tag) = (found.len(), 0u32, String::new());
        while missing > 0 {
            tag.clear();
            let _ = write!(tag, "~s{n}");
            let at = &mut found[usize::from(slot_of(tag.as_bytes()))];
            if *at == u32::MAX {
                *at = n;
                missing -= 1;
            }
            n += 1;
        }
        found
    });
    format!("~s{}", tags[usize::from(slot)])
}

/// The key of a code a browser brings, under `prefix` (`l:`, a challenge
/// link's): in the slot its mark names (`{~s<n>}:` then `prefix`), or,
/// for a code without one, `prefix` alone; then the whole code hashed.
fn found_by_code(prefix: &str, code: &str) -> String {
    in_slot_of(code, prefix, code)
}

/// The key under `prefix` of what `code` (a [`marked`] code, or one made
/// before codes were marked) finds: in the slot its mark names, or for
/// a code without one, `prefix` alone; then `hashed` hashed (the whole
/// code, or what an earlier version hashed of it).
fn in_slot_of(code: &str, prefix: &str, hashed: &str) -> String {
    let key = match mark_of(code) {
        Some(slot) => {
            let tag = slot_tag(slot);
            let mut key = String::with_capacity(tag.len() + 3 + prefix.len() + DIGEST);
            key.push('{');
            key.push_str(&tag);
            key.push_str("}:");
            key.push_str(prefix);
            key
        }
        None => String::with_capacity(prefix.len() + DIGEST) + prefix,
    };
    with_digest(key, &[hashed])
}

/// A short login link code → where it leads: in the slot the code's
/// mark names, its team's ([`marked`]); a code without one (made by an
/// earlier version) on a key of its own.
pub fn short_link(code: &str) -> String {
    found_by_code("l:", code)
}

/// The logins started from one identity-provider link (its newest few
/// states), by the link's tag that each of its states carries (hashed):
/// found from the state alone, in the slot the tag's mark names
/// ([`marked`]).
pub fn oidc_states(link_tag: &str) -> String {
    found_by_code("o:", link_tag)
}

/// A challenge link's code → its team, interaction and challenge: its
/// kind's `prefix` (`n:` the network challenge's, `wl:` the wallet's,
/// `ce:` the page a code is typed on), then the code hashed
/// (docs/architecture.md#challenge-links), in the slot the code's mark
/// names, its team's ([`marked`]; a code without one, made by an earlier
/// version, on a key of its own). Hashed, so the key does not hold the
/// code. Kept for the challenge's life and as long again as an
/// interaction lives after it, so that an ended challenge's link answers
/// its 410 page.
pub fn challenge_link(prefix: &str, code: &str) -> String {
    found_by_code(prefix, code)
}

/// A wallet request's encryption key id (its thumbprint, [`marked`]) →
/// its team, interaction, challenge and link: all a wallet's encrypted
/// answer names. In the slot the id's mark names, its team's (an id
/// without one, made by an earlier version, on a key of its own); hashed.
/// Kept as long as its challenge.
pub fn wallet_key(kid: &str) -> String {
    found_by_code("wk:", kid)
}

/// The POSTs to a page-entry link within the last minute, by the link's
/// code (hashed): more than 10 are refused. Kept a minute.
pub fn code_entry_posts(team: &str, code: &str) -> String {
    with_digest(scoped(team, "cep:", DIGEST), &[code])
}

/// The fetches of a wallet link's page within the last minute, by the
/// link's code (hashed): more than 10 are refused
/// (docs/wallet.md#the-link-page). Kept a minute.
pub fn wallet_page_fetches(team: &str, code: &str) -> String {
    with_digest(scoped(team, "wpf:", DIGEST), &[code])
}

/// The operator checks started from one network link (its newest few
/// states), by the link's tag that each of its states carries (hashed):
/// found from the state alone, in the slot the tag's mark names
/// ([`marked`]).
pub fn network_states(link_tag: &str) -> String {
    found_by_code("ns:", link_tag)
}

/// A console sign-in started at a team's workforce provider, by `state`
/// ([`marked`]) and the digest of it: found from the state alone, in the
/// slot its mark names, its team's (a state without one, made by an
/// earlier version, on a key of its own).
pub fn console_sign_in(state: &str, state_digest: &str) -> String {
    in_slot_of(state, "csi:", state_digest)
}

/// The team of a console session, by its id ([`marked`]) and the keyed
/// hash of it: all a request's cookie gives
/// (docs/console-sign-in.md#the-session). In the slot the id's mark
/// names, its team's (an id without one, made by an earlier version, on
/// a key of its own, so its session goes on).
pub fn console_session_team(id: &str, id_hash: &str) -> String {
    in_slot_of(id, "cst:", id_hash)
}

/// A console session, by the keyed hash of its id, in its team's slot so
/// that it commits with its audit entries.
pub fn console_session(team: &str, id_hash: &str) -> String {
    with_digest(scoped(team, "cs:", DIGEST), &[id_hash])
}

/// A session of the MCP server (docs/agents.md#the-server), by the keyed
/// hash of its `Mcp-Session-Id`, in the team of the bot key that opened it.
pub fn mcp_session(team: &str, id_hash: &str) -> String {
    with_digest(scoped(team, "mcp:", DIGEST), &[id_hash])
}

/// The live MCP sessions of one API key of a team, by the id of the key
/// (hashed): an index of the sessions' keyed hashes scored by their last
/// recorded use, whose least recently used ends past
/// `server.max_mcp_sessions_per_key`.
pub fn mcp_sessions_of_key(team: &str, key_id: &str) -> String {
    with_digest(scoped(team, "mcpk:", DIGEST), &[key_id])
}

/// A signed request (its Standard Webhooks `webhook-id`) already answered,
/// with its answer: a replay or retry gets that answer and changes nothing.
pub fn answered_request(team: &str, kind: &str, webhook_id: &str) -> String {
    let mut key = scoped(team, "wr:", kind.len() + 1 + DIGEST);
    key.push_str(kind);
    key.push(':');
    with_digest(key, &[webhook_id])
}

/// [`answered_request`] of a `webhook-id` whose digest the caller made
/// already (the first 16 bytes of its SHA-256, in hex, as
/// `domain::webhook_sig::id_digest` makes it): the same key, the id not
/// hashed twice.
pub fn answered_request_digested(team: &str, kind: &str, digest: &str) -> String {
    let mut key = scoped(team, "wr:", kind.len() + 1 + digest.len());
    key.push_str(kind);
    key.push(':');
    key.push_str(digest);
    key
}

/// The team's outbox: a queue of item ids by when they are due (ms).
pub fn outbox(team: &str) -> String {
    scoped(team, "obq", 0)
}

/// One outbox item (an event or a notice to deliver).
pub fn outbox_item(team: &str, id: Uuid) -> String {
    scoped_id(team, "obi:", id)
}

/// The team's event history: the stream the event log reads
/// (docs/api.md#events), which commits append to.
pub fn history(team: &str) -> String {
    scoped(team, "ev", 0)
}

/// The keyspace ([`keyspace`]) whose [`history`] `key` is; `None` for
/// any other key.
pub fn history_of(key: &str) -> Option<Cow<'_, str>> {
    let (team, rest) = unscoped(key)?;
    (rest == "ev").then_some(team)
}

/// Challenges recently sent to one destination, named by its keyed hash
/// (`domain::destination::digest`): never the number or address itself.
pub fn destination(team: &str, digest: &str) -> String {
    with_digest(scoped(team, "ds:", DIGEST), &[digest])
}

/// The teams' due index a queue belongs to, and the queue's member in it
/// (its team), for the two queues the background workers drain: the due
/// queue ([`due_queue`]) and the outbox ([`outbox`]). `None` for any other
/// key. A store notes each of these queues' earliest time there when it
/// adds or moves an entry (docs/architecture.md#many-teams).
pub fn due_index_of(queue: &str) -> Option<(&'static str, Cow<'_, str>)> {
    let (team, rest) = unscoped(queue)?;
    match rest {
        "dueq" => Some((DUE_INDEX_DUEQ, team)),
        "obq" => Some((DUE_INDEX_OUTBOX, team)),
        _ => None,
    }
}

/// The teams whose due queue has an entry, each at its earliest time.
/// On a Redis Cluster each master has its own copy ([`due_index_on`]).
pub const DUE_INDEX_DUEQ: &str = "{~due}:dueq";
/// The teams whose outbox has an item, each at its earliest time.
pub const DUE_INDEX_OUTBOX: &str = "{~due}:obq";

/// Due index `index` ([`DUE_INDEX_DUEQ`], [`DUE_INDEX_OUTBOX`]) on one
/// Redis Cluster master: the same name under the hash tag `{~due<n>}`, `n`
/// the least that puts the tag in a slot that master serves, so a team is
/// listed on the master that holds its own keys
/// (docs/decisions/0230-a-due-index-per-cluster-master.md).
pub fn due_index_on(index: &str, n: u32) -> String {
    match index.strip_prefix("{~due}") {
        Some(rest) => format!("{{~due{n}}}{rest}"),
        None => index.to_owned(),
    }
}

/// The members of a due index some instance has taken to work on, each
/// until when it holds them (see `Store::due_teams_claim`).
pub fn due_index_held(index: &str) -> String {
    let mut key = String::with_capacity(index.len() + 5);
    key.push_str(index);
    key.push_str(":held");
    key
}

/// The queue of `team` that the due index `index` lists.
pub fn queue_of_due_index(index: &str, team: &str) -> Option<String> {
    match index {
        DUE_INDEX_DUEQ => Some(due_queue(team)),
        DUE_INDEX_OUTBOX => Some(outbox(team)),
        _ => None,
    }
}

/// Fingerprints and region validated for a customer (step-up).
pub fn devices(team: &str, customer_id: &str) -> String {
    with_digest(scoped(team, "dv:", DIGEST), &[customer_id])
}

/// What a conversation (channel, conversation_id) remembers of who
/// authenticated in it (a recognized conversation).
pub fn recognition(team: &str, channel: &str, conversation_id: &str) -> String {
    with_digest(scoped(team, "rc:", DIGEST), &[channel, conversation_id])
}

/// The newest identity hash of the user behind a WhatsApp conversation
/// (channel, the id Meta names them by: a number or a business-scoped
/// user id), docs/channels.md#identity-changes.
pub fn identity_hash(team: &str, channel: &str, user_id: &str) -> String {
    with_digest(scoped(team, "wih:", DIGEST), &[channel, user_id])
}

/// A message a WhatsApp Cloud API channel sent (channel, Meta's message
/// id): a status names a message of the gateway's only when it is there,
/// docs/channels.md#identity-changes.
pub fn whatsapp_sent(team: &str, channel: &str, message_id: &str) -> String {
    with_digest(scoped(team, "wsm:", DIGEST), &[channel, message_id])
}

/// Index of the [`recognition`] keys that remember a customer, so that a
/// website's logout of the customer forgets them.
pub fn recognitions_of(team: &str, customer_id: &str) -> String {
    with_digest(scoped(team, "rcu:", DIGEST), &[customer_id])
}

/// The interactions hosted logins of one provider session (the ID
/// token's `sid`) authenticated, so that the provider's back-channel
/// logout of that session finds them.
pub fn oidc_session(team: &str, issuer: &str, sid: &str) -> String {
    with_digest(scoped(team, "os:", DIGEST), &[issuer, sid])
}

/// A provider session (the ID token's `sid`) its back-channel logout
/// ended: a hosted login of it that completes later does not
/// authenticate.
pub fn oidc_session_ended(team: &str, issuer: &str, sid: &str) -> String {
    with_digest(scoped(team, "ose:", DIGEST), &[issuer, sid])
}

/// The customer ids hosted logins mapped a provider `sub` to.
pub fn oidc_subject(team: &str, issuer: &str, sub: &str) -> String {
    with_digest(scoped(team, "osu:", DIGEST), &[issuer, sub])
}

/// A payment's authentication code approved in the wallet (the Key
/// Binding JWT's `jti`), used once per issuer of the bank's SCA
/// attestation (the issuer certificate's subject,
/// docs/wallet.md#a-payment-approved-in-the-wallet).
pub fn wallet_sca_code(team: &str, issuer: &str, code: &str) -> String {
    with_digest(scoped(team, "wj:", DIGEST), &[issuer, code])
}

/// A customer's wallet attestations registered for payments, by the
/// `customer_ref` (hashed; docs/wallet.md#registering-the-wallet-for-payments).
/// Kept `registration::KEPT` after its last write; in the team's
/// keyspace, so a team written again under a deleted one's id has none.
pub fn wallet_registrations(team: &str, customer_id: &str) -> String {
    with_digest(scoped(team, "wg:", DIGEST), &[customer_id])
}

/// A used revocation token id (`jti`) of one receiver (`kind`: the
/// back-channel logout or the Shared Signals receiver).
pub fn revocation_jti(team: &str, kind: &str, jti: &str) -> String {
    let mut key = scoped(team, "rj:", kind.len() + 1 + DIGEST);
    key.push_str(kind);
    key.push(':');
    with_digest(key, &[jti])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_due_indexes_name_the_two_drained_queues_and_no_other_key() {
        for team in ["acme", "t00042", "a-b_c"] {
            for index in [DUE_INDEX_DUEQ, DUE_INDEX_OUTBOX] {
                let queue = queue_of_due_index(index, team).unwrap();
                assert_eq!(due_index_of(&queue), Some((index, Cow::Borrowed(team))));
                // Their hash tag is no team id's (a team id has no `~`).
                assert!(index.starts_with("{~due}:"));
            }
            for other in [interactions_index(team), history(team), store_epoch(team)] {
                assert_eq!(due_index_of(&other), None, "{other}");
            }
        }
        assert_eq!(due_index_held(DUE_INDEX_DUEQ), "{~due}:dueq:held");
        assert_eq!(due_index_on(DUE_INDEX_OUTBOX, 7), "{~due7}:obq");
        assert_eq!(due_index_on("{ep}:x", 7), "{ep}:x");
        assert_eq!(queue_of_due_index("{~due}:x", "acme"), None);
    }

    #[test]
    fn an_interaction_key_names_its_id_and_no_other_key_does() {
        let id = Uuid::now_v7();
        assert_eq!(interaction_id(&interaction("acme", id)), Some(id));
        assert_eq!(interaction_id(&interaction("a:i:b", id)), Some(id));
        for other in [
            subject("acme", &id.to_string()),
            conversation("acme", "webchat", &id.to_string()),
            format!("{{acme}}:i:{id}x"),
            "{acme}:i:".to_string(),
            id.to_string(),
        ] {
            assert_eq!(interaction_id(&other), None, "{other}");
        }
    }

    #[test]
    fn the_records_of_an_answer_signal_their_team_s_channel_and_no_other_key_does() {
        let id = Uuid::now_v7();
        let space = keyspace("acme", Some("0a1b"));
        for team in ["acme", space.as_str()] {
            for key in [
                interaction(team, id),
                subject(team, "cust-1"),
                recognition(team, "webchat", "c-1"),
            ] {
                assert_eq!(signalled(&key), Some(changes(team)), "{key}");
            }
            for other in [
                conversation(team, "webchat", "c-1"),
                history(team),
                mcp_session(team, "h"),
                recognitions_of(team, "cust-1"),
            ] {
                assert_eq!(signalled(&other), None, "{other}");
            }
        }
        assert_eq!(changes(&space), "{acme}:~0a1b:chg");
    }

    #[test]
    fn an_incarnation_s_keys_are_in_its_id_s_slot_and_apart_from_every_other() {
        let id = Uuid::now_v7();
        let space = keyspace("acme", Some("0a1b2c3d4e5f"));
        assert_eq!(space, "acme~0a1b2c3d4e5f");
        assert_eq!(keyspace("acme", None), "acme");
        assert_eq!(
            (team_of(&space), incarnation_of(&space)),
            ("acme", Some("0a1b2c3d4e5f"))
        );
        assert_eq!((team_of("acme"), incarnation_of("acme")), ("acme", None));
        assert_eq!(
            interaction(&space, id),
            format!("{{acme}}:~0a1b2c3d4e5f:i:{id}")
        );
        assert_eq!(interaction_id(&interaction(&space, id)), Some(id));
        assert_eq!(audit_entry(&space, 7), "{acme}:~0a1b2c3d4e5f:a:7");
        // Every key of a keyspace differs from the id's and another's.
        let other = keyspace("acme", Some("ffffffffffff"));
        for key in [
            interaction,
            |t: &str, _| subject(t, "cust-1"),
            |t: &str, _| due_queue(t),
            // A customer's wallets registered for payments: a team written
            // again under a deleted one's id has none.
            |t: &str, _| wallet_registrations(t, "cust-1"),
        ] {
            let (made, plain, again) = (key(&space, id), key("acme", id), key(&other, id));
            assert!(
                made != plain && made != again && made.starts_with("{acme}:~"),
                "{made}"
            );
        }
        // The stored form and the deleted team's trail are the id's.
        assert_eq!(api_team(&space), "{acme}:tm");
        assert_eq!(deleted_team("acme"), "{acme}:tmd");
        // The due indexes list the keyspace, and give its queue back.
        for index in [DUE_INDEX_DUEQ, DUE_INDEX_OUTBOX] {
            let queue = queue_of_due_index(index, &space).unwrap();
            assert_eq!(
                due_index_of(&queue),
                Some((index, Cow::Borrowed(space.as_str())))
            );
        }
    }

    #[test]
    fn a_marked_code_s_key_is_in_its_team_s_slot_and_names_the_whole_code() {
        let h = |s: &str| hex::encode(&Sha256::digest(s.as_bytes())[..16]);
        for team in ["acme", "globex", "t00042", "acme~0a1b2c3d4e5f"] {
            let slot = slot_of(interaction(team, Uuid::nil()).as_bytes());
            assert_eq!(team_slot(team), slot);
            let code = marked(team, "AbCd-_9");
            assert_eq!(code, format!("{slot:04x}.AbCd-_9"));
            assert_eq!(without_mark(&code), "AbCd-_9");
            for key in [
                short_link(&code),
                challenge_link("wl:", &code),
                wallet_key(&code),
            ] {
                assert_eq!(slot_of(key.as_bytes()), slot, "{key}");
                assert!(key.ends_with(&h(&code)), "{key}");
            }
            // A console's state and session id: in the slot, the digest
            // of the whole marked value as given.
            for key in [
                console_sign_in(&code, "d"),
                console_session_team(&code, "d"),
            ] {
                assert_eq!(slot_of(key.as_bytes()), slot, "{key}");
                assert!(key.ends_with(&h("d")), "{key}");
            }
        }
        // Another team's mark on the same code: another key.
        let (a, b) = (marked("acme", "x"), marked("globex", "x"));
        assert_ne!(short_link(&a), short_link(&b));
        // Every slot has its tag.
        for slot in [0, 1, 5460, 12182, SLOTS - 1] {
            assert_eq!(slot_of(format!("{{{}}}", slot_tag(slot)).as_bytes()), slot);
        }
        // What is not a mark leaves the code on a key of its own.
        for code in ["AbC", "zzzz.x", "4000.x", "0001.", "001.x", ".x"] {
            assert_eq!(short_link(code), format!("l:{}", h(code)), "{code}");
            assert_eq!(without_mark(code), code);
        }
    }

    /// The keys as every earlier version wrote them (`format!` and a
    /// separate hex string): stored data must keep its keys.
    #[test]
    fn keys_are_as_earlier_versions_made_them() {
        fn h(s: &str) -> String {
            hex::encode(&Sha256::digest(s.as_bytes())[..16])
        }
        let id = Uuid::now_v7();
        for team in ["acme", "a:b", ""] {
            for text in ["c1", "", "x\ny", "é\u{0}\"{}"] {
                let pairs = [
                    (interaction(team, id), format!("{{{team}}}:i:{id}")),
                    (
                        conversation(team, "webchat", text),
                        format!("{{{team}}}:c:{}", h(&format!("webchat\n{text}"))),
                    ),
                    (subject(team, text), format!("{{{team}}}:s:{}", h(text))),
                    (
                        assertion_jti(team, text),
                        format!("{{{team}}}:aj:{}", h(text)),
                    ),
                    (interactions_index(team), format!("{{{team}}}:idx")),
                    (
                        customer_index(team, text),
                        format!("{{{team}}}:cu:{}", h(text)),
                    ),
                    (due_queue(team), format!("{{{team}}}:dueq")),
                    (short_link(text), format!("l:{}", h(text))),
                    (challenge_link("n:", text), format!("n:{}", h(text))),
                    (challenge_link("ce:", text), format!("ce:{}", h(text))),
                    (challenge_link("wl:", text), format!("wl:{}", h(text))),
                    (wallet_key(text), format!("wk:{}", h(text))),
                    (console_sign_in(text, "d1"), format!("csi:{}", h("d1"))),
                    (console_session_team(text, "h1"), format!("cst:{}", h("h1"))),
                    (
                        wallet_sca_code(team, "CN=Bank", text),
                        format!("{{{team}}}:wj:{}", h(&format!("CN=Bank\n{text}"))),
                    ),
                    (
                        code_entry_posts(team, text),
                        format!("{{{team}}}:cep:{}", h(text)),
                    ),
                    (
                        wallet_page_fetches(team, text),
                        format!("{{{team}}}:wpf:{}", h(text)),
                    ),
                    (network_states(text), format!("ns:{}", h(text))),
                    (
                        answered_request(team, "cb", text),
                        format!("{{{team}}}:wr:cb:{}", h(text)),
                    ),
                    (
                        answered_request_digested(team, "cb", &h(text)),
                        answered_request(team, "cb", text),
                    ),
                    (outbox(team), format!("{{{team}}}:obq")),
                    (history(team), format!("{{{team}}}:ev")),
                    (outbox_item(team, id), format!("{{{team}}}:obi:{id}")),
                    (devices(team, text), format!("{{{team}}}:dv:{}", h(text))),
                    (
                        recognition(team, "sms", text),
                        format!("{{{team}}}:rc:{}", h(&format!("sms\n{text}"))),
                    ),
                    (
                        recognitions_of(team, text),
                        format!("{{{team}}}:rcu:{}", h(text)),
                    ),
                ];
                for (made, earlier) in pairs {
                    assert_eq!(made, earlier);
                }
            }
        }
    }
}
