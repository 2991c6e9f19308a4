//! The keys of a team written through the operator API
//! (docs/operator-api.md#keys): an API key made by the gateway and shown
//! once, or made by the operator (its hash), the same key again changing
//! nothing and a used id or key refused; a security key made and shown
//! once, made primary, and the primary or last one kept; each change in
//! force at once, recorded, and never stored as it is.
use chatgate::domain::secrets::{generate_whsec, ApiKeyHash};
use chatgate::store::keys;
use chatgate::time::Clock;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_writes::{
    entries, etag_of, key_status, put, redis_values, stored, team, with_operator,
    within_two_seconds, OPS,
};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    let req = app.request(Method::POST, path, Some(OPS)).json(&body);
    req.send().await.unwrap()
}

async fn remove(app: &TestApp, path: &str) -> reqwest::Response {
    let req = app.request(Method::DELETE, path, Some(OPS));
    req.send().await.unwrap()
}

async fn etag(app: &TestApp, id: &str) -> String {
    let path = format!("/v1/teams/{id}");
    let res = app.request(Method::GET, &path, Some(OPS)).send().await;
    etag_of(&res.unwrap())
}

/// The kids of team `newco` in force, each with whether it is primary.
async fn primary(app: &TestApp) -> Vec<(String, bool)> {
    let shown = app.get_json("/v1/teams/newco", Some(OPS)).await;
    let keys = shown["security_keys"].as_array().unwrap().iter();
    keys.map(|k| {
        (
            k["kid"].as_str().unwrap().to_string(),
            k["primary"].as_bool().unwrap(),
        )
    })
    .collect()
}

/// Creates API team `newco`: its ETag.
async fn newco(app: &TestApp) -> String {
    let res = put(app, "newco", &team("newco", &generate_whsec()), &[]).await;
    assert_eq!(res.status(), 201);
    etag_of(&res)
}

