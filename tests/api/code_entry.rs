//! Codes typed on the gateway's page, not into the chat
//! (docs/api.md#codes-typed-on-the-gateways-page): asking for it, the link
//! after the code, the page and its headers, a right code that shows the
//! binding code to type into the chat (a link relayed to the number's
//! owner authenticates no stranger's chat), a wrong code counted exactly
//! as `verify` counts it, the form token, the rate of POSTs, the bot's
//! 409, and a session PIN typed there.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// Agents may reveal codes: the tests read the code an agent would. The
/// team has a display name, which the page names.
fn agents_read_codes() -> Setup {
    Setup {
        team_top: "display_name = \"Acme Bank\"".into(),
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    }
}

/// The binding code a page shows (`<strong>` digits).
fn bound_code(page: &Page) -> String {
    let code = page
        .body
        .split("<strong>")
        .nth(1)
        .and_then(|r| r.split("</strong>").next())
        .unwrap_or_else(|| panic!("a binding code: {}", page.body))
        .to_string();
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    code
}

/// A webchat interaction of `customer`.
async fn interaction(app: &TestApp, customer: &str) -> String {
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                       "customer_ref": customer, "session_pin": "482913"}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

async fn start_raw(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/challenges"),
        Some(&app.keys.bot),
        &body,
    )
    .await
}

