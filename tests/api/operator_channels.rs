//! Channels written through the operator API
//! (docs/operator-api.md#endpoints): a `PUT /v1/channels/{name}` of a name
//! no channel file holds keeps the channel in the store, created with or
//! without `If-None-Match: *`, replaced and deleted only against its
//! current `ETag` (docs/operator-api.md#concurrency); its secrets read back
//! as HMACs, are kept when sent back so (docs/operator-api.md#secrets) and
//! are never stored as they are
//! (docs/operator-api.md#how-the-store-keeps-them). An API team may list
//! it: then it is not deleted, a replace that would leave the team unbuilt
//! is refused, and each write of it is a `config.changed` entry of that
//! team. It is in force on the instance that answered at once and on every
//! other within 2 s (docs/operator-api.md#every-instance-at-once). A dry
//! run (`?dry_run=true`) checks a body by every rule of a channel file and
//! answers as the write would, writing nothing; a file channel's name
//! stays 428, 412, 409 and the files never reach an API channel
//! (docs/operator-api.md#two-sources-one-namespace).
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_writes::{self as writes, etag_of, with_operator, OPS};

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

/// An `If-Match` no channel has.
const STALE: &str = "\"0000000000000000000000000000000000000000000000000000000000000000\"";

/// The path of channel `name`.
fn at(name: &str) -> String {
    format!("/v1/channels/{name}")
}

async fn delete(app: &TestApp, name: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.request(Method::DELETE, &at(name), Some(OPS));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.request(Method::GET, path, Some(OPS))
        .send()
        .await
        .unwrap()
}

/// API channel `name` as a read shows it: its `ETag` and its body.
pub(crate) async fn read(app: &TestApp, name: &str) -> (String, Value) {
    let res = get(app, &at(name)).await;
    assert_eq!(res.status(), 200, "channel {name}");
    assert_eq!(res.headers()["chatgate-source"], "api");
    (etag_of(&res), res.json().await.unwrap())
}

/// What the API says of channel `name`: its read and its list entry.
async fn shown(app: &TestApp, name: &str) -> (String, Value, Value) {
    let (etag, body) = read(app, name).await;
    let page = app.get_json("/v1/channels", Some(OPS)).await;
    let mut entries = page["channels"].as_array().unwrap().iter();
    let entry = entries.find(|c| c["name"] == name).unwrap();
    (etag, body, entry.clone())
}

/// Whether channel `name` is in force on `app`.
fn in_force(app: &TestApp, name: &str) -> bool {
    let gateway = app.reloader.in_force();
    gateway.config().channels.contains_key(name)
}

/// Channel `name` written as [`new_sms`]: its `ETag`.
pub(crate) async fn create(app: &TestApp, name: &str) -> String {
    let create_only = [("If-None-Match", "*")];
    let res = put(app, &at(name), &create_only, Some(&new_sms(name))).await;
    assert_eq!(res.status(), 201, "channel {name}");
    etag_of(&res)
}

/// Team `newco` written with `channels` `["webchat", name]`: its `ETag`.
pub(crate) async fn team_listing(app: &TestApp, name: &str) -> String {
    let mut body = writes::team("newco", &chatgate::domain::secrets::generate_whsec());
    body["channels"] = json!(["webchat", name]);
    let res = writes::put(app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201, "a team listing {name}");
    etag_of(&res)
}

/// The `ETag` of team `id` as a read gives it.
async fn team_etag(app: &TestApp, id: &str) -> String {
    let res = get(app, &format!("/v1/teams/{id}")).await;
    assert_eq!(res.status(), 200, "team {id}");
    etag_of(&res)
}

