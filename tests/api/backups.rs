//! A backup cannot move a secret or a key
//! (docs/operations.md#backing-up-the-api-teams): an export whose clear
//! members were edited so that a sealed secret would go elsewhere does
//! not open, and an API key added to it is checked as a `PUT` checks it;
//! each refusal names the team (or channel) and the pointer, and nothing
//! of the file is written. An unchanged export imported into a fresh
//! store keeps every `ETag`, through the real `chatgate teams` commands
//! too, whatever `[defaults]` and channel files the importing gateway
//! has: an `ETag` is of what the store keeps
//! (docs/decisions/0630-an-etag-is-of-what-the-store-keeps.md); an
//! import that makes one otherwise than its file says names it.
use chatgate::domain::secrets::{generate_whsec, ApiKeyHash};
use chatgate::gateway::operator::look::Held;
use chatgate::gateway::operator::restore;
use chatgate::time::{Clock, SystemClock};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_writes::{self as writes, with_operator, OPS};

/// The ETag and body of a read of `path` on `app`.
async fn read(app: &TestApp, path: &str) -> (String, Value) {
    let res = (app.request(Method::GET, path, Some(OPS)).send().await).unwrap();
    assert_eq!(res.status(), 200, "{path}");
    let tag = res.headers()["etag"].to_str().unwrap().to_string();
    (tag, res.json().await.unwrap())
}

/// A PUT of `body` at `path` on `app` with `headers`.
async fn put(
    app: &TestApp,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app.request(Method::PUT, path, Some(OPS)).json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

/// API channel `newsms` (Twilio, its default base URL) and team `newco`
/// listing it (and `channels`, the files'), with a webhook and a
/// `[number_verification]` that names no provider (CAMARA, the default).
async fn written(app: &TestApp, files: &[&str]) {
    let channel = json!({"name": "newsms", "kind": "twilio", "account_sid": "AC9",
        "auth_token": "twilio-token-of-the-api-channel", "from": "+15550007777",
        "templates": {"otp": "#PIN# is your code."}});
    assert_eq!(
        put(app, "/v1/channels/newsms", &channel, &[])
            .await
            .status(),
        201
    );
    let mut body = writes::team("newco", &generate_whsec());
    let mut channels = files.to_vec();
    channels.push("newsms");
    body["channels"] = json!(channels);
    body["number_verification"] = json!({
        "authorization_endpoint": "https://op.example/authorize", "token_endpoint": "https://op.example/token",
        "verify_url": "https://op.example/verify", "client_id": "cg", "client_secret": "camara-client-secret"});
    let res = put(app, "/v1/teams/newco", &body, &[]).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

/// `file` (an export, as JSON) imported into `app`'s store: those given
/// another `ETag` than the file's, or the refusals.
async fn import(app: &TestApp, file: &Value) -> Result<Vec<String>, Vec<String>> {
    let held: Held = serde_json::from_value(file.clone()).unwrap();
    let done = restore::import(&app.gateway, &held, false, SystemClock.now()).await;
    done.unwrap().map(|restored| restored.moved)
}

/// Runs `chatgate` with `args` on `app`'s configuration, with `env` set:
/// whether it exited 0, its standard output and its standard error.
fn cli(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(args)
        .arg("--config")
        .arg(app.dir.join("config/chatgate.toml"))
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), said, err)
}

/// Whether `app`'s store holds no API team or channel.
async fn holds_nothing(app: &TestApp) -> bool {
    restore::export(&app.gateway).await.unwrap().is_empty()
}

both_stores!(an_edited_export_is_refused_naming_the_team_and_the_pointer_and_writes_nothing, setup: with_operator(), |a: TestApp| async move {
    written(&a, &["webchat"]).await;
    let exported = serde_json::to_value(restore::export(&a.gateway).await.unwrap()).unwrap();
    let b = spawn_with(a.backend, with_operator()).await.unwrap();
    // The store's new gateway's file team acme: its bot key.
    let acme = ApiKeyHash::of_key(&b.keys.bot).to_hex();
    let operator = ApiKeyHash::of_key(OPS).to_hex();
    let team = |f: &dyn Fn(&mut Value)| {
        let mut file = exported.clone();
        f(&mut file["teams"]["newco"]["body"]);
        file
    };
    let added = |hash: String| {
        move |b: &mut Value| {
            let keys = b["api_keys"].as_array_mut().unwrap();
            keys.push(json!({"id": "extra", "role": "admin", "sha256": hash}));
        }
    };
    let mut channel = exported.clone();
    channel["channels"]["newsms"]["body"]["base_url"] = json!("https://collector.example/");
    let cases = [
        ("a channel's base URL", channel, "channel newsms: /auth_token"),
        ("a webhook's URL", team(&|b| b["webhook"]["url"] = json!("https://collector.example/events")),
         "team newco: /webhook/secret"),
        ("a token endpoint", team(&|b| b["number_verification"]["token_endpoint"] = json!("https://collector.example/token")),
         "team newco: /number_verification/client_secret"),
        ("a file team's key added", team(&added(acme.clone())), "team newco: /api_keys/1/sha256"),
        ("an operator's key added", team(&added(operator.clone())), "team newco: /api_keys/1/sha256"),
    ];
    for (what, file, refused_at) in cases {
        let refused = import(&b, &file).await;
        let refused = refused.expect_err(what).join("; ");
        assert!(refused.contains(refused_at), "{what}: {refused}");
        assert!(!refused.contains(&acme) && !refused.contains(&operator) && !refused.contains("acme"),
                "{what}: never which key: {refused}");
        assert!(holds_nothing(&b).await, "{what}: nothing written");
    }
});

