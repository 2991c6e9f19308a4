//! The team's audit webhook (`[audit] webhook` of a team file,
//! docs/audit.md#wiring-a-siem): each entry POSTed in `seq` order, signed
//! by Standard Webhooks (`webhook-id` = the entry's `id`) through the one
//! signed-webhook sender, at least once, retried with the event
//! webhooks' backoff. Its cursor (`{team}:awh`, `cursor.rs`) holds the
//! last `seq` the receiver answered 2xx; the rounds, the cursor's lease
//! and the resets are `sink.rs`'s.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::sink::{Entry, Failing, Lag, Round, Sink};
use crate::channels::webhook::{post_signed, PostFailed};
use crate::config::Team;
use crate::gateway::outbox::backoff;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::{Clock, Timestamp};

/// The longest one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// A team's failed attempts in a row, and when to try again.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    attempts: u32,
    next: Timestamp,
}

/// How long a team gone from the configuration (deleted, or removed by a
/// reload) is sent for, at most, when its receiver does not take its last
/// entries.
const GONE_FOR: Duration = Duration::from_secs(24 * 3600);

/// The sink that sends each team's entries to its `[audit] webhook`.
pub struct WebhookSink {
    clock: Arc<dyn Clock>,
    http: crate::outbound::Clients,
    /// By team, the refusals in a row and when to try again.
    backoff: HashMap<String, Backoff>,
    /// Why the round under way was refused, if it was.
    refused: Option<Refused>,
    /// Whether a team's receiver fails, for one warning, not one a try.
    failing: Failing,
    /// By keyspace, the teams with an audit webhook last seen in force.
    last: HashMap<String, Arc<Team>>,
    /// By keyspace, those gone since whose entries are not all taken (the
    /// entry recording that they went among them), and when they went:
    /// sent to until caught up, or for [`GONE_FOR`].
    gone: HashMap<String, (Arc<Team>, Timestamp)>,
}

impl Sink for WebhookSink {
    const LABEL: &'static str = "webhook";
    const BATCH: u64 = 50;

    fn new(_core: &Core, clock: Arc<dyn Clock>) -> Self {
        WebhookSink {
            clock,
            http: crate::channels::provider::client_or_none(POST_TIMEOUT),
            backoff: HashMap::new(),
            refused: None,
            failing: Failing::new("the team's audit webhook"),
            last: HashMap::new(),
            gone: HashMap::new(),
        }
    }

    fn cursor_key(team: &str) -> String {
        keys::audit_webhook_cursor(team)
    }

    /// The teams with an audit webhook, by keyspace, and those gone whose
    /// last entries are not all taken; `None` when there is none.
    async fn round(&mut self, core: &Core, now: Timestamp) -> Option<Round> {
        let in_force: HashMap<String, Arc<Team>> = (core.config().teams.values())
            .filter(|t| t.audit_webhook.is_some())
            .map(|t| (t.keyspace.clone(), Arc::clone(t)))
            .collect();
        let last = std::mem::replace(&mut self.last, in_force);
        for (keyspace, team) in last {
            if !self.last.contains_key(&keyspace) {
                self.gone.entry(keyspace).or_insert((team, now));
            }
        }
        self.gone
            .retain(|k, (_, at)| !self.last.contains_key(k) && now.since(*at) < GONE_FOR);
        let teams: Vec<String> = self.last.keys().chain(self.gone.keys()).cloned().collect();
        self.backoff.retain(|team, _| teams.contains(team));
        (!teams.is_empty()).then_some(Round {
            teams,
            fresh: false,
        })
    }

    fn due(&self, team: &str, now: Timestamp) -> bool {
        self.backoff.get(team).is_none_or(|b| b.next <= now)
    }

    /// POSTs the entries in order until one is refused.
    async fn send(
        &mut self,
        core: &Core,
        team: &str,
        entries: &[Entry],
        lag: &Lag,
    ) -> crate::error::Result<Option<u64>> {
        let gone = self.gone.get(team).map(|(t, _)| t);
        let Some(owner) = core.config().team_in(team).or(gone) else {
            return Ok(None);
        };
        let Some(hook) = owner.audit_webhook.as_ref() else {
            return Ok(None);
        };
        let reach = core.config().reach_of(owner.api.is_some());
        let mut taken = None;
        for entry in entries {
            lag.note(team, entry.time.unwrap_or_else(|| self.clock.now()));
            let id = entry
                .value
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let body = entry.text.clone().into_bytes();
            let now = self.clock.now();
            let Ok(http) = self.http.of(reach) else {
                self.refused = Some((crate::outbound::Unbuilt.to_string(), None));
                break;
            };
            let sent = post_signed(http, &hook.url, &hook.key, id, now, body, POST_TIMEOUT).await;
            if let Err(e) = sent {
                self.refused = Some(match e {
                    PostFailed::TimedOut => ("timed out".to_string(), None),
                    PostFailed::Unreachable => ("unreachable".to_string(), None),
                    PostFailed::Refused => {
                        let refused = crate::outbound::Refused;
                        (format!("/audit/webhook/url {refused}"), None)
                    }
                    PostFailed::Status(status, after) => (format!("answered HTTP {status}"), after),
                });
                break;
            }
            taken = Some(entry.seq);
        }
        Ok(taken)
    }

    /// A team with an audit webhook taken out is sent to until caught
    /// up, even when no round saw it in force.
    fn departed(&mut self, keyspace: String, team: Arc<Team>, now: Timestamp) {
        if team.audit_webhook.is_some() {
            self.gone.entry(keyspace).or_insert((team, now));
        }
    }

    /// Forgets the teams gone that are caught up.
    fn caught_up(&mut self, teams: &[String]) {
        for team in teams {
            self.gone.remove(team);
        }
    }

    fn ended(&mut self, team: &str, now: Timestamp, outcome: &crate::error::Result<()>) {
        // Taken whatever the outcome: a refusal is of this round only.
        let refused = self.refused.take();
        match outcome {
            Ok(()) => note_round(&mut self.backoff, &self.failing, team, now, refused),
            // The store's own log says so once while it lasts, not a
            // line per team and round (docs/operations.md#logs).
            Err(crate::error::Error::StoreUnavailable) => {}
            Err(e) => {
                tracing::warn!(team = %team, error = %e, "audit entries not sent to the team's webhook");
            }
        }
    }
}

/// Notes how `team`'s round at `now` went: a refusal is a failed attempt
/// more, tried again after the event webhooks' backoff (or the wait the
/// receiver asked for), one warning when the receiver starts failing; a
/// round that went through ends the backoff, one line if it was failing.
fn note_round(
    backoffs: &mut HashMap<String, Backoff>,
    failing: &Failing,
    team: &str,
    now: Timestamp,
    refused: Option<Refused>,
) {
    let Some((reason, retry_after)) = refused else {
        backoffs.remove(team);
        failing.fared(team, None, now);
        return;
    };
    let b = backoffs.entry(team.to_string()).or_insert(Backoff {
        attempts: 0,
        next: now,
    });
    b.attempts += 1;
    b.next = now.plus(backoff(b.attempts, retry_after));
    failing.fared(team, Some(&reason), now);
}

/// Why a receiver did not take an entry, and the wait it asked for.
type Refused = (String, Option<Duration>);
