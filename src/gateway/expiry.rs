//! Time-outs that must be announced (CONTRACT 3.8, 3.9): a background task
//! takes due entries from each team's due index and emits
//! `interaction.expiring` / `interaction.expired` (and sends the `expired`
//! template). Taking an entry is atomic, so of several gateway instances
//! exactly one handles it. Reads never depend on this task: status is
//! computed from timestamps.
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::work::Step;
use super::Gateway;
use crate::channels::Purpose;
use crate::config::Team;
use crate::error::{Error, Result};
use crate::events::EventType;
use crate::store::{keys, Op};
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
        let done = self.transact(team, id, now, |w| {
            let s = w.settings;
            let event = match w.rec.auth_ends_at(s) {
                None => None,
                Some(end) => match kind {
                    Due::Expiry if now >= end && w.rec.expiry_announced != Some(end) => {
                        w.rec.expiry_announced = Some(end);
                        Some(EventType::InteractionExpired)
                    }
                    Due::Notice
                        if w.rec.expiring_announced != Some(end)
                            && s.expiry_notice
                                .enabled()
                                .is_some_and(|n| now >= end.minus(n))
                            && now < end =>
                    {
                        w.rec.expiring_announced = Some(end);
                        Some(EventType::InteractionExpiring)
                    }
                    // Moved (activity) or already announced: the write
                    // re-schedules it at the current end.
                    _ => None,
                },
            };
            // Announcements are not activity and do not refresh interaction_ttl.
            w.as_announcement();
            let step = match w.rec.auth.is_some() {
                true => Step::Write(event),
                false => Step::Answer(None),
            };
            Box::pin(std::future::ready(Ok(step)))
        });
        let announced = match done.await {
            Ok(d) => d.value.map(|e| (e, d.view, d.rec)),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
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
