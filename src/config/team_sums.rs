//! What the teams of a configuration add up to, kept with them (at the
//! load and by [`Config::with_api_teams`](super::Config::with_api_teams))
//! so that nothing a write puts in force goes round the teams to learn it
//! ([decision 0491](../../docs/decisions/0491-a-write-costs-its-own-team.md)):
//! the channels the teams list and whether one has `[oidc]` (what the
//! served OpenAPI documents show), the teams of each `[mcp] oauth` issuer
//! (whose access token a bearer is, and the issuers the MCP server's
//! metadata lists), how many are API teams (a gauge), the teams whose
//! wallet names trusted lists (what the lists' timer looks at), and
//! their keyspaces as a persistent set, which a worker that keeps the one
//! it last saw compares with the one in force by the parts they do not
//! share ([`TeamSums::keyspaces_since`]).
use std::collections::{BTreeMap, BTreeSet};

use super::Team;

/// The sums of a configuration's teams; a clone shares the keyspaces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamSums {
    /// How many teams list each channel (`channels`), by name.
    channels: BTreeMap<String, usize>,
    /// How many teams have `[oidc]`.
    oidc: usize,
    /// The teams with `[mcp] oauth`, by its issuer
    /// (docs/agents.md#oauth-access-tokens).
    mcp_oauth: BTreeMap<String, BTreeSet<String>>,
    /// How many teams were written through the operator API.
    api: usize,
    /// The teams whose `[wallet]` names a trusted list, by id.
    trusted_lists: BTreeSet<String>,
    /// Every team's keyspace.
    keyspaces: imbl::OrdSet<String>,
}

impl TeamSums {
    /// The sums of `teams`.
    pub fn of_teams<'a>(teams: impl IntoIterator<Item = &'a std::sync::Arc<Team>>) -> TeamSums {
        let mut sums = TeamSums::default();
        for team in teams {
            sums.add(team);
        }
        sums
    }

    /// `team` counted in.
    pub fn add(&mut self, team: &Team) {
        for name in &team.channels {
            *self.channels.entry(name.clone()).or_default() += 1;
        }
        self.oidc += usize::from(team.oidc.is_some());
        self.api += usize::from(team.api.is_some());
        self.keyspaces.insert(team.keyspace.clone());
        if has_trusted_lists(team) {
            self.trusted_lists.insert(team.id.clone());
        }
        if let Some(oauth) = &team.mcp_oauth {
            (self.mcp_oauth.entry(oauth.provider.issuer.clone()))
                .or_default()
                .insert(team.id.clone());
        }
    }

    /// `team`, counted in before, counted out.
    pub fn remove(&mut self, team: &Team) {
        for name in &team.channels {
            if let Some(n) = self.channels.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    self.channels.remove(name);
                }
            }
        }
        self.oidc -= usize::from(team.oidc.is_some());
        self.api -= usize::from(team.api.is_some());
        self.keyspaces.remove(&team.keyspace);
        if has_trusted_lists(team) {
            self.trusted_lists.remove(&team.id);
        }
        if let Some(oauth) = &team.mcp_oauth {
            let issuer = &oauth.provider.issuer;
            if let Some(teams) = self.mcp_oauth.get_mut(issuer) {
                teams.remove(&team.id);
                if teams.is_empty() {
                    self.mcp_oauth.remove(issuer);
                }
            }
        }
    }

    /// The channels some team lists, by name.
    pub fn channels(&self) -> impl Iterator<Item = &String> {
        self.channels.keys()
    }

    /// Whether some team has `[oidc]`.
    pub fn any_oidc(&self) -> bool {
        self.oidc > 0
    }

    /// The issuers of the teams' `[mcp] oauth`, each once, sorted.
    pub fn mcp_issuers(&self) -> impl Iterator<Item = &String> {
        self.mcp_oauth.keys()
    }

    /// The teams whose `[mcp] oauth` is `issuer`'s, by id.
    pub fn mcp_teams_of(&self, issuer: &str) -> impl Iterator<Item = &String> {
        self.mcp_oauth.get(issuer).into_iter().flatten()
    }

    /// The teams whose `[wallet]` names a trusted list, by id.
    pub fn trusted_list_teams(&self) -> impl Iterator<Item = &String> {
        self.trusted_lists.iter()
    }

    /// How many API teams there are.
    pub fn api_teams(&self) -> usize {
        self.api
    }

    /// The keyspaces of these sums that `seen` (the sums of a
    /// configuration seen before) lacks: the parts the two share are not
    /// looked at, so after one team written it is that team's.
    pub fn keyspaces_since<'a>(&'a self, seen: &'a TeamSums) -> impl Iterator<Item = &'a String> {
        seen.keyspaces
            .diff(&self.keyspaces)
            .filter_map(|d| match d {
                imbl::ordset::DiffItem::Add(keyspace) => Some(keyspace),
                _ => None,
            })
    }

    /// The keyspaces of `seen` (the sums of a configuration seen before)
    /// that these sums lack: the teams taken out since, found as
    /// [`TeamSums::keyspaces_since`] finds the new ones.
    pub fn keyspaces_gone_since<'a>(
        &'a self,
        seen: &'a TeamSums,
    ) -> impl Iterator<Item = &'a String> {
        seen.keyspaces
            .diff(&self.keyspaces)
            .filter_map(|d| match d {
                imbl::ordset::DiffItem::Remove(keyspace) => Some(keyspace),
                _ => None,
            })
    }
}

/// Whether `team`'s `[wallet]` names a trusted list.
fn has_trusted_lists(team: &Team) -> bool {
    (team.wallet.as_ref()).is_some_and(|w| !w.trusted_lists.is_empty())
}
