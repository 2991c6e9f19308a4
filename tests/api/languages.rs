//! Languages (docs/api.md#languages): one language per conversation, asked
//! by a request or a pre-chat assertion, matched against the supported
//! list, and spoken by every message from then on.
use base64::Engine;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// English and Spanish, with Spanish texts for the code, the link and the
/// PIN prompt.
fn spanish() -> Setup {
    Setup {
        defaults: r##"
[defaults.locale]
supported = ["en", "es"]
[defaults.translations.es]
otp = "Tu código es #PIN#. Caduca en #MINUTES# minutos."
login_link = "Inicia sesión para continuar: #URL#"
"##
        .into(),
        ..Setup::default()
    }
}

/// The last chat message's text for `purpose`.
async fn last_text(app: &TestApp, purpose: &str) -> String {
    let msgs = app.chat_messages().await;
    let m = msgs.iter().rev().find(|m| m["purpose"] == purpose);
    m.expect("a message")["text"].as_str().unwrap().to_string()
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.post_json(path, Some(&app.keys.bot), &body).await
}

both_stores!(
    a_conversation_speaks_the_language_it_asked_for_until_it_switches,
    setup: spanish(),
    |app: TestApp| async move {
        let conversation = Uuid::now_v7().to_string();
        let body = json!({"channel": "webchat", "conversation_id": conversation, "locale": "es-MX"});
        let created = app.create(body).await;
        assert_eq!(created["locale"], "es");
        assert_eq!(created["requested_locale"], "es-MX");
        let id = created["id"].as_str().unwrap().to_string();
        app.start_otp(&id).await;
        assert!(last_text(&app, "otp").await.starts_with("Tu código es "));
        // The challenge request switches to English, its own message included.
        let path = format!("/v1/interactions/{id}/challenges");
        let res = post(&app, &path, json!({"method": "otp", "locale": "en-GB"})).await;
        assert_eq!(res.status(), 201);
        assert!(last_text(&app, "otp").await.starts_with("Your verification code is "));
        let read = app.get(&id).await;
        assert_eq!((read["locale"].as_str(), read["requested_locale"].as_str()), (Some("en"), Some("en-GB")));
        // A create that finds the interaction switches it back.
        let body = json!({"channel": "webchat", "conversation_id": conversation, "locale": "ES"});
        let res = post(&app, "/v1/interactions", body).await;
        assert_eq!(res.status(), 200);
        let found: Value = res.json().await.unwrap();
        assert_eq!((found["id"].as_str(), found["locale"].as_str()), (Some(id.as_str()), Some("es")));
        // A request without `locale` keeps it; the link's message and token speak it.
        let res = post(&app, &format!("/v1/interactions/{id}/login-links"), json!({"deliver": true})).await;
        assert_eq!(res.status(), 201);
        let link: Value = res.json().await.unwrap();
        assert!(last_text(&app, "login_link").await.starts_with("Inicia sesión para continuar: "));
        let token = link["token"].as_str().unwrap();
        let claims = token.split('.').nth(1).unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap();
        let claims: Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["locale"], "es");
        // A language not supported is the default one, as asked kept.
        let res = post(&app, &format!("/v1/interactions/{id}/login-links"), json!({"locale": "fr-CA"})).await;
        assert_eq!(res.status(), 201);
        let read = app.get(&id).await;
        assert_eq!((read["locale"].as_str(), read["requested_locale"].as_str()), (Some("en"), Some("fr-CA")));
    }
);

both_stores!(
    an_interaction_that_asked_nothing_speaks_the_default,
    setup: spanish(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let read = app.get(&id).await;
        assert_eq!(read["locale"], "en");
        assert_eq!(read["requested_locale"], Value::Null);
        app.start_otp(&id).await;
        assert!(last_text(&app, "otp").await.starts_with("Your verification code is "));
    }
);

both_stores!(
    a_locale_that_is_not_bcp_47_is_422_and_changes_nothing,
    setup: spanish(),
    |app: TestApp| async move {
        let created = app
            .create(json!({"channel": "webchat", "conversation_id": Uuid::now_v7().to_string(), "locale": "es"}))
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        let long = format!("en-{}", ["abcdefgh"; 4].join("-"));
        for bad in ["", "en_US", "e", "es-MX!", long.as_str()] {
            let conversation = created["conversation_id"].clone();
            let requests = [
                ("/v1/interactions".to_string(), json!({"channel": "webchat", "conversation_id": conversation, "locale": bad})),
                (format!("/v1/interactions/{id}/login-links"), json!({"locale": bad})),
                (format!("/v1/interactions/{id}/challenges"), json!({"method": "otp", "locale": bad})),
            ];
            for (path, body) in requests {
                let res = post(&app, &path, body).await;
                let problem = assert_problem(res, 422, "invalid_request").await;
                assert!(problem.to_string().contains("locale"), "{problem}");
            }
        }
        let read = app.get(&id).await;
        assert_eq!((read["locale"].as_str(), read["requested_locale"].as_str()), (Some("es"), Some("es")));
        assert_eq!(read["status"], "unauthenticated");
        assert!(app.chat_messages().await.is_empty());
    }
);

