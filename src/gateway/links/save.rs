//! A challenge link saved: a fresh code (256 random bits, unrelated to
//! any code of the challenge, marked with its team's slot) on its kind's key, in the one stored form
//! of every link (docs/architecture.md#challenge-links).
use uuid::Uuid;

use super::kind::{LinkKind, Registered};
use super::kinds::{key_of, line, KINDS};
use crate::config::Team;
use crate::domain::challenge::Page;
use crate::error::{Error, Result};
use crate::gateway::change;
use crate::gateway::records::StoredChallengeLink;
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::oidc::flow::random_value;
use crate::store::keys;
use crate::time::Timestamp;

/// Saves a fresh link to challenge `cid` of interaction `id` for `page`,
/// the page its proof waits for: the one save every start uses, by the
/// page's one line of `KINDS` (one a page: `kinds::one_line_a_page`), so
/// a page added is saved without a line here. Its URL, as [`save`]'s.
pub async fn save_for(
    core: &Core,
    team: &Team,
    page: Page,
    ids: (Uuid, Uuid),
    until: Timestamp,
    now: Timestamp,
) -> Result<String> {
    let Some(&kind) = KINDS.iter().find(|k| k.page == page) else {
        return Err(Error::internal("a page without its line in links::KINDS"));
    };
    saved(core, team, kind, ids, until, now).await
}

/// Saves a fresh link of kind `K` to challenge `cid` of interaction `id`
/// on its own key: until `until`, then as long as an interaction written
/// then lives (the longest `interaction_ttl` of the team), so that an
/// ended link answers its 410 page, not 404
/// (docs/network-authentication.md#the-link). Its URL,
/// `{public_url}/{K::PATH}/{code}`.
pub async fn save<K: LinkKind>(
    core: &Core,
    team: &Team,
    ids: (Uuid, Uuid),
    until: Timestamp,
    now: Timestamp,
) -> Result<String> {
    saved(core, team, line::<K>(), ids, until, now).await
}

/// [`save`], by the kind's line of `KINDS`.
async fn saved(
    core: &Core,
    team: &Team,
    kind: Registered,
    (id, cid): (Uuid, Uuid),
    until: Timestamp,
    now: Timestamp,
) -> Result<String> {
    let code = keys::marked(&team.keyspace, &random_value());
    let link = StoredChallengeLink {
        t: team.id.clone(),
        i: id,
        c: cid,
    };
    let lives = std::iter::once(&team.settings)
        .chain(team.channel_settings.values())
        .map(|s| s.interaction_ttl.get())
        .max()
        .unwrap_or_default();
    let ttl = until.since(now).max(std::time::Duration::from_secs(1)) + lives;
    let key = key_of(kind, &code);
    let saved = change::once(core, &team.keyspace, &[], now, |c| {
        c.claim(&key, &link, Some(ttl))?;
        Ok(Step::Write(()))
    });
    saved
        .await?
        .ok_or_else(|| Error::internal("a 256-bit link code collided"))?;
    let public_url = &core.config().server.public_url;
    Ok(format!("{public_url}/{}/{code}", kind.path))
}