/// Starts an agent-delivered OTP typed on the page: (challenge id, code).
async fn start_page_otp(app: &TestApp, id: &str) -> (String, String) {
    let res = start_raw(
        app,
        id,
        json!({"method": "otp", "delivery": "agent", "entry": "page"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["entry"], "page");
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
    let code = app.get_json(&path, Some(&app.keys.agent)).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    (cid, code)
}

/// The page as a browser got it: status, headers, body, its browser
/// cookie (`name=value`) and form token.
pub(crate) struct Page {
    pub(crate) status: u16,
    headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
    pub(crate) cookie: Option<String>,
    pub(crate) token: Option<String>,
}

async fn page(res: reqwest::Response) -> Page {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap();
    let cookie = headers
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
    let token = body
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(str::to_string);
    Page {
        status,
        headers,
        body,
        cookie,
        token,
    }
}

pub(crate) async fn open(app: &TestApp, link: &str) -> Page {
    let res = app
        .request(Method::GET, link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    page(res).await
}

/// POSTs `code` with `token` and `cookie`, as the form would.
pub(crate) async fn type_code(
    app: &TestApp,
    link: &str,
    cookie: Option<&str>,
    token: Option<&str>,
    code: &str,
) -> Page {
    let mut form = format!("code={code}");
    if let Some(t) = token {
        form.push_str(&format!("&form_token={t}"));
    }
    let mut req = app
        .request(Method::POST, link, None)
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    page(req.send().await.unwrap()).await
}

async fn read(app: &TestApp, id: &str, cid: &str) -> Value {
    app.get_json(
        &format!("/v1/interactions/{id}/challenges/{cid}"),
        Some(&app.keys.bot),
    )
    .await
}

async fn failures(app: &TestApp, customer: &str) -> Value {
    app.get_json(&format!("/v1/subjects/{customer}"), Some(&app.keys.agent))
        .await["failures"]
        .clone()
}

async fn metric(app: &TestApp, result: &str) -> f64 {
    let series = format!("chatgate_code_entries_total{{result=\"{result}\"}}");
    app.metric_value(&series).await.expect("the series")
}

both_stores!(
    a_code_typed_on_the_page_shows_a_binding_code_that_the_chat_then_verifies,
    setup: agents_read_codes(),
    |app: TestApp| async move {
        let id = interaction(&app, "cust-page").await;
        let (cid, code) = start_page_otp(&app, &id).await;
        let link = last_code_page_link(&app, "code_entry_link").await;
        let msgs = app.chat_messages().await;
        assert!(
            msgs.iter()
                .all(|m| !m["text"].as_str().unwrap_or_default().contains(&code)),
            "the code is never in the chat"
        );
        assert_eq!(read(&app, &id, &cid).await["entry"], "page");
        assert_eq!(read(&app, &id, &cid).await["awaiting_code"], false);

        let p = open(&app, &link).await;
        assert_eq!(p.status, 200, "{}", p.body);
        let h = &p.headers;
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        let set_cookie = h["set-cookie"].to_str().unwrap();
        for part in ["Path=/c/", "HttpOnly", "SameSite=Strict"] {
            assert!(set_cookie.contains(part), "{set_cookie}");
        }
        assert!(p.body.contains("<html lang=\"en\">"), "{}", p.body);
        assert!(p.body.contains("autocomplete=\"one-time-code\""));
        assert!(p.body.contains("inputmode=\"numeric\""));
        // The team and the conversation's channel, and the warning.
        let said = "Acme Bank sent you a code for the chat conversation you are in now. \
                    Type it here only if you are chatting with Acme Bank right now.";
        assert!(p.body.contains(said), "{}", p.body);
        // A preview uses nothing up.
        assert_eq!(open(&app, &link).await.status, 200);
        assert_eq!(read(&app, &id, &cid).await["attempts_remaining"], 3);

        // The bot may not verify it: 409, nothing counted.
        let res = app.verify_code(&id, &cid, &code).await;
        assert_problem(res, 409, "entry_page").await;
        assert_eq!(read(&app, &id, &cid).await["attempts_remaining"], 3);

        let right = metric(&app, "right").await;
        let (cookie, token) = (p.cookie.as_deref(), p.token.as_deref());
        let shown = type_code(&app, &link, cookie, token, &code).await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert!(shown.body.contains("That is the code. Type <strong>"), "{}", shown.body);
        let bind = bound_code(&shown);
        assert_eq!(bind.len(), 6, "otp.length digits");
        assert_ne!(bind, code, "never the code just typed");
        assert!(metric(&app, "right").await >= right + 1.0);
        // Nothing is authenticated yet: the challenge awaits the chat.
        assert_eq!(app.get(&id).await["status"], "pending");
        let c = read(&app, &id, &cid).await;
        assert_eq!(
            (c["state"].as_str(), c["entry"].as_str(), c["awaiting_code"].as_bool()),
            (Some("open"), Some("page"), Some(true)),
            "{c}"
        );
        // The page shows the binding code once: its link is used.
        let used = open(&app, &link).await;
        assert_eq!(used.status, 410, "{}", used.body);
        assert!(!used.body.contains(&bind));
        assert_eq!(type_code(&app, &link, cookie, token, &code).await.status, 410);
        // In the chat, the code typed on the page answers nothing now:
        // counted as a wrong code.
        let res = app.verify_code(&id, &cid, &code).await;
        assert_problem(res, 401, "invalid_code").await;
        assert_eq!(failures(&app, "cust-page").await, 1);

        let res = app.verify_code(&id, &cid, &bind).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let v = app.get(&id).await;
        assert_eq!(v["status"], "authenticated");
        assert_eq!(v["method"], "otp");
        assert_eq!(failures(&app, "cust-page").await, 0, "cleared by the binding code");
        // Used: it awaits nothing (a chat challenge's read has no
        // `awaiting_code` at all).
        assert_ne!(read(&app, &id, &cid).await["awaiting_code"], true);
        // Used: the link answers its 410 page, saying it is done.
        let done = open(&app, &link).await;
        assert_eq!(done.status, 410);
        assert!(done.body.contains("you are verified"), "{}", done.body);
        let unknown = open(&app, "/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
        assert_eq!(unknown.status, 404);
    }
);

both_stores!(
    a_link_relayed_to_the_number_s_owner_authenticates_no_stranger_s_chat,
    setup: agents_read_codes(),
    |app: TestApp| async move {
        // The attacker's chat names the victim's number; the code goes to
        // the victim, the link into the attacker's chat.
        let attacker = interaction(&app, "cust-victim").await;
        let (cid, code) = start_page_otp(&app, &attacker).await;
        let link = last_code_page_link(&app, "code_entry_link").await;
        // Relayed: the victim opens it in their own browser (their own
        // cookie jar) and types the code their phone received, as the
        // bank's own page invites them to.
        let victim = open(&app, &link).await;
        assert!(victim.body.contains("only if you are chatting with Acme Bank right now"));
        let (cookie, token) = (victim.cookie.as_deref(), victim.token.as_deref());
        let shown = type_code(&app, &link, cookie, token, &code).await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        let bind = bound_code(&shown);
        // The attacker's chat is not authenticated: the factor proved
        // the number, not who is in the conversation.
        let v = app.get(&attacker).await;
        assert_ne!(v["status"], "authenticated", "{v}");
        assert!(v["method"].is_null(), "{v}");
        // From the attacker's own browser the link shows nothing more.
        let theirs = open(&app, &link).await;
        assert_eq!(theirs.status, 410);
        assert!(!theirs.body.contains(&bind));
        // Whatever the attacker's bot passes on but the binding code
        // (which only the victim saw) proves nothing, and is counted.
        let res = app.verify_code(&attacker, &cid, &code).await;
        assert_problem(res, 401, "invalid_code").await;
        let guess = wrong_code(&bind);
        let res = app.verify_code(&attacker, &cid, &guess).await;
        assert_problem(res, 401, "invalid_code").await;
        assert_ne!(app.get(&attacker).await["status"], "authenticated");
        assert_eq!(read(&app, &attacker, &cid).await["attempts_remaining"], 1);
    }
);

both_stores!(
    wrong_codes_on_the_page_count_as_verify_counts_them,
    setup: agents_read_codes(),
    |app: TestApp| async move {
        let id = interaction(&app, "cust-wrong").await;
        let (cid, code) = start_page_otp(&app, &id).await;
        let link = last_code_page_link(&app, "code_entry_link").await;
        let p = open(&app, &link).await;
        let (cookie, token) = (p.cookie.as_deref(), p.token.as_deref());
        let wrong = wrong_code(&code);
        let before = metric(&app, "wrong").await;
        for left in [2, 1] {
            let w = type_code(&app, &link, cookie, token, &wrong).await;
            assert_eq!(w.status, 200, "{}", w.body);
            let said = format!("That is not the code. {left} tries left.");
            assert!(w.body.contains(&said), "{}", w.body);
            assert!(w.body.contains("name=\"code\""), "the form again");
            assert_eq!(read(&app, &id, &cid).await["attempts_remaining"], left);
        }
        let end = type_code(&app, &link, cookie, token, &wrong).await;
        assert_eq!(end.status, 200);
        assert!(
            end.body.contains("This code can no longer be used"),
            "{}",
            end.body
        );
        assert_eq!(read(&app, &id, &cid).await["attempts_remaining"], 0);
        assert_eq!(failures(&app, "cust-wrong").await, 3);
        assert!(metric(&app, "wrong").await >= before + 3.0);
        assert_eq!(open(&app, &link).await.status, 410);
        let late = type_code(&app, &link, cookie, token, &code).await;
        assert_eq!(late.status, 410);
        assert_ne!(app.get(&id).await["status"], "authenticated");
    }
);

both_stores!(
    two_wrong_codes_at_once_count_twice,
    setup: agents_read_codes(),
    |app: TestApp| async move {
        let id = interaction(&app, "cust-race").await;
        let (cid, code) = start_page_otp(&app, &id).await;
        let link = last_code_page_link(&app, "code_entry_link").await;
        let p = open(&app, &link).await;
        let (cookie, token) = (p.cookie.as_deref(), p.token.as_deref());
        let wrong = wrong_code(&code);
        let (a, b) = tokio::join!(
            type_code(&app, &link, cookie, token, &wrong),
            type_code(&app, &link, cookie, token, &wrong),
        );
        assert_eq!((a.status, b.status), (200, 200));
        assert_eq!(read(&app, &id, &cid).await["attempts_remaining"], 1);
        assert_eq!(failures(&app, "cust-race").await, 2);
    }
);

both_stores!(
    a_post_without_its_browser_s_token_or_past_ten_a_minute_counts_nothing,
    setup: agents_read_codes(),
    |app: TestApp| async move {
        let id = interaction(&app, "cust-token").await;
        let (cid, code) = start_page_otp(&app, &id).await;
        let link = last_code_page_link(&app, "code_entry_link").await;
        let mine = open(&app, &link).await;
        let theirs = open(&app, &link).await;
        let refused = metric(&app, "refused").await;
        let wrong = wrong_code(&code);
        let (my_cookie, my_token) = (mine.cookie.as_deref(), mine.token.as_deref());
        for (cookie, token) in [
            (None, my_token),
            (my_cookie, None),
            (my_cookie, theirs.token.as_deref()),
            (theirs.cookie.as_deref(), my_token),
        ] {
            let p = type_code(&app, &link, cookie, token, &wrong).await;
            assert_eq!(p.status, 403, "{}", p.body);
        }
        // Another link's token.
        let other = interaction(&app, "cust-other").await;
        start_page_otp(&app, &other).await;
        let other_link = last_code_page_link(&app, "code_entry_link").await;
        let o = open(&app, &other_link).await;
        let p = type_code(&app, &link, o.cookie.as_deref(), o.token.as_deref(), &wrong).await;
        assert_eq!(p.status, 403);
        assert_eq!(read(&app, &id, &cid).await["attempts_remaining"], 3);
        assert_eq!(failures(&app, "cust-token").await, 0);
        assert!(metric(&app, "refused").await >= refused + 5.0);
        // Five more make ten POSTs this minute; the eleventh is 429, even
        // with the right code and its token, and counts nothing.
        for _ in 0..5 {
            let p = type_code(&app, &link, None, None, &wrong).await;
            assert_eq!(p.status, 403);
        }
        let limited = type_code(&app, &link, my_cookie, my_token, &code).await;
        assert_eq!(limited.status, 429, "{}", limited.body);
        assert_ne!(app.get(&id).await["status"], "authenticated");
        app.advance(61);
        let shown = type_code(&app, &link, my_cookie, my_token, &code).await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert_eq!(read(&app, &id, &cid).await["awaiting_code"], true);
        let res = app.verify_code(&id, &cid, &bound_code(&shown)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(app.get(&id).await["status"], "authenticated");
    }
);

both_stores!(
    a_session_pin_is_typed_on_the_page_behind_its_link,
    setup: agents_read_codes(),
    |app: TestApp| async move {
        let id = interaction(&app, "cust-pin").await;
        let res = start_raw(&app, &id, json!({"method": "pin", "entry": "page"})).await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["entry"], "page");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let msgs = app.chat_messages().await;
        assert!(msgs.iter().all(|m| m["purpose"] != "pin_prompt"));
        let link = last_code_page_link(&app, "pin_entry_link").await;
        let p = open(&app, &link).await;
        let said = "Type your PIN for the chat conversation with Acme Bank you are in now, \
                    only if you are chatting with Acme Bank right now.";
        assert!(p.body.contains(said), "{}", p.body);
        let res = app.verify_code(&id, &cid, "482913").await;
        assert_problem(res, 409, "entry_page").await;
        let (cookie, token) = (p.cookie.as_deref(), p.token.as_deref());
        let shown = type_code(&app, &link, cookie, token, "482913").await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert_ne!(app.get(&id).await["status"], "authenticated");
        let res = app.verify_code(&id, &cid, &bound_code(&shown)).await;
        assert_eq!(res.status(), 200);
        let v = app.get(&id).await;
        assert_eq!(
            (v["status"].clone(), v["method"].clone()),
            (json!("authenticated"), json!("pin"))
        );
    }
);

both_stores!(
    the_page_is_asked_for_only_where_the_code_does_not_go_into_the_chat,
    setup: agents_read_codes(),
    |app: TestApp| async move {
        let id = interaction(&app, "cust-ask").await;
        for body in [
            json!({"method": "otp", "entry": "page"}),
            json!({"method": "otp", "delivery": "chat", "entry": "page"}),
            json!({"method": "network", "entry": "page", "to": "+447400123456"}),
            json!({"method": "app", "entry": "page"}),
            json!({"method": "otp", "delivery": "agent", "entry": "browser"}),
        ] {
            let b = assert_problem(
                start_raw(&app, &id, body.clone()).await,
                422,
                "invalid_request",
            )
            .await;
            let detail = b["detail"].as_str().unwrap();
            assert!(detail.starts_with("entry:"), "{body}: {detail}");
        }
        let sent = app.chat_messages().await.len();
        assert_eq!(sent, 0, "nothing was sent");
        // The default is the chat, as before.
        let res = start_raw(&app, &id, json!({"method": "otp", "delivery": "agent"})).await;
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["entry"], "chat");
        let cid = c["challenge_id"].as_str().unwrap();
        assert_eq!(read(&app, &id, cid).await["entry"], "chat");
    }
);

/// An `smtp` channel beside the chat; nothing reaches its server in these
/// tests (port 9 answers nothing).
fn with_email_channel() -> Setup {
    let smtp =
        "name = \"email\"\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\n\
                from = \"no-reply@acme.example\"\n[templates]\nsubject = \"Your code\"\n";
    Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        extra_channels: vec![("email".to_string(), smtp.to_string())],
        ..Setup::default()
    }
}

both_stores!(
    the_page_is_refused_where_its_link_could_reach_no_one,
    setup: with_email_channel(),
    |app: TestApp| async move {
        // An e-mail conversation without an address: its link could go
        // nowhere, so the code does not go either.
        let v = app
            .create(json!({"channel": "email", "conversation_id": "thread-1", "customer_ref": "cust-mail"}))
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let body = json!({"method": "otp", "delivery": "agent", "entry": "page"});
        let b = assert_problem(start_raw(&app, &id, body).await, 422, "invalid_request").await;
        let detail = b["detail"].as_str().unwrap();
        assert!(detail.starts_with("entry:"), "{detail}");
        assert!(app.get(&id).await["open_challenge"].is_null(), "no challenge opened");
        // Asked in the chat, the same challenge is taken.
        let res = start_raw(&app, &id, json!({"method": "otp", "delivery": "agent"})).await;
        assert_eq!(res.status(), 201);
    }
);
