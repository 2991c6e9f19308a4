//! A person signed in to the console (docs/console-sign-in.md): the role
//! the workforce provider's role claim gives, the name an ID token gives,
//! and when a session ends. Plain functions of `now`.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::Timestamp;

/// What a signed-in person may do: an agent's endpoints, and an admin's
/// unlock too (docs/console-sign-in.md#what-a-session-may-do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleRole {
    Agent,
    Admin,
}

/// The role `claim` (a string or an array of strings) gives: admin when
/// any value is one of `admin_values` (admin wins), else agent when one is
/// one of `agent_values`, else none (the person is not signed in).
pub fn role_of(
    claim: Option<&Value>,
    agent_values: &[String],
    admin_values: &[String],
) -> Option<ConsoleRole> {
    let values: Vec<&str> = match claim {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let any_of = |listed: &[String]| values.iter().any(|v| listed.iter().any(|l| l == v));
    if any_of(admin_values) {
        Some(ConsoleRole::Admin)
    } else if any_of(agent_values) {
        Some(ConsoleRole::Agent)
    } else {
        None
    }
}

/// The name a person goes by in the audit trail: the token's
/// `preferred_username`, else `email`, else `name` (a non-empty string).
pub fn person_name(claims: &Map<String, Value>) -> Option<String> {
    ["preferred_username", "email", "name"]
        .into_iter()
        .find_map(|c| {
            claims
                .get(c)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string)
}

/// Why a session ended (`detail.ended` of `console.signed_out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `POST /console/sign-out`.
    Logout,
    /// `session_idle` without a request.
    Idle,
    /// `session_max` after the sign-in.
    MaxAge,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Logout => "logout",
            Ended::Idle => "idle",
            Ended::MaxAge => "max_age",
        }
    }
}

/// How long a session's record outlives its end, so that a cookie that
/// comes back within it has the end recorded (`idle`, `max_age`).
pub const KEPT_AFTER_END: Duration = Duration::from_secs(3600);

/// A console session: whose, which role, since when, and its last
/// request (the id itself is only in the browser's cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its team's keyspace (`store::keys::keyspace`): a session of a
    /// deleted team signs no one in to a team written again under its id.
    pub team: String,
    pub sub: String,
    pub name: Option<String>,
    pub role: ConsoleRole,
    pub signed_in_at: Timestamp,
    /// The last request it authenticated, as last written: at most
    /// [`Session::renewal_due`]'s step behind the real one.
    pub last_seen: Timestamp,
}

/// The most a session's recorded last request may lag the real one: a
/// request this soon after the recorded one does not write the session
/// (docs/console-sign-in.md#the-session).
pub const RENEW_EVERY: Duration = Duration::from_secs(60);

/// A session's two limits: `session_idle` and `session_max`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle: Duration,
    pub max: Duration,
}

impl Session {
    /// Whether it has ended at `now`, and why: the absolute limit first.
    pub fn ended(&self, now: Timestamp, limits: Limits) -> Option<Ended> {
        if now.since(self.signed_in_at) >= limits.max {
            Some(Ended::MaxAge)
        } else if now.since(self.last_seen) >= limits.idle {
            Some(Ended::Idle)
        } else {
            None
        }
    }

    /// Whether a request at `now` writes its `last_seen`: when the one
    /// recorded is [`RENEW_EVERY`] old, or a tenth of `session_idle` if
    /// that is shorter. Otherwise the session is left as it is, so it may
    /// end that much before `session_idle` after the real last request,
    /// never after (docs/decisions/0350-a-session-is-renewed-once-a-minute.md).
    pub fn renewal_due(&self, now: Timestamp, limits: Limits) -> bool {
        now.since(self.last_seen) >= RENEW_EVERY.min(limits.idle / 10)
    }

    /// When it ends if no request comes: `session_idle` after the last
    /// one recorded, at most `session_max` after the sign-in.
    pub fn ends_at(&self, limits: Limits) -> Timestamp {
        let idle = self.last_seen.plus(limits.idle);
        let max = self.signed_in_at.plus(limits.max);
        if idle.unix_millis() < max.unix_millis() {
            idle
        } else {
            max
        }
    }

    /// How long its record is kept from `now`: to its end, and
    /// [`KEPT_AFTER_END`] more.
    pub fn keep_for(&self, now: Timestamp, limits: Limits) -> Duration {
        self.ends_at(limits).since(now) + KEPT_AFTER_END
    }
}

/// The sign-in starts one team may still make, at most `rate` a second
/// (`[console] sign_in_rate`), a second's worth at once: a token bucket
/// counted in thousandths of a start, refilled as time passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartBudget {
    /// Thousandths of a start left.
    left: u64,
    /// When it was last refilled.
    at: Timestamp,
}

impl StartBudget {
    /// A full budget at `now`: `rate` starts at once.
    pub fn full(rate: u32, now: Timestamp) -> Self {
        StartBudget {
            left: u64::from(rate.max(1)) * 1000,
            at: now,
        }
    }

