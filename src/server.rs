//! The connection loop in front of the router: HTTP/1.1 on hyper, with the
//! limits a public edge needs against hostile clients (`[server]` in the
//! system file, [`ConnectionLimits`]):
//!
//! - a request head must arrive within `header_read_timeout`, counted from
//!   the moment the server waits for it — a new connection, or the next
//!   request on a kept-alive one (hyper's own timer);
//! - a connection on which nothing arrives for `keep_alive_timeout` while no
//!   request is in flight is closed (an idle kept-alive one, or a new one
//!   that sends nothing);
//! - at most `max_connections` are served at once; one more is still
//!   accepted, answered 503 `overloaded` at once and closed (at most
//!   [`SHED_SLOTS`] such answers at a time, each within [`SHED_TIMEOUT`];
//!   past that it is closed unanswered), so accepting never stops silently;
//! - an accept error such as `EMFILE` is logged once and retried after a
//!   short pause, never in a busy loop.
//!
//! Shutdown stops accepting, closes idle connections and lets requests in
//! flight finish; `serve` returns when the last connection is gone.
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::ConnectionLimits;

/// Connections being answered 503 at once; past this they are closed unanswered.
const SHED_SLOTS: usize = 64;
/// Longest a connection over the cap is kept (503 written, request drained).
const SHED_TIMEOUT: Duration = Duration::from_secs(1);
/// The most bytes read from a connection over the cap before closing it.
const SHED_DRAIN_MAX: usize = 64 * 1024;
/// Pause after an accept error that is not the peer's (`EMFILE`, `ENFILE`, …).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let shed_slots = Arc::new(Semaphore::new(SHED_SLOTS));
    let overloaded = overloaded_answer().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut accept_failing = false;

    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
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
        let _ = stream.set_nodelay(true);
        if let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            tasks.spawn(connection(
                stream,
                router.clone(),
                limits,
                stop_rx.clone(),
                permit,
            ));
        } else {
            metrics::counter!("chatgate_connections_shed_total").increment(1);
            if let Ok(permit) = Arc::clone(&shed_slots).try_acquire_owned() {
                tasks.spawn(shed(stream, overloaded.clone(), permit));
            }
            // else: dropped here, closed unanswered; the count above shows it.
        }
    }

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

/// One connection within the cap; `_permit` is its slot.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _open = OpenGauge::new();
    let activity = Arc::new(Activity::new());
    let io = Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    };
    let service = hyper::service::service_fn({
        let activity = Arc::clone(&activity);
        move |req: hyper::Request<Incoming>| {
            let guard = InFlight::start(Arc::clone(&activity));
            let router = router.clone();
            async move {
                let res = router.oneshot(req).await;
                drop(guard);
                res
            }
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(limits.keep_alive_timeout.is_some());
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let keep_alive = limits.keep_alive_timeout;
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stop.wait_for(|stop| *stop), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = idle_for(&activity, keep_alive), if !closing && keep_alive.is_some() => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What the keep-alive timer reads on one connection: the requests in
/// flight, and when bytes last arrived or a request last ended. Plain
/// atomics: a request costs two counter updates and a clock read, and wakes
/// nobody (the timer looks when its time is up).
struct Activity {
    opened: tokio::time::Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the last activity.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: tokio::time::Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.opened + Duration::from_millis(self.last.load(Ordering::Relaxed))
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
        if activity.in_flight.load(Ordering::Relaxed) > 0 {
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

/// Counts a request in flight on its connection until dropped (also when
/// the client goes away and hyper drops the request).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, telling the keep-alive timer when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `chatgate_connections_open` while a connection within the cap lives.
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

/// The bytes of the answer to a connection over the cap (HTTP/1.1, closing).
async fn overloaded_answer() -> Bytes {
    let res = crate::http::overloaded();
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

/// A connection over the cap: answer 503 at once (an HTTP/1.1 server may
/// answer before the request is complete), close our side, and read what
/// the client still sends until it closes, so that closing does not reset
/// the answer away; all within [`SHED_TIMEOUT`].
async fn shed(mut stream: TcpStream, answer: Bytes, _permit: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(SHED_TIMEOUT, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < SHED_DRAIN_MAX {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}