/// [`new_sms`] with `from` changed.
fn moved(name: &str) -> Value {
    let mut body = new_sms(name);
    body["from"] = json!("+15550008888");
    body
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
    // The ETag is the digest of its print, as a file channel's is, each
    // secret in it as its read-back: a secret written as itself is
    // salted anew, so the same body again is another ETag (no answer
    // tells whether a value sent is the one kept), another secret too.
    let again = put(&app, path, &[("If-None-Match", "*")], Some(&new_sms("newsms"))).await;
    assert_eq!(again.status(), 201);
    assert_ne!(again.headers()["etag"].to_str().unwrap(), etag);
    let mut other = new_sms("newsms");
    other["auth_token"] = json!("another-token");
    let other = put(&app, path, &[], Some(&other)).await;
    assert_eq!(other.status(), 201);
    assert_ne!(other.headers()["etag"].to_str().unwrap(), etag);
    // One secret in two channels reads back differently: the file
    // channel's token written here is not the file channel's read-back.
    let mut same_token = new_sms("newsms");
    same_token["auth_token"] = json!("twilio-test-token");
    let same: Value = put(&app, path, &[], Some(&same_token)).await.json().await.unwrap();
    let file = app.get_json("/v1/channels/sms", Some(OPS)).await;
    assert_ne!(same["auth_token"], file["auth_token"], "{same} {file}");

    // Nothing was written.
    let res = app.request(Method::GET, "/v1/channels/newsms", Some(OPS)).send().await.unwrap();
    assert_problem(res, 404, "not_found").await;
    assert_eq!(listed(&app).await, ["sms", "webchat"]);
    assert!(!in_force(&app, "newsms"));

    // Nothing to match.
    let res = put(&app, path, &[("If-Match", "\"0000\"")], Some(&new_sms("newsms"))).await;
    assert_problem(res, 412, "precondition_failed").await;
    assert_eq!(listed(&app).await, ["sms", "webchat"]);

    // The write itself answers as the dry run did (its secret salted
    // anew: another ETag).
    let res = put(&app, "/v1/channels/newsms", &[], Some(&new_sms("newsms"))).await;
    assert_eq!(res.status(), 201);
    assert_ne!(etag_of(&res), etag);
    assert_eq!(listed(&app).await, ["newsms", "sms", "webchat"]);
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
    // A dry run needs a body and a name.
    assert_problem(put(&app, path, &[], None).await, 400, "invalid_request").await;
    let res = put(&app, "/v1/channels/newchat?dry_run=maybe", &[], Some(&new_sms("newchat"))).await;
    assert_problem(res, 422, "invalid_request").await;
    let res = put(&app, "/v1/channels/Not%20A%20Name?dry_run=true", &[], Some(&new_sms("newchat"))).await;
    assert_problem(res, 404, "not_found").await;

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

both_stores!(a_channel_written_is_read_back_as_the_store_keeps_it, setup: with_operator(), |app: TestApp| async move {
    let res = put(&app, &at("newsms"), &[("If-None-Match", "*")], Some(&new_sms("newsms"))).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["chatgate-source"], "api");
    let etag = etag_of(&res);
    let hex = etag.trim_matches('"');
    assert!(etag.len() == 66 && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{etag}");
    let text = res.text().await.unwrap();
    assert!(!text.contains(TOKEN), "a secret was answered: {text}");
    let written: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(written["from"], "+15550007777");
    assert_eq!(written["auth_token"]["hmac"].as_str().map(str::len), Some(64), "{written}");
    // In force at the next request: read, listed, built.
    assert!(in_force(&app, "newsms"));
    let (read_etag, body, entry) = shown(&app, "newsms").await;
    assert_eq!((read_etag, body), (etag.clone(), written));
    assert_eq!(entry["source"], "api", "{entry}");
    assert_eq!(entry["etag"], etag.as_str(), "{entry}");
    assert!(entry["updated_at"].is_string(), "{entry}");
    let page = app.get_json("/v1/channels", Some(OPS)).await;
    assert_eq!(page["channels"][1]["name"], "sms");
    assert_eq!(page["channels"][1]["source"], "file", "{page}");
    // Create only: it exists now. Without a precondition, a new name is made.
    let res = put(&app, &at("newsms"), &[("If-None-Match", "*")], Some(&moved("newsms"))).await;
    assert_problem(res, 412, "precondition_failed").await;
    assert_eq!(read(&app, "newsms").await.0, etag, "a refused write changes nothing");
    assert_eq!(put(&app, &at("othersms"), &[], Some(&new_sms("othersms"))).await.status(), 201);
    assert_eq!(listed(&app).await, ["newsms", "othersms", "sms", "webchat"]);
});

both_stores!(a_channel_is_replaced_against_its_etag_its_secrets_kept, setup: with_operator(), |app: TestApp| async move {
    let first = create(&app, "newsms").await;
    let path = at("newsms");
    let res = put(&app, &path, &[], Some(&moved("newsms"))).await;
    assert_problem(res, 428, "precondition_required").await;
    let res = put(&app, &path, &[("If-Match", STALE)], Some(&moved("newsms"))).await;
    assert_problem(res, 412, "precondition_failed").await;
    assert_eq!(read(&app, "newsms").await.0, first, "a refused write changes nothing");
    let res = put(&app, &path, &[("If-Match", &first)], Some(&moved("newsms"))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["chatgate-source"], "api");
    let second = etag_of(&res);
    assert_ne!(second, first);
    let (etag, mut back) = read(&app, "newsms").await;
    assert_eq!((etag.as_str(), &back["from"]), (second.as_str(), &json!("+15550008888")));

    // What a read shows, written back: the secret kept, the ETag the same.
    let res = put(&app, &path, &[("If-Match", &second)], Some(&back)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(etag_of(&res), second, "the secret was kept as it was");
    // The read again: the same secret is the same HMAC.
    assert_eq!(read(&app, "newsms").await.1, back);
    // An HMAC of no secret the channel keeps is refused at its pointer.
    back["auth_token"] = json!({"hmac": "ab".repeat(32)});
    let res = put(&app, &path, &[("If-Match", &second)], Some(&back)).await;
    assert_eq!(pointers(res).await, ["/auth_token"]);
    assert_eq!(read(&app, "newsms").await.0, second);
});

both_stores!(a_channel_is_deleted_against_its_etag, setup: with_operator(), |app: TestApp| async move {
    let etag = create(&app, "newsms").await;
    assert_problem(delete(&app, "newsms", &[]).await, 428, "precondition_required").await;
    let res = delete(&app, "newsms", &[("If-Match", STALE)]).await;
    assert_problem(res, 412, "precondition_failed").await;
    assert_eq!(read(&app, "newsms").await.0, etag, "a refused delete changes nothing");
    assert_eq!(delete(&app, "newsms", &[("If-Match", &etag)]).await.status(), 204);
    // Gone at the next request.
    assert_problem(get(&app, &at("newsms")).await, 404, "not_found").await;
    assert!(!in_force(&app, "newsms"));
    assert_eq!(listed(&app).await, ["sms", "webchat"]);
    let res = delete(&app, "newsms", &[("If-Match", &etag)]).await;
    assert_problem(res, 404, "not_found").await;
    // Its name can be written again, as new (its secret salted anew:
    // another ETag).
    assert_ne!(create(&app, "newsms").await, etag);
});

both_stores!(a_channel_an_api_team_lists_is_not_deleted_before_the_team, setup: with_operator(), |app: TestApp| async move {
    let etag = create(&app, "newsms").await;
    let team = team_listing(&app, "newsms").await;
    assert_eq!(writes::key_status(&app, "newco-bot-key").await, 200);
    let res = delete(&app, "newsms", &[("If-Match", &etag)]).await;
    let problem = assert_problem(res, 409, "channel_in_use").await;
    assert_eq!(problem["teams"], json!(["newco"]), "{problem}");
    assert_eq!(read(&app, "newsms").await.0, etag, "a refused delete changes nothing");
    assert_eq!(team_etag(&app, "newco").await, team);
    // The team deleted, the channel is.
    assert_eq!(writes::delete(&app, "newco", &[("If-Match", &team)]).await.status(), 204);
    assert_eq!(delete(&app, "newsms", &[("If-Match", &etag)]).await.status(), 204);
    assert_problem(get(&app, &at("newsms")).await, 404, "not_found").await;
});

both_stores!(a_replace_of_a_listed_channel_is_a_change_of_the_team, setup: with_operator(), |app: TestApp| async move {
    let etag = create(&app, "newsms").await;
    let team = team_listing(&app, "newsms").await;
    let before = writes::entries(&app, "newco").await.len();
    let res = put(&app, &at("newsms"), &[("If-Match", &etag)], Some(&moved("newsms"))).await;
    assert_eq!(res.status(), 200);

    // One `config.changed` entry of the team, by the operator key.
    let written = writes::entries(&app, "newco").await;
    assert_eq!(written.len(), before + 1, "{written:?}");
    let last = written.last().unwrap();
    assert_eq!(last["action"], "config.changed", "{last}");
    assert_eq!(last["detail"]["source"], "api", "{last}");
    assert_eq!(last["actor"]["api_key_id"], "ops", "{last}");
    let changed = last["detail"]["changed"].as_array().unwrap();
    assert!(changed.contains(&json!("channels.newsms.from")), "{last}");
    // The entry carries the team's new effective configuration; its
    // `ETag`, of its body as the store keeps it, stays.
    let effective = app.reloader.in_force().config().teams["newco"].print.digest();
    assert_eq!(last["detail"]["digest"].as_str(), Some(effective.as_str()), "{last}");
    assert_eq!(team_etag(&app, "newco").await, team);
    assert_eq!(writes::key_status(&app, "newco-bot-key").await, 200);
});

/// Team `newco` written with channel `name` as its `sms_channel` too.
async fn team_sending_sms_by(app: &TestApp, name: &str) -> String {
    let mut body = writes::team("newco", &chatgate::domain::secrets::generate_whsec());
    body["channels"] = json!(["webchat", name]);
    body["sms_channel"] = json!(name);
    let res = writes::put(app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201, "a team sending SMS by {name}");
    etag_of(&res)
}

both_stores!(a_replace_that_would_leave_a_team_unbuilt_is_refused, setup: with_operator(), |app: TestApp| async move {
    let etag = create(&app, "newsms").await;
    let team = team_sending_sms_by(&app, "newsms").await;
    let before = writes::entries(&app, "newco").await.len();
    // A web chat carries no SMS: the team could not be built.
    let chat = json!({
        "name": "newsms",
        "kind": "webhook",
        "url": "https://bot.newco.example/messages",
        "secret": chatgate::domain::secrets::generate_whsec(),
    });
    let dry = format!("{}?dry_run=true", at("newsms"));
    let res = put(&app, &dry, &[("If-Match", &etag)], Some(&chat)).await;
    let problem = assert_problem(res, 409, "channel_in_use").await;
    assert_eq!(problem["teams"], json!(["newco"]), "{problem}");
    let res = put(&app, &at("newsms"), &[("If-Match", &etag)], Some(&chat)).await;
    let problem = assert_problem(res, 409, "channel_in_use").await;
    assert_eq!(problem["teams"], json!(["newco"]), "{problem}");
    // Nothing changed.
    let (now, body) = read(&app, "newsms").await;
    assert_eq!((now.as_str(), &body["kind"]), (etag.as_str(), &json!("twilio")));
    assert_eq!(team_etag(&app, "newco").await, team);
    assert_eq!(writes::entries(&app, "newco").await.len(), before);
});

both_stores!(a_channel_no_team_lists_is_no_teams_change, setup: with_operator(), |app: TestApp| async move {
    let acme = writes::entries(&app, "acme").await;
    let globex = writes::entries(&app, "globex").await;
    let etag = create(&app, "newsms").await;
    let res = put(&app, &at("newsms"), &[("If-Match", &etag)], Some(&moved("newsms"))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(delete(&app, "newsms", &[("If-Match", &etag_of(&res))]).await.status(), 204);
    assert_eq!(writes::entries(&app, "acme").await, acme);
    assert_eq!(writes::entries(&app, "globex").await, globex);
});

both_stores!(a_dry_run_of_a_replace_changes_nothing, setup: with_operator(), |app: TestApp| async move {
    let etag = create(&app, "newsms").await;
    let team = team_listing(&app, "newsms").await;
    let entries = writes::entries(&app, "newco").await.len();
    let before = shown(&app, "newsms").await;
    let dry = format!("{}?dry_run=true", at("newsms"));
    let res = put(&app, &dry, &[("If-Match", &etag)], Some(&moved("newsms"))).await;
    assert_eq!(res.status(), 200);
    let answered = etag_of(&res);
    assert_ne!(answered, etag);
    // Its preconditions are the write's.
    assert_problem(put(&app, &dry, &[], Some(&moved("newsms"))).await, 428, "precondition_required").await;
    let res = put(&app, &dry, &[("If-None-Match", "*")], Some(&moved("newsms"))).await;
    assert_problem(res, 412, "precondition_failed").await;
    // Nothing changed: the channel, the team, its trail.
    assert_eq!(shown(&app, "newsms").await, before);
    assert_eq!(team_etag(&app, "newco").await, team);
    assert_eq!(writes::entries(&app, "newco").await.len(), entries);
    assert!(in_force(&app, "newsms"));
    // The write answers as the dry run did (its secrets written as
    // themselves salted anew: another ETag again).
    let res = put(&app, &at("newsms"), &[("If-Match", &etag)], Some(&moved("newsms"))).await;
    assert_eq!(res.status(), 200);
    assert!(![etag, answered].contains(&etag_of(&res)));
});

both_stores!(the_files_never_reach_an_api_channel, setup: with_operator(), |app: TestApp| async move {
    let etag = create(&app, "newsms").await;
    // A file team naming it names no channel file: the reload is refused.
    let team = app.dir.join("config/teams/filed.toml");
    let file = format!(
        "id = \"filed\"\nlogin_url = \"https://login.test/\"\nchannels = [\"newsms\"]\n\n\
         [[security_keys]]\nkid = \"f1\"\nsecret = \"{}\"\nprimary = true\n",
        chatgate::domain::secrets::generate_whsec()
    );
    std::fs::write(&team, file).unwrap();
    let chatgate::app::Reloaded::Refused(e) = app.reloader.reload().await else {
        panic!("a file team listed an API channel");
    };
    assert!(e.problem.contains("newsms"), "{e}");
    std::fs::remove_file(&team).unwrap();
    assert!(!app.reloader.in_force().config().teams.contains_key("filed"));
    // A channel file with its name: refused, nothing changes.
    let channel = app.dir.join("channels/newsms.toml");
    let toml = "name = \"newsms\"\nkind = \"twilio\"\naccount_sid = \"AC1\"\n\
                auth_token = \"${CG_TEST_UNSET_TWILIO:-file-token}\"\nfrom = \"+15550001111\"\n";
    std::fs::write(&channel, toml).unwrap();
    let chatgate::app::Reloaded::Refused(e) = app.reloader.reload().await else {
        panic!("a channel file took an API channel's name");
    };
    assert!(e.problem.contains("one name, one source"), "{e}");
    std::fs::remove_file(&channel).unwrap();
    assert_eq!(read(&app, "newsms").await.0, etag);
    assert!(matches!(app.reloader.reload().await, chatgate::app::Reloaded::Applied { .. }));
    assert_eq!(read(&app, "newsms").await.0, etag, "a reload keeps it");
});

/// The secret of [`new_sms`] replaced: never stored as it is either.
const SECOND: &str = "second-twilio-token-never-stored-88";

/// A channel's secret, written then replaced by another: neither is in
/// any key or value under the test's prefix; the channel is kept sealed,
/// with no TTL, until it is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_channel_secret_is_stored_as_it_is() {
    let Some(app) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let etag = create(&app, "newsms").await;
    let mut other = new_sms("newsms");
    other["auth_token"] = json!(SECOND);
    let res = put(&app, &at("newsms"), &[("If-Match", &etag)], Some(&other)).await;
    assert_eq!(res.status(), 200);
    let etag = etag_of(&res);
    let dumped = crate::redis_support::dump_prefix(&app.key_prefix).await;
    for d in &dumped {
        for v in d.values.iter().chain([&d.key]) {
            let bare = !v.contains(TOKEN) && !v.contains(SECOND);
            assert!(bare, "a secret is stored as it is: {v}");
        }
    }
    let kept = dumped.iter().find(|d| d.key.ends_with("}:ch:newsms"));
    let kept = kept.expect("the channel is stored");
    assert_eq!(kept.pttl, -1, "a stored channel lives until deleted");
    let text = kept.values.concat();
    let digest = etag.trim_matches('"');
    assert!(text.contains(digest), "the digest is kept: {text}");
    assert!(text.contains("cg3:k1:"), "sealed by the first key: {text}");
    // Deleted: its record is gone.
    let res = delete(&app, "newsms", &[("If-Match", &etag)]).await;
    assert_eq!(res.status(), 204);
    let dumped = crate::redis_support::dump_prefix(&app.key_prefix).await;
    assert!(dumped.iter().all(|d| !d.key.ends_with("}:ch:newsms")));
}

/// Polls `app` until channel `name` answers `status` and is in force
/// there (200) or not (404), for at most 2 s: a read answers what the
/// store holds, in force or not.
async fn answers_in_two_seconds(app: &TestApp, name: &str, status: u16) {
    let what = format!("channel {name} answers {status}");
    let answers = || async {
        get(app, &at(name)).await.status().as_u16() == status
            && in_force(app, name) == (status == 200)
    };
    writes::in_two_seconds(&what, answers).await;
}

/// An instance that starts beside `a` has channel `newsms` and the team
/// that lists it; one whose secrets keys no longer list the key that
/// sealed the channel's secret does not start, naming both.
async fn starts_with_the_channel_and_its_key(a: &TestApp) {
    let c = spawn_beside(a, with_operator()).await;
    assert!(in_force(&c, "newsms"), "loaded at the start");
    assert_eq!(writes::key_status(&c, "newco-bot-key").await, 200);
    c.stop_keeping_keys().await;
    let system = a.dir.join("config/chatgate.toml");
    let text = std::fs::read_to_string(&system).unwrap();
    std::fs::write(&system, text.replace("id = \"k1\"", "id = \"k2\"")).unwrap();
    let config = chatgate::config::load(&system).unwrap();
    let started = chatgate::app::App::build(config, chatgate::app::Options::default()).await;
    std::fs::write(&system, text).unwrap();
    let Err(e) = started else {
        panic!("an instance started without the key of a stored channel");
    };
    let e = e.to_string();
    assert!(e.contains("\"newsms\"") && e.contains("\"k1\""), "{e}");
}

/// Two instances on one Redis, each with channel `newsms` in force: the
/// first and its channel's `ETag`, and the second.
async fn two_with_newsms() -> Option<(TestApp, String, TestApp)> {
    let a = spawn_with(Backend::Redis, with_operator()).await?;
    let b = spawn_beside(&a, with_operator()).await;
    let etag = create(&a, "newsms").await;
    writes::in_two_seconds("b has the channel", || async { in_force(&b, "newsms") }).await;
    Some((a, etag, b))
}

/// A team written on one instance listing a channel, and the channel
/// deleted on another at once, before that one has the team in force:
/// the delete is 409 `channel_in_use` naming the team (its write claimed
/// the channel in the store), and both never go through
/// (docs/operator-api.md#the-teams-that-list-a-channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_deleted_as_a_team_that_lists_it_is_written_is_in_use() {
    let Some((a, etag, b)) = two_with_newsms().await else {
        return;
    };
    team_listing(&a, "newsms").await;
    let res = delete(&b, "newsms", &[("If-Match", &etag)]).await;
    let problem = assert_problem(res, 409, "channel_in_use").await;
    assert!(problem.to_string().contains("newco"), "{problem}");
    assert_eq!(read(&b, "newsms").await.0, etag);
    b.stop_keeping_keys().await;
}

/// A channel deleted on one instance, and a team listing it written at
/// once on another that still has it in force: the team's write is 422 at
/// the channel's pointer, and nothing is written
/// (docs/operator-api.md#the-teams-that-list-a-channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_written_as_the_channel_it_lists_is_deleted_is_refused() {
    let Some((a, etag, b)) = two_with_newsms().await else {
        return;
    };
    let res = delete(&b, "newsms", &[("If-Match", &etag)]).await;
    assert_eq!(res.status(), 204);
    let mut body = writes::team("newco", &chatgate::domain::secrets::generate_whsec());
    body["channels"] = json!(["webchat", "newsms"]);
    let res = writes::put(&a, "newco", &body, &[]).await;
    assert_eq!(pointers(res).await, ["/channels/1"]);
    assert_eq!(writes::stored(&a, "newco").await, None);
    b.stop_keeping_keys().await;
}

