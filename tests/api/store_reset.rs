//! A store that comes back empty (docs/operations.md#when-redis-comes-back-empty):
//! the one-time ids that stopped replays are gone, so what was issued
//! before the loss is refused for `assertion_max_age`, and what is issued
//! after is accepted; the teams and channels written through the operator
//! API are written back by the instances that hold them.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_channels as channels;
use crate::operator_writes as writes;
use crate::redis_support::TestPrefix;

mod gate;
use crate::wrapped::Wrapped;
use gate::{Gate, Shared};

async fn post_assertion(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/assertion"),
        Some(&app.keys.bot),
        &json!({"assertion": token}),
    )
    .await
}

/// Waits (real time, at most the 5 s docs/operations.md allows) until both
/// teams' reset markers are in the store.
async fn markers_written(keys: &TestPrefix) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let markers = keys
            .keys()
            .into_iter()
            .filter(|k| k.ends_with("}:ep") && !k.contains("{~"))
            .count();
        if markers == 2 || tokio::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway on Redis whose teams' markers are in the store, and its keys.
async fn gateway_with_markers() -> Option<(TestApp, TestPrefix)> {
    let app = spawn_app(Backend::Redis).await?;
    let keys = TestPrefix::for_prefix(&app.key_prefix);
    markers_written(&keys).await;
    Some((app, keys))
}

/// Redis loses everything of this gateway, half a second later.
fn empty_the_store(app: &TestApp, keys: &TestPrefix) {
    app.clock.advance(Duration::from_millis(500));
    keys.cleanup();
}

/// The answer refuses a token as issued before the reset.
async fn assert_issued_before_reset(res: reqwest::Response) {
    let problem = assert_problem(res, 401, "invalid_token").await;
    assert_eq!(problem["detail"], "issued before the store was reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_issued_before_the_store_was_emptied_is_refused() {
    let Some((app, keys)) = gateway_with_markers().await else {
        return;
    };

    // Before: an assertion used once (a replay is refused by its jti),
    // and a login link nobody used yet.
    let first = app.new_interaction().await;
    let captured = app.assertion(app.assertion_claims("cust-42"));
    assert_eq!(post_assertion(&app, &first, &captured).await.status(), 200);
    let waiting = app.new_interaction().await;
    let link = app.issue_link(&waiting, json!({})).await;

    empty_the_store(&app, &keys);
    markers_written(&keys).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The replay of the captured assertion, and the old link, are refused.
    let again = app.new_interaction().await;
    assert_issued_before_reset(post_assertion(&app, &again, &captured).await).await;
    assert_issued_before_reset(app.succeed(&link, "cust-42").await).await;
    assert_eq!(app.get(&again).await["status"], "unauthenticated");

    // What is issued after the reset is accepted.
    app.advance(1);
    let fresh = app.assertion(app.assertion_claims("cust-42"));
    let res = post_assertion(&app, &again, &fresh).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["authenticated"], true);
    let other = app.new_interaction().await;
    let link = app.issue_link(&other, json!({})).await;
    assert_eq!(app.succeed(&link, "cust-7").await.status(), 200);

    // After assertion_max_age (10 minutes) nothing issued before the reset
    // is valid any more: the captured assertion has expired.
    app.advance(601);
    let late = app.new_interaction().await;
    let res = post_assertion(&app, &late, &captured).await;
    assert_problem(res, 410, "token_expired").await;
}

both_stores!(
    a_store_that_keeps_its_data_refuses_nothing,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let token = app.assertion(app.assertion_claims("cust-42"));
        let link = app
            .issue_link(&app.new_interaction().await, json!({}))
            .await;
        // Several checks of the store's marker pass.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        app.advance(1);
        assert_eq!(post_assertion(&app, &id, &token).await.status(), 200);
        assert_eq!(app.succeed(&link, "cust-7").await.status(), 200);
    }
);

