//! What every audit sink shares (docs/audit.md#wiring-a-siem): the
//! [`Sink`] trait holds what differs per sink (where it sends, how it
//! frames, its cursor's key, its metric label), and [`run`] is the one
//! loop that, every round and for each team, takes the team's cursor
//! (`cursor.rs`), reads the head, handles a reset (docs/audit.md#resets),
//! hands the sink the entries that follow the cursor, moves the cursor
//! past those sent, and keeps the lag gauge. A sink runs as a worker of
//! its own: a destination that is down delays no request.
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::cursor::{hold, settle};
use crate::error::Result;
use crate::fared::Fared;
use crate::gateway::records::{entry_json, Loaded};
use crate::gateway::{Core, Live, Workers};
use crate::store::{keys, Versioned};
use crate::time::{Clock, Timestamp};

/// How often a sink looks for entries to send.
const TICK: Duration = Duration::from_millis(500);

/// An audit sink: what it sends to and how; [`run`] does the rest.
pub(super) trait Sink: Send + Sized + 'static {
    /// Its `sink` label on `chatgate_audit_sink_lag_seconds`, and its
    /// worker's name.
    const LABEL: &'static str;
    /// Entries handed to [`Sink::send`] per team and round.
    const BATCH: u64;
    /// Whether what [`Sink::send`] sent is confirmed only at the next
    /// round (once the destination is seen to have kept it), not at once.
    const CONFIRMS_LATER: bool = false;

    /// The sink, on the configuration in force when it starts.
    fn new(core: &Core, clock: Arc<dyn Clock>) -> Self;

    /// The key of `team`'s cursor (spelled in `src/store/keys.rs`).
    fn cursor_key(team: &str) -> String;

    /// Readies a round on `core`: the teams it sends for, or `None` when
    /// it has no destination in `core`'s configuration.
    fn round(&mut self, core: &Core, now: Timestamp) -> impl Future<Output = Option<Round>> + Send;

    /// Whether `team` is due this round (not waiting out a backoff).
    fn due(&self, _team: &str, _now: Timestamp) -> bool {
        true
    }

    /// Sends `entries` of `team` (those after its cursor, in `seq`
    /// order), noting on `lag` the entry under way when it may wait long.
    /// Answers the last `seq` sent (`None`: none).
    fn send(
        &mut self,
        core: &Core,
        team: &str,
        entries: &[Entry],
        lag: &Lag,
    ) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Notes how `team`'s round at `now` ended.
    fn ended(&mut self, team: &str, now: Timestamp, outcome: &Result<()>);

    /// Notes the teams whose entries are all sent.
    fn caught_up(&mut self, _teams: &[String]) {}

    /// Notes `team`, of keyspace `keyspace`, taken out of the
    /// configuration in force at `now`: its last entries are still to
    /// send, even when no round saw it in force.
    fn departed(&mut self, keyspace: String, team: Arc<crate::config::Team>, now: Timestamp);
}

/// The teams of a round, and whether its destination is a fresh one
/// (a new connection: what the last one took and was not confirmed is
/// sent again).
pub(super) struct Round {
    pub teams: Vec<String>,
    pub fresh: bool,
}

/// An entry of the trail, as stored and as read.
pub(super) struct Entry {
    pub seq: u64,
    /// Its `time`, when it has one.
    pub time: Option<Timestamp>,
    pub value: Value,
    /// Its JSON, as hashed (inflated where it is stored packed).
    pub text: String,
}

impl Entry {
    /// The entry `seq` as read, or `None` when it is gone or not JSON.
    fn parse(seq: u64, raw: Option<Versioned>) -> Option<Entry> {
        let mut raw = raw?;
        raw.value = entry_json(raw.value).ok()?;
        let text = raw.value.clone();
        let value = Loaded::<Value>::parse(String::new(), Some(raw))
            .ok()?
            .value?;
        let time = value
            .get("time")
            .and_then(Value::as_str)
            .and_then(Timestamp::parse_rfc3339);
        Some(Entry {
            seq,
            time,
            value,
            text,
        })
    }
}

/// By team, the time of the oldest entry its destination has not taken:
/// the sink's lag, shown also while a send waits.
pub(super) struct Lag {
    label: &'static str,
    clock: Arc<dyn Clock>,
    waiting: Mutex<HashMap<String, Timestamp>>,
}

