//! The socket under hyper ([`Watched`]): it tells the connection's
//! [`Activity`] when bytes arrive and when a write stalls, ends a
//! connection whose answer makes no progress for `write_timeout` (hyper has
//! no write timeout: without this a peer that never reads holds its
//! connection for ever), and gives hyper's own body-less error answers (a
//! head over 16 KiB, a malformed request) a problem+json body.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use crate::http::WriteTimedOut;
use axum::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Longest a connection is kept to read what its peer still sends after
/// one of our error answers (so that closing does not reset the answer away).
pub(super) const LINGER: Duration = Duration::from_secs(1);
/// The most bytes read (and dropped) while lingering.
pub(super) const LINGER_MAX: usize = 64 * 1024;

/// What the keep-alive timer and admission read of one connection: the
/// requests in flight (a request counts until its answer's body is done),
/// when bytes last arrived or a request last ended, since when it waits
/// for a request, and since when a write has been stalled. Plain atomics,
/// in milliseconds from `opened`: a request costs two counter updates and
/// a clock read, and wakes nobody.
pub(super) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    last: AtomicU64,
    idle_since: AtomicU64,
    /// 1 + ms of the first stalled write; 0 = none.
    stalled_since: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            stalled_since: AtomicU64::new(0),
        }
    }

    fn ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    pub(super) fn touch(&self) {
        self.last.fetch_max(self.ms(), Ordering::Relaxed);
    }

    pub(super) fn last(&self) -> Instant {
        self.at(self.last.load(Ordering::Relaxed))
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Since when no request has been in flight (waiting for a head, or
    /// finishing the last bytes of an answer); `None` while one is.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        (self.in_flight() == 0).then(|| self.at(self.idle_since.load(Ordering::Relaxed)))
    }

    /// Since when the peer has not taken a byte we have to write.
    pub(super) fn stalled_since(&self) -> Option<Instant> {
        match self.stalled_since.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.at(ms - 1)),
        }
    }

    fn stall(&self) {
        self.stalled_since.store(self.ms() + 1, Ordering::Relaxed);
    }

    fn unstall(&self) {
        self.stalled_since.store(0, Ordering::Relaxed);
    }
}

/// Counts a request in flight on its connection until dropped: the
/// connection moves it into the answer's body, so it lasts until the body
/// is done (an event stream's whole life), or until hyper drops the
/// request when the client goes away.
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(super) fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.touch();
        if a.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            a.idle_since.store(a.ms(), Ordering::Relaxed);
        }
    }
}

/// Our answers in place of hyper's body-less ones, by status.
#[derive(Clone)]
pub(super) struct ErrorAnswers {
    pub bad_request: Bytes,
    pub too_large: Bytes,
}

impl ErrorAnswers {
    /// Ours for `head` when it is hyper's own error answer: a 400 or 431
    /// with `content-length: 0` (every error of the router has a body).
    fn instead_of(&self, head: &[u8]) -> Option<&Bytes> {
        let answer = if head.starts_with(b"HTTP/1.1 431 ") {
            &self.too_large
        } else if head.starts_with(b"HTTP/1.1 400 ") {
            &self.bad_request
        } else {
            return None;
        };
        let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
        head[..end + 4]
            .windows(21)
            .any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0\r\n"))
            .then_some(answer)
    }
}

/// The socket, watched.
pub(super) struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    write_timeout: Duration,
    /// Set when a write made no progress for `write_timeout`.
    timed_out: WriteTimedOut,
    answers: ErrorAnswers,
    /// Armed when a write could not go on; fires after `write_timeout`
    /// without progress.
    stall: Option<Pin<Box<Sleep>>>,
    /// Our answer in place of hyper's, still to be written.
    substitute: Option<Bytes>,
    /// After a substituted answer: read what the peer still sends before
    /// closing (at most [`LINGER_MAX`] bytes within [`LINGER`]).
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl Watched {
    pub(super) fn new(
        inner: TcpStream,
        activity: Arc<Activity>,
        write_timeout: Duration,
        timed_out: WriteTimedOut,
        answers: ErrorAnswers,
    ) -> Self {
        Watched {
            inner,
            activity,
            write_timeout,
            timed_out,
            answers,
            stall: None,
            substitute: None,
            linger: None,
        }
    }

    /// One write to the socket; a write that cannot go on for
    /// `write_timeout` fails with `TimedOut`, which ends the connection.
    fn write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let activity = &self.activity;
                let stall = self.stall.get_or_insert_with(|| {
                    activity.stall();
                    Box::pin(tokio::time::sleep(timeout))
                });
                ready!(stall.as_mut().poll(cx));
                tracing::debug!("no byte written for server.write_timeout; closing the connection");
                self.timed_out.set();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no progress writing the answer",
                )))
            }
            Poll::Ready(Ok(n)) => {
                if n > 0 && self.stall.take().is_some() {
                    self.activity.unstall();
                }
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    /// Writes what is left of our substituted answer.
    fn drive_substitute(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(mut rest) = self.substitute.take() {
            if rest.is_empty() {
                break;
            }
            match self.write_some(cx, &rest) {
                Poll::Ready(Ok(n)) => {
                    let _ = rest.split_to(n.min(rest.len()));
                    self.substitute = Some(rest);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.substitute = Some(rest);
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drive_substitute(cx))?;
        if let Some(answer) = this.answers.instead_of(buf) {
            // Hyper's answer counts as written; ours goes out instead
            // (now, or on the flush and shutdown that follow).
            this.substitute = Some(answer.clone());
            this.linger = Some((Box::pin(tokio::time::sleep(LINGER)), 0));
            if let Poll::Ready(Err(e)) = this.drive_substitute(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        this.write_some(cx, buf)
    }

    /// Hyper writes one flat buffer (so that an error answer is recognised
    /// whole); the vectored default writes the first slice.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drive_substitute(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    /// Closes our side; after a substituted error answer, first reads what
    /// the peer still sends (bounded), so that closing with unread bytes
    /// does not reset the answer before the peer has read it.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drive_substitute(cx))?;
        ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
        let Some((deadline, drained)) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut sink = [0u8; 4096];
        while *drained < LINGER_MAX && deadline.as_mut().poll(cx).is_pending() {
            let mut buf = ReadBuf::new(&mut sink);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => *drained += buf.filled().len(),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => break,
            }
        }
        this.linger = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> ErrorAnswers {
        ErrorAnswers {
            bad_request: Bytes::from_static(b"ours 400"),
            too_large: Bytes::from_static(b"ours 431"),
        }
    }

    #[test]
    fn only_hypers_bodiless_error_answers_are_replaced() {
        let a = answers();
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(a.instead_of(hyper_431).unwrap(), "ours 431");
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(a.instead_of(hyper_400).unwrap(), "ours 400");
        // The router's own answers have bodies, whatever their status.
        let ours = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/problem+json\r\ncontent-length: 120\r\n\r\n{}";
        assert!(a.instead_of(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(a.instead_of(ok).is_none());
        // A body that merely mentions the header does not count.
        let tricky =
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 21\r\n\r\n\r\ncontent-length: 0\r\n";
        assert!(a.instead_of(tricky).is_none());
    }
}
