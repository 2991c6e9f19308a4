//! Teams written through the operator API (docs/operator-api.md): kept in
//! the store, created only with `If-None-Match: *`, replaced and deleted
//! only with the current `ETag` (of two writers naming one, one wins), a
//! secret sent back as its `{"hmac"}` kept, no secret in the store as it
//! is, and each write a `config.changed` entry naming the operator.
use chatgate::domain::secrets::ApiKeyHash;
use chatgate::store::keys;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

pub(crate) const OPS: &str = "ops-key-for-the-operator-write-tests";
const SECRETS_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The webhook secret of every team written here.
pub(crate) fn webhook_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(chatgate::domain::secrets::generate_whsec)
}

/// `[operator]` with the `operator` key; `allow_private`: its
/// `allow_private_destinations`.
pub(crate) fn operator_section(allow_private: bool) -> String {
    format!(
        "[operator]\napi_keys = [{{ id = \"ops\", sha256 = \"{}\", role = \"operator\" }}]\n\
         secrets_keys = [{{ id = \"k1\", key = \"{SECRETS_KEY}\" }}]\n\
         allow_private_destinations = {allow_private}\n",
        ApiKeyHash::of_key(OPS).to_hex(),
    )
}

/// The operator API on, its URLs allowed to name the wiremock servers on
/// 127.0.0.1 that stand in for every provider and webhook of the suite
/// (`operator_inputs` shows the refusal without).
pub(crate) fn with_operator() -> Setup {
    Setup {
        system_extra: operator_section(true),
        ..Setup::default()
    }
}

/// A new team's body, its security key `security`.
pub(crate) fn team(id: &str, security: &str) -> Value {
    json!({
        "id": id,
        "login_url": "https://login.newco.example/",
        "channels": ["webchat"],
        "security_keys": [{"kid": "n1", "secret": security, "primary": true}],
        "api_keys": [{"id": "newco-bot", "role": "admin", "sha256": ApiKeyHash::of_key("newco-bot-key").to_hex()}],
        "webhook": {"url": "https://bot.newco.example/events", "secret": webhook_secret()},
        "settings": {"otp": {"ttl": "2m"}},
    })
}

