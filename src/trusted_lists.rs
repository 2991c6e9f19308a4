//! The lists of trusted entities the teams' wallets name
//! (docs/wallet.md#trusted-lists), fetched and kept: each team's list by
//! its name, fetched once `refresh` has passed since it was last asked for
//! (the gateway's timer asks for every list in force, named by a
//! credential or not; a presentation that needs a list with no usable
//! copy asks for it then, one that holds a usable copy never waits for
//! a fetch), within 10 s and 1 MiB, no redirect followed, through the
//! team's reach. A fetch that fails or gives an unusable list keeps the
//! last usable copy until that copy itself stops being usable; a list with
//! no usable copy is a failing destination, logged once when it starts
//! failing and once when it is read again — never an empty list. A check
//! of a configuration not yet in force reads lists without keeping them
//! ([`TrustedLists::read_now`]), and keeps what it read once that
//! configuration is in force.
//!
//! One per process, held by the gateway's `Core` (kept across reloads);
//! a list whose url, signers or type change starts afresh once kept.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::answers::{body_capped, Uncapped};
use crate::config::TrustedListConfig;
use crate::domain::wallet::access::subject_key_id;
use crate::domain::wallet::issuers::TrustedIssuers;
use crate::domain::wallet::jose::to_b64url;
use crate::domain::wallet::trusted_list::{read, Expected, Fault, Listed, ACCEPT, MAX_LIST};
use crate::fared::{Failing, Fared};
use crate::time::Timestamp;

/// How long a fetch may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a failed fetch of a list with no usable copy is remembered:
/// presentations meanwhile fail at once, without asking again.
pub const FAILED_HOLD: Duration = Duration::from_secs(5);

/// A usable copy of a list: what was read, and its services as issuers,
/// found by subject, shared by every presentation that uses them.
#[derive(Debug)]
pub struct ListCopy {
    pub listed: Listed,
    pub issuance: Arc<TrustedIssuers>,
    pub revocation: Arc<TrustedIssuers>,
    /// The base64url Subject Key Identifiers of the issuance services'
    /// certificates that have one: a request's `trusted_authorities`.
    pub authorities: Vec<String>,
}

impl ListCopy {
    fn of(listed: Listed) -> Self {
        let set = |ders: &[Vec<u8>]| Arc::new(TrustedIssuers::from_ders(ders).unwrap_or_default());
        let mut authorities: Vec<String> = Vec::new();
        for ski in listed.issuance.iter().filter_map(|d| subject_key_id(d)) {
            let ski = to_b64url(&ski);
            if !authorities.contains(&ski) {
                authorities.push(ski);
            }
        }
        ListCopy {
            issuance: set(&listed.issuance),
            revocation: set(&listed.revocation),
            authorities,
            listed,
        }
    }
}

/// What is kept of one team's list.
#[derive(Default)]
struct Kept {
    /// The definition the copy was read under.
    fingerprint: String,
    copy: Option<Arc<ListCopy>>,
    /// When it was last asked for, and whether that failed.
    asked: Option<(Timestamp, bool)>,
    /// Held while one fetch of it runs, so that answers arriving together
    /// ask once.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

/// What changed when a new usable copy replaced another: the SHA-256
/// fingerprints (hex) of the service certificates added and removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changed {
    pub sequence: i64,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// The teams' lists, by team and name.
pub struct TrustedLists {
    http: crate::outbound::Clients,
    kept: Mutex<HashMap<(String, String), Kept>>,
    fared: Failing,
}

impl Default for TrustedLists {
    fn default() -> Self {
        // No proxy: one from the environment would see which lists are read.
        TrustedLists {
            http: crate::answers::client(TIMEOUT),
            kept: Mutex::new(HashMap::new()),
            fared: Failing::default(),
        }
    }
}

impl TrustedLists {
    /// The usable copy of `team`'s `list` at `now`: the one kept, as it
    /// is, however due its `refresh` (the gateway's timer fetches it in
    /// the background, and the copy answers meanwhile); only with none
    /// usable, one fetched now (unless a fetch failed in the last
    /// [`FAILED_HOLD`])
    /// (docs/decisions/0891-a-presentation-holding-a-usable-list-never-waits-for-its-fetch.md).
    /// `None`: no usable copy. With it, what a fetch made now changed.
    pub async fn usable(
        &self,
        (team, list): (&str, &TrustedListConfig),
        reach: crate::outbound::Reach,
        now: Timestamp,
    ) -> (Option<Arc<ListCopy>>, Option<Changed>) {
        if let Some(copy) = self.peek(team, list, now) {
            return (Some(copy), None);
        }
        let changed = match self.is_due(team, list, now, Due::Needed) {
            true => self.refresh((team, list), reach, now, Due::Needed).await,
            false => None,
        };
        (self.peek(team, list, now), changed)
    }

