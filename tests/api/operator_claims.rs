//! A key names one team in the store (docs/operator-api.md#keys): each
//! API key of an API team is claimed in the store before the team's
//! write commits, so of two instances that give one key to two teams at
//! once one refuses (a key endpoint 409 `key_exists`, a `PUT` 422
//! `invalid_config` at the key) and every instance then has the key in
//! force for the other; a key a write drops, or a team deleted, frees
//! it; a claim left behind by a writer that stopped is taken over once
//! old.
use chatgate::domain::secrets::{generate_whsec, ApiKeyHash};
use chatgate::store::keys;
use chatgate::time::Clock;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_keys::{overwrite, raw};
use crate::operator_writes::{delete, etag_of, in_two_seconds, put, team, with_operator, OPS};

/// A new team `id` whose one API key is `key`'s.
pub(crate) fn team_with_key(id: &str, key: &str) -> Value {
    let mut body = team(id, &generate_whsec());
    let hash = ApiKeyHash::of_key(key).to_hex();
    body["api_keys"] = json!([{"id": "bot", "role": "admin", "sha256": hash}]);
    body
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    let req = app.request(Method::POST, path, Some(OPS)).json(&body);
    req.send().await.unwrap()
}

/// Two instances on one store: `a`, and one beside it.
async fn two(backend: Backend) -> Option<(TestApp, TestApp)> {
    let a = spawn_with(backend, with_operator()).await?;
    let setup = Setup {
        store: Some(a.gateway.store().clone()),
        ..with_operator()
    };
    let b = match backend {
        Backend::Memory => spawn_with(backend, setup).await.unwrap(),
        _ => spawn_beside(&a, with_operator()).await,
    };
    Some((a, b))
}

/// The teams that hold `key` in force on `app`.
fn holders(app: &TestApp, key: &str) -> Vec<String> {
    let in_force = app.reloader.in_force();
    let found = in_force
        .config()
        .key_holders
        .holders(&ApiKeyHash::of_key(key));
    found.map(|h| h.team.to_string()).collect()
}

/// Of two answers, the one 2xx and the other `refusal` (its status and
/// problem code): the index of the 2xx.
async fn one_refused(answers: [reqwest::Response; 2], refusal: (u16, &str)) -> usize {
    let [first, second] = answers;
    let statuses = [first.status().as_u16(), second.status().as_u16()];
    let won = match statuses {
        [200 | 201, s] if s == refusal.0 => 0,
        [s, 200 | 201] if s == refusal.0 => 1,
        other => panic!("one key given to two teams at once answered {other:?}"),
    };
    let refused = if won == 0 { second } else { first };
    assert_problem(refused, refusal.0, refusal.1).await;
    won
}

/// Both instances have `key` in force for `team` alone, within 2 s.
async fn in_force_for(apps: [&TestApp; 2], key: &str, team: &str) {
    for app in apps {
        let what = format!("{key} in force for {team} alone");
        in_two_seconds(&what, || async { holders(app, key) == [team] }).await;
    }
}

