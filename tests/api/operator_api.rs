//! The operator API (docs/operator-api.md): off without `[operator]`;
//! operator keys call only its paths and team keys none of them, the role
//! first; a team and a channel read as the JSON form of their files with
//! their secrets as HMACs and their `ETag`; every write to a file team
//! answers 428, 412, then 409 `managed_by_file`; a new team's dry run is
//! checked by the rules of a team file and writes nothing.
use chatgate::domain::secrets::ApiKeyHash;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc_provider::{sign, FakeIdp, Signing};

const OPS: &str = "ops-key-for-the-operator-api-tests";
const OPS_READ: &str = "ops-read-key-for-the-operator-api-tests";
const SECRETS_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// `[operator]` with an `operator` and an `operator_read` key, and `more`.
fn operator_section(more: &str) -> String {
    format!(
        "[operator]\napi_keys = [{{ id = \"ops\", sha256 = \"{}\", role = \"operator\" }}, \
         {{ id = \"ops-read\", sha256 = \"{}\", role = \"operator_read\" }}]\n\
         secrets_keys = [{{ id = \"k1\", key = \"{SECRETS_KEY}\" }}]\n{more}\n",
        ApiKeyHash::of_key(OPS).to_hex(),
        ApiKeyHash::of_key(OPS_READ).to_hex(),
    )
}

fn with_operator() -> Setup {
    Setup {
        system_extra: operator_section(""),
        ..Setup::default()
    }
}

async fn send(app: &TestApp, m: Method, path: &str, key: Option<&str>) -> reqwest::Response {
    app.request(m, path, key).send().await.unwrap()
}

