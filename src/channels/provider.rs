//! What the HTTP chat providers (`whatsapp`, `slack`, `telegram`) share:
//! their timeouts, one attempt at a JSON POST, and the provider's reason
//! made safe to show (bounded, one line, no credential); and the HTTP
//! client every outgoing message, notice and event is sent with
//! ([`client`]).
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;

use super::ChannelError;
use crate::outbound::Clients;
#[cfg(doc)]
use crate::outbound::Reach;
use crate::spans::SendTraced;

/// Time to open the connection to a provider (set on the shared client).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The clients chatgate sends its messages, notices, events and audit
/// entries with, one per [`Reach`] ([`crate::outbound::builder`]): each
/// request given up after `timeout`, and no redirect followed. A redirect
/// answers the request (a failure, retried as any other non-2xx):
/// followed, a 301/302/303 would turn the POST into a GET without its
/// body, which the receiver could answer 2xx as delivered, and a 307/308
/// would send the signed body and its credentials on to whatever host the
/// answer names (docs/decisions/0246-no-redirect-is-followed.md).
/// Building fails only where TLS cannot be set up at all: the start-up
/// (`app.rs`) is refused then; a client built later is then none, and
/// every send through it fails.
pub fn client(timeout: Duration) -> reqwest::Result<Clients> {
    Clients::built(|b| b.timeout(timeout).connect_timeout(CONNECT_TIMEOUT))
}

/// [`client`], or none (every send failing) where TLS cannot be set up.
pub fn client_or_none(timeout: Duration) -> Clients {
    Clients::new(|b| b.timeout(timeout).connect_timeout(CONNECT_TIMEOUT))
}

/// The most of a provider's reason kept in an error text.
const REASON_MAX_CHARS: usize = 200;

/// A provider's answer to the one attempt.
pub(super) struct Answer {
    pub status: StatusCode,
    /// The `Retry-After` header, when it is a whole number of seconds.
    pub retry_after: Option<u64>,
    /// The body, when it is JSON.
    pub body: Option<serde_json::Value>,
}

impl Answer {
    /// A string field of the JSON body, by JSON pointer (`/error/message`).
    pub fn text(&self, pointer: &str) -> Option<&str> {
        self.body
            .as_ref()
            .and_then(|b| b.pointer(pointer))
            .and_then(serde_json::Value::as_str)
    }

    pub fn number(&self, pointer: &str) -> Option<i64> {
        self.body
            .as_ref()
            .and_then(|b| b.pointer(pointer))
            .and_then(serde_json::Value::as_i64)
    }

    /// The body's `"ok"`, for providers that answer `"ok": false` on HTTP 200.
    pub fn ok_field(&self) -> Option<bool> {
        self.body
            .as_ref()
            .and_then(|b| b.get("ok"))
            .and_then(serde_json::Value::as_bool)
    }
}

/// Sends `request` once (never retried here: the message may have been
/// delivered) and reads the answer. reqwest's error text carries the URL,
/// which may hold a token, so errors are mapped to `kind`'s own words.
pub(super) async fn post_once(
    request: reqwest::RequestBuilder,
    kind: &str,
    timeout: Duration,
) -> Result<Answer, ChannelError> {
    let response = request
        .timeout(timeout)
        .send_traced()
        .await
        .map_err(|e| transport_error(kind, &e))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_error(kind, &e))?;
    let body = serde_json::from_slice(&bytes).ok();
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// Why a request to a provider got no answer, in words that name
/// neither its URL nor its address.
pub(super) fn transport_error(kind: &str, e: &reqwest::Error) -> ChannelError {
    ChannelError::new(if crate::outbound::is_refused(e) {
        format!("{kind} {}", crate::outbound::Refused)
    } else if e.is_timeout() {
        format!("{kind} did not answer in time")
    } else if e.is_connect() {
        format!("{kind} unreachable")
    } else {
        format!("{kind} request failed")
    })
}

/// A provider's own reason, safe for an error text: one line, at most
/// [`REASON_MAX_CHARS`] characters, and `secret` (should a provider echo
/// it) replaced.
pub(super) fn reason(raw: &str, secret: &str) -> String {
    let redacted = if secret.is_empty() {
        raw.to_string()
    } else {
        raw.replace(secret, "[redacted]")
    };
    let one_line: String = redacted
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(REASON_MAX_CHARS) {
        Some((at, _)) => format!("{}…", &trimmed[..at]),
        None => trimmed.to_string(),
    }
}

/// A fake provider that answers one request with `response` (the senders'
/// tests).
#[cfg(test)]
pub(super) async fn answering(response: wiremock::ResponseTemplate) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    server
}

/// A loopback URL nothing listens on (the senders' "unreachable" tests).
#[cfg(test)]
pub(super) fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

/// `e` without the business-scoped user id that `to` is (alone or as
/// Twilio's `whatsapp:<id>`), should the provider have echoed it: an id
/// appears in no error and no log line
/// (docs/channels.md#business-scoped-user-ids).
pub fn without_bsuid(e: ChannelError, to: &str) -> ChannelError {
    let id = to.strip_prefix("whatsapp:").unwrap_or(to);
    if crate::domain::bsuid::is_bsuid(id) {
        ChannelError {
            reason: e.reason.replace(id, "[business-scoped user id]"),
            ..e
        }
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_one_bounded_line_without_the_secret() {
        assert_eq!(
            reason(" bad\ntoken s3cr3t ", "s3cr3t"),
            "bad token [redacted]"
        );
        let long = "x".repeat(500);
        assert_eq!(reason(&long, "k").chars().count(), REASON_MAX_CHARS + 1);
        assert_eq!(reason("fine", ""), "fine");
    }

    /// A POST answered with a redirect gets that answer: neither a 302's
    /// GET without the body nor a 307's signed body reaches the host the
    /// answer names.
    #[tokio::test]
    async fn the_client_follows_no_redirect() {
        use wiremock::matchers::any;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let elsewhere = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(204))
            .mount(&elsewhere)
            .await;
        let clients = client(Duration::from_secs(5)).unwrap();
        let http = clients.of(crate::outbound::Reach::Anywhere).unwrap();
        for status in [301, 302, 303, 307, 308] {
            let receiver = MockServer::start().await;
            Mock::given(any())
                .respond_with(
                    ResponseTemplate::new(status)
                        .insert_header("location", format!("{}/hook", elsewhere.uri())),
                )
                .mount(&receiver)
                .await;
            let request = http
                .post(format!("{}/hook", receiver.uri()))
                .header("webhook-signature", "v1,c2lnbmVk")
                .body("{}");
            let answer = post_once(request, "webhook", Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(answer.status.as_u16(), status);
        }
        let reached = elsewhere.received_requests().await.unwrap();
        assert!(reached.is_empty(), "followed: {reached:?}");
    }
}
