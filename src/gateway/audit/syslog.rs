//! The `[audit.syslog]` sink (docs/audit.md#wiring-a-siem): every team's
//! entries to a SIEM as RFC 5424 messages with octet-counting framing
//! (RFC 6587) over TCP, or over TLS (RFC 5425: the same frames in the TLS
//! session, the receiver's certificate checked for its host), from a
//! worker of its own: a sink that is down delays no request. A receiver
//! that cannot be reached, or whose certificate is not trusted, is one
//! warning when it starts failing and one line when it answers again.
//!
//! Per team a cursor record (`{team}:asl`) holds the last `seq` confirmed
//! written, and which instance sends, until when: one instance at a time
//! sends a team's entries. Entries written to the connection are confirmed
//! at the next round, once the connection is seen still open; after a
//! lost connection or a restart, sending resumes after the cursor, so a
//! receiver may see an entry twice, never misses one
//! (docs/decisions/0149-the-syslog-sink-confirms-on-an-open-connection.md).
//!
//! A cursor also names the latest reset of the trail it knew (the
//! `audit.trail_reset` entry's `id`): a cursor ahead of the head is a
//! reset, recorded before anything is sent, and once one is recorded the
//! sink sends again from its entry, so a reset never makes it skip an
//! entry (docs/audit.md#resets). The webhook sink shares these rules.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{head_of, read_head, vouch, StoredHead};
use crate::config::SyslogTarget;
use crate::domain::audit::{sink_step, Head, Known, SinkStep};
use crate::fared::{Failing, Fared};
use crate::gateway::records::{put, Loaded, Record};
use crate::gateway::{Core, Live};
use crate::store::{keys, Commit, Versioned};
use crate::time::{Clock, Timestamp};

/// How often the worker looks for entries to send.
const TICK: Duration = Duration::from_millis(500);
/// How long an instance keeps a team's sending once it stops renewing.
const LEASE: Duration = Duration::from_secs(15);
/// Entries sent per team and round.
const BATCH: u64 = 200;
/// The longest a connect or a write may take before the connection is
/// given up (and tried again next round).
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// `{team}:asl`: the last `seq` confirmed written to the sink, the
/// instance sending the team's entries until when, and the `id` of the
/// latest `audit.trail_reset` entry the cursor knew (`r`, absent before
/// the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
enum StoredCursor {
    #[serde(rename = "1")]
    V1 {
        seq: u64,
        holder: String,
        until: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        r: Option<String>,
    },
}

/// A team's cursor as this instance holds it: its version, and what it
/// knows of the trail (the last `seq` sent, the latest reset).
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub version: u64,
    pub known: Known,
}

impl Record for StoredCursor {}

/// The byte order mark RFC 5424 (6.4) puts before a MSG in UTF-8.
const BOM: &str = "\u{feff}";

/// The RFC 5424 message of `entry` (its JSON `text`, after the byte order
/// mark that says it is UTF-8), framed by its length in octets, the mark's
/// three included (RFC 6587 octet counting).
pub fn frame(entry: &Value, text: &str, host: &str) -> Vec<u8> {
    let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or("-");
    let seq = entry.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let msg = format!(
        "<110>1 {time} {host} chatgate - {msgid} [chatgate@32473 team=\"{team}\" seq=\"{seq}\"] {BOM}{text}",
        time = field("time"),
        host = header_field(host, 255),
        msgid = header_field(field("action"), 32),
        team = param_value(field("team")),
    );
    format!("{} {msg}", msg.len()).into_bytes()
}

/// A header field: printable US-ASCII without spaces, at most `max`; `-`
/// for what is not.
fn header_field(s: &str, max: usize) -> &str {
    let ok = !s.is_empty() && s.len() <= max && s.bytes().all(|b| (33..=126).contains(&b));
    if ok {
        s
    } else {
        "-"
    }
}

/// An SD-PARAM value with `"`, `\` and `]` escaped.
fn param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The worker that sends every team's entries to `[audit.syslog]`.
pub struct SyslogSink {
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    host: String,
    /// This instance, as a cursor's `holder` names it.
    me: String,
    /// Whether the receiver fails, for one warning, not one a round.
    failing: Failing,
}

/// A connection to the receiver: plain TCP, or a TLS session over it.
enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    /// Whether the receiver has not closed the connection: a read finds
    /// nothing to read (not an end of stream — for TLS, nor a
    /// `close_notify` —, not an error).
    fn still_open(&mut self) -> bool {
        match self {
            Conn::Tcp(s) => still_open(s),
            Conn::Tls(s) => {
                let mut buf = [0u8; 256];
                loop {
                    match s.read(&mut buf).now_or_never() {
                        None => return true,
                        Some(Ok(0)) | Some(Err(_)) => return false,
                        // The receiver said something: read on.
                        Some(Ok(_)) => continue,
                    }
                }
            }
        }
    }
}