/// A write with `headers` (name, value) and no body.
async fn write(
    app: &TestApp,
    m: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app.request(m, path, Some(OPS));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

/// The quoted `ETag` of team `id` as the configuration in force prints it.
fn team_etag(app: &TestApp, id: &str) -> String {
    let team = app.gateway.config().team(id).unwrap();
    format!("\"{}\"", team.print.digest())
}

both_stores!(off_without_the_section, |app: TestApp| async move {
    for (m, path) in [
        (Method::GET, "/v1/teams"),
        (Method::GET, "/v1/teams/acme"),
        (Method::PUT, "/v1/teams/acme"),
        (Method::GET, "/v1/channels"),
        (Method::DELETE, "/v1/channels/sms"),
    ] {
        for key in [None, Some(app.keys.admin.as_str()), Some(OPS)] {
            let res = send(&app, m.clone(), path, key).await;
            assert_problem(res, 404, "not_found").await;
        }
    }
    // Nor does the document offer them.
    let doc = app.get_json("/openapi.json", None).await;
    let operators = operator_paths(&doc);
    assert!(operators.is_empty(), "{operators:?}");
});

/// The paths of `doc` whose operations are tagged `operator`.
fn operator_paths(doc: &Value) -> Vec<String> {
    let paths = doc["paths"].as_object().unwrap();
    let tagged = |item: &Value| {
        let ops = item.as_object().unwrap().values();
        ops.clone().any(|op| {
            op["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("operator")))
        })
    };
    paths
        .iter()
        .filter(|(_, item)| tagged(item))
        .map(|(p, _)| p.clone())
        .collect()
}

both_stores!(the_document_offers_the_paths_served, setup: with_operator(), |app: TestApp| async move {
    let doc = app.get_json("/openapi.json", None).await;
    let mut operators = operator_paths(&doc);
    operators.sort();
    let want = [
        "/v1/channels",
        "/v1/channels/{name}",
        "/v1/teams",
        "/v1/teams/{id}",
        "/v1/teams/{id}/api-keys",
        "/v1/teams/{id}/api-keys/{key_id}",
        "/v1/teams/{id}/security-keys",
        "/v1/teams/{id}/security-keys/{kid}",
    ];
    assert_eq!(operators, want);
});

both_stores!(keys_and_roles, setup: with_operator(), |app: TestApp| async move {
    // No key, an unknown one: 401; a team's key, whatever its role: 403.
    assert_problem(send(&app, Method::GET, "/v1/teams", None).await, 401, "unauthorized").await;
    let res = send(&app, Method::GET, "/v1/teams", Some("nobody-has-this")).await;
    assert_problem(res, 401, "unauthorized").await;
    for key in [&app.keys.admin, &app.keys.bot, &app.keys.agent] {
        let res = send(&app, Method::GET, "/v1/teams/acme", Some(key)).await;
        assert_problem(res, 403, "forbidden").await;
    }
    // Both roles read.
    for key in [OPS, OPS_READ] {
        assert_eq!(send(&app, Method::GET, "/v1/teams", Some(key)).await.status(), 200);
        assert_eq!(send(&app, Method::GET, "/v1/channels/sms", Some(key)).await.status(), 200);
    }
    // An operator key calls nothing else.
    for (m, path) in [
        (Method::GET, "/v1/interactions"),
        (Method::POST, "/v1/interactions"),
        (Method::GET, "/v1/audit"),
    ] {
        let res = send(&app, m, path, Some(OPS)).await;
        assert_problem(res, 403, "forbidden").await;
    }
    // operator_read changes nothing, whatever the id: the role comes first.
    for (m, path) in [
        (Method::PUT, "/v1/teams/acme"),
        (Method::PUT, "/v1/teams/no-such-team?colour=red"),
        (Method::DELETE, "/v1/teams/no-such-team"),
        (Method::POST, "/v1/teams/acme/api-keys"),
        (Method::POST, "/v1/teams/acme/security-keys"),
        (Method::DELETE, "/v1/teams/acme/security-keys/2026-11"),
        (Method::PUT, "/v1/channels/sms"),
        (Method::DELETE, "/v1/channels/sms"),
    ] {
        let res = send(&app, m, path, Some(OPS_READ)).await;
        assert_problem(res, 403, "forbidden").await;
    }
});

both_stores!(a_team_reads_as_its_file, setup: with_operator(), |app: TestApp| async move {
    let res = send(&app, Method::GET, "/v1/teams/acme", Some(OPS_READ)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], team_etag(&app, "acme").as_str());
    assert_eq!(res.headers()["chatgate-source"], "file");
    let text = res.text().await.unwrap();
    assert!(!text.contains(&app.keys.acme_security), "a secret was read: {text}");
    let team: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(team["id"], "acme");
    assert_eq!(team["channels"], json!(["webchat", "sms"]));
    assert_eq!(team["security_keys"][0]["kid"], "2026-11");
    assert_eq!(team["security_keys"][0]["primary"], true);
    let hmac = team["security_keys"][0]["secret"]["hmac"].as_str().unwrap();
    assert!(hmac.len() == 64 && hmac.bytes().all(|b| b.is_ascii_hexdigit()), "{hmac}");
    assert_ne!(team["security_keys"][1]["secret"]["hmac"], hmac);
    assert_eq!(team["api_keys"][0]["sha256"], ApiKeyHash::of_key(&app.keys.bot).to_hex());

    // A channel: its `${…}` as its value, its secrets as HMACs.
    let res = send(&app, Method::GET, "/v1/channels/webchat", Some(OPS)).await;
    assert_eq!(res.status(), 200);
    let etag = format!("\"{}\"", app.gateway.config().channels["webchat"].print.digest());
    assert_eq!(res.headers()["etag"], etag.as_str());
    let text = res.text().await.unwrap();
    assert!(!text.contains(&app.keys.webchat_secret), "{text}");
    let channel: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(channel["kind"], "webhook");
    assert_eq!(channel["secret"]["hmac"].as_str().unwrap().len(), 64);
    let sms = app.get_json("/v1/channels/sms", Some(OPS)).await;
    assert_eq!(sms["auth_token"]["hmac"].as_str().unwrap().len(), 64, "{sms}");
    assert_eq!(sms["account_sid"], "AC123");

    for path in ["/v1/teams/nobody", "/v1/teams/Bad%20Id", "/v1/channels/nowhere"] {
        assert_problem(send(&app, Method::GET, path, Some(OPS)).await, 404, "not_found").await;
    }
    let res = send(&app, Method::GET, "/v1/teams/acme?x=1", Some(OPS)).await;
    assert_problem(res, 422, "invalid_request").await;
});

both_stores!(teams_and_channels_are_listed_by_id_a_page_at_a_time, setup: with_operator(), |app: TestApp| async move {
    let all = app.get_json("/v1/teams", Some(OPS_READ)).await;
    let ids: Vec<&str> = all["teams"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme", "globex"], "{all}");
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(all["teams"][0]["source"], "file");
    assert_eq!(all["teams"][0]["etag"], team_etag(&app, "acme"));
    assert!(all["teams"][0]["updated_at"].is_string(), "{all}");

    let first = app.get_json("/v1/teams?limit=1", Some(OPS)).await;
    assert_eq!(first["teams"].as_array().unwrap().len(), 1);
    assert_eq!(first["next_cursor"], "acme");
    let second = app.get_json("/v1/teams?limit=1&cursor=acme", Some(OPS)).await;
    assert_eq!(second["teams"][0]["id"], "globex");
    assert_eq!(second["next_cursor"], Value::Null);

    let channels = app.get_json("/v1/channels", Some(OPS)).await;
    let names: Vec<&str> = channels["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sms", "webchat"], "{channels}");

    for query in ["limit=0", "limit=501", "limit=x", "cursor=Not%20One", "colour=red"] {
        let res = send(&app, Method::GET, &format!("/v1/teams?{query}"), Some(OPS)).await;
        assert_problem(res, 422, "invalid_request").await;
    }
});

both_stores!(writes_to_file_teams_are_managed_by_file_after_the_preconditions, setup: with_operator(), |app: TestApp| async move {
    let acme = team_etag(&app, "acme");
    let sms = format!("\"{}\"", app.gateway.config().channels["sms"].print.digest());
    for (path, etag) in [("/v1/teams/acme", &acme), ("/v1/channels/sms", &sms)] {
        for m in [Method::PUT, Method::DELETE] {
            assert_problem(write(&app, m.clone(), path, &[]).await, 428, "precondition_required").await;
            let wrong = write(&app, m.clone(), path, &[("If-Match", "\"0000\"")]).await;
            assert_problem(wrong, 412, "precondition_failed").await;
            let weak = format!("W/{etag}");
            let res = write(&app, m.clone(), path, &[("If-Match", weak.as_str())]).await;
            assert_problem(res, 412, "precondition_failed").await;
            let res = write(&app, m.clone(), path, &[("If-Match", etag.as_str())]).await;
            assert_problem(res, 409, "managed_by_file").await;
        }
        let res = write(&app, Method::PUT, path, &[("If-None-Match", "*")]).await;
        assert_problem(res, 412, "precondition_failed").await;
    }
    // The key endpoints need no precondition.
    let api_key = json!({"id": "ops-made", "role": "bot"});
    let security_key = json!({"kid": "g2", "primary": false});
    let post = |path: &'static str, body: &Value| {
        app.request(Method::POST, path, Some(OPS)).json(body).send()
    };
    let res = post("/v1/teams/acme/api-keys", &api_key).await.unwrap();
    assert_problem(res, 409, "managed_by_file").await;
    let res = post("/v1/teams/globex/security-keys", &security_key).await.unwrap();
    assert_problem(res, 409, "managed_by_file").await;
    for path in ["/v1/teams/acme/api-keys/acme-bot", "/v1/teams/globex/security-keys/g1"] {
        assert_problem(write(&app, Method::DELETE, path, &[]).await, 409, "managed_by_file").await;
    }
    // A body of another shape is refused as every body is.
    let res = post("/v1/teams/acme/api-keys", &json!({"id": "x", "role": "bot", "colour": 1})).await.unwrap();
    assert_problem(res, 422, "invalid_request").await;
    let res = post("/v1/teams/acme/security-keys", &json!({"primary": true})).await.unwrap();
    assert_problem(res, 400, "invalid_request").await;
    // No such team or channel; a new one written without a body.
    let res = post("/v1/teams/newco/api-keys", &api_key).await.unwrap();
    assert_problem(res, 404, "not_found").await;
    for path in ["/v1/teams/newco", "/v1/teams/newco/security-keys/g1", "/v1/channels/newch"] {
        assert_problem(write(&app, Method::DELETE, path, &[]).await, 404, "not_found").await;
    }
    let res = app.request(Method::PUT, "/v1/teams/newco", Some(OPS)).header("If-Match", acme.as_str()).json(&new_team("newco")).send().await.unwrap();
    assert_problem(res, 412, "precondition_failed").await;
    assert_problem(write(&app, Method::PUT, "/v1/teams/newco", &[]).await, 400, "invalid_request").await;
    assert_problem(write(&app, Method::PUT, "/v1/channels/newch", &[]).await, 400, "invalid_request").await;
    // Nothing changed.
    assert_eq!(team_etag(&app, "acme"), acme);
    let res = send(&app, Method::GET, "/v1/teams/acme", Some(OPS)).await;
    assert_eq!(res.headers()["etag"], acme.as_str());
});

