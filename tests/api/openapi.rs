//! The OpenAPI document as the API's contract (docs/api.md#errors, docs/api.md#interactions): every
//! body member and query parameter an operation does not define is 422
//! naming it; the document states the errors, constraints and security of
//! every operation. (`.ci/schemathesis.sh` fuzzes the running gateway
//! against the same document.)
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// Asserts a 422 `invalid_request` whose `detail` names `field`.
async fn assert_names(res: reqwest::Response, field: &str) {
    let body = assert_problem(res, 422, "invalid_request").await;
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(&format!("{field}:")),
        "{field} not named: {detail}"
    );
}

/// Who sends a row's request: an API key, or a signed body (login page, website).
enum By<'a> {
    Key(&'a str),
    Signed,
}

both_stores!(
    every_body_refuses_a_misspelt_member_by_name_and_changes_nothing,
    |app: TestApp| async move {
        // One interaction with a link not yet used; every row below is a
        // body with one member (or nested member) its operation does not
        // define, as a typo would make it.
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let token = link["token"].as_str().unwrap();
        let on = |op: &str| format!("/v1/interactions/{id}/{op}");
        let rows: Vec<(By, String, Value, &str)> = vec![
            (
                By::Key(&app.keys.bot),
                "/v1/interactions".into(),
                json!({"channel": "webchat", "conversation_id": "c1", "colour": "red"}),
                "colour",
            ),
            (
                By::Key(&app.keys.bot),
                "/v1/interactions".into(),
                json!({"channel": "webchat", "conversation_id": "c1", "contact": {"fax": "+15551230000"}}),
                "contact.fax",
            ),
            // A typo must not silently turn off the customer check.
            (
                By::Key(&app.keys.bot),
                on("login-links"),
                json!({"expected_custmer": "cust-1"}),
                "expected_custmer",
            ),
            (
                By::Key(&app.keys.bot),
                on("assertion"),
                json!({"assertion": "x.y.z", "jti": "1"}),
                "jti",
            ),
            // A typo must not send the code into the chat instead of to the agent.
            (
                By::Key(&app.keys.bot),
                on("challenges"),
                json!({"method": "otp", "delivey": "agent"}),
                "delivey",
            ),
            (
                By::Key(&app.keys.bot),
                on(&format!("challenges/{id}/verify")),
                json!({"code": "123456", "pin": "1"}),
                "pin",
            ),
            (
                By::Key(&app.keys.bot),
                on("activity"),
                json!({"seen": true}),
                "seen",
            ),
            (
                By::Key(&app.keys.bot),
                on("logout"),
                json!({"everywhere": true}),
                "everywhere",
            ),
            (
                By::Key(&app.keys.admin),
                "/v1/subjects/cust-1/unlock".into(),
                json!({"all": true}),
                "all",
            ),
            (
                By::Signed,
                "/v1/login/callback".into(),
                json!({"token": token, "outcome": "success", "customer": {"id": "cust-1"}, "remember": true}),
                "remember",
            ),
            (
                By::Signed,
                "/v1/customers/logout".into(),
                json!({"team": "acme", "customer_id": "cust-1", "reason": "x"}),
                "reason",
            ),
        ];
        let before = app.get(&id).await;
        for (by, path, body, field) in rows {
            let res = match by {
                By::Key(key) => app.post_json(&path, Some(key), &body).await,
                By::Signed => app.post_signed(&path, &body, None).await,
            };
            assert_names(res, field).await;
        }

        // Nothing happened: nothing created, nothing sent into the chat, the
        // interaction as it was (no new link, no challenge, not logged out).
        let page = app
            .get_json("/v1/interactions", Some(&app.keys.agent))
            .await;
        assert_eq!(page_ids(&page), vec![id.clone()], "{page}");
        assert_eq!(
            app.chat_messages().await,
            Vec::<Value>::new(),
            "no message was sent"
        );
        let after = app.get(&id).await;
        for member in ["status", "open_challenge", "last_activity_at", "customer"] {
            assert_eq!(after[member], before[member], "{member}");
        }
        // ... and the link was not used up by the refused callback. The
        // callback's `customer` is the one open object: its other string
        // members are kept, not refused.
        let res = app
            .callback(token, "success", json!({"id": "cust-1", "nickname": "Ada"}))
            .await;
        assert_eq!(res.status(), 200, "the token was not used up");
        let after = app.get(&id).await;
        assert_eq!(after["status"], "authenticated");
        assert_eq!(after["customer"]["nickname"], "Ada", "{after}");
    }
);

