//! The logins started from one identity-provider link: each fetch of the
//! link starts one (a `state`), and the link keeps only its
//! [`MAX_PER_LINK`] newest, so that fetching one link over and over stores
//! no more. They live in one record per link, found from the state alone:
//! a state is `<link tag>.<256 random bits>`, the tag naming the record
//! (marked by the gateway with its team's slot, `<4 hex>.<tag>`, so that
//! the record is in that slot; a state made before, unmarked).
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::flow::{digest, random_value, Started};
use crate::time::Timestamp;

/// The most logins a link keeps started at once; one more drops the oldest.
pub const MAX_PER_LINK: usize = 5;

/// Hex digits of a link's tag (64 bits: it only names a record).
const TAG_LEN: usize = 16;

/// The tag of link `link_id`'s states: a digest, so that the provider does
/// not learn the link's id.
pub fn link_tag(link_id: Uuid) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"oidc-link\n");
    hasher.update(link_id.as_bytes());
    hex::encode(&hasher.finalize()[..TAG_LEN / 2])
}

/// A new state for the link whose tag is `tag` (its [`link_tag`], as
/// marked).
pub fn new_state(tag: &str) -> String {
    format!("{tag}.{}", random_value())
}

/// The link tag a state names, if it has the form of one: a [`link_tag`],
/// or one marked with its team's slot (`<4 hex>.<tag>`).
pub fn tag_of(state: &str) -> Option<&str> {
    let (tag, rest) = state.rsplit_once('.')?;
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
    let form = match tag.split_once('.') {
        Some((mark, plain)) => hex(mark, 4) && hex(plain, TAG_LEN),
        None => hex(tag, TAG_LEN),
    };
    (form && !rest.is_empty()).then_some(tag)
}

/// One started login, under the digest of its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "d")]
    pub state: String,
    #[serde(rename = "s")]
    pub started: Started,
    /// The check a provider runs for it, when the provider was asked
    /// before the browser went (a network link's Vonage verification,
    /// docs/network-authentication.md#providers); absent for a redirect.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

/// A check a provider runs: its id, where the browser goes for it, and
/// until when it runs. An empty `id` is a check being started (a claim:
/// no second one starts meanwhile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    #[serde(rename = "i")]
    pub id: String,
    #[serde(rename = "u")]
    pub url: String,
    #[serde(rename = "x", with = "crate::time::stored")]
    pub until: Timestamp,
}

impl Check {
    /// A check being started `now`, claimed until `until`.
    pub fn claim(until: Timestamp) -> Check {
        Check {
            id: String::new(),
            url: String::new(),
            until,
        }
    }

    /// Whether it is still being started.
    pub fn starting(&self) -> bool {
        self.id.is_empty()
    }
}

/// A link's started logins, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkStates {
    #[serde(rename = "e")]
    pub entries: Vec<Entry>,
}

impl LinkStates {
    /// Adds the login `started` under `state`; those no longer live at
    /// `now` go, then the oldest beyond [`MAX_PER_LINK`].
    pub fn add(&mut self, state: &str, started: Started, now: Timestamp) {
        self.add_checked(state, started, None, now);
    }

    /// As [`LinkStates::add`], with the provider's `check`.
    pub fn add_checked(
        &mut self,
        state: &str,
        started: Started,
        check: Option<Check>,
        now: Timestamp,
    ) {
        self.entries.retain(|e| e.started.flow.live(now));
        self.entries.push(Entry {
            state: digest(state),
            started,
            check,
        });
        let over = self.entries.len().saturating_sub(MAX_PER_LINK);
        self.entries.drain(..over);
    }

    fn position(&self, state: &str) -> Option<usize> {
        let d = digest(state);
        self.entries
            .iter()
            .position(|e| bool::from(e.state.as_bytes().ct_eq(d.as_bytes())))
    }

    /// The login started under `state`, if the link still keeps it.
    pub fn find(&self, state: &str) -> Option<&Started> {
        self.entry(state).map(|e| &e.started)
    }

    /// The entry of `state`, if the link still keeps it.
    pub fn entry(&self, state: &str) -> Option<&Entry> {
        self.position(state).map(|i| &self.entries[i])
    }

    /// The entry of `state`, to change, if the link still keeps it.
    pub fn entry_mut(&mut self, state: &str) -> Option<&mut Entry> {
        self.position(state).map(|i| &mut self.entries[i])
    }

    /// The check running for the link at `now`, begun or being begun:
    /// the newest live entry's whose check has not run out.
    pub fn running(&self, now: Timestamp) -> Option<&Check> {
        (self.entries.iter().rev())
            .filter(|e| e.started.flow.live(now))
            .filter_map(|e| e.check.as_ref())
            .find(|c| c.until > now)
    }

    /// Removes every entry of the provider's check `id` (it answered).
    pub fn remove_check(&mut self, id: &str) {
        self.entries
            .retain(|e| e.check.as_ref().is_none_or(|c| c.id != id));
    }

    /// Removes the login started under `state` (it is answered).
    pub fn remove(&mut self, state: &str) {
        if let Some(i) = self.position(state) {
            self.entries.remove(i);
        }
    }