/// A new team's body, valid as it stands.
fn new_team(id: &str) -> Value {
    json!({
        "id": id,
        "login_url": "https://login.newco.example/",
        "channels": ["webchat"],
        "security_keys": [{"kid": "n1", "secret": chatgate::domain::secrets::generate_whsec(), "primary": true}],
        "api_keys": [{"id": "newco-bot", "role": "bot", "sha256": ApiKeyHash::of_key("newco-bot-key").to_hex()}],
        "settings": {"otp": {"ttl": "2m"}},
    })
}

async fn dry_run(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.request(Method::PUT, path, Some(OPS))
        .json(body)
        .send()
        .await
        .unwrap()
}

both_stores!(a_dry_run_checks_a_new_team_and_writes_nothing, setup: with_operator(), |app: TestApp| async move {
    let path = "/v1/teams/newco?dry_run=true";
    let body = new_team("newco");
    let secret = body["security_keys"][0]["secret"].as_str().unwrap().to_string();
    let res = dry_run(&app, path, &body).await;
    assert_eq!(res.status(), 201);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    assert_eq!(res.headers()["chatgate-source"], "api");
    let text = res.text().await.unwrap();
    assert!(!text.contains(&secret[6..30]), "a secret was answered: {text}");
    let team: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(team["id"], "newco");
    assert_eq!(team["security_keys"][0]["secret"]["hmac"].as_str().unwrap().len(), 64);
    // Nothing was written.
    assert_problem(send(&app, Method::GET, "/v1/teams/newco", Some(OPS)).await, 404, "not_found").await;
    assert_eq!(app.get_json("/v1/teams", Some(OPS)).await["teams"].as_array().unwrap().len(), 2);

    // Every rule of a team file, each at its pointer.
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut b = new_team("newco");
        edit(&mut b);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (broken(&|b| b["settings"]["otp"]["ttl"] = json!("soon")), "/settings/otp/ttl"),
        (broken(&|b| b["id"] = json!("other")), "/id"),
        (broken(&|b| b["channels"] = json!(["nowhere"])), "/channels/0"),
        (broken(&|b| b["api_keys"][0]["sha256"] = json!(ApiKeyHash::of_key(&app.keys.bot).to_hex())), "/api_keys/0/sha256"),
        (broken(&|b| b["security_keys"][0]["secret"] = json!("${NEWCO_KEY}")), "/security_keys/0/secret"),
        (broken(&|b| b["a/b~c"] = json!(1)), "/a~1b~0c"),
        (broken(&|b| b["display_name"] = json!("New\u{200B}Co")), "/display_name"),
    ];
    for (body, pointer) in cases {
        let problem = assert_problem(dry_run(&app, path, &body).await, 422, "invalid_config").await;
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
        assert!(problem["errors"][0]["detail"].is_string(), "{problem}");
        assert!(!problem.to_string().contains("NEWCO_KEY"), "{problem}");
    }
    // Every problem found, in one answer.
    let two = broken(&|b| {
        b["settings"]["otp"]["ttl"] = json!("soon");
        b["colour"] = json!("red");
    });
    let problem = assert_problem(dry_run(&app, path, &two).await, 422, "invalid_config").await;
    let mut pointers: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    pointers.sort();
    assert_eq!(pointers, ["/colour", "/settings/otp/ttl"], "{problem}");
    // Not JSON, another value of dry_run; a large body is read, a body
    // over 1 MiB is not.
    let res = app.request(Method::PUT, path, Some(OPS)).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_problem(res, 400, "invalid_request").await;
    let res = dry_run(&app, "/v1/teams/newco?dry_run=maybe", &body).await;
    assert_problem(res, 422, "invalid_request").await;
    let mut large = new_team("newco");
    large["padding"] = json!("x".repeat(200 * 1024));
    let problem = assert_problem(dry_run(&app, path, &large).await, 422, "invalid_config").await;
    assert_eq!(problem["errors"][0]["pointer"], "/padding", "{problem}");
    large["padding"] = json!("x".repeat(1024 * 1024 + 1));
    assert_problem(dry_run(&app, path, &large).await, 413, "payload_too_large").await;
});

