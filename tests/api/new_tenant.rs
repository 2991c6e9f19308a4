//! A team id written again after a delete is a new tenant
//! (docs/operator-api.md#a-deleted-id-written-again,
//! docs/decisions/0437-a-team-id-written-again-is-a-new-tenant.md): the
//! team written under it starts empty — no interaction, conversation,
//! subject, event (delivered or not) or audit entry the deleted team left is
//! read, counted, delivered or continued for it — on one instance, on two
//! sharing a Redis and on a Cluster; the deleted team's trail stays, for
//! `chatgate audit export --deleted`, and its last entry reaches its audit
//! webhook and the syslog sink.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chatgate::domain::secrets::{generate_whsec, ApiKeyHash};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::operator_writes::{
    delete, entries_in, etag_of, in_two_seconds, keyspace, put, team, with_operator,
    within_two_seconds,
};

/// The deleted team's key, and the key of the team written again.
pub(crate) const OLD_KEY: &str = "newco-bot-key";
pub(crate) const NEW_KEY: &str = "newco-new-tenant-key";

/// What the deleted team left: an interaction authenticated in a known
/// conversation, a subject with a failure counted, events its webhook
/// (nothing listens there) never took, a code's expiry due.
pub(crate) struct Left {
    interaction: String,
    pub etag: String,
}

/// Team `newco` written (its webhook unreachable) and used: see [`Left`].
pub(crate) async fn a_tenant_that_leaves_data(app: &TestApp) -> Left {
    let security = generate_whsec();
    let mut body = team("newco", &security);
    body["webhook"]["url"] = json!(format!("http://127.0.0.1:{}/events", free_port()));
    let res = put(app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let etag = etag_of(&res);
    let created = create(app, OLD_KEY).await;
    let interaction = created["id"].as_str().unwrap().to_string();
    let key = B64.decode(security.trim_start_matches("whsec_")).unwrap();
    let link = format!("/v1/interactions/{interaction}/login-links");
    let res = app
        .request(Method::POST, &link, Some(OLD_KEY))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let link: Value = res.json().await.unwrap();
    let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "cust-1"}});
    let res = app
        .post_signed("/v1/login/callback", &body, Some(&key))
        .await;
    assert_eq!(res.status(), 200);
    let read = app
        .get_json(&format!("/v1/interactions/{interaction}"), Some(OLD_KEY))
        .await;
    assert_eq!(read["authenticated"], true, "{read}");
    // A code sent into the chat, answered wrong: a failure of the customer.
    let challenges = format!("/v1/interactions/{interaction}/challenges");
    let res = app
        .post_json(&challenges, Some(OLD_KEY), &json!({"method": "otp"}))
        .await;
    assert_eq!(res.status(), 201);
    let cid = res.json::<Value>().await.unwrap()["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = wrong_code(&app.last_code().await);
    let verify = format!("{challenges}/{cid}/verify");
    let res = app
        .post_json(&verify, Some(OLD_KEY), &json!({"code": wrong}))
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    let subject = app.get_json("/v1/subjects/cust-1", Some(OLD_KEY)).await;
    assert!(subject["failures"].as_u64() > Some(0), "{subject}");
    Left { interaction, etag }
}

/// The interaction of conversation `conv-1` of customer `cust-1`, created
/// or found with `key`.
async fn create(app: &TestApp, key: &str) -> Value {
    let body = json!({"channel": "webchat", "conversation_id": "conv-1", "customer_ref": "cust-1"});
    app.create_as(key, body).await
}

/// Team `newco` written again, new keys, its webhook `hook`: 201.
pub(crate) async fn the_new_tenant(app: &TestApp, hook: &MockServer) {
    let mut body = team("newco", &generate_whsec());
    body["api_keys"] = json!([{"id": "newco-admin", "role": "admin", "sha256": ApiKeyHash::of_key(NEW_KEY).to_hex()}]);
    body["webhook"]["url"] = json!(format!("{}/events", hook.uri()));
    assert_eq!(put(app, "newco", &body, &[]).await.status(), 201);
}

/// A receiver of the new tenant's events that takes everything.
pub(crate) async fn hook() -> MockServer {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hook)
        .await;
    hook
}