/// A captured assertion, or a login link, used before the store was
/// emptied, presented again right after it was emptied: the request that
/// first finds the store empty notices it, so it is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_after_the_store_was_emptied_refuses_a_replay() {
    let Some((app, keys)) = gateway_with_markers().await else {
        return;
    };
    let first = app.new_interaction().await;
    let captured = app.assertion(app.assertion_claims("cust-42"));
    assert_eq!(post_assertion(&app, &first, &captured).await.status(), 200);

    // Emptied, and the replay at once: no marker check ran in between.
    empty_the_store(&app, &keys);
    let again = app.new_interaction().await;
    assert_issued_before_reset(post_assertion(&app, &again, &captured).await).await;
    assert_eq!(app.get(&again).await["status"], "unauthenticated");
}

/// The same for a login link issued before the store was emptied: its
/// first use afterwards is refused as issued before the reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_used_first_after_the_store_was_emptied_is_refused() {
    let Some((app, keys)) = gateway_with_markers().await else {
        return;
    };
    let waiting = app.new_interaction().await;
    let link = app.issue_link(&waiting, json!({})).await;

    empty_the_store(&app, &keys);
    assert_issued_before_reset(app.succeed(&link, "cust-42").await).await;
}

/// The `ETag` team `id` reads with on `app` (200), and its body.
async fn team_read(app: &TestApp, id: &str) -> (String, Value) {
    let path = format!("/v1/teams/{id}");
    let res = app
        .request(reqwest::Method::GET, &path, Some(writes::OPS))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "team {id}");
    (writes::etag_of(&res), res.json().await.unwrap())
}

/// Polls `holds` every 50 ms until it does, for at most 5 s (the store
/// reset noticed, then written back).
async fn in_five_seconds<F, Fut>(what: &str, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !holds().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two instances hold an API team and the API channel it lists; Redis
/// loses everything: both keep them in force, and they are written back
/// as they were (the same `ETag`), each team with one `config.changed`
/// entry of source `restore`; an instance that starts afterwards has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_reset_keeps_the_api_teams_and_channels() {
    let Some(a) = spawn_with(Backend::Redis, writes::with_operator()).await else {
        return;
    };
    let b = spawn_beside(&a, writes::with_operator()).await;
    let channel_tag = channels::create(&a, "newsms").await;
    let tag = channels::team_listing(&a, "newsms").await;
    writes::within_two_seconds(&b, "newco-bot-key", 200).await;
    let stored = writes::stored(&a, "newco").await.unwrap();

    TestPrefix::for_prefix(&a.key_prefix).cleanup();
    in_five_seconds("the team written back", || async {
        writes::stored(&a, "newco").await.is_some()
    })
    .await;
    // Written as it was stored: the same sealed form, the same ETag.
    writes::in_two_seconds("the index written back", || async {
        b.get_json("/v1/teams", Some(writes::OPS)).await["teams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "newco")
    })
    .await;
    assert_eq!(writes::stored(&a, "newco").await.unwrap(), stored);
    assert_eq!(
        bot_key_claim(&a).await.as_deref(),
        Some("newco"),
        "its key claimed again"
    );
    for app in [&a, &b] {
        assert_eq!(writes::key_status(app, "newco-bot-key").await, 200);
        assert_eq!(team_read(app, "newco").await.0, tag);
        assert_eq!(channels::read(app, "newsms").await.0, channel_tag);
    }
    let entries = writes::entries(&a, "newco").await;
    let restored: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "config.changed" && e["detail"]["source"] == "restore")
        .collect();
    assert_eq!(restored.len(), 1, "{entries:?}");
    let effective = a.reloader.in_force().config().teams["newco"].print.digest();
    assert_eq!(
        restored[0]["detail"]["digest"].as_str(),
        Some(effective.as_str())
    );
    // An instance that starts now has them.
    let c = spawn_beside(&a, writes::with_operator()).await;
    assert_eq!(writes::key_status(&c, "newco-bot-key").await, 200);
    assert_eq!(team_read(&c, "newco").await.0, tag);
}

/// The team that claims `newco-bot-key` in `app`'s store
/// (docs/operator-api.md#keys).
async fn bot_key_claim(app: &TestApp) -> Option<String> {
    let hash = chatgate::domain::secrets::ApiKeyHash::of_key("newco-bot-key").to_hex();
    let claim =
        crate::operator_keys::raw(app, &chatgate::store::keys::api_key_claim(&hash)).await?;
    let claim: Value = serde_json::from_str(&claim.value).unwrap();
    claim["t"].as_str().map(str::to_string)
}