/// The issuer of operators' `Chatgate-Actor` tokens, and their audience.
const AUDIENCE: &str = "chatgate-operators";

async fn spawn_requiring_person(backend: Backend) -> Option<(TestApp, FakeIdp)> {
    let idp = FakeIdp::start().await;
    let more = format!(
        "require_person = true\n[operator.actor]\nissuer = \"{}\"\naudience = \"{AUDIENCE}\"",
        idp.issuer
    );
    let setup = Setup {
        system_extra: operator_section(&more),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    idp.use_clock(app.clock.clone());
    Some((app, idp))
}

async fn a_write_names_its_person(backend: Backend) {
    let Some((app, idp)) = spawn_requiring_person(backend).await else {
        return;
    };
    let acme = team_etag(&app, "acme");
    let if_match = ("If-Match", acme.as_str());
    let res = write(&app, Method::PUT, "/v1/teams/acme", &[if_match]).await;
    assert_problem(res, 403, "person_required").await;
    // Reads need no person.
    assert_eq!(
        send(&app, Method::GET, "/v1/teams/acme", Some(OPS))
            .await
            .status(),
        200
    );

    let now = app.now().unix_seconds();
    let claims = |aud: &str| json!({"iss": idp.issuer, "aud": aud, "sub": "olga-7", "iat": now, "exp": now + 300});
    let good = sign(&claims(AUDIENCE), Signing::Key("a"));
    let res = write(
        &app,
        Method::PUT,
        "/v1/teams/acme",
        &[if_match, ("Chatgate-Actor", &good)],
    )
    .await;
    assert_problem(res, 409, "managed_by_file").await;
    let other = sign(&claims("someone-else"), Signing::Key("a"));
    for bad in [other.as_str(), "not-a-token"] {
        let res = write(
            &app,
            Method::DELETE,
            "/v1/teams/acme",
            &[if_match, ("Chatgate-Actor", bad)],
        )
        .await;
        assert_problem(res, 401, "invalid_token").await;
        let res = app
            .request(Method::GET, "/v1/teams", Some(OPS))
            .header("Chatgate-Actor", bad)
            .send()
            .await
            .unwrap();
        assert_problem(res, 401, "invalid_token").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_names_its_person_memory() {
    a_write_names_its_person(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_names_its_person_redis() {
    a_write_names_its_person(Backend::Redis).await;
}

/// The `access.denied` entries of team `id`'s trail.
async fn denials(app: &TestApp, id: &str) -> Vec<Value> {
    let all = crate::operator_writes::entries(app, id).await;
    all.into_iter()
        .filter(|e| e["action"] == "access.denied")
        .collect()
}

async fn a_refused_operator_is_recorded_in_the_team_s_trail(backend: Backend) {
    let Some((app, _idp)) = spawn_requiring_person(backend).await else {
        return;
    };
    let acme = team_etag(&app, "acme");
    let if_match = ("If-Match", acme.as_str());
    let res = write(&app, Method::PUT, "/v1/teams/acme", &[if_match]).await;
    assert_problem(res, 403, "person_required").await;
    let found = denials(&app, "acme").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["detail"]["reason"], "person_required", "{found:?}");
    assert_eq!(found[0]["detail"]["route"], "/v1/teams/{id}", "{found:?}");
    assert_eq!(found[0]["actor"]["api_key_id"], "ops", "{found:?}");
    assert_eq!(found[0]["outcome"], "denied", "{found:?}");

    // A token that fails a check: the check is the reason, never the token.
    let res = write(
        &app,
        Method::DELETE,
        "/v1/teams/acme",
        &[if_match, ("Chatgate-Actor", "not-a-token")],
    )
    .await;
    assert_problem(res, 401, "invalid_token").await;
    let found = denials(&app, "acme").await;
    assert_eq!(found.len(), 2, "{found:?}");
    let reason = found[1]["detail"]["reason"].as_str().unwrap();
    assert!(
        !reason.is_empty() && !reason.contains("not-a-token"),
        "{found:?}"
    );
    // An operator_read key writing is refused by its role, recorded too.
    let res = send(&app, Method::DELETE, "/v1/teams/acme", Some(OPS_READ)).await;
    assert_problem(res, 403, "forbidden").await;
    let found = denials(&app, "acme").await;
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[2]["actor"]["api_key_id"], "ops-read", "{found:?}");

    // No team in force on the path: no trail is written.
    let res = write(
        &app,
        Method::PUT,
        "/v1/teams/newco",
        &[("If-None-Match", "*")],
    )
    .await;
    assert_problem(res, 403, "person_required").await;
    assert!(crate::operator_writes::entries(&app, "newco")
        .await
        .is_empty());
    let res = app
        .request(Method::GET, "/v1/teams", Some(OPS))
        .header("Chatgate-Actor", "not-a-token")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "invalid_token").await;
    // A key no operator has is refused before anything is recorded.
    let res = send(&app, Method::PUT, "/v1/teams/acme", Some("no-such-key")).await;
    assert_eq!(res.status(), 401);
    assert_eq!(denials(&app, "acme").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_operator_is_recorded_in_the_team_s_trail_memory() {
    a_refused_operator_is_recorded_in_the_team_s_trail(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_operator_is_recorded_in_the_team_s_trail_redis() {
    a_refused_operator_is_recorded_in_the_team_s_trail(Backend::Redis).await;
}

/// A start with API teams in the store reads each team's stored body once,
/// in calls of up to 500 teams, and its recorded digest twice at most
/// (docs/performance.md#what-a-team-costs): what a start reads grows by a
/// few keys a team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_reads_each_api_team_once_in_batches() {
    use std::sync::Arc;

    use chatgate::store::memory::MemoryStore;
    use chatgate::store::SharedStore;

    const TEAMS: usize = 120;
    let counting = Arc::new(crate::round_trips::Counting::over(Arc::new(
        MemoryStore::new(),
    )));
    let store: SharedStore = counting.clone();
    let setup = || Setup {
        store: Some(Arc::clone(&store)),
        ..with_operator()
    };
    let writer = spawn_with(Backend::Memory, setup()).await.unwrap();
    for i in 0..TEAMS {
        let id = format!("scale{i:03}");
        let mut body = new_team(&id);
        body["api_keys"][0]["id"] = json!(format!("{id}-bot"));
        body["api_keys"][0]["sha256"] =
            json!(ApiKeyHash::of_key(&format!("{id}-bot-key")).to_hex());
        let path = format!("/v1/teams/{id}");
        let res = writer
            .request(Method::PUT, &path, Some(OPS))
            .header("If-None-Match", "*");
        let res = res.json(&body).send().await.unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
    drop(writer);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    counting.gets.lock().unwrap().clear();
    let reader = spawn_with(Backend::Memory, setup()).await.unwrap();
    let gets = std::mem::take(&mut *counting.gets.lock().unwrap());
    assert_eq!(reader.gateway.config().api_teams().count(), TEAMS);
    let reading = |suffix: &'static str| {
        let key =
            move |k: &String| k.ends_with(suffix) && (k.contains("{scale") || k.contains("{~"));
        let keys: usize = gets
            .iter()
            .map(|g| g.iter().filter(|k| key(k)).count())
            .sum();
        let calls = gets.iter().filter(|g| g.iter().any(key)).count();
        (keys, calls)
    };
    let (bodies, calls) = reading("}:tm");
    assert_eq!(bodies, TEAMS, "each team's stored body read once");
    assert_eq!(calls, 1, "{TEAMS} teams' bodies in one call");
    let (digests, calls) = reading(":acfgd");
    eprintln!("a start with {TEAMS} API teams: their recorded digests read {digests} times in {calls} calls");
    assert!(
        digests <= 2 * TEAMS,
        "each team's recorded digest read twice at most: {digests} in {calls} calls"
    );
}
