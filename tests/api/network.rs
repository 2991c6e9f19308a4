//! Silent network authentication (docs/network-authentication.md), against
//! the in-process operator of `camara_operator.rs` (strict on every
//! parameter of the authorization request, the code exchange and the
//! verify call): the whole phone round trip and each answer of the
//! operator, link previews, states, replays and other browsers, the
//! refusals of a start, a failing or hanging operator, and what is logged.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::camara_operator::{FakeOperator, Line, Misbehave, NOT_ON_MOBILE};
use crate::helpers::*;

/// The number on file.
pub(crate) const PHONE: &str = "+447400123456";
/// Another SIM's number (the other SIM of a dual-SIM phone).
const OTHER: &str = "+447400654321";

async fn spawn_op(backend: Backend, extra: &str) -> Option<(TestApp, FakeOperator)> {
    let op = FakeOperator::start(Line::Mobile(PHONE.into())).await;
    let setup = Setup {
        team_extra: op.team_section(extra),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    Some((app, op))
}

/// A webchat interaction for `cust-42` with `PHONE` on file.
pub(crate) async fn interaction(app: &TestApp) -> String {
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                       "customer_ref": "cust-42", "contact": {"phone": PHONE}}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

pub(crate) async fn start_raw(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/challenges"),
        Some(&app.keys.bot),
        &body,
    )
    .await
}

/// Starts a network challenge into the chat: (its id, the link's path).
pub(crate) async fn start(app: &TestApp, id: &str) -> (String, String) {
    let res = start_raw(app, id, json!({"method": "network"})).await;
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["method"], "network");
    assert_eq!(started["delivery"], "chat");
    assert_eq!(started["attempts_allowed"], 0);
    let cid = started["challenge_id"].as_str().unwrap().to_string();
    (cid, last_link(app).await)
}

/// The path of the last network link sent, from its message's text.
pub(crate) async fn last_link(app: &TestApp) -> String {
    let msgs = app.chat_messages().await;
    let msg = msgs
        .iter()
        .rev()
        .find(|m| m["purpose"] == "network_link")
        .expect("a network_link message");
    let text = msg["text"].as_str().unwrap();
    assert!(text.contains("mobile data"), "{text}");
    assert!(
        !text.contains("7400123456"),
        "the number is not in the link: {text}"
    );
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://gateway.test/n/"))
        .expect("the link");
    let code = url.trim_start_matches("http://gateway.test/n/");
    // At least 128 random bits: 256 here, base64url.
    assert!(code.len() >= 22, "{code}");
    url.trim_start_matches("http://gateway.test").to_string()
}

/// The link's confirm page as a browser got it.
pub(crate) struct Confirm {
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
    /// The browser cookie of its form token (`name=value`).
    pub browser: String,
    pub form_token: String,
}

/// A browser's GET of the link: the confirm page, its cookie and token.
pub(crate) async fn confirm_page(app: &TestApp, link: &str) -> Confirm {
    let res = app
        .request(Method::GET, link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "GET {link}: {body}");
    let set_cookie = headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("Path=/n/") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let form_token = body
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the form token")
        .to_string();
    Confirm {
        status,
        body,
        headers,
        browser: set_cookie.split(';').next().unwrap().to_string(),
        form_token,
    }
}

