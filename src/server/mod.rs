//! The connection loop in front of the router: HTTP/1.1 on hyper, with the
//! limits a public edge needs against hostile clients (`[server]` in the
//! system file, [`ConnectionLimits`]):
//!
//! - a request head must arrive within `header_read_timeout`, counted from
//!   the moment the server waits for it — a new connection, or the next
//!   request on a kept-alive one (hyper's own timer); a head over
//!   [`MAX_HEAD`] is 431 (hyper reads no further: [`READ_BUFFER`] also
//!   bounds what is read ahead of pipelined requests);
//! - a connection on which nothing arrives for `keep_alive_timeout` while no
//!   request is in flight is closed (an idle kept-alive one, or a new one
//!   that sends nothing);
//! - a connection that cannot write a byte of its answer for
//!   `write_timeout` is closed (a peer that never reads, an event stream
//!   nobody reads: `socket.rs`);
//! - at most `max_connections` are served at once; when they are, the one
//!   waiting on its peer the longest makes room for a new one (`admission.rs`),
//!   and when all are at work the new one is still accepted, answered 503
//!   `overloaded` at once and closed (at most [`SHED_SLOTS`] such answers at
//!   a time, each within [`SHED_TIMEOUT`]; past that it is closed
//!   unanswered), so accepting never stops silently; likewise over
//!   `max_connections_per_ip`;
//! - an accept error such as `EMFILE` is logged once and retried after a
//!   short pause, never in a busy loop.
//!
//! Shutdown closes the listening socket (new connections are refused at
//! once), closes idle connections, lets requests in flight finish, and
//! closes what is still open after [`SHUTDOWN_GRACE`]; `serve` returns when
//! the last connection is gone.
mod admission;
mod socket;

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use self::admission::{waiting_since, Admission, Refused, Slot};
use self::socket::{Activity, ErrorAnswers, InFlight, Watched};
use crate::config::ConnectionLimits;
use crate::http::refused_head;
use crate::http::WriteTimedOut;

/// The longest request head (request line and headers); over it: 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// Hyper's read buffer: what may be read ahead of the request being
/// answered (pipelined requests), and the head's upper bound.
const READ_BUFFER: usize = 2 * MAX_HEAD;
/// The kernel's send buffer of a connection: the most an answer (or an
/// event stream) may have waiting for a peer that does not read, before
/// `write_timeout` counts (the kernel's own default grows to megabytes).
const SEND_BUFFER: usize = 64 * 1024;
/// Connections being answered 503 at once; past this they are closed unanswered.
const SHED_SLOTS: usize = 64;
/// Longest a connection over the cap is kept (503 written, request drained).
const SHED_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after an accept error that is not the peer's (`EMFILE`, `ENFILE`, …).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Once a connection is being closed (shutdown, or idle), how long what it
/// still has in flight may take before it is closed anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The answers written outside the router, built once.
#[derive(Clone)]
struct Answers {
    overloaded: Bytes,
    errors: ErrorAnswers,
}

impl Answers {
    /// Renders the 503 `overloaded` answer and the answers to a malformed
    /// or too large request head.
    async fn build() -> Self {
        Answers {
            overloaded: raw_answer(crate::http::overloaded()).await,
            errors: ErrorAnswers {
                bad_request: raw_answer(refused_head(
                    StatusCode::BAD_REQUEST,
                    "the request is not well-formed HTTP/1.1",
                ))
                .await,
                too_large: raw_answer(refused_head(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "the request head (line and headers) is over 16 KiB, or has over 100 headers",
                ))
                .await,
            },
        }
    }
}

/// The router in force. A reload of the configuration replaces it
/// (docs/operations.md#reloading-the-configuration); each request is
/// answered whole by the one in force when it arrived, also on a
/// connection opened before.
pub type Routes = Arc<arc_swap::ArcSwap<Router>>;

