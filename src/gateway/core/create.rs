//! The one door to creating an interaction ([`create_or_find`]): the
//! family looks at the conversation, the core writes what is new there
//! in one commit (docs/architecture.md#the-second-door).
use super::change;
use super::outbox::OutboxItem;
use super::records::{write_interaction, Bookkeeping, ConversationLink, Loaded};
use super::work::Step;
use super::Core;
use crate::config::Team;
use crate::domain::interaction::InteractionRecord;
use crate::error::Result;
use crate::store::{Backoff, Op};
use crate::time::Timestamp;

/// A new interaction to create in a conversation ([`create_or_find`]).
pub struct NewIn {
    /// The conversation's link to its interaction, as read.
    pub link: Loaded<ConversationLink>,
    /// The interaction, new (its `last_write_at` now).
    pub rec: InteractionRecord,
    /// Its `interaction.created`, written in the same commit.
    pub created: OutboxItem,
}

/// What a look at a conversation found ([`create_or_find`]): its live
/// interaction, or one to create there, with the answer once it is.
pub enum Look<T> {
    Found(T),
    Create(Box<NewIn>, T),
}

/// The one door to creating an interaction: `look` reads the
/// conversation and answers what it found, or what to create there; a
/// create is committed once — the record with what points to it and its
/// due time, the conversation's link written for as long as the record's
/// write would keep the conversation (in the same `SET`), and its
/// `interaction.created` — and when another request wrote the
/// conversation first, `look` reads it again (the unit of work's budget,
/// then 503). Answers `look`'s answer, and whether it created.
pub(in crate::gateway) async fn create_or_find<T, F, Fut>(
    core: &Core,
    team: &Team,
    now: Timestamp,
    mut look: F,
) -> Result<(T, bool)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Look<T>>>,
{
    let mut backoff = Backoff::default();
    loop {
        match look().await? {
            Look::Found(found) => return Ok((found, false)),
            Look::Create(new, created) => {
                if create(core, team, *new, now).await?.is_some() {
                    return Ok((created, true));
                }
            }
        }
        backoff.wait().await?;
    }
}

/// Commits `new` once ([`create_or_find`]); `None` when another writer
/// came first.
async fn create(core: &Core, team: &Team, new: NewIn, now: Timestamp) -> Result<Option<()>> {
    let NewIn {
        link,
        mut rec,
        created,
    } = new;
    let s = team.settings_for(&rec.channel);
    let mut ttl = s.interaction_ttl.get();
    let mut ops = vec![];
    for op in write_interaction(team, 0, None, Bookkeeping::default(), &mut rec, now)? {
        match op {
            // The conversation key is written here: for as long as the
            // interaction's write would keep it, in the same SET.
            Op::Touch { key, ttl: kept } if key == link.key => ttl = ttl.max(kept),
            op => ops.push(op),
        }
    }
    let pointer = ConversationLink { id: rec.id };
    change::once(core, &team.keyspace, &[], now, |c| {
        c.put(&link, &pointer, Some(ttl))?;
        ops.into_iter().for_each(|op| c.also(op));
        c.emit(created);
        Ok(Step::Write(()))
    })
    .await
}