both_stores!(
    unknown_query_parameters_are_422_naming_them,
    |app: TestApp| async move {
        let agent = Some(app.keys.agent.as_str());
        let get = |path: &str| app.request(Method::GET, path, agent).send();
        assert_names(get("/v1/interactions?limt=5").await.unwrap(), "limt").await;
        assert_names(
            get("/v1/interactions?limit=5&colour=red").await.unwrap(),
            "colour",
        )
        .await;
        let id = app.new_interaction().await;
        assert_names(
            get(&format!("/v1/interactions/{id}?verbose=1"))
                .await
                .unwrap(),
            "verbose",
        )
        .await;
        assert_names(get("/v1/subjects/cust-1?x=1").await.unwrap(), "x").await;
        let res = app
            .request(
                Method::POST,
                "/v1/interactions?dry_run=1",
                Some(&app.keys.bot),
            )
            .json(&json!({"channel": "webchat", "conversation_id": "q"}))
            .send()
            .await
            .unwrap();
        assert_names(res, "dry_run").await;
        // A conversation is found with its channel (docs/api.md#interactions); without one it is 422.
        let res = get("/v1/interactions?conversation_id=q").await.unwrap();
        let body = assert_problem(res, 422, "invalid_request").await;
        assert!(body["detail"]
            .as_str()
            .unwrap()
            .starts_with("conversation_id:"));
        let page: serde_json::Value = get("/v1/interactions?channel=webchat&conversation_id=q")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page, json!({"items": [], "next_cursor": null}));
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": "found-me"}))
            .await;
        let page: serde_json::Value =
            get("/v1/interactions?channel=webchat&conversation_id=found-me")
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(page_ids(&page), vec![v["id"].as_str().unwrap().to_string()]);
        assert!(page["next_cursor"].is_null());
        let page: serde_json::Value =
            get("/v1/interactions?channel=webchat&conversation_id=found-me&status=authenticated")
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(page["items"], json!([]));
        // A defined parameter with an empty value is not "absent".
        assert_names(get("/v1/interactions?status=").await.unwrap(), "status").await;
        assert_names(get("/v1/interactions?cursor=").await.unwrap(), "cursor").await;
        // The defined ones still work.
        let res = get("/v1/interactions?status=unauthenticated&channel=webchat&limit=1")
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
);

both_stores!(
    bodies_and_contacts_must_be_objects,
    |app: TestApp| async move {
        // serde fills a struct from an array too: `["webchat", "c"]` was a
        // valid interaction. Every body, and `contact`, is an object.
        let res = app
            .post_json(
                "/v1/interactions",
                Some(&app.keys.bot),
                &json!(["webchat", "c"]),
            )
            .await;
        assert_problem(res, 400, "invalid_request").await;
        let res = app
            .post_json(
                "/v1/interactions",
                Some(&app.keys.bot),
                &json!({"channel": "webchat", "conversation_id": "c", "contact": [null, null]}),
            )
            .await;
        let body = assert_problem(res, 400, "invalid_request").await;
        assert!(body["detail"].as_str().unwrap().starts_with("contact"));
        let page = app
            .get_json("/v1/interactions", Some(&app.keys.agent))
            .await;
        assert!(page_ids(&page).is_empty(), "{page}");
    }
);

