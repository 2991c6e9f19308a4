//! The `smtp` channel kind (docs/channels.md): one plain-text e-mail through an
//! SMTP server, over STARTTLS, implicit TLS or (local relays) no TLS.
use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::kind::{Dial, Goes, Kind, KindInfo, Problem, Reach};
use super::{Channel, ChannelError, Message, Sent, SEND_TIMEOUT};
use crate::domain::challenge::Delivery;
use crate::domain::secrets::Secret;
use crate::outbound;

/// The subject when the caller rendered none.
pub const DEFAULT_SUBJECT: &str = "Your verification";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Tls,
    None,
}

/// The keys of an `smtp` channel file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default by `tls`: see [`SmtpConfig::port`].
    #[serde(default, deserialize_with = "port")]
    port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender address.
    pub from: String,
}

fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// A port written as a number or as a string of digits (so
/// `"${SMTP_PORT}"` works), from 1 to 65535.
fn port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct Port;
    impl serde::de::Visitor<'_> for Port {
        type Value = u16;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a port number")
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u16, E> {
            u16::try_from(n)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| E::custom("must be from 1 to 65535"))
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u16, E> {
            self.visit_i64(i64::try_from(n).unwrap_or(-1))
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<u16, E> {
            self.visit_i64(s.trim().parse::<i64>().unwrap_or(-1))
        }
    }
    d.deserialize_any(Port).map(Some)
}

impl SmtpConfig {
    /// As written, else 587 (`starttls`), 465 (`tls`) or 25 (`none`).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}

impl Kind for SmtpConfig {
    const INFO: KindInfo = KindInfo {
        name: "smtp",
        text_limit: None,
        addressing: Reach::Email,
        serves: &[Delivery::Email],
        vouches_for_sender: false,
        receipts: false,
        chat: true,
        identity_hash: false,
        sms_segments: false,
        secrets_go: &[Goes {
            secret: "password",
            to: &["host", "port", "tls"],
        }],
    };

    fn shows_text(&self) -> bool {
        true
    }

    fn whatsapp_chat(&self) -> bool {
        false
    }

    fn sends_templates(&self) -> bool {
        false
    }

    fn check(&mut self) -> Result<(), Problem> {
        self.host = self.host.trim().to_string();
        super::kind::required("host", &self.host)?;
        if !self.from.contains('@') {
            return Err(("from", "must be an e-mail address".into()));
        }
        match (&self.username, &self.password) {
            (Some(_), None) => Err(("password", "is required when username is set".into())),
            (None, Some(_)) => Err(("username", "is required when password is set".into())),
            _ => Ok(()),
        }
    }

    fn sender(&self, dial: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        let settings = SmtpSettings {
            host: &self.host,
            port: self.port(),
            tls: self.tls,
            username: self.username.as_deref(),
            password: self.password.as_ref().map(Secret::get),
            from: &self.from,
        };
        Ok(Arc::new(SmtpChannel::reaching(settings, dial.reach)?))
    }
}

/// Connection settings of one `smtp` channel file.
pub struct SmtpSettings<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<&'a str>,
    pub password: Option<&'a SecretString>,
    pub from: &'a str,
}

pub struct SmtpChannel {
    /// The transport to the host as written; `None` for a channel whose
    /// reach is [`outbound::Reach::Public`], connected to the checked
    /// address of `server` at each send.
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    server: Server,
    from: Mailbox,
}

/// Where an `smtp` channel connects, and how.
struct Server {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<Credentials>,
}

impl Server {
    /// A transport that connects to `address` (the host itself, or an
    /// address it resolved to) and names the host in TLS.
    fn transport(
        &self,
        address: String,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, ChannelError> {
        let tls_name = || {
            TlsParameters::new(self.host.clone())
                .map_err(|_| ChannelError::new("smtp host is not a valid TLS name"))
        };
        let tls = match self.tls {
            SmtpTls::Starttls => Tls::Required(tls_name()?),
            SmtpTls::Tls => Tls::Wrapper(tls_name()?),
            SmtpTls::None => Tls::None,
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address)
            .port(self.port)
            .tls(tls)
            .timeout(Some(SEND_TIMEOUT));
        Ok(match &self.credentials {
            Some(c) => builder.credentials(c.clone()),
            None => builder,
        }
        .build())
    }
}

impl SmtpChannel {
    /// Fails when `from` is no e-mail address or `host` no valid TLS name.
    pub fn new(s: SmtpSettings<'_>) -> Result<Self, ChannelError> {
        Self::reaching(s, outbound::Reach::Anywhere)
    }

