//! One `[mcp] oauth` issuer and audience, one team
//! (docs/decisions/0740-one-issuer-and-audience-one-team-at-every-write.md):
//! a write through the operator API (a `PUT`, its dry run), an import and
//! a reload of the team files that would give a second team the issuer
//! and audience of another is refused, naming the member and the team
//! that has them, and writes nothing; two API teams stored with one pair
//! (written at once on two instances) are never in force together.
use chatgate::domain::secrets::{generate_whsec, ApiKeyHash};
use chatgate::time::Clock;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_writes::{delete, etag_of, in_two_seconds, put, team, with_operator, OPS};

const ISSUER: &str = "https://as.example";

/// The operator API on, acme (a file team) taking [`ISSUER`]'s tokens
/// for the default audience, `{public_url}/mcp`.
fn setup() -> Setup {
    Setup {
        team_extra: format!("[mcp]\noauth = {{ issuer = \"{ISSUER}\" }}\n"),
        ..with_operator()
    }
}

/// A new API team `id` (a key of its own) whose `[mcp] oauth` is `oauth`.
fn with_oauth(id: &str, oauth: Value) -> Value {
    let mut body = team(id, &generate_whsec());
    let hash = ApiKeyHash::of_key(&format!("{id}-bot-key")).to_hex();
    body["api_keys"] = json!([{"id": "bot", "role": "bot", "sha256": hash}]);
    body["mcp"] = json!({ "oauth": oauth });
    body
}

/// `id`'s write and its dry run are both 422 `invalid_config` at
/// `pointer`, naming `holder`; the team is not stored.
async fn refused(app: &TestApp, id: &str, body: &Value, pointer: &str, holder: &str) {
    for path in [format!("{id}?dry_run=true"), id.to_string()] {
        let p = assert_problem(put(app, &path, body, &[]).await, 422, "invalid_config").await;
        assert_eq!(p["errors"].as_array().unwrap().len(), 1, "{p}");
        assert_eq!(p["errors"][0]["pointer"], pointer, "{p}");
        let detail = p["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("{holder:?}")), "{detail}");
    }
    let res = app
        .request(Method::GET, &format!("/v1/teams/{id}"), Some(OPS))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "nothing written");
}

/// The teams in force on `app` whose `[mcp] oauth` is `issuer`'s and `audience`.
fn takers(app: &TestApp, issuer: &str, audience: &str) -> Vec<String> {
    let gateway = app.reloader.in_force();
    let config = gateway.config();
    let ids = config.sums.mcp_teams_of(issuer);
    let ids = ids.filter(|id| {
        config.teams[*id]
            .mcp_oauth
            .as_ref()
            .is_some_and(|o| o.audience == audience)
    });
    ids.cloned().collect()
}