    /// One start at `now`: `Ok`, or `Err` with the whole seconds until one
    /// is allowed again (at least 1, for `Retry-After`). A clock that went
    /// back refills nothing.
    pub fn take(&mut self, rate: u32, now: Timestamp) -> Result<(), u64> {
        let rate = u64::from(rate.max(1));
        let elapsed = u64::try_from(now.since(self.at).as_millis()).unwrap_or(u64::MAX);
        self.left = self
            .left
            .saturating_add(elapsed.saturating_mul(rate))
            .min(rate * 1000);
        self.at = self.at.max(now);
        if self.left >= 1000 {
            self.left -= 1000;
            return Ok(());
        }
        let wait_ms = (1000 - self.left).div_ceil(rate);
        Err(wait_ms.div_ceil(1000).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_team_starts_at_most_rate_sign_ins_a_second() {
        let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
        let mut b = StartBudget::full(10, t0);
        for _ in 0..10 {
            assert_eq!(b.take(10, t0), Ok(()));
        }
        assert_eq!(b.take(10, t0), Err(1));
        // A tenth of a second gives one more, not two.
        let t1 = t0.plus(Duration::from_millis(100));
        assert_eq!(b.take(10, t1), Ok(()));
        assert_eq!(b.take(10, t1), Err(1));
        // A long pause fills it to one second's worth, no more.
        let t2 = t1.plus(Duration::from_secs(60));
        for _ in 0..10 {
            assert_eq!(b.take(10, t2), Ok(()));
        }
        assert_eq!(b.take(10, t2), Err(1));
        // A clock that went back refills nothing.
        assert_eq!(b.take(10, t0), Err(1));
        // At one a second, the next start waits a second.
        let mut slow = StartBudget::full(1, t0);
        assert_eq!(slow.take(1, t0), Ok(()));
        assert_eq!(slow.take(1, t0.plus(Duration::from_millis(1))), Err(1));
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn admin_wins_and_no_listed_value_is_no_role() {
        let (agents, admins) = (strings(&["agents"]), strings(&["admins"]));
        let role = |v: Value| role_of(Some(&v), &agents, &admins);
        assert_eq!(role(json!("agents")), Some(ConsoleRole::Agent));
        assert_eq!(role(json!(["x", "agents"])), Some(ConsoleRole::Agent));
        assert_eq!(role(json!(["agents", "admins"])), Some(ConsoleRole::Admin));
        assert_eq!(role(json!("admins")), Some(ConsoleRole::Admin));
        assert_eq!(role(json!(["x"])), None);
        assert_eq!(role(json!("Agents")), None);
        assert_eq!(role(json!(42)), None);
        assert_eq!(role_of(None, &agents, &admins), None);
    }

    #[test]
    fn the_name_is_the_preferred_username_else_the_email_else_the_name() {
        let name = |v: Value| person_name(v.as_object().unwrap());
        let all = json!({"preferred_username": "jdoe", "email": "j@x", "name": "J"});
        assert_eq!(name(all).as_deref(), Some("jdoe"));
        let some = json!({"preferred_username": "", "email": "j@x", "name": "J"});
        assert_eq!(name(some).as_deref(), Some("j@x"));
        assert_eq!(name(json!({"name": "J"})).as_deref(), Some("J"));
        assert_eq!(name(json!({})), None);
    }

    #[test]
    fn a_session_ends_idle_or_at_its_absolute_limit() {
        let t0 = Timestamp::from_unix_seconds(1_795_000_000);
        let limits = Limits {
            idle: Duration::from_secs(900),
            max: Duration::from_secs(3600),
        };
        let mut s = Session {
            team: "acme".into(),
            sub: "u-1".into(),
            name: None,
            role: ConsoleRole::Agent,
            signed_in_at: t0,
            last_seen: t0,
        };
        let at = |secs| t0.plus(Duration::from_secs(secs));
        assert_eq!(s.ended(at(899), limits), None);
        assert_eq!(s.ended(at(900), limits), Some(Ended::Idle));
        s.last_seen = at(3000);
        assert_eq!(s.ended(at(3599), limits), None);
        assert_eq!(s.ended(at(3600), limits), Some(Ended::MaxAge));
        assert_eq!(s.ends_at(limits), at(3600));
        assert_eq!(
            s.keep_for(at(3000), limits),
            Duration::from_secs(600) + KEPT_AFTER_END
        );
    }

    #[test]
    fn a_request_writes_the_session_once_a_minute_or_tenth_of_its_idle_time() {
        let t0 = Timestamp::from_unix_seconds(1_795_000_000);
        let at = |secs| t0.plus(Duration::from_secs(secs));
        let s = Session {
            team: "acme".into(),
            sub: "u-1".into(),
            name: None,
            role: ConsoleRole::Agent,
            signed_in_at: t0,
            last_seen: t0,
        };
        let limits = |idle| Limits {
            idle: Duration::from_secs(idle),
            max: Duration::from_secs(43_200),
        };
        // 15 minutes idle: once a minute.
        assert!(!s.renewal_due(t0, limits(900)));
        assert!(!s.renewal_due(at(59), limits(900)));
        assert!(s.renewal_due(at(60), limits(900)));
        // One minute idle: every 6 seconds, so a busy session never ends idle.
        assert!(!s.renewal_due(at(5), limits(60)));
        assert!(s.renewal_due(at(6), limits(60)));
        // A clock that went back writes nothing.
        assert!(!s.renewal_due(t0.minus(Duration::from_secs(120)), limits(900)));
    }
}