both_stores!(
    an_sms_conversation_is_reached_through_its_contact,
    |app: TestApp| async move {
        // No contact: nothing can be sent, so 422 (not 502, no provider was asked).
        let v = app
            .create(json!({"channel": "sms", "conversation_id": "s1"}))
            .await;
        let res = app
            .post_json(
                &format!("/v1/interactions/{}/challenges", v["id"].as_str().unwrap()),
                Some(&app.keys.bot),
                &json!({"method": "otp"}),
            )
            .await;
        assert_names(res, "delivery").await;
        // With a contact, the code goes to its phone (docs/channels.md).
        let v = app
            .create(json!({"channel": "sms", "conversation_id": "s2", "contact": {"phone": "+15551230000"}}))
            .await;
        let res = app
            .post_json(
                &format!("/v1/interactions/{}/challenges", v["id"].as_str().unwrap()),
                Some(&app.keys.bot),
                &json!({"method": "otp"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let reqs = app.chat.received_requests().await.unwrap();
        let sms: Vec<_> = reqs
            .iter()
            .filter(|r| r.url.path() == "/2010-04-01/Accounts/AC123/Messages.json")
            .collect();
        assert_eq!(sms.len(), 1, "one SMS, to the contact");
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&sms[0].body)
                .into_owned()
                .collect();
        assert_eq!(form["To"], "+15551230000");
    }
);

both_stores!(
    an_email_the_smtp_channel_cannot_send_to_is_422,
    |app: TestApp| async move {
        for email in [
            format!("ada@{}.example", "b".repeat(64)),
            format!("{}@example.com", "a".repeat(65)),
        ] {
            let res = app
                .post_json(
                    "/v1/interactions",
                    Some(&app.keys.bot),
                    &json!({"channel": "webchat", "conversation_id": "e", "contact": {"email": email}}),
                )
                .await;
            assert_names(res, "contact.email").await;
        }
    }
);

/// The served document.
async fn document() -> Option<(TestApp, Value)> {
    let app = spawn_app(Backend::Memory).await?;
    let res = app
        .request(Method::GET, "/openapi.json", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    Some((app, doc))
}

const PUBLIC: [&str; 35] = [
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/l/{code}",
    "/n/{code}",
    "/n/callback",
    "/n/landing",
    "/c/{code}",
    "/w/{code}",
    "/w/{code}/request/{rid}",
    "/w/response",
    "/w/{code}/response",
    "/w/{code}/status",
    "/w/{code}/done",
    "/v1/login/callback",
    "/v1/customers/logout",
    "/oidc/callback/{team}",
    "/oidc/backchannel-logout/{team}",
    "/ssf/{team}/events",
    "/v1/providers/twilio/{channel}/status",
    "/v1/providers/twilio-voice/{channel}/status",
    "/v1/providers/twilio-voice/{channel}/gather/{message}",
    "/v1/providers/whatsapp/{channel}/webhook",
    "/v1/providers/telegram-gateway/{channel}/report",
    "/console",
    "/console/{team}",
    "/console/console.css",
    "/console/console.js",
    "/console/{team}/sign-in",
    "/console/{team}/callback",
    "/.well-known/chatgate-audit-keys",
    "/.well-known/chatgate-approval-keys",
    "/.well-known/oauth-protected-resource/mcp",
];

/// The agent's endpoints: an API key, or the console's session cookie
/// (docs/console-sign-in.md#what-a-session-may-do).
const AGENT: [&str; 10] = [
    "/v1/interactions",
    "/v1/interactions/{id}",
    "/v1/interactions/{id}/logout",
    "/v1/interactions/{id}/forget",
    "/v1/interactions/{id}/challenges/{cid}/code",
    "/v1/subjects/{subject}",
    "/v1/subjects/{subject}/unlock",
    "/v1/subjects/{subject}/wallets",
    "/v1/subjects/{subject}/wallets/{thumbprint}",
    "/v1/events",
];

/// The console session's own endpoints: its cookie only.
const SESSION: [&str; 2] = ["/console/session", "/console/sign-out"];

/// Receivers that answer in their own specification's format.
const REVOCATION: [&str; 2] = ["/oidc/backchannel-logout/{team}", "/ssf/{team}/events"];

/// The providers' receipt routes: they read the provider's own form, so
/// neither a JSON content type (415) nor a member check (422) applies.
const RECEIPTS: [&str; 5] = [
    "/v1/providers/twilio/{channel}/status",
    "/v1/providers/twilio-voice/{channel}/status",
    "/v1/providers/twilio-voice/{channel}/gather/{message}",
    "/v1/providers/whatsapp/{channel}/webhook",
    "/v1/providers/telegram-gateway/{channel}/report",
];

#[tokio::test]
async fn the_document_states_security_servers_and_errors_of_every_operation() {
    let Some((_app, doc)) = document().await else {
        return;
    };
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["servers"][0]["url"], "/");
    for scheme in ["api_key", "metrics_token"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
    let cookie = &doc["components"]["securitySchemes"]["console_session"];
    assert_eq!(cookie["type"], "apiKey", "{cookie}");
    assert_eq!(cookie["in"], "cookie", "{cookie}");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/openapi.json"));
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let security = &op["security"];
            if path == "/metrics" {
                // Public, or behind `server.metrics_token` when it is set.
                assert_eq!(
                    security,
                    &json!([{}, {"metrics_token": []}]),
                    "{method} {path}"
                );
                assert!(op["responses"].get("401").is_some(), "{method} {path}");
            } else if PUBLIC.contains(&path.as_str()) {
                assert_eq!(security, &json!([]), "{method} {path} is public");
            } else if SESSION.contains(&path.as_str()) {
                assert_eq!(
                    security,
                    &json!([{"console_session": []}]),
                    "{method} {path}"
                );
            } else if AGENT.contains(&path.as_str())
                && !(path == "/v1/interactions" && method == "post")
            {
                let either = json!([{"api_key": []}, {"console_session": []}]);
                assert_eq!(security, &either, "{method} {path}");
            } else {
                assert_eq!(security, &json!([{"api_key": []}]), "{method} {path}");
                for status in ["401", "503"] {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            let responses = op["responses"].as_object().unwrap();
            for (status, r) in responses {
                // Pages for a customer's browser, never problem+json: every
                // answer of the identity provider's return, and a provider
                // link whose provider is down; the page where a code is
                // typed and the landing (but a body over the limit, refused
                // before them).
                let page_only = path == "/oidc/callback/{team}"
                    || path == "/n/callback"
                    || (path == "/n/landing" && !(method == "get" && status == "413"))
                    || (path == "/c/{code}" && status != "413")
                    || ((path == "/w/{code}" || path == "/w/{code}/done")
                        && status != "413"
                        && !status.starts_with('3'))
                    || (path.starts_with("/console/{team}/")
                        && !status.starts_with('3')
                        && status != "422"
                        && status != "429")
                    || (path == "/l/{code}" && status == "502");
                // The revocation receivers refuse in their specifications'
                // formats, not problem+json.
                let spec_format =
                    REVOCATION.contains(&path.as_str()) && (status == "400" || status == "503");
                if spec_format {
                    assert!(
                        r["content"]["application/json"]["schema"]
                            .get("$ref")
                            .is_some(),
                        "{method} {path} {status} is the specification's error object"
                    );
                } else if page_only {
                    assert!(
                        r["content"].get("text/html").is_some(),
                        "{method} {path} {status} is a page"
                    );
                } else if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
            // A network link's button and the page where a code is typed
            // are a browser's forms: a body that does not read carries no
            // form token (403).
            if method == "post"
                && !REVOCATION.contains(&path.as_str())
                && !RECEIPTS.contains(&path.as_str())
                && path != "/n/{code}"
                && path != "/c/{code}"
                // A wallet's own form posts (OpenID4VP's direct post).
                && path != "/w/response"
                && path != "/w/{code}/request/{rid}"
            {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
    }
    // The operator API's 12 are not offered: this gateway has no
    // `[operator]` (operator_api::the_document_offers_the_paths_served).
    assert_eq!(operations, 66);
    // Links let a client (and a fuzzer) follow a created interaction and
    // challenge; written the OpenAPI way (`operationId`).
    let verify = &doc["paths"]["/v1/interactions/{id}/challenges"]["post"]["responses"]["201"]
        ["links"]["verify"];
    assert_eq!(verify["operationId"], "verify_code", "{verify}");
    assert_eq!(verify["parameters"]["cid"], "$response.body#/challenge_id");
    for status in ["423", "429"] {
        let r = &doc["paths"]["/v1/interactions/{id}/challenges"]["post"]["responses"][status];
        assert!(r["headers"].get("Retry-After").is_some(), "{status}: {r}");
    }
}

#[tokio::test]
async fn the_document_states_the_constraints_the_handlers_enforce() {
    let Some((_app, doc)) = document().await else {
        return;
    };
    let schemas = &doc["components"]["schemas"];
    // Every code of docs/api.md#errors.
    let codes: Vec<&str> = schemas["ProblemCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "invalid_request",
        "unauthorized",
        "invalid_token",
        "invalid_signature",
        "invalid_code",
        "forbidden",
        "customer_mismatch",
        "banned",
        "not_found",
        "request_timeout",
        "token_used",
        "challenge_used",
        "no_session_pin",
        "token_expired",
        "challenge_expired",
        "challenge_exhausted",
        "payload_too_large",
        "unsupported_media_type",
        "locked",
        "rate_limited",
        "channel_error",
        "store_unavailable",
    ] {
        assert!(codes.contains(&code), "{code}");
    }
    // Closed bodies.
    for name in [
        "NewInteraction",
        "NewContact",
        "NewLoginLink",
        "AssertionRequest",
        "Code",
        "CustomerLogout",
        "EmptyBody",
    ] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    for (name, of) in [("NewChallenge", "anyOf"), ("LoginCallback", "oneOf")] {
        for variant in schemas[name][of].as_array().unwrap() {
            assert_eq!(variant["additionalProperties"], false, "{name}");
        }
    }
    // ... except the callback's customer, which keeps other string members.
    let success = &schemas["LoginCallback"]["oneOf"][0];
    assert_eq!(success["properties"]["customer"]["required"], json!(["id"]));
    assert_eq!(
        success["properties"]["customer"]["additionalProperties"]["$ref"],
        "#/components/schemas/DisplayText"
    );
    // The configured channels, the PIN lengths, the code's digits.
    assert_eq!(schemas["ChannelName"]["enum"], json!(["sms", "webchat"]));
    assert_eq!(schemas["SessionPinText"]["pattern"], "^[0-9]{4,20}$");
    assert_eq!(
        schemas["Code"]["properties"]["code"]["pattern"],
        "^[0-9]{1,20}$"
    );
    assert_eq!(schemas["ConversationIdText"]["maxLength"], 256);
    // Identifiers are trimmed: their length is in the pattern.
    assert!(schemas["CustomerRefText"]["pattern"]
        .as_str()
        .unwrap()
        .contains("{0,254}"));
    assert!(schemas["CustomerIdText"]["pattern"]
        .as_str()
        .unwrap()
        .contains("{0,1022}"));
    assert_eq!(schemas["Stage"]["enum"], json!(["mid_chat", "pre_chat"]));
    // `limit` 1..500 and the status enum.
    let list = &doc["paths"]["/v1/interactions"]["get"]["parameters"];
    let param = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(param("limit")["schema"]["minimum"], 1);
    assert_eq!(param("limit")["schema"]["maximum"], 500);
    // status, channel, limit, cursor, conversation_id (docs/api.md#interactions).
    assert_eq!(list.as_array().unwrap().len(), 5, "{list}");
    assert_eq!(param("conversation_id")["schema"]["maxLength"], 256);
    assert!(schemas["Status"]["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("banned")));
    // Signed requests name their headers.
    for path in ["/v1/login/callback", "/v1/customers/logout"] {
        let names: Vec<&str> = doc["paths"][path]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header" && p["required"] == true)
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["webhook-id", "webhook-timestamp", "webhook-signature"],
            "{path}"
        );
    }
}

/// docs/api.md, the reference the README points to, names every operation
/// and every error code of the served document, so neither can be added
/// without documenting it.
#[tokio::test]
async fn docs_api_md_covers_every_operation_and_error_code() {
    let Some((_app, doc)) = document().await else {
        return;
    };
    let reference = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let op = format!("`{} {path}", method.to_uppercase());
            if !reference.contains(&op) {
                missing.push(op);
            }
        }
    }
    for code in doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .unwrap()
    {
        let code = format!("`{}`", code.as_str().unwrap());
        if !reference.contains(&code) {
            missing.push(code);
        }
    }
    assert!(missing.is_empty(), "docs/api.md lacks {missing:?}");
}

/// `value` against the JSON Schema `schema` of the document `doc`: the
/// keywords the document uses (`$ref`, `allOf`, `oneOf`, `anyOf`, `type`,
/// `enum`, `const`, `required`, `properties`, `additionalProperties`,
/// `items`). The first violation, at its path.
pub(crate) fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = doc
            .pointer(r.trim_start_matches('#'))
            .ok_or_else(|| format!("{at}: the document has no {r}"))?;
        conforms(doc, target, value, at)?;
    }
    for s in schema["allOf"].as_array().into_iter().flatten() {
        conforms(doc, s, value, at)?;
    }
    for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(variants) = schema[key].as_array() {
            let results: Vec<_> = variants
                .iter()
                .map(|s| conforms(doc, s, value, at))
                .collect();
            let ok = results.iter().filter(|r| r.is_ok()).count();
            if ok == 0 || (exactly_one && ok > 1) {
                return Err(format!("{at}: {ok} of {key} match: {results:?}"));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            other => other
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect(),
        };
        let fits = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(|t| fits(t)) {
            return Err(format!("{at}: {value} is not {types:?}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != value {
            return Err(format!("{at}: {value} is not {c}"));
        }
    }
    if let Some(object) = value.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(r.as_str().unwrap()) {
                return Err(format!("{at}: {r} missing"));
            }
        }
        for (k, v) in object {
            let at = format!("{at}.{k}");
            match (
                schema["properties"].get(k),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => conforms(doc, s, v, &at)?,
                (None, Some(Value::Bool(false))) => {
                    return Err(format!("{at}: a member the document does not list"))
                }
                (None, Some(s)) if s.is_object() => conforms(doc, s, v, &at)?,
                _ => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Every event the gateway emits — as `GET /v1/events` frames it and a
/// team's webhook receives it — is what the document's `Event` states,
/// and `Event` lists every member (closed objects): an event that gains a
/// member without the document fails here.
#[tokio::test]
async fn emitted_events_are_what_the_document_states() {
    let setup = Setup {
        defaults: "[defaults.lockout]\nthreshold = 1\n".into(),
        team_extra: "[settings.otp]\nshow_to_agents = true\nladder = [\"wa\", \"sms\"]\n".into(),
        extra_channels: vec![(
            "wa".into(),
            "name = \"wa\"\nkind = \"whatsapp\"\nbase_url = \"{CHAT_URL}\"\nphone_number_id = \"P\"\ntoken = \"${CG_TEST_UNSET_WA:-t}\"\n".into(),
        )],
        ..Setup::default()
    };
    let Some(mut app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let doc = app.get_json("/openapi.json", None).await;
    let event = json!({"$ref": "#/components/schemas/Event"});
    assert_eq!(
        doc["webhooks"]["event"]["post"]["requestBody"]["content"]["application/json"]["schema"],
        event,
        "the team's webhook receives an Event"
    );
    // Every kind of `data`: an interaction's, a challenge's (created,
    // failed, revealed) and a subject's.
    let id = app.new_interaction().await;
    let (cid, code) = app.agent_otp(&id).await;
    let res = app.verify_code(&id, &cid, &wrong_code(&code)).await;
    assert_eq!(res.status(), 423, "threshold 1 locks");
    let unlock = format!("/v1/subjects/interaction%3A{id}/unlock");
    let res = app
        .post_json(&unlock, Some(&app.keys.admin), &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    app.authenticate(&id, "cust-1").await;
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/logout"),
            Some(&app.keys.bot),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    // A code by SMS, reported failed and then delivered.
    wiremock::Mock::given(wiremock::matchers::path(
        "/2010-04-01/Accounts/AC123/Messages.json",
    ))
    .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(json!({"sid": "SMdoc"})))
    .with_priority(1)
    .mount(&app.chat)
    .await;
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": "doc-sms", "contact": {"phone": "+15551239999"}}))
        .await;
    let sms = v["id"].as_str().unwrap();
    let res =
        crate::challenges::start(&app, sms, json!({"method": "otp", "delivery": "sms"})).await;
    assert_eq!(res.status(), 201);
    for (status, error) in [("failed", Some("30003")), ("delivered", None)] {
        let mut fields = vec![
            ("MessageSid".to_string(), "SMdoc".to_string()),
            ("MessageStatus".to_string(), status.to_string()),
        ];
        fields.extend(error.map(|e| ("ErrorCode".to_string(), e.to_string())));
        let sig = chatgate::channels::twilio::twilio_signature(
            b"twilio-test-token",
            "http://gateway.test/v1/providers/twilio/sms/status",
            &fields,
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&fields)
            .finish();
        let res = app
            .request(
                reqwest::Method::POST,
                "/v1/providers/twilio/sms/status",
                None,
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // A delivery ladder's move.
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": "ladder", "contact": {"phone": "+447400123456"}}))
        .await;
    let lid = v["id"].as_str().unwrap();
    let body = json!({"method": "otp", "delivery": "ladder"});
    let res = app
        .post_json(
            &format!("/v1/interactions/{lid}/challenges"),
            Some(&app.keys.bot),
            &body,
        )
        .await;
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    let lcid = started["challenge_id"].as_str().unwrap();
    let res = app
        .post_json(
            &format!("/v1/interactions/{lid}/challenges/{lcid}/advance"),
            Some(&app.keys.bot),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    // A payment approved by a code by SMS.
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": "doc-pay", "contact": {"phone": "+15551238888"}}))
        .await;
    let pid = v["id"].as_str().unwrap();
    let payment = json!({"type": "payment", "amount": "120.00", "currency": "EUR", "payee": "ACME Energy Ltd"});
    let res = crate::challenges::start(
        &app,
        pid,
        json!({"method": "otp", "delivery": "sms", "transaction": payment}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let pcid = res.json::<Value>().await.unwrap()["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let reqs = app.chat.received_requests().await.unwrap();
    let sms_body = reqs
        .iter()
        .rev()
        .find(|r| r.url.path().ends_with("/Messages.json"))
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .into_owned()
                .collect::<Vec<_>>()
        })
        .unwrap();
    let text = &sms_body.iter().find(|(k, _)| k == "Body").unwrap().1;
    let pay_code: String = text.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(app.verify_code(pid, &pcid, &pay_code).await.status(), 200);
    let wanted = [
        "interaction.created",
        "challenge.created",
        "challenge.code_revealed",
        "challenge.failed",
        "challenge.delivered",
        "challenge.undelivered",
        "subject.locked",
        "subject.unlocked",
        "interaction.authenticated",
        "interaction.logged_out",
        "challenge.advanced",
        "transaction.approved",
    ];
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while seen.len() < wanted.len() && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(std::time::Duration::from_millis(200), app.events.recv()).await {
            Ok(Ok(e)) => {
                let v = serde_json::to_value(&*e).unwrap();
                if let Err(problem) = conforms(&doc, &event, &v, "event") {
                    panic!(
                        "{} does not match the document: {problem}\n{v}",
                        e.kind.as_str()
                    );
                }
                seen.insert(e.kind.as_str());
            }
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {}
        }
    }
    let missing: Vec<_> = wanted.iter().filter(|k| !seen.contains(*k)).collect();
    assert!(missing.is_empty(), "not emitted: {missing:?}");
}

/// What a schema cannot state, each operation's 422 says: the rules over
/// Unicode scripts, over two query parameters, over state and
/// configuration. What a schema can state, it does: a subject's syntax,
/// and `provider: oidc` only where a team has `[oidc]`.
#[tokio::test]
async fn each_422_names_the_rules_no_schema_states() {
    let Some((app, doc)) = document().await else {
        return;
    };
    let refusal = |path: &str, method: &str| {
        doc["paths"][path][method]["responses"]["422"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for (path, method, rule) in [
        ("/v1/interactions", "post", "mix scripts"),
        ("/v1/login/callback", "post", "mix scripts"),
        ("/v1/customers/logout", "post", "mix scripts"),
        (
            "/v1/interactions/{id}/login-links",
            "post",
            "without `[oidc]`",
        ),
        ("/v1/interactions/{id}/challenges", "post", "`contact`"),
        (
            "/v1/interactions/{id}/assurance",
            "get",
            "`intent` together with `max_age` or `methods`",
        ),
        ("/v1/subjects/{subject}", "get", "`interaction:{uuid}`"),
        (
            "/v1/subjects/{subject}/unlock",
            "post",
            "`interaction:{uuid}`",
        ),
    ] {
        let d = refusal(path, method);
        assert!(d.contains(rule), "{method} {path}: {d}");
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Provider"]["enum"],
        json!(["login_page"]),
        "no team has [oidc]"
    );
    let subject = &doc["paths"]["/v1/subjects/{subject}"]["get"]["parameters"][0]["schema"];
    assert_eq!(subject["$ref"], "#/components/schemas/SubjectText");
    // The subject's syntax, as the document states it and as the gateway
    // answers it.
    let own = schemas["SubjectText"]["oneOf"][0]["pattern"]
        .as_str()
        .unwrap();
    assert!(own.starts_with("^interaction:"), "{own}");
    for (subject, status) in [
        ("interaction%3A0193a1b2-0000-7000-8000-000000000001", 200),
        ("interaction%3Anot-a-uuid", 422),
        ("Interaction%3Acust", 422),
        ("cust-42", 200),
    ] {
        let res = app
            .request(
                Method::GET,
                &format!("/v1/subjects/{subject}"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{subject}");
    }
}

/// `?version=3.0` and `?version=2.0` answer the same API in the older
/// words, its server this gateway's `public_url`; `3.1` is the document
/// itself; another value is 422, another parameter 422 naming it
/// (docs/api.md#the-openapi-documents).
#[tokio::test]
async fn the_document_answers_in_three_versions() {
    let Some((app, full)) = document().await else {
        return;
    };
    let get = |query: &'static str| {
        let app = &app;
        async move {
            let res = app
                .request(Method::GET, &format!("/openapi.json{query}"), None)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(get("?version=3.1").await, (200, full.clone()));
    let (status, v3) = get("?version=3.0").await;
    assert_eq!(status, 200);
    assert_eq!(v3["openapi"], "3.0.3");
    // The test gateway's `server.public_url`.
    assert_eq!(v3["servers"][0]["url"], "http://gateway.test");
    let (status, v2) = get("?version=2.0").await;
    assert_eq!(status, 200);
    assert_eq!(v2["swagger"], "2.0");
    assert_eq!(v2["host"], "gateway.test");
    assert_eq!(v2["schemes"], json!(["http"]));
    for doc in [&v3, &v2] {
        assert_eq!(
            doc["paths"].as_object().unwrap().len(),
            full["paths"].as_object().unwrap().len()
        );
        assert!(doc.get("webhooks").is_none());
    }
    let (status, problem) = get("?version=3.2").await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("version"),
        "{problem}"
    );
    let (status, problem) = get("?format=yaml").await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("format"),
        "{problem}"
    );
}
