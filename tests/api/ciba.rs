//! Approval in the customer's own app (docs/api.md#approval-in-the-customers-app):
//! OpenID Connect CIBA in poll mode against the in-process fake provider
//! of `oidc_provider.rs`, whose customer approves, denies, never answers
//! or asks the gateway to slow down. Polls run on the sweeper: the tests
//! move the gateway's (manual) clock and wait, in real time, for it.
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc_provider::{Approval, FakeIdp, Misbehave, Seen};

/// Real time the tests give the sweeper (every 0.5 s) to act.
const SETTLE: Duration = Duration::from_millis(1500);

async fn spawn_ciba(backend: Backend, defaults: &str) -> Option<(TestApp, FakeIdp)> {
    crate::oidc::spawn_idp(backend, "ciba = true", defaults).await
}

async fn interaction(app: &TestApp, customer_ref: Option<&str>) -> String {
    let mut body =
        json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()});
    if let Some(c) = customer_ref {
        body["customer_ref"] = json!(c);
    }
    app.create(body).await["id"].as_str().unwrap().to_string()
}

async fn start_app(app: &TestApp, id: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/challenges"),
        Some(&app.keys.bot),
        &json!({"method": "app"}),
    )
    .await
}

async fn started(app: &TestApp, id: &str) -> Value {
    let res = start_app(app, id).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn read(app: &TestApp, id: &str, cid: &str) -> Value {
    app.get_json(
        &format!("/v1/interactions/{id}/challenges/{cid}"),
        Some(&app.keys.bot),
    )
    .await
}

/// Waits (real time, at most 10 s) until `f` holds.
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Moves the gateway's clock on by `secs` and lets the sweeper act.
async fn tick(app: &TestApp, secs: u64) {
    app.advance(secs);
    tokio::time::sleep(SETTLE).await;
}

/// The next `challenge.failed` of an app challenge (one with a `reason`,
/// at `data.reason`, beside `data.challenge`).
async fn challenge_failed(app: &mut TestApp) -> Value {
    loop {
        let e = app
            .next_event("challenge.failed", Duration::from_secs(10))
            .await
            .expect("challenge.failed");
        let data = event_data(&e);
        if !data["reason"].is_null() {
            assert_eq!(data["challenge"]["attempts_remaining"], 0);
            assert!(data["challenge"].get("reason").is_none(), "{data}");
            return data;
        }
    }
}

/// The requests the provider saw, with their times from the first.
fn timeline(seen: &[Seen]) -> String {
    let t0 = seen.first().map_or(0, |s| s.at_ms);
    seen.iter()
        .map(|s| {
            let mut form: Vec<String> = s
                .form
                .iter()
                .map(|(k, v)| match k.as_str() {
                    "auth_req_id" => format!("{k}=<hidden>"),
                    _ => format!("{k}={v}"),
                })
                .collect();
            form.sort();
            format!(
                "  +{:>6.1}s POST /{} {}",
                (s.at_ms - t0) as f64 / 1000.0,
                s.what,
                form.join("&")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls are never closer than `interval_s` seconds of the gateway's time.
fn assert_spaced(seen: &[Seen], first_at: i64, interval_s: &[i64]) {
    let polls: Vec<i64> = seen
        .iter()
        .filter(|s| s.what == "token")
        .map(|s| s.at_ms)
        .collect();
    let mut last = first_at;
    for (n, at) in polls.iter().enumerate() {
        let want = interval_s.get(n).or(interval_s.last()).copied().unwrap() * 1000;
        assert!(
            at - last >= want,
            "poll {n} came {} ms after the last request, want ≥ {want}",
            at - last
        );
        last = *at;
    }
}

async fn an_approval_authenticates_with_method_app(backend: Backend) {
    let Some((mut app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    let id = interaction(&app, Some("Cust-42")).await;
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    let code = c["binding_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 4);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(c["method"], "app");
    assert_eq!(c["delivery"], Value::Null);
    assert_eq!(
        (c["delivered"].clone(), c["delivery_status"].clone()),
        (json!(true), json!("accepted"))
    );
    // The provider's expires_in (120 s) is sooner than otp.ttl (180 s).
    let expires: chatgate::time::Timestamp =
        serde_json::from_value(c["expires_at"].clone()).unwrap();
    assert_eq!(expires.unix_seconds(), app.now().unix_seconds() + 120);
    let asked = &idp.ciba_seen()[0];
    assert_eq!(asked.what, "bc-authorize");
    assert_eq!(asked.form["scope"], "openid profile email");
    assert_eq!(
        asked.form["login_hint"], "cust-42",
        "the folded customer_ref"
    );
    assert_eq!(asked.form["binding_message"], code);
    assert_eq!(asked.form["requested_expiry"], "180");
    assert!(app
        .chat_messages()
        .await
        .iter()
        .any(|m| m["purpose"] == "app_prompt"
            && m["text"] == format!("Approve the sign-in showing {code} in your app.")));
    let read_now = read(&app, &id, &cid).await;
    assert_eq!(
        (read_now["state"].clone(), read_now["channel"].clone()),
        (json!("open"), Value::Null)
    );
    let v = app
        .get_json(&format!("/v1/interactions/{id}"), Some(&app.keys.bot))
        .await;
    assert_eq!(v["status"], "pending");
    assert_eq!(v["open_challenge"]["method"], "app");
    assert!(
        v["open_challenge"].get("binding_code").is_none(),
        "not for a bot"
    );
    let v = app.get(&id).await;
    assert_eq!(
        v["open_challenge"]["binding_code"],
        code.as_str(),
        "an agent sees it"
    );
    // Not before the interval, the first poll neither.
    tick(&app, 4).await;
    assert_eq!(idp.ciba_polls(), 0);
    tick(&app, 1).await;
    until("the first poll", || async { idp.ciba_polls() == 1 }).await;
    tick(&app, 1).await;
    assert_eq!(idp.ciba_polls(), 1, "no second poll within the interval");
    idp.approval(Approval::Approve);
    tick(&app, 4).await;
    until("authenticated", || async {
        app.get(&id).await["status"] == "authenticated"
    })
    .await;
    let v = app.get(&id).await;
    assert_eq!(v["method"], "app");
    assert_eq!(
        v["customer"],
        json!({"id": "cust-42", "name": "Ada Lovelace", "email": "ada@example.com"})
    );
    assert!(app
        .next_event("interaction.authenticated", Duration::from_secs(5))
        .await
        .is_some());
    until("the authenticated text", || async {
        app.chat_messages()
            .await
            .iter()
            .any(|m| m["purpose"] == "authenticated")
    })
    .await;
    assert_eq!(read(&app, &id, &cid).await["state"], "used");
    let assurance = app
        .get_json(
            &format!("/v1/interactions/{id}/assurance?methods=app"),
            Some(&app.keys.bot),
        )
        .await;
    assert_eq!(assurance["satisfied"], true);
    // Answered: no more polls.
    tick(&app, 10).await;
    let seen = idp.ciba_seen();
    assert_eq!(seen.iter().filter(|s| s.what == "token").count(), 2);
    assert_spaced(&seen, seen[0].at_ms, &[5]);
    eprintln!(
        "the provider saw, for one approval ({backend:?}):\n{}",
        timeline(&seen)
    );
    // A code for it is not how it is answered.
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges/{cid}/verify"),
            Some(&app.keys.bot),
            &json!({"code": code}),
        )
        .await;
    assert_problem(res, 422, "invalid_request").await;
}

/// The provider's times count from its answer: one that took 4 s of the
/// gateway's time is first polled an interval after it answered, and its
/// `expires_in` runs from then.
async fn the_first_poll_waits_an_interval_from_the_provider_s_answer(backend: Backend) {
    let Some((app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    idp.ciba_takes(Duration::from_secs(4));
    let id = interaction(&app, Some("cust-42")).await;
    let asked = app.now();
    let c = started(&app, &id).await;
    let answered = app.now();
    assert_eq!(answered.unix_millis() - asked.unix_millis(), 4000);
    let expires: chatgate::time::Timestamp =
        serde_json::from_value(c["expires_at"].clone()).unwrap();
    assert_eq!(
        expires.unix_seconds(),
        answered.unix_seconds() + 120,
        "the provider's expires_in (120 s) from its answer"
    );
    tick(&app, 4).await;
    assert_eq!(
        idp.ciba_polls(),
        0,
        "an interval from the request is not yet one from the answer"
    );
    tick(&app, 1).await;
    until("the first poll", || async { idp.ciba_polls() == 1 }).await;
    let seen = idp.ciba_seen();
    assert_spaced(&seen, answered.unix_millis(), &[5]);
}

async fn what_is_refused_sends_nothing(backend: Backend) {
    let Some((app, idp)) = spawn_ciba(backend, "[defaults.otp]\nmax_sends = 1").await else {
        return;
    };
    // No customer_ref.
    let anon = interaction(&app, None).await;
    assert_problem(start_app(&app, &anon).await, 422, "invalid_request").await;
    // A provider without the endpoint (discovery is cached: a fresh gateway).
    if let Some((app2, idp2)) = crate::oidc::spawn_idp(backend, "ciba = true", "").await {
        idp2.offer_ciba(false);
        let id2 = interaction(&app2, Some("cust-42")).await;
        assert_problem(start_app(&app2, &id2).await, 422, "invalid_request").await;
        assert!(idp2.ciba_seen().is_empty());
    }
    // A refusal: 502, nothing in the chat, no challenge left open.
    let id = interaction(&app, Some("cust-42")).await;
    idp.refuse_ciba(true);
    assert_problem(start_app(&app, &id).await, 502, "channel_error").await;
    assert_eq!(idp.ciba_seen().len(), 1);
    let prompts = |msgs: Vec<Value>| msgs.iter().filter(|m| m["purpose"] == "app_prompt").count();
    assert_eq!(prompts(app.chat_messages().await), 0);
    assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
    // ... and the one send allowed is still there; then the send limit.
    idp.refuse_ciba(false);
    started(&app, &id).await;
    assert_problem(start_app(&app, &id).await, 429, "rate_limited").await;
    assert_eq!(idp.ciba_seen().len(), 2);
    assert_eq!(prompts(app.chat_messages().await), 1);
}

async fn an_unreachable_provider_is_502_and_counts_nothing(backend: Backend) {
    let section = format!(
        "[oidc]\nissuer = \"http://127.0.0.1:{}\"\nclient_id = \"chatgate\"\nclient_secret = \"s\"\nciba = true\n",
        free_port()
    );
    let setup = Setup {
        team_extra: section,
        defaults: "[defaults.otp]\nmax_sends = 1".into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    // What is refused without the provider comes first: no 502 hides it.
    let anon = interaction(&app, None).await;
    assert_problem(start_app(&app, &anon).await, 422, "invalid_request").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(start_app(&app, &unknown).await.status(), 404);
    let id = interaction(&app, Some("cust-42")).await;
    for _ in 0..2 {
        assert_problem(start_app(&app, &id).await, 502, "channel_error").await;
    }
    // Nothing was counted: an OTP still has the one send.
    app.start_otp(&id).await;
}

async fn a_team_without_ciba_cannot_start_one(backend: Backend) {
    let Some((app, idp)) = crate::oidc::spawn_idp(backend, "", "").await else {
        return;
    };
    let id = interaction(&app, Some("cust-42")).await;
    assert_problem(start_app(&app, &id).await, 422, "invalid_request").await;
    assert!(idp.ciba_seen().is_empty());
}

async fn denial_expiry_and_slow_down(backend: Backend) {
    let Some((mut app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    // slow_down adds 5 s to the interval.
    let id = interaction(&app, Some("cust-42")).await;
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    idp.approval(Approval::SlowDown);
    tick(&app, 5).await;
    until("the first poll", || async { idp.ciba_polls() == 1 }).await;
    tick(&app, 5).await;
    assert_eq!(idp.ciba_polls(), 1, "slowed down to 10 s");
    tick(&app, 5).await;
    until("the second poll", || async { idp.ciba_polls() == 2 }).await;
    let seen = idp.ciba_seen();
    assert_spaced(&seen, seen[0].at_ms, &[5, 10]);
    // Denied.
    idp.approval(Approval::Deny);
    tick(&app, 10).await;
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "denied");
    assert_eq!(e["challenge"]["challenge_id"], cid.as_str());
    assert_eq!(read(&app, &id, &cid).await["state"], "denied");
    assert_eq!(app.get(&id).await["status"], "unauthenticated");
    let subject = app
        .get_json("/v1/subjects/cust-42", Some(&app.keys.agent))
        .await;
    assert_eq!(subject["failures"], 0);
    // The provider's expired_token.
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    idp.approval(Approval::Expired);
    tick(&app, 5).await;
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "expired");
    assert_eq!(read(&app, &id, &cid).await["state"], "expired");
    // The challenge's own expiry: the customer never answers.
    idp.approval(Approval::Pending);
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    let polls = idp.ciba_polls();
    app.advance(121);
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "expired");
    assert_eq!(read(&app, &id, &cid).await["state"], "expired");
    assert_eq!(
        idp.ciba_polls(),
        polls,
        "an expired challenge is not polled"
    );
}

async fn what_the_token_proves_is_checked(backend: Backend) {
    let defaults = "[defaults.lockout]\nthreshold = 2";
    let Some((mut app, idp)) = spawn_ciba(backend, defaults).await else {
        return;
    };
    // An ID token that fails a check: failed, nothing counted.
    let id = interaction(&app, Some("cust-42")).await;
    let c = started(&app, &id).await;
    idp.misbehave(Misbehave::WrongAud);
    idp.approval(Approval::Approve);
    tick(&app, 5).await;
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "invalid_token");
    assert_eq!(
        read(&app, &id, c["challenge_id"].as_str().unwrap()).await["state"],
        "failed"
    );
    let failures = crate::oidc::failures(&app, "cust-42").await;
    assert_eq!(failures, 0);
    // A 200 without an ID token (the request is used up): failed at once.
    idp.misbehave(Misbehave::None);
    idp.approval(Approval::ApproveWithoutIdToken);
    let c = started(&app, &id).await;
    tick(&app, 5).await;
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "invalid_token");
    assert_eq!(
        read(&app, &id, c["challenge_id"].as_str().unwrap()).await["state"],
        "failed"
    );
    assert_eq!(crate::oidc::failures(&app, "cust-42").await, 0);
    let polls = idp.ciba_polls();
    tick(&app, 5).await;
    assert_eq!(idp.ciba_polls(), polls, "not asked again");
    idp.approval(Approval::Approve);
    // Another customer approved: failed, a failure counted.
    idp.misbehave(Misbehave::None);
    idp.sign_in_as("cust-7");
    let c = started(&app, &id).await;
    tick(&app, 5).await;
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "customer_mismatch");
    assert_eq!(
        read(&app, &id, c["challenge_id"].as_str().unwrap()).await["state"],
        "failed"
    );
    assert_eq!(crate::oidc::failures(&app, "cust-42").await, 1);
    // A subject locked by the time the approval comes.
    idp.approval(Approval::Pending);
    let c = started(&app, &id).await;
    let other = interaction(&app, Some("cust-42")).await;
    let (ocid, code) = app.start_otp(&other).await;
    let res = app.verify_code(&other, &ocid, &wrong_code(&code)).await;
    assert_problem(res, 423, "locked").await;
    idp.sign_in_as("cust-42");
    idp.approval(Approval::Approve);
    tick(&app, 5).await;
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "locked");
    assert_eq!(
        read(&app, &id, c["challenge_id"].as_str().unwrap()).await["state"],
        "failed"
    );
    assert_ne!(app.get(&id).await["authenticated"], true);
    // Locked: 423 and nothing sent.
    let asked = idp.ciba_seen().len();
    assert_problem(start_app(&app, &id).await, 423, "locked").await;
    assert_eq!(idp.ciba_seen().len(), asked);
}

async fn a_new_challenge_stops_the_poll(backend: Backend) {
    let Some((app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    // A provider that names no interval is polled every 5 s.
    idp.ciba_timing(None, 120);
    let id = interaction(&app, Some("cust-42")).await;
    started(&app, &id).await;
    tick(&app, 4).await;
    assert_eq!(idp.ciba_polls(), 0);
    tick(&app, 1).await;
    until("the first poll", || async { idp.ciba_polls() == 1 }).await;
    let polled = idp.ciba_polls();
    let id = interaction(&app, Some("cust-42")).await;
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    app.start_otp(&id).await;
    assert_eq!(read(&app, &id, &cid).await["state"], "replaced");
    tick(&app, 5).await;
    tick(&app, 5).await;
    // The first challenge (still pending) goes on; the replaced one is never asked about.
    let asked: Vec<String> = idp
        .ciba_seen()
        .iter()
        .filter(|s| s.what == "token")
        .map(|s| s.form["auth_req_id"].clone())
        .collect();
    assert!(asked.len() > polled);
    assert!(
        asked.iter().all(|a| *a == asked[0]),
        "only the first challenge's request is polled"
    );
}

async fn a_hanging_provider_delays_no_expiry(backend: Backend) {
    let Some((mut app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    let other = interaction(&app, Some("cust-7")).await;
    app.authenticate(&other, "cust-7").await;
    let id = interaction(&app, Some("cust-42")).await;
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    idp.approval(Approval::Hang);
    tick(&app, 5).await;
    until("the poll is held", || async { idp.ciba_hanging() == 1 }).await;
    // The other interaction's authentication ends (the app challenge too):
    // announced while the provider still holds the poll.
    app.advance(30 * 60 + 1);
    let (mut expired, mut failed) = (None, None);
    while expired.is_none() || failed.is_none() {
        let e = tokio::time::timeout(Duration::from_secs(10), app.events.recv())
            .await
            .expect("interaction.expired and challenge.failed")
            .unwrap();
        match e.kind.as_str() {
            "interaction.expired" => expired = Some(event_data(&e)),
            "challenge.failed" => failed = Some(event_data(&e)),
            _ => {}
        }
    }
    assert_eq!(idp.ciba_hanging(), 1, "announced while the poll hangs");
    assert_eq!(expired.unwrap()["interaction"]["id"], other.as_str());
    // The app challenge's own end neither waits for the poll.
    let failed = failed.unwrap();
    assert_eq!(failed["reason"], "expired");
    assert_eq!(failed["challenge"]["challenge_id"], cid.as_str());
}

async fn a_refused_replacement_leaves_the_app_challenge_polled(backend: Backend) {
    let Some((app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    let id = interaction(&app, Some("cust-42")).await;
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    // A second app challenge replaces it while the provider takes its time,
    // and the first one's poll comes due meanwhile; then the provider
    // refuses the second, whose start is taken back.
    idp.refuse_ciba(true);
    idp.ciba_delay(Duration::from_millis(1500));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.advance(5);
    };
    let (res, ()) = tokio::join!(start_app(&app, &id), meanwhile);
    assert_problem(res, 502, "channel_error").await;
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
    // Reopened, it is polled on: the approval authenticates.
    idp.refuse_ciba(false);
    idp.ciba_delay(Duration::ZERO);
    idp.approval(Approval::Approve);
    tick(&app, 5).await;
    until("authenticated", || async {
        app.get(&id).await["status"] == "authenticated"
    })
    .await;
}

/// Replaced while its provider was asked: its start is 410, nothing is
/// prompted or announced as created; the provider took it, though, so it
/// still ends with an event, `replaced`, at its end (decision 0099).
async fn a_challenge_replaced_during_its_start_is_not_prompted_and_ends_replaced(backend: Backend) {
    let Some((mut app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    let id = interaction(&app, Some("cust-42")).await;
    idp.ciba_delay(Duration::from_millis(1000));
    let asked = app.now();
    let otp = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.start_otp(&id).await
    };
    let (res, _) = tokio::join!(start_app(&app, &id), otp);
    assert_problem(res, 410, "challenge_expired").await;
    let msgs = app.chat_messages().await;
    assert!(!msgs.iter().any(|m| m["purpose"] == "app_prompt"));
    while let Some(e) = app
        .next_event("challenge.created", Duration::from_millis(500))
        .await
    {
        assert_eq!(event_data(&e)["challenge"]["method"], "otp");
    }
    assert_eq!(app.get(&id).await["open_challenge"]["method"], "otp");
    let replaced = idp.ciba_seen()[0].clone();
    assert_eq!(replaced.what, "bc-authorize");
    // Its end (otp.ttl, 180 s from its start): challenge.failed, replaced.
    app.advance(179);
    tokio::time::sleep(SETTLE).await;
    app.advance(1);
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "replaced");
    assert_ne!(e["challenge"]["challenge_id"], Value::Null);
    assert!(app.now().unix_seconds() <= asked.unix_seconds() + 180 + 5);
    assert_eq!(idp.ciba_polls(), 0, "never asked about");
}

/// An app challenge started for `id`: its id and its `expires_at`.
async fn started_until(app: &TestApp, id: &str) -> (String, chatgate::time::Timestamp) {
    let c = started(app, id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    (
        cid,
        serde_json::from_value(c["expires_at"].clone()).unwrap(),
    )
}

/// A reload that turns `ciba` off stops the polls: the open app challenge
/// ends at its next turn, `failed` with reason `disabled`, well before
/// its `expires_at` + 5 s.
async fn a_reload_that_turns_ciba_off_ends_the_challenge_disabled(backend: Backend) {
    let Some((mut app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    let id = interaction(&app, Some("cust-42")).await;
    let (cid, expires) = started_until(&app, &id).await;
    let file = app.dir.join("config/teams/acme.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("ciba = true"));
    std::fs::write(&file, text.replace("ciba = true", "ciba = false")).unwrap();
    match app.reloader.reload().await {
        chatgate::app::Reloaded::Applied { .. } => {}
        chatgate::app::Reloaded::Refused(e) => panic!("reload refused: {e}"),
    }
    app.advance(5);
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "disabled");
    assert_eq!(e["challenge"]["challenge_id"], cid.as_str());
    assert!(app.now().unix_millis() <= expires.unix_millis() + 5000);
    assert_eq!(read(&app, &id, &cid).await["state"], "failed");
    assert_eq!(idp.ciba_polls(), 0, "nothing asks the provider any more");
    // The turn that ends the poll commits the event first and deletes the
    // poll's record in a later step, which a busy machine may still be
    // running when the event is read.
    let mut kept = poll_kept(&app, &id, &cid).await;
    for _ in 0..100 {
        if kept == (false, false) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        kept = poll_kept(&app, &id, &cid).await;
    }
    assert_eq!(kept, (false, false));
}

/// A start whose pending approval was lost (its record gone) is not
/// dropped in silence: it waits for its end, then ends `expired`.
async fn a_start_whose_poll_was_lost_still_ends_expired(backend: Backend) {
    use chatgate::store::{keys, Op};
    let Some((mut app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    let id = interaction(&app, Some("cust-42")).await;
    let (cid, expires) = started_until(&app, &id).await;
    let key = keys::app_poll("acme", cid.parse().unwrap());
    let store = &app.gateway.store();
    let version = store.get(std::slice::from_ref(&key)).await.unwrap()[0]
        .as_ref()
        .unwrap()
        .version;
    let lost = Op::Delete {
        key,
        expected: version,
    };
    store.commit(vec![lost]).await.unwrap();
    tick(&app, 5).await;
    assert_eq!(poll_kept(&app, &id, &cid).await, (true, false), "it waits");
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
    app.advance(115);
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "expired");
    assert_eq!(e["challenge"]["challenge_id"], cid.as_str());
    assert!(app.now().unix_millis() <= expires.unix_millis() + 5000);
    assert_eq!(read(&app, &id, &cid).await["state"], "expired");
    assert_eq!(idp.ciba_polls(), 0);
}

/// A poll that takes 8 s of the gateway's time: the request is never
/// asked again while it is under way, and the next poll goes an interval
/// after its answer, not after its ask.
async fn one_request_is_asked_once_at_a_time_an_interval_after_the_answer(backend: Backend) {
    let Some((app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    idp.ciba_poll_takes(Duration::from_secs(8), Duration::from_millis(1500));
    let id = interaction(&app, Some("cust-42")).await;
    started(&app, &id).await;
    app.advance(5);
    until("the first answer", || async {
        idp.ciba_timed().0.len() == 1
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(idp.ciba_polls(), 1, "not asked again while under way");
    // The answer came 8 s after the ask: 4 s on, no interval since it.
    tick(&app, 4).await;
    assert_eq!(idp.ciba_polls(), 1, "an interval after the answer");
    app.advance(1);
    until("the second answer", || async {
        idp.ciba_timed().0.len() == 2
    })
    .await;
    let (timed, most) = idp.ciba_timed();
    assert_eq!(most, 1, "one poll of the request at a time");
    for pair in timed.windows(2) {
        let since_answer = pair[1].0 - pair[0].1;
        assert!(
            since_answer >= 5000,
            "asked {since_answer} ms after the answer: {timed:?}"
        );
    }
}

async fn an_interval_past_the_end_still_ends_it_in_time(backend: Backend) {
    let Some((mut app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    idp.ciba_timing(Some(200), 120);
    let id = interaction(&app, Some("cust-42")).await;
    started(&app, &id).await;
    app.advance(121);
    let e = challenge_failed(&mut app).await;
    assert_eq!(e["reason"], "expired");
    assert_eq!(idp.ciba_polls(), 0);
}

/// Whether `id`'s app challenge `cid` still has its poll entry, and its
/// pending approval's record.
async fn poll_kept(app: &TestApp, id: &str, cid: &str) -> (bool, bool) {
    use chatgate::store::keys;
    let store = &app.gateway.store();
    let member = format!("a:{id}:{cid}");
    let queued = store
        .index_desc(&keys::due_queue("acme"), None, 100)
        .await
        .unwrap()
        .iter()
        .any(|e| e.member == member);
    let key = keys::app_poll("acme", cid.parse().unwrap());
    let record = store.get(&[key]).await.unwrap()[0].is_some();
    (queued, record)
}

async fn an_ended_poll_leaves_nothing_and_an_unreadable_one_is_quarantined(backend: Backend) {
    use chatgate::store::{keys, Op};
    let Some((app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    let id = interaction(&app, Some("cust-42")).await;
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    assert_eq!(poll_kept(&app, &id, &cid).await, (true, true));
    // Denied: the entry and the auth_req_id's record go with it.
    idp.approval(Approval::Deny);
    tick(&app, 5).await;
    until("denied", || async {
        read(&app, &id, &cid).await["state"] == "denied"
    })
    .await;
    until("the poll forgotten", || async {
        poll_kept(&app, &id, &cid).await == (false, false)
    })
    .await;
    // A record this gateway cannot read: the entry is quarantined, not
    // left to come due every lease.
    idp.approval(Approval::Pending);
    let c = started(&app, &id).await;
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    let key = keys::app_poll("acme", cid.parse().unwrap());
    let store = &app.gateway.store();
    let version = store.get(std::slice::from_ref(&key)).await.unwrap()[0]
        .as_ref()
        .unwrap()
        .version;
    let garbage = Op::Put {
        key,
        expected: version,
        version: chatgate::store::fresh_version(),
        value: "{not json".into(),
        ttl: Some(Duration::from_secs(600)),
        companion: None,
    };
    store.commit(vec![garbage]).await.unwrap();
    tick(&app, 5).await;
    until("the entry quarantined", || async {
        !poll_kept(&app, &id, &cid).await.0
    })
    .await;
    assert_eq!(idp.ciba_polls(), 1, "only the denied one was asked");
}

/// An app challenge for a payment (docs/api.md#approving-one-payment):
/// the provider receives RFC 9396 `authorization_details` beside the
/// binding code, the chat the payment's prompt; once approved, the read
/// gives a bot the approval token (an agent only the hash), and
/// `transaction.approved` is emitted.
async fn a_payment_approved_in_the_app_gives_its_token(backend: Backend) {
    let Some((mut app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    let id = interaction(&app, Some("cust-42")).await;
    let payment = json!({"type": "payment", "amount": "120.00", "currency": "EUR",
                         "payee": "ACME Energy Ltd", "reference": "INV-2026-42"});
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "app", "transaction": payment}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    let hash = "nuFyQ-RzngfkNdszl709njVC7fqt9s4kqNkF64DtFtE";
    assert_eq!(
        (c["transaction"].clone(), c["transaction_hash"].clone()),
        (payment.clone(), json!(hash))
    );
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    let code = c["binding_code"].as_str().unwrap().to_string();
    let asked = &idp.ciba_seen()[0];
    assert_eq!(asked.form["binding_message"], code);
    let details: Value = serde_json::from_str(&asked.form["authorization_details"]).unwrap();
    assert_eq!(
        details,
        json!([{"type": "payment_initiation",
                "instructedAmount": {"amount": "120.00", "currency": "EUR"},
                "creditorName": "ACME Energy Ltd",
                "remittanceInformationUnstructured": "INV-2026-42"}])
    );
    eprintln!(
        "authorization_details the provider received: {}",
        asked.form["authorization_details"]
    );
    assert!(app.chat_messages().await.iter().any(|m| m["purpose"] == "app_prompt"
        && m["text"] == format!("Approve the payment of 120.00 EUR to ACME Energy Ltd showing {code} in your app.")));
    assert!(
        read(&app, &id, &cid).await.get("approval").is_none(),
        "not yet approved"
    );
    idp.approval(Approval::Approve);
    tick(&app, 5).await;
    until("authenticated", || async {
        app.get(&id).await["status"] == "authenticated"
    })
    .await;
    let approved = read(&app, &id, &cid).await;
    assert_eq!(approved["approval"]["transaction_hash"], hash);
    let token = approved["approval"]["token"].as_str().unwrap().to_string();
    assert_eq!(
        read(&app, &id, &cid).await["approval"]["token"],
        token.as_str(),
        "one approval, one token"
    );
    let claims = crate::payments::checked(&app, &token).await.1;
    assert_eq!(claims["amr"], json!(["app"]));
    assert!(claims.get("via").is_none(), "{claims}");
    assert_eq!(
        (claims["txn"].clone(), claims["sub"].clone()),
        (json!(hash), json!("cust-42"))
    );
    let for_agent = app
        .get_json(
            &format!("/v1/interactions/{id}/challenges/{cid}"),
            Some(&app.keys.agent),
        )
        .await;
    assert_eq!(for_agent["approval"], json!({"transaction_hash": hash}));
    let e = app
        .next_event("transaction.approved", Duration::from_secs(5))
        .await
        .expect("transaction.approved");
    let data = event_data(&e);
    assert_eq!(
        (
            data["transaction"].clone(),
            data["transaction_hash"].clone()
        ),
        (payment, json!(hash))
    );
    assert!(!e.data.get().contains(token.rsplit('.').next().unwrap()));
    let a = app
        .get_json(
            &format!("/v1/interactions/{id}/assurance?methods=app&transaction={hash}"),
            Some(&app.keys.bot),
        )
        .await;
    assert_eq!(a["satisfied"], true, "{a}");
    // A second app challenge for the same payment approved nothing yet:
    // reading it gives no approval (no second token for one approval),
    // and once it is replaced, none either.
    let again = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "app", "transaction": data["transaction"].clone()}),
        )
        .await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["transaction_hash"], hash);
    let second = again["challenge_id"].as_str().unwrap().to_string();
    let open = read(&app, &id, &second).await;
    assert_eq!(open["state"], "open", "{open}");
    assert!(open.get("approval").is_none(), "{open}");
    assert_eq!(start_app(&app, &id).await.status(), 201);
    let replaced = read(&app, &id, &second).await;
    assert_eq!(replaced["state"], "replaced", "{replaced}");
    assert!(replaced.get("approval").is_none(), "{replaced}");
    assert_eq!(
        read(&app, &id, &cid).await["approval"]["token"],
        token.as_str(),
        "the approval answered keeps its one token"
    );
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() { super::$name(Backend::Memory).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() { super::$name(Backend::Redis).await }
        })*
    };
}

on_both_stores!(
    an_approval_authenticates_with_method_app,
    the_first_poll_waits_an_interval_from_the_provider_s_answer,
    what_is_refused_sends_nothing,
    a_team_without_ciba_cannot_start_one,
    an_unreachable_provider_is_502_and_counts_nothing,
    denial_expiry_and_slow_down,
    what_the_token_proves_is_checked,
    a_new_challenge_stops_the_poll,
    a_hanging_provider_delays_no_expiry,
    a_refused_replacement_leaves_the_app_challenge_polled,
    a_challenge_replaced_during_its_start_is_not_prompted_and_ends_replaced,
    a_reload_that_turns_ciba_off_ends_the_challenge_disabled,
    a_start_whose_poll_was_lost_still_ends_expired,
    one_request_is_asked_once_at_a_time_an_interval_after_the_answer,
    a_hung_provider_of_one_team_delays_no_other_team,
    a_provider_back_from_a_hang_is_not_flooded,
    an_interval_past_the_end_still_ends_it_in_time,
    an_ended_poll_leaves_nothing_and_an_unreadable_one_is_quarantined,
    a_payment_approved_in_the_app_gives_its_token,
);

/// A second instance on the same Redis, on the same provider, its clock
/// set to the first's.
async fn sibling(a: &TestApp, idp: &FakeIdp) -> TestApp {
    let b = spawn_with(
        Backend::Redis,
        Setup {
            team_extra: idp.team_section("ciba = true"),
            ..a.same_store()
        },
    )
    .await
    .unwrap();
    b.clock.set(a.now());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_poll_one_stream() {
    let Some((a, idp)) = spawn_ciba(Backend::Redis, "").await else {
        return;
    };
    let b = sibling(&a, &idp).await;
    let id = interaction(&a, Some("cust-42")).await;
    started(&a, &id).await;
    for n in 1..=4 {
        a.advance(5);
        b.advance(5);
        tokio::time::sleep(SETTLE).await;
        assert_eq!(
            idp.ciba_polls(),
            n,
            "one poll per interval, whichever instance"
        );
    }
    idp.approval(Approval::Approve);
    a.advance(5);
    b.advance(5);
    until("authenticated", || async {
        b.get(&id).await["status"] == "authenticated"
    })
    .await;
    assert_eq!(idp.ciba_polls(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_polls_on() {
    let Some((a, idp)) = spawn_ciba(Backend::Redis, "").await else {
        return;
    };
    let id = interaction(&a, Some("cust-42")).await;
    started(&a, &id).await;
    tick(&a, 5).await;
    until("the first poll", || async { idp.ciba_polls() == 1 }).await;
    let now = a.now();
    let setup = Setup {
        team_extra: idp.team_section("ciba = true"),
        ..a.same_store()
    };
    a.stop_keeping_keys().await;
    let b = spawn_with(Backend::Redis, setup).await.unwrap();
    b.clock.set(now);
    idp.use_clock(b.clock.clone());
    idp.approval(Approval::Approve);
    tick(&b, 5).await;
    until("authenticated after the restart", || async {
        b.get(&id).await["status"] == "authenticated"
    })
    .await;
    assert_eq!(b.get(&id).await["method"], "app");
}

/// Starts an app challenge of team globex (its bot), for `customer_ref`.
async fn globex_app_challenge(app: &TestApp, customer_ref: &str) {
    let body = json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                      "customer_ref": customer_ref});
    let bot = Some(app.keys.globex_bot.as_str());
    let v: Value = app
        .post_json("/v1/interactions", bot, &body)
        .await
        .json()
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap();
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            bot,
            &json!({"method": "app"}),
        )
        .await;
    assert_eq!(res.status(), 201);
}

/// Real time until `f` holds (at most 10 s).
async fn time_until<F, Fut>(what: &str, f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let from = tokio::time::Instant::now();
    until(what, f).await;
    from.elapsed()
}

/// How much `kind` of background work waits, as /metrics says.
async fn background_queue(app: &TestApp, kind: &str) -> f64 {
    let text = app
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("chatgate_background_queue{{kind=\"{kind}\"}} ");
    let line = text.lines().find_map(|l| l.strip_prefix(series.as_str()));
    line.expect("the series").trim().parse().unwrap()
}

/// Team globex's provider hangs on every poll of its 60 app challenges;
/// team acme's app poll and ladder time-out still go within a second of
/// falling due (the sweeper's half second included), each in its team's
/// own lane (decision 0098).
async fn a_hung_provider_of_one_team_delays_no_other_team(backend: Backend) {
    let (hung, fine) = (FakeIdp::start().await, FakeIdp::start().await);
    let mut setup = crate::ladder::ladder(&["wa", "sms"], "advance_after = \"20s\"");
    setup.team_extra += &fine.team_section("ciba = true");
    setup.globex_extra = hung.team_section("ciba = true");
    let Some(mut app) = spawn_with(backend, setup).await else {
        return;
    };
    fine.use_clock(app.clock.clone());
    hung.use_clock(app.clock.clone());
    for n in 0..60 {
        globex_app_challenge(&app, &format!("g-{n}")).await;
    }
    hung.approval(Approval::Hang);
    app.advance(5);
    until("globex's polls hang", || async { hung.ciba_hanging() >= 8 }).await;
    until("globex's polls wait", || async {
        background_queue(&app, "app_poll").await >= 1.0
    })
    .await;
    // Acme starts an app challenge and a ladder while globex's hang.
    let id = interaction(&app, Some("cust-42")).await;
    started(&app, &id).await;
    let lid = crate::ladder::with_phone(&app, crate::ladder::PHONE).await;
    assert_eq!(crate::ladder::start_ladder(&app, &lid).await.status(), 201);
    app.advance(5);
    let poll = time_until("acme's poll", || async { fine.ciba_polls() == 1 }).await;
    app.advance(15);
    let from = tokio::time::Instant::now();
    let moved = app
        .next_event("challenge.advanced", Duration::from_secs(10))
        .await;
    let time_out = from.elapsed();
    assert!(moved.is_some(), "acme's ladder moved on");
    eprintln!("behind a hung team ({backend:?}): acme's poll after {poll:?}, its time-out after {time_out:?}");
    let bound = Duration::from_millis(1500);
    assert!(poll <= bound, "acme's poll waited {poll:?} behind globex's");
    assert!(
        time_out <= bound,
        "acme's time-out waited {time_out:?} behind globex's"
    );
}

/// A provider that hung while 100 app challenges of the team were due:
/// when it answers again, the asks that waited for it come at most a
/// lane's worth at a time (8 under way, 16 waiting), not all at once.
async fn a_provider_back_from_a_hang_is_not_flooded(backend: Backend) {
    let Some((app, idp)) = spawn_ciba(backend, "").await else {
        return;
    };
    for n in 0..100 {
        let id = interaction(&app, Some(&format!("cust-{n}"))).await;
        started(&app, &id).await;
    }
    idp.approval(Approval::Hang);
    app.advance(5);
    until("polls hang", || async { idp.ciba_hanging() >= 8 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    idp.approval(Approval::Pending);
    let before = idp.ciba_polls();
    // The hung polls give up after 5 s; what waited goes then.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = idp.ciba_polls() - before;
    assert!(
        after <= 24,
        "{after} polls fired when the provider came back"
    );
}
