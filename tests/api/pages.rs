//! The pages a customer's browser sees at a short link (docs/api.md#short-links: 404
//! never issued, 410 expired; in the visitor's words, readable on
//! a phone). API clients keep getting problem+json.
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The short link's path of an issued link.
pub(crate) fn short_path(link: &serde_json::Value) -> String {
    link["short_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://gateway.test")
        .to_string()
}

/// Fetches `path` as a browser; asserts a complete, styled page with
/// `status` that says `heading` and `advice`.
async fn assert_page(app: &TestApp, path: &str, status: u16, heading: &str, advice: &str) {
    let res = app
        .request(Method::GET, path, None)
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), status, "{path}");
    let h = res.headers();
    assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("style-src 'sha256-"), "{csp}");
    let html = res.text().await.unwrap();
    for part in [
        "<!doctype html>",
        "<html lang=\"en\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>",
        &format!("<h1>{heading}</h1>"),
        &format!("<p>{advice}</p>"),
        "<style>",
    ] {
        assert!(html.contains(part), "{path}: {part} missing in {html}");
    }
    assert!(!html.contains("problem"), "{html}");
}

both_stores!(
    a_browser_gets_a_page_in_its_visitors_words_for_every_short_link_failure,
    |app: TestApp| async move {
        // Never issued (also a code that is no UTF-8, far too long, empty, or
        // with more path after it).
        let unknown = (
            "We don\u{2019}t know this link",
            "Check you copied all of it.",
        );
        for path in [
            "/l/neverissued0000000000000000".to_string(),
            "/l/%FF".to_string(),
            format!("/l/{}", "a".repeat(200)),
            "/l/".to_string(),
            "/l/code/with-more-after-it".to_string(),
        ] {
            assert_page(&app, &path, 404, unknown.0, unknown.1).await;
        }

        // Already used: the login was made with it.
        let id = app.new_interaction().await;
        let used = app.issue_link(&id, json!({})).await;
        let res = app
            .callback(
                used["token"].as_str().unwrap(),
                "success",
                json!({"id": "c1"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let used_path = short_path(&used);
        assert_page(
            &app,
            &used_path,
            410,
            "This link was already used",
            "Ask in the chat for a new one.",
        )
        .await;

        // API clients (no Accept, `*/*`, JSON) get problem+json, as before
        // (the used link's detail says so).
        for accept in [None, Some("*/*"), Some("application/json")] {
            let get = |path: &str| {
                let rb = app.request(Method::GET, path, None);
                match accept {
                    Some(a) => rb.header("accept", a),
                    None => rb,
                }
                .send()
            };
            let res = get("/l/neverissued0000000000000000").await.unwrap();
            assert_problem(res, 404, "not_found").await;
            let res = get(&used_path).await.unwrap();
            let body = assert_problem(res, 410, "token_expired").await;
            assert!(
                body["detail"].as_str().unwrap().contains("already used"),
                "{body}"
            );
        }

        // Expired: its token's `exp` passed (token_ttl 10 minutes).
        let fresh = app.issue_link(&id, json!({})).await;
        let fresh_path = short_path(&fresh);
        let res = app
            .request(Method::GET, &fresh_path, None)
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "a valid link still redirects a browser");
        app.advance(601);
        assert_page(
            &app,
            &fresh_path,
            410,
            "This link has expired",
            "Ask in the chat for a new one.",
        )
        .await;
        let res = app
            .request(Method::GET, &fresh_path, None)
            .send()
            .await
            .unwrap();
        assert_problem(res, 410, "token_expired").await;
    }
);