/// Channel `name` gone from `app`'s store under the hood, as a store an
/// earlier version wrote could lose it while a team listing it was
/// written (its record, its claims and its index entry), and the
/// generation moved so that every look reads every part again.
async fn lost_under_the_hood(app: &TestApp, name: &str) {
    use chatgate::store::keys;
    for key in [keys::api_channel(name), keys::api_kept("cu", name)] {
        let Some(raw) = crate::operator_keys::raw(app, &key).await else {
            continue;
        };
        let op = chatgate::store::Op::Delete {
            key,
            expected: raw.version,
        };
        app.gateway.store().commit(vec![op]).await.unwrap();
    }
    let index = keys::api_channels();
    let mut read: Value =
        serde_json::from_str(&crate::operator_keys::raw(app, &index).await.unwrap().value).unwrap();
    read["c"].as_object_mut().unwrap().remove(name);
    crate::operator_keys::overwrite(app, &index, read.to_string()).await;
    move_the_generation(app).await;
}

/// The generation of the API teams moved, with no part logged.
async fn move_the_generation(app: &TestApp) {
    let gen = chatgate::store::keys::api_teams_generation();
    let mut read: Value =
        serde_json::from_str(&crate::operator_keys::raw(app, &gen).await.unwrap().value).unwrap();
    read["g"] = json!(read["g"].as_u64().unwrap() + 1);
    let record = read.as_object_mut().unwrap();
    record.remove("l");
    record.remove("s");
    crate::operator_keys::overwrite(app, &gen, read.to_string()).await;
}