/// Tags well-formed by RFC 5646 that no locale library knows: a
/// private-use tag and three grandfathered ones, supported and translated.
fn klingon_and_others() -> Setup {
    Setup {
        defaults: r##"
[defaults.locale]
supported = ["en", "x-klingon", "i-klingon", "en-GB-oed", "sgn-BE-FR"]
[defaults.translations."x-klingon"]
otp = "nuqneH #PIN# (#MINUTES#)"
[defaults.translations."i-klingon"]
otp = "Qapla' #PIN# (#MINUTES#)"
"##
        .into(),
        ..Setup::default()
    }
}

both_stores!(
    private_use_and_grandfathered_tags_are_taken_and_matched,
    setup: klingon_and_others(),
    |app: TestApp| async move {
        for (asked, matched) in [
            ("x-klingon", "x-klingon"),
            ("X-KLINGON-tlh", "x-klingon"),
            ("i-klingon", "i-klingon"),
            ("I-Klingon", "i-klingon"),
            ("en-GB-oed", "en-GB-oed"),
            ("en-gb-OED", "en-GB-oed"),
            ("sgn-BE-FR", "sgn-BE-FR"),
            ("sgn-be-fr", "sgn-BE-FR"),
        ] {
            let body = json!({"channel": "webchat", "conversation_id": Uuid::now_v7().to_string(), "locale": asked});
            let res = post(&app, "/v1/interactions", body).await;
            assert_eq!(res.status(), 201, "{asked}");
            let created: Value = res.json().await.unwrap();
            assert_eq!(created["locale"], matched, "{asked}");
            assert_eq!(created["requested_locale"], asked);
        }
        // The texts of such a language are sent in it.
        let body = json!({"channel": "webchat", "conversation_id": Uuid::now_v7().to_string(), "locale": "i-klingon"});
        let id = app.create(body).await["id"].as_str().unwrap().to_string();
        let path = format!("/v1/interactions/{id}/challenges");
        let res = post(&app, &path, json!({"method": "otp", "locale": "x-klingon"})).await;
        assert_eq!(res.status(), 201);
        assert!(last_text(&app, "otp").await.starts_with("nuqneH "));
        // Not well-formed still is 422, and changes nothing.
        for bad in ["i-whatever", "x", "en-GB-oed-x", "de-419-DE", "a-DE", "x-abcdefghi"] {
            let res = post(&app, &path, json!({"method": "otp", "locale": bad})).await;
            let problem = assert_problem(res, 422, "invalid_request").await;
            assert!(problem.to_string().contains("locale"), "{bad}: {problem}");
        }
        let read = app.get(&id).await;
        assert_eq!((read["locale"].as_str(), read["requested_locale"].as_str()), (Some("x-klingon"), Some("x-klingon")));
    }
);

both_stores!(
    an_assertion_s_locale_counts_only_while_no_request_asked,
    setup: spanish(),
    |app: TestApp| async move {
        let assert_with = |locale: &str| {
            let mut claims = app.assertion_claims("cust-42");
            claims["locale"] = json!(locale);
            json!({"assertion": app.assertion(claims)})
        };
        let id = app.new_interaction().await;
        let res = post(&app, &format!("/v1/interactions/{id}/assertion"), assert_with("es-ES")).await;
        assert_eq!(res.status(), 200);
        let read = app.get(&id).await;
        assert_eq!((read["locale"].as_str(), read["requested_locale"].as_str()), (Some("es"), Some("es-ES")));
        // A request's choice stands over a later assertion's.
        let created = app
            .create(json!({"channel": "webchat", "conversation_id": Uuid::now_v7().to_string(), "locale": "en"}))
            .await;
        let other = created["id"].as_str().unwrap();
        let res = post(&app, &format!("/v1/interactions/{other}/assertion"), assert_with("es")).await;
        assert_eq!(res.status(), 200);
        let read = app.get(other).await;
        assert_eq!((read["locale"].as_str(), read["requested_locale"].as_str()), (Some("en"), Some("en")));
    }
);

