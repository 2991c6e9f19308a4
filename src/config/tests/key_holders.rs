//! The API keys in force found by their digest
//! (docs/decisions/0490-api-keys-found-by-their-digest.md): whether a key
//! is taken is one lookup whatever the number of teams, and putting one
//! team in force moves one part of the index, not the teams' keys.
use std::sync::Arc;

use super::operator::{body, with_operator};
use crate::config::key_holders::compared;
use crate::config::{Config, Team};
use crate::domain::secrets::ApiKeyHash;

/// API team `id` as `config` builds it from its body (key `{id}-bot`).
fn api_team(config: &Config, id: &str) -> Arc<Team> {
    let mut team = config.team_of_json(&body(id), &Default::default()).unwrap();
    team.api = Some(format!("digest-{id}"));
    Arc::new(team)
}

/// `config` with `n` API teams put in force, as one look does.
fn with_api_teams(config: &Config, n: usize) -> Config {
    let teams: Vec<_> = (0..n).map(|i| api_team(config, &format!("t{i}"))).collect();
    config.with_api_teams(teams, &[]).unwrap()
}

fn key(id: &str) -> ApiKeyHash {
    ApiKeyHash::of_key(&format!("{id}-bot"))
}

#[test]
fn whether_a_key_is_taken_compares_one_entry_whatever_the_number_of_teams() {
    let files = with_operator().load().unwrap();
    for n in [10, 400] {
        let config = with_api_teams(&files, n);
        compared();
        assert!(config.api_key_taken("newco", &key("t7"), true));
        assert_eq!(compared(), 1, "{n} teams: the one holder is compared");
        assert!(!config.api_key_taken("t7", &key("t7"), true), "its own");
        assert!(
            !config.api_key_taken("newco", &key("t7"), false),
            "an API team's"
        );
        compared();
        assert!(!config.api_key_taken("newco", &key("newco"), true));
        assert_eq!(compared(), 0, "{n} teams: a free key compares none");
        // A file team's key is taken either way; an operator's too.
        assert!(config.api_key_taken("newco", &files.teams["acme"].api_keys[0].sha256, false));
        assert!(config.api_key_taken("newco", &ApiKeyHash::of_key("ops-key"), false));
    }
}

#[test]
fn putting_one_team_in_force_moves_one_part_of_the_key_index() {
    let files = with_operator().load().unwrap();
    let before = with_api_teams(&files, 400);
    // A new team: one key, one part.
    let next = before
        .with_api_teams([api_team(&files, "newco")], &[])
        .unwrap();
    assert_eq!(next.key_holders.parts_apart(&before.key_holders), 1);
    assert!(next.api_key_taken("t1", &key("newco"), true));
    // A team written again with another key: its old key is free, its
    // new one taken; two parts at most moved.
    let mut edited = body("t3");
    edited["api_keys"][0]["sha256"] = ApiKeyHash::of_key("t3-new").to_hex().into();
    let mut t3 = next.team_of_json(&edited, &Default::default()).unwrap();
    t3.api = Some("digest-t3-2".into());
    let after = next.with_api_teams([Arc::new(t3)], &[]).unwrap();
    assert!(after.key_holders.parts_apart(&next.key_holders) <= 2);
    assert!(!after.api_key_taken("newco", &key("t3"), true));
    assert!(after.api_key_taken("newco", &ApiKeyHash::of_key("t3-new"), true));
    // A team gone takes its key out; a file team's stays in.
    let gone = after
        .with_api_teams([], &["t5".into(), "acme".into()])
        .unwrap();
    assert_eq!(gone.key_holders.parts_apart(&after.key_holders), 1);
    assert!(!gone.api_key_taken("newco", &key("t5"), true));
    assert!(gone.api_key_taken("newco", &files.teams["acme"].api_keys[0].sha256, false));
    // The router finds a key by the same index.
    let holder = gone.key_holders.holder(&key("t9")).unwrap();
    assert_eq!(
        (&*holder.team, &*holder.key_id, holder.api),
        ("t9", "bot", true)
    );
}

/// A file team's key in force beside an API team holding it too (however
/// both came in force: a reload whose store did not answer, an instance
/// of another configuration): the key acts for the file team, even for
/// an API team whose id sorts first.
#[test]
fn a_file_team_s_key_acts_for_it_beside_an_api_team_that_holds_it() {
    let files = with_operator().load().unwrap();
    let acme_key = files.teams["acme"].api_keys[0].sha256;
    let mut team = api_team(&files, "aaa");
    Arc::get_mut(&mut team).unwrap().api_keys[0].sha256 = acme_key;
    let both = files.with_api_teams([team], &[]).unwrap();
    assert_eq!(both.key_holders.holders(&acme_key).count(), 2);
    let holder = both.key_holders.holder(&acme_key).unwrap();
    assert_eq!((&*holder.team, holder.api), ("acme", false));
}
