//! What a team's number checks keep between requests: its own HTTP client
//! (so a provider that hangs holds no other team's connections), its
//! provider's token, the answers it reuses for `cache`, and how its
//! provider fares. The gateway keeps it across reloads while the team's
//! `[number_checks]` stays as it was
//! (docs/number-checks.md#what-is-checked-and-when); a changed one starts
//! afresh.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{Asked, CheckError, NumberChecks, Question, TokenSlot, TIMEOUT};
use crate::domain::number_check::{self, Answer, Finding};
use crate::fared::{Failing, Fared};
use crate::time::Timestamp;

/// The most answers a team keeps; past it the expired ones go, then the
/// oldest.
const CACHE_MAX: usize = 10_000;

/// Answers by the number's digest and whether forwarding was asked (each
/// dated when it was answered).
type Kept = HashMap<([u8; 32], bool), Answer>;

/// The live state of every team's number checks, by team.
#[derive(Default)]
pub struct Askers {
    teams: Mutex<HashMap<String, Arc<Asking>>>,
}

impl Askers {
    /// What `nc`'s provider says of `number` (E.164) for a voice code
    /// (`voice`) or not, at `now` ([`Asking::ask`]), with the state kept
    /// for `nc` as configured now.
    pub async fn ask(
        &self,
        nc: &NumberChecks,
        number: &str,
        voice: bool,
        now: Timestamp,
    ) -> Answer {
        self.of(nc).ask(nc, number, voice, now).await
    }

    /// The state kept for `nc`'s team, new when there is none or when it
    /// was kept for another configuration.
    fn of(&self, nc: &NumberChecks) -> Arc<Asking> {
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        match teams.get(&nc.team) {
            Some(kept) if kept.configured == nc.fingerprint() => Arc::clone(kept),
            _ => {
                let fresh = Arc::new(Asking::new(nc.fingerprint()));
                teams.insert(nc.team.clone(), Arc::clone(&fresh));
                fresh
            }
        }
    }

    /// Drops the state of each team whose configuration `now_configured`
    /// (the fingerprint of its `[number_checks]` after a reload, `None`
    /// when it has none) no longer names.
    pub fn retain(&self, now_configured: impl Fn(&str) -> Option<[u8; 32]>) {
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        teams.retain(|team, kept| now_configured(team) == Some(kept.configured));
    }
}

/// One team's live state, for the configuration whose fingerprint is
/// `configured`.
pub struct Asking {
    configured: [u8; 32],
    http: crate::outbound::Clients,
    cache: Mutex<Kept>,
    token: TokenSlot,
    failing: Failing,
}

impl Asking {
    fn new(configured: [u8; 32]) -> Self {
        Asking {
            configured,
            http: crate::answers::client(TIMEOUT),
            cache: Mutex::new(HashMap::new()),
            token: tokio::sync::Mutex::new(None),
            failing: Failing::default(),
        }
    }

    /// What the provider says of `number` (E.164) for a voice code
    /// (`voice`) or not, at `now`: from the cache while an answer without
    /// an error is younger than `cache` (dated when it was answered, not
    /// now), else asked within [`TIMEOUT`].
    /// Counted in `chatgate_number_checks_total`; a provider that starts
    /// failing is logged once, and once when it answers again.
    async fn ask(&self, nc: &NumberChecks, number: &str, voice: bool, now: Timestamp) -> Answer {
        let forwarding = nc.settings.asks_forwarding(voice);
        let key = (Sha256::digest(number.as_bytes()).into(), forwarding);
        if let Some(answer) = self.cached(nc, &key, now) {
            return answer;
        }
        let http = match self.http.of(nc.reach) {
            Ok(http) => http,
            Err(e) => {
                let unbuilt = || Err(CheckError(e.to_string()));
                return self.answered(nc, key, (unbuilt(), forwarding.then(unbuilt)), now);
            }
        };
        let question = Question {
            http,
            token: &self.token,
            settings: &nc.settings,
            number,
            forwarding,
            now,
        };
        let asked = tokio::time::timeout(TIMEOUT, nc.provider.ask(&question));
        let answers = match asked.await {
            Ok(answers) => answers,
            Err(_) => {
                let late = || Err(CheckError("no answer within 5 s".into()));
                (late(), forwarding.then(late))
            }
        };
        self.answered(nc, key, answers, now)
    }

    /// What `nc`'s provider answered (`sim_swap`, `call_forwarding`) for
    /// the number of `key`, counted, logged and kept.
    fn answered(
        &self,
        nc: &NumberChecks,
        key: ([u8; 32], bool),
        (sim_swap, call_forwarding): (Asked, Option<Asked>),
        now: Timestamp,
    ) -> Answer {
        let error = [Some(&sim_swap), call_forwarding.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|a: &Asked| a.as_ref().err())
            .cloned();
        let answer = Answer {
            sim_swap: sim_swap.unwrap_or(Finding::Error),
            call_forwarding: call_forwarding.map(|a| a.unwrap_or(Finding::Error)),
            at: now,
        };
        let source = nc.source().as_str();
        let result = number_check::result(&answer);
        metrics::counter!("chatgate_number_checks_total", "kind" => source, "result" => result)
            .increment(1);
        self.log(nc, error.as_ref(), now);
        if error.is_none() {
            self.keep(nc, key, answer, now);
        }
        answer
    }

    /// A kept answer younger than `cache`: an answer that asked about
    /// forwarding serves a question that does not.
    fn cached(&self, nc: &NumberChecks, key: &([u8; 32], bool), now: Timestamp) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |k: &([u8; 32], bool)| {
            let answer = cache.get(k)?;
            (now < answer.at.plus(nc.cache_for)).then_some(*answer)
        };
        fresh(key).or_else(|| {
            let (digest, forwarding) = key;
            let wider = fresh(&(*digest, true)).filter(|_| !forwarding)?;
            Some(Answer {
                call_forwarding: None,
                ..wider
            })
        })
    }

    fn keep(&self, nc: &NumberChecks, key: ([u8; 32], bool), answer: Answer, now: Timestamp) {
        if nc.cache_for.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            let cache_for = nc.cache_for;
            cache.retain(|_, answer| now < answer.at.plus(cache_for));
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, answer);
    }

    fn log(&self, nc: &NumberChecks, error: Option<&CheckError>, now: Timestamp) {
        let kind = nc.source().as_str();
        let team = &nc.team;
        match (error, self.failing.fared(team, error.is_some(), now)) {
            (Some(e), Fared::StartedFailing) => {
                tracing::warn!(team = %team, kind, error = %e.0,
                "number checks failing: one line when they answer again")
            }
            (Some(e), _) => {
                tracing::debug!(team = %team, kind, error = %e.0, "number check failed")
            }
            (None, Fared::Recovered { since, failed }) => tracing::info!(team = %team, kind,
                failing_secs = now.since(since).as_secs_f64(), failed_attempts = failed,
                "number checks answer again"),
            (None, _) => {}
        }
    }
}
