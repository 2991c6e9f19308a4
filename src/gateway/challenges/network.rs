//! A network challenge (docs/network-authentication.md): its link, saved
//! on its own key between the start's reserve and its send, and the
//! mobile operator's answer applied to it.
//!
//! The start is a single message's (`single.rs`): the number checks of
//! the number on file, reserve, then [`link_for`] saves the link (a
//! failed save takes the start back, as a failed send does), then the
//! `network_link` text carries it.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Team;
use crate::domain::challenge::ChallengeMethod;
use crate::domain::network_auth::{self, Ending, NetworkResult};
use crate::domain::start_challenge::{ChallengeRequest, Started};
use crate::error::{Error, Result};
use crate::events::types::{ChallengeFailed, FailedChallenge};
use crate::events::EventData;
use crate::gateway::records::{put, Record};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::oidc::flow::random_value;
use crate::store::{keys, Commit};
use crate::time::Timestamp;

/// Where a network link's code leads (`keys::network_link`): `t` its
/// team, `i` its interaction, `c` its challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::gateway) struct StoredNetworkLink {
    pub t: String,
    pub i: Uuid,
    pub c: Uuid,
}

impl Record for StoredNetworkLink {}

/// The link of network challenge `cid` of interaction `id`, started as
/// `started` by `req`: a fresh code (256 random bits) saved on its own
/// key until the challenge's end, and its URL. `None` for any other
/// method. A save that fails takes the start back.
pub(super) async fn link_for(
    core: &Core,
    team: &Team,
    (id, cid): (Uuid, Uuid),
    req: &ChallengeRequest,
    started: &Started,
    now: Timestamp,
) -> Result<Option<String>> {
    if req.method != ChallengeMethod::Network {
        return Ok(None);
    }
    let code = random_value();
    let link = StoredNetworkLink {
        t: team.id.clone(),
        i: id,
        c: cid,
    };
    let ttl = started
        .expires_at
        .since(now)
        .max(std::time::Duration::from_secs(1));
    let saved = async {
        let op = put(&keys::network_link(&code), 0, &link, Some(ttl))?;
        match core.write(vec![op]).await? {
            Commit::Applied => Ok(()),
            Commit::Conflict { .. } => Err(Error::internal("a 256-bit link code collided")),
        }
    };
    if let Err(e) = saved.await {
        super::destinations::undo_challenge(core, team, id, cid, started, now).await?;
        return Err(e);
    }
    let public_url = &core.config().server.public_url;
    Ok(Some(format!("{public_url}/n/{code}")))
}

/// Applies the operator's `result` to network challenge `cid` of
/// interaction `id` (`domain::network_auth::conclude`) in one commit, with
/// what it announces: the authentication, or `challenge.failed`. Nothing
/// is written for a challenge that is no longer open.
pub(in crate::gateway) async fn conclude_network(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    result: NetworkResult,
    now: Timestamp,
) -> Result<Ending> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let s = w.settings;
                let (rec, subject) = w.records();
                let ending = network_auth::conclude(rec, subject, cid, result, s, now);
                match &ending {
                    Ending::Gone => return Ok(Step::Answer(ending)),
                    Ending::Authenticated => w.announce_authenticated(),
                    Ending::Ended { reason } => {
                        if let Some((c, _)) = w.rec.challenge_at(cid, now) {
                            w.emit(EventData::ChallengeFailed(ChallengeFailed {
                                challenge: FailedChallenge::of(c, 0),
                                reason: Some(reason),
                            }));
                        }
                    }
                    Ending::Open => {}
                }
                Ok(Step::Write(ending))
            })
        })
        .await?;
    Ok(done.value)
}
