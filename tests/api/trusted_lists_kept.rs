//! When the bank's `wrpac` and `wrprc` lists are fetched and kept
//! (docs/wallet.md#trusted-lists, docs/wallet.md#the-banks-own-certificates):
//! once at start, on the timer at each `refresh` though no credential
//! names them, kept from a reload's check only once its set is in force
//! (a refused reload keeps and records nothing), and a team written
//! through the operator API refused at the write when a usable list does
//! not hold its own certificates.
use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_inputs::refused_at;
use crate::operator_writes::{etag_of, operator_section, put, stored, team, OPS};
use crate::trusted_lists::{fetches, list_name, metric, operator, signed, Operator, METRICS_TOKEN};
use crate::trusted_lists_own::{ders_of, elsewhere, own_setup_named, refused, serve_own, wall_now};
use crate::wallet::{access, fixtures, Access};

/// The bank's certificates as its lists name them: the access chain's
/// CA, and the registrar's CA that issued the registration certificate.
struct Own {
    a: Access,
    op: Operator,
    rc: String,
    access_ca: String,
    registrar: String,
}

fn own(name: &str) -> Own {
    let provider = operator(&format!("{name} registrar"));
    let a = access();
    let rc = signed(
        &provider,
        json!({"alg": "ES256", "typ": "rc-wrp+jwt"}),
        &json!({"sub": "acme", "iat": wall_now()}),
    );
    Own {
        access_ca: ders_of(&a.chain_pem).pop().unwrap(),
        registrar: ders_of(&provider.ca_pem).pop().unwrap(),
        op: operator(name),
        a,
        rc,
    }
}

/// acme with `verify_own` and its lists `names` at `server`, both served
/// holding its certificates (sequence 1, good for 30 days), its
/// team-labelled series served to the metrics token.
async fn spawn_own(
    backend: Backend,
    o: &Own,
    server: &wiremock::MockServer,
    names: (&str, &str),
) -> Option<TestApp> {
    let now = wall_now();
    let later = now + 30 * 86_400;
    let (ac, rc) = ([o.access_ca.clone()], [o.registrar.clone()]);
    serve_own(server, &o.op, now, (1, later, &ac), (1, later, &rc)).await;
    let setup = Setup {
        server: format!("metrics_token = \"{METRICS_TOKEN}\""),
        ..own_setup_named(&o.a, &o.op, &o.rc, &server.uri(), names)
    };
    spawn_with(backend, setup).await
}

/// acme's audit trail as served, `config.changed` entries included.
async fn all_entries(app: &TestApp) -> Vec<Value> {
    let page = app
        .get_json("/v1/audit?after=0&limit=1000", Some(&app.keys.admin))
        .await;
    page["entries"].as_array().unwrap().clone()
}

/// Where `list`'s `wallet.trusted_list.changed` entries stand in `entries`.
fn changes_of(entries: &[Value], list: &str) -> Vec<usize> {
    let of =
        |e: &Value| e["action"] == "wallet.trusted_list.changed" && e["detail"]["list"] == list;
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| of(e).then_some(i))
        .collect()
}

