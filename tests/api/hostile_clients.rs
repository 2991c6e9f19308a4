//! Hostile clients (docs/operations.md#hostile-clients): header-read and
//! keep-alive timeouts, the connection cap, slow bodies (408), and the
//! protective headers of HTML and sensitive answers. Connection-level tests speak
//! raw HTTP/1.1 over `TcpStream`; every bound is generous (a busy machine
//! must not make them flake) and only says "it ended", never "how fast".
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Runs an async test body on both stores with a [`Setup`].
macro_rules! both_stores_with {
    ($name:ident, $setup:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some(app) = spawn_with(Backend::Memory, $setup).await {
                    ($body)(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some(app) = spawn_with(Backend::Redis, $setup).await {
                    ($body)(app).await;
                }
            }
        }
    };
}

fn server(lines: &str) -> Setup {
    Setup {
        server: lines.into(),
        ..Setup::default()
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Everything the server sends until it closes the connection, or `None`
/// if it is still open after `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(out)
}

/// One HTTP/1.1 answer: status, lower-cased header lines, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn parse(raw: &[u8]) -> Answer {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Answer {
            status: status.parse().unwrap(),
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Reads exactly one answer with a `content-length` from a kept-alive connection.
async fn read_answer(s: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before a full answer");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let a = Answer::parse(&raw);
            let len: usize = a.header("content-length").unwrap().parse().unwrap();
            if raw.len() >= end + 4 + len {
                return a;
            }
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

both_stores_with!(
    partial_headers_and_silence_are_cut_after_the_header_read_timeout,
    server("header_read_timeout = \"1s\"\nkeep_alive_timeout = \"1s\""),
    |app: TestApp| async move {
        let mut partial = connect(&app).await;
        partial
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut silent = connect(&app).await;
        // Without the timeout both would stay open for minutes.
        assert!(
            read_until_closed(&mut partial, Duration::from_secs(20))
                .await
                .is_some(),
            "partial head still open"
        );
        assert!(
            read_until_closed(&mut silent, Duration::from_secs(20))
                .await
                .is_some(),
            "silent connection still open"
        );
        // The server itself is fine.
        let res = app
            .request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
);

both_stores_with!(
    an_idle_kept_alive_connection_is_closed,
    // The header-read timeout is long: the close comes from keep_alive_timeout.
    server("header_read_timeout = \"60s\"\nkeep_alive_timeout = \"1s\""),
    |app: TestApp| async move {
        let mut s = connect(&app).await;
        s.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_answer(&mut s).await.status, 200);
        // Kept alive: a second request on the same connection is served.
        s.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_answer(&mut s).await.status, 200);
        let rest = read_until_closed(&mut s, Duration::from_secs(30)).await;
        assert_eq!(rest, Some(vec![]), "idle connection not closed");
    }
);

both_stores_with!(
    over_the_connection_cap_the_answer_is_503_and_serving_goes_on,
    server("max_connections = 2\nheader_read_timeout = \"60s\"\nkeep_alive_timeout = \"60s\"\nbody_read_timeout = \"20s\""),
    |app: TestApp| async move {
        // Two requests in flight (their bodies still coming) fill the cap:
        // neither is idle, so neither makes room.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = connect(&app).await;
            s.write_all(
                b"POST /v1/login/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
            )
            .await
            .unwrap();
            held.push(s);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..2 {
            let mut extra = connect(&app).await;
            extra.write_all(HEALTHZ).await.unwrap();
            let raw = read_until_closed(&mut extra, Duration::from_secs(20))
                .await
                .expect("the connection over the cap is closed");
            let a = Answer::parse(&raw);
            assert_eq!(a.status, 503);
            assert!(a
                .header("content-type")
                .unwrap()
                .starts_with("application/problem+json"));
            assert!(a.header("retry-after").is_some());
            let body = a.json();
            assert_eq!(body["code"], "overloaded", "{body}");
            assert_eq!(body["status"], 503);
            for key in ["type", "title", "detail"] {
                assert!(body[key].is_string(), "{body}");
            }
        }
        // Once they go, new connections are served again.
        drop(held);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let res = app.request(Method::GET, "/healthz", None).send().await;
            if res.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never served again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
);

both_stores_with!(
    a_body_that_does_not_arrive_is_408_request_timeout,
    server("body_read_timeout = \"1s\""),
    |app: TestApp| async move {
        let mut s = connect(&app).await;
        s.write_all(
            b"POST /v1/login/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"token\":\"",
        )
        .await
        .unwrap();
        let raw = read_until_closed(&mut s, Duration::from_secs(25))
            .await
            .expect("answered and closed");
        let a = Answer::parse(&raw);
        assert_eq!(a.status, 408);
        assert!(a
            .header("content-type")
            .unwrap()
            .starts_with("application/problem+json"));
        let body = a.json();
        assert_eq!(body["code"], "request_timeout", "{body}");
        assert_eq!(body["status"], 408);
    }
);

fn assert_sensitive(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
}

both_stores!(
    html_pages_and_api_answers_carry_protective_headers,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let path = crate::pages::short_path(&link);
        app.advance(601);
        let res = app
            .request(Method::GET, &path, None)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 410);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_sensitive(&res, "410 page");
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");

        let res = app
            .request(Method::GET, "/l/neverissued0000000000000000", None)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_sensitive(&res, "404 short link");
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["x-frame-options"], "DENY", "a page");

        let res = app
            .request(
                Method::GET,
                &format!("/v1/interactions/{id}"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_sensitive(&res, "an interaction");
    }
);

both_stores_with!(
    the_code_reveal_answer_is_not_stored,
    Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let cid = app.agent_challenge(&id).await;
        let res = app
            .request(
                Method::GET,
                &format!("/v1/interactions/{id}/challenges/{cid}/code"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_sensitive(&res, "code reveal");
    }
);

both_stores_with!(
    a_head_on_its_way_is_not_cut_by_the_keep_alive_timeout,
    // Bytes keep arriving, 4 s in all, with keep_alive_timeout 3 s: the
    // head is governed by header_read_timeout alone.
    server("header_read_timeout = \"60s\"\nkeep_alive_timeout = \"3s\""),
    |app: TestApp| async move {
        let mut s = connect(&app).await;
        for chunk in HEALTHZ.chunks(2) {
            s.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(read_answer(&mut s).await.status, 200);
    }
);

both_stores_with!(
    a_request_slower_than_the_keep_alive_timeout_is_answered_then_the_connection_closes,
    // The keep-alive timer must not count a request in flight as idleness,
    // and must close the connection once it is idle after it.
    server("header_read_timeout = \"60s\"\nkeep_alive_timeout = \"1s\""),
    |app: TestApp| async move {
        app.chat.reset().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_delay(Duration::from_millis(2500)),
            )
            .mount(&app.chat)
            .await;
        let id = app.new_interaction().await;
        let body = r#"{"method":"otp"}"#;
        let head = format!(
            "POST /v1/interactions/{id}/challenges HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            app.keys.bot,
            body.len()
        );
        let mut s = connect(&app).await;
        s.write_all(head.as_bytes()).await.unwrap();
        assert_eq!(read_answer(&mut s).await.status, 201, "cut while in flight");
        // Still kept alive: the slow request was not taken for idleness.
        s.write_all(HEALTHZ).await.unwrap();
        assert_eq!(
            read_answer(&mut s).await.status,
            200,
            "closed after a slow request"
        );
        let rest = read_until_closed(&mut s, Duration::from_secs(30)).await;
        assert_eq!(
            rest,
            Some(vec![]),
            "idle connection not closed after the request"
        );
    }
);

both_stores_with!(
    shutdown_finishes_requests_in_flight_and_closes_idle_connections,
    server("header_read_timeout = \"60s\"\nkeep_alive_timeout = \"60s\""),
    |app: TestApp| async move {
        let mut idle = connect(&app).await;
        idle.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_answer(&mut idle).await.status, 200);

        // A request held in flight: its OTP delivery answers after 2 s.
        app.chat.reset().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
            .mount(&app.chat)
            .await;
        let id = app.new_interaction().await;
        let request = app
            .request(
                Method::POST,
                &format!("/v1/interactions/{id}/challenges"),
                Some(&app.keys.bot),
            )
            .json(&json!({"method": "otp"}));
        let in_flight = tokio::spawn(request.send());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while app.chat_messages().await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let addr = app.base.trim_start_matches("http://").to_string();
        let stopping = tokio::spawn(app.stop());
        assert!(
            read_until_closed(&mut idle, Duration::from_secs(20))
                .await
                .is_some(),
            "an idle connection keeps the server from stopping"
        );
        let res = in_flight.await.unwrap().unwrap();
        assert_eq!(res.status(), 201, "the request in flight was cut");
        tokio::time::timeout(Duration::from_secs(20), stopping)
            .await
            .expect("the server stops")
            .unwrap();
        assert!(TcpStream::connect(&addr).await.is_err(), "still accepting");
    }
);
