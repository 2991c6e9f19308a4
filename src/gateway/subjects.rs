//! Subjects for agents and admins: read the failures, lockouts and ban;
//! unlock (docs/api.md#subjects-failures-lockouts-bans).
use crate::config::Team;
use crate::domain::audit::{Acting, Action, Draft, Target};
use crate::domain::subject::SubjectRecord;
use crate::error::Result;
use crate::events::types::SubjectChange;
use crate::events::EventData;
use crate::store::keys;
use crate::time::Timestamp;

use super::outbox::OutboxItem;
use super::records::Loaded;
use super::view::SubjectView;
use super::work::Step;
use super::writes::subject_written;
use super::{doors, Core};

/// An unknown subject is all zeros.
pub async fn subject(
    core: &Core,
    team: &Team,
    subject: &str,
    now: Timestamp,
) -> Result<SubjectView> {
    let key = keys::subject(&team.keyspace, subject);
    let loaded: Loaded<SubjectRecord> = doors::read(core, &key).await?;
    let rec = loaded.value.unwrap_or_else(|| SubjectRecord::new(subject));
    Ok(SubjectView::of(&rec, now, &team.settings.lockout))
}

/// Clears failures, lockouts, lock and ban: of one origin (scope
/// `origin`), or of the whole subject — every origin and the strangers'
/// lock too (`origin: None`).
pub async fn unlock_subject(
    core: &Core,
    team: &Team,
    subject: &str,
    origin: Option<&str>,
    acting: &Acting,
    now: Timestamp,
) -> Result<SubjectView> {
    let key = keys::subject(&team.keyspace, subject);
    let s = &team.settings;
    // The subject and the audit trail's head, in one round trip.
    let read = [key.clone(), keys::audit_head(&team.keyspace)];
    let view = core
        .change(&team.keyspace, &read, now, |c| {
            let loaded: Loaded<SubjectRecord> = c.read(&key)?;
            let mut rec = loaded
                .value
                .clone()
                .unwrap_or_else(|| SubjectRecord::new(subject));
            rec.unlock_for(origin);
            let view = SubjectView::of(&rec, now, &s.lockout);
            subject_written(c, &loaded, &rec, s, now)?;
            let unlocked = EventData::SubjectUnlocked(SubjectChange {
                origin: origin.map(str::to_string),
                actor: Some(acting.actor.without_ip()),
            });
            c.emit(OutboxItem::about_subject(&unlocked, now, &team.id, &view)?);
            let target = Target {
                subject: Some(subject.to_string()),
                origin: origin.map(str::to_string),
                ..Target::default()
            };
            c.audit(Draft::success(Action::SubjectUnlocked, acting, target));
            Ok(Step::Write(view))
        })
        .await?;
    metrics::counter!("chatgate_unlocks_total").increment(1);
    Ok(view)
}