/// The teams a reload removed whose entries are not all sent yet (the
/// entry recording the removal among them): the sink sends them until it
/// has caught up, then forgets them.
struct Former {
    /// The teams of the configuration last seen.
    last: BTreeSet<String>,
    gone: BTreeSet<String>,
}

impl Former {
    /// Starting from the teams of the configuration in force when the
    /// sink starts: a reload before its first round is seen too.
    fn since<'a>(teams: impl Iterator<Item = &'a String>) -> Self {
        Former {
            last: teams.cloned().collect(),
            gone: BTreeSet::new(),
        }
    }

    /// Notes the teams of the configuration in force.
    fn note<'a>(&mut self, teams: impl Iterator<Item = &'a String>) {
        let now: BTreeSet<String> = teams.cloned().collect();
        self.gone.extend(self.last.difference(&now).cloned());
        self.gone.retain(|t| !now.contains(t));
        self.last = now;
    }

    fn teams(&self) -> impl Iterator<Item = &String> + '_ {
        self.gone.iter()
    }

    /// Forgets those of `caught_up` that are gone.
    fn sent(&mut self, caught_up: &[String]) {
        for team in caught_up {
            self.gone.remove(team);
        }
    }
}

/// What this instance wrote to the open connection and awaits
/// confirming: by team, the cursor's version it wrote against and the
/// last `seq` written.
type Unconfirmed = HashMap<String, (u64, u64)>;

impl SyslogSink {
    pub fn new(live: Arc<Live>, clock: Arc<dyn Clock>) -> Self {
        let host = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "-".into());
        SyslogSink {
            live,
            clock,
            host,
            me: uuid::Uuid::now_v7().to_string(),
            failing: Failing::default(),
        }
    }

    /// Logs how the receiver at `address` fared: a warning when it starts
    /// failing (`failed` says why), a line when it answers again.
    fn fared(&self, address: &str, failed: Option<&str>) {
        let now = self.clock.now();
        match (failed, self.failing.fared(address, failed.is_some(), now)) {
            (Some(why), Fared::StartedFailing) => tracing::warn!(
                address,
                error = why,
                "the syslog receiver fails: audit entries wait; one line when it takes them again"
            ),
            (Some(why), _) => {
                tracing::debug!(address, error = why, "the syslog receiver still fails")
            }
            (None, Fared::Recovered { since, failed }) => tracing::info!(
                address,
                failing_secs = now.since(since).as_secs_f64(),
                failed_attempts = failed,
                "the syslog receiver takes audit entries again"
            ),
            (None, _) => {}
        }
    }

    /// A connection to `target`, or `None` (logged) when there is none.
    async fn connect(&self, target: &SyslogTarget) -> Option<Conn> {
        match connect(target).await {
            Ok(conn) => {
                self.fared(&target.address, None);
                Some(conn)
            }
            Err(why) => {
                self.fared(&target.address, Some(&why));
                None
            }
        }
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut conn: Option<Conn> = None;
        let mut unconfirmed = Unconfirmed::new();
        let mut former = Former::since(self.live.current().config().teams.keys());
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(TICK) => {}
            }
            let core = self.live.current();
            let Some(target) = core.config().audit.syslog.clone() else {
                conn = None;
                continue;
            };
            // What the connection took last round counts once it is seen
            // still open now.
            let open = conn.as_mut().is_some_and(Conn::still_open);
            if !open {
                conn = None;
                unconfirmed.clear();
            }
            if conn.is_none() {
                conn = self.connect(&target).await;
            }
            let confirmed = std::mem::take(&mut unconfirmed);
            let mut lag = Duration::ZERO;
            let teams = core.config().teams.keys();
            former.note(teams.clone());
            let mut caught_up = Vec::new();
            for team in teams.chain(former.teams()) {
                let now = self.clock.now();
                let done = confirmed.get(team).copied();
                match self.send_team(&core, team, done, &mut conn, now).await {
                    Ok(Some((None, None))) => caught_up.push(team.clone()),
                    Ok(Some((sent, oldest))) => {
                        if let Some(sent) = sent {
                            unconfirmed.insert(team.clone(), sent);
                        }
                        lag = lag.max(oldest.map_or(Duration::ZERO, |t| now.since(t)));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.fared(&target.address, Some(&e.to_string()));
                        conn = None;
                        unconfirmed.clear();
                    }
                }
            }
            former.sent(&caught_up);
            metrics::gauge!("chatgate_audit_sink_lag_seconds", "sink" => "syslog")
                .set(lag.as_secs_f64());
        }
    }

    /// One round for `team`: confirms `done` (version written against,
    /// last `seq` written), takes or renews the team's sending, and
    /// writes what follows the cursor. `None`: another instance sends it.
    /// Else what was written (to confirm next round) and the time of the
    /// oldest entry not confirmed.
    async fn send_team(
        &self,
        core: &Core,
        team: &str,
        done: Option<(u64, u64)>,
        conn: &mut Option<Conn>,
        now: Timestamp,
    ) -> crate::error::Result<Option<SendRound>> {
        let key = keys::audit_syslog_cursor(team);
        let Some(held) = hold(core, &key, &self.me, done, now).await? else {
            return Ok(None);
        };
        let Some((held, head)) = settle(core, team, &key, &self.me, held, now).await? else {
            return Ok(None);
        };
        let (version, seq) = (held.version, held.known.seq);
        if head.seq <= seq {
            return Ok(Some((None, None)));
        }
        let last = head.seq.min(seq + BATCH);
        let wanted: Vec<String> = (seq + 1..=last)
            .map(|s| keys::audit_entry(team, s))
            .collect();
        let entries: Vec<Versioned> = core.get(&wanted).await?.into_iter().flatten().collect();
        let oldest = entries
            .first()
            .and_then(|e| serde_json::from_str::<Value>(&e.value).ok())
            .and_then(|e| {
                e.get("time")
                    .and_then(Value::as_str)
                    .and_then(Timestamp::parse_rfc3339)
            });
        let Some(stream) = conn.as_mut() else {
            return Ok(Some((None, oldest)));
        };
        let mut bytes = Vec::new();
        let mut through = seq;
        for e in &entries {
            let Ok(value) = serde_json::from_str::<Value>(&e.value) else {
                continue;
            };
            bytes.extend(frame(&value, &e.value, &self.host));
            through = value.get("seq").and_then(Value::as_u64).unwrap_or(through);
        }
        let wrote = tokio::time::timeout(IO_TIMEOUT, stream.write(&bytes)).await;
        match wrote {
            Ok(Ok(())) => Ok(Some((Some((version, through)), oldest))),
            Ok(Err(e)) => Err(crate::error::Error::internal_from(
                "the syslog connection failed",
                e,
            )),
            Err(_) => Err(crate::error::Error::internal(
                "the syslog connection did not take the entries in time",
            )),
        }
    }
}