/// The confirm page's button: POST `form` (a form body) with `cookie`.
pub(crate) async fn press(
    app: &TestApp,
    link: &str,
    cookie: Option<&str>,
    form: &str,
) -> reqwest::Response {
    let mut req = app
        .request(Method::POST, link, None)
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

/// A phone's browser opened the link and pressed its button: its state
/// cookie and where it was sent.
struct Opened {
    cookie: String,
    location: String,
}

async fn open(app: &TestApp, link: &str) -> Opened {
    let page = confirm_page(app, link).await;
    let form = format!("form_token={}", page.form_token);
    let res = press(app, link, Some(&page.browser), &form).await;
    assert_eq!(res.status(), 302, "POST {link}");
    let h = res.headers();
    assert_eq!(h["cache-control"], "no-store");
    let set_cookie = h["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    assert!(set_cookie.contains("Path=/n/"), "{set_cookie}");
    Opened {
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        location: h["location"].to_str().unwrap().to_string(),
    }
}

/// The code a page shows to type into the chat.
pub(crate) fn code_on(page: &Page) -> String {
    let code = page
        .body
        .split("<strong>")
        .nth(1)
        .and_then(|r| r.split("</strong>").next())
        .unwrap_or_default();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "a code of otp.length digits: {}",
        page.body
    );
    code.to_string()
}

/// The customer types the code the page showed into the chat, and the bot
/// passes it on: authenticated by method `network`.
pub(crate) async fn type_code(app: &TestApp, id: &str, cid: &str, page: &Page) {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Type <strong>"), "{}", page.body);
    let res = app.verify_code(id, cid, &code_on(page)).await;
    assert_eq!(res.status(), 200);
    let v = app.get(id).await;
    assert_eq!(
        (v["status"].as_str(), v["method"].as_str()),
        (Some("authenticated"), Some("network"))
    );
    assert_eq!(v["via"], json!(["network"]));
}

/// The operator's front end sends the browser back: the callback's path.
async fn at_operator(app: &TestApp, o: &Opened) -> String {
    let res = app.client.get(&o.location).send().await.unwrap();
    assert_eq!(res.status(), 303, "the operator's answer to {}", o.location);
    let back = res.headers()["location"].to_str().unwrap();
    back.trim_start_matches("http://gateway.test").to_string()
}

pub(crate) struct Page {
    pub status: u16,
    pub body: String,
    pub set_cookie: Option<String>,
}

async fn callback(app: &TestApp, path: &str, cookie: Option<&str>) -> Page {
    let mut req = app
        .request(Method::GET, path, None)
        .header("accept", "text/html");
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

/// Opens the link on the phone and comes back: the page.
async fn round_trip(app: &TestApp, link: &str) -> Page {
    let o = open(app, link).await;
    let back = at_operator(app, &o).await;
    callback(app, &back, Some(&o.cookie)).await
}

pub(crate) async fn read(app: &TestApp, id: &str, cid: &str) -> Value {
    app.get_json(
        &format!("/v1/interactions/{id}/challenges/{cid}"),
        Some(&app.keys.bot),
    )
    .await
}

pub(crate) async fn failures(app: &TestApp) -> Value {
    app.get_json("/v1/subjects/cust-42", Some(&app.keys.agent))
        .await["failures"]
        .clone()
}

pub(crate) async fn metric(app: &TestApp, result: &str) -> f64 {
    let series = format!("chatgate_network_verifications_total{{result=\"{result}\"}}");
    app.metric_value(&series).await.expect("the series")
}

/// A web chat's conversation: the link may have been relayed to the
/// number's owner, so a verified answer proves the phone, not the person
/// in the chat. The page shows a code; the challenge stays open, awaiting
/// it; typed into the chat (the bot's verify), it authenticates by
/// method `network`.
async fn a_relayed_link_proves_nothing_until_its_code_is_typed(backend: Backend) {
    let Some((mut app, op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let created = app
        .next_event("challenge.created", Duration::from_secs(5))
        .await
        .expect("challenge.created");
    assert_eq!(event_data(&created)["challenge"]["method"], "network");
    assert_eq!(
        read(&app, &id, &cid).await["network"],
        json!({"result": null, "awaiting_code": false, "answered_at": null})
    );

    let o = open(&app, &link).await;
    // The authorization request: prompt=none, PKCE S256, no login_hint
    // (the operator refuses anything else, and nothing was refused).
    let url = url::Url::parse(&o.location).unwrap();
    assert!(o.location.starts_with(&format!("{}/authorize?", op.base)));
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["prompt"], "none");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], "http://gateway.test/n/callback");
    assert!(!q.contains_key("login_hint") && !q.contains_key("nonce"));
    assert!(q["state"].len() >= 22 && !q["state"].contains(&cid));
    let back = at_operator(&app, &o).await;
    let page = callback(&app, &back, Some(&o.cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("Your number is confirmed. Type <strong>"),
        "{}",
        page.body
    );
    // The used state's cookie is cleared.
    assert!(page.set_cookie.clone().unwrap().contains("Max-Age=0"));
    assert_eq!(op.refused(), Vec::<String>::new());
    assert_eq!(op.verify_bodies(), [json!({"phoneNumber": PHONE})]);
    assert!(metric(&app, "verified").await >= 1.0);

    // Verified, and nothing is authenticated yet.
    assert_eq!(app.get(&id).await["status"], "pending");
    let c = read(&app, &id, &cid).await;
    assert_eq!(c["state"], "open");
    assert_eq!(c["network"]["result"], "verified");
    assert_eq!(c["network"]["awaiting_code"], true);
    assert!(c["network"]["answered_at"].is_string());
    assert_eq!(c["attempts_remaining"], 3, "{c}");
    assert_eq!(
        c["expires_at"],
        json!(app.now().plus(Duration::from_secs(180))),
        "otp.ttl from the answer"
    );
    let msgs = app.chat_messages().await;
    assert!(!msgs.iter().any(|m| m["purpose"] == "authenticated"));
    // The link is used: its 410 page, its button 410, the answer's replay
    // 400, and nothing is asked of the operator again.
    let res = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    assert!(res.text().await.unwrap().contains("already used"));
    assert_eq!(press(&app, &link, None, "").await.status(), 410);
    let calls = op.calls();
    let replay = callback(&app, &back, Some(&o.cookie)).await;
    assert_eq!(replay.status, 400);
    assert_eq!(op.calls(), calls);

    // The code typed into the chat.
    type_code(&app, &id, &cid, &page).await;
    let v = app.get(&id).await;
    assert_eq!(v["customer"]["id"], "cust-42");
    let e = app
        .next_event("interaction.authenticated", Duration::from_secs(5))
        .await
        .expect("interaction.authenticated");
    assert_eq!(event_data(&e)["interaction"]["method"], "network");
    let c = read(&app, &id, &cid).await;
    assert_eq!(c["state"], "used");
    assert_eq!(c["network"]["awaiting_code"], false);
    // The chat's notice, which the outbox delivers after the answer.
    crate::outbox::eventually("the chat's authenticated notice", || async {
        let msgs = app.chat_messages().await;
        msgs.iter().any(|m| m["purpose"] == "authenticated")
    })
    .await;
    // Assurance that names `network` is met.
    let a = app
        .get_json(
            &format!("/v1/interactions/{id}/assurance?max_age=5m&methods=network"),
            Some(&app.keys.bot),
        )
        .await;
    assert_eq!(a["satisfied"], true, "{a}");
}

/// While the code is awaited: a wrong one counts as an OTP's (attempts,
/// the subject's failures); a code typed into another conversation proves
/// nothing there; past `otp.ttl` from the answer the challenge has
/// expired (410 `challenge_expired`, nothing counted).
async fn the_awaited_code_counts_wrong_codes_and_lives_otp_ttl(backend: Backend) {
    let Some((app, _op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let page = round_trip(&app, &link).await;
    let code = code_on(&page);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let res = app.verify_code(&id, &cid, wrong).await;
    let p = assert_problem(res, 401, "invalid_code").await;
    assert_eq!(p["attempts_remaining"], 2, "{p}");
    assert_eq!(failures(&app).await, 1);
    // Another conversation: its own challenge, the code proves nothing.
    let other = interaction(&app).await;
    let (ocid, _) = app.start_otp(&other).await;
    let res = app.verify_code(&other, &ocid, &code).await;
    assert_problem(res, 401, "invalid_code").await;
    let res = app.verify_code(&other, &cid, &code).await;
    assert_eq!(res.status(), 404, "not that conversation's challenge");
    assert_eq!(app.get(&other).await["status"], "pending");
    assert_eq!(app.get(&id).await["status"], "pending");
    // Past otp.ttl (3 minutes) from the answer.
    app.advance(181);
    let before = failures(&app).await;
    let res = app.verify_code(&id, &cid, &code).await;
    assert_problem(res, 410, "challenge_expired").await;
    assert_eq!(failures(&app).await, before, "nothing counted");
    assert_ne!(app.get(&id).await["status"], "authenticated");
    assert_eq!(read(&app, &id, &cid).await["state"], "expired");
}

/// The number's own SMS conversation (a `twilio` channel that is not
/// WhatsApp, the conversation id the number): only the SIM is in it, so
/// the verified answer authenticates at once, with no code.
async fn the_number_s_own_sms_conversation_is_authenticated_at_once(backend: Backend) {
    let Some((app, _op)) = spawn_op(backend, "").await else {
        return;
    };
    let v = app
        .create(
            json!({"channel": "sms", "conversation_id": PHONE, "customer_ref": "cust-42",
                       "contact": {"phone": PHONE}}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = start_raw(&app, &id, json!({"method": "network"})).await;
    assert_eq!(res.status(), 201);
    let cid = res.json::<Value>().await.unwrap()["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let link = last_sms_link(&app).await;
    let confirm = confirm_page(&app, &link).await;
    assert!(
        confirm.body.contains("for the SMS conversation"),
        "{}",
        confirm.body
    );
    let page = round_trip(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Your number is confirmed"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<strong>"), "no code: {}", page.body);
    let v = app.get(&id).await;
    assert_eq!(
        (v["status"].as_str(), v["method"].as_str()),
        (Some("authenticated"), Some("network"))
    );
    let c = read(&app, &id, &cid).await;
    assert_eq!(
        (c["state"].as_str(), c["network"]["awaiting_code"].as_bool()),
        (Some("used"), Some(false))
    );
    // Another number's SMS conversation is not the number's own.
    let v = app
        .create(json!({"channel": "sms", "conversation_id": OTHER, "contact": {"phone": PHONE}}))
        .await;
    let other = v["id"].as_str().unwrap().to_string();
    let res = start_raw(&app, &other, json!({"method": "network"})).await;
    assert_eq!(res.status(), 201);
    let page = round_trip(&app, &last_sms_link(&app).await).await;
    code_on(&page);
    assert_eq!(app.get(&other).await["status"], "pending");
}

/// The form of the last SMS sent (Twilio's mock).
async fn last_sms(app: &TestApp) -> std::collections::HashMap<String, String> {
    let sms = app
        .chat
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .rev()
        .find(|r| r.url.path().ends_with("/Messages.json"))
        .expect("an SMS");
    url::form_urlencoded::parse(&sms.body)
        .into_owned()
        .collect()
}

/// The path of the network link in an SMS's `form`.
fn sms_link(form: &std::collections::HashMap<String, String>) -> String {
    let url = form["Body"]
        .split_whitespace()
        .find(|w| w.starts_with("http://gateway.test/n/"))
        .expect("the link");
    url.trim_start_matches("http://gateway.test").to_string()
}

/// The path of the last network link sent by SMS (Twilio's mock).
async fn last_sms_link(app: &TestApp) -> String {
    sms_link(&last_sms(app).await)
}

/// The link's page asks first: it names the team (its `display_name`)
/// and the conversation's channel, has one button, the security headers,
/// no referrer, no store; a GET writes nothing (a second still works).
/// Its button without this browser's form token, or with another
/// browser's, is 403 and changes nothing.
async fn the_link_asks_first_and_its_button_needs_its_form_token(backend: Backend) {
    let op = FakeOperator::start(Line::Mobile(PHONE.into())).await;
    let wa = (
        "wa".to_string(),
        "name = \"wa\"\nkind = \"twilio\"\nbase_url = \"{CHAT_URL}\"\naccount_sid = \"AC123\"\n\
         auth_token = \"${CG_TEST_UNSET_TWILIO:-twilio-test-token}\"\nfrom = \"whatsapp:+15550006666\"\n"
            .to_string(),
    );
    let setup = Setup {
        team_extra: op.team_section(""),
        team_top: "display_name = \"Acme Bank & Co\"".into(),
        extra_channels: vec![wa],
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let first = confirm_page(&app, &link).await;
    assert!(
        first.body.contains(
            "Acme Bank &amp; Co is asking to confirm your number for the chat conversation \
             you are in now. Only continue if you are chatting with Acme Bank &amp; Co right now."
        ),
        "{}",
        first.body
    );
    assert_eq!(first.body.matches("<button").count(), 1);
    let h = &first.headers;
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("form-action 'self' {}", op.base)),
        "{csp}"
    );
    // A second GET (a preview, then the customer) works as the first,
    // and nothing was started.
    let second = confirm_page(&app, &link).await;
    assert_eq!(second.status, 200);
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
    if backend == Backend::Redis {
        let keys = crate::redis_support::dump_prefix(&app.key_prefix).await;
        assert!(
            !keys.iter().any(|k| k.key.contains(":ns:")),
            "a state was kept"
        );
    }
    // The button without a token, with none of this browser, or with
    // another browser's: 403, nothing started.
    let form = |t: &str| format!("form_token={t}");
    for (cookie, body) in [
        (Some(first.browser.as_str()), String::new()),
        (None, form(&first.form_token)),
        (Some(first.browser.as_str()), form(&second.form_token)),
        (Some(second.browser.as_str()), form(&first.form_token)),
    ] {
        let res = press(&app, &link, cookie, &body).await;
        assert_eq!(res.status(), 403, "{cookie:?} {body}");
        assert!(res.headers().get("location").is_none());
        let res = app
            .request(Method::POST, &link, None)
            .header("cookie", cookie.unwrap_or_default())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_problem(res, 403, "forbidden").await;
    }
    assert_ne!(first.form_token, second.form_token, "one token per browser");
    assert_eq!(op.calls(), (0, 0));
    assert_eq!(
        read(&app, &id, &cid).await["network"]["result"],
        Value::Null
    );
    // Its own browser's token: to the operator.
    let res = press(&app, &link, Some(&first.browser), &form(&first.form_token)).await;
    assert_eq!(res.status(), 302);
    // The channel in words: SMS for a twilio channel, WhatsApp for a
    // twilio channel with a whatsapp: sender.
    for (channel, words) in [("sms", "SMS"), ("wa", "WhatsApp")] {
        let v = app
            .create(
                json!({"channel": channel, "conversation_id": OTHER, "contact": {"phone": PHONE}}),
            )
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let res = start_raw(&app, &id, json!({"method": "network"})).await;
        assert_eq!(res.status(), 201, "{channel}");
        let link = last_sms_link(&app).await;
        let page = confirm_page(&app, &link).await;
        assert!(
            page.body.contains(&format!("for the {words} conversation")),
            "{channel}: {}",
            page.body
        );
    }
}

async fn a_mismatch_ends_the_challenge_without_a_failure(backend: Backend) {
    let Some((mut app, op)) = spawn_op(backend, "").await else {
        return;
    };
    op.line(Line::Mobile(OTHER.into()));
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let page = round_trip(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("could not confirm your number"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("7400") && !page.body.contains("654321"));
    let e = app
        .next_event("challenge.failed", Duration::from_secs(5))
        .await
        .expect("challenge.failed");
    assert_eq!(event_data(&e)["reason"], "number_mismatch");
    let c = read(&app, &id, &cid).await;
    assert_eq!(c["state"], "failed");
    assert_eq!(c["network"]["result"], "mismatch");
    assert_eq!(app.get(&id).await["status"], "unauthenticated");
    assert_eq!(failures(&app).await, 0);
    assert!(metric(&app, "mismatch").await >= 1.0);
    // Ended: its link answers 410.
    let res = app.request(Method::GET, &link, None).send().await.unwrap();
    assert_problem(res, 410, "token_expired").await;
    assert_eq!(op.refused(), Vec::<String>::new());
}

async fn off_the_mobile_network_it_stays_open_until_mobile_data(backend: Backend) {
    let Some((app, op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    // On Wi-Fi the operator cannot see the line: an `error` comes back,
    // and the operator's token endpoint is never asked.
    op.line(Line::Wifi);
    let page = round_trip(&app, &link).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Turn Wi-Fi"), "{}", page.body);
    assert_eq!(op.calls(), (0, 0));
    let c = read(&app, &id, &cid).await;
    assert_eq!(
        (c["state"].as_str(), c["network"]["result"].as_str()),
        (Some("open"), Some("not_on_mobile_network"))
    );
    // The authorization went through but the data did not come by the
    // mobile network: the verify call's 403 says so.
    op.line(Line::Mobile(PHONE.into()));
    op.misbehave(Misbehave::VerifyNotOnMobile);
    let page = round_trip(&app, &link).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Turn Wi-Fi"));
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
    assert_eq!(failures(&app).await, 0);
    assert!(metric(&app, "not_on_mobile_network").await >= 2.0);
    // Then on mobile data, the same link confirms.
    op.misbehave(Misbehave::None);
    let page = round_trip(&app, &link).await;
    type_code(&app, &id, &cid, &page).await;
    assert_eq!(op.refused(), Vec::<String>::new());
    let _ = NOT_ON_MOBILE;
}

async fn a_failing_or_unexpected_operator_never_authenticates(backend: Backend) {
    let Some((app, op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    for m in [
        Misbehave::TokenFails,
        Misbehave::TokenWithoutAccessToken,
        Misbehave::VerifyFails,
        Misbehave::VerifyMistyped,
        Misbehave::VerifyNotJson,
        Misbehave::VerifyOversized,
        Misbehave::VerifyUnauthenticated,
    ] {
        op.misbehave(m);
        let page = round_trip(&app, &link).await;
        assert_eq!(page.status, 502, "{m:?}");
        assert!(page.body.contains("Turn Wi-Fi"), "{m:?}");
        let c = read(&app, &id, &cid).await;
        assert_eq!(c["state"], "open", "{m:?}");
        assert_eq!(c["network"]["result"], "error", "{m:?}");
        assert_eq!(app.get(&id).await["status"], "pending", "{m:?}");
    }
    assert_eq!(failures(&app).await, 0);
    assert!(metric(&app, "error").await >= 7.0);
    assert_eq!(op.refused(), Vec::<String>::new());
}

/// An operator that does not answer holds the callback 5 s, not more, and
/// the challenge stays open.
async fn a_hanging_operator_is_an_error_within_its_deadline(backend: Backend) {
    let Some((app, op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    op.misbehave(Misbehave::VerifyHangs);
    let o = open(&app, &link).await;
    let back = at_operator(&app, &o).await;
    let began = std::time::Instant::now();
    let page = callback(&app, &back, Some(&o.cookie)).await;
    assert_eq!(page.status, 502);
    assert!(
        began.elapsed() < Duration::from_secs(7),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
}

/// A chat app's preview fetches the link: it uses nothing up and starts
/// nothing; each press of the button starts a new state, and the link
/// keeps its five newest.
async fn link_previews_use_nothing_up(backend: Backend) {
    let Some((app, op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    for _ in 0..3 {
        confirm_page(&app, &link).await;
    }
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
    assert_eq!(op.calls(), (0, 0));
    let mut opened = Vec::new();
    for _ in 0..6 {
        opened.push(open(&app, &link).await);
    }
    let states: std::collections::HashSet<_> = opened.iter().map(|o| o.location.clone()).collect();
    assert_eq!(states.len(), 6);
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
    // The oldest was dropped: 400, nothing changes.
    let first = at_operator(&app, &opened[0]).await;
    assert_eq!(
        callback(&app, &first, Some(&opened[0].cookie)).await.status,
        400
    );
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
    // The newest still answers.
    let last = &opened[5];
    let back = at_operator(&app, last).await;
    let page = callback(&app, &back, Some(&last.cookie)).await;
    type_code(&app, &id, &cid, &page).await;
}

/// A state from another browser, none, an unknown one, or a parameter
/// sent twice: 400, nothing asked of the operator, nothing used up; the
/// state still answers for its own browser.
async fn bad_states_change_nothing(backend: Backend) {
    let Some((app, op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    let mine = open(&app, &link).await;
    let theirs = open(&app, &link).await;
    let back = at_operator(&app, &mine).await;
    let name = mine.cookie.split('=').next().unwrap();
    let other_secret = theirs.cookie.split('=').nth(1).unwrap();
    for (path, cookie) in [
        (back.clone(), Some(format!("{name}={other_secret}"))),
        (back.clone(), None),
        (
            "/n/callback?code=x&state=0123456789abcdef.nope".to_string(),
            Some(mine.cookie.clone()),
        ),
        ("/n/callback?code=x".to_string(), Some(mine.cookie.clone())),
        (format!("{back}&state=again"), Some(mine.cookie.clone())),
    ] {
        let page = callback(&app, &path, cookie.as_deref()).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(page.set_cookie.is_none(), "{path}");
    }
    assert_eq!(op.calls(), (0, 0));
    assert_eq!(
        read(&app, &id, &cid).await["network"]["result"],
        Value::Null
    );
    let page = callback(&app, &back, Some(&mine.cookie)).await;
    assert_eq!(page.status, 200);
    assert_eq!(op.refused(), Vec::<String>::new());
}

/// A link replaced by a newer challenge, or past its `link_ttl`, is its
/// 410 page; a state started before the replacement is 410 at the
/// callback and asks the operator nothing.
async fn a_replaced_or_expired_link_is_gone(backend: Backend) {
    let Some((app, op)) = spawn_op(backend, "link_ttl = \"2m\"").await else {
        return;
    };
    let id = interaction(&app).await;
    let (cid, link) = start(&app, &id).await;
    assert_eq!(
        read(&app, &id, &cid).await["expires_at"],
        json!(app.now().plus(Duration::from_secs(120)))
    );
    let o = open(&app, &link).await;
    let back = at_operator(&app, &o).await;
    app.start_otp(&id).await;
    let page = callback(&app, &back, Some(&o.cookie)).await;
    assert_eq!(page.status, 410);
    assert!(page.body.contains("expired"), "{}", page.body);
    assert_eq!(op.calls(), (0, 0));
    let res = app.request(Method::GET, &link, None).send().await.unwrap();
    assert_problem(res, 410, "token_expired").await;
    assert_eq!(
        press(&app, &link, None, "").await.status(),
        410,
        "its button"
    );
    // A new link, past its two minutes: its page and its button are 410,
    // and its record outlives the challenge (the interaction's life).
    let (_, link) = start(&app, &id).await;
    let page = confirm_page(&app, &link).await;
    app.advance(121);
    let res = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    assert!(res.text().await.unwrap().contains("expired"));
    let form = format!("form_token={}", page.form_token);
    let res = press(&app, &link, Some(&page.browser), &form).await;
    assert_eq!(res.status(), 410, "its button");
    if backend == Backend::Redis {
        let keys = crate::redis_support::dump_prefix(&app.key_prefix).await;
        let links: Vec<i64> = keys
            .iter()
            .filter(|k| k.key.contains(":n:"))
            .map(|k| k.pttl)
            .collect();
        assert_eq!(links.len(), 2, "both links are kept");
        assert!(
            links.iter().all(|ttl| *ttl > 86_400_000),
            "past link_ttl, for the interaction's life: {links:?}"
        );
    }
    // A code never issued.
    let res = app
        .request(Method::GET, "/n/nope", None)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
}

async fn what_is_refused_sends_nothing(backend: Backend) {
    let Some((app, _op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let sent = app.chat_messages().await.len();
    let payment = json!({"type": "payment", "amount": "120.00", "currency": "EUR", "payee": "ACME Energy Ltd"});
    for (body, field) in [
        (json!({"method": "network", "to": PHONE}), "to"),
        (
            json!({"method": "network", "delivery": "sms", "to": PHONE}),
            "to",
        ),
        (
            json!({"method": "network", "delivery": "email"}),
            "delivery",
        ),
        (
            json!({"method": "network", "delivery": "ladder"}),
            "delivery",
        ),
        (
            json!({"method": "network", "transaction": payment}),
            "transaction",
        ),
    ] {
        let res = start_raw(&app, &id, body.clone()).await;
        let p = assert_problem(res, 422, "invalid_request").await;
        assert!(
            p["detail"].as_str().unwrap().starts_with(field),
            "{body}: {p}"
        );
    }
    // No phone on file.
    let bare = app.new_interaction().await;
    let res = start_raw(&app, &bare, json!({"method": "network"})).await;
    let p = assert_problem(res, 422, "invalid_request").await;
    assert!(
        p["detail"].as_str().unwrap().contains("contact.phone"),
        "{p}"
    );
    // A team without [number_verification].
    let g = app
        .request(Method::POST, "/v1/interactions", Some(&app.keys.globex_bot))
        .json(&json!({"channel": "webchat", "conversation_id": "g-1", "contact": {"phone": PHONE}}))
        .send()
        .await
        .unwrap();
    let gid = g.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .request(
            Method::POST,
            &format!("/v1/interactions/{gid}/challenges"),
            Some(&app.keys.globex_bot),
        )
        .json(&json!({"method": "network"}))
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, 422, "invalid_request").await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("[number_verification]"),
        "{p}"
    );
    assert_eq!(app.chat_messages().await.len(), sent);
    // No code answers it; no agent sees its link.
    let (cid, _) = start(&app, &id).await;
    let res = app.verify_code(&id, &cid, "123456").await;
    assert_problem(res, 422, "invalid_request").await;
    let res = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}/challenges/{cid}/code"),
            Some(&app.keys.agent),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(read(&app, &id, &cid).await["state"], "open");
}

/// `delivery: "sms"` sends the link to the number on file through the
/// team's `sms_channel`; `hash_number` sends the number's SHA-256.
async fn by_sms_and_hashed(backend: Backend) {
    let Some((app, op)) = spawn_op(backend, "hash_number = true").await else {
        return;
    };
    let id = interaction(&app).await;
    let res = start_raw(&app, &id, json!({"method": "network", "delivery": "sms"})).await;
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    assert_eq!(
        (started["delivery"].as_str(), started["channel"].as_str()),
        (Some("sms"), None)
    );
    let form = last_sms(&app).await;
    assert_eq!(form["To"], PHONE);
    let link = sms_link(&form);
    let page = round_trip(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let bodies = op.verify_bodies();
    let hashed = bodies[0]["hashedPhoneNumber"].as_str().unwrap();
    assert_eq!(hashed.len(), 64);
    assert!(!bodies[0].to_string().contains("7400123456"));
    // An unexpected link by SMS proves the phone, not the web chat's
    // person: the code is typed into the chat.
    assert_eq!(app.get(&id).await["status"], "pending");
    let cid = started["challenge_id"].as_str().unwrap();
    type_code(&app, &id, cid, &page).await;
}

/// The team's number checks' operator (CAMARA SIM Swap): its token
/// endpoint mounted; each test mounts its verdict.
async fn number_checks_operator() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let checks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "ck-token-1", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .mount(&checks)
        .await;
    checks
}

/// `[number_checks]` of a team asking `checks`, with no cache.
fn number_checks_section(checks: &wiremock::MockServer) -> String {
    format!(
        "\n[number_checks]\nkind = \"camara\"\nsim_swap_url = \"{u}/sim-swap/v2\"\n\
         token_url = \"{u}/token\"\nclient_id = \"chatgate\"\nclient_secret = \"op-secret\"\ncache = \"0s\"\n",
        u = checks.uri()
    )
}

/// A swapped SIM passes a network check: the team's number checks refuse
/// the number before any link goes (403 `number_refused`); a clean one
/// lets it go, and the answer says what was found.
async fn a_swapped_sim_is_refused_before_the_link(backend: Backend) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let checks = number_checks_operator().await;
    let swapped = Mock::given(method("POST"))
        .and(path("/sim-swap/v2/check"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"swapped": true})))
        .expect(1)
        .mount_as_scoped(&checks)
        .await;
    let op = FakeOperator::start(Line::Mobile(PHONE.into())).await;
    let section = op.team_section("") + &number_checks_section(&checks);
    let setup = Setup {
        team_extra: section,
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let id = interaction(&app).await;
    let res = start_raw(&app, &id, json!({"method": "network"})).await;
    let p = assert_problem(res, 403, "number_refused").await;
    assert_eq!(p["reason"], "sim_swap", "{p}");
    assert!(!app
        .chat_messages()
        .await
        .iter()
        .any(|m| m["purpose"] == "network_link"));
    drop(swapped);
    Mock::given(method("POST"))
        .and(path("/sim-swap/v2/check"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"swapped": false})))
        .mount(&checks)
        .await;
    let res = start_raw(&app, &id, json!({"method": "network"})).await;
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["number_check"]["sim_swap"], false, "{started}");
    let link = last_link(&app).await;
    let page = round_trip(&app, &link).await;
    let cid = started["challenge_id"].as_str().unwrap();
    type_code(&app, &id, cid, &page).await;
}

/// A pre-chat step-up is answered by a network confirmation: the
/// assertion's customer is authenticated, by method `network`; the link
/// ends with the step-up.
async fn a_pre_chat_step_up_is_answered_by_it(backend: Backend) {
    let op = FakeOperator::start(Line::Mobile(PHONE.into())).await;
    let setup = Setup {
        team_extra: format!(
            "{}
[settings.step_up]
always = true
",
            op.team_section("")
        ),
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    for (secs, answered) in [(300, true), (30, false)] {
        // No customer_ref: the assertion names the customer.
        let v = app
            .create(
                json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                           "contact": {"phone": PHONE}}),
            )
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let mut claims = app.assertion_claims("victim-7");
        claims["exp"] = json!(app.now().unix_seconds() + secs);
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/assertion"),
                Some(&app.keys.bot),
                &json!({"assertion": app.assertion(claims)}),
            )
            .await;
        let b: Value = res.json().await.unwrap();
        assert_eq!(b["requires_2fa"], true, "{b}");
        let (cid, link) = start(&app, &id).await;
        if answered {
            let page = round_trip(&app, &link).await;
            type_code(&app, &id, &cid, &page).await;
            let v = app.get(&id).await;
            assert_eq!(v["customer"]["id"], "victim-7", "{v}");
        } else {
            // The step-up ends in 30 s, and its link with it.
            app.advance(31);
            let res = app.request(Method::GET, &link, None).send().await.unwrap();
            assert_problem(res, 410, "token_expired").await;
            assert_eq!(read(&app, &id, &cid).await["state"], "expired");
            assert_ne!(app.get(&id).await["status"], "authenticated");
        }
    }
}

/// A step-up answered by a network confirmation remembers the device as
/// a code does: the same fingerprint next time asks for no step-up.
async fn a_step_up_answered_by_it_remembers_the_device(backend: Backend) {
    let Some((app, _op)) =
        spawn_op(backend, "\n[settings.step_up]\non_new_fingerprint = true\n").await
    else {
        return;
    };
    let assert_on = |id: String| {
        let mut claims = app.assertion_claims("cust-42");
        claims["fingerprint"] = json!("device-1");
        claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
        let token = app.assertion(claims);
        let app = &app;
        async move {
            let path = format!("/v1/interactions/{id}/assertion");
            let res = app
                .post_json(&path, Some(&app.keys.bot), &json!({"assertion": token}))
                .await;
            res.json::<Value>().await.unwrap()
        }
    };
    let id = interaction(&app).await;
    let b = assert_on(id.clone()).await;
    assert_eq!(
        (b["requires_2fa"].as_bool(), b["reason"].as_str()),
        (Some(true), Some("new_fingerprint")),
        "{b}"
    );
    let (cid, link) = start(&app, &id).await;
    let page = round_trip(&app, &link).await;
    type_code(&app, &id, &cid, &page).await;
    let again = interaction(&app).await;
    let b = assert_on(again).await;
    assert_eq!(b["authenticated"], true, "{b}");
    assert_eq!(b["interaction"]["method"], "pre_chat", "{b}");
}

/// A ladder's network step is skipped when the number checks refuse the
/// number (a swapped SIM passes a network check): no link goes and the
/// operator is never asked; the code steps to that number are refused
/// as any (403 `number_refused`).
async fn a_ladder_s_network_step_is_skipped_for_a_refused_number(backend: Backend) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let checks = number_checks_operator().await;
    Mock::given(method("POST"))
        .and(path("/sim-swap/v2/check"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"swapped": true})))
        .mount(&checks)
        .await;
    let op = FakeOperator::start(Line::Mobile(PHONE.into())).await;
    let mut setup = crate::ladder::ladder(&["network", "sms"], "advance_after = \"20s\"");
    setup.team_extra += &(op.team_section("") + &number_checks_section(&checks));
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let id = interaction(&app).await;
    let res = crate::ladder::start_ladder(&app, &id).await;
    let p = assert_problem(res, 403, "number_refused").await;
    assert_eq!(p["reason"], "sim_swap", "{p}");
    let links = app.chat_messages().await;
    assert!(
        !links.iter().any(|m| m["purpose"] == "network_link"),
        "{links:?}"
    );
    assert!(crate::ladder::sent(&app).await.is_empty());
    assert!(op.verify_bodies().is_empty(), "the operator was asked");
}

/// A number on file written with a trunk prefix is verified as `+E.164`.
async fn the_number_is_verified_in_e164(backend: Backend) {
    let Some((app, op)) = spawn_op(backend, "").await else {
        return;
    };
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                       "customer_ref": "cust-42", "contact": {"phone": "+4407400123456"}}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let (_, link) = start(&app, &id).await;
    assert_eq!(round_trip(&app, &link).await.status, 200);
    assert_eq!(op.verify_bodies(), [json!({"phoneNumber": PHONE})]);
    assert_eq!(op.refused(), Vec::<String>::new());
}

/// A ladder that begins with the network step (`["network", "sms"]`,
/// `advance_after` 20 s) on a webchat interaction with `PHONE`.
async fn spawn_ladder(backend: Backend) -> Option<(TestApp, FakeOperator)> {
    let op = FakeOperator::start(Line::Mobile(PHONE.into())).await;
    let mut setup = crate::ladder::ladder(&["network", "sms"], "advance_after = \"20s\"");
    setup.team_extra += &op.team_section("");
    let app = spawn_with(backend, setup).await?;
    Some((app, op))
}

async fn start_network_ladder(app: &TestApp, id: &str) -> String {
    let res = crate::ladder::start_ladder(app, id).await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    assert_eq!(
        (c["delivery"].as_str(), c["channel"].as_str()),
        (Some("ladder"), Some("network"))
    );
    c["challenge_id"].as_str().unwrap().to_string()
}

/// The network step first: its link, no code. A confirmation in a web
/// chat waits for the code its page showed; the ladder does not move on
/// meanwhile (its time-out passes), and the code typed into the chat
/// ends the challenge (no code is ever sent), authenticated by method
/// `network`. `advance` still moves it on at once.
async fn a_ladder_s_network_step_confirms_without_a_code(backend: Backend) {
    let Some((app, op)) = spawn_ladder(backend).await else {
        return;
    };
    let id = interaction(&app).await;
    let cid = start_network_ladder(&app, &id).await;
    let link = last_link(&app).await;
    assert!(crate::ladder::sent(&app).await.is_empty(), "no code yet");
    assert_eq!(read(&app, &id, &cid).await["channel"], "network");
    let page = round_trip(&app, &link).await;
    assert_eq!(page.status, 200);
    let c = read(&app, &id, &cid).await;
    assert_eq!(
        (c["state"].as_str(), c["network"]["awaiting_code"].as_bool()),
        (Some("open"), Some(true))
    );
    // Its time-out passes: the ladder stays while the code is awaited.
    app.advance(21);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(crate::ladder::sent(&app).await.is_empty());
    assert_eq!(read(&app, &id, &cid).await["channel"], "network");
    type_code(&app, &id, &cid, &page).await;
    assert_eq!(read(&app, &id, &cid).await["state"], "used");
    assert!(crate::ladder::sent(&app).await.is_empty());
    // Awaiting its code, `advance` moves it on at once: the SMS step's
    // code answers, the page's code no longer does.
    let id = interaction(&app).await;
    let cid = start_network_ladder(&app, &id).await;
    let page = round_trip(&app, &last_link(&app).await).await;
    let shown = code_on(&page);
    let res = crate::ladder::advance(&app, &id, &cid).await;
    assert_eq!(res.status(), 200);
    let sent = crate::ladder::sent(&app).await;
    assert_eq!(sent.len(), 1, "the code on the SMS step");
    let c = read(&app, &id, &cid).await;
    assert_eq!(
        (
            c["channel"].as_str(),
            c["network"]["awaiting_code"].as_bool()
        ),
        (Some("sms"), Some(false))
    );
    let code = &sent.last().unwrap().1;
    if code != &shown {
        assert_problem(
            app.verify_code(&id, &cid, &shown).await,
            401,
            "invalid_code",
        )
        .await;
    }
    assert_eq!(app.verify_code(&id, &cid, code).await.status(), 200);
    assert_eq!(app.get(&id).await["method"], "otp");
    assert_eq!(op.refused(), Vec::<String>::new());
}

/// Every other answer moves the ladder on at once: the code goes out on
/// the next step, `challenge.advanced` names the network step and why,
/// nothing counts as a wrong attempt, and the link is gone.
async fn a_ladder_s_network_step_moves_on_for_every_other_answer(backend: Backend) {
    let Some((mut app, op)) = spawn_ladder(backend).await else {
        return;
    };
    for (line, misbehave, reason) in [
        (
            Line::Mobile(OTHER.into()),
            Misbehave::None,
            "number_mismatch",
        ),
        (Line::Wifi, Misbehave::None, "not_on_mobile_network"),
        (Line::Mobile(PHONE.into()), Misbehave::VerifyFails, "failed"),
    ] {
        op.line(line);
        op.misbehave(misbehave);
        let id = interaction(&app).await;
        let before = crate::ladder::sent(&app).await.len();
        let cid = start_network_ladder(&app, &id).await;
        let link = last_link(&app).await;
        round_trip(&app, &link).await;
        let e = app
            .next_event("challenge.advanced", Duration::from_secs(5))
            .await
            .expect("challenge.advanced");
        let data = event_data(&e);
        assert_eq!(data["previous_channel"], "network", "{reason}");
        assert_eq!(data["reason"], reason);
        let sent = crate::ladder::sent(&app).await;
        assert_eq!(sent.len(), before + 1, "{reason}: the code on the SMS step");
        let c = read(&app, &id, &cid).await;
        assert_eq!(
            (c["state"].as_str(), c["channel"].as_str()),
            (Some("open"), Some("sms"))
        );
        assert_eq!(c["attempts_remaining"], 3, "{reason}");
        let said = c["network"]["result"].as_str().unwrap();
        let result = match reason {
            "number_mismatch" => "mismatch",
            "failed" => "error",
            other => other,
        };
        assert_eq!(said, result, "{c}");
        let res = app.request(Method::GET, &link, None).send().await.unwrap();
        assert_problem(res, 410, "token_expired").await;
        // The code that went out answers it.
        let code = &sent.last().unwrap().1;
        assert_eq!(app.verify_code(&id, &cid, code).await.status(), 200);
        assert_eq!(app.get(&id).await["method"], "otp");
    }
    assert_eq!(failures(&app).await, 0);
}

/// No answer within `advance_after`: the code goes out on the next step
/// (`timeout`); `advance` moves on at once (`requested`).
async fn a_ladder_s_network_step_times_out_or_is_advanced(backend: Backend) {
    let Some((mut app, _op)) = spawn_ladder(backend).await else {
        return;
    };
    let id = interaction(&app).await;
    start_network_ladder(&app, &id).await;
    app.advance(19);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(crate::ladder::sent(&app).await.is_empty(), "not yet");
    app.advance(2);
    let e = app
        .next_event("challenge.advanced", Duration::from_secs(5))
        .await
        .expect("challenge.advanced on time-out");
    let data = event_data(&e);
    assert_eq!(
        (data["previous_channel"].as_str(), data["reason"].as_str()),
        (Some("network"), Some("timeout"))
    );
    assert_eq!(crate::ladder::sent(&app).await.len(), 1);
    let id = interaction(&app).await;
    let cid = start_network_ladder(&app, &id).await;
    let res = crate::ladder::advance(&app, &id, &cid).await;
    assert_eq!(res.status(), 200);
    let e = app
        .next_event("challenge.advanced", Duration::from_secs(5))
        .await
        .expect("challenge.advanced on request");
    assert_eq!(event_data(&e)["reason"], "requested");
    assert_eq!(crate::ladder::sent(&app).await.len(), 2);
}

/// The network step is skipped for a payment (a network check proves a
/// SIM, not a payment): the ladder starts at its next step with the code.
async fn a_ladder_s_network_step_is_skipped_for_a_payment(backend: Backend) {
    let Some((app, _op)) = spawn_ladder(backend).await else {
        return;
    };
    let id = interaction(&app).await;
    let payment = json!({"type": "payment", "amount": "120.00", "currency": "EUR", "payee": "ACME Energy Ltd"});
    let body = json!({"method": "otp", "delivery": "ladder", "transaction": payment});
    let res = start_raw(&app, &id, body).await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["channel"], "sms", "{c}");
    assert!(!app
        .chat_messages()
        .await
        .iter()
        .any(|m| m["purpose"] == "network_link"));
    assert_eq!(crate::ladder::sent(&app).await.len(), 1);
}

/// Team globex's operator hangs: its callbacks hold at most 32 places of
/// its own team (the 33rd is 503 at once), each answered 502 within its
/// deadline, while team acme's callback goes through at once.
async fn a_hanging_operator_holds_only_its_own_team(backend: Backend) {
    let (fine, hung) = (
        FakeOperator::start(Line::Mobile(PHONE.into())).await,
        FakeOperator::start(Line::Mobile(PHONE.into())).await,
    );
    hung.misbehave(Misbehave::VerifyHangs);
    let setup = Setup {
        team_extra: fine.team_section(""),
        globex_extra: hung.team_section(""),
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let mut waiting = Vec::new();
    for i in 0..33 {
        let created = app
            .request(Method::POST, "/v1/interactions", Some(&app.keys.globex_bot))
            .json(&json!({"channel": "webchat", "conversation_id": format!("g-{i}"), "contact": {"phone": PHONE}}))
            .send()
            .await
            .unwrap();
        let gid = created.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let res = app
            .request(
                Method::POST,
                &format!("/v1/interactions/{gid}/challenges"),
                Some(&app.keys.globex_bot),
            )
            .json(&json!({"method": "network"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let o = open(&app, &last_link(&app).await).await;
        let back = at_operator(&app, &o).await;
        waiting.push((back, o.cookie));
    }
    let last = waiting.pop().unwrap();
    let held: Vec<_> = waiting
        .into_iter()
        .map(|(path, cookie)| {
            let (client, url) = (app.client.clone(), app.url(&path));
            tokio::spawn(async move {
                let res = client
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let began = std::time::Instant::now();
    let full = callback(&app, &last.0, Some(&last.1)).await;
    assert_eq!(full.status, 503);
    // Acme's operator answers at once, whatever globex's does.
    let id = interaction(&app).await;
    let (_, link) = start(&app, &id).await;
    assert_eq!(round_trip(&app, &link).await.status, 200);
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    for h in held {
        assert_eq!(h.await.unwrap(), 502);
    }
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
    a_relayed_link_proves_nothing_until_its_code_is_typed,
    the_awaited_code_counts_wrong_codes_and_lives_otp_ttl,
    the_number_s_own_sms_conversation_is_authenticated_at_once,
    the_link_asks_first_and_its_button_needs_its_form_token,
    a_mismatch_ends_the_challenge_without_a_failure,
    off_the_mobile_network_it_stays_open_until_mobile_data,
    a_failing_or_unexpected_operator_never_authenticates,
    a_hanging_operator_is_an_error_within_its_deadline,
    link_previews_use_nothing_up,
    bad_states_change_nothing,
    a_replaced_or_expired_link_is_gone,
    what_is_refused_sends_nothing,
    by_sms_and_hashed,
    a_swapped_sim_is_refused_before_the_link,
    a_pre_chat_step_up_is_answered_by_it,
    the_number_is_verified_in_e164,
    a_ladder_s_network_step_confirms_without_a_code,
    a_ladder_s_network_step_moves_on_for_every_other_answer,
    a_ladder_s_network_step_times_out_or_is_advanced,
    a_ladder_s_network_step_is_skipped_for_a_payment,
    a_hanging_operator_holds_only_its_own_team,
    a_step_up_answered_by_it_remembers_the_device,
    a_ladder_s_network_step_is_skipped_for_a_refused_number,
);

/// Everything a round trip logs at INFO, a failing operator included,
/// names no number, link code, state, operator code or token; the
/// operator's failure is one warning however many answers fail.
async fn logs_name_no_number_code_or_state(backend: Backend) {
    // This test's own thread (a current-thread runtime runs the gateway here too).
    let (capture, _guard) = crate::logs::Capture::at_info();
    let Some((app, op)) = spawn_op(backend, "").await else {
        return;
    };
    let id = interaction(&app).await;
    let (_, link) = start(&app, &id).await;
    op.misbehave(Misbehave::VerifyFails);
    let o = open(&app, &link).await;
    let back = at_operator(&app, &o).await;
    callback(&app, &back, Some(&o.cookie)).await;
    round_trip(&app, &link).await;
    op.misbehave(Misbehave::None);
    let o2 = open(&app, &link).await;
    let back2 = at_operator(&app, &o2).await;
    let done = callback(&app, &back2, Some(&o2.cookie)).await;
    assert_eq!(done.status, 200);
    let shown = code_on(&done);
    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let code = link.trim_start_matches("/n/");
    let state = |p: &str| {
        url::Url::parse(&format!("http://x{p}"))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .to_string()
    };
    let operator_code = |p: &str| {
        url::Url::parse(&format!("http://x{p}"))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .to_string()
    };
    for secret in [
        "7400123456".to_string(),
        code.to_string(),
        state(&back),
        state(&back2),
        operator_code(&back2),
        shown,
    ] {
        assert!(!logged.contains(&secret), "{secret} logged:\n{logged}");
    }
    for token in op.tokens() {
        assert!(
            !logged.contains(&token),
            "an access token logged:\n{logged}"
        );
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

/// The callback's store round trips (docs/architecture.md#one-state-ladder):
/// the state is read once, for its team's gate and for its take alike;
/// then the state used up, the link and its interaction read, and the
/// answer committed. Counted on the memory store under a counting
/// wrapper, as `round_trips.rs` counts the login callback: each call is
/// one round trip on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_callback_reads_its_state_once() {
    use std::sync::atomic::Ordering;
    let op = FakeOperator::start(Line::Mobile(PHONE.into())).await;
    let setup = Setup {
        team_extra: op.team_section(""),
        ..Setup::default()
    };
    let (counting, app) = crate::round_trips::on_counting_store_with(setup).await;
    let v = app
        .create(
            json!({"channel": "sms", "conversation_id": PHONE, "customer_ref": "cust-42",
                       "contact": {"phone": PHONE}}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = start_raw(&app, &id, json!({"method": "network"})).await;
    assert_eq!(res.status(), 201);
    let link = last_sms_link(&app).await;
    let o = open(&app, &link).await;
    let back = at_operator(&app, &o).await;
    counting.gets.lock().unwrap().clear();
    let (reads, commits) = (
        counting.reads.load(Ordering::SeqCst),
        counting.commits.load(Ordering::SeqCst),
    );
    let page = callback(&app, &back, Some(&o.cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(app.get(&id).await["status"], "authenticated");
    let gets = counting.gets.lock().unwrap().clone();
    let state_reads = gets
        .iter()
        .filter(|keys| (keys.iter()).any(|k| k.starts_with("{~s") && k.contains("}:ns:")))
        .count();
    let reads = counting.reads.load(Ordering::SeqCst) - reads;
    let commits = counting.commits.load(Ordering::SeqCst) - commits;
    assert_eq!(state_reads, 1, "the state is read once: {gets:?}");
    // The state's one read, then the loads that apply the answer (3);
    // the state used up and the answer: 2 commits.
    assert_eq!((reads, commits), (4, 2), "{gets:?}");
}