both_stores!(a_write_that_would_share_an_issuer_s_audience_is_refused, setup: setup(), |app: TestApp| async move {
    // acme's pair: the default audience, left out or written.
    refused(&app, "newco", &with_oauth("newco", json!({"issuer": ISSUER})), "/mcp/oauth/audience", "acme").await;
    let written = json!({"issuer": ISSUER, "audience": "http://gateway.test/mcp"});
    refused(&app, "newco", &with_oauth("newco", written), "/mcp/oauth/audience", "acme").await;
    // Its own audience: its own.
    let own = json!({"issuer": ISSUER, "audience": "api://newco"});
    let res = put(&app, "newco", &with_oauth("newco", own.clone()), &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    // Another API team of that pair is refused; another issuer's is not.
    refused(&app, "other", &with_oauth("other", own.clone()), "/mcp/oauth/audience", "newco").await;
    let elsewhere = json!({"issuer": "https://as2.example", "audience": "api://newco"});
    assert_eq!(put(&app, "other", &with_oauth("other", elsewhere), &[]).await.status(), 201);
    // newco written again with its own pair is no clash with itself.
    let again = put(&app, "newco", &with_oauth("newco", own), &[("If-Match", &tag)]).await;
    assert_eq!(again.status(), 200);
    assert_eq!(takers(&app, ISSUER, "api://newco"), ["newco"]);

    // A team file given newco's pair: the reload is refused, naming the
    // API team and the member, and nothing changes.
    let path = app.dir.join("config/teams/globex.toml");
    let globex = std::fs::read_to_string(&path).unwrap();
    let section = format!("\n[mcp]\noauth = {{ issuer = \"{ISSUER}\", audience = \"api://newco\" }}\n");
    std::fs::write(&path, format!("{globex}{section}")).unwrap();
    let chatgate::app::Reloaded::Refused(e) = app.reloader.reload().await else {
        panic!("a team file with an API team's issuer and audience was reloaded");
    };
    assert!(e.problem.contains("\"newco\"") && e.problem.contains("/mcp/oauth"), "{e}");
    assert!(e.problem.contains("\"globex\""), "{e}");
    assert!(app.reloader.in_force().config().teams["globex"].mcp_oauth.is_none(), "nothing changed");
    assert_eq!(takers(&app, ISSUER, "api://newco"), ["newco"]);
    std::fs::write(&path, globex).unwrap();
    assert!(matches!(app.reloader.reload().await, chatgate::app::Reloaded::Applied { .. }));
});

// An import whose teams share a pair, or take one the store's teams
// have, writes nothing and names each team refused with its member.
both_stores!(an_import_that_would_share_an_issuer_s_audience_writes_nothing, setup: setup(), |app: TestApp| async move {
    use chatgate::gateway::operator::{look::Held, restore};
    for id in ["newco", "newco2"] {
        let own = json!({"issuer": ISSUER, "audience": format!("api://{id}")});
        assert_eq!(put(&app, id, &with_oauth(id, own), &[]).await.status(), 201);
    }
    let mut file = serde_json::to_value(restore::export(&app.gateway).await.unwrap()).unwrap();
    file["teams"]["newco2"]["body"]["mcp"]["oauth"]["audience"] = json!("api://newco");
    for id in ["newco", "newco2"] {
        let tag = app.request(Method::GET, &format!("/v1/teams/{id}"), Some(OPS)).send().await.unwrap();
        let tag = etag_of(&tag);
        assert_eq!(delete(&app, id, &[("If-Match", &tag)]).await.status(), 204);
    }
    let held: Held = serde_json::from_value(file.clone()).unwrap();
    let done = restore::import(&app.gateway, &held, false, app.clock.now()).await.unwrap();
    let said = done.expect_err("refused").join("; ");
    assert!(said.contains("team newco2: /mcp/oauth/audience") && said.contains("\"newco\""), "{said}");
    assert!(!said.contains("team newco:"), "the first keeps it: {said}");
    assert!(restore::export(&app.gateway).await.unwrap().is_empty(), "nothing imported");

    // newco2 with its own audience, but the pair a team written since has.
    file["teams"]["newco2"]["body"]["mcp"]["oauth"]["audience"] = json!("api://newco2");
    let taken = json!({"issuer": ISSUER, "audience": "api://newco2"});
    assert_eq!(put(&app, "later", &with_oauth("later", taken), &[]).await.status(), 201);
    let held: Held = serde_json::from_value(file).unwrap();
    let done = restore::import(&app.gateway, &held, false, app.clock.now()).await.unwrap();
    let said = done.expect_err("refused").join("; ");
    assert!(said.contains("team newco2: /mcp/oauth/audience") && said.contains("\"later\""), "{said}");
    let stored = restore::export(&app.gateway).await.unwrap();
    assert_eq!(stored.teams.keys().collect::<Vec<_>>(), ["later"], "nothing imported");
});

/// Two instances on one store write two teams of one pair at once: each
/// may pass its own check, but no instance ever has both in force, and
/// both keep the same one.
async fn two_at_once(backend: Backend) {
    let Some(a) = spawn_with(backend, setup()).await else {
        return;
    };
    let b = match backend {
        Backend::Memory => {
            let same = Setup {
                store: Some(a.gateway.store().clone()),
                ..setup()
            };
            spawn_with(backend, same).await.unwrap()
        }
        _ => spawn_beside(&a, setup()).await,
    };
    let pair = json!({"issuer": ISSUER, "audience": "api://shared"});
    let (first, second) = (
        with_oauth("first", pair.clone()),
        with_oauth("second", pair),
    );
    let (one, two) = tokio::join!(
        put(&a, "first", &first, &[]),
        put(&b, "second", &second, &[])
    );
    let statuses = [one.status().as_u16(), two.status().as_u16()];
    assert!(statuses.contains(&201), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [201, 422].contains(s)),
        "{statuses:?}"
    );
    let agreed = || async {
        let (on_a, on_b) = (
            takers(&a, ISSUER, "api://shared"),
            takers(&b, ISSUER, "api://shared"),
        );
        on_a.len() == 1 && on_a == on_b
    };
    in_two_seconds("one team of the pair, the same on both", agreed).await;
    if statuses == [201, 201] {
        // Both stored: b had its own in force at once, and gave it up for
        // the one written first (a's clock is no later than b's; a tie
        // goes by id).
        assert_eq!(takers(&b, ISSUER, "api://shared"), ["first"]);
    }
    eprintln!("two writes of one pair at once answered {statuses:?}");
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(agreed().await, "never two, never apart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_teams_of_one_pair_written_at_once_are_never_both_in_force_on_memory() {
    two_at_once(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_teams_of_one_pair_written_at_once_are_never_both_in_force_on_redis() {
    two_at_once(Backend::Redis).await;
}

/// An import checks its teams' pairs as a write does, by the index of
/// issuers: against many stored teams it reads them, and builds none
/// whose pair none of its teams has (counted by the trace line of each
/// stored team built).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_against_many_stored_teams_builds_none_of_them() {
    use chatgate::gateway::operator::{look::Held, restore};
    let app = spawn_with(Backend::Memory, setup()).await.unwrap();
    const STORED: usize = 12;
    for i in 0..STORED {
        let id = format!("stored-{i:02}");
        // Half of them with a pair of their own, half with none.
        let mut body = with_oauth(
            &id,
            json!({"issuer": ISSUER, "audience": format!("api://{id}")}),
        );
        if i % 2 == 1 {
            body.as_object_mut().unwrap().remove("mcp");
        }
        assert_eq!(put(&app, &id, &body, &[]).await.status(), 201);
    }
    let own = json!({"issuer": ISSUER, "audience": "api://newco"});
    assert_eq!(
        put(&app, "newco", &with_oauth("newco", own), &[])
            .await
            .status(),
        201
    );
    let mut file = serde_json::to_value(restore::export(&app.gateway).await.unwrap()).unwrap();
    let newco = file["teams"]["newco"].take();
    file["teams"] = json!({ "newco": newco });
    let tag = app
        .request(Method::GET, "/v1/teams/newco", Some(OPS))
        .send()
        .await
        .unwrap();
    let tag = etag_of(&tag);
    assert_eq!(
        delete(&app, "newco", &[("If-Match", &tag)]).await.status(),
        204
    );
    let held: Held = serde_json::from_value(file).unwrap();

    let capture = crate::logs::Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let done = restore::import(&app.gateway, &held, false, app.clock.now()).await;
    drop(guard);
    assert_eq!(done.unwrap().expect("imported").teams, 1);
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let built = |id: &str| {
        let lines = text.lines().filter(|l| l.contains("a stored team built"));
        lines.filter(|l| l.contains(&format!("team={id}"))).count()
    };
    let stored: usize = (0..STORED).map(|i| built(&format!("stored-{i:02}"))).sum();
    assert_eq!(stored, 0, "stored teams built by the import");
    // The count counts: the team imported is built to be written.
    assert!(built("newco") >= 1, "{text}");
}
