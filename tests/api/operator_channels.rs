//! A channel's body checked through the operator API
//! (docs/operator-api.md#endpoints): `PUT /v1/channels/{name}?dry_run=true`
//! checks a new channel by every rule of a channel file and answers as a
//! write would, its secrets read back as HMACs, writing nothing; a write
//! itself is 501, and a file channel's name stays 428, 412, 409.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_writes::{with_operator, OPS};

/// The secret of the new channel's body: never in an answer.
const TOKEN: &str = "new-twilio-token-never-answered-77";

/// A new `twilio` channel's body, valid as it stands.
fn new_sms(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "twilio",
        "account_sid": "AC999",
        "auth_token": TOKEN,
        "from": "+15550007777",
        "templates": {"otp": "#PIN# is your new code."},
    })
}

async fn put(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.request(Method::PUT, path, Some(OPS));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.unwrap()
}

/// The names of the channels in force, as the API lists them.
async fn listed(app: &TestApp) -> Vec<String> {
    let page = app.get_json("/v1/channels", Some(OPS)).await;
    let names = page["channels"].as_array().unwrap().iter();
    names
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// The pointers of a 422 `invalid_config`, sorted; no answer names the
/// secret or the variable of the body.
async fn pointers(res: reqwest::Response) -> Vec<String> {
    let problem = assert_problem(res, 422, "invalid_config").await;
    let text = problem.to_string();
    assert!(
        !text.contains(TOKEN) && !text.contains("HOOK_SECRET"),
        "{text}"
    );
    let errors = problem["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["detail"].is_string()), "{problem}");
    let mut pointers: Vec<String> = errors
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect();
    pointers.sort();
    pointers
}

both_stores!(a_channel_dry_run_answers_as_a_write_and_writes_nothing, setup: with_operator(), |app: TestApp| async move {
    let path = "/v1/channels/newsms?dry_run=true";
    let res = put(&app, path, &[], Some(&new_sms("newsms"))).await;
    assert_eq!(res.status(), 201);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 66, "{etag}");
    assert_eq!(res.headers()["chatgate-source"], "api");
    let text = res.text().await.unwrap();
    assert!(!text.contains(TOKEN), "a secret was answered: {text}");
    let channel: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(channel["name"], "newsms");
    assert_eq!(channel["kind"], "twilio");
    assert_eq!(channel["account_sid"], "AC999");
    assert_eq!(channel["templates"]["otp"], "#PIN# is your new code.");
    let hmac = channel["auth_token"]["hmac"].as_str().unwrap();
    assert!(hmac.len() == 64 && hmac.bytes().all(|b| b.is_ascii_hexdigit()), "{hmac}");
    // The ETag is the digest of its print, as a file channel's is; the
    // same body is the same ETag, another secret another.
    let config = app.gateway.config();
    let checked = config.channel_of_json(&new_sms("newsms")).unwrap();
    assert_eq!(etag, format!("\"{}\"", checked.print.digest()));
    let again = put(&app, path, &[("If-None-Match", "*")], Some(&new_sms("newsms"))).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    let mut other = new_sms("newsms");
    other["auth_token"] = json!("another-token");
    let other = put(&app, path, &[], Some(&other)).await;
    assert_eq!(other.status(), 201);
    assert_ne!(other.headers()["etag"].to_str().unwrap(), etag);
    // A secret reads back as the file channel's does: the same token, the
    // same HMAC.
    let mut same_token = new_sms("newsms");
    same_token["auth_token"] = json!("twilio-test-token");
    let same: Value = put(&app, path, &[], Some(&same_token)).await.json().await.unwrap();
    let file = app.get_json("/v1/channels/sms", Some(OPS)).await;
    assert_eq!(same["auth_token"], file["auth_token"], "{same} {file}");

    // Nothing was written.
    let res = app.request(Method::GET, "/v1/channels/newsms", Some(OPS)).send().await.unwrap();
    assert_problem(res, 404, "not_found").await;
    assert_eq!(listed(&app).await, ["sms", "webchat"]);
    assert!(app.gateway.config().channels.get("newsms").is_none());

    // A write itself is not built; a dry run needs a body and a name.
    let res = put(&app, "/v1/channels/newsms", &[], Some(&new_sms("newsms"))).await;
    assert_problem(res, 501, "not_implemented").await;
    assert_problem(put(&app, path, &[], None).await, 400, "invalid_request").await;
    let res = put(&app, "/v1/channels/newsms?dry_run=maybe", &[], Some(&new_sms("newsms"))).await;
    assert_problem(res, 422, "invalid_request").await;
    let res = put(&app, "/v1/channels/Not%20A%20Name?dry_run=true", &[], Some(&new_sms("newsms"))).await;
    assert_problem(res, 404, "not_found").await;
    // Nothing to match.
    let res = put(&app, path, &[("If-Match", "\"0000\"")], Some(&new_sms("newsms"))).await;
    assert_problem(res, 412, "precondition_failed").await;
    assert_eq!(listed(&app).await, ["sms", "webchat"]);
});

both_stores!(a_channel_dry_run_lists_every_problem_at_its_pointer, setup: with_operator(), |app: TestApp| async move {
    let path = "/v1/channels/newchat?dry_run=true";
    let body = json!({
        "name": "newchat",
        "kind": "webhook",
        "url": "ftp://bot.example/messages",
        "secret": "${HOOK_SECRET}",
        "colour": "red",
    });
    let res = put(&app, path, &[], Some(&body)).await;
    assert_eq!(pointers(res).await, ["/colour", "/secret", "/url"]);
    // A rule of the kind, and of every channel.
    let mut body = new_sms("newchat");
    body["vouches_for_sender"] = json!("yes");
    body["templates"]["subject"] = json!("Your code");
    body["otp_content_sid"] = json!("HX123");
    let res = put(&app, path, &[], Some(&body)).await;
    assert_eq!(pointers(res).await, ["/otp_content_sid", "/templates/subject", "/vouches_for_sender"]);
    // A member the kind requires, missing.
    let mut body = new_sms("newchat");
    body.as_object_mut().unwrap().remove("from");
    assert_eq!(pointers(put(&app, path, &[], Some(&body)).await).await, ["/from"]);
    let mut body = new_sms("newchat");
    body["kind"] = json!("carrier-pigeon");
    assert_eq!(pointers(put(&app, path, &[], Some(&body)).await).await, ["/kind"]);
    let res = put(&app, path, &[], Some(&json!(["newchat"]))).await;
    assert_problem(res, 400, "invalid_request").await;

    // The body's name is the path's.
    let res = put(&app, path, &[], Some(&new_sms("other"))).await;
    assert_eq!(pointers(res).await, ["/name"]);
    let mut body = new_sms("newchat");
    body.as_object_mut().unwrap().remove("name");
    assert_eq!(pointers(put(&app, path, &[], Some(&body)).await).await, ["/name"]);
    assert_eq!(listed(&app).await, ["sms", "webchat"]);
});

both_stores!(a_file_channels_name_is_still_its_files, setup: with_operator(), |app: TestApp| async move {
    let sms = format!("\"{}\"", app.gateway.config().channels["sms"].print.digest());
    let path = "/v1/channels/sms?dry_run=true";
    let body = new_sms("sms");
    assert_problem(put(&app, path, &[], Some(&body)).await, 428, "precondition_required").await;
    let res = put(&app, path, &[("If-Match", "\"0000\"")], Some(&body)).await;
    assert_problem(res, 412, "precondition_failed").await;
    let res = put(&app, path, &[("If-None-Match", "*")], Some(&body)).await;
    assert_problem(res, 412, "precondition_failed").await;
    let res = put(&app, path, &[("If-Match", sms.as_str())], Some(&body)).await;
    assert_problem(res, 409, "managed_by_file").await;
    let res = put(&app, "/v1/channels/sms", &[("If-Match", sms.as_str())], Some(&body)).await;
    assert_problem(res, 409, "managed_by_file").await;
    // Unchanged.
    let file = app.get_json("/v1/channels/sms", Some(OPS)).await;
    assert_eq!(file["account_sid"], "AC123");
    assert_eq!(app.gateway.config().channels["sms"].print.digest(), sms.trim_matches('"'));
});