/// Spanish and Arabic, with the pages' texts in both.
fn pages_in_three() -> Setup {
    Setup {
        defaults: r##"
[defaults.locale]
supported = ["en", "es", "ar"]
[defaults.translations.es]
page_link_expired = "Este enlace ha caducado\nPide uno nuevo en el chat."
page_link_used = "Este enlace ya se usó\nPide uno nuevo en el chat."
page_link_unknown = "No conocemos este enlace\nComprueba que lo copiaste entero."
[defaults.translations.ar]
page_link_expired = "انتهت صلاحية هذا الرابط\nاطلب رابطًا جديدًا في المحادثة."
page_link_unknown = "لا نعرف هذا الرابط\nتأكد من نسخه كاملًا."
"##
        .into(),
        ..Setup::default()
    }
}

/// The page at `path` for a browser (with `Accept-Language` when given):
/// its status and HTML.
async fn page(app: &TestApp, path: &str, accept_language: Option<&str>) -> (u16, String) {
    let mut rb = app
        .request(reqwest::Method::GET, path, None)
        .header("accept", "text/html");
    if let Some(l) = accept_language {
        rb = rb.header("accept-language", l);
    }
    let res = rb.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn short_path(link: &Value) -> String {
    let url = link["short_url"].as_str().unwrap();
    url.trim_start_matches("http://gateway.test").to_string()
}

both_stores!(
    the_link_pages_speak_the_interaction_s_language,
    setup: pages_in_three(),
    |app: TestApp| async move {
        // Spanish: a used link, then an expired one.
        let id = app.new_interaction().await;
        let used = app.issue_link(&id, json!({"locale": "es-419"})).await;
        let res = app.callback(used["token"].as_str().unwrap(), "success", json!({"id": "c1"})).await;
        assert_eq!(res.status(), 200);
        let (status, html) = page(&app, &short_path(&used), Some("en")).await;
        assert_eq!(status, 410);
        assert!(html.contains("<html lang=\"es\">"), "{html}");
        assert!(html.contains("<h1>Este enlace ya se usó</h1>"), "{html}");
        assert!(html.contains("<p>Pide uno nuevo en el chat.</p>"), "{html}");
        // Arabic, right to left; a key not translated falls back to English.
        let other = app.new_interaction().await;
        let link = app.issue_link(&other, json!({"locale": "ar-EG"})).await;
        app.advance(601);
        let (status, html) = page(&app, &short_path(&link), None).await;
        assert_eq!(status, 410);
        assert!(html.contains("<html lang=\"ar\" dir=\"rtl\">"), "{html}");
        assert!(html.contains("<h1>انتهت صلاحية هذا الرابط</h1>"), "{html}");
        let (_, html) = page(&app, &short_path(&used), None).await;
        assert!(html.contains("<html lang=\"es\">"), "{html}");
    }
);

both_stores!(
    a_page_of_no_interaction_speaks_the_visitor_s_accept_language,
    setup: pages_in_three(),
    |app: TestApp| async move {
        let path = "/l/neverissued0000000000000000";
        let (status, html) = page(&app, path, Some("fr;q=0.9, es-MX;q=0.8, ar;q=0.5")).await;
        assert_eq!(status, 404);
        assert!(html.contains("<html lang=\"es\">"), "{html}");
        assert!(html.contains("<h1>No conocemos este enlace</h1>"), "{html}");
        let (_, html) = page(&app, "/l/a/b", Some("ar-SA, es;q=0.9")).await;
        assert!(html.contains("<html lang=\"ar\" dir=\"rtl\">"), "{html}");
        assert!(html.contains("<h1>لا نعرف هذا الرابط</h1>"), "{html}");
        let (_, html) = page(&app, path, Some("de")).await;
        assert!(html.contains("<html lang=\"en\">"), "{html}");
        assert!(html.contains("<h1>We don\u{2019}t know this link</h1>"), "{html}");
    }
);

both_stores!(
    a_page_is_marked_with_the_language_of_the_text_it_shows,
    setup: pages_in_three(),
    |app: TestApp| async move {
        // Arabic has no page_link_used: the English text, marked English,
        // left to right.
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({"locale": "ar"})).await;
        let res = app.callback(link["token"].as_str().unwrap(), "success", json!({"id": "c1"})).await;
        assert_eq!(res.status(), 200);
        let (status, html) = page(&app, &short_path(&link), None).await;
        assert_eq!(status, 410);
        assert!(html.contains("<html lang=\"en\">"), "{html}");
        assert!(html.contains("<h1>This link was already used</h1>"), "{html}");
        // Accept-Language over several header lines is one list.
        let res = app
            .request(reqwest::Method::GET, "/l/neverissued0000000000000000", None)
            .header("accept", "text/html")
            .header("accept-language", "fr")
            .header("accept-language", "es-MX;q=0.8")
            .send()
            .await
            .unwrap();
        let html = res.text().await.unwrap();
        assert!(html.contains("<html lang=\"es\">"), "{html}");
        assert!(html.contains("<h1>No conocemos este enlace</h1>"), "{html}");
    }
);