    /// Uses up the login started under `state`, answered at `came_to`
    /// (the team the way back names, if it names one) from a browser
    /// whose cookie holds `cookie`, at `now`, the way back naming the
    /// provider's `check` (`None`: a redirect's callback): the entry
    /// must be kept, pass [`Flow::unanswerable`](crate::oidc::flow::Flow::unanswerable)
    /// and be that check's; it goes, with every state that joined its
    /// check. `Err`: the reason logged, and nothing is removed (a state
    /// from another browser stays good for its own).
    pub fn take(
        &mut self,
        state: &str,
        came_to: Option<&str>,
        cookie: Option<&str>,
        check: Option<&str>,
        now: Timestamp,
    ) -> Result<Started, &'static str> {
        let started = self.answerable(state, came_to, cookie, check, now)?;
        match check {
            Some(id) => self.remove_check(id),
            None => self.remove(state),
        }
        Ok(started)
    }

    /// As [`LinkStates::take`], but only the login started under `state`
    /// goes: a way back that brought no answer to the provider's check (a
    /// landing without a code) leaves the check to the states that joined
    /// it, whose browsers may still bring its answer.
    pub fn take_alone(
        &mut self,
        state: &str,
        cookie: Option<&str>,
        check: Option<&str>,
        now: Timestamp,
    ) -> Result<Started, &'static str> {
        let started = self.answerable(state, None, cookie, check, now)?;
        self.remove(state);
        Ok(started)
    }

    /// The login started under `state`, if an answer may use it up (as
    /// [`LinkStates::take`] says); the reason otherwise.
    fn answerable(
        &self,
        state: &str,
        came_to: Option<&str>,
        cookie: Option<&str>,
        check: Option<&str>,
        now: Timestamp,
    ) -> Result<Started, &'static str> {
        let entry = self.entry(state).ok_or("unknown, dropped or answered")?;
        let started = &entry.started;
        if let Some(rung) = started
            .flow
            .unanswerable(&started.team, came_to, cookie, now)
        {
            return Err(rung.reason());
        }
        if entry.check.as_ref().map(|c| c.id.as_str()) != check {
            return Err("not this browser's request");
        }
        Ok(started.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::flow::Flow;

    fn started(at: i64) -> Started {
        Started {
            team: "acme".into(),
            interaction_id: Uuid::nil(),
            link_id: Uuid::nil(),
            flow: Flow {
                issuer: None,
                login_hint: None,
                nonce: "n".into(),
                verifier: "v".into(),
                browser: digest("b"),
                started_at: Timestamp::from_unix_seconds(at),
                acr_values: Vec::new(),
            },
        }
    }

    /// A link's started logins as the store holds them today (`o:` keys,
    /// docs/architecture.md#keys-and-slots): a renamed field fails here,
    /// not in a rolling upgrade.
    #[test]
    fn started_logins_of_today_read_back_equal() {
        let mut one = started(1_795_000_000);
        one.flow.issuer = Some("https://id.example".into());
        one.flow.login_hint = Some("cust-42".into());
        let stored = LinkStates {
            entries: vec![Entry {
                state: "d1".into(),
                started: one,
                check: None,
            }],
        };
        let text = format!(
            concat!(
                r#"{{"e":[{{"d":"d1","s":{{"t":"acme","i":"{nil}","l":"{nil}","#,
                r#""is":"https://id.example","ec":"cust-42","n":"n","v":"v","b":"{b}","at":1795000000000}}}}]}}"#
            ),
            nil = Uuid::nil(),
            b = digest("b")
        );
        assert_eq!(serde_json::to_string(&stored).unwrap(), text);
        let back: LinkStates = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        // Written before the issuer was kept: read, with none.
        let older = text.replace(r#""is":"https://id.example","#, "");
        let back: LinkStates = serde_json::from_str(&older).unwrap();
        assert_eq!(back.entries[0].started.flow.issuer, None);
    }

    /// A provider's check beside its state, as the store holds it.
    #[test]
    fn a_check_reads_back_equal_and_runs_until_its_end() {
        let t0 = 1_795_000_000;
        let mut link = LinkStates::default();
        let at = Timestamp::from_unix_seconds(t0);
        let check = Check {
            id: "r-1".into(),
            url: "https://v.example/c".into(),
            until: Timestamp::from_unix_seconds(t0 + 60),
        };
        link.add_checked("s1", started(t0), Some(check.clone()), at);
        let text = serde_json::to_string(&link).unwrap();
        assert!(
            text.ends_with(r#""c":{"i":"r-1","u":"https://v.example/c","x":1795000060000}}]}"#),
            "{text}"
        );
        let back: LinkStates = serde_json::from_str(&text).unwrap();
        assert_eq!(back.entry("s1").unwrap().check.as_ref(), Some(&check));
        assert_eq!(link.running(at), Some(&check));
        assert_eq!(link.running(Timestamp::from_unix_seconds(t0 + 60)), None);
        link.add("s2", started(t0), at);
        assert_eq!(
            link.running(at),
            Some(&check),
            "a newer redirect is no check"
        );
        link.remove_check("r-1");
        assert!(link.entry("s1").is_none() && link.entry("s2").is_some());
        assert_eq!(link.running(at), None);
    }

    /// The ladder's rungs in their order; a refused take removes nothing.
    #[test]
    fn a_take_climbs_team_age_browser_and_check_in_that_order() {
        let t0 = 1_795_000_000;
        let at = Timestamp::from_unix_seconds(t0);
        let late = Timestamp::from_unix_seconds(t0 + 600);
        let check = Check {
            id: "r-1".into(),
            url: "https://v.example/c".into(),
            until: Timestamp::from_unix_seconds(t0 + 60),
        };
        let mut link = LinkStates::default();
        link.add("s1", started(t0), at);
        link.add_checked("s2", started(t0), Some(check), at);
        let mut take = |state, came_to, cookie, check, now| {
            link.take(state, came_to, cookie, check, now)
                .map(|s| s.team)
        };
        let b = Some("b");
        assert_eq!(
            take("s9", None, b, None, at),
            Err("unknown, dropped or answered")
        );
        // Another team, old and another browser at once: the team first.
        assert_eq!(
            take("s1", Some("globex"), Some("x"), None, late),
            Err("started for another team")
        );
        assert_eq!(
            take("s1", Some("acme"), Some("x"), None, late),
            Err("older than 10 minutes")
        );
        assert_eq!(
            take("s1", None, Some("x"), None, at),
            Err("not this browser's")
        );
        assert_eq!(
            take("s1", None, b, Some("r-1"), at),
            Err("not this browser's request")
        );
        assert_eq!(
            take("s2", None, b, None, at),
            Err("not this browser's request")
        );
        assert_eq!(take("s1", Some("acme"), b, None, at), Ok("acme".into()));
        assert_eq!(
            take("s1", None, b, None, at),
            Err("unknown, dropped or answered")
        );
        assert_eq!(take("s2", None, b, Some("r-1"), at), Ok("acme".into()));
        assert!(link.entries.is_empty());
    }

    /// A take alone uses up its own state and leaves the check to the
    /// states that joined it; it climbs the same rungs.
    #[test]
    fn a_take_alone_leaves_the_check_to_the_others() {
        let t0 = 1_795_000_000;
        let at = Timestamp::from_unix_seconds(t0);
        let check = Check {
            id: "r-1".into(),
            url: "https://v.example/c".into(),
            until: Timestamp::from_unix_seconds(t0 + 60),
        };
        let mut link = LinkStates::default();
        link.add_checked("s1", started(t0), Some(check.clone()), at);
        link.add_checked("s2", started(t0), Some(check.clone()), at);
        let b = Some("b");
        assert_eq!(
            link.take_alone("s1", Some("x"), Some("r-1"), at)
                .map(|s| s.team),
            Err("not this browser's")
        );
        assert_eq!(
            link.take_alone("s1", b, Some("r-2"), at).map(|s| s.team),
            Err("not this browser's request")
        );
        assert_eq!(
            link.take_alone("s1", b, Some("r-1"), at).map(|s| s.team),
            Ok("acme".into())
        );
        assert!(link.entry("s1").is_none());
        assert_eq!(link.running(at), Some(&check), "s2 still holds it");
        assert_eq!(
            link.take("s2", None, b, Some("r-1"), at).map(|s| s.team),
            Ok("acme".into())
        );
        assert!(link.entries.is_empty());
    }

    #[test]
    fn a_state_names_its_links_record_and_nothing_else() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let s = new_state(&link_tag(a));
        assert_eq!(tag_of(&s), Some(link_tag(a).as_str()));
        let marked = format!("0a1b.{}", link_tag(a));
        assert_eq!(tag_of(&new_state(&marked)), Some(marked.as_str()));
        assert_eq!(tag_of(&format!("0a1.{}.x", link_tag(a))), None);
        assert_ne!(link_tag(a), link_tag(b));
        assert!(!s.contains(&a.simple().to_string()));
        assert_eq!(tag_of("no-dot"), None);
        assert_eq!(tag_of("0123456789abcdef."), None);
        assert_eq!(tag_of("0123456789abcdeg.x"), None);
    }

    #[test]
    fn the_five_newest_live_states_are_kept() {
        let t0 = 1_795_000_000;
        let mut link = LinkStates::default();
        for i in 0..7 {
            link.add(
                &format!("s{i}"),
                started(t0 + i),
                Timestamp::from_unix_seconds(t0 + i),
            );
        }
        assert!(link.find("s0").is_none() && link.find("s1").is_none());
        assert!((2..7).all(|i| link.find(&format!("s{i}")).is_some()));
        link.remove("s4");
        assert!(link.find("s4").is_none());
        assert_eq!(link.entries.len(), 4);
        // Ten minutes on, the old ones go when the next is added.
        let later = Timestamp::from_unix_seconds(t0 + 604);
        link.add("s9", started(t0 + 604), later);
        let kept: Vec<_> = link
            .entries
            .iter()
            .map(|e| e.started.flow.started_at)
            .collect();
        assert_eq!(
            kept,
            [5, 6, 604].map(|d| Timestamp::from_unix_seconds(t0 + d))
        );
    }
}