/// Takes or renews, for `me`, the sending of the team whose cursor is
/// `key`, for [`LEASE`]; moves the cursor to `done`'s `seq` when it is
/// still at `done`'s version (nobody took it over since). Answers the
/// cursor as held, or `None` while another instance holds it (or took it
/// just now).
pub(super) async fn hold(
    core: &Core,
    key: &str,
    me: &str,
    done: Option<(u64, u64)>,
    now: Timestamp,
) -> crate::error::Result<Option<Held>> {
    let raw = core.get(&[key.to_string()]).await?.pop().flatten();
    let cursor: Loaded<StoredCursor> = Loaded::parse(key.to_string(), raw)?;
    let (mut seq, reset, held_by_other) = match &cursor.value {
        Some(StoredCursor::V1 {
            seq,
            holder,
            until,
            r,
        }) => (*seq, r.clone(), holder != me && *until > now.unix_millis()),
        None => (0, None, false),
    };
    if held_by_other {
        return Ok(None);
    }
    if let Some((version, through)) = done {
        if version == cursor.version {
            seq = seq.max(through);
        }
    }
    let known = Known { seq, reset };
    put_cursor(core, &cursor, me, known, now).await
}

/// Writes `known` to the cursor as read (`cursor`), held by `me` for
/// [`LEASE`]; `None` when another writer moved it first.
async fn put_cursor(
    core: &Core,
    cursor: &Loaded<StoredCursor>,
    me: &str,
    known: Known,
    now: Timestamp,
) -> crate::error::Result<Option<Held>> {
    let mine = StoredCursor::V1 {
        seq: known.seq,
        holder: me.to_string(),
        until: now.plus(LEASE).unix_millis(),
        r: known.reset.clone(),
    };
    let op = put(
        &cursor.key,
        cursor.version,
        &mine,
        Some(core.config().audit.retention),
    )?;
    let version = match &op {
        crate::store::Op::Put { version, .. } => *version,
        _ => 0,
    };
    let applied = core.write(vec![op]).await? == Commit::Applied;
    Ok(applied.then_some(Held { version, known }))
}

