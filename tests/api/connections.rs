//! Connections against clients that hold them: peers that never read their
//! answers, idle and trickling connections crowding the cap, one key
//! taking every slot with event streams, oversized or ambiguous request
//! heads, and the listening socket after shutdown. Raw HTTP/1.1 over TCP;
//! every bound is generous (a busy machine must not make them flake) and
//! says "it ended", never "how fast".
use std::io::ErrorKind;
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep, timeout, Instant};

use crate::helpers::*;

fn server(lines: &str) -> Setup {
    Setup {
        server: lines.into(),
        ..Setup::default()
    }
}

fn addr(app: &TestApp) -> std::net::SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(addr(app)).await.unwrap()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// A peer with a small receive window that pipelines `n` requests and
/// never reads an answer.
async fn non_reader(app: &TestApp, n: usize) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr(app)).await.unwrap();
    // The server stops reading once it cannot write: never wait for that.
    let _ = timeout(Duration::from_secs(3), s.write_all(&HEALTHZ.repeat(n))).await;
    s
}

/// Whether the server closed `s` within `within`, seen without reading:
/// a write to a connection the server has closed fails.
async fn closed_within(s: &TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match s.try_write(b"\r\n") {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return true,
            Ok(_) => {}
        }
        sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The status line and body of one request on a fresh connection that
/// closes after it; `None` when nothing came back within 20 s.
async fn fresh(app: &TestApp, request: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = connect(app).await;
    // A refused head may be answered before it is all sent.
    let _ = s.write_all(request).await;
    let mut raw = Vec::new();
    let _ = timeout(Duration::from_secs(20), s.read_to_end(&mut raw)).await;
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = String::from_utf8_lossy(&raw[..head_end])
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, raw[head_end + 4..].to_vec()))
}

const HEALTHZ_CLOSE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// A normal client's status for `GET /healthz` (0: no answer).
async fn healthz(app: &TestApp) -> u16 {
    fresh(app, HEALTHZ_CLOSE).await.map_or(0, |(s, _)| s)
}

