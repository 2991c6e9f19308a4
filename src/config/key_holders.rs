//! The teams' API keys in force, by their SHA-256 digest
//! ([decision 0490](../../docs/decisions/0490-api-keys-found-by-their-digest.md)):
//! which team holds a key is one lookup whatever the number of teams,
//! the entry found compared in constant time; the index is kept in
//! [`PARTS`] shared parts, so that putting one team in force copies the
//! parts its keys fall in and shares the others.
use std::collections::HashMap;
use std::sync::Arc;

use super::{Role, Team};
use crate::domain::secrets::ApiKeyHash;

/// The parts the index is kept in (by a digest's first byte): at 10 000
/// teams of two keys, a team put in force copies about 80 entries.
const PARTS: usize = 256;

/// A team's API key in force.
#[derive(Clone)]
pub struct KeyHolder {
    pub hash: ApiKeyHash,
    pub team: Arc<str>,
    pub key_id: Arc<str>,
    pub role: Role,
    /// Written through the operator API (not a team file).
    pub api: bool,
}

/// The holders of one digest: one, unless a set in force breaks the rule
/// that a key names one team.
type Part = HashMap<[u8; 32], Vec<KeyHolder>>;

/// Every team's API key in force, by digest; a clone shares every part.
#[derive(Clone)]
pub struct KeyHolders(Arc<Vec<Arc<Part>>>);

impl Default for KeyHolders {
    fn default() -> Self {
        KeyHolders(Arc::new(vec![Arc::default(); PARTS]))
    }
}

impl std::fmt::Debug for KeyHolders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: usize = self.0.iter().map(|p| p.len()).sum();
        write!(f, "KeyHolders({keys} keys)")
    }
}

/// The part `hash` falls in.
fn part_of(hash: &ApiKeyHash) -> usize {
    usize::from(hash.digest()[0]) % PARTS
}

impl KeyHolders {
    /// The index of `teams`' keys.
    pub fn of_teams<'a>(teams: impl IntoIterator<Item = &'a Arc<Team>>) -> KeyHolders {
        let mut holders = KeyHolders::default();
        for team in teams {
            holders.insert(team);
        }
        holders
    }

    /// The teams holding `key`: one lookup, each entry found compared
    /// with `key` in constant time.
    pub fn holders<'a>(&'a self, key: &ApiKeyHash) -> impl Iterator<Item = &'a KeyHolder> + 'a {
        let key = *key;
        let found = self.0[part_of(&key)].get(key.digest());
        let found = found.map_or(&[][..], Vec::as_slice);
        #[cfg(test)]
        COMPARED.with(|c| c.set(c.get() + found.len()));
        found.iter().filter(move |h| h.hash.matches(&key))
    }

    /// The one team holding `key`: of two, a file team before an API
    /// team (a stored team never takes a file team's key, whatever path
    /// put both in force: docs/operator-api.md#keys), then the first by id.
    pub fn holder(&self, key: &ApiKeyHash) -> Option<&KeyHolder> {
        self.holders(key)
            .min_by(|a, b| (a.api, &a.team).cmp(&(b.api, &b.team)))
    }

    /// `team`'s keys added.
    pub fn insert(&mut self, team: &Team) {
        let team_id: Arc<str> = team.id.as_str().into();
        for key in &team.api_keys {
            let holder = KeyHolder {
                hash: key.sha256,
                team: Arc::clone(&team_id),
                key_id: key.id.as_str().into(),
                role: key.role,
                api: team.api.is_some(),
            };
            let part = self.part_mut(&key.sha256);
            part.entry(*key.sha256.digest()).or_default().push(holder);
        }
    }

    /// `team`'s keys taken out (another team's of the same digest stay).
    pub fn remove(&mut self, team: &Team) {
        for key in &team.api_keys {
            let part = self.part_mut(&key.sha256);
            let digest = key.sha256.digest();
            if let Some(holders) = part.get_mut(digest) {
                holders.retain(|h| *h.team != *team.id);
                if holders.is_empty() {
                    part.remove(digest);
                }
            }
        }
    }

    /// The part of `hash`, copied first when shared.
    fn part_mut(&mut self, hash: &ApiKeyHash) -> &mut Part {
        let parts = Arc::make_mut(&mut self.0);
        Arc::make_mut(&mut parts[part_of(hash)])
    }

    /// How many of the parts are not `other`'s.
    #[cfg(test)]
    pub(crate) fn parts_apart(&self, other: &KeyHolders) -> usize {
        let apart = |(a, b): (&Arc<Part>, &Arc<Part>)| !Arc::ptr_eq(a, b);
        self.0
            .iter()
            .zip(other.0.iter())
            .filter(|p| apart(*p))
            .count()
    }
}

#[cfg(test)]
thread_local! {
    /// The entries [`KeyHolders::holders`] compared on this thread.
    static COMPARED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The entries [`KeyHolders::holders`] compared on this thread since the
/// last call.
#[cfg(test)]
pub(crate) fn compared() -> usize {
    COMPARED.with(|c| c.replace(0))
}
