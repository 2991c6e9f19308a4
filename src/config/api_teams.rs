//! The teams and channels written through the operator API beside the
//! files' (docs/operator-api.md#two-sources-one-namespace): one
//! configuration holds both, and a file team and an API team never share
//! an id, nor a file channel and an API channel a name.
use std::sync::Arc;

use super::toml_file::ConfigError;
use super::{ChannelConfig, Config, Team};

impl Config {
    /// This configuration with `teams` (written through the operator API)
    /// put in force, each replacing its id's API team, and the API teams
    /// of `gone` removed. A file team with one of their ids is an error
    /// naming the id and both sources: nothing of it applies.
    pub fn with_api_teams(
        &self,
        teams: impl IntoIterator<Item = Arc<Team>>,
        gone: &[String],
    ) -> Result<Config, ConfigError> {
        let mut next = self.clone();
        for id in gone {
            if let Some(was) = next.teams.get(id).filter(|t| t.api.is_some()) {
                next.key_holders.remove(was);
                next.sums.remove(was);
                next.teams.remove(id);
            }
        }
        for team in teams {
            if let Some(file) = next.file_team(&team.id) {
                return Err(clash(&file.file.display().to_string(), &team.id));
            }
            // The keys it had out, then the keys it has in.
            if let Some(was) = next.teams.insert(team.id.clone(), Arc::clone(&team)) {
                next.key_holders.remove(&was);
                next.sums.remove(&was);
            }
            next.key_holders.insert(&team);
            next.sums.add(&team);
        }
        Ok(next)
    }

    /// Team `id` when a file holds it (not the operator API).
    pub fn file_team(&self, id: &str) -> Option<&Arc<Team>> {
        self.teams.get(id).filter(|t| t.api.is_none())
    }

    /// The API teams of this configuration.
    pub fn api_teams(&self) -> impl Iterator<Item = &Arc<Team>> {
        self.teams.values().filter(|t| t.api.is_some())
    }

    /// This configuration with `channels` (written through the operator
    /// API) put in force, each replacing its name's API channel, and the
    /// API channels of `gone` removed. A file channel of one of their
    /// names is an error naming it and both sources.
    pub fn with_api_channels(
        &self,
        channels: Vec<ChannelConfig>,
        gone: &[String],
    ) -> Result<Config, ConfigError> {
        let mut next = self.clone();
        // No channel moved (a team's write): the channels stay shared, and
        // their senders with them.
        if channels.is_empty() && gone.is_empty() {
            return Ok(next);
        }
        let all = Arc::make_mut(&mut next.channels);
        for name in gone {
            if all.get(name).is_some_and(|c| c.api) {
                all.remove(name);
            }
        }
        for channel in channels {
            if let Some(file) = all.get(&channel.name).filter(|c| !c.api) {
                let file = file.file.display().to_string();
                return Err(ConfigError::new(
                    &file,
                    "name",
                    format!("channel {:?} is both a file channel ({file}) and a channel written through the operator API: one name, one source", channel.name),
                ));
            }
            all.insert(channel.name.clone(), channel);
        }
        Ok(next)
    }

    /// Channel `name` when a file holds it (not the operator API).
    pub fn file_channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.get(name).filter(|c| !c.api)
    }

    /// The API channels of this configuration.
    pub fn api_channels(&self) -> impl Iterator<Item = &ChannelConfig> {
        self.channels.values().filter(|c| c.api)
    }

    /// The ids of the API teams in force that use channel `name`, by id.
    pub fn api_teams_using(&self, name: &str) -> Vec<String> {
        let using = self.api_teams().filter(|t| t.uses_channel(name));
        using.map(|t| t.id.clone()).collect()
    }
}

/// A file team and an API team of one id.
fn clash(file: &str, id: &str) -> ConfigError {
    ConfigError::new(
        file,
        "id",
        format!("team {id:?} is both a file team ({file}) and a team written through the operator API: one id, one source"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::Fixture;

    /// The fixture's team `id` as an API team named `as_id`.
    fn api_team(config: &mut Config, id: &str, as_id: &str) -> Arc<Team> {
        let team = Arc::get_mut(config.teams.get_mut(id).unwrap()).unwrap();
        team.api = Some("d".into());
        team.id = as_id.into();
        Arc::clone(&config.teams[id])
    }

    #[test]
    fn a_file_team_and_an_api_team_never_share_an_id() {
        let fx = Fixture::new();
        let config = fx.load().unwrap();
        let mut copy = fx.load().unwrap();
        let acme = api_team(&mut copy, "acme", "acme");
        let e = config.with_api_teams([acme], &[]).unwrap_err();
        assert!(e.problem.contains("\"acme\""), "{e}");
        // Under another id it goes in, and out again; a file team stays.
        let newco = api_team(&mut copy, "globex", "newco");
        let next = config.with_api_teams([newco], &[]).unwrap();
        assert!(next.teams["newco"].api.is_some());
        assert_eq!(next.api_teams().count(), 1);
        let after = next
            .with_api_teams([], &["newco".into(), "acme".into()])
            .unwrap();
        assert!(!after.teams.contains_key("newco"));
        assert!(
            after.teams.contains_key("acme"),
            "a file team is not removed"
        );
        // A reload puts the running API teams back over the files.
        let reloaded = config.with_api_teams(next.api_teams().cloned(), &[]);
        assert!(reloaded.unwrap().teams["newco"].api.is_some());
    }

    #[test]
    fn a_file_channel_and_an_api_channel_never_share_a_name() {
        let config = Fixture::new().load().unwrap();
        let mut sms = config.channels["sms"].clone();
        sms.api = true;
        let e = config
            .with_api_channels(vec![sms.clone()], &[])
            .unwrap_err();
        assert!(e.problem.contains("\"sms\""), "{e}");
        sms.name = "newsms".into();
        let next = config.with_api_channels(vec![sms], &[]).unwrap();
        let same = next.with_api_channels(Vec::new(), &[]).unwrap();
        assert!(
            Arc::ptr_eq(&same.channels, &next.channels),
            "no channel moved: the channels (and their senders) are shared"
        );
        assert_eq!(next.api_channels().count(), 1);
        assert!(next.file_channel("newsms").is_none());
        assert!(next.file_channel("sms").is_some());
        // Out again; a file channel stays, and a reload keeps an API one.
        let reloaded = config.with_api_channels(next.api_channels().cloned().collect(), &[]);
        assert!(reloaded.unwrap().channels["newsms"].api);
        let after = next
            .with_api_channels(Vec::new(), &["newsms".into(), "sms".into()])
            .unwrap();
        assert!(!after.channels.contains_key("newsms"));
        assert!(
            after.channels.contains_key("sms"),
            "a file channel is not removed"
        );
    }
}