/// The head of `team`'s trail, and the cursor `held` (at `key`) as it
/// stands after any reset of the trail (docs/audit.md#resets): rewound to
/// send again from the reset's entry when one was recorded since it
/// moved; when it is ahead of the head and none was recorded, the reset
/// is recorded first, and nothing is sent this round (`None`, as when
/// another writer moved the cursor meanwhile).
pub(super) async fn settle(
    core: &Core,
    team: &str,
    key: &str,
    me: &str,
    held: Held,
    now: Timestamp,
) -> crate::error::Result<Option<(Held, Head)>> {
    let loaded = read_head(core, team).await?;
    let found = loaded.value.as_ref().map(StoredHead::found);
    match sink_step(&held.known, found.as_ref()) {
        SinkStep::Send => Ok(Some((held, head_of(&loaded)))),
        SinkStep::Rewind { seq, reset } => {
            let cursor = Loaded {
                key: key.to_string(),
                version: held.version,
                // Only its version is checked.
                value: None,
            };
            let known = Known {
                seq,
                reset: Some(reset),
            };
            let rewound = put_cursor(core, &cursor, me, known, now).await?;
            Ok(rewound.map(|held| (held, head_of(&loaded))))
        }
        SinkStep::Record(_) => {
            vouch(core, team, &held.known, now).await?;
            Ok(None)
        }
    }
}

/// What one round wrote (cursor version, last `seq`), if anything, and
/// the time of the oldest entry not yet confirmed.
type SendRound = (Option<(u64, u64)>, Option<Timestamp>);

/// Whether the receiver has not closed `conn`: a read finds nothing to
/// read (not an end of stream, not an error).
fn still_open(conn: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match conn.try_read(&mut buf) {
            Ok(0) => return false,
            // The receiver said something: read on.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// A connection to `target` within [`IO_TIMEOUT`] (the TLS handshake
/// included), or why there is none.
async fn connect(target: &SyslogTarget) -> Result<Conn, String> {
    let address = target.address.as_str();
    let stream = match tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(format!("cannot be reached: {e}")),
        Err(_) => return Err("did not answer in time".into()),
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = &target.tls else {
        return Ok(Conn::Tcp(stream));
    };
    let handshake = tls.connector.connect(tls.server_name.clone(), stream);
    match tokio::time::timeout(IO_TIMEOUT, handshake).await {
        Ok(Ok(session)) => Ok(Conn::Tls(Box::new(session))),
        Ok(Err(e)) => Err(format!("TLS refused: {e}")),
        Err(_) => Err("the TLS handshake did not end in time".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_an_rfc_5424_message_counted_in_octets() {
        let text = r#"{"seq":42,"time":"2026-11-21T10:00:00.123Z","team":"acme","action":"subject.unlocked","x":"é"}"#;
        let entry: Value = serde_json::from_str(text).unwrap();
        let framed = String::from_utf8(frame(&entry, text, "gw-1")).unwrap();
        let (len, msg) = framed.split_once(' ').unwrap();
        assert_eq!(
            len.parse::<usize>().unwrap(),
            msg.len(),
            "octets, not characters, the byte order mark's three among them"
        );
        assert_eq!(
            msg,
            format!("<110>1 2026-11-21T10:00:00.123Z gw-1 chatgate - subject.unlocked [chatgate@32473 team=\"acme\" seq=\"42\"] \u{feff}{text}")
        );
        // The MSG's first octets are the UTF-8 byte order mark, then the JSON.
        let bytes = msg.as_bytes();
        let at = msg.find("] ").unwrap() + 2;
        assert_eq!(&bytes[at..at + 3], [0xEF, 0xBB, 0xBF]);
        assert_eq!(&msg[at + 3..], text);
        assert_eq!(header_field("a host", 255), "-");
        assert_eq!(param_value(r#"a"b]c\"#), r#"a\"b\]c\\"#);
    }

    #[test]
    fn the_cursor_keeps_its_bytes() {
        let c = StoredCursor::V1 {
            seq: 7,
            holder: "i-1".into(),
            until: 1_800_000_000_000,
            r: None,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"v":"1","seq":7,"holder":"i-1","until":1800000000000}"#
        );
        assert_eq!(serde_json::from_str::<StoredCursor>(&text).unwrap(), c);
        let c = StoredCursor::V1 {
            seq: 7,
            holder: "i-1".into(),
            until: 1_800_000_000_000,
            r: Some("0193".into()),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"v":"1","seq":7,"holder":"i-1","until":1800000000000,"r":"0193"}"#
        );
        assert_eq!(serde_json::from_str::<StoredCursor>(&text).unwrap(), c);
    }
}