    /// The usable copy kept of `team`'s `list` at `now`, nothing fetched.
    pub fn peek(
        &self,
        team: &str,
        list: &TrustedListConfig,
        now: Timestamp,
    ) -> Option<Arc<ListCopy>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let copy = kept
            .get(&(team.to_string(), list.name.clone()))
            .filter(|k| k.fingerprint == list.fingerprint)
            .and_then(|k| k.copy.clone())
            .filter(|c| c.listed.usable_at(now, list.max_stale));
        gauges(team, list, copy.as_deref(), now);
        copy
    }

    /// The last usable copy kept of `team`'s `list`, usable now or not.
    fn kept_copy(&self, team: &str, list: &TrustedListConfig) -> Option<Arc<ListCopy>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(&(team.to_string(), list.name.clone()))
            .filter(|k| k.fingerprint == list.fingerprint)
            .and_then(|k| k.copy.clone())
    }

    /// Whether `team`'s `list` is to be fetched at `now` for `why`.
    pub fn is_due(&self, team: &str, list: &TrustedListConfig, now: Timestamp, why: Due) -> bool {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let Some(k) = kept
            .get(&(team.to_string(), list.name.clone()))
            .filter(|k| k.fingerprint == list.fingerprint)
        else {
            return true;
        };
        let usable = k
            .copy
            .as_ref()
            .is_some_and(|c| c.listed.usable_at(now, list.max_stale));
        match (k.asked, why) {
            (None, _) => true,
            (Some((at, _)), _) if now >= at.plus(list.refresh) => true,
            // The clock set back: what was asked "later" is no guide to a
            // presentation; the timer waits for `refresh` to pass.
            (Some((at, _)), Due::Needed) if now < at => true,
            (Some(_), Due::Refresh) => false,
            (Some((at, failed)), Due::Needed) => {
                !usable && (!failed || now >= at.plus(FAILED_HOLD))
            }
        }
    }

    /// Fetches `team`'s `list` at `now` when it is still due for `why`
    /// once no other fetch of it runs, and keeps what is usable: what
    /// changed in its services when a new copy replaced another (not for
    /// the first).
    pub async fn refresh(
        &self,
        (team, list): (&str, &TrustedListConfig),
        reach: crate::outbound::Reach,
        now: Timestamp,
        why: Due,
    ) -> Option<Changed> {
        let lock = {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            let k = kept.entry((team.to_string(), list.name.clone()));
            Arc::clone(&k.or_default().fetching)
        };
        let _one = lock.lock().await;
        // Another answer's fetch may have kept a copy meanwhile.
        if !self.is_due(team, list, now, why) {
            return None;
        }
        let read = self.read_now((team, list), reach, now).await;
        self.keep(read)
    }

    /// Fetches `team`'s `list` at `now` and reads it against its last
    /// usable copy, keeping nothing: what a check of a configuration not
    /// yet in force reads ([`TrustedLists::keep`] once it is). The fetch
    /// is counted.
    pub async fn read_now(
        &self,
        (team, list): (&str, &TrustedListConfig),
        reach: crate::outbound::Reach,
        now: Timestamp,
    ) -> ReadNow {
        let last = self.kept_copy(team, list);
        let read = match self.fetch(&list.url, reach).await {
            Ok(body) => read(
                &body,
                Expected {
                    kind: &list.kind,
                    signers: &list.signers,
                    last_sequence: last.as_ref().map(|c| c.listed.sequence),
                    max_stale: list.max_stale,
                },
                now,
            )
            .map(|listed| Arc::new(ListCopy::of(listed)))
            .map_err(Unread::Fault),
            Err(e) => Err(e),
        };
        let result = read.as_ref().err().map_or("ok", Unread::as_str);
        metrics::counter!("chatgate_trusted_list_fetches_total", "team" => team.to_string(), "list" => list.name.clone(), "result" => result).increment(1);
        let kept = last.filter(|c| c.listed.usable_at(now, list.max_stale));
        ReadNow {
            team: team.to_string(),
            list: list.clone(),
            at: now,
            read,
            kept,
        }
    }

    /// Keeps what `read` read, as the copy of its team's list: its
    /// definition's, a list defined otherwise before starting afresh; a
    /// copy kept meanwhile with a higher sequence number stays. What
    /// changed in its services when a new copy replaced another.
    pub fn keep(&self, read: ReadNow) -> Option<Changed> {
        let ReadNow {
            team,
            list,
            at: now,
            read,
            ..
        } = read;
        let mut changed = None;
        {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            let k = kept.entry((team.clone(), list.name.clone())).or_default();
            if k.fingerprint != list.fingerprint {
                k.fingerprint.clone_from(&list.fingerprint);
                k.copy = None;
            }
            k.asked = Some((now, read.is_err()));
            if let Ok(copy) = read.as_ref() {
                let last = k.copy.as_ref();
                if last.is_none_or(|old| old.listed.sequence <= copy.listed.sequence) {
                    changed = last.and_then(|old| changes(&old.listed, &copy.listed));
                    k.copy = Some(Arc::clone(copy));
                }
            }
        }
        let usable = self.peek(&team, &list, now).is_some();
        self.log(&team, &list, read.as_ref().err(), usable, now);
        changed
    }

    /// Forgets the copies of lists that are no longer in force: a team
    /// gone, or a list it no longer names (`in_force(team, list)` says
    /// which stay). A list named again later is fetched afresh.
    pub fn keep_only(&self, in_force: impl Fn(&str, &str) -> bool) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(team, list), _| in_force(team, list));
    }

    /// How many lists have a copy or a fetch remembered, of every team.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Makes every list of `team` that `lists` holds due, as if never
    /// asked for: a reload fetches them again.
    pub fn make_due<'a>(&self, team: &str, lists: impl IntoIterator<Item = &'a TrustedListConfig>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        for list in lists {
            if let Some(k) = kept.get_mut(&(team.to_string(), list.name.clone())) {
                k.asked = None;
            }
        }
    }

    /// Logs how `team`'s `list` fared at `now`: one warning when it has no
    /// usable copy any more, one line when it has one again; a fetch that
    /// fails while a usable copy is kept says so at `info`, once.
    fn log(
        &self,
        team: &str,
        list: &TrustedListConfig,
        failed: Option<&Unread>,
        usable: bool,
        now: Timestamp,
    ) {
        let name = format!("{team}/{}", list.name);
        let reason = failed.map_or("", Unread::as_str);
        match (self.fared.fared(&name, !usable, now), failed) {
            (Fared::StartedFailing, _) => tracing::warn!(
                team,
                list = %list.name,
                reason,
                "a trusted list has no usable copy: presentations that need it wait, their challenges open"
            ),
            (Fared::Recovered { since, failed }, _) => tracing::info!(
                team,
                list = %list.name,
                failed_attempts = failed,
                since = %since,
                "a trusted list is usable again"
            ),
            (Fared::Fine, Some(_)) => tracing::info!(
                team,
                list = %list.name,
                reason,
                "a trusted list's fetch failed: its last usable copy is kept"
            ),
            _ => {}
        }
    }

    /// The list served at `url`: 200 and at most [`MAX_LIST`] bytes of
    /// text; why not, in a few words that name no part of the url nor the
    /// body.
    async fn fetch(&self, url: &str, reach: crate::outbound::Reach) -> Result<String, Unread> {
        let url = url::Url::parse(url).map_err(|_| Unread::Unreachable("not a url"))?;
        if !crate::config::https_or_loopback(&url) {
            return Err(Unread::Unreachable("not https"));
        }
        let http = self
            .http
            .of(reach)
            .map_err(|_| Unread::Unreachable("no client"))?;
        let res = http
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(|e| {
                Unread::Unreachable(if crate::outbound::is_refused(&e) {
                    "refused: not a public address"
                } else if e.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                })
            })?;
        if res.status() != reqwest::StatusCode::OK {
            return Err(Unread::Unreachable("status not 200"));
        }
        let body = body_capped(res, MAX_LIST).await.map_err(|e| match e {
            Uncapped::TooLong => Unread::Fault(Fault::BadList),
            Uncapped::Read(_) => Unread::Unreachable("cut"),
        })?;
        String::from_utf8(body).map_err(|_| Unread::Fault(Fault::BadList))
    }
}

