//! A challenge link opened: the one read every page of a link starts
//! with (docs/architecture.md#challenge-links) — the link's record by
//! its code, through the store's typed read; its team, and what the
//! kind's page needs of it; its interaction and subject, read once and
//! kept, so that a use case that changes the interaction decides first on
//! that read (`Core::transact_on`); and where its challenge stands.
use uuid::Uuid;

use super::kind::LinkKind;
use super::kinds::key;
use super::state::{state_of, LinkState};
use super::words::{speaks, Speaks};
use crate::config::Team;
use crate::domain::interaction::InteractionRecord;
use crate::error::{Error, Result};
use crate::gateway::change;
use crate::gateway::records::{Pair, StoredChallengeLink};
use crate::gateway::Core;
use crate::time::Timestamp;

/// A link of kind `K` as read.
pub struct Opened<'c, K: LinkKind> {
    pub team: &'c Team,
    /// What the kind's page needs of its team.
    pub needs: &'c K::Needs,
    /// The interaction and the challenge it names.
    pub interaction: Uuid,
    pub challenge: Uuid,
    /// Its interaction and subject as read; `None`: forgotten.
    pub pair: Option<Pair>,
}

/// The link of kind `K` that `code` names, in two reads (the link, then
/// its interaction with its subject). 404 for a code never issued (or
/// long gone); `None` for a record this version cannot read, or a team
/// that is gone or no longer has what the page needs: such a link
/// answers as one whose interaction is gone, in no language.
pub async fn open<'c, K: LinkKind>(
    core: &'c Core,
    code: &str,
    now: Timestamp,
) -> Result<Option<Opened<'c, K>>> {
    let Some(link) = read_link::<K>(core, code).await? else {
        return Ok(None);
    };
    let Some(team) = core.config().team(&link.t) else {
        return Ok(None);
    };
    let Some(needs) = K::needs(team) else {
        return Ok(None);
    };
    let pair = match core.load_pair(team, link.i, now).await {
        Ok(pair) => Some(pair),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    Ok(Some(Opened {
        team,
        needs,
        interaction: link.i,
        challenge: link.c,
        pair,
    }))
}

/// The record of link `code` of kind `K` (one read): 404 when there is
/// none, `None` when it cannot be read.
async fn read_link<K: LinkKind>(core: &Core, code: &str) -> Result<Option<StoredChallengeLink>> {
    let key = key::<K>(code);
    let read = change::read(core, std::slice::from_ref(&key)).await?;
    match read.get::<StoredChallengeLink>(&key) {
        Ok(loaded) => loaded
            .value
            .map(Some)
            .ok_or(Error::NotFound("no such link")),
        Err(_) => Ok(None),
    }
}

/// The team of the link of kind `K` that `code` names, read without
/// changing anything (one read): for a caller that takes a place at that
/// team's gate before a provider is asked.
pub async fn team_of<K: LinkKind>(core: &Core, code: &str) -> Option<String> {
    Some(read_link::<K>(core, code).await.ok()??.t)
}

impl<K: LinkKind> Opened<'_, K> {
    /// Its interaction as read, while it lives.
    pub fn rec(&self) -> Option<&InteractionRecord> {
        self.pair.as_ref()?.rec().ok()
    }

    /// Where its challenge stands at `now`.
    pub fn state(&self, now: Timestamp) -> LinkState {
        state_of::<K>(self.rec(), self.challenge, now)
    }

    /// The language its pages speak, while its interaction lives.
    pub fn speaks(&self) -> Option<Speaks> {
        Some(speaks(self.team, self.rec()?))
    }
}
