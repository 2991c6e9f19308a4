//! The `[audit.syslog]` sink (docs/audit.md#wiring-a-siem): every team's
//! entries to a SIEM as RFC 5424 messages with octet-counting framing
//! (RFC 6587) over TCP, or over TLS (RFC 5425: the same frames in the TLS
//! session, the receiver's certificate checked for its host). A receiver
//! that cannot be reached, or whose certificate is not trusted, is one
//! warning when it starts failing and one line when it answers again.
//!
//! Its cursor (`{team}:asl`, `cursor.rs`) holds the last `seq` confirmed
//! written. Entries written to the connection are confirmed at the next
//! round, once the connection is seen still open; after a lost connection
//! or a restart, sending resumes after the cursor, so a receiver may see
//! an entry twice, never misses one
//! (docs/decisions/0149-the-syslog-sink-confirms-on-an-open-connection.md).
//! The rounds, the cursor's lease and the resets are `sink.rs`'s.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::sink::{Entry, Failing, Lag, Round, Sink};
use crate::config::SyslogTarget;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::{Clock, Timestamp};

/// The longest a connect or a write may take before the connection is
/// given up (and tried again next round).
const IO_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The sink that sends every team's entries to `[audit.syslog]`.
pub struct SyslogSink {
    host: String,
    /// The receiver's address, as the last round read it.
    address: String,
    /// The connection to the receiver, while it stands.
    conn: Option<Conn>,
    /// The teams a reload removed, sent to until caught up.
    former: Former,
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

impl Sink for SyslogSink {
    const LABEL: &'static str = "syslog";
    const BATCH: u64 = 200;
    const CONFIRMS_LATER: bool = true;

    fn new(core: &Core, _clock: Arc<dyn Clock>) -> Self {
        let host = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "-".into());
        SyslogSink {
            host,
            address: String::new(),
            conn: None,
            former: Former::since(core.config().keyspaces()),
            failing: Failing::new("the syslog receiver"),
        }
    }

    fn cursor_key(team: &str) -> String {
        keys::audit_syslog_cursor(team)
    }

    /// Every team of the configuration and those a reload removed, on a
    /// connection seen still open (what it took last round counts once
    /// it is), or a new one.
    async fn round(&mut self, core: &Core, now: Timestamp) -> Option<Round> {
        let Some(target) = core.config().audit.syslog.clone() else {
            self.conn = None;
            return None;
        };
        self.address.clone_from(&target.address);
        let open = self.conn.as_mut().is_some_and(Conn::still_open);
        if !open {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = match connect(&target).await {
                Ok(conn) => {
                    self.failing.fared(&target.address, None, now);
                    Some(conn)
                }
                Err(why) => {
                    self.failing.fared(&target.address, Some(&why), now);
                    None
                }
            };
        }
        // A team deleted and written again under its id is two teams
        // here, and the one gone is sent until caught up.
        let teams = core.config().keyspaces();
        self.former.note(teams.clone());
        let teams = teams.chain(self.former.teams()).cloned().collect();
        Some(Round {
            teams,
            fresh: !open,
        })
    }

    /// Writes the entries' frames to the connection, if there is one.
    async fn send(
        &mut self,
        _core: &Core,
        _team: &str,
        entries: &[Entry],
        _lag: &Lag,
    ) -> crate::error::Result<Option<u64>> {
        let Some(stream) = self.conn.as_mut() else {
            return Ok(None);
        };
        let Some(last) = entries.last() else {
            return Ok(None);
        };
        let bytes: Vec<u8> = entries
            .iter()
            .flat_map(|e| frame(&e.value, &e.text, &self.host))
            .collect();
        match tokio::time::timeout(IO_TIMEOUT, stream.write(&bytes)).await {
            Ok(Ok(())) => Ok(Some(last.seq)),
            Ok(Err(e)) => Err(crate::error::Error::internal_from(
                "the syslog connection failed",
                e,
            )),
            Err(_) => Err(crate::error::Error::internal(
                "the syslog connection did not take the entries in time",
            )),
        }
    }

    /// A round that failed drops the connection (what it took and was not
    /// confirmed is sent again on the next).
    fn ended(&mut self, _team: &str, now: Timestamp, outcome: &crate::error::Result<()>) {
        let Err(e) = outcome else {
            return;
        };
        self.conn = None;
        // A store that does not answer is not the receiver failing: the
        // store's own log says so, once while it lasts
        // (docs/operations.md#logs).
        if !matches!(e, crate::error::Error::StoreUnavailable) {
            self.failing.fared(&self.address, Some(&e.to_string()), now);
        }
    }

    fn caught_up(&mut self, teams: &[String]) {
        self.former.sent(teams);
    }

    /// A team taken out is sent until caught up, even when no round saw
    /// it in force.
    fn departed(&mut self, keyspace: String, _team: Arc<crate::config::Team>, _now: Timestamp) {
        self.former.gone.insert(keyspace);
    }
}

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
}