/// What makes a list due to be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Its `refresh` has passed since it was last asked for (or it never
    /// was): the timer's rule.
    Refresh,
    /// Also: it has no usable copy and its last fetch did not fail in the
    /// last [`FAILED_HOLD`], or the clock is behind when it was last
    /// asked for: the rule of a presentation that needs it and holds no
    /// usable copy ([`TrustedLists::usable`]).
    Needed,
}

/// A list read by [`TrustedLists::read_now`], not kept yet.
pub struct ReadNow {
    team: String,
    list: TrustedListConfig,
    at: Timestamp,
    read: Result<Arc<ListCopy>, Unread>,
    /// The copy kept of its definition when it was read, usable then.
    kept: Option<Arc<ListCopy>>,
}

impl ReadNow {
    /// The copy a check at its reading counts on: the one read when it
    /// is usable, else the last usable copy kept
    /// (docs/wallet.md#trusted-lists).
    pub fn usable(&self) -> Option<&Arc<ListCopy>> {
        self.read.as_ref().ok().or(self.kept.as_ref())
    }

    /// The team whose list it read.
    pub fn team(&self) -> &str {
        &self.team
    }

    /// The list it read.
    pub fn list(&self) -> &TrustedListConfig {
        &self.list
    }
}

/// Why a fetch gave no usable list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unread {
    /// Not fetched: why, in a few words.
    Unreachable(&'static str),
    Fault(Fault),
}

