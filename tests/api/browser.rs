//! The agent console (docs/api.md#the-agent-console) in a real browser: Debian's headless
//! `chromium` through `chromedriver` (`browser/driver.rs`), against the
//! gateway on the memory store (and the demo's happy path, `browser/demo.rs`).
//! Also the console's headers, without a browser. Screenshots go to `target/screenshots/`, or to `docs/` (shown in
//! the README) with `CHATGATE_UPDATE_SCREENSHOTS=1`.
mod agent;
mod ciba;
mod code_entry;
mod console_sign_in;
mod delivery;
mod demo;
mod driver;
mod ladder;
mod languages;
mod lists;
mod network_vonage;
mod oidc;
mod origins;
mod proxy;
mod recognized;
mod resume;
#[path = "../../examples/support/mod.rs"]
mod support;
mod wallet;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use self::driver::Browser;
use crate::helpers::*;

const TWO_S: Duration = Duration::from_secs(2);
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// The row of interaction `id`, as a JS expression on `arguments[0]`.
const ROW: &str = "document.querySelector('[data-interaction-id=\"' + arguments[0] + '\"]')";

/// Opens the console of the gateway at `base` and signs in with `key`;
/// waits for the live stream.
async fn open_console(b: &Browser, base: &str, key: &str) {
    b.c.goto(&format!("{base}/console")).await.unwrap();
    // By keyboard: the key, then Enter.
    let enter = char::from(fantoccini::key::Key::Enter);
    b.fill(
        "form input[type=password][name=api_key]",
        &format!("{key}{enter}"),
    )
    .await;
    b.wait_for(
        "the event stream is open",
        "document.body.dataset.stream === 'open' && \
         getComputedStyle(document.getElementById('key-form')).display === 'none'",
        vec![],
        Duration::from_secs(5),
    )
    .await;
}

/// Waits for the row of `id` to show `status` (and ✓ exactly when authenticated).
async fn wait_status(b: &Browser, id: &str, status: &str) -> Duration {
    let expr = format!(
        "{ROW} && {ROW}.dataset.status === '{status}' && {ROW}.textContent.includes('✓') === {}",
        status == "authenticated"
    );
    b.wait_for(
        &format!("{id} shows {status}"),
        &expr,
        vec![json!(id)],
        TWO_S,
    )
    .await
}