/// `[operator]` and a channel file `chat2` no file team lists.
fn with_chat2() -> Setup {
    Setup {
        unlisted_channels: vec![(
            "chat2".into(),
            format!(
                "name = \"chat2\"\nkind = \"webhook\"\nurl = \"{{CHAT_URL}}/chat2\"\n\
                 secret = \"${{CG_TEST_UNSET_CHAT2:-{}}}\"\n",
                writes::webhook_secret()
            ),
        )],
        ..writes::with_operator()
    }
}

/// A stored team that lists a channel file some instances lack: those
/// start without it (never stop), keep what they had in force, and a
/// read gives the stored `ETag` on every instance, so a write against it
/// repairs the team everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_team_that_cannot_be_put_in_force_stops_no_start_and_is_repaired_by_its_etag() {
    let Some(a) = spawn_with(Backend::Redis, with_chat2()).await else {
        return;
    };
    let b = spawn_beside(&a, writes::with_operator()).await;
    let body = writes::team("newco", &chatgate::domain::secrets::generate_whsec());
    let res = writes::put(&a, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let first = writes::etag_of(&res);
    writes::within_two_seconds(&b, "newco-bot-key", 200).await;
    // Written again listing chat2, which b has no file for.
    let mut listing = body.clone();
    listing["channels"] = json!(["webchat", "chat2"]);
    let res = writes::put(&a, "newco", &listing, &[("If-Match", &first)]).await;
    assert_eq!(res.status(), 200);
    let tag = writes::etag_of(&res);
    writes::in_two_seconds("b reads the stored ETag", || async {
        team_read(&b, "newco").await.0 == tag
    })
    .await;
    // b keeps the version it had in force.
    assert_eq!(writes::key_status(&b, "newco-bot-key").await, 200);
    // An instance without chat2 starts, without the team; its read is the
    // stored form with its ETag.
    let c = spawn_beside(&a, writes::with_operator()).await;
    assert_eq!(writes::key_status(&c, "newco-bot-key").await, 401);
    let (etag, shown) = team_read(&c, "newco").await;
    assert_eq!(etag, tag);
    assert_eq!(shown["channels"], json!(["webchat", "chat2"]));
    let metrics = c
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("chatgate_api_teams_refused ")),
        "{metrics}"
    );
    // What the read gave writes: the team is repaired everywhere.
    let res = writes::put(&b, "newco", &body, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);
    writes::within_two_seconds(&c, "newco-bot-key", 200).await;
}

/// `chatgate teams export` prints the API teams and channels as the store
/// keeps them (sealed); `chatgate teams import` writes them back, each
/// team with its `config.changed` entry of source `restore`, and a running
/// instance puts them in force; an id the store holds is refused (nothing
/// written) unless `--replace`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn teams_export_and_import_keep_a_backup() {
    let Some(a) = spawn_with(Backend::Redis, writes::with_operator()).await else {
        return;
    };
    let channel_tag = channels::create(&a, "newsms").await;
    let tag = channels::team_listing(&a, "newsms").await;
    let config = a.dir.join("config/chatgate.toml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.success(), said, err)
    };
    let (ok, exported, err) = run(&["teams", "export"]);
    assert!(ok, "{err}");
    assert!(
        !exported.contains(writes::webhook_secret()),
        "sealed: {exported}"
    );
    let read: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(read["teams"]["newco"]["digest"].as_str(), Some(&tag[1..65]));
    assert_eq!(
        read["channels"]["newsms"]["digest"].as_str(),
        Some(&channel_tag[1..65])
    );
    let file = a.dir.join("teams.json");
    std::fs::write(&file, &exported).unwrap();
    let file = file.to_str().unwrap();

    // The store holds them: refused, naming them.
    let (ok, _, err) = run(&["teams", "import", file]);
    assert!(!ok);
    assert!(
        err.contains("team newco") && err.contains("channel newsms"),
        "{err}"
    );
    // Deleted through the API, then imported: back as they were.
    assert_eq!(
        writes::delete(&a, "newco", &[("If-Match", &tag)])
            .await
            .status(),
        204
    );
    let res = a
        .request(
            reqwest::Method::DELETE,
            "/v1/channels/newsms",
            Some(writes::OPS),
        )
        .header("If-Match", &channel_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        bot_key_claim(&a).await,
        None,
        "a deleted team's key is free"
    );
    let (ok, said, err) = run(&["teams", "import", file]);
    assert!(ok, "{err}");
    assert_eq!(said.trim(), "imported 1 teams and 1 channels");
    assert_eq!(
        bot_key_claim(&a).await.as_deref(),
        Some("newco"),
        "the key claimed by the import"
    );
    writes::within_two_seconds(&a, "newco-bot-key", 200).await;
    assert_eq!(team_read(&a, "newco").await.0, tag);
    assert_eq!(channels::read(&a, "newsms").await.0, channel_tag);
    let entries = writes::entries(&a, "newco").await;
    let last = entries.last().unwrap();
    assert_eq!(last["detail"]["source"], "restore", "{last}");
    // With --replace, over what the store holds.
    let (ok, _, err) = run(&["teams", "import", file, "--replace"]);
    assert!(ok, "{err}");
    assert_eq!(team_read(&a, "newco").await.0, tag);
}