impl Unread {
    fn as_str(&self) -> &'static str {
        match self {
            Unread::Unreachable(_) => "unreachable",
            Unread::Fault(f) => f.as_str(),
        }
    }
}

/// Sets `team`'s `list`'s gauges at `now` from its usable copy.
fn gauges(team: &str, list: &TrustedListConfig, copy: Option<&ListCopy>, now: Timestamp) {
    let (t, l) = (team.to_string(), list.name.clone());
    metrics::gauge!("chatgate_trusted_list_usable", "team" => t.clone(), "list" => l.clone())
        .set(f64::from(u8::from(copy.is_some())));
    if let Some(copy) = copy {
        let left = copy.listed.next_update.unix_seconds() - now.unix_seconds();
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("chatgate_trusted_list_next_update_seconds", "team" => t, "list" => l)
            .set(left as f64);
    }
}

/// The services `new` adds and removes from `old`, each named by its
/// certificate's SHA-256; `None` when they are the same.
fn changes(old: &Listed, new: &Listed) -> Option<Changed> {
    let names = |l: &Listed| -> std::collections::BTreeSet<String> {
        use sha2::Digest as _;
        l.issuance
            .iter()
            .chain(&l.revocation)
            .map(|d| hex::encode(sha2::Sha256::digest(d)))
            .collect()
    };
    let (before, after) = (names(old), names(new));
    let added: Vec<String> = after.difference(&before).cloned().collect();
    let removed: Vec<String> = before.difference(&after).cloned().collect();
    (!added.is_empty() || !removed.is_empty()).then_some(Changed {
        sequence: new.sequence,
        added,
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(name: &str) -> TrustedListConfig {
        TrustedListConfig {
            name: name.into(),
            url: format!("https://lists.example/{name}"),
            signers: TrustedIssuers::default(),
            kind: crate::domain::wallet::trusted_list::ListKind {
                lote_type: "t".into(),
                territory: None,
                issuance: "i".into(),
                revocation: "r".into(),
            },
            refresh: Duration::from_secs(3600),
            max_stale: Duration::from_secs(3600),
            fingerprint: name.into(),
        }
    }

    /// A fetch of `team`'s `name` that failed, kept as one would be.
    fn asked(lists: &TrustedLists, team: &str, name: &str) {
        lists.keep(ReadNow {
            team: team.into(),
            list: list(name),
            at: Timestamp::from_unix_millis(0),
            read: Err(Unread::Unreachable("test")),
            kept: None,
        });
    }

    #[test]
    fn what_no_team_in_force_names_is_forgotten_and_the_rest_kept() {
        let lists = TrustedLists::default();
        asked(&lists, "acme", "pid");
        asked(&lists, "acme", "gone");
        asked(&lists, "deleted", "pid");
        assert_eq!(lists.remembered(), 3);
        lists.keep_only(|team, list| team == "acme" && list == "pid");
        assert_eq!(lists.remembered(), 1);
        let now = Timestamp::from_unix_millis(1_000);
        assert!(
            !lists.is_due("acme", &list("pid"), now, Due::Refresh),
            "kept"
        );
        assert!(
            lists.is_due("deleted", &list("pid"), now, Due::Refresh),
            "forgotten"
        );
    }
}
