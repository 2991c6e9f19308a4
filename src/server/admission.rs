//! Who holds the `server.max_connections` slots. A new connection takes a
//! free slot; when there is none, the connection that has waited on its
//! peer the longest makes room for it: one waiting for a request head (a
//! new or kept-alive connection that sends nothing, or a head trickling
//! in) or one whose peer has not taken a byte of its answer for
//! [`STALL_MIN`]. Connections at work for their peer (a request being
//! handled, an answer or event stream being written) keep their slot; when
//! every slot is such, the new connection is refused (503 `overloaded`).
//! So an attacker's idle or slow connections cannot crowd out clients that
//! send a request at once. `server.max_connections_per_ip` (optional)
//! refuses a peer address over its own cap.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::socket::Activity;

/// A write must have been stalled this long before its connection may be
/// closed to make room (a short stall is ordinary flow control).
pub(super) const STALL_MIN: Duration = Duration::from_secs(1);
/// Connections told to close whose slots are already handed on; past this
/// a new connection over the cap is refused (bounds sockets over the cap).
const CLOSING_MAX: usize = 64;

pub(super) struct Admission {
    max: usize,
    per_ip: Option<usize>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    /// Entries told to close, still open.
    closing: usize,
    per_peer: HashMap<IpAddr, usize>,
}

struct Entry {
    activity: Arc<Activity>,
    evict: Arc<Notify>,
    peer: IpAddr,
    evicted: bool,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Every slot is at work for its peer.
    Full,
    /// Its peer address holds `max_connections_per_ip` already.
    PeerFull,
}

/// A connection's slot; given back when dropped. `evicted` is notified
/// when the connection must close to make room.
pub(super) struct Slot {
    admission: Arc<Admission>,
    id: u64,
    pub activity: Arc<Activity>,
    pub evicted: Arc<Notify>,
}

impl Admission {
    pub(super) fn new(max: usize, per_ip: Option<usize>) -> Arc<Self> {
        Arc::new(Admission {
            max,
            per_ip,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain counts: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection from `peer`, making room if needed.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let mut inner = self.lock();
        if let Some(cap) = self.per_ip {
            if inner.per_peer.get(&peer).copied().unwrap_or(0) >= cap {
                return Err(Refused::PeerFull);
            }
        }
        if inner.conns.len() - inner.closing >= self.max {
            if inner.closing >= CLOSING_MAX {
                return Err(Refused::Full);
            }
            let victim = longest_waiting(&inner.conns, Instant::now()).ok_or(Refused::Full)?;
            if let Some(entry) = inner.conns.get_mut(&victim) {
                entry.evicted = true;
                entry.evict.notify_one();
            }
            inner.closing += 1;
            metrics::counter!("chatgate_connections_shed_total").increment(1);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let activity = Arc::new(Activity::new());
        let evicted = Arc::new(Notify::new());
        inner.conns.insert(
            id,
            Entry {
                activity: Arc::clone(&activity),
                evict: Arc::clone(&evicted),
                peer,
                evicted: false,
            },
        );
        *inner.per_peer.entry(peer).or_insert(0) += 1;
        Ok(Slot {
            admission: Arc::clone(self),
            id,
            activity,
            evicted,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.admission.lock();
        let Some(entry) = inner.conns.remove(&self.id) else {
            return;
        };
        if entry.evicted {
            inner.closing -= 1;
        }
        if let Some(n) = inner.per_peer.get_mut(&entry.peer) {
            *n -= 1;
            if *n == 0 {
                inner.per_peer.remove(&entry.peer);
            }
        }
    }
}

/// The connection that may close to make room: the one waiting on its
/// peer the longest (for a request head, or to take a stalled answer);
/// `None` when every connection is at work.
fn longest_waiting(conns: &HashMap<u64, Entry>, now: Instant) -> Option<u64> {
    conns
        .iter()
        .filter(|(_, e)| !e.evicted)
        .filter_map(|(id, e)| waiting_since(&e.activity, now).map(|since| (since, *id)))
        .min()
        .map(|(_, id)| id)
}

/// Since when `a` has waited on its peer, if it does.
pub(super) fn waiting_since(a: &Activity, now: Instant) -> Option<Instant> {
    match a.stalled_since() {
        Some(since) if since + STALL_MIN <= now => Some(since),
        // Writing on (an answer's last bytes, or flow control).
        Some(_) => None,
        None => a.idle_since(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn the_longest_idle_connection_makes_room_and_busy_ones_keep_theirs() {
        let adm = Admission::new(2, None);
        let old = adm.admit(PEER).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let newer = adm.admit(PEER).unwrap();
        // Full: the oldest idle one is told to close, the new one is in.
        let third = adm.admit(PEER).unwrap();
        assert!(tokio::time::timeout(Duration::ZERO, old.evicted.notified())
            .await
            .is_ok());
        drop(old);
        // A connection with a request in flight is never the one.
        let _busy = (
            super::super::socket::InFlight::start(Arc::clone(&newer.activity)),
            super::super::socket::InFlight::start(Arc::clone(&third.activity)),
        );
        assert_eq!(adm.admit(PEER).err(), Some(Refused::Full));
    }

    #[tokio::test]
    async fn a_peer_over_its_own_cap_is_refused() {
        let adm = Admission::new(10, Some(1));
        let first = adm.admit(PEER).unwrap();
        assert_eq!(adm.admit(PEER).err(), Some(Refused::PeerFull));
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert!(adm.admit(other).is_ok());
        drop(first);
        assert!(adm.admit(PEER).is_ok());
    }
}
