//! Property tests (issue 6) over what a client sends from outside, through
//! the real server: API keys, ids in paths, short-link codes, JSON bodies,
//! submitted codes, assertions, and Standard Webhooks headers. Whatever is
//! sent, the answer is the documented problem (never a 5xx) and never
//! repeats the value. Each case is one request, so counts stay small.
use std::fmt::Debug;
use std::future::Future;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::HeaderValue;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// Never echoed: values carrying it must not come back in a `detail`.
const MARK: &str = "zq9x";

/// Runs `test` on `cases` values of `strategy`, one request each, on the
/// test's own (multi-thread) runtime; a failure is shrunk as usual.
fn run<S, F, Fut>(cases: u32, strategy: S, test: F)
where
    S: Strategy,
    S::Value: Debug,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let handle = tokio::runtime::Handle::current();
    let result =
        tokio::task::block_in_place(|| runner.run(&strategy, |v| handle.block_on(test(v))));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Text a hostile client might send, short enough for a URL or a header.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\x7f\u{200b}\u{202e}\u{feff}a-zA-Z0-9 ./%?#:=_+-]{0,40}",
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        (any::<char>(), 200..2_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// `s` as one path segment. `.` and `..` would move to another path.
fn segment(s: &str) -> Option<String> {
    (!matches!(s, "" | "." | "..")).then(|| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
}

/// A problem+json answer with `status` and a code among `codes`, whose
/// detail does not contain [`MARK`].
async fn problem(res: Response, status: &[u16], codes: &[&str]) -> Result<Value, TestCaseError> {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    prop_assert!(status.contains(&got), "status {} {}", got, body);
    prop_assert!(
        ct.starts_with("application/problem+json"),
        "{} {}",
        ct,
        body
    );
    let code = body["code"].as_str().unwrap_or("");
    prop_assert!(codes.contains(&code), "{}", body);
    let detail = body["detail"].as_str().unwrap_or("");
    prop_assert!(!detail.contains(MARK), "{}", body);
    Ok(body)
}

/// Header values a client can put on the wire (visible ASCII, space, tab,
/// and obs-text bytes).
fn header_value() -> impl Strategy<Value = HeaderValue> {
    let bytes = prop_oneof![
        "[ -~]{0,80}".prop_map(String::into_bytes),
        prop::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..80),
    ];
    bytes.prop_filter_map("a valid header value", |b| HeaderValue::from_bytes(&b).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_authorization_but_a_key_is_401() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let app = &app;
    let key = app.keys.bot.clone();
    // A configured key with one character changed, removed or added.
    let near_key = (any::<prop::sample::Index>(), "[!-~]", 0..3u8).prop_map(move |(i, c, how)| {
        let mut k = key.clone();
        let at = i.index(k.len());
        match how {
            0 => k.replace_range(at..=at, &c),
            1 => drop(k.remove(at)),
            _ => k.insert_str(at, &c),
        }
        format!("Bearer {k}")
    });
    let strategy = prop_oneof![
        header_value(),
        near_key.prop_filter_map("valid", |v| HeaderValue::from_str(&v).ok()),
        "(Bearer|bearer|Basic|Token) [ -~]{0,60}"
            .prop_filter_map("valid", |v| HeaderValue::from_str(&v).ok()),
    ];
    run(96, strategy, |auth| async move {
        let bot = format!("Bearer {}", app.keys.bot);
        prop_assume!(auth.to_str().map_or(true, |a| a.trim() != bot));
        let res = app
            .request(Method::GET, "/v1/interactions", None)
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        problem(res, &[401], &["unauthorized"]).await?;
        Ok(())
    });
}

both_stores!(any_id_in_a_path_names_nothing, |app: TestApp| async move {
    let app = &app;
    let id = prop_oneof![
        hostile(),
        any::<u128>().prop_map(|u| Uuid::from_u128(u).to_string()),
    ];
    run(48, (id.clone(), id), |(a, b)| async move {
        let (Some(a), Some(b)) = (segment(&a), segment(&b)) else {
            return Ok(());
        };
        let agent = Some(app.keys.agent.as_str());
        let res = app
            .request(Method::GET, &format!("/v1/interactions/{a}"), agent)
            .send()
            .await
            .unwrap();
        problem(res, &[404], &["not_found"]).await?;
        let path = format!("/v1/interactions/{a}/challenges/{b}/verify");
        let res = app
            .post_json(&path, Some(&app.keys.bot), &json!({"code": "123456"}))
            .await;
        problem(res, &[404], &["not_found"]).await?;
        Ok(())
    });
});

both_stores!(
    any_short_link_code_never_issued_is_404,
    |app: TestApp| async move {
        let app = &app;
        let code = prop_oneof![hostile(), "[A-Za-z0-9_-]{32}", "[A-Za-z0-9_-]{100,140}"];
        run(64, code, |code| async move {
            let Some(code) = segment(&code) else {
                return Ok(());
            };
            let res = app
                .request(Method::GET, &format!("/l/{code}"), None)
                .send()
                .await
                .unwrap();
            problem(res, &[404], &["not_found"]).await?;
            Ok(())
        });
    }
);

/// Any JSON value, a few levels deep, some strings carrying [`MARK`].
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        hostile().prop_map(Value::String),
        hostile().prop_map(|s| Value::String(format!("{s}{MARK}"))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A create body with each member either right or arbitrary.
fn create_body() -> impl Strategy<Value = Vec<u8>> {
    let member =
        |right: Value| prop_oneof![Just(Some(right)), Just(None), json_value().prop_map(Some)];
    let object = (
        member(json!("webchat")),
        member(json!("conv-1")),
        member(json!("cust-1")),
        member(json!("4829")),
    )
        .prop_map(|(channel, conversation, customer, pin)| {
            let mut o = serde_json::Map::new();
            for (k, v) in [
                ("channel", channel),
                ("conversation_id", conversation),
                ("customer_ref", customer),
                ("session_pin", pin),
            ] {
                if let Some(v) = v {
                    o.insert(k.into(), v);
                }
            }
            serde_json::to_vec(&Value::Object(o)).unwrap()
        });
    prop_oneof![
        object,
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 1..256),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_create_body_is_created_or_refused_as_documented() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let app = &app;
    run(96, create_body(), |body| async move {
        let res = app
            .request(Method::POST, "/v1/interactions", Some(&app.keys.bot))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        if res.status().is_success() {
            prop_assert!(matches!(res.status().as_u16(), 200 | 201));
        } else {
            problem(res, &[400, 422], &["invalid_request"]).await?;
        }
        Ok(())
    });
}

both_stores!(
    any_list_query_pages_or_is_refused,
    |app: TestApp| async move {
        for _ in 0..3 {
            app.new_interaction().await;
        }
        let app = &app;
        // Cursors are base64url of `score:member`: forge them with any score.
        let cursor = (
            prop_oneof![any::<i64>().prop_map(|n| n.to_string()), hostile()],
            prop_oneof![
                any::<u128>().prop_map(|u| Uuid::from_u128(u).to_string()),
                hostile()
            ],
        )
            .prop_map(|(score, member)| B64URL.encode(format!("{score}:{member}")));
        let value = || prop_oneof![hostile(), "[0-9-]{0,24}", "[A-Za-z0-9_=-]{0,60}"];
        let key = prop::sample::select(vec!["cursor", "limit", "status", "channel", "x"]);
        let pairs = prop::collection::vec((key, value()), 0..3);
        let query = (
            pairs,
            prop::option::of(cursor),
            prop::option::of("-?[0-9]{1,22}"),
        )
            .prop_map(|(mut pairs, cursor, limit)| {
                pairs.extend(cursor.map(|c| ("cursor", c)));
                pairs.extend(limit.map(|l| ("limit", l)));
                pairs
            });
        run(64, query, |query| async move {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
                .collect();
            let res = app
                .request(
                    Method::GET,
                    &format!("/v1/interactions?{}", q.join("&")),
                    Some(&app.keys.agent),
                )
                .send()
                .await
                .unwrap();
            if res.status().is_success() {
                prop_assert_eq!(res.status().as_u16(), 200);
            } else {
                problem(res, &[400, 422], &["invalid_request"]).await?;
            }
            Ok(())
        });
    }
);

both_stores!(
    malformed_codes_are_422_and_cost_no_attempt,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/challenges"),
                Some(&app.keys.bot),
                &json!({"method": "otp"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        let path = format!(
            "/v1/interactions/{id}/challenges/{}/verify",
            c["challenge_id"].as_str().unwrap()
        );
        let app = &app;
        let path = &path;
        let code = prop_oneof![
            hostile(),
            "[0-9]{21,40}",
            ("[0-9]{0,10}", "[^0-9]", "[0-9]{0,10}").prop_map(|(a, x, b)| format!("{a}{x}{b}")),
            "[\u{ff10}-\u{ff19}\u{660}-\u{669}]{1,10}",
        ]
        .prop_filter("not 1 to 20 ASCII digits", |s| {
            !((1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        });
        run(48, code, |code| async move {
            let res = app
                .post_json(path, Some(&app.keys.bot), &json!({ "code": code }))
                .await;
            let body = problem(res, &[422], &["invalid_request"]).await?;
            prop_assert_eq!(
                body["detail"].as_str(),
                Some("code: must be 1 to 20 digits")
            );
            Ok(())
        });
        let wrong_type = [json!(123456), json!(null), json!(["1"]), json!({"c": 1})];
        for code in wrong_type {
            let res = app
                .post_json(path, Some(&app.keys.bot), &json!({ "code": code }))
                .await;
            assert_problem(res, 400, "invalid_request").await;
        }
        // No attempt was spent: a well-formed wrong code finds all three left.
        let res = app
            .post_json(path, Some(&app.keys.bot), &json!({"code": "0"}))
            .await;
        let body = assert_problem(res, 401, "invalid_code").await;
        assert_eq!(body["attempts_remaining"], 2, "{body}");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_assertion_text_is_invalid_token() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let id = app.new_interaction().await;
    let app = &app;
    let path = &format!("/v1/interactions/{id}/assertion");
    let text = prop_oneof![
        hostile(),
        "[A-Za-z0-9_-]{10,40}\\.[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{0,43}",
    ];
    run(64, text, |assertion| async move {
        let res = app
            .post_json(
                path,
                Some(&app.keys.bot),
                &json!({ "assertion": assertion }),
            )
            .await;
        problem(res, &[401], &["invalid_token"]).await?;
        Ok(())
    });
    // A real assertion with one character changed.
    let good = app.assertion(app.assertion_claims("cust-1"));
    run(
        64,
        (any::<prop::sample::Index>(), "[A-Za-z0-9_.=-]"),
        |(i, c)| {
            let mut t = good.clone();
            let at = i.index(t.len());
            let changed = &t[at..=at] != c.as_str();
            t.replace_range(at..=at, &c);
            async move {
                if changed {
                    let res = app
                        .post_json(path, Some(&app.keys.bot), &json!({ "assertion": t }))
                        .await;
                    problem(res, &[401], &["invalid_token"]).await?;
                }
                Ok(())
            }
        },
    );
}

/// Three optional `webhook-*` header values.
fn webhook_headers() -> impl Strategy<Value = [Option<HeaderValue>; 3]> {
    let one = || {
        prop_oneof![
            Just(None),
            header_value().prop_map(Some),
            "v1,[A-Za-z0-9+/]{43}=( v1,[A-Za-z0-9+/]{43}=){0,2}"
                .prop_map(|s| Some(HeaderValue::from_str(&s).unwrap())),
            "[0-9]{1,12}".prop_map(|s| Some(HeaderValue::from_str(&s).unwrap())),
        ]
    };
    [one(), one(), one()]
}

async fn post_with_headers(
    app: &TestApp,
    path: &str,
    body: &Value,
    headers: [Option<HeaderValue>; 3],
) -> Response {
    let mut rb = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap());
    for (name, value) in ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .zip(headers)
    {
        if let Some(v) = value {
            rb = rb.header(name, v);
        }
    }
    rb.send().await.unwrap()
}

both_stores!(
    unsigned_customer_logout_is_invalid_signature,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-7").await;
        let app = &app;
        let team = prop_oneof![
            Just("acme".to_string()),
            Just("nobody".to_string()),
            "[a-z]{1,10}"
        ];
        run(
            48,
            (webhook_headers(), team),
            |(headers, team)| async move {
                let body = json!({"team": team, "customer_id": "cust-7"});
                let res = post_with_headers(app, "/v1/customers/logout", &body, headers).await;
                problem(res, &[401], &["invalid_signature"]).await?;
                Ok(())
            },
        );
        assert_eq!(app.get(&id).await["status"], "authenticated");
    }
);

both_stores!(
    callback_with_any_signature_headers_is_refused_and_uses_nothing,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let token = link["token"].as_str().unwrap().to_string();
        let app = &app;
        let body = &json!({"token": token, "outcome": "success", "customer": {"id": "cust-1"}});
        run(48, webhook_headers(), |headers| async move {
            let res = post_with_headers(app, "/v1/login/callback", body, headers).await;
            problem(res, &[401], &["invalid_signature"]).await?;
            Ok(())
        });
        // A signed callback with any token text is `invalid_token`.
        run(48, hostile(), |token| async move {
            let body = json!({"token": token, "outcome": "success", "customer": {"id": "c"}});
            let res = app.post_signed("/v1/login/callback", &body, None).await;
            problem(res, &[401], &["invalid_token"]).await?;
            Ok(())
        });
        // Nothing was used up: the real callback still succeeds.
        let res = app
            .callback(&token, "success", json!({"id": "cust-1"}))
            .await;
        assert_eq!(res.status(), 200);
    }
);

/// A body for any endpoint: members the handlers know, each with a
/// plausible or an arbitrary value, plus arbitrary members and values.
fn any_endpoint_body() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "method",
        "delivery",
        "to",
        "code",
        "assertion",
        "token",
        "outcome",
        "customer",
        "team",
        "customer_id",
        "channel",
        "conversation_id",
        "customer_ref",
        "session_pin",
        "contact",
        "stage",
        "scope",
        "expected_customer",
        "deliver",
        "phone",
        "email",
        "id",
        "name",
    ]);
    let plausible = prop::sample::select(vec![
        json!("otp"),
        json!("pin"),
        json!("chat"),
        json!("sms"),
        json!("email"),
        json!("success"),
        json!("failure"),
        json!("webchat"),
        json!("acme"),
        json!("123456"),
        json!("4829"),
        json!("cust-1"),
        json!("+15551230000"),
        json!("a@b.example"),
        json!("mid_chat"),
        json!("pre_chat"),
        json!(true),
        json!({"id": "cust-1", "name": "Ada"}),
        json!({"phone": "+15551230000", "email": "a@b.example"}),
    ]);
    let value = prop_oneof![3 => plausible, 2 => json_value()];
    prop_oneof![
        4 => prop::collection::btree_map(key, value, 0..5)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        1 => json_value(),
    ]
}

// Whatever a caller posts to whichever endpoint, with whichever key, the
// answer is a success or a documented problem: a 4xx, or 502 when a
// provider fails. Never a 500 or 503, never an echo.
both_stores!(
    any_body_to_any_endpoint_is_a_documented_answer,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let cid = Uuid::now_v7().to_string();
        let app = &app;
        let paths = vec![
            "/v1/interactions".to_string(),
            format!("/v1/interactions/{id}/login-links"),
            format!("/v1/interactions/{id}/challenges"),
            format!("/v1/interactions/{id}/challenges/{cid}/verify"),
            format!("/v1/interactions/{id}/assertion"),
            format!("/v1/interactions/{id}/activity"),
            format!("/v1/interactions/{id}/logout"),
            "/v1/login/callback".to_string(),
            "/v1/customers/logout".to_string(),
            format!("/v1/subjects/interaction%3A{id}/unlock"),
        ];
        let keys = vec![
            Some(app.keys.bot.clone()),
            Some(app.keys.agent.clone()),
            Some(app.keys.admin.clone()),
            Some(app.keys.globex_bot.clone()),
            None,
        ];
        let strategy = (
            prop::sample::select(paths),
            prop::sample::select(keys),
            any_endpoint_body(),
        );
        run(96, strategy, |(path, key, body)| async move {
            let res = app.post_json(&path, key.as_deref(), &body).await;
            let status = res.status().as_u16();
            if !(200..300).contains(&status) {
                let codes = [
                    "invalid_request",
                    "unauthorized",
                    "invalid_token",
                    "invalid_signature",
                    "invalid_code",
                    "forbidden",
                    "customer_mismatch",
                    "banned",
                    "not_found",
                    "token_used",
                    "challenge_used",
                    "no_session_pin",
                    "token_expired",
                    "challenge_expired",
                    "challenge_exhausted",
                    "locked",
                    "rate_limited",
                    "channel_error",
                ];
                let allowed: Vec<u16> = (400..500).chain([502]).collect();
                problem(res, &allowed, &codes).await?;
            }
            Ok(())
        });
    }
);