pub(crate) async fn put(
    app: &TestApp,
    id: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .request(Method::PUT, &format!("/v1/teams/{id}"), Some(OPS))
        .json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

pub(crate) async fn delete(app: &TestApp, id: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.request(Method::DELETE, &format!("/v1/teams/{id}"), Some(OPS));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

pub(crate) fn etag_of(res: &reqwest::Response) -> String {
    res.headers()["etag"].to_str().unwrap().to_string()
}

/// The stored team's text, as the store holds it.
pub(crate) async fn stored(app: &TestApp, id: &str) -> Option<String> {
    let got = app
        .gateway
        .store()
        .get(&[keys::api_team(id)])
        .await
        .unwrap();
    got.into_iter().next().flatten().map(|v| v.value)
}

/// The keyspace team `id`'s keys are made from (`keys::keyspace`): its
/// stored form's incarnation; for a team the store no longer holds, the
/// one its delete left; else its id.
pub(crate) async fn keyspace(app: &TestApp, id: &str) -> String {
    let marker = keys::deleted_team(id);
    let got = app
        .gateway
        .store()
        .get(&[keys::api_team(id), marker])
        .await
        .unwrap();
    let mut got = got
        .into_iter()
        .map(|v| v.map(|v| serde_json::from_str::<Value>(&v.value).unwrap()));
    let (stored, deleted) = (got.next().flatten(), got.next().flatten());
    match (stored, deleted) {
        (Some(stored), _) => keys::keyspace(id, stored["inc"].as_str()),
        (None, Some(deleted)) => deleted["ks"].as_str().unwrap().to_string(),
        (None, None) => id.to_string(),
    }
}

/// The team's audit entries, as stored, from the first.
pub(crate) async fn entries(app: &TestApp, id: &str) -> Vec<Value> {
    entries_in(app, &keyspace(app, id).await).await
}

/// The audit entries of `keyspace`'s trail, as stored, from the first.
pub(crate) async fn entries_in(app: &TestApp, keyspace: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for seq in 1.. {
        let got = app
            .gateway
            .store()
            .get(&[keys::audit_entry(keyspace, seq)])
            .await
            .unwrap();
        let Some(v) = got.into_iter().next().flatten() else {
            break;
        };
        let json = chatgate::gateway::audit::entry_json(v.value).unwrap();
        found.push(serde_json::from_str(&json).unwrap());
    }
    found
}

both_stores!(a_team_is_created_replaced_and_deleted_against_its_etag, setup: with_operator(), |app: TestApp| async move {
    let secret = chatgate::domain::secrets::generate_whsec();
    let body = team("newco", &secret);
    let res = put(&app, "newco", &body, &[("If-None-Match", "*")]).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["chatgate-source"], "api");
    let first = etag_of(&res);
    let shown: Value = res.json().await.unwrap();
    assert_eq!(shown["security_keys"][0]["secret"]["hmac"].as_str().unwrap().len(), 64);
    let text = stored(&app, "newco").await.expect("the team is stored");
    assert!(text.contains(&first[1..65]), "the digest is kept: {text}");

    // Create only: it exists now. A replace names the current ETag.
    assert_problem(put(&app, "newco", &body, &[("If-None-Match", "*")]).await, 412, "precondition_failed").await;
    assert_problem(put(&app, "newco", &body, &[]).await, 428, "precondition_required").await;
    let mut changed = body.clone();
    changed["settings"]["otp"]["ttl"] = json!("3m");
    let stale = "\"0000000000000000000000000000000000000000000000000000000000000000\"";
    assert_problem(put(&app, "newco", &changed, &[("If-Match", stale)]).await, 412, "precondition_failed").await;
    assert_eq!(stored(&app, "newco").await.unwrap(), text, "a refused write changes nothing");
    let res = put(&app, "newco", &changed, &[("If-Match", &first)]).await;
    assert_eq!(res.status(), 200);
    let second = etag_of(&res);
    assert_ne!(second, first);

    // What a read shows, written back: the secrets kept, the ETag the same.
    let mut back: Value = res.json().await.unwrap();
    let res = put(&app, "newco", &back, &[("If-Match", &second)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(etag_of(&res), second, "the secrets were kept as they were");
    // An HMAC of no secret the team keeps is refused.
    back["webhook"]["secret"] = json!({"hmac": "ab".repeat(32)});
    let problem = assert_problem(put(&app, "newco", &back, &[("If-Match", &second)]).await, 422, "invalid_config").await;
    assert_eq!(problem["errors"][0]["pointer"], "/webhook/secret", "{problem}");

    // A dry run answers as the write would and writes nothing. Its
    // secrets written as themselves are salted anew: its ETag is no
    // stored version's, even where the values are the same.
    let res = app.request(Method::PUT, "/v1/teams/newco?dry_run=true", Some(OPS)).header("If-Match", &second).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_ne!(etag_of(&res), first);
    assert_ne!(etag_of(&res), second);
    let res = put(&app, "newco", &changed, &[("If-Match", &second)]).await;
    assert_eq!(res.status(), 200, "the dry run changed nothing");
    let third = etag_of(&res);

    // Delete: 428, 412, then 204; then there is none.
    assert_problem(delete(&app, "newco", &[]).await, 428, "precondition_required").await;
    assert_problem(delete(&app, "newco", &[("If-Match", stale)]).await, 412, "precondition_failed").await;
    assert_problem(delete(&app, "newco", &[("If-Match", &second)]).await, 412, "precondition_failed").await;
    assert_eq!(delete(&app, "newco", &[("If-Match", &third)]).await.status(), 204);
    assert_eq!(stored(&app, "newco").await, None);
    assert_problem(delete(&app, "newco", &[("If-Match", &third)]).await, 404, "not_found").await;
    // The path's id and the body's agree.
    let problem = assert_problem(put(&app, "other", &body, &[]).await, 422, "invalid_config").await;
    assert_eq!(problem["errors"][0]["pointer"], "/id", "{problem}");
});

/// The most a recorded configuration (`{team}:acfg`) of a team that sets
/// nothing may weigh, a key: its keys are the `[defaults]` it inherits,
/// packed (docs/decisions/0800-a-recorded-configuration-keeps-its-keys-packed.md;
/// 62 bytes a key as a map of them).
const RECORDED_MOST_A_KEY: usize = 28;

/// The operator API on, with the sample's texts and Spanish translations
/// as `[defaults]`: a hundred and more keys every team inherits.
fn with_the_sample_s_texts() -> Setup {
    let sample = std::fs::read_to_string("config/chatgate.toml").unwrap();
    let from = sample.find("[defaults.templates]").unwrap();
    let to = from + sample[from..].find("\n[audit]").unwrap();
    Setup {
        defaults: sample[from..to].to_string(),
        ..with_operator()
    }
}

// A team that sets nothing: its recorded configuration weighs a fraction
// of its inherited keys' names, and still names the one key a later
// write changes.
both_stores!(a_team_that_sets_nothing_is_recorded_in_few_bytes, setup: with_the_sample_s_texts(), |app: TestApp| async move {
    let mut first = team("quiet", &chatgate::domain::secrets::generate_whsec());
    first.as_object_mut().unwrap().retain(|k, _| ["id", "login_url", "channels", "security_keys", "api_keys"].contains(&k.as_str()));
    let res = put(&app, "quiet", &first, &[("If-None-Match", "*")]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    // What the write shows, its secrets as their HMACs, written back.
    let mut body: Value = res.json().await.unwrap();
    let space = keyspace(&app, "quiet").await;
    let got = app.gateway.store().get(&[keys::audit_config(&space)]).await.unwrap();
    let recorded = got.into_iter().next().flatten().expect("recorded").value;
    let entry = &entries_in(&app, &space).await[0];
    let names = entry["detail"]["changed"].as_array().unwrap().len();
    assert!(names > 100, "every inherited key is recorded: {names}");
    assert!(recorded.len() <= RECORDED_MOST_A_KEY * names, "{} bytes for {names} keys", recorded.len());
    // The first entry, which names every key, is stored packed and read
    // back as the JSON that was hashed.
    let got = app.gateway.store().get(&[keys::audit_entry(&space, 1)]).await.unwrap();
    let stored_entry = got.into_iter().next().flatten().expect("the first entry").value;
    let json = chatgate::gateway::audit::entry_json(stored_entry.clone()).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), *entry);
    assert!(stored_entry.len() * 3 <= json.len(), "{} bytes stored for {} of JSON", stored_entry.len(), json.len());

    body["settings"] = json!({"otp": {"ttl": "3m"}});
    assert_eq!(put(&app, "quiet", &body, &[("If-Match", &tag)]).await.status(), 200);
    let written = entries_in(&app, &space).await;
    assert_eq!(written[1]["detail"]["changed"], json!(["settings.otp.ttl"]), "{}", written[1]);
});

both_stores!(of_two_writers_naming_one_etag_one_wins, setup: with_operator(), |app: TestApp| async move {
    let body = team("race", &chatgate::domain::secrets::generate_whsec());
    let res = put(&app, "race", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    for round in 0..5 {
        let tag = match round {
            0 => tag.clone(),
            _ => {
                let got = stored(&app, "race").await.unwrap();
                let v: Value = serde_json::from_str(&got).unwrap();
                format!("\"{}\"", v["digest"].as_str().unwrap())
            }
        };
        let mut a = body.clone();
        a["settings"]["otp"]["ttl"] = json!(format!("{}m", 10 + 2 * round));
        let mut b = body.clone();
        b["settings"]["otp"]["ttl"] = json!(format!("{}m", 11 + 2 * round));
        let headers = [("If-Match", tag.as_str())];
        let (ra, rb) = tokio::join!(
            put(&app, "race", &a, &headers),
            put(&app, "race", &b, &headers)
        );
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 412], "round {round}");
    }
});

both_stores!(no_secret_is_stored_as_it_is_and_each_write_is_audited, setup: with_operator(), |app: TestApp| async move {
    let secret = chatgate::domain::secrets::generate_whsec();
    let res = put(&app, "newco", &team("newco", &secret), &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    let first = keyspace(&app, "newco").await;
    assert_eq!(delete(&app, "newco", &[("If-Match", &tag)]).await.status(), 204);
    let res = put(&app, "newco", &team("newco", &secret), &[]).await;
    assert_eq!(res.status(), 201);
    let again = etag_of(&res);
    let second = keyspace(&app, "newco").await;

    // Every value the test's store holds, searched for the secrets.
    let mut values = vec![stored(&app, "newco").await.unwrap()];
    values.extend(entries_in(&app, &first).await.iter().map(Value::to_string));
    values.extend(entries_in(&app, &second).await.iter().map(Value::to_string));
    let got = app.gateway.store().get(&[keys::api_teams(), keys::audit_config(&second)]).await.unwrap();
    values.extend(got.into_iter().flatten().map(|v| v.value));
    if matches!(app.backend, Backend::Redis) {
        values.extend(redis_values(&app.key_prefix).await);
    }
    let secret_body = &secret["whsec_".len()..];
    let webhook_body = &webhook_secret()["whsec_".len()..];
    for v in &values {
        assert!(!v.contains(secret_body) && !v.contains(webhook_body), "a secret is stored as it is: {v}");
    }
    assert!(values[0].contains("cg3:k1:"), "{}", values[0]);

    // Created, deleted, created: three entries, each by the operator key;
    // the team written again has a trail of its own.
    let mut written = entries_in(&app, &first).await;
    assert_eq!(written.len(), 2, "{written:?}");
    written.extend(entries_in(&app, &second).await);
    assert_eq!(written.len(), 3, "{written:?}");
    assert_eq!(written[2]["seq"], 1, "{written:?}");
    for e in &written {
        assert_eq!(e["action"], "config.changed", "{e}");
        assert_eq!(e["detail"]["source"], "api", "{e}");
        assert_eq!(e["actor"]["api_key_id"], "ops", "{e}");
    }
    assert_eq!(written[0]["detail"]["api_keys_added"], json!(["newco-bot"]));
    assert_eq!(written[1]["detail"]["api_keys_removed"], json!(["newco-bot"]));
    // The entry records the effective configuration (the `[defaults]`
    // and channel files the team inherits too); the ETag is of what the
    // store keeps, its body alone.
    let effective = app.reloader.in_force().config().teams["newco"].print.digest();
    assert_eq!(written[2]["detail"]["digest"].as_str(), Some(effective.as_str()));
    assert_ne!(&again[1..65], effective);
});

/// Every value under `prefix` in Redis.
pub(crate) async fn redis_values(prefix: &str) -> Vec<String> {
    let dumped = crate::redis_support::dump_prefix(prefix).await;
    dumped.into_iter().flat_map(|d| d.values).collect()
}

/// The status of a team key's read of its interactions on `app`.
pub(crate) async fn key_status(app: &TestApp, key: &str) -> u16 {
    let res = app
        .request(Method::GET, "/v1/interactions", Some(key))
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

/// Polls `app` until team key `key` answers `status`, for at most 2 s.
pub(crate) async fn within_two_seconds(app: &TestApp, key: &str, status: u16) {
    let what = format!("the key answers {status}");
    in_two_seconds(&what, || async { key_status(app, key).await == status }).await;
}

/// Polls `holds` every 50 ms until it does, for at most 2 s.
pub(crate) async fn in_two_seconds<F, Fut>(what: &str, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !holds().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 2 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

both_stores!(a_team_written_is_in_force_on_the_instance_that_answered, setup: with_operator(), |app: TestApp| async move {
    assert_eq!(key_status(&app, "newco-bot-key").await, 401);
    let res = put(&app, "newco", &team("newco", &chatgate::domain::secrets::generate_whsec()), &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    // At once: the next request sees the team, its key and its settings.
    assert_eq!(key_status(&app, "newco-bot-key").await, 200);
    let res = app.request(Method::GET, "/v1/teams/newco", Some(OPS)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["chatgate-source"], "api");
    assert_eq!(etag_of(&res), tag);
    let list = app.get_json("/v1/teams", Some(OPS)).await;
    let newco = list["teams"].as_array().unwrap().iter().find(|t| t["id"] == "newco").unwrap().clone();
    assert_eq!(newco["source"], "api");
    assert!(newco["updated_at"].is_string(), "{newco}");
    // A file team's id is still the file's.
    let res = put(&app, "acme", &team("acme", &chatgate::domain::secrets::generate_whsec()), &[]).await;
    assert_problem(res, 428, "precondition_required").await;
    // A reload of the files keeps it; a file with its id is refused.
    assert!(matches!(app.reloader.reload().await, chatgate::app::Reloaded::Applied { .. }));
    assert_eq!(key_status(&app, "newco-bot-key").await, 200);
    let file = format!(
        "id = \"newco\"\nlogin_url = \"https://login.test/\"\nchannels = [\"webchat\"]\n\n\
         [[security_keys]]\nkid = \"f1\"\nsecret = \"{}\"\nprimary = true\n",
        chatgate::domain::secrets::generate_whsec()
    );
    let path = app.dir.join("config/teams/newco-file.toml");
    std::fs::write(&path, file).unwrap();
    let chatgate::app::Reloaded::Refused(e) = app.reloader.reload().await else {
        panic!("a file team with an API team's id was reloaded");
    };
    assert!(e.problem.contains("\"newco\"") && e.problem.contains("operator API"), "{e}");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(key_status(&app, "newco-bot-key").await, 200, "nothing changed");
    let metrics = app.request(Method::GET, "/metrics", None).send().await.unwrap().text().await.unwrap();
    // The gauge is the process's (other tests set it too): its series is there.
    assert!(metrics.lines().any(|l| l.starts_with("chatgate_api_teams ")), "{metrics}");
    // Deleted: its key is refused at once.
    assert_eq!(delete(&app, "newco", &[("If-Match", &tag)]).await.status(), 204);
    assert_eq!(key_status(&app, "newco-bot-key").await, 401);
    assert_problem(app.request(Method::GET, "/v1/teams/newco", Some(OPS)).send().await.unwrap(), 404, "not_found").await;
});

/// Two instances on one Redis: a write on one is in force on the other
/// within 2 s, a delete too; an instance that starts later has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_written_is_in_force_on_every_instance_within_two_seconds() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let b = spawn_beside(&a, with_operator()).await;
    let res = put(
        &a,
        "newco",
        &team("newco", &chatgate::domain::secrets::generate_whsec()),
        &[],
    )
    .await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    assert_eq!(key_status(&a, "newco-bot-key").await, 200);
    within_two_seconds(&b, "newco-bot-key", 200).await;
    let c = spawn_beside(&a, with_operator()).await;
    assert_eq!(
        key_status(&c, "newco-bot-key").await,
        200,
        "loaded at the start"
    );
    // An instance whose secrets keys no longer list the key that sealed a
    // team's secrets does not start, and says which team and key.
    let system = a.dir.join("config/chatgate.toml");
    let text = std::fs::read_to_string(&system).unwrap();
    std::fs::write(&system, text.replace("id = \"k1\"", "id = \"k2\"")).unwrap();
    let config = chatgate::config::load(&system).unwrap();
    let Err(e) = chatgate::app::App::build(config, chatgate::app::Options::default()).await else {
        panic!("an instance started without the key of a stored team");
    };
    assert!(
        e.to_string().contains("\"newco\"") && e.to_string().contains("\"k1\""),
        "{e}"
    );
    std::fs::write(&system, text).unwrap();
    // Replaced on b: a's next look has the new ETag.
    let mut changed = team("newco", &chatgate::domain::secrets::generate_whsec());
    changed["settings"]["otp"]["ttl"] = json!("4m");
    let res = put(&b, "newco", &changed, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);
    let second = etag_of(&res);
    let read = || async {
        let res = a.request(Method::GET, "/v1/teams/newco", Some(OPS)).send();
        etag_of(&res.await.unwrap()) == second
    };
    in_two_seconds("a has the new team", read).await;
    // Deleted on a: refused on b and c within 2 s.
    assert_eq!(
        delete(&a, "newco", &[("If-Match", &second)]).await.status(),
        204
    );
    assert_eq!(key_status(&a, "newco-bot-key").await, 401);
    within_two_seconds(&b, "newco-bot-key", 401).await;
    within_two_seconds(&c, "newco-bot-key", 401).await;
    c.stop_keeping_keys().await;
    b.stop_keeping_keys().await;
}

/// `[defaults]` with an OTP time-to-live of `ttl`, and a channel file
/// `chat2` no file team lists.
fn with_defaults(ttl: &str) -> Setup {
    Setup {
        defaults: format!("otp = {{ ttl = \"{ttl}\" }}"),
        unlisted_channels: vec![(
            "chat2".into(),
            format!(
                "name = \"chat2\"\nkind = \"webhook\"\nurl = \"{{CHAT_URL}}/chat2\"\n\
                 secret = \"${{CG_TEST_UNSET_CHAT2:-{}}}\"\n",
                webhook_secret()
            ),
        )],
        ..with_operator()
    }
}

/// The OTP time-to-live of team `id` in force on `app`.
fn ttl_in_force(app: &TestApp, id: &str) -> std::time::Duration {
    app.reloader.in_force().config().teams[id]
        .settings
        .otp
        .ttl
        .0
}

both_stores!(a_reload_builds_the_api_teams_again_against_the_new_files, setup: with_defaults("4m"), |app: TestApp| async move {
    let mut body = team("newco", &chatgate::domain::secrets::generate_whsec());
    body.as_object_mut().unwrap().remove("settings");
    body["channels"] = json!(["webchat", "chat2"]);
    let res = put(&app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    assert_eq!(ttl_in_force(&app, "newco").as_secs(), 240);

    // `[defaults]` changes: the reload builds the team again with it.
    let system = app.dir.join("config/chatgate.toml");
    let text = std::fs::read_to_string(&system).unwrap();
    std::fs::write(&system, text.replace("ttl = \"4m\"", "ttl = \"6m\"")).unwrap();
    assert!(matches!(app.reloader.reload().await, chatgate::app::Reloaded::Applied { .. }));
    assert_eq!(ttl_in_force(&app, "newco").as_secs(), 360);
    assert_eq!(key_status(&app, "newco-bot-key").await, 200);
    // What was written is unchanged: its ETag is the stored digest, and
    // still names it for a write. The trail records the new effective
    // configuration.
    let res = app.request(Method::GET, "/v1/teams/newco", Some(OPS)).send().await.unwrap();
    assert_eq!(etag_of(&res), tag);
    let last = entries(&app, "newco").await.pop().unwrap();
    assert_eq!(last["detail"]["source"], "reload", "{last}");
    assert_ne!(last["detail"]["digest"].as_str(), Some(&tag[1..65]), "{last}");
    assert!(last["detail"]["changed"].to_string().contains("settings.otp.ttl"), "{last}");

    // A channel file it lists is removed: the reload applies the files and
    // leaves the team out (one error line names it); a read still gives
    // the stored form and its ETag, which still writes.
    let chat2 = app.dir.join("channels/chat2.toml");
    let chat2_text = std::fs::read_to_string(&chat2).unwrap();
    std::fs::remove_file(&chat2).unwrap();
    std::fs::write(&system, text.replace("ttl = \"4m\"", "ttl = \"8m\"")).unwrap();
    assert!(matches!(app.reloader.reload().await, chatgate::app::Reloaded::Applied { .. }));
    assert!(!app.reloader.in_force().config().channels.contains_key("chat2"));
    assert!(!app.reloader.in_force().config().teams.contains_key("newco"), "left out");
    assert_eq!(key_status(&app, "newco-bot-key").await, 401);
    let res = app.request(Method::GET, "/v1/teams/newco", Some(OPS)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(etag_of(&res), tag);
    let shown: Value = res.json().await.unwrap();
    assert_eq!(shown["channels"], json!(["webchat", "chat2"]), "{shown}");
    assert_eq!(shown["webhook"]["secret"]["hmac"].as_str().unwrap().len(), 64, "{shown}");
    std::fs::write(&chat2, chat2_text).unwrap();
    assert!(matches!(app.reloader.reload().await, chatgate::app::Reloaded::Applied { .. }));
    assert_eq!(ttl_in_force(&app, "newco").as_secs(), 480);

    // The ETag a read gives still writes; the body written again is
    // digested with the `[defaults]` in force now.
    let res = put(&app, "newco", &body, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);
    assert_ne!(etag_of(&res), tag);
});

/// docs/operator-api.md#every-instance-at-once: a stored team left out is
/// named in one error line that says what is wrong in words — the
/// channel it lists that is gone, by name, with its pointer — not only a
/// pointer.
#[tokio::test]
async fn a_team_left_out_is_said_in_words() {
    // On this test's one thread: the gateway's lines too.
    let (lines, _guard) = crate::cluster_outage::Lines::at_info();
    let Some(app) = spawn_with(Backend::Memory, with_defaults("4m")).await else {
        return;
    };
    let mut body = team("newco", &chatgate::domain::secrets::generate_whsec());
    body["channels"] = json!(["webchat", "chat2"]);
    assert_eq!(put(&app, "newco", &body, &[]).await.status(), 201);
    std::fs::remove_file(app.dir.join("channels/chat2.toml")).unwrap();
    assert!(matches!(
        app.reloader.reload().await,
        chatgate::app::Reloaded::Applied { .. }
    ));
    assert!(!app.reloader.in_force().config().teams.contains_key("newco"));
    let errors: Vec<String> = (lines.0.lock().unwrap().iter())
        .filter(|(_, l)| l.contains("ERROR") && l.contains("newco"))
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("the channel `chat2` it lists is gone (at /channels/1)"),
        "{errors:?}"
    );
}

/// Team `newco` written on an instance whose store stalls on demand.
async fn on_a_stalling_store() -> (
    TestApp,
    std::sync::Arc<crate::wrapped::Wrapped<crate::stalls::Stalling>>,
) {
    let (inner, prefix) = crate::outbox::own_store(Backend::Memory).await.unwrap();
    let store = crate::stalls::Stalling::over(inner);
    let setup = Setup {
        key_prefix: Some(prefix),
        store: Some(store.clone()),
        ..with_operator()
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let res = put(
        &app,
        "newco",
        &team("newco", &chatgate::domain::secrets::generate_whsec()),
        &[],
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(key_status(&app, "newco-bot-key").await, 200);
    (app, store)
}

/// Whether team `id` is in force on `app` as an API team.
fn api_team_in_force(app: &TestApp, id: &str) -> bool {
    let gateway = app.reloader.in_force();
    gateway
        .config()
        .teams
        .get(id)
        .is_some_and(|t| t.api.is_some())
}

#[tokio::test]
async fn an_instance_that_cannot_reach_the_store_keeps_the_api_teams_it_has() {
    let (app, store) = on_a_stalling_store().await;
    store.stall(true);
    app.reloader.operator().sync().await;
    assert!(api_team_in_force(&app, "newco"), "a failed look removed it");
    // Its key is still known: the request fails on the store, not on the key.
    let res = app
        .request(Method::GET, "/v1/interactions", Some("newco-bot-key"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 503, "store_unavailable").await;
    // A reload meanwhile applies the files and keeps it as it was built.
    assert!(matches!(
        app.reloader.reload().await,
        chatgate::app::Reloaded::Applied { .. }
    ));
    assert!(
        api_team_in_force(&app, "newco"),
        "a reload without the store removed it"
    );
    store.stall(false);
    app.reloader.operator().sync().await;
    assert_eq!(key_status(&app, "newco-bot-key").await, 200);
}

#[tokio::test]
async fn the_failing_looks_at_the_api_teams_are_said_once() {
    let (app, store) = on_a_stalling_store().await;
    // On this test's one thread: the looks of the background task too.
    let (lines, _guard) = crate::cluster_outage::Lines::at_info();
    store.stall(true);
    for _ in 0..3 {
        app.reloader.operator().sync().await;
    }
    store.stall(false);
    for _ in 0..2 {
        app.reloader.operator().sync().await;
    }
    let said = |what: &str| -> Vec<String> {
        let lines = lines.0.lock().unwrap();
        lines
            .iter()
            .filter(|(_, l)| l.contains(what))
            .map(|(_, l)| l.clone())
            .collect()
    };
    let failing = said("the API teams cannot be read");
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert!(failing[0].contains("WARN"), "{failing:?}");
    let back = said("the API teams are read again");
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(
        back[0].contains("INFO") && back[0].contains("failed_looks="),
        "{back:?}"
    );
    assert!(api_team_in_force(&app, "newco"));
}

both_stores!(a_team_written_keeps_no_earlier_configuration_alive, setup: with_operator(), |app: TestApp| async move {
    let secret = chatgate::domain::secrets::generate_whsec();
    let body = |id: &str| {
        let mut body = team(id, &secret);
        body["api_keys"][0]["sha256"] = json!(ApiKeyHash::of_key(&format!("{id}-bot-key")).to_hex());
        body
    };
    let res = put(&app, "one", &body("one"), &[("If-None-Match", "*")]).await;
    assert_eq!(res.status(), 201);
    // The gateway in force with the first team: its outbox loop starts on it.
    let first = std::sync::Arc::downgrade(&app.reloader.in_force());
    let res = put(&app, "two", &body("two"), &[("If-None-Match", "*")]).await;
    assert_eq!(res.status(), 201);
    // Once another is in force, nothing keeps it: an idle team's loop
    // sleeps without a configuration (docs/performance.md#teams-written-through-the-operator-api).
    in_two_seconds("the gateway of the first write let go", || async {
        first.upgrade().is_none()
    })
    .await;
});