both_stores!(an_unchanged_export_imported_into_a_fresh_store_keeps_every_etag, setup: with_operator(), |a: TestApp| async move {
    // Listing no channel file: each instance of the suite has its own
    // (its `url` names the instance's mock), and the `ETag` covers them.
    written(&a, &[]).await;
    let (team_tag, _) = read(&a, "/v1/teams/newco").await;
    let (channel_tag, _) = read(&a, "/v1/channels/newsms").await;
    let exported = serde_json::to_value(restore::export(&a.gateway).await.unwrap()).unwrap();
    let b = spawn_with(a.backend, with_operator()).await.unwrap();
    assert_eq!(import(&b, &exported).await.unwrap(), Vec::<String>::new(), "none moved");
    writes::within_two_seconds(&b, "newco-bot-key", 200).await;
    assert_eq!(read(&b, "/v1/teams/newco").await.0, team_tag, "the team's ETag");
    assert_eq!(read(&b, "/v1/channels/newsms").await.0, channel_tag, "the channel's ETag");
    // An If-Match script of before the restore still writes.
    let (_, shown) = read(&b, "/v1/teams/newco").await;
    let res = put(&b, "/v1/teams/newco", &shown, &[("If-Match", &team_tag)]).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
});

both_stores!(an_import_run_with_other_defaults_and_channel_files_keeps_every_etag, setup: with_operator(), |a: TestApp| async move {
    // Listing the files' channels: each instance of the suite has its
    // own (their URLs name its mocks), and the importing one has other
    // `[defaults]` too.
    written(&a, &["webchat", "sms"]).await;
    let (team_tag, _) = read(&a, "/v1/teams/newco").await;
    let (channel_tag, _) = read(&a, "/v1/channels/newsms").await;
    let exported = serde_json::to_value(restore::export(&a.gateway).await.unwrap()).unwrap();
    let other = Setup {
        defaults: "token_ttl = \"7m\"".into(),
        ..with_operator()
    };
    let b = spawn_with(a.backend, other).await.unwrap();
    assert_eq!(import(&b, &exported).await.unwrap(), Vec::<String>::new(), "none moved");
    writes::within_two_seconds(&b, "newco-bot-key", 200).await;
    // Built otherwise there: its effective configuration is b's, and the
    // trail records that one.
    let print = |app: &TestApp| app.reloader.in_force().config().teams["newco"].print.digest();
    assert_ne!(print(&a), print(&b), "another environment");
    let entry = writes::entries(&b, "newco").await.pop().unwrap();
    assert_eq!(entry["detail"]["source"], "restore", "{entry}");
    assert_eq!(entry["detail"]["digest"].as_str(), Some(print(&b).as_str()), "{entry}");
    // What the store keeps is as it was: the same ETags, and an If-Match
    // of before still writes.
    assert_eq!(read(&b, "/v1/teams/newco").await.0, team_tag, "the team's ETag");
    assert_eq!(read(&b, "/v1/channels/newsms").await.0, channel_tag, "the channel's ETag");
    let (_, shown) = read(&b, "/v1/teams/newco").await;
    let res = put(&b, "/v1/teams/newco", &shown, &[("If-Match", &team_tag)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(writes::etag_of(&res), team_tag, "written back as read: the same ETag");
});

both_stores!(a_token_endpoint_moved_where_no_provider_is_named_needs_its_secret_again, setup: with_operator(), |a: TestApp| async move {
    written(&a, &["webchat"]).await;
    let (tag, shown) = read(&a, "/v1/teams/newco").await;
    let mut repointed = shown.clone();
    repointed["number_verification"]["token_endpoint"] = json!("https://collector.example/token");
    let res = put(&a, "/v1/teams/newco", &repointed, &[("If-Match", &tag)]).await;
    let p = assert_problem(res, 422, "invalid_config").await;
    let at: Vec<&str> = (p["errors"].as_array().unwrap().iter()).map(|e| e["pointer"].as_str().unwrap()).collect();
    assert_eq!(at, ["/number_verification/client_secret"], "{p}");
    assert_eq!(read(&a, "/v1/teams/newco").await, (tag.clone(), shown), "nothing changed");
    repointed["number_verification"]["client_secret"] = json!("camara-client-secret");
    assert_eq!(put(&a, "/v1/teams/newco", &repointed, &[("If-Match", &tag)]).await.status(), 200);
});

both_stores!(an_import_names_each_etag_it_made_otherwise_than_its_file, setup: with_operator(), |a: TestApp| async move {
    written(&a, &[]).await;
    let (team_tag, _) = read(&a, "/v1/teams/newco").await;
    let mut exported = serde_json::to_value(restore::export(&a.gateway).await.unwrap()).unwrap();
    exported["teams"]["newco"]["digest"] = json!("0".repeat(64));
    let b = spawn_with(a.backend, with_operator()).await.unwrap();
    assert_eq!(import(&b, &exported).await.unwrap(), ["team newco"]);
    writes::within_two_seconds(&b, "newco-bot-key", 200).await;
    assert_eq!(read(&b, "/v1/teams/newco").await.0, team_tag, "its own digest, whatever the file says");
});

/// The real `chatgate teams export`, then `chatgate teams import` into a
/// fresh store (another gateway of the same configuration), a team with
/// sealed secrets listing an API channel with one: every `ETag` kept,
/// nothing said of one, an `If-Match` of before still writes. Run with an
/// environment that changes the `[defaults]` the team inherits and the
/// secret of a channel file it lists, the import keeps them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_export_imported_into_a_fresh_store_keeps_every_etag_or_names_the_moved() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    written(&a, &["webchat", "sms"]).await;
    let (team_tag, _) = read(&a, "/v1/teams/newco").await;
    let (channel_tag, _) = read(&a, "/v1/channels/newsms").await;
    let (ok, exported, err) = cli(&a, &["teams", "export"], &[]);
    assert!(ok, "{err}");
    assert!(
        !exported.contains("camara-client-secret"),
        "sealed: {exported}"
    );
    let file = a.dir.join("backup.json");
    std::fs::write(&file, &exported).unwrap();
    let file = file.to_str().unwrap();

    let b = spawn_with(Backend::Redis, with_operator()).await.unwrap();
    let (ok, said, err) = cli(&b, &["teams", "import", file], &[]);
    assert!(ok, "{err}");
    assert_eq!(said.trim(), "imported 1 teams and 1 channels");
    assert!(!err.contains("ETag"), "{err}");
    writes::within_two_seconds(&b, "newco-bot-key", 200).await;
    assert_eq!(
        read(&b, "/v1/teams/newco").await.0,
        team_tag,
        "the team's ETag"
    );
    assert_eq!(
        read(&b, "/v1/channels/newsms").await.0,
        channel_tag,
        "the channel's ETag"
    );
    let (_, shown) = read(&b, "/v1/teams/newco").await;
    let res = put(&b, "/v1/teams/newco", &shown, &[("If-Match", &team_tag)]).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    let c = spawn_with(Backend::Redis, with_operator()).await.unwrap();
    let other = [
        ("CHATGATE_DEFAULTS__TOKEN_TTL", "7m"),
        ("CG_TEST_UNSET_TWILIO", "another-twilio-token"),
    ];
    let (ok, _, err) = cli(&c, &["teams", "import", file], &other);
    assert!(ok, "{err}");
    assert!(!err.contains("ETag"), "{err}");
    writes::within_two_seconds(&c, "newco-bot-key", 200).await;
    assert_eq!(read(&c, "/v1/teams/newco").await.0, team_tag);
    assert_eq!(read(&c, "/v1/channels/newsms").await.0, channel_tag);
}

/// An import reads its teams' key claims and reservations together, a
/// change of up to 256 keys' at once, as a restore writes them back: not
/// a store round trip a team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_reads_its_teams_key_claims_together() {
    use chatgate::store::keys;
    let (counting, app) = crate::round_trips::on_counting_store_with(with_operator()).await;
    let mut claims = Vec::new();
    for i in 0..30 {
        let id = format!("many{i}");
        let key = format!("many-key-{i}");
        let mut body = writes::team(&id, &generate_whsec());
        body["api_keys"][0]["sha256"] = json!(ApiKeyHash::of_key(&key).to_hex());
        let res = writes::put(&app, &id, &body, &[]).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        claims.push(keys::api_key_claim(&ApiKeyHash::of_key(&key).to_hex()));
    }
    let held = restore::export(&app.gateway).await.unwrap();
    counting.gets.lock().unwrap().clear();
    let done = restore::import(&app.gateway, &held, true, app.clock.now()).await;
    assert!(done.unwrap().is_ok(), "imported over itself");
    let gets = counting.gets.lock().unwrap().clone();
    let reading_claims = gets
        .iter()
        .filter(|keys| keys.iter().any(|k| claims.contains(k)));
    let reading_claims: Vec<usize> = reading_claims.map(Vec::len).collect();
    // The check's read, and the write-back's.
    assert_eq!(reading_claims.len(), 2, "{reading_claims:?}");
}