/// A channel lost while a team in force lists it (a store an earlier
/// version wrote): it stays for that team with one error line, not one
/// at every look; a reload builds the stored teams as a start does, and
/// refuses the team as a new instance does, rather than put it in force
/// again (docs/operator-api.md#every-instance-at-once).
#[tokio::test]
async fn a_channel_lost_under_a_team_is_said_once_and_a_reload_refuses_the_team() {
    let Some(app) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    create(&app, "newsms").await;
    team_listing(&app, "newsms").await;
    // On this test's one thread: the looks of the background task too.
    let (lines, _guard) = crate::cluster_outage::Lines::at_info();
    lost_under_the_hood(&app, "newsms").await;
    for _ in 0..3 {
        app.reloader.operator().sync().await;
        move_the_generation(&app).await;
    }
    let said = lines
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.contains("is still listed"))
        .count();
    assert_eq!(said, 1);
    assert_eq!(writes::key_status(&app, "newco-bot-key").await, 200);
    let other = spawn_beside(&app, with_operator()).await;
    assert_eq!(writes::key_status(&other, "newco-bot-key").await, 401);
    match app.reloader.reload().await {
        chatgate::app::Reloaded::Applied { .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(writes::key_status(&app, "newco-bot-key").await, 401);
    other.stop_keeping_keys().await;
}

/// The `ETag` `GET /v1/channels` lists for channel `name`, if it lists it.
async fn listed_etag(app: &TestApp, name: &str) -> Option<String> {
    let page = app.get_json("/v1/channels?limit=500", Some(OPS)).await;
    let channels = page["channels"].as_array().unwrap().iter();
    let mut found = channels.filter(|c| c["name"] == name);
    found
        .next()
        .map(|c| c["etag"].as_str().unwrap().to_string())
}

/// Two instances on one Redis: right after a channel is created or
/// replaced on one, the other lists the `ETag` the store keeps, as its
/// read answers it, whether or not it has that version in force yet
/// (docs/operator-api.md#concurrency); deleted, it is no longer listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_list_answers_the_stored_etag_on_every_instance_at_once() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let b = spawn_beside(&a, with_operator()).await;
    let first = create(&b, "newsms").await;
    assert_eq!(listed_etag(&a, "newsms").await, Some(first.clone()));
    let mut body = new_sms("newsms");
    body["from"] = json!("+15550007778");
    let res = put(&b, &at("newsms"), &[("If-Match", &first)], Some(&body)).await;
    assert_eq!(res.status(), 200);
    let now = etag_of(&res);
    assert_ne!(now, first);
    assert_eq!(read(&a, "newsms").await.0, now);
    assert_eq!(listed_etag(&a, "newsms").await, Some(now.clone()));
    let res = delete(&b, "newsms", &[("If-Match", &now)]).await;
    assert_eq!(res.status(), 204);
    assert_eq!(listed_etag(&a, "newsms").await, None);
    assert!(listed_etag(&a, "sms").await.is_some());
    b.stop_keeping_keys().await;
}