impl Lag {
    fn new(label: &'static str, clock: Arc<dyn Clock>) -> Self {
        Lag {
            label,
            clock,
            waiting: Mutex::default(),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, Timestamp>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `team`'s oldest entry not taken is of `time`.
    pub fn note(&self, team: &str, time: Timestamp) {
        self.waiting().insert(team.to_string(), time);
    }

    /// `team` has nothing waiting (or another instance sends it).
    fn forget(&self, team: &str) {
        self.waiting().remove(team);
    }

    /// Forgets the teams not among `teams`.
    fn keep(&self, teams: &[String]) {
        self.waiting().retain(|team, _| teams.contains(team));
    }

    /// Sets the gauge: the age of the oldest entry of any team not
    /// taken, 0 when none.
    fn show(&self) {
        let now = self.clock.now();
        let lag = self
            .waiting()
            .values()
            .map(|t| now.since(*t))
            .max()
            .unwrap_or(Duration::ZERO);
        metrics::gauge!("chatgate_audit_sink_lag_seconds", "sink" => self.label)
            .set(lag.as_secs_f64());
    }
}

/// The destinations of a sink that fail, for logs that can be read
/// (docs/operations.md#logs): one warning when one starts failing, one
/// line when it takes entries again, not a line per attempt.
pub(super) struct Failing {
    /// The destination as the log names it: "the syslog receiver".
    what: &'static str,
    by_name: crate::fared::Failing,
}

impl Failing {
    pub fn new(what: &'static str) -> Self {
        Failing {
            what,
            by_name: crate::fared::Failing::default(),
        }
    }

    /// Logs how `destination` fared at `now`: a warning when it starts
    /// failing (`failed` says why), a line when it answers again.
    pub fn fared(&self, destination: &str, failed: Option<&str>, now: Timestamp) {
        let what = self.what;
        match (
            failed,
            self.by_name.fared(destination, failed.is_some(), now),
        ) {
            (Some(why), Fared::StartedFailing) => tracing::warn!(
                destination,
                error = why,
                "{what} fails: audit entries wait; one line when it takes them again"
            ),
            (Some(why), _) => tracing::debug!(destination, error = why, "{what} still fails"),
            (None, Fared::Recovered { since, failed }) => tracing::info!(
                destination,
                failing_secs = now.since(since).as_secs_f64(),
                failed_attempts = failed,
                "{what} takes audit entries again"
            ),
            (None, _) => {}
        }
    }
}

/// What one team's round came to.
enum Step {
    /// Another instance sends the team's entries.
    Busy,
    /// A reset was recorded, or the cursor moved meanwhile: next round.
    Settling,
    /// Everything is sent.
    CaughtUp,
    /// Sent; to confirm next round, the cursor's version and last `seq`.
    Sent(Option<(u64, u64)>),
}

/// The sink `S`, started as a worker of `workers` on the core in force.
pub(super) fn spawn<S: Sink>(workers: &mut Workers, live: &Arc<Live>, clock: &Arc<dyn Clock>) {
    let sink = S::new(&live.current(), Arc::clone(clock));
    let departures = live.departures();
    let task = run(
        sink,
        Arc::clone(live),
        departures,
        Arc::clone(clock),
        workers.stopped(),
    );
    workers.spawn(format!("audit sink {}", S::LABEL), task);
}

/// Runs `sink` until `shutdown` resolves.
async fn run<S: Sink>(
    mut sink: S,
    live: Arc<Live>,
    mut departures: tokio::sync::mpsc::UnboundedReceiver<crate::gateway::core::Departed>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    // This instance, as a cursor's `holder` names it.
    let me = uuid::Uuid::now_v7().to_string();
    let lag = Lag::new(S::LABEL, Arc::clone(&clock));
    // By team, what was sent and awaits confirming (CONFIRMS_LATER).
    let mut unconfirmed: HashMap<String, (u64, u64)> = HashMap::new();
    // Whether the gauge was last set with no destination to send to.
    let mut idle_shown = false;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let core = live.current();
        while let Ok((keyspace, team)) = departures.try_recv() {
            sink.departed(keyspace, team, clock.now());
        }
        let Some(round) = sink.round(&core, clock.now()).await else {
            // With no destination the gauge is 0, set once, not each round.
            unconfirmed.clear();
            lag.keep(&[]);
            if !idle_shown {
                lag.show();
            }
            idle_shown = true;
            continue;
        };
        idle_shown = false;
        if round.fresh {
            unconfirmed.clear();
        }
        lag.keep(&round.teams);
        let caught_up = each_team(
            &mut sink,
            &core,
            &round,
            &me,
            &mut unconfirmed,
            &lag,
            &*clock,
        )
        .await;
        sink.caught_up(&caught_up);
        lag.show();
    }
}

/// A round of `sink` for each team of `round` that is due, confirming
/// what `unconfirmed` held for it from the last round: tells the sink how
/// each fared, leaves in `unconfirmed` what now awaits confirming, and
/// answers the teams caught up.
async fn each_team<S: Sink>(
    sink: &mut S,
    core: &Core,
    round: &Round,
    me: &str,
    unconfirmed: &mut HashMap<String, (u64, u64)>,
    lag: &Lag,
    clock: &dyn Clock,
) -> Vec<String> {
    let confirmed = std::mem::take(unconfirmed);
    let mut caught_up = Vec::new();
    for team in &round.teams {
        let now = clock.now();
        if !sink.due(team, now) {
            continue;
        }
        let done = confirmed.get(team).copied();
        let step = showing_lag(lag, one_team(sink, core, team, me, done, lag, now)).await;
        match &step {
            Ok(Step::CaughtUp) => caught_up.push(team.clone()),
            Ok(Step::Sent(Some(sent))) => {
                unconfirmed.insert(team.clone(), *sent);
            }
            Err(_) if S::CONFIRMS_LATER => unconfirmed.clear(),
            _ => {}
        }
        sink.ended(team, now, &step.map(|_| ()));
    }
    caught_up
}

/// `step`, awaited while the gauge still moves every tick: a destination
/// that hangs is an entry growing old.
async fn showing_lag<T>(lag: &Lag, step: impl Future<Output = T>) -> T {
    tokio::pin!(step);
    loop {
        tokio::select! {
            step = &mut step => break step,
            () = tokio::time::sleep(TICK) => lag.show(),
        }
    }
}

/// One round for `team`: takes or renews its sending (confirming `done`,
/// the cursor's version and last `seq` sent last round), settles a reset,
/// and hands the sink what follows the cursor; moves the cursor past
/// what the sink sent, at once unless it confirms later.
async fn one_team<S: Sink>(
    sink: &mut S,
    core: &Core,
    team: &str,
    me: &str,
    done: Option<(u64, u64)>,
    lag: &Lag,
    now: Timestamp,
) -> Result<Step> {
    let key = S::cursor_key(team);
    let Some(held) = hold(core, team, &key, me, done, now).await? else {
        // Another instance sends the team's entries, and shows their lag.
        lag.forget(team);
        return Ok(Step::Busy);
    };
    let Some((held, head)) = settle(core, team, &key, me, held, now).await? else {
        return Ok(Step::Settling);
    };
    let (version, from) = (held.version, held.known.seq);
    if head.seq <= from {
        lag.forget(team);
        return Ok(Step::CaughtUp);
    }
    let seqs: Vec<u64> = (from + 1..=head.seq.min(from + S::BATCH)).collect();
    let wanted: Vec<String> = seqs.iter().map(|s| keys::audit_entry(team, *s)).collect();
    let read = core.get(&wanted).await?;
    let entries: Vec<Entry> = seqs
        .into_iter()
        .zip(read)
        .filter_map(|(seq, raw)| Entry::parse(seq, raw))
        .collect();
    if let Some(first) = entries.first() {
        lag.note(team, first.time.unwrap_or(now));
    }
    let through = sink.send(core, team, &entries, lag).await?.unwrap_or(from);
    if S::CONFIRMS_LATER {
        return Ok(Step::Sent((through > from).then_some((version, through))));
    }
    match entries.iter().find(|e| e.seq > through) {
        _ if through >= head.seq => lag.forget(team),
        Some(next) => lag.note(team, next.time.unwrap_or(now)),
        None => {}
    }
    if through > from {
        // Taken: the cursor moves past them (another instance that took
        // the team meanwhile may send them again: at least once).
        hold(core, team, &key, me, Some((version, through)), now).await?;
    }
    Ok(Step::Sent(None))
}