async fn one_key_two_teams_at_once(backend: Backend) {
    let Some((a, b)) = two(backend).await else {
        return;
    };
    let ids = ["alpha", "beta"];
    for (app, id) in [(&a, ids[0]), (&b, ids[1])] {
        let res = put(app, id, &team_with_key(id, &format!("{id}-own")), &[]).await;
        assert_eq!(res.status(), 201);
    }
    for round in 0..3 {
        // A key endpoint on each instance, at once.
        let key = format!("shared-{round}");
        let hash = ApiKeyHash::of_key(&key).to_hex();
        let asked = json!({"id": format!("k{round}"), "role": "agent", "sha256": hash});
        let answers = tokio::join!(
            post(&a, "/v1/teams/alpha/api-keys", asked.clone()),
            post(&b, "/v1/teams/beta/api-keys", asked),
        );
        let won = one_refused([answers.0, answers.1], (409, "key_exists")).await;
        in_force_for([&a, &b], &key, ids[won]).await;

        // A new team's `PUT` on each instance, at once.
        let key = format!("put-{round}");
        let (gamma, delta) = (format!("gamma{round}"), format!("delta{round}"));
        let bodies = [team_with_key(&gamma, &key), team_with_key(&delta, &key)];
        let answers = tokio::join!(
            put(&a, &gamma, &bodies[0], &[]),
            put(&b, &delta, &bodies[1], &[]),
        );
        // A body with another team's key breaks a rule: 422 at the key.
        let won = one_refused([answers.0, answers.1], (422, "invalid_config")).await;
        in_force_for([&a, &b], &key, [&gamma, &delta][won]).await;
        let stored = raw(&a, &keys::api_key_claim(&ApiKeyHash::of_key(&key).to_hex())).await;
        let claim: Value = serde_json::from_str(&stored.expect("claimed").value).unwrap();
        assert_eq!(claim["t"], json!([&gamma, &delta][won]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_given_to_two_teams_on_two_instances_at_once_is_one_team_s_on_memory() {
    one_key_two_teams_at_once(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_given_to_two_teams_on_two_instances_at_once_is_one_team_s_on_redis() {
    one_key_two_teams_at_once(Backend::Redis).await;
}

async fn dropped_keys_are_free(backend: Backend) {
    let Some((a, b)) = two(backend).await else {
        return;
    };
    let claim = |key: &str| keys::api_key_claim(&ApiKeyHash::of_key(key).to_hex());
    assert_eq!(
        put(&a, "alpha", &team_with_key("alpha", "k1"), &[])
            .await
            .status(),
        201
    );
    let res = put(&b, "beta", &team_with_key("beta", "beta-own"), &[]).await;
    assert_eq!(res.status(), 201);
    let k1 = json!({"id": "k1", "role": "agent", "sha256": ApiKeyHash::of_key("k1").to_hex()});
    assert_problem(
        post(&b, "/v1/teams/beta/api-keys", k1.clone()).await,
        409,
        "key_exists",
    )
    .await;

    // A key endpoint drops it: free for another team at once.
    let res = post(
        &a,
        "/v1/teams/alpha/api-keys",
        json!({"id": "spare", "role": "bot"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = a.request(Method::DELETE, "/v1/teams/alpha/api-keys/bot", Some(OPS));
    assert_eq!(res.send().await.unwrap().status(), 204);
    assert!(
        raw(&a, &claim("k1")).await.is_none(),
        "the claim of a key dropped is deleted"
    );
    in_two_seconds("beta given k1", || async {
        post(&b, "/v1/teams/beta/api-keys", k1.clone())
            .await
            .status()
            == 201
    })
    .await;
    in_force_for([&a, &b], "k1", "beta").await;

    // A `PUT` that drops a key frees it too.
    let res = put(&a, "gamma", &team_with_key("gamma", "k2"), &[]).await;
    let tag = etag_of(&res);
    let moved = put(
        &a,
        "gamma",
        &team_with_key("gamma", "k3"),
        &[("If-Match", &tag)],
    )
    .await;
    assert_eq!(moved.status(), 200);
    assert!(
        raw(&a, &claim("k2")).await.is_none(),
        "the claim of a key dropped is deleted"
    );
    in_two_seconds("k2 given to delta", || async {
        put(&b, "delta", &team_with_key("delta", "k2"), &[])
            .await
            .status()
            == 201
    })
    .await;

    // A team deleted frees its keys.
    let read = b.request(Method::GET, "/v1/teams/beta", Some(OPS)).send();
    let beta_tag = etag_of(&read.await.unwrap());
    let body = team_with_key("beta", "beta-own");
    let res = put(&b, "beta", &body, &[("If-Match", &beta_tag)]).await;
    assert_eq!(res.status(), 200);
    let beta_tag = etag_of(&res);
    assert!(
        raw(&a, &claim("k1")).await.is_none(),
        "k1 dropped by beta's PUT"
    );
    assert_eq!(
        delete(&b, "beta", &[("If-Match", &beta_tag)])
            .await
            .status(),
        204
    );
    assert!(
        raw(&a, &claim("beta-own")).await.is_none(),
        "a deleted team's claims are deleted"
    );
    in_two_seconds("beta's key given to epsilon", || async {
        let body = team_with_key("epsilon", "beta-own");
        put(&a, "epsilon", &body, &[]).await.status() == 201
    })
    .await;
    in_force_for([&a, &b], "beta-own", "epsilon").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_dropped_or_its_team_deleted_is_free_for_another_team_on_memory() {
    dropped_keys_are_free(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_dropped_or_its_team_deleted_is_free_for_another_team_on_redis() {
    dropped_keys_are_free(Backend::Redis).await;
}

/// A claim of a team the store does not hold (its writer stopped before
/// its team's commit): the body breaks a rule (422 at the key) while it
/// is young, taken over once it is 30 s old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_behind_is_taken_over_once_old() {
    let app = spawn_with(Backend::Memory, with_operator()).await.unwrap();
    let key = keys::api_key_claim(&ApiKeyHash::of_key("k1").to_hex());
    let at = app.clock.now().unix_millis();
    overwrite(&app, &key, json!({"t": "ghost", "at": at}).to_string()).await;
    let body = team_with_key("alpha", "k1");
    let dry = app.request(Method::PUT, "/v1/teams/alpha?dry_run=true", Some(OPS));
    assert_problem(dry.json(&body).send().await.unwrap(), 422, "invalid_config").await;
    let refused = assert_problem(put(&app, "alpha", &body, &[]).await, 422, "invalid_config").await;
    assert_eq!(
        refused["errors"][0]["pointer"], "/api_keys/0/sha256",
        "{refused}"
    );
    assert!(
        raw(&app, &keys::api_team("alpha")).await.is_none(),
        "nothing written"
    );

    app.clock.advance(std::time::Duration::from_secs(31));
    assert_eq!(put(&app, "alpha", &body, &[]).await.status(), 201);
    let claim: Value = serde_json::from_str(&raw(&app, &key).await.unwrap().value).unwrap();
    assert_eq!(claim["t"], "alpha");
}

// An instance whose configuration lacks a file team's key (here `b`,
// whose acme holds another bot key than `a`'s) refuses it to an API
// team all the same, by a `PUT` and by an import: `a` reserved its file
// teams' keys in the store at its start
// (docs/decisions/0632-a-file-team-s-key-is-reserved-in-the-store.md).
// A refusal names the pointer, never whose key; nothing is written.
both_stores!(a_file_team_s_key_is_refused_where_the_configuration_lacks_it, setup: with_operator(), |a: TestApp| async move {
    use chatgate::gateway::operator::{look::Held, restore};
    let beside = match a.backend {
        Backend::Memory => Setup { store: Some(a.gateway.store().clone()), ..with_operator() },
        _ => Setup { key_prefix: Some(a.key_prefix.clone()), ..with_operator() },
    };
    let b = spawn_with(a.backend, beside).await.unwrap();
    assert_ne!(a.keys.bot, b.keys.bot, "b's acme holds another key");
    let hash = ApiKeyHash::of_key(&a.keys.bot).to_hex();
    let reserved = keys::api_key_reserved(&hash);
    in_two_seconds("a's acme key reserved", || async { raw(&b, &reserved).await.is_some() }).await;

    let body = team_with_key("newco", &a.keys.bot);
    for path in ["newco?dry_run=true", "newco"] {
        let p = assert_problem(put(&b, path, &body, &[]).await, 422, "invalid_config").await;
        assert_eq!(p["errors"][0]["pointer"], "/api_keys/0/sha256", "{p}");
        assert!(!p.to_string().contains("acme"), "never whose key: {p}");
    }
    let res = b.request(Method::GET, "/v1/teams/newco", Some(OPS)).send().await.unwrap();
    assert_eq!(res.status(), 404, "nothing written");
    assert!(raw(&b, &keys::api_key_claim(&hash)).await.is_none(), "nor claimed");

    // An export of a team of b's own key, edited to hold a's acme key.
    let res = put(&b, "newco", &team_with_key("newco", "newco-own-key"), &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    let mut file = serde_json::to_value(restore::export(&b.gateway).await.unwrap()).unwrap();
    file["teams"]["newco"]["body"]["api_keys"][0]["sha256"] = json!(hash);
    assert_eq!(delete(&b, "newco", &[("If-Match", &tag)]).await.status(), 204);
    let held: Held = serde_json::from_value(file).unwrap();
    let done = restore::import(&b.gateway, &held, false, b.clock.now()).await.unwrap();
    let refused = done.expect_err("refused").join("; ");
    assert!(refused.contains("team newco: /api_keys/0/sha256"), "{refused}");
    assert!(!refused.contains("acme") && !refused.contains(&hash), "{refused}");
    assert!(restore::export(&b.gateway).await.unwrap().is_empty(), "nothing imported");
    // a's acme still acts with it.
    assert_eq!(holders(&a, &a.keys.bot), ["acme"]);
});

// A team stored before any instance reserved one of its keys (acme's
// file added after the API team took the key) is refused wherever it is
// loaded once the key is reserved: at a start and at a reload, on an
// instance that has no file team of that key as on one that has it,
// with the words an import's refusal has; the key acts for acme
// (docs/decisions/0751-a-stored-team-holding-a-reserved-key-is-refused-where-it-is-loaded.md).
both_stores!(a_team_stored_before_its_key_was_reserved_is_refused_where_it_is_loaded, setup: with_operator(), |b: TestApp| async move {
    let beside = |keys: Keys| match b.backend {
        Backend::Memory => Setup { store: Some(b.gateway.store().clone()), keys: Some(keys), ..with_operator() },
        _ => Setup { key_prefix: Some(b.key_prefix.clone()), keys: Some(keys), ..with_operator() },
    };
    // The key of an acme file not yet on any instance: b writes newco with it.
    let later = Keys::fresh();
    let res = put(&b, "newco", &team_with_key("newco", &later.bot), &[]).await;
    assert_eq!(res.status(), 201, "no instance reserved the key yet");
    assert_eq!(holders(&b, &later.bot), ["newco"]);
    // An instance whose acme holds it starts: it reserves the key, and
    // refuses newco at its start.
    let a = spawn_with(b.backend, beside(later.clone())).await.unwrap();
    let hash = ApiKeyHash::of_key(&later.bot).to_hex();
    let reserved = keys::api_key_reserved(&hash);
    in_two_seconds("acme's key reserved", || async { raw(&b, &reserved).await.is_some() }).await;
    assert_eq!(holders(&a, &later.bot), ["acme"]);
    // An instance with another acme key starts: it has no file team of
    // that key, and refuses newco by the reservation alone.
    let c = spawn_with(b.backend, beside(Keys::fresh())).await.unwrap();
    assert!(holders(&c, &later.bot).is_empty(), "newco refused at c's start");
    assert!(c.reloader.in_force().config().teams.get("newco").is_none());
    // b, which put newco in force before the key was reserved, refuses it
    // when it loads it again: at its reload.
    assert!(matches!(b.reloader.reload().await, chatgate::app::Reloaded::Applied { .. }));
    assert!(holders(&b, &later.bot).is_empty(), "newco refused at b's reload");
    assert!(b.reloader.in_force().config().teams.get("newco").is_none());
    // The stored team stays as it was, refused, not deleted.
    let res = b.request(Method::GET, "/v1/teams/newco", Some(OPS)).send().await.unwrap();
    assert_eq!(res.status(), 200, "still stored");
    drop((a, c));
});
