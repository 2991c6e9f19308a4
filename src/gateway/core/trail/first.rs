//! The start's configuration first (docs/audit.md#resets): a start that
//! finds the store without its node markers records its `config.changed`
//! entries after a wait, in the background, so that a running instance
//! records `audit.trail_reset` first; meanwhile every other audit entry
//! of this process (a request's, a reload's, a sink's) waits for them
//! before it joins its team's line, and the listener does not
//! (docs/decisions/0489-a-start-on-an-empty-store-lets-the-reset-be-recorded-first.md).
use std::future::Future;

use tokio::sync::watch;

tokio::task_local! {
    /// Set around the start's own recording, which the hold lets by.
    static THE_START: ();
}

/// Whether this process's audit entries wait for the start's.
#[derive(Debug)]
pub struct FirstEntries {
    held: watch::Sender<bool>,
    /// The configuration recordings this process began (a start's, each
    /// reload's), the newest last: a recording the store refused is tried
    /// again until it is written or a newer one takes over.
    recordings: std::sync::atomic::AtomicU64,
}

impl Default for FirstEntries {
    fn default() -> Self {
        FirstEntries {
            held: watch::Sender::new(false),
            recordings: Default::default(),
        }
    }
}

impl FirstEntries {
    /// A new configuration recording begins: its number.
    pub fn next_recording(&self) -> u64 {
        self.recordings
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// The number of the newest configuration recording.
    pub fn latest_recording(&self) -> u64 {
        self.recordings.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every audit entry but the start's waits from now until
    /// [`FirstEntries::release`].
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// The start's entries are recorded (or failed): the others go.
    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// Whether entries wait now.
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Waits while entries are held, unless this is the start's own
    /// recording ([`as_the_start`]).
    pub(super) async fn pass(&self) {
        if !self.is_held() || THE_START.try_with(|_| ()).is_ok() {
            return;
        }
        let mut held = self.held.subscribe();
        // The sender lives as long as the core that waits on it.
        let _ = held.wait_for(|held| !*held).await;
    }
}

/// `recording`, run as the start's own recording: its entries pass the
/// hold.
pub async fn as_the_start<F: Future>(recording: F) -> F::Output {
    THE_START.scope((), recording).await
}