fn no_key_in(urls: &[String], keys: &[&str]) {
    assert!(
        urls.iter().any(|u| u.contains("/v1/events")),
        "the network log holds the page's requests: {urls:?}"
    );
    for u in urls {
        for k in keys {
            assert!(!u.contains(k), "an API key in a request URL: {u}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_its_own_strict_headers() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let res = app
        .request(Method::GET, "/console", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["content-security-policy"], CONSOLE_CSP);
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"<input type="password" id="api_key" name="api_key""#));
    // Password managers are asked not to save or fill the agent key.
    let field = page
        .split(r#"name="api_key""#)
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap();
    for opt_out in [
        r#"autocomplete="off""#,
        "data-1p-ignore",
        r#"data-lpignore="true""#,
        "data-bwignore",
    ] {
        assert!(field.contains(opt_out), "{opt_out} missing: {field}");
    }
    assert!(
        !page.contains("<script>") && !page.contains("<style"),
        "no inline code"
    );
    for (path, ct) in [
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let res = app.request(Method::GET, path, None).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ct));
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert!(res.text().await.unwrap().len() > 1000, "{path} has content");
    }
    // Other HTML answers keep the gateway's page policy: an expired short link.
    let id = app.new_interaction().await;
    let link = app.issue_link(&id, json!({})).await;
    app.advance(3600);
    let short = link["short_url"].as_str().unwrap();
    let path = &short[short.find("/l/").unwrap()..];
    let res = app
        .request(Method::GET, path, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    let h = res.headers();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("script-src"),
        "the pages' own policy, not the console's: {csp}"
    );
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_new_interactions_and_check_marks_live_and_logs_out() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    // A wrong key: a clear message, the key form again.
    b.c.goto(&app.url("/console")).await.unwrap();
    b.fill("form input[type=password][name=api_key]", "cg_wrong")
        .await;
    b.click("#key-form button[type=submit]").await;
    b.wait_for(
        "the refusal is shown",
        "!document.getElementById('message').hidden && \
         document.getElementById('message').textContent.includes('refused') && \
         !document.getElementById('key-form').hidden",
        vec![],
        TWO_S,
    )
    .await;
    let old = app.new_interaction().await;
    open_console(&b, &app.base, &app.keys.agent).await;
    b.wait_for("the older one is listed", ROW, vec![json!(old)], TWO_S)
        .await;
    assert_eq!(
        b.js(
            "return sessionStorage.length + ':' + localStorage.length + ':' + document.cookie",
            vec![]
        )
        .await,
        json!("1:0:"),
        "the key is in sessionStorage only"
    );

    // Created after the page opened: shown within 2 s, newest first.
    let conv = format!("conv-{}", uuid::Uuid::now_v7());
    let created = app
        .create(json!({"channel": "webchat", "conversation_id": conv, "customer_ref": "cust-42"}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let took = wait_status(&b, &id, "unauthenticated").await;
    eprintln!("new interaction shown after {took:?}");
    let first = b
        .js(
            "return document.querySelector('#list > li').dataset.interactionId",
            vec![],
        )
        .await;
    assert_eq!(first, json!(id), "newest first");
    let text = b
        .js(&format!("return {ROW}.textContent"), vec![json!(id)])
        .await;
    assert!(text.as_str().unwrap().contains(&conv), "{text}");

    // Another team's interactions never appear.
    let globex = app
        .post_json(
            "/v1/interactions",
            Some(&app.keys.globex_bot),
            &json!({"channel": "webchat", "conversation_id": "globex-secret-conv"}),
        )
        .await;
    assert_eq!(globex.status(), 201);
    let globex_id = globex.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The callback authenticates it: ✓ within 2 s.
    app.authenticate(&id, "cust-42").await;
    let took = wait_status(&b, &id, "authenticated").await;
    eprintln!("check mark shown after {took:?}");
    let method = b
        .js(
            &format!("return {ROW}.querySelector('.method').textContent"),
            vec![json!(id)],
        )
        .await;
    assert_eq!(method, json!("login_link"));
    let left = format!("{ROW}.querySelector('.left').textContent");
    let before = b.js(&format!("return {left}"), vec![json!(id)]).await;
    assert!(before.as_str().unwrap().contains(':'), "time left {before}");
    b.wait_for(
        "the time left counts down",
        &format!("{left} !== arguments[1]"),
        vec![json!(id), before],
        TWO_S,
    )
    .await;
    b.screenshot("console.png").await;
    let shown = b.js("return document.body.textContent", vec![]).await;
    assert!(!shown.as_str().unwrap().contains("globex-secret-conv"));
    assert_eq!(
        b.js(&format!("return !!{ROW}"), vec![json!(globex_id)])
            .await,
        json!(false)
    );

    // Logout from the page.
    b.c.find(fantoccini::Locator::Css(&format!(
        "[data-interaction-id=\"{id}\"] button.logout"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_status(&b, &id, "unauthenticated").await;
    assert_eq!(app.get(&id).await["status"], "unauthenticated");

    // The page reloaded keeps the key for the tab; no script error; no key in a URL.
    b.c.refresh().await.unwrap();
    b.wait_for(
        "signed in again from sessionStorage",
        ROW,
        vec![json!(id)],
        TWO_S,
    )
    .await;
    b.assert_no_script_errors().await;
    let mut urls = b.request_urls().await;
    urls.push(b.c.current_url().await.unwrap().to_string());
    no_key_in(&urls, &[&app.keys.agent, "cg_wrong"]);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reveals_an_open_code_only_where_the_team_allows_it() {
    let allowing = Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    };
    let Some(allowed) = spawn_with(Backend::Memory, allowing).await else {
        return;
    };
    let Some(refused) = spawn_app(Backend::Memory).await else {
        return;
    };
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    for (app, allows) in [(&allowed, true), (&refused, false)] {
        open_console(&b, &app.base, &app.keys.agent).await;
        let id = app.new_interaction().await;
        let (_cid, code) = app.start_otp(&id).await;
        wait_status(&b, &id, "pending").await;
        b.click(&format!("[data-interaction-id=\"{id}\"] button.reveal"))
            .await;
        let expected = if allows {
            code.clone()
        } else {
            "does not let agents see codes".to_string()
        };
        b.wait_for(
            &format!("the reveal answer ({allows})"),
            &format!("{ROW}.querySelector('.note').textContent.includes(arguments[1])"),
            vec![json!(id), json!(expected)],
            TWO_S,
        )
        .await;
        let note = b
            .js(
                &format!("return {ROW}.querySelector('.note').textContent"),
                vec![json!(id)],
            )
            .await;
        assert_eq!(note.as_str().unwrap().contains(&code), allows, "{note}");
        b.assert_no_script_errors().await;
    }
    b.close().await;
}