/// A team's trail when the store comes back empty: the instance that ran
/// notices and records `audit.trail_reset` (reason `store_reset`, the
/// highest `seq` it knew) as the trail's first entry, before an instance
/// that starts afterwards records its configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trail_marks_a_store_reset_before_a_restarted_instance_writes() {
    let Some((app, keys)) = gateway_with_markers().await else {
        return;
    };
    // config.changed at the start, then two reads of the trail.
    for _ in 0..2 {
        let res = app
            .request(reqwest::Method::GET, "/v1/audit", Some(&app.keys.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let before = writes::entries(&app, "acme").await.len() as u64;
    assert!(before >= 3, "{before}");

    empty_the_store(&app, &keys);
    in_five_seconds("the reset recorded", || async {
        !writes::entries(&app, "acme").await.is_empty()
    })
    .await;
    // An instance started now (a restart) records its configuration after it.
    let again = spawn_beside(&app, Setup::default()).await;
    let trail = writes::entries(&again, "acme").await;
    assert_eq!(trail[0]["action"], "audit.trail_reset", "{trail:?}");
    assert_eq!(trail[0]["detail"]["reason"], "store_reset", "{trail:?}");
    assert_eq!(trail[0]["detail"]["previous_seq"], before, "{trail:?}");
    assert_eq!(trail[0]["seq"], 1);
    assert!(
        trail
            .iter()
            .skip(1)
            .all(|e| e["action"] != "audit.trail_reset"),
        "{trail:?}"
    );
}

/// An instance that restarts at once after the store came back empty,
/// before the running instance noticed (its watch reads every 2 s):
/// it finds no node marker and holds its start-up `config.changed`
/// until the running instance recorded `audit.trail_reset` (reason
/// `store_reset`) as the trail's first entry (docs/audit.md#resets); a
/// request it answers meanwhile has its entry after both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_right_after_a_store_reset_writes_after_the_reset_entry() {
    let Some((app, keys)) = gateway_with_markers().await else {
        return;
    };
    let res = app
        .request(reqwest::Method::GET, "/v1/audit", Some(&app.keys.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let before = writes::entries(&app, "acme").await.len() as u64;
    assert!(before >= 2, "{before}");

    empty_the_store(&app, &keys);
    let setup = Setup {
        fresh_store_wait: Some(chatgate::gateway::store_epoch::FRESH_START_WAIT),
        ..Setup::default()
    };
    let again = spawn_beside(&app, setup).await;
    let (trail, actions) = read_then_trail(&again).await;
    assert_eq!(trail[0]["action"], "audit.trail_reset", "{actions:?}");
    assert_eq!(trail[0]["detail"]["reason"], "store_reset", "{trail:?}");
    assert_eq!(trail[0]["detail"]["previous_seq"], before, "{trail:?}");
    assert_eq!(trail[0]["seq"], 1);
    assert_eq!(trail[1]["action"], "config.changed", "{actions:?}");
    assert_eq!(trail[1]["detail"]["source"], "start", "{trail:?}");
    assert_eq!(trail[2]["action"], "audit.read", "{actions:?}");
}

/// `GET /v1/audit` as acme's admin on `app` (an entry of its own), then
/// acme's trail as stored, and its actions.
async fn read_then_trail(app: &TestApp) -> (Vec<Value>, Vec<String>) {
    let res = app
        .request(reqwest::Method::GET, "/v1/audit", Some(&app.keys.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let trail = writes::entries(app, "acme").await;
    let actions = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string());
    let actions = actions.collect();
    (trail, actions)
}

/// A start on a new store (a key prefix nothing ever used) holds its
/// first audit entries, not its listener: it answers `/readyz` 200 with
/// nothing yet in a trail, and the first request's entry comes after the
/// start's `config.changed` (docs/audit.md#resets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_new_store_is_ready_before_its_first_entries() {
    let setup = Setup {
        fresh_store_wait: Some(Duration::from_secs(8)),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Redis, setup).await else {
        return;
    };
    let res = app
        .request(reqwest::Method::GET, "/readyz", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(writes::entries(&app, "acme").await, Vec::<Value>::new());

    let (trail, actions) = read_then_trail(&app).await;
    assert_eq!(actions, ["config.changed", "audit.read"], "{trail:?}");
    assert_eq!(trail[0]["detail"]["source"], "start", "{trail:?}");
}

/// Runs `chatgate` with `args` on `app`'s configuration: whether it
/// exited 0, its standard output and its standard error.
fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(args)
        .arg("--config")
        .arg(app.dir.join("config/chatgate.toml"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), said, err)
}

/// A gateway on Redis with the operator API, and API team `newco`
/// written there: its `ETag`.
async fn with_newco() -> Option<(TestApp, String)> {
    let a = spawn_with(Backend::Redis, writes::with_operator()).await?;
    let body = writes::team("newco", writes::webhook_secret());
    let res = writes::put(&a, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let tag = writes::etag_of(&res);
    Some((a, tag))
}

/// `chatgate teams import` checks its file as a `PUT` of each team would
/// (docs/operations.md#backing-up-the-api-teams): a team that breaks a
/// rule, or whose sealed secrets were sealed for another team, is refused
/// with the team and the pointer named, exit 1, and nothing of the file
/// is written; the `ETag` is the one the gateway computes, whatever the
/// file says.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn teams_import_checks_every_team_as_a_write_would() {
    let Some((a, tag)) = with_newco().await else {
        return;
    };
    let (ok, exported, err) = cli(&a, &["teams", "export"]);
    assert!(ok, "{err}");
    let exported: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(
        writes::delete(&a, "newco", &[("If-Match", &tag)])
            .await
            .status(),
        204
    );
    let import = |file: &Value, name: &str| {
        let path = a.dir.join(name);
        std::fs::write(&path, file.to_string()).unwrap();
        cli(&a, &["teams", "import", path.to_str().unwrap()])
    };

    // A rule broken: refused at its pointer, nothing written.
    let mut broken = exported.clone();
    broken["teams"]["newco"]["body"]["settings"]["otp"]["length"] = json!(1);
    let (ok, _, err) = import(&broken, "broken.json");
    assert!(!ok, "{err}");
    assert!(
        err.contains("team newco") && err.contains("/settings/otp/length"),
        "{err}"
    );
    assert_eq!(writes::stored(&a, "newco").await, None);

    // Another team's sealed secrets under a new id: they do not open.
    let mut moved = exported.clone();
    let mut other = exported["teams"]["newco"].clone();
    other["body"]["id"] = json!("newco2");
    other["body"]["api_keys"] = json!([]);
    moved["teams"]["newco2"] = other;
    let (ok, _, err) = import(&moved, "moved.json");
    assert!(!ok, "{err}");
    assert!(
        err.contains("team newco2") && err.contains("/security_keys/0/secret"),
        "{err}"
    );
    assert!(!err.contains("team newco:"), "{err}");
    assert_eq!(writes::stored(&a, "newco").await, None);
    assert_eq!(writes::stored(&a, "newco2").await, None);

    // A digest made up: the one the gateway computes is stored.
    let mut made_up = exported.clone();
    made_up["teams"]["newco"]["digest"] = json!("0".repeat(64));
    let (ok, said, err) = import(&made_up, "made_up.json");
    assert!(ok, "{err}");
    assert_eq!(said.trim(), "imported 1 teams and 0 channels");
    assert_eq!(team_read(&a, "newco").await.0, tag);
    writes::within_two_seconds(&a, "newco-bot-key", 200).await;
}

/// A stored team a secret of which this gateway cannot open (sealed at
/// another place) is a refused stored team: read with that secret as
/// `null` and its pointer named in `Chatgate-Refused`, and listed, never
/// a 500 (docs/operator-api.md#every-instance-at-once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_team_whose_secret_does_not_open_is_read_and_listed() {
    let Some((a, tag)) = with_newco().await else {
        return;
    };
    let key = chatgate::store::keys::api_team("newco");
    let mut stored: Value =
        serde_json::from_str(&writes::stored(&a, "newco").await.unwrap()).unwrap();
    let sealed = stored["body"]["security_keys"][0]["secret"].clone();
    stored["body"]["webhook"]["secret"] = sealed;
    crate::operator_keys::overwrite(&a, &key, stored.to_string()).await;

    let c = spawn_beside(&a, writes::with_operator()).await;
    let res = c
        .request(reqwest::Method::GET, "/v1/teams/newco", Some(writes::OPS))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(writes::etag_of(&res), tag);
    let refused = res.headers()["chatgate-refused"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(refused.starts_with("/webhook/secret: "), "{refused}");
    let shown: Value = res.json().await.unwrap();
    assert_eq!(shown["webhook"]["secret"], Value::Null, "{shown}");
    assert!(
        shown["security_keys"][0]["secret"]["hmac"].is_string(),
        "{shown}"
    );
    assert_eq!(
        crate::operator_keys::listed_etag(&c, "newco").await,
        Some(tag)
    );
}

/// API teams `rst-0`… (`count` of them), each with its own key
/// `rst-<n>-key`.
fn restored_ids(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("rst-{n}")).collect()
}

fn key_of(id: &str) -> String {
    format!("{id}-key")
}

/// `count` instances (the operator API on) sharing one store of
/// `backend` that the test empties, each through its gate; and the
/// store.
async fn sharing(
    backend: Backend,
    count: usize,
) -> Option<(Vec<TestApp>, Vec<Arc<Wrapped<Gate>>>, Arc<Shared>)> {
    let (shared, prefix) = Shared::new(backend).await?;
    let gates: Vec<Arc<Wrapped<Gate>>> = (0..count).map(|_| Gate::over(&shared)).collect();
    let first = Setup {
        key_prefix: Some(prefix),
        store: Some(gates[0].store()),
        ..writes::with_operator()
    };
    let mut apps = vec![spawn_with(backend, first).await?];
    for gate in &gates[1..] {
        let setup = Setup {
            store: Some(gate.store()),
            ..writes::with_operator()
        };
        apps.push(spawn_beside(&apps[0], setup).await);
    }
    Some((apps, gates, shared))
}

/// Teams `ids` written through `apps` in turn, each in force on every
/// instance.
async fn written_through_each(apps: &[TestApp], ids: &[String]) {
    for (n, id) in ids.iter().enumerate() {
        let body = crate::operator_claims::team_with_key(id, &key_of(id));
        let res = writes::put(&apps[n % apps.len()], id, &body, &[]).await;
        assert_eq!(res.status(), 201, "{id}");
    }
    for app in apps {
        for id in ids {
            writes::within_two_seconds(app, &key_of(id), 200).await;
        }
    }
}

/// Every key of `ids` answers on every one of `apps` (never 401).
async fn every_key_answers(apps: &[TestApp], ids: &[String], when: &str) {
    for (n, app) in apps.iter().enumerate() {
        for id in ids {
            let status = writes::key_status(app, &key_of(id)).await;
            assert_eq!(status, 200, "{id}'s key on instance {n} {when}");
        }
    }
}

/// Two instances hold six API teams; the store comes back empty, and the
/// write-back goes one step at a time: both read the teams as lost, the
/// first writes them all back while the second's writes wait, the second
/// then finds them written and finishes its write-back before the first
/// has indexed them. At every step each instance answers every team's
/// key: a team written back by another instance first stays in force
/// (docs/operations.md#when-redis-comes-back-empty).
async fn keys_answer_throughout_a_restore(backend: Backend) {
    let Some((apps, gates, shared)) = sharing(backend, 2).await else {
        return;
    };
    let ids = restored_ids(6);
    written_through_each(&apps, &ids).await;
    let (a, b) = (&gates[0], &gates[1]);
    let teams = ids.clone();
    a.hold(move |ops| gate::writes_a_team(ops, &teams) || gate::moves_the_generation(ops));
    let teams = ids.clone();
    b.hold(move |ops| gate::writes_a_team(ops, &teams));

    shared.empty();
    every_key_answers(&apps, &ids, "right after the store came back empty").await;
    // Both found every team lost and are about to write it back.
    a.holding(ids.len(), "the first instance's team writes")
        .await;
    b.holding(ids.len(), "the second instance's team writes")
        .await;
    every_key_answers(&apps, &ids, "while both write back").await;
    // The first writes every team; its index waits.
    a.let_go();
    a.hold(gate::moves_the_generation);
    a.holding(1, "the first instance's index").await;
    every_key_answers(&apps, &ids, "with the teams written, not indexed").await;
    // The second finds them written, and ends its write-back and its look.
    b.let_go();
    b.next_look().await;
    every_key_answers(&apps, &ids, "once the second has written back").await;
    a.let_go();
    a.next_look().await;
    every_key_answers(&apps, &ids, "once both have written back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_answer_on_every_instance_throughout_a_restore_on_memory() {
    keys_answer_throughout_a_restore(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_answer_on_every_instance_throughout_a_restore_on_redis() {
    keys_answer_throughout_a_restore(Backend::Redis).await;
}

/// Three instances hold six API teams, two written through each; the
/// store comes back empty and the first instance writes them all back
/// while the others' commits wait: every team's trail, those the first
/// never wrote nor read included, starts with `audit.trail_reset`
/// (reason `store_reset`) at `seq` 1, then the `config.changed` of source
/// `restore`; the others, let go, add no second reset
/// (docs/audit.md#resets).
async fn every_restored_trail_starts_with_the_reset(backend: Backend) {
    let Some((apps, gates, shared)) = sharing(backend, 3).await else {
        return;
    };
    let ids = restored_ids(6);
    written_through_each(&apps, &ids).await;
    for gate in &gates[1..] {
        gate.hold(|_| true);
    }
    shared.empty();
    let restored = |entries: &[Value]| {
        entries
            .iter()
            .any(|e| e["action"] == "config.changed" && e["detail"]["source"] == "restore")
    };
    in_five_seconds("every team written back", || async {
        for id in &ids {
            if !restored(&writes::entries(&apps[0], id).await) {
                return false;
            }
        }
        true
    })
    .await;
    for gate in &gates[1..] {
        gate.let_go();
        gate.next_look().await;
        gate.next_look().await;
    }
    for id in &ids {
        let trail = writes::entries(&apps[0], id).await;
        assert_eq!(trail[0]["action"], "audit.trail_reset", "{id}: {trail:?}");
        assert_eq!(
            trail[0]["detail"]["reason"], "store_reset",
            "{id}: {trail:?}"
        );
        assert_eq!(trail[0]["seq"], 1, "{id}");
        assert_eq!(trail[1]["action"], "config.changed", "{id}: {trail:?}");
        assert_eq!(trail[1]["detail"]["source"], "restore", "{id}: {trail:?}");
        let resets = trail.iter().filter(|e| e["action"] == "audit.trail_reset");
        assert_eq!(resets.count(), 1, "{id}: {trail:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_restored_team_s_trail_starts_with_the_reset_on_memory() {
    every_restored_trail_starts_with_the_reset(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_restored_team_s_trail_starts_with_the_reset_on_redis() {
    every_restored_trail_starts_with_the_reset(Backend::Redis).await;
}