    /// [`SmtpChannel::new`] for a channel of `reach`: for
    /// [`outbound::Reach::Public`], each send resolves the host once and
    /// connects only to an address it may reach
    /// ([`outbound::smtp_address`]), naming the host in TLS.
    pub fn reaching(s: SmtpSettings<'_>, reach: outbound::Reach) -> Result<Self, ChannelError> {
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|_| ChannelError::new("smtp from address is invalid"))?;
        let credentials = s.username.map(|username| {
            let password = s.password.map(|p| p.expose_secret()).unwrap_or_default();
            Credentials::new(username.into(), password.into())
        });
        let server = Server {
            host: s.host.to_string(),
            port: s.port,
            tls: s.tls,
            credentials,
        };
        let transport = server.transport(s.host.to_string())?;
        Ok(SmtpChannel {
            transport: (reach == outbound::Reach::Anywhere).then_some(transport),
            server,
            from,
        })
    }
}

/// A short text for a lettre error: the reply code at most, never the
/// server's text (it may echo an address).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) if e.is_transient() => format!("smtp deferred the message ({code})"),
        Some(code) => format!("smtp refused the message ({code})"),
        None if e.is_timeout() => "smtp timed out".into(),
        None if e.is_tls() => "smtp TLS failed".into(),
        None if e.is_client() || e.is_response() => "smtp session failed".into(),
        None => "smtp unreachable".into(),
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let to = msg
            .to
            .as_deref()
            .map(str::trim)
            .filter(|to| !to.is_empty())
            .ok_or_else(|| ChannelError::new("smtp needs a recipient e-mail address"))?;
        let to: Mailbox = to
            .parse()
            .map_err(|_| ChannelError::new("smtp recipient address is invalid"))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.as_deref().unwrap_or(DEFAULT_SUBJECT))
            .header(ContentType::TEXT_PLAIN)
            .body(msg.text.clone())
            .map_err(|_| ChannelError::new("could not build the e-mail"))?;
        let checked;
        let transport = match &self.transport {
            Some(transport) => transport,
            None => {
                let address = (outbound::smtp_address(
                    &self.server.host,
                    self.server.port,
                    outbound::Reach::Public,
                )
                .await)
                    .map_err(|e| match outbound::is_refused(&*e) {
                        true => ChannelError::new(format!("smtp at /host {}", outbound::Refused)),
                        false => ChannelError::new("smtp unreachable"),
                    })?;
                checked = self.server.transport(address)?;
                &checked
            }
        };
        match tokio::time::timeout(SEND_TIMEOUT, transport.send(email)).await {
            Ok(Ok(_)) => Ok(Sent::untracked()),
            Ok(Err(e)) => Err(ChannelError::new(describe(&e))),
            Err(_) => Err(ChannelError::new("smtp timed out")),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;
    use uuid::Uuid;

    use super::*;
    use crate::channels::Purpose;

    /// What the fake server saw: the commands and the DATA (un-dot-stuffed).
    #[derive(Debug, Default)]
    struct Received {
        commands: Vec<String>,
        data: String,
    }

    /// A one-connection SMTP server speaking just the minimal dialogue.
    /// `rcpt_reply` answers RCPT TO.
    async fn fake_smtp(rcpt_reply: &'static str) -> (u16, JoinHandle<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut got = Received::default();
            let mut in_data = false;
            write.write_all(b"220 fake.test ESMTP\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                if in_data {
                    if line == "." {
                        in_data = false;
                        write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                    } else {
                        let line = line.strip_prefix('.').unwrap_or(&line);
                        got.data.push_str(line);
                        got.data.push_str("\r\n");
                    }
                    continue;
                }
                let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                let reply = match verb.as_str() {
                    "EHLO" | "HELO" => "250 fake.test\r\n",
                    "MAIL" | "RSET" | "NOOP" => "250 2.1.0 ok\r\n",
                    "RCPT" => rcpt_reply,
                    "DATA" => "354 end with <CRLF>.<CRLF>\r\n",
                    "QUIT" => "221 2.0.0 bye\r\n",
                    _ => "502 5.5.2 not implemented\r\n",
                };
                got.commands.push(line);
                in_data = verb == "DATA";
                write.write_all(reply.as_bytes()).await.unwrap();
                if verb == "QUIT" {
                    break;
                }
            }
            got
        });
        (port, task)
    }

    fn channel(port: u16) -> SmtpChannel {
        SmtpChannel::new(SmtpSettings {
            host: "127.0.0.1",
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Chatgate <gate@example.com>",
        })
        .unwrap()
    }

    fn message(to: Option<&str>, subject: Option<&str>) -> Message {
        Message {
            id: Uuid::now_v7(),
            purpose: Purpose::Otp,
            interaction_id: Uuid::now_v7(),
            conversation_id: "conv-1".into(),
            channel: "mail".into(),
            to: to.map(String::from),
            text: "Your code is 123456.\n.hidden line stays".into(),
            subject: subject.map(String::from),
            code: None,
            public_url: "http://gateway.test".into(),
            code_ttl: None,
            locale: "en".into(),
            call: None,
            identity_key_hash: None,
        }
    }

    #[tokio::test]
    async fn sends_sender_recipient_subject_and_body() {
        let (port, server) = fake_smtp("250 2.1.5 ok\r\n").await;
        channel(port)
            .send(&message(Some("user@example.org"), Some("Your code")))
            .await
            .unwrap();
        let got = server.await.unwrap();
        let verbs: Vec<&str> = got.commands.iter().map(|c| &c[..4]).collect();
        assert_eq!(verbs, ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]);
        assert_eq!(got.commands[1], "MAIL FROM:<gate@example.com>");
        assert_eq!(got.commands[2], "RCPT TO:<user@example.org>");
        let (head, body) = got.data.split_once("\r\n\r\n").unwrap();
        let head: Vec<&str> = head.lines().collect();
        assert!(
            head.contains(&"From: Chatgate <gate@example.com>"),
            "{head:?}"
        );
        assert!(head.contains(&"To: user@example.org"), "{head:?}");
        assert!(head.contains(&"Subject: Your code"), "{head:?}");
        assert!(
            head.contains(&"Content-Type: text/plain; charset=utf-8"),
            "{head:?}"
        );
        assert_eq!(body, "Your code is 123456.\r\n.hidden line stays\r\n");
    }

    #[tokio::test]
    async fn default_subject_when_none_rendered() {
        let (port, server) = fake_smtp("250 2.1.5 ok\r\n").await;
        channel(port)
            .send(&message(Some("user@example.org"), None))
            .await
            .unwrap();
        let got = server.await.unwrap();
        assert!(got.data.lines().any(|l| l == "Subject: Your verification"));
    }

    #[tokio::test]
    async fn refused_recipient_is_a_short_channel_error() {
        let (port, server) = fake_smtp("550 5.1.1 <user@example.org> no such user\r\n").await;
        let err = channel(port)
            .send(&message(Some("user@example.org"), None))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "smtp refused the message (550)");
        let got = server.await.unwrap();
        assert!(got.data.is_empty(), "no DATA after a refused RCPT");
    }

    #[tokio::test]
    async fn missing_or_invalid_recipient_sends_nothing() {
        let ch = channel(1);
        let err = ch.send(&message(None, None)).await.unwrap_err();
        assert_eq!(err.reason, "smtp needs a recipient e-mail address");
        let err = ch
            .send(&message(Some("not an address"), None))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "smtp recipient address is invalid");
    }

    #[tokio::test]
    async fn unreachable_server_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = channel(port)
            .send(&message(Some("user@example.org"), None))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "smtp unreachable");
    }

    /// A channel of the operator API names `localhost`'s server: the
    /// host resolves to loopback, so no connection is made and the send
    /// fails as refused; a file's channel to the same host delivers.
    #[tokio::test]
    async fn a_server_whose_name_resolves_to_loopback_is_not_connected_to_from_an_api_channel() {
        let (port, task) = fake_smtp("250 2.1.5 ok\r\n").await;
        let settings = || SmtpSettings {
            host: "localhost",
            port,
            tls: SmtpTls::Starttls,
            username: Some("gate"),
            password: None,
            from: "Chatgate <gate@example.com>",
        };
        let api = SmtpChannel::reaching(settings(), outbound::Reach::Public).unwrap();
        let err = api
            .send(&message(Some("user@example.org"), None))
            .await
            .unwrap_err();
        assert_eq!(err.reason, format!("smtp at /host {}", outbound::Refused));
        assert!(!task.is_finished(), "the server was never connected to");
        let file = SmtpChannel::reaching(
            SmtpSettings {
                tls: SmtpTls::None,
                username: None,
                ..settings()
            },
            outbound::Reach::Anywhere,
        )
        .unwrap();
        file.send(&message(Some("user@example.org"), None))
            .await
            .unwrap();
        assert!(task.await.unwrap().data.contains("Your code is 123456."));
    }

    #[test]
    fn invalid_from_or_tls_host_is_refused_at_build() {
        let settings = |tls, host, from| SmtpSettings {
            host,
            port: 587,
            tls,
            username: Some("user"),
            password: None,
            from,
        };
        let err = SmtpChannel::new(settings(SmtpTls::None, "localhost", "nope"));
        assert_eq!(err.err().unwrap().reason, "smtp from address is invalid");
        for tls in [SmtpTls::Starttls, SmtpTls::Tls] {
            let ok = SmtpChannel::new(settings(tls, "smtp.example.com", "a@example.com"));
            assert!(ok.is_ok());
        }
    }
}