/// A link request with each member plausible, arbitrary, or absent.
fn link_request() -> impl Strategy<Value = Value> {
    let text = || {
        prop_oneof![
            Just(None),
            "[A-Za-z0-9_ -]{1,40}".prop_map(|s| Some(json!(s))),
            hostile().prop_map(|s| Some(json!(s))),
        ]
    };
    let stage = prop_oneof![
        Just(None),
        Just(Some(json!("mid_chat"))),
        Just(Some(json!("pre_chat"))),
        hostile().prop_map(|s| Some(json!(s))),
    ];
    (stage, text(), text()).prop_map(|(stage, scope, expected)| {
        let mut o = serde_json::Map::new();
        o.insert("deliver".into(), json!(false));
        for (k, v) in [
            ("stage", stage),
            ("scope", scope),
            ("expected_customer", expected),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), v);
            }
        }
        Value::Object(o)
    })
}

// Short links round-trip: an issued code redirects to exactly the link's
// URL (as often as it is fetched), any one-character change of the code
// names nothing, and none of it uses the link up.
both_stores!(
    issued_short_links_redirect_to_their_url_and_nothing_else_does,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let app = &app;
        let id = &id;
        let edit = (any::<prop::sample::Index>(), "[A-Za-z0-9_-]", 0..3u8);
        run(
            24,
            (link_request(), edit),
            |(request, (at, c, how))| async move {
                let res = app
                    .post_json(
                        &format!("/v1/interactions/{id}/login-links"),
                        Some(&app.keys.bot),
                        &request,
                    )
                    .await;
                if res.status() != 201 {
                    problem(res, &[400, 422], &["invalid_request"]).await?;
                    return Ok(());
                }
                let link: Value = res.json().await.unwrap();
                let url = link["url"].as_str().unwrap();
                let short = link["short_url"].as_str().unwrap();
                let code = short.rsplit_once("/l/").unwrap().1.to_string();
                for _ in 0..2 {
                    let res = app
                        .request(Method::GET, &format!("/l/{code}"), None)
                        .send()
                        .await
                        .unwrap();
                    prop_assert_eq!(res.status().as_u16(), 302);
                    prop_assert_eq!(res.headers()["location"].to_str().unwrap(), url);
                }
                let mut other = code.clone();
                let i = at.index(other.len());
                match how {
                    0 => other.replace_range(i..=i, &c),
                    1 => drop(other.remove(i)),
                    _ => other.insert_str(i, &c),
                }
                if other != code && !other.is_empty() {
                    let res = app
                        .request(Method::GET, &format!("/l/{other}"), None)
                        .send()
                        .await
                        .unwrap();
                    problem(res, &[404], &["not_found"]).await?;
                }
                Ok(())
            },
        );
    }
);