/// Two instances on one Redis: a channel written on one is in force on
/// the other within 2 s, a team there may list it, and deleted it is gone
/// there within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_written_is_in_force_on_every_instance_within_two_seconds() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let b = spawn_beside(&a, with_operator()).await;
    let etag = create(&a, "newsms").await;
    answers_in_two_seconds(&b, "newsms", 200).await;
    assert_eq!(read(&b, "newsms").await.0, etag);
    // A team written on b lists it, and works there.
    let team = team_listing(&b, "newsms").await;
    assert_eq!(writes::key_status(&b, "newco-bot-key").await, 200);
    writes::within_two_seconds(&a, "newco-bot-key", 200).await;
    starts_with_the_channel_and_its_key(&a).await;
    let res = delete(&a, "newsms", &[("If-Match", &etag)]).await;
    assert_problem(res, 409, "channel_in_use").await;
    // The team deleted on b, then the channel on a: gone on b within 2 s.
    let res = writes::delete(&b, "newco", &[("If-Match", &team)]).await;
    assert_eq!(res.status(), 204);
    writes::within_two_seconds(&a, "newco-bot-key", 401).await;
    assert_eq!(
        delete(&a, "newsms", &[("If-Match", &etag)]).await.status(),
        204
    );
    assert_problem(get(&a, &at("newsms")).await, 404, "not_found").await;
    answers_in_two_seconds(&b, "newsms", 404).await;
    assert!(!in_force(&b, "newsms"));
    b.stop_keeping_keys().await;
}