/// The new tenant, read with its key on `app`, sees nothing of `left`:
/// no interaction, the known id 404 (its assurance too), the subject
/// fresh, the conversation a new unauthenticated interaction, the trail
/// its own from `seq` 1.
pub(crate) async fn sees_nothing_left(app: &TestApp, left: &Left) {
    let resumed = resumed_events(app).await;
    assert!(
        !resumed.contains(&left.interaction),
        "the deleted team's events: {resumed}"
    );
    let list = app.get_json("/v1/interactions", Some(NEW_KEY)).await;
    assert_eq!(page_ids(&list), Vec::<String>::new(), "{list}");
    let id = &left.interaction;
    for read in [
        format!("/v1/interactions/{id}"),
        format!("/v1/interactions/{id}/assurance"),
    ] {
        let res = app
            .request(Method::GET, &read, Some(NEW_KEY))
            .send()
            .await
            .unwrap();
        assert_problem(res, 404, "not_found").await;
    }
    let subject = app.get_json("/v1/subjects/cust-1", Some(NEW_KEY)).await;
    assert_eq!(subject["failures"], 0, "{subject}");
    let created = create(app, NEW_KEY).await;
    assert_ne!(created["id"].as_str(), Some(id.as_str()), "{created}");
    assert_eq!(created["authenticated"], false, "{created}");
    let fresh = created["id"].as_str().unwrap();
    let assurance = app
        .get_json(
            &format!("/v1/interactions/{fresh}/assurance"),
            Some(NEW_KEY),
        )
        .await;
    assert_eq!(assurance["satisfied"], false, "{assurance}");
    let trail = app.get_json("/v1/audit", Some(NEW_KEY)).await;
    let first = &trail["entries"][0];
    assert_eq!(
        (first["seq"].as_u64(), first["action"].as_str()),
        (Some(1), Some("config.changed")),
        "{trail}"
    );
    assert_eq!(first["prev"], "0".repeat(64), "{trail}");
    assert_eq!(first["detail"]["previous_digest"], Value::Null, "{trail}");
}

/// What the new tenant's event stream, resumed from before the oldest
/// event kept (the whole history of its last minutes), sends in a second.
async fn resumed_events(app: &TestApp) -> String {
    let resume = app
        .request(Method::GET, "/v1/events", Some(NEW_KEY))
        .header("last-event-id", "0-0");
    let mut res = resume.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut text = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match tokio::time::timeout(left, res.chunk()).await {
            Ok(Ok(Some(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
            _ => break,
        }
    }
    text
}

/// The interaction ids the events `hook` received are about.
async fn delivered_about(hook: &MockServer) -> Vec<String> {
    let received = hook.received_requests().await.unwrap_or_default();
    received
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|e| e["data"]["interaction"]["id"].as_str().map(str::to_string))
        .collect()
}

both_stores!(a_team_written_again_under_a_deleted_id_starts_empty, setup: with_operator(), |app: TestApp| async move {
    let left = a_tenant_that_leaves_data(&app).await;
    let old_trail = keyspace(&app, "newco").await;
    assert_eq!(delete(&app, "newco", &[("If-Match", &left.etag)]).await.status(), 204);
    let hook = hook().await;
    the_new_tenant(&app, &hook).await;
    sees_nothing_left(&app, &left).await;

    // The deleted team's events, due again and again, never reach the new
    // team's webhook; the new team's own do.
    for _ in 0..4 {
        app.advance(600);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let about = || async { !delivered_about(&hook).await.is_empty() };
    in_two_seconds("the new team's own events are delivered", about).await;
    let about = delivered_about(&hook).await;
    assert!(!about.contains(&left.interaction), "the deleted team's events reached the new team: {about:?}");

    // The deleted team's trail stays as it was: created, used, deleted.
    let old = entries_in(&app, &old_trail).await;
    assert_eq!(old.first().map(|e| e["seq"].clone()), Some(json!(1)), "{old:?}");
    let last = old.last().unwrap();
    assert_eq!(last["action"], "config.changed", "{last}");
    assert_eq!(last["detail"]["api_keys_removed"], json!(["newco-bot"]), "{last}");
    assert_ne!(keyspace(&app, "newco").await, old_trail);
});

/// Two instances on one Redis: the team deleted and written again on one,
/// the other puts the new tenant in force within 2 s, and reads nothing
/// of the deleted one for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_id_written_again_is_a_new_tenant_on_every_instance_within_two_seconds() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let b = spawn_beside(&a, with_operator()).await;
    written_again_on_one_is_new_on_the_other(&a, b).await;
}

/// On `a`, a team that leaves data, deleted and written again; on `b`,
/// beside it, the new tenant's key in force within 2 s, the deleted
/// team's refused, and nothing the deleted team left read for it.
pub(crate) async fn written_again_on_one_is_new_on_the_other(a: &TestApp, b: TestApp) {
    let left = a_tenant_that_leaves_data(a).await;
    within_two_seconds(&b, OLD_KEY, 200).await;
    assert_eq!(
        delete(a, "newco", &[("If-Match", &left.etag)])
            .await
            .status(),
        204
    );
    let hook = hook().await;
    the_new_tenant(a, &hook).await;
    within_two_seconds(&b, NEW_KEY, 200).await;
    within_two_seconds(&b, OLD_KEY, 401).await;
    sees_nothing_left(&b, &left).await;
    b.stop_keeping_keys().await;
}

/// What `chatgate audit export --team newco --deleted` prints on `app`'s
/// configuration, and whether it succeeded.
fn export(app: &TestApp) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args([
            "audit",
            "export",
            "--team",
            "newco",
            "--deleted",
            "--config",
        ])
        .arg(app.dir.join("config/chatgate.toml"))
        .env_remove("CHATGATE_CONFIG")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The deleted team's trail, exported, is what it wrote, and `chatgate
/// audit verify` checks it; without a deleted team there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_a_deleted_team_left_is_exported_for_audit_verify() {
    let Some(app) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let (ok, _, err) = export(&app);
    assert!(
        !ok && err.contains("no API team \"newco\" was deleted"),
        "{err}"
    );
    let left = a_tenant_that_leaves_data(&app).await;
    let old_trail = keyspace(&app, "newco").await;
    assert_eq!(
        delete(&app, "newco", &[("If-Match", &left.etag)])
            .await
            .status(),
        204
    );
    the_new_tenant(&app, &hook().await).await;

    let (ok, out, err) = export(&app);
    assert!(ok, "{err}");
    let printed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed, entries_in(&app, &old_trail).await);
    assert!(printed.len() >= 2, "{out}");
    let file = app.dir.join("deleted-trail.jsonl");
    std::fs::write(&file, &out).unwrap();
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(["audit", "verify"])
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(
        said.trim(),
        format!("ok: {} entries, teams newco", printed.len())
    );
}

