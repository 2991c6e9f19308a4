//! An outbound call whose answer the gateway decides on (an identity
//! provider, a mobile operator, a number check, a status list): the one
//! client it is made with ([`client`]); its body read up to a cap, so a
//! provider that answers more than it should costs at most the cap in
//! memory, however it sends it; and its verdict read strictly as JSON
//! ([`strict_json`]), as a request body is.

use std::time::Duration;

use crate::outbound::Clients;
#[cfg(doc)]
use crate::outbound::Reach;

/// The clients of an outbound call whose answer decides something, one
/// per [`Reach`] ([`crate::outbound::builder`]): given up after
/// `timeout`, to connect and in all; no redirect followed (one would take
/// the request, and the code or client secret it carries, to whatever
/// host the answer names); and no proxy from the environment (one would
/// carry them, and the customer's number, off the machine). Where TLS
/// cannot be set up at all, which the start-up refuses first, there is no
/// client and every call fails: never one that follows redirects or
/// proxies.
pub fn client(timeout: Duration) -> Clients {
    Clients::new(|b| b.timeout(timeout).connect_timeout(timeout).no_proxy())
}

/// Why an answer's body was not read whole by [`body_capped`].
#[derive(Debug)]
pub enum Uncapped {
    /// Longer than allowed: declared so, or sent so (a chunked answer is
    /// given up as soon as it passes the cap, never read to its end).
    TooLong,
    /// The connection failed, or the client's time ran out, while reading.
    Read(reqwest::Error),
}

/// The body of `res`, read up to `max` bytes.
pub async fn body_capped(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, Uncapped> {
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(Uncapped::TooLong);
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(Uncapped::Read)? {
        if body.len() + chunk.len() > max {
            return Err(Uncapped::TooLong);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why an answer is not the JSON a verdict is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotJson {
    /// Its `Content-Type` is not `application/json`.
    Undeclared,
    /// One of its objects, at any depth, names a member twice.
    RepeatedMember,
}

impl NotJson {
    /// What is wrong, for a log line (never the body).
    pub fn as_str(self) -> &'static str {
        match self {
            NotJson::Undeclared => "answer not declared application/json",
            NotJson::RepeatedMember => "answer names a member twice",
        }
    }
}

/// Whether `content_type` (an answer's `Content-Type`) is
/// `application/json`, with any parameters (`; charset=utf-8`).
pub fn declares_json(content_type: Option<&reqwest::header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
}

/// Whether `body`, an answer with `Content-Type` `content_type`, may be
/// read for a verdict (docs/number-checks.md#how-answers-are-read): declared
/// `application/json`, and no member named twice in one object — the
/// rule a request body follows (`domain::json_members`), since serde keeps
/// the last of two members where another reader keeps the first. Its
/// parse, and what it must hold, are the caller's.
pub fn strict_json(
    content_type: Option<&reqwest::header::HeaderValue>,
    body: &[u8],
) -> Result<(), NotJson> {
    if !declares_json(content_type) {
        return Err(NotJson::Undeclared);
    }
    match crate::domain::json_members::repeated_member(body) {
        Some(_) => Err(NotJson::RepeatedMember),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_client_of_an_outbound_call_answers_a_redirect_without_following_it() {
        use wiremock::matchers::{any, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let elsewhere = format!("{}/elsewhere", server.uri());
        Mock::given(path("/token"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", elsewhere.as_str()))
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .named("the redirect's target")
            .mount(&server)
            .await;
        let url = format!("{}/token", server.uri());
        let res = client(Duration::from_secs(5))
            .of(crate::outbound::Reach::Anywhere)
            .unwrap()
            .post(url)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 307);
    }

    #[test]
    fn a_verdict_is_read_only_from_json_declared_so_without_a_member_twice() {
        use reqwest::header::HeaderValue;
        let json = HeaderValue::from_static("application/json");
        let ok = br#"{"swapped":false,"a":{"b":1,"c":[{"b":2}]}}"#;
        assert_eq!(strict_json(Some(&json), ok), Ok(()));
        for ct in ["application/json; charset=utf-8", "Application/JSON"] {
            let ct = HeaderValue::from_static(ct);
            assert_eq!(strict_json(Some(&ct), ok), Ok(()), "{ct:?}");
        }
        for ct in [
            "text/plain",
            "application/problem+json",
            "application/jsonx",
            "",
        ] {
            let ct = HeaderValue::from_static(ct);
            assert_eq!(strict_json(Some(&ct), ok), Err(NotJson::Undeclared));
        }
        assert_eq!(strict_json(None, ok), Err(NotJson::Undeclared));
        for twice in [
            &br#"{"swapped":false,"swapped":true}"#[..],
            br#"{"a":{"b":1,"\u0062":2}}"#,
            br#"{"a":[{"x":{"active":true,"active":false}}]}"#,
        ] {
            assert_eq!(
                strict_json(Some(&json), twice),
                Err(NotJson::RepeatedMember),
                "{}",
                String::from_utf8_lossy(twice)
            );
        }
    }

    /// An answer that never ends, chunked without a length, is given up
    /// once past the cap, long before the client's time; one within it is
    /// read whole.
    #[tokio::test]
    async fn a_body_is_read_up_to_its_cap_and_no_further() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
                });
            }
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let res = http.get(format!("http://{at}/")).send().await.unwrap();
        // Read to its end, it would run into the client's time (`Read`).
        let read = body_capped(res, 64 * 1024).await;
        assert!(matches!(read, Err(Uncapped::TooLong)), "{read:?}");

        use wiremock::matchers::any;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_string("y".repeat(1000)))
            .mount(&server)
            .await;
        let res = http.get(server.uri()).send().await.unwrap();
        assert_eq!(body_capped(res, 1000).await.unwrap().len(), 1000);
        let res = http.get(server.uri()).send().await.unwrap();
        assert!(matches!(
            body_capped(res, 999).await,
            Err(Uncapped::TooLong)
        ));
    }
}