// A channel's write whose writer stopped after the channel's commit,
// before the team that lists it was built again
// (docs/operator-api.md#the-teams-that-list-a-channel): every instance
// puts the channel in force and builds the team against it, but the
// team's trail moves only once a look finds the mark old and builds it
// again itself, its entry by the channel's writer (its `ETag`, of its
// body as the store keeps it, never moves). The stopped
// write's record is made by a second instance under a prefix of its own
// (the same secrets key seals it alike).
both_stores!(a_channel_write_whose_writer_stopped_is_finished_by_a_later_look, setup: with_operator(), |app: TestApp| async move {
    use crate::operator_keys::{overwrite, raw};
    use chatgate::store::keys;
    create(&app, "newsms").await;
    let before = team_listing(&app, "newsms").await;
    let trail = writes::entries(&app, "newco").await.len();
    let elsewhere = spawn_with(app.backend, with_operator()).await.unwrap();
    let etag = create(&elsewhere, "newsms").await;
    let res = put(&elsewhere, &at("newsms"), &[("If-Match", &etag)], Some(&moved("newsms"))).await;
    let digest = etag_of(&res).trim_matches('"').to_string();
    let record = raw(&elsewhere, &keys::api_channel("newsms")).await.unwrap();
    overwrite(&app, &keys::api_channel("newsms"), record.value).await;
    let index = json!({"c": {"newsms": digest}});
    overwrite(&app, &keys::api_channels(), index.to_string()).await;
    left_a_mark(&app).await;

    // The channel is in force, and the team built with it; its trail
    // waits for the mark.
    answers_from(&app, "+15550008888").await;
    let built = app.reloader.in_force().config().teams["newco"].print.digest();
    assert_ne!(format!("\"{built}\""), before, "the team is built with the channel");
    assert_eq!(team_etag(&app, "newco").await, before);
    assert_eq!(writes::entries(&app, "newco").await.len(), trail);
    app.clock.advance(chatgate::gateway::operator::index::STOPPED_AFTER);
    app.reloader.operator().sync().await;
    let entries = writes::entries(&app, "newco").await;
    assert_eq!(entries.len(), trail + 1, "one entry for the team");
    let entry = entries.last().unwrap();
    assert_eq!(entry["actor"]["api_key_id"], "ops", "{entry}");
    assert_eq!(entry["detail"]["source"], "api", "{entry}");
    let changed = entry["detail"]["changed"].as_array().unwrap();
    assert!(changed.contains(&json!("channels.newsms.from")), "{entry}");
    assert_eq!(entry["detail"]["digest"].as_str(), Some(built.as_str()), "{entry}");
    app.reloader.operator().sync().await;
    assert_eq!(team_etag(&app, "newco").await, before);
    let gen: Value = serde_json::from_str(&raw(&app, &keys::api_teams_generation()).await.unwrap().value).unwrap();
    assert!(gen.get("p").is_none(), "the mark is cleared: {gen}");

    // An index behind the team's record (a writer that stopped between
    // the team's commit and the index's): a later look indexes the
    // record's digest.
    let part = keys::api_teams_part(chatgate::gateway::operator::index::part_of("newco"));
    let mut index: Value = serde_json::from_str(&raw(&app, &part).await.unwrap().value).unwrap();
    index["t"]["newco"] = json!("0".repeat(64));
    overwrite(&app, &part, index.to_string()).await;
    left_a_mark(&app).await;
    app.clock.advance(chatgate::gateway::operator::index::STOPPED_AFTER);
    app.reloader.operator().sync().await;
    let index: Value = serde_json::from_str(&raw(&app, &part).await.unwrap().value).unwrap();
    // The index keeps the digest, and after a `~` the team's incarnation.
    let indexed = index["t"]["newco"].as_str().unwrap().split('~').next();
    assert_eq!(indexed, Some(before.trim_matches('"')), "{index}");
    assert_eq!(writes::entries(&app, "newco").await.len(), trail + 1, "no entry more");
    elsewhere.stop().await;
});