/// A team written with an audit webhook, beside a syslog sink, then
/// deleted (and, with `again`, its id written again at once): the entry
/// recording its departure reaches both.
async fn a_deleted_team_s_last_entry_reaches_its_sinks(backend: Backend, again: bool) {
    deleted_last_entry(backend, again, false).await
}

async fn deleted_last_entry(backend: Backend, again: bool, beside: bool) {
    use crate::audit::{json_of, receiver, Received};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let syslog = Received::default();
    let _stop = receiver(listener, syslog.clone());
    let mut setup = with_operator();
    setup.system_extra += &format!("[audit.syslog]\naddress = \"tcp://127.0.0.1:{port}\"\n");
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/audit"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&sink)
        .await;
    let mut body = team("newco", &generate_whsec());
    body["audit"] =
        json!({"webhook": {"url": format!("{}/audit", sink.uri()), "secret": generate_whsec()}});
    let res = put(&app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let etag = etag_of(&res);
    let trail = keyspace(&app, "newco").await;
    let hooked = || async {
        let received = sink.received_requests().await.unwrap_or_default();
        received
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .collect::<Vec<_>>()
    };
    let logged = || {
        let got = syslog.lock().unwrap();
        got.iter()
            .map(|(_, msg)| serde_json::from_str::<Value>(json_of(msg)).unwrap())
            .collect::<Vec<_>>()
    };
    if !again {
        in_two_seconds("the first entry reaches the webhook", || async {
            !hooked().await.is_empty()
        })
        .await;
    }
    let other = match beside {
        true => Some(spawn_beside(&app, with_operator()).await),
        false => None,
    };
    let writer = other.as_ref().unwrap_or(&app);
    assert_eq!(
        delete(writer, "newco", &[("If-Match", &etag)])
            .await
            .status(),
        204
    );
    if again {
        let mut body = team("newco", &generate_whsec());
        body["audit"] =
            json!({"webhook": {"url": format!("{}/new", sink.uri()), "secret": generate_whsec()}});
        assert_eq!(put(writer, "newco", &body, &[]).await.status(), 201);
    }
    let last = entries_in(&app, &trail).await.pop().unwrap();
    assert_eq!(
        last["detail"]["api_keys_removed"],
        json!(["newco-bot"]),
        "{last}"
    );
    let arrived = || async { hooked().await.iter().any(|e| e["id"] == last["id"]) };
    in_two_seconds(
        "the deleted team's last entry reaches its audit webhook",
        arrived,
    )
    .await;
    let arrived = || async { logged().iter().any(|e| e["id"] == last["id"]) };
    in_two_seconds(
        "the deleted team's last entry reaches the syslog sink",
        arrived,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_team_s_last_entry_reaches_its_sinks_on_memory() {
    a_deleted_team_s_last_entry_reaches_its_sinks(Backend::Memory, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_team_s_last_entry_reaches_its_sinks_on_redis() {
    a_deleted_team_s_last_entry_reaches_its_sinks(Backend::Redis, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_team_s_last_entry_reaches_its_sinks_when_its_id_is_written_again_at_once() {
    a_deleted_team_s_last_entry_reaches_its_sinks(Backend::Memory, true).await;
    a_deleted_team_s_last_entry_reaches_its_sinks(Backend::Redis, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_team_s_last_entry_reaches_its_sinks_when_another_instance_writes_its_id_again() {
    deleted_last_entry(Backend::Redis, true, true).await;
}