/// docs/wallet.md#trusted-lists: the `wrpac` and `wrprc` lists, which no
/// credential names, are fetched once at start (the read of the
/// `verify_own` check kept), and again by the timer once `refresh` has
/// passed: each new copy's change in the trail, each list fetched twice.
async fn every_list_is_fetched_at_its_refresh(backend: Backend) {
    let server = wiremock::MockServer::start().await;
    let o = own("Timer");
    let (ac, rc) = (
        list_name("timer_ac", backend),
        list_name("timer_rc", backend),
    );
    let Some(app) = spawn_own(backend, &o, &server, (&ac, &rc)).await else {
        return;
    };
    for list in [&ac, &rc] {
        assert_eq!(fetches(&app, list, "ok").await, 1.0, "{list} at start");
    }
    let (now, later) = (wall_now(), wall_now() + 30 * 86_400);
    let held = |cert: &String| [cert.clone(), elsewhere()];
    let (ac_held, rc_held) = (held(&o.access_ca), held(&o.registrar));
    serve_own(
        &server,
        &o.op,
        now,
        (2, later, &ac_held),
        (2, later, &rc_held),
    )
    .await;
    app.advance(3600);
    // No presentation asks for them: the timer's round does (within 30 s
    // of real time on a busy machine).
    let mut entries = Vec::new();
    for _ in 0..600 {
        entries = all_entries(&app).await;
        if !changes_of(&entries, &ac).is_empty() && !changes_of(&entries, &rc).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for list in [&ac, &rc] {
        assert_eq!(changes_of(&entries, list).len(), 1, "{list}: {entries:?}");
        assert_eq!(fetches(&app, list, "ok").await, 2.0, "{list}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_is_fetched_at_its_refresh_memory() {
    every_list_is_fetched_at_its_refresh(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_is_fetched_at_its_refresh_redis() {
    every_list_is_fetched_at_its_refresh(Backend::Redis).await;
}

/// docs/wallet.md#the-banks-own-certificates: a reload refused for a
/// `wrpac` copy without the access CA keeps the running copy (its
/// `NextUpdate` still the start's) and records no change; a reload that
/// applies keeps what its check read, its change recorded after its
/// `config.changed`, and no list is fetched again for it.
async fn a_refused_reload_keeps_the_running_lists(backend: Backend) {
    let server = wiremock::MockServer::start().await;
    let o = own("Kept");
    let (ac, rc) = (list_name("kept_ac", backend), list_name("kept_rc", backend));
    let Some(app) = spawn_own(backend, &o, &server, (&ac, &rc)).await else {
        return;
    };
    let (now, later) = (wall_now(), wall_now() + 30 * 86_400);
    let rcs = [o.registrar.clone()];
    serve_own(
        &server,
        &o.op,
        now,
        (2, now + 600, &[elsewhere()]),
        (1, later, &rcs),
    )
    .await;
    refused(&app, "wallet.certificate_chain").await;
    let next = format!("chatgate_trusted_list_next_update_seconds{{team=\"acme\",list=\"{ac}\"}}");
    let left = metric(&app, &next).await.unwrap();
    assert!(left > 86_400.0, "the refused read kept: {left}");
    assert!(changes_of(&all_entries(&app).await, &ac).is_empty());
    // Held beside another service: applies, and the change comes after
    // the configuration that put it in force.
    let acs = [o.access_ca.clone(), elsewhere()];
    serve_own(&server, &o.op, now, (3, later, &acs), (1, later, &rcs)).await;
    crate::reload::reload_applies(&app).await;
    let entries = all_entries(&app).await;
    let changed = changes_of(&entries, &ac);
    assert_eq!(changed.len(), 1, "{entries:?}");
    let configured = entries
        .iter()
        .rposition(|e| e["action"] == "config.changed");
    assert!(configured.is_some_and(|c| c < changed[0]), "{entries:?}");
    // Read at start, at the refused reload and at the applied one; two
    // of the timer's rounds fetch neither again.
    tokio::time::sleep(2 * chatgate::gateway::wallet::ROUND).await;
    for list in [&ac, &rc] {
        assert_eq!(fetches(&app, list, "ok").await, 3.0, "{list}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_keeps_the_running_lists_memory() {
    a_refused_reload_keeps_the_running_lists(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_keeps_the_running_lists_redis() {
    a_refused_reload_keeps_the_running_lists(Backend::Redis).await;
}

/// A team body with `verify_own`, its `wrpac` and `wrprc` lists at
/// `server`: `newco`'s.
fn own_team(o: &Own, server: &str) -> Value {
    let list = |kind: &str| json!({"url": format!("{server}/lists/{kind}"), "type": kind, "signers": [o.op.ca_pem]});
    let mut body = team("newco", &chatgate::domain::secrets::generate_whsec());
    body["wallet"] = json!({
        "signing_key": o.a.key_pem,
        "certificate_chain": o.a.chain_pem,
        "registration_certificate": o.rc,
        "verify_own": true,
        "trusted_issuers": [fixtures()["trusted"][0]],
        "trusted_lists": {"own_ac": list("wrpac"), "own_rc": list("wrprc")},
        "credentials": [{"id": "pid", "format": "dc+sd-jwt", "vct": ["urn:eudi:pid:1"],
            "claims": ["family_name"]}],
    });
    body
}

/// docs/wallet.md#the-banks-own-certificates: a team written through the
/// operator API whose access or registration certificate a usable list
/// of its kind does not hold is 422 at its pointer, nothing stored; its
/// lists with no usable copy, or holding both, it is written.
async fn an_api_team_s_own_certificates_are_checked_at_the_write(backend: Backend) {
    let server = wiremock::MockServer::start().await;
    let o = own("Written");
    let setup = Setup {
        system_extra: operator_section(true),
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let body = own_team(&o, &server.uri());
    let (now, later) = (wall_now(), wall_now() + 30 * 86_400);
    let (acs, rcs, other) = ([o.access_ca.clone()], [o.registrar.clone()], [elsewhere()]);
    let cases = [
        ((&other, &rcs), "/wallet/certificate_chain"),
        ((&acs, &other), "/wallet/registration_certificate"),
    ];
    for ((ac, rc), pointer) in cases {
        serve_own(&server, &o.op, now, (1, later, ac), (1, later, rc)).await;
        let dry = app.request(
            reqwest::Method::PUT,
            "/v1/teams/newco?dry_run=true",
            Some(OPS),
        );
        let dry = dry.json(&body).send().await.unwrap();
        assert_eq!(refused_at(dry).await, [pointer]);
        assert_eq!(
            refused_at(put(&app, "newco", &body, &[]).await).await,
            [pointer]
        );
        assert!(stored(&app, "newco").await.is_none(), "{pointer}");
    }
    // Unreachable lists: nothing to check against, no refusal.
    server.reset().await;
    let res = put(&app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    // Both held: written again.
    serve_own(&server, &o.op, now, (1, later, &acs), (1, later, &rcs)).await;
    let res = put(&app, "newco", &body, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_team_s_own_certificates_are_checked_at_the_write_memory() {
    an_api_team_s_own_certificates_are_checked_at_the_write(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_team_s_own_certificates_are_checked_at_the_write_redis() {
    an_api_team_s_own_certificates_are_checked_at_the_write(Backend::Redis).await;
}

/// A `verify_own` team exported from `a`, imported into another store:
/// refused naming the team and the pointer, nothing written, while a usable
/// list of its kind does not hold its certificate; written when its lists
/// have no usable copy, as at a `PUT`
/// (docs/decisions/0851-an-import-checks-a-team-s-own-certificates-as-a-put-does.md).
async fn an_import_checks_a_team_s_own_certificates(backend: Backend) {
    use chatgate::gateway::operator::{look::Held, restore};
    use chatgate::time::Clock as _;
    let server = wiremock::MockServer::start().await;
    let o = own("Imported");
    let setup = || Setup {
        system_extra: operator_section(true),
        ..Setup::default()
    };
    let Some(a) = spawn_with(backend, setup()).await else {
        return;
    };
    let (now, later) = (wall_now(), wall_now() + 30 * 86_400);
    let (acs, rcs, other) = ([o.access_ca.clone()], [o.registrar.clone()], [elsewhere()]);
    serve_own(&server, &o.op, now, (1, later, &acs), (1, later, &rcs)).await;
    let res = put(&a, "newco", &own_team(&o, &server.uri()), &[]).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let exported: Held = restore::export(&a.gateway).await.unwrap();
    let b = spawn_with(backend, setup()).await.unwrap();
    let import = || restore::import(&b.gateway, &exported, false, b.clock.now());
    // The provider of its access certificate dropped from its wrpac list.
    serve_own(&server, &o.op, now, (2, later, &other), (1, later, &rcs)).await;
    let refused = import().await.unwrap().expect_err("refused").join("; ");
    assert!(
        refused.starts_with("team newco: /wallet/certificate_chain "),
        "{refused}"
    );
    assert!(
        restore::export(&b.gateway).await.unwrap().is_empty(),
        "nothing written"
    );
    // Its lists unreachable: nothing to check against, no refusal.
    server.reset().await;
    let restored = import().await.unwrap().expect("imported");
    assert_eq!(restored.teams, 1);
    assert!(stored(&b, "newco").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_checks_a_team_s_own_certificates_memory() {
    an_import_checks_a_team_s_own_certificates(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_checks_a_team_s_own_certificates_redis() {
    an_import_checks_a_team_s_own_certificates(Backend::Redis).await;
}
