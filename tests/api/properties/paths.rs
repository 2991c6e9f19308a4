//! What a client puts in the request line and headers: API keys, ids in
//! paths, short-link codes (issued and never issued), list queries.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{header_value, hostile, problem, run, segment};
use crate::helpers::*;

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
            let path = format!("/v1/interactions?{}", q.join("&"));
            let res = app
                .request(Method::GET, &path, Some(&app.keys.agent))
                .send()
                .await
                .unwrap();
            // A request line past the 16 KiB head limit is 431
            // (docs/api.md#errors); near it, the other headers decide.
            let over = path.len() > 16 * 1024;
            let near = path.len() > 15 * 1024 && res.status().as_u16() == 431;
            if over || near {
                problem(res, &[431], &["invalid_request"]).await?;
            } else if res.status().is_success() {
                prop_assert_eq!(res.status().as_u16(), 200);
            } else {
                problem(res, &[400, 422], &["invalid_request"]).await?;
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
