//! Time-outs that must be announced (CONTRACT 3.8, 3.9): a background task
//! takes due entries from each team's due index and emits
//! `interaction.expiring` / `interaction.expired` (and sends the `expired`
//! template). Taking an entry is atomic, so of several gateway instances
//! exactly one handles it. Reads never depend on this task: status is
//! computed from timestamps.
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::records::{interaction_ops, retry};
use super::{Gateway, InteractionView};
use crate::channels::Purpose;
use crate::config::Team;
use crate::error::{Error, Result};
use crate::events::EventType;
use crate::store::{keys, Commit, Op};
use crate::time::{Clock, Timestamp};

/// How often the sweeper looks for due work; well inside the contract's 5 s.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// Runs until `shutdown` resolves.
pub async fn run_sweeper(
    gw: Arc<Gateway>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                let now = clock.now();
                for team in gw.config.teams.values() {
                    if let Err(e) = gw.sweep_team(team, now).await {
                        tracing::warn!(team = %team.id, error = %e, "expiry sweep failed; will retry");
                    }
                }
            }
        }
    }
}

enum Due {
    Notice,
    Expiry,
}

impl Gateway {
    /// Handles every entry of `team` due at `now`.
    pub async fn sweep_team(self: &Arc<Self>, team: &Team, now: Timestamp) -> Result<()> {
        let index = keys::due_index(&team.id);
        loop {
            let due = self
                .store
                .index_take_due(&index, now.unix_millis(), 100)
                .await?;
            let n = due.len();
            for entry in due {
                let parsed = match entry.member.split_once(':') {
                    Some(("n", id)) => Uuid::parse_str(id).ok().map(|id| (Due::Notice, id)),
                    Some(("x", id)) => Uuid::parse_str(id).ok().map(|id| (Due::Expiry, id)),
                    _ => None,
                };
                let Some((kind, id)) = parsed else { continue };
                if let Err(e) = self.handle_due(team, kind, id, now).await {
                    // Put it back so another sweep tries again.
                    let ttl = Duration::from_secs(3600);
                    let back = Op::IndexAdd {
                        key: index.clone(),
                        member: entry.member,
                        score: entry.score,
                        ttl,
                    };
                    self.store.commit(vec![back]).await?;
                    return Err(e);
                }
            }
            if n < 100 {
                return Ok(());
            }
        }
    }

    async fn handle_due(
        self: &Arc<Self>,
        team: &Team,
        kind: Due,
        id: Uuid,
        now: Timestamp,
    ) -> Result<()> {
        let announced = retry(|| async {
            let pair = match self.load_pair(team, id, now).await {
                Ok(p) => p,
                Err(Error::NotFound(_)) => return Ok(Some(None)),
                Err(e) => return Err(e),
            };
            let mut rec = pair.rec()?.clone();
            let s = team.settings_for(&rec.channel);
            let Some(end) = rec.auth_ends_at(s) else {
                return Ok(Some(None));
            };
            let event = match kind {
                Due::Expiry if now >= end && rec.expiry_announced != Some(end) => {
                    rec.expiry_announced = Some(end);
                    Some(EventType::InteractionExpired)
                }
                Due::Notice
                    if rec.expiring_announced != Some(end)
                        && s.expiry_notice
                            .enabled()
                            .is_some_and(|n| now >= end.minus(n))
                        && now < end =>
                {
                    rec.expiring_announced = Some(end);
                    Some(EventType::InteractionExpiring)
                }
                // Moved (activity) or already announced: write_interaction
                // below re-schedules it at the current end.
                _ => None,
            };
            // Announcements are not activity and do not refresh interaction_ttl.
            let ops = interaction_ops(team, pair.interaction.version, &rec, now)?;
            match self.store.commit(ops).await? {
                Commit::Applied => {
                    let view = InteractionView::build(&rec, pair.subject.value.as_ref(), s, now);
                    Ok(Some(event.map(|e| (e, view, rec))))
                }
                Commit::Conflict { .. } => Ok(None),
            }
        })
        .await?;
        if let Some((event, view, rec)) = announced {
            self.emit(event, now, &view);
            if event == EventType::InteractionExpired {
                metrics::counter!("chatgate_expirations_total").increment(1);
                self.send_in_background(&team.id, rec, Purpose::Expired);
            }
        }
        Ok(())
    }
}