/// Serves `routes` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_ip);
    let shed_slots = Arc::new(Semaphore::new(SHED_SLOTS));
    let answers = Answers::build().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut accept_failing = false;

    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_peer_error(&e) => continue,
                Err(e) => {
                    metrics::counter!("chatgate_accept_errors_total").increment(1);
                    if !accept_failing {
                        tracing::error!(error = %e, "accept failed; retrying (is `ulimit -n` too low for server.max_connections?)");
                        accept_failing = true;
                    }
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        if accept_failing {
            tracing::info!("accepting connections again");
            accept_failing = false;
        }
        match admission.admit(peer.ip()) {
            Ok(slot) => {
                tasks.spawn(connection(
                    (stream, peer),
                    Arc::clone(&routes),
                    limits,
                    answers.errors.clone(),
                    stop_rx.clone(),
                    slot,
                ));
            }
            Err(why) => {
                metrics::counter!("chatgate_connections_shed_total").increment(1);
                if why == Refused::PeerFull {
                    tracing::debug!(peer = %peer.ip(), "server.max_connections_per_ip reached");
                }
                if let Ok(permit) = Arc::clone(&shed_slots).try_acquire_owned() {
                    tasks.spawn(shed(stream, answers.overloaded.clone(), permit));
                }
                // else: dropped here, closed unanswered; the count above shows it.
            }
        }
    }

    // New connections are refused from now on, not left in the backlog.
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Errors of one peer (it went away before we took it): just go on.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One admitted connection; `slot` is its place within the cap.
async fn connection(
    (stream, peer): (TcpStream, std::net::SocketAddr),
    routes: Routes,
    limits: ConnectionLimits,
    errors: ErrorAnswers,
    mut stop: watch::Receiver<bool>,
    slot: Slot,
) {
    let _open = OpenGauge::new();
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
    let activity = Arc::clone(&slot.activity);
    let timed_out = WriteTimedOut::default();
    let io = Watched::new(
        stream,
        Arc::clone(&activity),
        limits.write_timeout,
        timed_out.clone(),
        errors,
    );
    let service = hyper::service::service_fn({
        let activity = Arc::clone(&activity);
        move |req| answer(req, &routes, peer, &timed_out, &activity)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEAD)
        .max_buf_size(READ_BUFFER)
        .keep_alive(limits.keep_alive_timeout.is_some());
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let keep_alive = limits.keep_alive_timeout;
    let mut closing = false;
    // Armed when closing starts.
    let mut grace = pin!(tokio::time::sleep(SHUTDOWN_GRACE));
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = slot.evicted.notified() => {
                // Unless a request arrived since it was chosen.
                if waiting_since(&activity, tokio::time::Instant::now()).is_some() {
                    tracing::debug!("closed to make room for a new connection");
                    break;
                }
            }
            _ = stop.wait_for(|stop| *stop), if !closing => {
                closing = true;
                grace.as_mut().reset(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                conn.as_mut().graceful_shutdown();
            }
            () = idle_for(&activity, keep_alive), if !closing && keep_alive.is_some() => {
                closing = true;
                grace.as_mut().reset(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                conn.as_mut().graceful_shutdown();
            }
            () = &mut grace, if closing => {
                tracing::debug!("still busy after the shutdown grace; closing");
                break;
            }
        }
    }
}

/// One request of a connection, answered whole by the router in force when
/// it arrived; it counts as in flight until its answer's body is done.
fn answer(
    mut req: hyper::Request<Incoming>,
    routes: &Routes,
    peer: std::net::SocketAddr,
    timed_out: &WriteTimedOut,
    activity: &Arc<Activity>,
) -> impl Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static {
    req.extensions_mut().insert(timed_out.clone());
    // The peer's address, for the audit trail's `actor.ip`.
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let guard = InFlight::start(Arc::clone(activity));
    let router = Router::clone(&routes.load());
    async move {
        let res = router.oneshot(req).await;
        // The request counts until its answer's body is done.
        res.map(|r| {
            r.map(|body| {
                Body::new(Guarded {
                    body,
                    _guard: guard,
                })
            })
        })
    }
}

/// An answer's body, holding its request's [`InFlight`] until it is done.
struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Resolves once, with no request in flight, nothing has arrived for
/// `limit` (never if `None`). A request head on its way (bytes arriving)
/// restarts the wait; how long it may take is `header_read_timeout`'s
/// business. While a request is in flight the timer looks again every
/// `min(limit, 1 s)`; once it ends, the wait is `limit` from its end.
async fn idle_for(activity: &Activity, limit: Option<Duration>) {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    let step = limit.min(Duration::from_secs(1));
    loop {
        tokio::time::sleep_until(activity.last() + limit).await;
        if activity.in_flight() > 0 {
            tokio::time::sleep(step).await;
            continue;
        }
        // Millisecond granularity: done when the last activity is at
        // least `limit` ago.
        if activity.last() + limit <= tokio::time::Instant::now() {
            return;
        }
    }
}

/// `chatgate_connections_open` while an admitted connection lives.
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics::gauge!("chatgate_connections_open").increment(1.0);
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("chatgate_connections_open").decrement(1.0);
    }
}

/// The bytes of an answer written outside hyper (HTTP/1.1, closing).
async fn raw_answer(res: Response) -> Bytes {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        res.status().as_str(),
        res.status().canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in res.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .unwrap_or_default();
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// A connection refused a slot: answer 503 at once (an HTTP/1.1 server may
/// answer before the request is complete), close our side, and read what
/// the client still sends until it closes, so that closing does not reset
/// the answer away; all within [`SHED_TIMEOUT`].
async fn shed(mut stream: TcpStream, answer: Bytes, _permit: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(SHED_TIMEOUT, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < socket::LINGER_MAX {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}