/// A mark beside `app`'s generation, moved: a channel's writer by the
/// operator key `ops` that stopped before team `newco` was built again.
async fn left_a_mark(app: &TestApp) {
    use crate::operator_keys::{overwrite, raw};
    use chatgate::time::Clock;
    let key = chatgate::store::keys::api_teams_generation();
    let mut gen: Value = serde_json::from_str(&raw(app, &key).await.unwrap().value).unwrap();
    let began = app.clock.now().unix_millis();
    gen["g"] = json!(gen["g"].as_u64().unwrap() + 1);
    gen["p"] =
        json!({"newco": [{"k": 7, "a": began, "c": {"type": "api_key", "api_key_id": "ops"}}]});
    overwrite(app, &key, gen.to_string()).await;
}

/// Waits (at most 2 s) until channel `newsms` of `app` reads with `from`.
async fn answers_from(app: &TestApp, from: &str) {
    for _ in 0..40 {
        let config = app.reloader.in_force().config().clone();
        if config.channels["newsms"].form["from"] == from {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("channel newsms was not put in force from {from}");
}

/// On a Redis Cluster, where a team, its trail and the index of the API
/// teams and channels are in slots of their own: a channel and a team
/// that lists it, written on one instance, are in force on another within
/// 2 s; the channel replaced is the team's change there too; deleted, both
/// are gone there within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_channels_and_teams_written_are_in_force_on_every_instance_within_two_seconds()
{
    const TEST: &str =
        "on_a_cluster_channels_and_teams_written_are_in_force_on_every_instance_within_two_seconds";
    let cluster = tokio::task::spawn_blocking(|| crate::redis_support::shared_cluster(TEST));
    let Some(cluster) = cluster.await.unwrap() else {
        return;
    };
    let on_cluster = || Setup {
        cluster_nodes: cluster.urls(),
        ..with_operator()
    };
    let a = spawn_with(Backend::Redis, on_cluster()).await.unwrap();
    let b = spawn_beside(&a, on_cluster()).await;
    let etag = create(&a, "newsms").await;
    answers_in_two_seconds(&b, "newsms", 200).await;
    let team = team_listing(&a, "newsms").await;
    writes::within_two_seconds(&b, "newco-bot-key", 200).await;
    // Replaced on b: the team's entry is in its trail, and a has both.
    let trail = writes::entries(&a, "newco").await.len();
    let res = put(
        &b,
        &at("newsms"),
        &[("If-Match", &etag)],
        Some(&moved("newsms")),
    )
    .await;
    assert_eq!(res.status(), 200);
    let etag = etag_of(&res);
    assert_eq!(writes::entries(&a, "newco").await.len(), trail + 1);
    answers_from(&a, "+15550008888").await;
    // The team's body is as it was: its ETag too, on both.
    assert_eq!(team_etag(&b, "newco").await, team);
    assert_eq!(team_etag(&a, "newco").await, team);
    // Deleted on a: gone on b within 2 s.
    let res = writes::delete(&a, "newco", &[("If-Match", &team)]).await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        delete(&a, "newsms", &[("If-Match", &etag)]).await.status(),
        204
    );
    writes::within_two_seconds(&b, "newco-bot-key", 401).await;
    answers_in_two_seconds(&b, "newsms", 404).await;
    b.stop_keeping_keys().await;
}

/// What a channel's replace costs the store when two API teams list it
/// (docs/operator-api.md#the-teams-that-list-a-channel): five commits
/// (the channel with its index and the generation, then for each team
/// its entry, its record as it was, and the teams' index), and the channels'
/// index read twice, once before the teams are built again and once
/// after, for both together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_of_a_listed_channel_is_two_commits_a_team_and_two_reads_of_the_channels_index() {
    use chatgate::store::keys;
    let tags = &["{~teams}", "{newco}", "{other}"];
    let (counting, commits) = crate::operator_keys::counting_commits(tags);
    let store: chatgate::store::SharedStore = counting.clone();
    let setup = Setup {
        store: Some(store),
        ..with_operator()
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let etag = create(&app, "newsms").await;
    team_listing(&app, "newsms").await;
    let mut other = writes::team("other", &chatgate::domain::secrets::generate_whsec());
    other["channels"] = json!(["newsms"]);
    let hash = chatgate::domain::secrets::ApiKeyHash::of_key("other-bot-key").to_hex();
    other["api_keys"] = json!([{"id": "other-bot", "role": "admin", "sha256": hash}]);
    assert_eq!(writes::put(&app, "other", &other, &[]).await.status(), 201);
    commits.lock().unwrap().clear();
    let index_reads = || {
        let gets = counting.gets.lock().unwrap();
        gets.iter()
            .filter(|k| k[..] == [keys::api_channels()])
            .count()
    };
    let before = index_reads();
    let res = put(
        &app,
        &at("newsms"),
        &[("If-Match", &etag)],
        Some(&moved("newsms")),
    )
    .await;
    assert_eq!(res.status(), 200);
    let written = std::mem::take(&mut *commits.lock().unwrap());
    let gen = keys::api_teams_generation();
    assert_eq!(written.len(), 5, "{written:?}");
    let first = [
        keys::api_channel("newsms"),
        keys::api_channels(),
        gen.clone(),
    ];
    assert_eq!(written[0], first);
    for (i, id) in [(1, "newco"), (3, "other")] {
        assert!(
            !written[i].contains(&keys::api_team(id)),
            "{:?}",
            written[i]
        );
        assert!(
            written[i].contains(&keys::audit_head(&writes::keyspace(&app, id).await)),
            "{:?}",
            written[i]
        );
        let part = keys::api_teams_part(chatgate::gateway::operator::index::part_of(id));
        assert_eq!(written[i + 1], [part, gen.clone()]);
    }
    let read = index_reads() - before;
    assert_eq!(
        read, 2,
        "the channels' index, before and after, for both teams"
    );
}
