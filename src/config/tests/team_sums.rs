//! The sums kept with the teams
//! (docs/decisions/0491-a-write-costs-its-own-team.md): after any run of
//! writes and deletes they are those of the teams in force, and the
//! keyspaces new since a configuration seen are those of the teams
//! written since.
use std::sync::Arc;

use super::operator::{body, with_operator};
use crate::config::{Config, Team, TeamSums};

/// API team `id` listing `channels`, in keyspace `keyspace`.
fn api_team(config: &Config, id: &str, channels: &[&str], keyspace: &str) -> Arc<Team> {
    let mut written = body(id);
    written["channels"] = channels.iter().map(|c| c.to_string()).collect();
    if channels.contains(&"sms") {
        // Two issuers, each for several teams (each its own audience).
        let issuer = format!("https://as{}.example", id.len() % 2);
        written["mcp"] = serde_json::json!({"oauth": {"issuer": issuer, "audience": id}});
    }
    let mut team = config.team_of_json(&written, &Default::default()).unwrap();
    team.api = Some(format!("digest-{id}-{}", channels.len()));
    team.keyspace = keyspace.into();
    Arc::new(team)
}

/// The sums made again from every team in force.
fn counted_again(config: &Config) -> TeamSums {
    TeamSums::of_teams(config.teams.values())
}

#[test]
fn the_sums_kept_by_each_write_are_those_of_the_teams_in_force() {
    let files = with_operator().load().unwrap();
    assert_eq!(files.sums, counted_again(&files), "as loaded");
    let mut config = files.clone();
    for i in 0..40 {
        let channels: &[&str] = match i % 3 {
            0 => &["webchat"],
            1 => &["webchat", "sms"],
            _ => &["email"],
        };
        let id = format!("t{i}");
        let team = api_team(&files, &id, channels, &id);
        config = config.with_api_teams([team], &[]).unwrap();
        assert_eq!(config.sums, counted_again(&config), "after {id} written");
    }
    // The only teams listing `email` written again without it, one gone.
    let mut teams = Vec::new();
    for i in (2..40).step_by(3).filter(|i| *i != 5) {
        let id = format!("t{i}");
        teams.push(api_team(&files, &id, &["webchat"], &id));
    }
    let issuers: Vec<&String> = config.sums.mcp_issuers().collect();
    assert_eq!(issuers, ["https://as0.example", "https://as1.example"]);
    assert_eq!(config.sums.mcp_teams_of("https://as1.example").count(), 10);
    let next = config.with_api_teams(teams, &["t5".into()]).unwrap();
    assert_eq!(next.sums, counted_again(&next));
    let listed: Vec<&String> = next.sums.channels().collect();
    let files_listed: Vec<&String> = files.sums.channels().collect();
    assert_eq!(listed, files_listed, "the file teams still list theirs");
    // A file team is never taken out by a write; every API team can be.
    let ids: Vec<String> = (0..40)
        .map(|i| format!("t{i}"))
        .chain(["acme".into()])
        .collect();
    let back = next.with_api_teams([], &ids).unwrap();
    assert_eq!(back.sums, files.sums, "back to the files' sums");
    assert_eq!(back.sums.mcp_issuers().count(), 0, "no issuer left");
    assert_eq!(back.sums.api_teams(), 0);
    assert_eq!(next.sums.api_teams(), 39);
}

#[test]
fn the_keyspaces_new_since_a_configuration_seen_are_those_written_since() {
    let files = with_operator().load().unwrap();
    let teams: Vec<_> = (0..400)
        .map(|i| format!("t{i}"))
        .map(|id| api_team(&files, &id, &["webchat"], &id))
        .collect();
    let seen = files.with_api_teams(teams, &[]).unwrap();
    let new = |config: &Config| -> Vec<String> {
        config.sums.keyspaces_since(&seen.sums).cloned().collect()
    };
    // Every keyspace is new to a worker that saw nothing yet.
    let nothing = TeamSums::default();
    let all: Vec<&String> = seen.sums.keyspaces_since(&nothing).collect();
    assert_eq!(all.len(), seen.teams.len());
    // One team written: its keyspace; one written again: none.
    let one = seen
        .with_api_teams([api_team(&files, "newco", &["sms"], "newco")], &[])
        .unwrap();
    assert_eq!(new(&one), ["newco"]);
    let again = seen
        .with_api_teams([api_team(&files, "t7", &["sms"], "t7")], &[])
        .unwrap();
    assert!(new(&again).is_empty(), "{:?}", new(&again));
    // A team deleted: none; its id written again is a new tenant's keyspace.
    let gone = seen.with_api_teams([], &["t9".into()]).unwrap();
    assert!(new(&gone).is_empty());
    let tenant = gone
        .with_api_teams([api_team(&files, "t9", &["webchat"], "t9~2")], &[])
        .unwrap();
    assert_eq!(new(&tenant), ["t9~2"]);
    // Configurations that share nothing (a reload reads the files again)
    // are compared whole.
    let reread = with_operator().load().unwrap();
    assert!(reread.sums.keyspaces_since(&seen.sums).next().is_none());
    let files_new: Vec<&String> = seen.sums.keyspaces_since(&reread.sums).collect();
    assert_eq!(files_new.len(), 400);
}

#[test]
fn the_keyspaces_gone_since_a_configuration_seen_are_those_taken_out_since() {
    let files = with_operator().load().unwrap();
    let teams: Vec<_> = (0..400)
        .map(|i| format!("t{i}"))
        .map(|id| api_team(&files, &id, &["webchat"], &id))
        .collect();
    let seen = files.with_api_teams(teams, &[]).unwrap();
    let gone = |config: &Config| -> Vec<String> {
        config
            .sums
            .keyspaces_gone_since(&seen.sums)
            .cloned()
            .collect()
    };
    // A team written or written again takes nothing out.
    let one = seen
        .with_api_teams([api_team(&files, "newco", &["sms"], "newco")], &[])
        .unwrap();
    assert!(gone(&one).is_empty());
    // A team deleted: its keyspace; its id written again is still gone
    // (the new tenant's keyspace is another).
    let deleted = seen.with_api_teams([], &["t9".into()]).unwrap();
    assert_eq!(gone(&deleted), ["t9"]);
    let tenant = deleted
        .with_api_teams([api_team(&files, "t9", &["webchat"], "t9~2")], &[])
        .unwrap();
    assert_eq!(gone(&tenant), ["t9"]);
    // A reload that lacks the API teams: every one of them.
    let reread = with_operator().load().unwrap();
    assert_eq!(reread.sums.keyspaces_gone_since(&seen.sums).count(), 400);
}