/// Problem `code` of a body.
fn code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["code"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_closed_after_the_write_timeout() {
    let app = spawn_with(
        Backend::Memory,
        server(
            "write_timeout = \"1s\"\nheader_read_timeout = \"60s\"\nkeep_alive_timeout = \"60s\"",
        ),
    )
    .await
    .unwrap();
    let holders = join_all((0..3).map(|_| non_reader(&app, 3000))).await;
    for s in &holders {
        // Without a write timeout it stays open as long as the peer likes.
        assert!(
            closed_within(s, Duration::from_secs(30)).await,
            "a peer that never reads still holds its connection"
        );
    }
    assert_eq!(healthz(&app).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_never_read_do_not_keep_a_normal_client_out() {
    let app = spawn_with(
        Backend::Memory,
        server(
            "max_connections = 4\nwrite_timeout = \"2s\"\n\
             header_read_timeout = \"60s\"\nkeep_alive_timeout = \"60s\"",
        ),
    )
    .await
    .unwrap();
    // More of them than the cap, and again as soon as they are closed.
    let mut holders = join_all((0..6).map(|_| non_reader(&app, 3000))).await;
    sleep(Duration::from_millis(1200)).await;
    let mut served = 0;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let status = healthz(&app).await;
        seen.push(status);
        if status == 200 {
            served += 1;
        }
        holders.push(non_reader(&app, 3000).await);
        // Past the moment a stalled write counts as waiting on its peer.
        sleep(Duration::from_millis(1200)).await;
    }
    assert!(
        served >= 4,
        "a normal client got in {served} times of 5: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_make_room_for_requests() {
    let app = spawn_with(
        Backend::Memory,
        server("max_connections = 8\nheader_read_timeout = \"60s\"\nkeep_alive_timeout = \"60s\""),
    )
    .await
    .unwrap();
    let mut crowd = Vec::new();
    for i in 0..16 {
        let mut s = connect(&app).await;
        if i % 2 == 0 {
            // Trickling: a head that never ends.
            s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
                .await
                .unwrap();
        }
        crowd.push(s);
        sleep(Duration::from_millis(20)).await;
    }
    // Every request of a normal client is served: an idle connection
    // makes room each time (the cap was full before each one).
    for _ in 0..10 {
        assert_eq!(healthz(&app).await, 200, "crowded out");
        crowd.push(connect(&app).await);
    }
    // The oldest of the crowd were the ones closed.
    assert!(closed_within(&crowd[0], Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_one_peer_over_its_cap_are_503_overloaded() {
    let app = spawn_with(
        Backend::Memory,
        server("max_connections_per_ip = 2\nheader_read_timeout = \"60s\"\nkeep_alive_timeout = \"60s\""),
    )
    .await
    .unwrap();
    let held = [connect(&app).await, connect(&app).await];
    sleep(Duration::from_millis(200)).await;
    let (status, body) = fresh(&app, HEALTHZ_CLOSE).await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(code(&body), "overloaded");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    while healthz(&app).await != 200 {
        assert!(Instant::now() < deadline, "never served again");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Opens `GET /v1/events` as `key`; the status and the open connection.
async fn open_stream(app: &TestApp, key: &str) -> (u16, Vec<u8>, TcpStream) {
    let mut s = connect(app).await;
    let req = format!("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before an answer");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status != 200 {
        assert!(head.contains("\r\nretry-after: "), "{head}");
        // The rest of a problem body.
        let _ = timeout(Duration::from_secs(5), async {
            while !raw.ends_with(b"}") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
    }
    (status, raw[head_end + 4..].to_vec(), s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_key_and_per_team() {
    let app = spawn_with(
        Backend::Memory,
        Setup {
            server: "max_streams_per_key = 2\nmax_streams_per_team = 3".into(),
            sse_keep_alive: Some(Duration::from_millis(200)),
            ..Setup::default()
        },
    )
    .await
    .unwrap();
    let agent = app.keys.agent.clone();
    let admin = app.keys.admin.clone();
    let (s1, _, a1) = open_stream(&app, &agent).await;
    let (s2, _, _a2) = open_stream(&app, &agent).await;
    assert_eq!((s1, s2), (200, 200));
    let (status, body, _) = open_stream(&app, &agent).await;
    assert_eq!((status, code(&body).as_str()), (429, "rate_limited"));
    // Another key of the team: one more, up to the team's cap.
    let (status, _, _b1) = open_stream(&app, &admin).await;
    assert_eq!(status, 200);
    let (status, body, _) = open_stream(&app, &admin).await;
    assert_eq!((status, code(&body).as_str()), (429, "rate_limited"));
    // Another team is not held back by this one.
    let (status, _, _g) = open_stream(&app, &app.keys.globex_agent).await;
    assert_eq!(status, 200);
    // A stream that ends gives its place back.
    drop(a1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, s) = open_stream(&app, &agent).await;
        if status == 200 {
            drop(s);
            break;
        }
        assert!(Instant::now() < deadline, "the place never came back");
        sleep(Duration::from_millis(200)).await;
    }
    // Requests are answered as before.
    assert_eq!(healthz(&app).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_never_take_more_than_half_the_connections() {
    let app = spawn_with(Backend::Memory, server("max_connections = 6"))
        .await
        .unwrap();
    let agent = app.keys.agent.clone();
    let mut open = Vec::new();
    for _ in 0..3 {
        let (status, _, s) = open_stream(&app, &agent).await;
        assert_eq!(status, 200);
        open.push(s);
    }
    let (status, body, _) = open_stream(&app, &app.keys.globex_agent).await;
    assert_eq!((status, code(&body).as_str()), (503, "overloaded"));
    assert_eq!(healthz(&app).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_nobody_reads_is_closed_after_the_write_timeout() {
    let app = spawn_with(Backend::Memory, server("write_timeout = \"1s\""))
        .await
        .unwrap();
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr(&app)).await.unwrap();
    let req = format!(
        "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        app.keys.agent
    );
    s.write_all(req.as_bytes()).await.unwrap();
    sleep(Duration::from_millis(300)).await;
    let dropped = "chatgate_event_streams_dropped_total";
    let before = metric(&app, dropped).await;
    // Events the reader never takes: far more than the buffers between.
    for _ in 0..25 {
        join_all((0..20).map(|_| app.new_interaction())).await;
    }
    assert!(
        closed_within(&s, Duration::from_secs(30)).await,
        "a stream nobody reads is still open"
    );
    // Counted like a stream whose reader fell behind (docs/operations.md#metrics).
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&app, dropped).await < before + 1.0 && Instant::now() < deadline {
        sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metric(&app, dropped).await >= before + 1.0,
        "{dropped} counts it"
    );
}

/// The value of an unlabelled metric on `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_16_kib_or_with_two_hosts_is_431() {
    let app = spawn_app(Backend::Memory).await.unwrap();
    for size in [17 * 1024, 200 * 1024] {
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(size)
        );
        let (status, body) = fresh(&app, req.as_bytes()).await.expect("an answer");
        assert_eq!(status, 431, "{size}");
        assert_eq!(code(&body), "invalid_request", "{size}");
    }
    let (status, body) = fresh(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!((status, code(&body).as_str()), (431, "invalid_request"));
    // Just under the cap is served.
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    assert_eq!(fresh(&app, req.as_bytes()).await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_drain_new_connections_are_refused_at_once() {
    let app = spawn_app(Backend::Memory).await.unwrap();
    // A request in flight for a while: its delivery answers after 4 s.
    app.chat.reset().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(4)))
        .mount(&app.chat)
        .await;
    let id = app.new_interaction().await;
    let request = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
        )
        .json(&serde_json::json!({"method": "otp"}));
    let in_flight = tokio::spawn(request.send());
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.chat_messages().await.is_empty() {
        assert!(Instant::now() < deadline, "never delivered");
        sleep(Duration::from_millis(20)).await;
    }
    let at = addr(&app);
    let stopping = tokio::spawn(app.stop());
    // Refused while the request in flight is still being finished.
    let deadline = Instant::now() + Duration::from_millis(2500);
    while TcpStream::connect(at).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after the drain");
        sleep(Duration::from_millis(50)).await;
    }
    assert!(!in_flight.is_finished());
    assert_eq!(in_flight.await.unwrap().unwrap().status(), 201);
    timeout(Duration::from_secs(30), stopping)
        .await
        .expect("the server stops")
        .unwrap();
}