both_stores!(an_api_key_is_made_shown_once_and_in_force_at_once, setup: with_operator(), |app: TestApp| async move {
    let first = newco(&app).await;
    let res = post(&app, "/v1/teams/newco/api-keys", json!({"id": "desk", "role": "agent"})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let made: Value = res.json().await.unwrap();
    let key = made["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("cg_") && key.len() > 40, "{made}");
    assert_eq!((made["id"].as_str(), made["role"].as_str()), (Some("desk"), Some("agent")));
    assert_eq!(key_status(&app, &key).await, 200, "in force for the next request");
    assert_ne!(etag(&app, "newco").await, first, "the ETag moved");
    // Only its hash is kept: the team reads back with it, and no value the
    // store holds has the key.
    let shown = app.get_json("/v1/teams/newco", Some(OPS)).await;
    let desk = &shown["api_keys"][1];
    assert_eq!(desk["sha256"], ApiKeyHash::of_key(&key).to_hex(), "{shown}");
    let mut values = vec![stored(&app, "newco").await.unwrap()];
    values.extend(entries(&app, "newco").await.iter().map(Value::to_string));
    if matches!(app.backend, Backend::Redis) {
        values.extend(redis_values(&app.key_prefix).await);
    }
    assert!(values.iter().all(|v| !v.contains(&key[3..])), "the key is stored as it is");

    // A used id, a used key, and what is not a key: refused, nothing changes.
    let tag = etag(&app, "newco").await;
    let again = post(&app, "/v1/teams/newco/api-keys", json!({"id": "desk", "role": "agent"})).await;
    assert_problem(again, 409, "key_exists").await;
    let bot_hash = ApiKeyHash::of_key("newco-bot-key").to_hex();
    let same_key = post(&app, "/v1/teams/newco/api-keys", json!({"id": "two", "role": "admin", "sha256": bot_hash})).await;
    assert_problem(same_key, 409, "key_exists").await;
    let acme = app.gateway.config().teams["acme"].api_keys[0].sha256.to_hex();
    let others = post(&app, "/v1/teams/newco/api-keys", json!({"id": "two", "role": "admin", "sha256": acme})).await;
    assert_problem(others, 409, "key_exists").await;
    for (body, field) in [
        (json!({"id": "x", "role": "root"}), "role"),
        (json!({"id": "x y", "role": "bot"}), "id"),
        (json!({"id": "x", "role": "bot", "sha256": "abc"}), "sha256"),
        (json!({"id": "x", "role": "bot", "colour": "red"}), "colour"),
    ] {
        let p = assert_problem(post(&app, "/v1/teams/newco/api-keys", body).await, 422, "invalid_request").await;
        assert!(p["detail"].as_str().unwrap().contains(field), "{p}");
    }
    assert_eq!(etag(&app, "newco").await, tag, "a refused change changes nothing");

    // Removed: refused at once; then there is none.
    assert_eq!(remove(&app, "/v1/teams/newco/api-keys/desk").await.status(), 204);
    assert_eq!(key_status(&app, &key).await, 401);
    assert_problem(remove(&app, "/v1/teams/newco/api-keys/desk").await, 404, "not_found").await;

    // A file team's keys are its file's; no team, no key.
    let file = post(&app, "/v1/teams/acme/api-keys", json!({"id": "x", "role": "bot"})).await;
    assert_problem(file, 409, "managed_by_file").await;
    assert_problem(remove(&app, "/v1/teams/acme/security-keys/2026-11").await, 409, "managed_by_file").await;
    let none = post(&app, "/v1/teams/nobody/api-keys", json!({"id": "x", "role": "bot"})).await;
    assert_problem(none, 404, "not_found").await;

    // Each change one config.changed entry, by the operator key.
    let written = entries(&app, "newco").await;
    let detail = |i: usize, member: &str| written[i]["detail"][member].clone();
    assert_eq!(written.len(), 3, "{written:?}");
    assert_eq!(detail(1, "api_keys_added"), json!(["desk"]));
    assert_eq!(detail(2, "api_keys_removed"), json!(["desk"]));
    assert!(written.iter().all(|e| e["actor"]["api_key_id"] == "ops" && e["detail"]["source"] == "api"));
});

both_stores!(an_operator_s_own_key_is_added_once_however_often_it_is_sent, setup: with_operator(), |app: TestApp| async move {
    newco(&app).await;
    let hash = ApiKeyHash::of_key("the-operator-made-this-key").to_hex();
    let body = json!({"id": "own", "role": "admin", "sha256": hash.to_uppercase()});
    let res = post(&app, "/v1/teams/newco/api-keys", body.clone()).await;
    assert_eq!(res.status(), 201);
    let made: Value = res.json().await.unwrap();
    assert_eq!(made, json!({"id": "own", "role": "admin"}), "nothing to show");
    assert_eq!(key_status(&app, "the-operator-made-this-key").await, 200);
    let tag = etag(&app, "newco").await;
    // Sent again, as a lost answer is: 200, nothing changes.
    let res = post(&app, "/v1/teams/newco/api-keys", body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(etag(&app, "newco").await, tag);
    assert_eq!(entries(&app, "newco").await.len(), 2, "no entry for nothing");
    let other_role = json!({"id": "own", "role": "agent", "sha256": hash});
    assert_problem(post(&app, "/v1/teams/newco/api-keys", other_role).await, 409, "key_exists").await;
});

both_stores!(a_security_key_is_made_made_primary_and_the_primary_kept, setup: with_operator(), |app: TestApp| async move {
    newco(&app).await;
    let res = post(&app, "/v1/teams/newco/security-keys", json!({"kid": "n2"})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let made: Value = res.json().await.unwrap();
    let secret = made["secret"].as_str().unwrap().to_string();
    assert_eq!(made["kid"], "n2");
    chatgate::domain::secrets::parse_whsec(&secret).expect("a whsec_ key of 32 bytes");
    assert_eq!(primary(&app).await, [("n1".into(), true), ("n2".into(), false)]);
    assert_problem(post(&app, "/v1/teams/newco/security-keys", json!({"kid": "n2"})).await, 409, "key_exists").await;
    assert_problem(remove(&app, "/v1/teams/newco/security-keys/n1").await, 409, "key_in_use").await;
    let res = post(&app, "/v1/teams/newco/security-keys", json!({"kid": "n3", "primary": true})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(primary(&app).await, [("n1".into(), false), ("n2".into(), false), ("n3".into(), true)]);
    assert_eq!(remove(&app, "/v1/teams/newco/security-keys/n1").await.status(), 204);
    assert_eq!(remove(&app, "/v1/teams/newco/security-keys/n2").await.status(), 204);
    assert_problem(remove(&app, "/v1/teams/newco/security-keys/n3").await, 409, "key_in_use").await;
    assert_problem(remove(&app, "/v1/teams/newco/security-keys/n9").await, 404, "not_found").await;
    let bad = post(&app, "/v1/teams/newco/security-keys", json!({"kid": "a b"})).await;
    assert_problem(bad, 422, "invalid_request").await;
    // Sealed in the store; read back as its HMAC, which writes it back.
    let text = stored(&app, "newco").await.unwrap();
    assert!(!text.contains(&secret["whsec_".len()..]), "{text}");
    let shown = app.get_json("/v1/teams/newco", Some(OPS)).await;
    assert_eq!(shown["security_keys"][0]["secret"]["hmac"].as_str().unwrap().len(), 64);
    let tag = etag(&app, "newco").await;
    let res = put(&app, "newco", &shown, &[("If-Match", &tag)]).await;
    assert_eq!((res.status().as_u16(), etag_of(&res)), (200, tag.clone()));
    let written = entries(&app, "newco").await;
    let added: Vec<Value> = written.iter().map(|e| e["detail"]["security_keys_added"].clone()).collect();
    assert_eq!(added[1..3], [json!(["n2"]), json!(["n3"])]);
});

/// Two instances on one Redis: a key added on one is 200 on the other
/// within 2 s, and 401 there within 2 s of its removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_change_is_in_force_on_every_instance_within_two_seconds() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let b = spawn_beside(&a, with_operator()).await;
    newco(&a).await;
    let res = post(
        &a,
        "/v1/teams/newco/api-keys",
        json!({"id": "desk", "role": "agent"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let made: Value = res.json().await.unwrap();
    let key = made["key"].as_str().unwrap();
    within_two_seconds(&b, key, 200).await;
    // Removed on b: a refuses it within 2 s.
    assert_eq!(
        remove(&b, "/v1/teams/newco/api-keys/desk").await.status(),
        204
    );
    assert_eq!(key_status(&b, key).await, 401);
    within_two_seconds(&a, key, 401).await;
    b.stop_keeping_keys().await;
}

/// The `ETag` `GET /v1/teams` lists for team `id`, if it lists it.
pub(crate) async fn listed_etag(app: &TestApp, id: &str) -> Option<String> {
    let page = app.get_json("/v1/teams?limit=500", Some(OPS)).await;
    let teams = page["teams"].as_array().unwrap().iter();
    let mut found = teams.filter(|t| t["id"] == id);
    found
        .next()
        .map(|t| t["etag"].as_str().unwrap().to_string())
}

/// Two instances on one Redis: right after a team is written or a key
/// added on one, the other lists the `ETag` the store keeps, as its read
/// answers it, whether or not it has that version in force yet
/// (docs/operator-api.md#concurrency); a team deleted on one is no longer
/// listed on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_list_answers_the_stored_etag_on_every_instance_at_once() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let b = spawn_beside(&a, with_operator()).await;
    let first = newco(&b).await;
    assert_eq!(listed_etag(&a, "newco").await, Some(first.clone()));
    let res = post(
        &b,
        "/v1/teams/newco/api-keys",
        json!({"id": "desk", "role": "agent"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let now = etag(&a, "newco").await;
    assert_ne!(now, first);
    assert_eq!(listed_etag(&a, "newco").await, Some(now.clone()));
    assert_eq!(listed_etag(&b, "newco").await, Some(now.clone()));
    let res = crate::operator_writes::delete(&b, "newco", &[("If-Match", &now)]).await;
    assert_eq!(res.status(), 204);
    assert_eq!(listed_etag(&a, "newco").await, None);
    assert!(listed_etag(&a, "acme").await.is_some());
    b.stop_keeping_keys().await;
}

/// The store of `app`: `key` as it is (its text and version).
pub(crate) async fn raw(app: &TestApp, key: &str) -> Option<chatgate::store::Versioned> {
    let got = app.gateway.store().get(&[key.to_string()]).await.unwrap();
    got.into_iter().next().flatten()
}

/// `key` of `app`'s store set to `value`, against the version it has.
pub(crate) async fn overwrite(app: &TestApp, key: &str, value: String) {
    let expected = raw(app, key).await.map_or(0, |v| v.version);
    let op = chatgate::store::Op::Put {
        key: key.to_string(),
        expected,
        version: chatgate::store::fresh_version(),
        value,
        ttl: None,
        companion: None,
    };
    let done = app.gateway.store().commit(vec![op]).await.unwrap();
    assert_eq!(done, chatgate::store::Commit::Applied);
}

/// A writer that stopped between its team's commit and the index's: the
/// other instances learn nothing from the generation, until a look finds
/// its mark old and indexes the team as stored. Two instances on one
/// Redis; the stopped write's record is made by a third instance under
/// a prefix of its own (the same secrets key seals it alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_whose_writer_stopped_before_its_index_is_indexed_by_a_later_look() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let b = spawn_beside(&a, with_operator()).await;
    newco(&a).await;
    within_two_seconds(&b, "newco-bot-key", 200).await;

    // The write that stopped: newco with one key more, its record
    // committed, the index not; its mark left beside the generation.
    let elsewhere = spawn_with(Backend::Redis, with_operator()).await.unwrap();
    let mut later = team("newco", &generate_whsec());
    let hash = ApiKeyHash::of_key("the-key-of-a-stopped-write").to_hex();
    let keys_of = later["api_keys"].as_array_mut().unwrap();
    keys_of.push(json!({"id": "later", "role": "admin", "sha256": hash}));
    assert_eq!(put(&elsewhere, "newco", &later, &[]).await.status(), 201);
    let record = raw(&elsewhere, &keys::api_team("newco")).await.unwrap();
    overwrite(&a, &keys::api_team("newco"), record.value).await;
    let gen = raw(&a, &keys::api_teams_generation()).await.unwrap();
    let mut marked: Value = serde_json::from_str(&gen.value).unwrap();
    let began = a.clock.now().unix_millis();
    marked["p"] = json!({"newco": [{"k": 7, "a": began}]});
    overwrite(&a, &keys::api_teams_generation(), marked.to_string()).await;

    // A fresh mark is a write under way: nothing moves.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(key_status(&b, "the-key-of-a-stopped-write").await, 401);
    // Old, it is repaired by the next look of either instance.
    for app in [&a, &b] {
        app.clock
            .advance(chatgate::gateway::operator::index::STOPPED_AFTER);
    }
    within_two_seconds(&b, "the-key-of-a-stopped-write", 200).await;
    within_two_seconds(&a, "the-key-of-a-stopped-write", 200).await;
    let gen = raw(&a, &keys::api_teams_generation()).await.unwrap();
    let after: Value = serde_json::from_str(&gen.value).unwrap();
    assert!(after.get("p").is_none(), "the mark is cleared: {after}");
    elsewhere.stop().await;
    b.stop_keeping_keys().await;
}

both_stores!(a_refused_write_leaves_no_mark, setup: with_operator(), |app: TestApp| async move {
    let first = newco(&app).await;
    let stale = "\"0000000000000000000000000000000000000000000000000000000000000000\"";
    let body = team("newco", &generate_whsec());
    assert_problem(put(&app, "newco", &body, &[("If-Match", stale)]).await, 412, "precondition_failed").await;
    assert_problem(remove(&app, "/v1/teams/newco/api-keys/nobody").await, 404, "not_found").await;
    let gen = raw(&app, &keys::api_teams_generation()).await.unwrap();
    let read: Value = serde_json::from_str(&gen.value).unwrap();
    assert_eq!(read["g"], 1, "one write indexed: {read}");
    assert!(read.get("p").is_none(), "no mark left: {read}");
    assert_eq!(etag(&app, "newco").await, first);
});

/// The commits of the operator API a test counts: those that write a key
/// under one of `tags` (not the background work's, as store epochs).
pub(crate) type Commits = std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>;

/// A memory store that counts its calls, and the keys of each commit
/// that writes under one of `tags`.
pub(crate) fn counting_commits(
    tags: &'static [&'static str],
) -> (std::sync::Arc<crate::round_trips::Counting>, Commits) {
    let commits = Commits::default();
    let told = std::sync::Arc::clone(&commits);
    let inner: chatgate::store::SharedStore =
        std::sync::Arc::new(chatgate::store::memory::MemoryStore::new());
    let counting = crate::round_trips::Counting::telling(inner, move |ops| {
        let keys = ops.iter().filter_map(|op| match op {
            chatgate::store::Op::Put { key, .. } | chatgate::store::Op::Delete { key, .. } => {
                Some(key.clone())
            }
            _ => None,
        });
        let keys: Vec<String> = keys.collect();
        // The reservations an instance renews in the background are no
        // request's (docs/decisions/0632-a-file-team-s-key-is-reserved-in-the-store.md).
        let reserving = keys.iter().all(|k| k.contains("}:rk:"));
        if !reserving && keys.iter().any(|k| tags.iter().any(|t| k.starts_with(t))) {
            told.lock().unwrap().push(keys);
        }
    });
    (std::sync::Arc::new(counting), commits)
}

/// What a `PUT` costs the store: four commits (its mark, the claim of its
/// API key, its team with the audit entry, the index), each after one
/// read; a dry run a read of the claims and one of the team, and no
/// commit; a refused write its mark and the mark's clearing (its key's
/// claim, the team's own and fresh, read and not written again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_is_four_commits_each_after_one_read_and_a_dry_run_two_reads() {
    use crate::round_trips::Counting;
    let (counting, commits) = counting_commits(&["{~teams}", "{newco}"]);
    let store: chatgate::store::SharedStore = counting.clone();
    let setup = Setup {
        store: Some(store),
        ..with_operator()
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let team_key = keys::api_team("newco");
    let team_reads = |counting: &Counting| {
        let gets = counting.gets.lock().unwrap();
        gets.iter()
            .filter(|k| k.contains(&team_key) && k.len() > 1)
            .count()
    };
    let body = team("newco", &generate_whsec());
    let res = app
        .request(Method::PUT, "/v1/teams/newco?dry_run=true", Some(OPS))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        *commits.lock().unwrap(),
        Vec::<Vec<String>>::new(),
        "a dry run commits nothing"
    );
    assert_eq!(team_reads(&counting), 1, "a dry run reads the team once");

    let res = put(&app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let written = std::mem::take(&mut *commits.lock().unwrap());
    let gen = keys::api_teams_generation();
    let ix = keys::api_teams_part(chatgate::gateway::operator::index::part_of("newco"));
    assert_eq!(written.len(), 4, "{written:?}");
    assert_eq!(written[0], std::slice::from_ref(&gen), "the mark");
    let claim = keys::api_key_claim(&ApiKeyHash::of_key("newco-bot-key").to_hex());
    assert_eq!(written[1], [claim], "the claim of its API key");
    assert_eq!(team_reads(&counting), 2, "the write reads its team once");
    let head = keys::audit_head(&crate::operator_writes::keyspace(&app, "newco").await);
    assert!(
        written[2].contains(&team_key) && written[2].contains(&head),
        "{:?}",
        written[2]
    );
    assert_eq!(written[3], [ix, gen.clone()], "the index");

    let stale = "\"0000000000000000000000000000000000000000000000000000000000000000\"";
    assert_problem(
        put(&app, "newco", &body, &[("If-Match", stale)]).await,
        412,
        "precondition_failed",
    )
    .await;
    let refused = std::mem::take(&mut *commits.lock().unwrap());
    assert_eq!(refused, [[gen.clone()], [gen]], "marked, then cleared");
}

/// Two API teams stored with one API key (two instances gave it at once,
/// each checking the teams it had): no instance puts both in force. One
/// that has the first keeps it and leaves the other out; one that starts
/// with both keeps the one written first; once that one is gone, the
/// other goes in. The second team's record is made under a store of its
/// own and put beside the first, with its index entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_api_teams_with_one_key_every_instance_keeps_the_first() {
    let app = spawn_with(Backend::Memory, with_operator()).await.unwrap();
    let first = newco(&app).await;
    let elsewhere = spawn_with(Backend::Memory, with_operator()).await.unwrap();
    elsewhere.clock.advance(std::time::Duration::from_secs(1));
    let twin = team("twin", &generate_whsec()); // newco's bot key, as newco
    let res = put(&elsewhere, "twin", &twin, &[]).await;
    assert_eq!(res.status(), 201);
    let record = raw(&elsewhere, &keys::api_team("twin"))
        .await
        .unwrap()
        .value;
    overwrite(&app, &keys::api_team("twin"), record).await;
    let part = keys::api_teams_part(chatgate::gateway::operator::index::part_of("twin"));
    let mut index: Value = match raw(&app, &part).await {
        Some(ix) => serde_json::from_str(&ix.value).unwrap(),
        None => json!({"t": {}}),
    };
    index["t"]["twin"] = json!(etag_of(&res).trim_matches('"'));
    overwrite(&app, &part, index.to_string()).await;
    let gen = raw(&app, &keys::api_teams_generation()).await.unwrap();
    let mut moved: Value = serde_json::from_str(&gen.value).unwrap();
    moved["g"] = json!(moved["g"].as_u64().unwrap() + 1);
    // Its part's move not logged: every part is read.
    moved.as_object_mut().unwrap().remove("s");
    overwrite(&app, &keys::api_teams_generation(), moved.to_string()).await;

    let status = |app: &TestApp, id: &str| {
        let req = app.request(Method::GET, &format!("/v1/teams/{id}"), Some(OPS));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let in_force =
        |app: &TestApp, id: &str| app.reloader.in_force().config().teams.contains_key(id);
    app.reloader.operator().sync().await;
    assert!(!in_force(&app, "twin"), "left out where newco is in force");
    assert_eq!(status(&app, "newco").await, 200);
    // An instance that starts with both keeps the one written first.
    let setup = Setup {
        store: Some(app.gateway.store().clone()),
        ..with_operator()
    };
    let started = spawn_with(Backend::Memory, setup).await.unwrap();
    assert_eq!(status(&started, "newco").await, 200);
    assert!(!in_force(&started, "twin"), "one key, one team");
    // The first gone, the other goes in at the next look.
    let gone = app
        .request(Method::DELETE, "/v1/teams/newco", Some(OPS))
        .header("If-Match", &first);
    assert_eq!(gone.send().await.unwrap().status(), 204);
    for app in [&app, &started] {
        app.reloader.operator().sync().await;
        assert_eq!(status(app, "twin").await, 200);
        assert_eq!(key_status(app, "newco-bot-key").await, 200, "twin's now");
    }
}

/// A stored team whose id is a team file's on one instance (the file is
/// there only): that instance leaves that team out, says why, and still
/// puts the other teams of the same look in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_team_with_a_file_team_s_id_is_left_out_and_the_rest_goes_in() {
    let with_file = spawn_with(
        Backend::Memory,
        Setup {
            extra_teams: 1,
            ..with_operator()
        },
    )
    .await
    .unwrap();
    let setup = Setup {
        store: Some(with_file.gateway.store().clone()),
        ..with_operator()
    };
    let writer = spawn_with(Backend::Memory, setup).await.unwrap();
    let mut clash = team("aaa-00000", &generate_whsec());
    clash["api_keys"] = json!([]);
    assert_eq!(put(&writer, "aaa-00000", &clash, &[]).await.status(), 201);
    assert_eq!(
        put(&writer, "newco", &team("newco", &generate_whsec()), &[])
            .await
            .status(),
        201
    );
    let core = with_file.reloader.in_force();
    let read = chatgate::gateway::operator::look::changes(&core, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        read.refused
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["aaa-00000"]
    );
    assert_eq!(
        read.teams.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["newco"]
    );
    within_two_seconds(&with_file, "newco-bot-key", 200).await;
    let res = with_file
        .request(Method::GET, "/v1/teams/aaa-00000", Some(OPS))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["chatgate-source"], "file", "the file's stays");
}

both_stores!(a_key_endpoint_takes_a_body_of_at_most_64_kib, setup: with_operator(), |app: TestApp| async move {
    newco(&app).await;
    // Over 64 KiB, declared or not: 413 and no key made.
    let big = json!({"id": "desk", "role": "agent", "padding": "x".repeat(64 * 1024)});
    for path in ["/v1/teams/newco/api-keys", "/v1/teams/newco/security-keys"] {
        // A connection of its own: the gateway closes one it answered 413
        // before reading the body.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let req = client.post(app.url(path)).bearer_auth(OPS).json(&big);
        assert_problem(req.send().await.unwrap(), 413, "payload_too_large").await;
    }
    let shown = app.get_json("/v1/teams/newco", Some(OPS)).await;
    let ids: Vec<&str> = shown["api_keys"].as_array().unwrap().iter().filter_map(|k| k["id"].as_str()).collect();
    assert!(!ids.contains(&"desk"), "{shown}");
    // Under it, the body is read (and its unknown member refused).
    let small = json!({"id": "desk", "role": "agent", "padding": "x"});
    let res = post(&app, "/v1/teams/newco/api-keys", small).await;
    assert_problem(res, 422, "invalid_request").await;
});

/// What the writes of team `n` of `teams` made to the index of the API
/// teams: for each write, the size of the largest part of the index it
/// wrote, and the `{~teams}` keys it read whole (`{~teams}:ix`).
async fn index_cost_of_writes(backend: Backend, teams: usize, measured: &[usize]) -> Vec<usize> {
    type Sizes = std::sync::Arc<std::sync::Mutex<Vec<usize>>>;
    let written = Sizes::default();
    let told = std::sync::Arc::clone(&written);
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let inner: chatgate::store::SharedStore = match backend {
        Backend::Memory => std::sync::Arc::new(chatgate::store::memory::MemoryStore::new()),
        Backend::Redis => {
            let url = "redis://127.0.0.1:6379";
            let Ok(store) = chatgate::store::redis::RedisStore::connect(url, &prefix).await else {
                return Vec::new();
            };
            std::sync::Arc::new(store)
        }
    };
    let counting = crate::round_trips::Counting::telling(inner, move |ops| {
        for op in ops {
            if let chatgate::store::Op::Put { key, value, .. } = op {
                if key.starts_with("{~teams}:ix") {
                    told.lock().unwrap().push(value.len());
                }
            }
        }
    });
    let counting = std::sync::Arc::new(counting);
    let setup = Setup {
        store: Some(counting.clone()),
        key_prefix: Some(prefix),
        ..with_operator()
    };
    let app = spawn_with(backend, setup).await.unwrap();
    let mut largest = Vec::new();
    for n in 1..=teams {
        let id = format!("team{n}");
        let mut body = team(&id, &generate_whsec());
        let hash = ApiKeyHash::of_key(&format!("{id}-bot-key")).to_hex();
        body["api_keys"] = json!([{"id": "bot", "role": "admin", "sha256": hash}]);
        written.lock().unwrap().clear();
        counting.gets.lock().unwrap().clear();
        assert_eq!(put(&app, &id, &body, &[]).await.status(), 201);
        if measured.contains(&n) {
            let whole = counting
                .gets
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .any(|k| k == &keys::api_teams());
            assert!(!whole, "write {n} read the index whole");
            largest.push(
                written
                    .lock()
                    .unwrap()
                    .iter()
                    .copied()
                    .max()
                    .unwrap_or_default(),
            );
        }
    }
    largest
}

/// A team's write reads and writes one part of the index of the API
/// teams, never the index whole: the part it writes is no larger at the
/// 150th team than at the 5th (the index whole grew thirtyfold), on both
/// stores (docs/decisions/0461-the-index-of-the-api-teams-in-parts.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_moves_one_part_of_the_index_whatever_the_number_of_teams() {
    for backend in [Backend::Memory, Backend::Redis] {
        let sizes = index_cost_of_writes(backend, 150, &[5, 150]).await;
        if sizes.is_empty() {
            continue; // no Redis here
        }
        let (fifth, last) = (sizes[0], sizes[1]);
        assert!(fifth > 0 && fifth < 400, "{backend:?}: {sizes:?}");
        assert!(
            last < 400,
            "{backend:?}: the 150th write wrote {last} bytes of index: {sizes:?}"
        );
    }
}
