//! Where a link's challenge stands, for its page, its poll and its end
//! page: read from the challenge's stage and the page its proof waits
//! for, the same for every kind.
use uuid::Uuid;

use super::kind::LinkKind;
use crate::domain::challenge::PastOutcome;
use crate::domain::interaction::InteractionRecord;
use crate::time::Timestamp;

/// Where a link's challenge stands, for its page, its poll and its end
/// page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Open, and waiting for its page.
    Open,
    /// A proof made on the page waits for its binding code to be typed
    /// into the chat.
    Answered,
    /// It succeeded.
    Done,
    /// It failed.
    Failed,
    /// Expired or replaced (or its interaction gone).
    Gone,
}

impl LinkState {
    /// Whether the link was used: its challenge succeeded, or a proof made
    /// on its page waits for its binding code.
    pub fn used(self) -> bool {
        matches!(self, LinkState::Answered | LinkState::Done)
    }
}

/// Where challenge `cid` of `rec` (`None`: forgotten) stands at `now`, for
/// a link of kind `K`.
pub fn state_of<K: LinkKind>(
    rec: Option<&InteractionRecord>,
    cid: Uuid,
    now: Timestamp,
) -> LinkState {
    let Some(rec) = rec else {
        return LinkState::Gone;
    };
    match rec.open_challenge(now).filter(|c| c.id == cid) {
        Some(c) if c.awaits_code() => return LinkState::Answered,
        Some(c) if c.opens_on(K::PAGE) => return LinkState::Open,
        _ => {}
    }
    match rec.past_challenges.iter().find(|p| p.id == cid) {
        Some(p) if p.outcome == PastOutcome::Succeeded => LinkState::Done,
        Some(p) if p.outcome == PastOutcome::Failed => LinkState::Failed,
        _ => LinkState::Gone,
    }
}
