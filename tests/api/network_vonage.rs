//! Silent network authentication with `provider = "vonage"`
//! (docs/network-authentication.md#providers), against the strict fake of
//! Vonage Verify v2 in `network_vonage_fake.rs`: the button starts one
//! `silent_auth` verification per challenge and sends the phone to its
//! `check_url`; the landing's post is checked with Vonage; each answer is
//! mapped onto the same results, pages, reads and ladder moves as
//! CAMARA's; another browser's request, a tampered fragment and bad
//! bodies change nothing; Vonage failing is the retry page with the
//! challenge open; the operator API seals the application's key.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::network::{
    code_on, confirm_page, failures, interaction, metric, press, read, start, type_code, Page,
    PHONE,
};
use crate::network_vonage_fake::{FakeVonage, Misbehave};

async fn spawn_vonage(backend: Backend, extra: &str) -> Option<(TestApp, FakeVonage)> {
    let vonage = FakeVonage::start().await;
    let setup = Setup {
        team_extra: vonage.team_section(extra),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    Some((app, vonage))
}

/// A browser pressed the link's button: the answer's status, where it
/// was sent and its state cookie (`name=value`).
struct Pressed {
    status: u16,
    location: String,
    cookie: String,
    body: String,
}

/// A fresh browser opens `link` and presses its button.
async fn press_link(app: &TestApp, link: &str) -> Pressed {
    let page = confirm_page(app, link).await;
    let form = format!("form_token={}", page.form_token);
    let res = press(app, link, Some(&page.browser), &form).await;
    let status = res.status().as_u16();
    let h = res.headers().clone();
    let header = |name: &str| {
        h.get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (location, set_cookie) = (header("location"), header("set-cookie"));
    if status == 302 {
        // One cookie of a fixed name carries the landing's state.
        assert!(set_cookie.starts_with("chatgate_landing="), "{set_cookie}");
        for attribute in ["Path=/n/", "HttpOnly", "SameSite=Lax"] {
            assert!(set_cookie.contains(attribute), "{set_cookie}");
        }
        assert_eq!(h.get_all("set-cookie").iter().count(), 1);
    }
    Pressed {
        status,
        location,
        cookie: set_cookie.split(';').next().unwrap_or_default().to_string(),
        body: res.text().await.unwrap(),
    }
}

/// What the landing page posts, with `cookie`.
async fn land(app: &TestApp, cookie: Option<&str>, body: &Value) -> Page {
    let mut req = app
        .request(Method::POST, "/n/landing", None)
        .header("accept", "text/html")
        .json(body);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    let body = res.text().await.unwrap();
    assert!(body.starts_with("<!doctype html>"), "{body}");
    Page {
        status,
        body,
        set_cookie,
    }
}

/// The request id and code of the verification the fake started last.
fn last_started(vonage: &FakeVonage) -> (String, String) {
    let (id, s) = vonage.started().pop().expect("a verification started");
    (id, s.code)
}

/// The whole round trip: the button starts one `silent_auth` step to the
/// number (every member as Vonage takes it, the JWT the application's),
/// the browser goes to its `check_url` with a state cookie, the landing's
/// code is checked with Vonage and proves the phone; in a web chat the
/// page's code, typed into the chat, authenticates by method `network`.
async fn a_vonage_landing_checks_the_code_and_proves_the_phone(backend: Backend) {
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let page = confirm_page(&app, &link).await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.ends_with(&format!("form-action 'self' https: {}", vonage.base)),
        "{csp}"
    );
    let pressed = press_link(&app, &link).await;
    assert_eq!(pressed.status, 302, "{}", pressed.body);
    let started = vonage.started();
    assert_eq!(started.len(), 1);
    let (rid, s) = &started[0];
    assert_eq!(
        pressed.location,
        format!("{}/v2/verify/{rid}/silent-auth/redirect", vonage.base)
    );
    assert_eq!(s.to, PHONE.trim_start_matches('+'));
    assert_eq!(s.redirect_url, "http://gateway.test/n/landing");
    assert_eq!(s.channel_timeout, 300, "the link's remaining life");
    assert_eq!(
        read(&app, &id, &cid).await["network"]["result"],
        Value::Null
    );

    let body = json!({"request_id": rid, "code": s.code});
    let done = land(&app, Some(&pressed.cookie), &body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Type <strong>"), "{}", done.body);
    assert!(done.set_cookie.clone().unwrap().contains("Max-Age=0"));
    let c = read(&app, &id, &cid).await;
    assert_eq!(
        (
            c["network"]["result"].as_str(),
            c["network"]["awaiting_code"].as_bool()
        ),
        (Some("verified"), Some(true))
    );
    assert!(metric(&app, "verified").await >= 1.0);
    // The answer is used up: its replay is 400 and asks Vonage nothing.
    let replay = land(&app, Some(&pressed.cookie), &body).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert_eq!(vonage.checks(), 1);
    type_code(&app, &id, &cid, &done).await;
    assert_eq!(vonage.refused(), Vec::<String>::new());
}

/// A landing whose request is not its browser's (no cookie for it, or
/// another browser's state under its cookie's name) is 400 and changes
/// nothing: Vonage is not asked and the owner's landing still answers.
/// A tampered code never authenticates: Vonage says it is wrong.
async fn a_foreign_or_tampered_landing_never_authenticates(backend: Backend) {
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let mine = press_link(&app, &link).await;
    let (rid, code) = last_started(&vonage);
    let other_id = interaction(&app).await;
    let (_, other_link) = start(&app, &other_id).await;
    let theirs = press_link(&app, &other_link).await;
    let body = json!({"request_id": rid, "code": code});
    // The state of another request under the cookie's one name, and a
    // cookie named as the first version named them.
    let old_name = format!(
        "chatgate_oidc_0123456789abcdef={}",
        mine.cookie.split_once('=').unwrap().1
    );
    for cookie in [None, Some(theirs.cookie.as_str()), Some(old_name.as_str())] {
        let refused = land(&app, cookie, &body).await;
        assert_eq!(refused.status, 400, "{cookie:?}: {}", refused.body);
        assert!(refused.set_cookie.is_none());
    }
    assert_eq!(vonage.checks(), 0, "Vonage was not asked");
    assert_eq!(
        read(&app, &id, &cid).await["network"]["result"],
        Value::Null
    );
    // A code not Vonage's: one wrong try, never an authentication.
    let tampered = json!({"request_id": rid, "code": format!("{code}0")});
    let page = land(&app, Some(&mine.cookie), &tampered).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("mobile network"), "{}", page.body);
    let c = read(&app, &id, &cid).await;
    assert_eq!(
        (c["state"].as_str(), c["network"]["result"].as_str()),
        (Some("open"), Some("mismatch"))
    );
    assert_ne!(app.get(&id).await["status"], "authenticated");
    assert_eq!(failures(&app).await, 0, "a mismatch counts nothing");
    assert_eq!(vonage.refused(), Vec::<String>::new());
}

/// One verification runs for a challenge: a second press (this browser's
/// or another's) while it runs goes to the same `check_url`; once it has
/// answered, the next press starts a new one; two presses at once start
/// one.
async fn one_verification_runs_for_a_challenge(backend: Backend) {
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let first = press_link(&app, &link).await;
    let again = press_link(&app, &link).await;
    assert_eq!((first.status, again.status), (302, 302));
    assert_eq!(again.location, first.location);
    assert_eq!(vonage.started().len(), 1, "no second verification");
    let (rid, code) = last_started(&vonage);
    // The second browser lands first, Vonage failing its code check:
    // an error, open.
    vonage.misbehave(Misbehave::CheckFails(500));
    let body = json!({"request_id": rid, "code": code});
    let page = land(&app, Some(&again.cookie), &body).await;
    assert_eq!(page.status, 502);
    assert!(page.body.contains("mobile network"), "{}", page.body);
    let c = read(&app, &id, &cid).await;
    assert_eq!(
        (c["state"].as_str(), c["network"]["result"].as_str()),
        (Some("open"), Some("error"))
    );
    vonage.misbehave(Misbehave::None);
    // It answered: every press that joined it is used up.
    assert_eq!(land(&app, Some(&first.cookie), &body).await.status, 400);
    let next = press_link(&app, &link).await;
    assert_eq!(next.status, 302);
    assert_ne!(next.location, first.location);
    assert_eq!(vonage.started().len(), 2, "a new one after the answer");

    // Two presses at once, Vonage slow to start: one verification.
    vonage.misbehave(Misbehave::StartSlow);
    let id2 = interaction(&app).await;
    let (_, link2) = start(&app, &id2).await;
    let (a, b) = tokio::join!(press_link(&app, &link2), press_link(&app, &link2));
    assert_eq!((a.status, b.status), (302, 302), "{} {}", a.body, b.body);
    assert_eq!(a.location, b.location);
    assert_eq!(vonage.started().len(), 3);
    assert_eq!(vonage.refused(), Vec::<String>::new());
}

/// Each of Vonage's answers is mapped: a wrong code (400) or a wrong
/// request (404) is one wrong try (`mismatch`, the retry page, open while
/// tries are left, the subject's lockout counting nothing); anything else
/// is an error (502, open). A landing without a
/// code, whatever it says ("does not match" included), is a phone off
/// the mobile network (open, 200): only Vonage's answer ends a check.
async fn each_vonage_answer_is_mapped(backend: Backend) {
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let wrong = || None;
    let cases: [(Misbehave, Option<&str>, u16, &str, &str); 8] = [
        (Misbehave::None, wrong(), 200, "mismatch", "open"),
        (Misbehave::CheckFails(404), None, 200, "mismatch", "open"),
        (
            Misbehave::None,
            Some("Phone number does not match"),
            200,
            "not_on_mobile_network",
            "open",
        ),
        (
            Misbehave::None,
            Some("Not on a cellular connection"),
            200,
            "not_on_mobile_network",
            "open",
        ),
        (
            Misbehave::None,
            Some("Unsupported Mobile Network Operator"),
            200,
            "not_on_mobile_network",
            "open",
        ),
        (
            Misbehave::None,
            Some("Internal error"),
            200,
            "not_on_mobile_network",
            "open",
        ),
        (Misbehave::CheckFails(500), None, 502, "error", "open"),
        (Misbehave::CheckGarbage, None, 502, "error", "open"),
    ];
    for (i, (misbehave, said, status, result, state)) in cases.into_iter().enumerate() {
        // Past `otp.send_window`: each case's link is a send of its own.
        app.advance(601);
        vonage.misbehave(Misbehave::None);
        let id = interaction(&app).await;
        let (cid, link) = start(&app, &id).await;
        let pressed = press_link(&app, &link).await;
        assert_eq!(pressed.status, 302, "{i}");
        let (rid, code) = last_started(&vonage);
        vonage.misbehave(misbehave);
        let body = match said {
            Some(said) => json!({"request_id": rid, "error_description": said}),
            // The first case's code is not Vonage's.
            None if i == 0 => json!({"request_id": rid, "code": "000000"}),
            None => json!({"request_id": rid, "code": code}),
        };
        let page = land(&app, Some(&pressed.cookie), &body).await;
        assert_eq!(page.status, status, "{i}: {}", page.body);
        let c = read(&app, &id, &cid).await;
        assert_eq!(
            (c["network"]["result"].as_str(), c["state"].as_str()),
            (Some(result), Some(state)),
            "{i}: {c}"
        );
        assert_ne!(app.get(&id).await["status"], "authenticated", "{i}");
    }
    assert_eq!(failures(&app).await, 0);
    assert!(metric(&app, "mismatch").await >= 2.0);
    assert!(metric(&app, "error").await >= 2.0);
    assert_eq!(vonage.refused(), Vec::<String>::new());
}

/// Vonage failing to start (5xx, 409, garbage, no answer within 5 s) is
/// the retry page (502), the read's result `error`, the challenge open;
/// the claim is given back, so the next press starts one.
async fn a_failing_vonage_start_is_the_retry_page(backend: Backend) {
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    for misbehave in [
        Misbehave::StartFails(500),
        Misbehave::StartFails(409),
        Misbehave::StartGarbage,
        Misbehave::StartHangs,
    ] {
        vonage.misbehave(misbehave);
        let pressed = press_link(&app, &link).await;
        assert_eq!(pressed.status, 502, "{misbehave:?}: {}", pressed.body);
        assert!(pressed.body.contains("Wi-Fi"), "{}", pressed.body);
        assert!(pressed.cookie.is_empty(), "{misbehave:?}: no state");
        let c = read(&app, &id, &cid).await;
        assert_eq!(
            (c["state"].as_str(), c["network"]["result"].as_str()),
            (Some("open"), Some("error")),
            "{misbehave:?}"
        );
    }
    vonage.misbehave(Misbehave::None);
    let pressed = press_link(&app, &link).await;
    assert_eq!(pressed.status, 302, "{}", pressed.body);
    assert_eq!(vonage.refused(), Vec::<String>::new());
}

/// The landing page is the gateway's own, its script allowed by its hash;
/// a body that is not one landing (not JSON, malformed, a member it does
/// not define, a code and an error, over the limit) is refused and
/// changes nothing: the right landing answers afterwards.
async fn bad_landings_change_nothing(backend: Backend) {
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let res = app
        .request(Method::GET, "/n/landing", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'sha256-") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.text().await.unwrap().contains("<script>"));

    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let pressed = press_link(&app, &link).await;
    let (rid, code) = last_started(&vonage);
    let post = |content_type: &'static str, body: String| {
        app.request(Method::POST, "/n/landing", None)
            .header("accept", "text/html")
            .header("content-type", content_type)
            .header("cookie", pressed.cookie.clone())
            .body(body)
    };
    let json = "application/json";
    let cases = [
        (
            "text/plain",
            json!({"request_id": rid, "code": code}).to_string(),
            415,
        ),
        (json, "{\"request_id\":".to_string(), 400),
        (
            json,
            json!({"request_id": rid, "code": code, "extra": 1}).to_string(),
            422,
        ),
        (
            json,
            json!({"request_id": rid, "code": code, "error_description": "x"}).to_string(),
            400,
        ),
        (json, json!({"code": code}).to_string(), 400),
        (
            json,
            format!("{{\"request_id\":\"{rid}\",\"code\":\"{code}\",\"code\":\"x\"}}"),
            400,
        ),
    ];
    for (content_type, body, status) in cases {
        let res = post(content_type, body.clone()).send().await.unwrap();
        assert_eq!(res.status(), status, "{body}");
        assert!(res.text().await.unwrap().starts_with("<!doctype html>"));
    }
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let huge = json!({"request_id": rid, "code": "c".repeat(70 * 1024)}).to_string();
    let res = fresh
        .post(app.url("/n/landing"))
        .header("content-type", json)
        .header("cookie", pressed.cookie.clone())
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(vonage.checks(), 0);
    assert_eq!(
        read(&app, &id, &cid).await["network"]["result"],
        Value::Null
    );
    let page = land(
        &app,
        Some(&pressed.cookie),
        &json!({"request_id": rid, "code": code}),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(code_on(&page).len() == 6);
}

/// A ladder that begins with the network step moves on to its code when
/// Vonage cannot confirm: a failing start (`failed`) at once; a landing
/// without a code, which only a browser says, at its `advance_after`
/// (`timeout`), never sooner.
async fn a_ladder_moves_on_when_vonage_cannot_confirm(backend: Backend) {
    let vonage = FakeVonage::start().await;
    let mut setup = crate::ladder::ladder(&["network", "sms"], "advance_after = \"20s\"");
    setup.team_extra += &vonage.team_section("");
    let Some(mut app) = spawn_with(backend, setup).await else {
        return;
    };
    for reason in ["failed", "timeout"] {
        let id = interaction(&app).await;
        let before = crate::ladder::sent(&app).await.len();
        let res = crate::ladder::start_ladder(&app, &id).await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["channel"], "network");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let link = crate::network::last_link(&app).await;
        if reason == "failed" {
            vonage.misbehave(Misbehave::StartFails(503));
            assert_eq!(press_link(&app, &link).await.status, 502);
        } else {
            vonage.misbehave(Misbehave::None);
            let pressed = press_link(&app, &link).await;
            let (rid, _) = last_started(&vonage);
            let off = json!({"request_id": rid, "error_description": "no cellular data"});
            assert_eq!(land(&app, Some(&pressed.cookie), &off).await.status, 200);
            let moved = app
                .next_event("challenge.advanced", Duration::from_millis(1500))
                .await;
            assert!(moved.is_none(), "{moved:?}");
            assert_eq!(crate::ladder::sent(&app).await.len(), before);
            app.advance(21);
        }
        let e = app
            .next_event("challenge.advanced", Duration::from_secs(5))
            .await
            .expect("challenge.advanced");
        let data = event_data(&e);
        assert_eq!(
            (data["previous_channel"].as_str(), data["reason"].as_str()),
            (Some("network"), Some(reason))
        );
        let sent = crate::ladder::sent(&app).await;
        assert_eq!(sent.len(), before + 1, "{reason}: the code on the SMS step");
        assert_eq!(read(&app, &id, &cid).await["channel"], "sms");
        assert_eq!(
            app.verify_code(&id, &cid, &sent.last().unwrap().1)
                .await
                .status(),
            200
        );
    }
    assert_eq!(failures(&app).await, 0);
    assert_eq!(vonage.refused(), Vec::<String>::new());
}

/// A stranger holding the link presses its button (joining the
/// customer's running verification) and lands without a code, saying
/// "does not match": the retry page, the challenge open, nothing
/// counted, Vonage not asked; only the stranger's own state is used up,
/// and the customer's landing with Vonage's code still proves the phone.
async fn a_landing_without_a_code_ends_nothing(backend: Backend) {
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let customer = press_link(&app, &link).await;
    let stranger = press_link(&app, &link).await;
    assert_eq!(stranger.location, customer.location, "one verification");
    let (rid, code) = last_started(&vonage);
    let said = json!({"request_id": rid, "error_description": "does not match"});
    let page = land(&app, Some(&stranger.cookie), &said).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("mobile network"), "{}", page.body);
    let c = read(&app, &id, &cid).await;
    assert_eq!(c["state"], "open", "{c}");
    assert_eq!(c["network"]["result"], "not_on_mobile_network", "{c}");
    assert_eq!(failures(&app).await, 0);
    assert_eq!(vonage.checks(), 0, "Vonage was not asked");
    // The stranger's state is used up; the customer's is not.
    assert_eq!(land(&app, Some(&stranger.cookie), &said).await.status, 400);
    let body = json!({"request_id": rid, "code": code});
    let done = land(&app, Some(&customer.cookie), &body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let c = read(&app, &id, &cid).await;
    assert_eq!(c["network"]["result"], "verified", "{c}");
    type_code(&app, &id, &cid, &done).await;
    assert_eq!(vonage.refused(), Vec::<String>::new());
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

/// A made-up code posted with the landing's cookie is one wrong try
/// (docs/network-authentication.md#the-vonage-landing): the retry page
/// and the challenge open while tries are left, the last one ends it
/// (`number_mismatch`, the mismatch page); the subject's lockout counts
/// nothing, and each try is a `mismatch` in the metric.
async fn a_made_up_code_is_one_wrong_try_until_the_tries_are_spent(backend: Backend) {
    let Some((mut app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let before = metric(&app, "mismatch").await;
    // Settings' default `otp.max_attempts`.
    let tries = 3;
    for tried in 1..=tries {
        let pressed = press_link(&app, &link).await;
        assert_eq!(pressed.status, 302, "{tried}: {}", pressed.body);
        let (rid, code) = last_started(&vonage);
        let made_up = json!({"request_id": rid, "code": format!("{code}9")});
        let page = land(&app, Some(&pressed.cookie), &made_up).await;
        assert_eq!(page.status, 200, "{tried}: {}", page.body);
        let c = read(&app, &id, &cid).await;
        assert_eq!(c["network"]["result"], "mismatch", "{tried}: {c}");
        if tried < tries {
            assert!(page.body.contains("mobile network"), "{}", page.body);
            assert_eq!(c["state"], "open", "{tried}: {c}");
        } else {
            assert!(page.body.contains("could not confirm"), "{}", page.body);
            assert_eq!(c["state"], "failed", "{tried}: {c}");
        }
    }
    let failed = app
        .next_event("challenge.failed", Duration::from_secs(5))
        .await
        .expect("challenge.failed once the tries are spent");
    assert_eq!(event_data(&failed)["reason"], "number_mismatch");
    assert_eq!(failures(&app).await, 0, "the subject counts nothing");
    assert_ne!(app.get(&id).await["status"], "authenticated");
    assert!(metric(&app, "mismatch").await - before >= f64::from(tries));
    // Its link is spent: the link answers its 410 page.
    let res = app.request(Method::GET, &link, None).send().await.unwrap();
    assert_eq!(res.status(), 410);
    assert_eq!(vonage.refused(), Vec::<String>::new());
}

/// `chatgate_network_verifications_total` counts every answer of
/// Vonage's by its result: a code Vonage confirms (`verified`), one it
/// refuses (`mismatch`), a landing without a code
/// (`not_on_mobile_network`) and Vonage failing (`error`).
async fn every_vonage_answer_is_counted_by_its_result(backend: Backend) {
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    for result in ["verified", "mismatch", "not_on_mobile_network", "error"] {
        app.advance(601);
        vonage.misbehave(Misbehave::None);
        let id = interaction(&app).await;
        let (cid, link) = start(&app, &id).await;
        let pressed = press_link(&app, &link).await;
        assert_eq!(pressed.status, 302, "{result}");
        let (rid, code) = last_started(&vonage);
        let body = match result {
            "mismatch" => json!({"request_id": rid, "code": format!("{code}9")}),
            "not_on_mobile_network" => {
                json!({"request_id": rid, "error_description": "Not on a cellular connection"})
            }
            _ => json!({"request_id": rid, "code": code}),
        };
        if result == "error" {
            vonage.misbehave(Misbehave::CheckFails(500));
        }
        let before = metric(&app, result).await;
        land(&app, Some(&pressed.cookie), &body).await;
        assert_eq!(read(&app, &id, &cid).await["network"]["result"], result);
        let after = metric(&app, result).await;
        assert!(after - before >= 1.0, "{result}: {before} then {after}");
    }
}

on_both_stores!(
    a_made_up_code_is_one_wrong_try_until_the_tries_are_spent,
    every_vonage_answer_is_counted_by_its_result,
    a_vonage_landing_checks_the_code_and_proves_the_phone,
    a_foreign_or_tampered_landing_never_authenticates,
    one_verification_runs_for_a_challenge,
    each_vonage_answer_is_mapped,
    a_failing_vonage_start_is_the_retry_page,
    bad_landings_change_nothing,
    a_ladder_moves_on_when_vonage_cannot_confirm,
    a_landing_without_a_code_ends_nothing,
);

const KEY: &str = include_str!("oidc_keys/a.pem");

/// A team written through the operator API with `provider = "vonage"` is
/// read by the loader a file's team is: its private key is sealed and
/// reads back as `{"hmac"}`; a CAMARA key beside it, or `hash_number`, is
/// 422 at its pointer and nothing is stored.
async fn a_vonage_team_through_the_operator_api(app: TestApp) {
    use crate::operator_writes::{put, team};
    let mut body = team("newco", &chatgate::domain::secrets::generate_whsec());
    body["number_verification"] = json!({"provider": "vonage", "application_id": "app-1",
        "brand": "Newco", "private_key": KEY});
    for (extra, pointer) in [
        (
            ("client_id", json!("bank")),
            "/number_verification/client_id",
        ),
        (
            ("hash_number", json!(true)),
            "/number_verification/hash_number",
        ),
    ] {
        let mut wrong = body.clone();
        wrong["number_verification"][extra.0] = extra.1;
        let res = put(&app, "newco", &wrong, &[("If-None-Match", "*")]).await;
        let problem = assert_problem(res, 422, "invalid_config").await;
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
        assert!(!problem.to_string().contains("PRIVATE KEY"));
    }
    let res = put(&app, "newco", &body, &[("If-None-Match", "*")]).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let read = app
        .request(
            Method::GET,
            "/v1/teams/newco",
            Some(crate::operator_writes::OPS),
        )
        .send()
        .await
        .unwrap();
    let text = read.text().await.unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let hmac = v["number_verification"]["private_key"]["hmac"]
        .as_str()
        .unwrap();
    assert_eq!(hmac.len(), 64);
    assert_eq!(v["number_verification"]["brand"], "Newco");
}

both_stores!(
    a_vonage_team_through_the_operator_api_keeps_its_key_sealed,
    setup: crate::operator_writes::with_operator(),
    a_vonage_team_through_the_operator_api
);

/// Everything a Vonage round trip logs at INFO, a failing Vonage
/// included, names no number, link code, state, Vonage code or page
/// code; Vonage failing is one warning however many presses fail, and
/// one line when it answers again.
async fn logs_name_no_number_code_or_state(backend: Backend) {
    // This test's own thread (a current-thread runtime runs the gateway here too).
    let (capture, _guard) = crate::logs::Capture::at_info();
    let Some((app, vonage)) = spawn_vonage(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (_, link) = start(&app, &id).await;
    vonage.misbehave(Misbehave::StartFails(500));
    assert_eq!(press_link(&app, &link).await.status, 502);
    assert_eq!(press_link(&app, &link).await.status, 502);
    vonage.misbehave(Misbehave::None);
    let pressed = press_link(&app, &link).await;
    let (rid, code) = last_started(&vonage);
    let done = land(
        &app,
        Some(&pressed.cookie),
        &json!({"request_id": rid, "code": code}),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let shown = code_on(&done);
    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let state = pressed.cookie.split_once('=').unwrap().1.to_string();
    let secrets = [
        "7400123456".to_string(),
        link.trim_start_matches("/n/").to_string(),
        state,
        code,
        shown,
    ];
    for secret in secrets {
        assert!(!logged.contains(&secret), "{secret} logged:\n{logged}");
    }
    let warnings = logged.matches("network verifications are failing").count();
    assert_eq!(warnings, 1, "{logged}");
    assert!(logged.contains("answered again"), "{logged}");
}

mod logs_name_no_number_code_or_state {
    use super::*;
    #[tokio::test]
    async fn memory() {
        super::logs_name_no_number_code_or_state(Backend::Memory).await
    }
    #[tokio::test]
    async fn redis() {
        super::logs_name_no_number_code_or_state(Backend::Redis).await
    }
}
