//! What an operator key may write (docs/operator-api.md): a secret sent
//! back only where a read showed it (no write moves one), reading back
//! differently in every team, member and write; no URL that names a
//! service beside the gateway or carries a credential; a `twilio`
//! sender as its file needs; and no `If-Match: *` that stands for a
//! version.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chatgate::domain::secrets::{generate_whsec, ApiKeyHash};
use chatgate::store::keys;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::operator_keys::overwrite;
use crate::operator_writes::{
    etag_of, key_status, operator_section, put, stored, team, webhook_secret, with_operator, OPS,
};

/// The operator API on, `allow_private_destinations` as by default.
fn strict() -> Setup {
    Setup {
        system_extra: operator_section(false),
        ..Setup::default()
    }
}

/// The pointers a 422 `invalid_config` names.
pub(crate) async fn refused_at(res: reqwest::Response) -> Vec<String> {
    let p = assert_problem(res, 422, "invalid_config").await;
    let errors = p["errors"].as_array().expect("errors").iter();
    errors
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect()
}

async fn read(app: &TestApp, path: &str) -> Value {
    let res = app.request(Method::GET, path, Some(OPS)).send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn dry_run(app: &TestApp, id: &str, body: &Value, tag: &str) -> Value {
    let path = format!("/v1/teams/{id}?dry_run=true");
    let req = app.request(Method::PUT, &path, Some(OPS));
    let res = req.header("If-Match", tag).json(body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Team `id` as [`team`] makes it, with an API key of its own.
fn team_of_its_own(id: &str, security: &str) -> Value {
    let mut body = team(id, security);
    body["api_keys"][0]["sha256"] = json!(ApiKeyHash::of_key(&format!("{id}-key")).to_hex());
    body
}

both_stores!(a_stored_secret_cannot_be_moved_and_reads_back_only_where_it_stands, setup: with_operator(), |app: TestApp| async move {
    let security = generate_whsec();
    let res = put(&app, "newco", &team("newco", &security), &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    let shown: Value = res.json().await.unwrap();
    assert_eq!(read(&app, "/v1/teams/newco").await, shown, "a read shows what the write answered");
    let (key, hook) = (shown["security_keys"][0]["secret"].clone(), shown["webhook"]["secret"].clone());

    // The security key sent back at the webhook's secret (whose URL the
    // writer may choose) and the webhook's at the key: 422 at each.
    let mut moved = shown.clone();
    moved["webhook"]["secret"] = key.clone();
    moved["security_keys"][0]["secret"] = hook.clone();
    let at = refused_at(put(&app, "newco", &moved, &[("If-Match", &tag)]).await).await;
    assert_eq!(at, ["/security_keys/0/secret", "/webhook/secret"]);
    // Into a second security key the team did not have: 422 too.
    let mut copied = shown.clone();
    copied["security_keys"][0]["primary"] = json!(false);
    copied["security_keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kid": "n2", "secret": key, "primary": true}));
    let at = refused_at(put(&app, "newco", &copied, &[("If-Match", &tag)]).await).await;
    assert_eq!(at, ["/security_keys/1/secret"]);
    assert_eq!(read(&app, "/v1/teams/newco").await, shown, "nothing changed");

    // Written back where it stands: kept, the same ETag and read-backs.
    let res = put(&app, "newco", &shown, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(etag_of(&res), tag);
    assert_eq!(res.json::<Value>().await.unwrap(), shown);

    // One secret in two teams reads differently; one team's read-back
    // names nothing in the other.
    let res = put(&app, "other", &team_of_its_own("other", &security), &[]).await;
    assert_eq!(res.status(), 201);
    let other_tag = etag_of(&res);
    let other: Value = res.json().await.unwrap();
    assert_ne!(other["security_keys"][0]["secret"], key);
    assert_ne!(other["webhook"]["secret"], hook, "the same webhook secret");
    let mut borrowed = other.clone();
    borrowed["webhook"]["secret"] = hook.clone();
    let at = refused_at(put(&app, "other", &borrowed, &[("If-Match", &other_tag)]).await).await;
    assert_eq!(at, ["/webhook/secret"]);

    // The stored value written as itself, in a dry run or not: what the
    // answer shows of it is no stored read-back, nor another answer's.
    let mut guessed = shown.clone();
    guessed["security_keys"][0]["secret"] = json!(security);
    let first = dry_run(&app, "newco", &guessed, &tag).await;
    let second = dry_run(&app, "newco", &guessed, &tag).await;
    let guesses = [&first["security_keys"][0]["secret"], &second["security_keys"][0]["secret"]];
    assert_ne!(guesses[0], &key);
    assert_ne!(guesses[0], guesses[1]);
    assert_eq!(first["webhook"]["secret"], hook, "a secret sent back keeps its read-back");
    let res = put(&app, "newco", &guessed, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);
    assert_ne!(etag_of(&res), tag, "salted anew, so no ETag tells a guess right");
    let now: Value = res.json().await.unwrap();
    assert_ne!(now["security_keys"][0]["secret"], key, "salted anew");
    assert_eq!(read(&app, "/v1/teams/newco").await, now);

    // A key endpoint's change leaves the other secrets as they read.
    let res = post(&app, "/v1/teams/newco/security-keys", json!({"kid": "n2"})).await;
    assert_eq!(res.status(), 201);
    let after = read(&app, "/v1/teams/newco").await;
    assert_eq!(after["webhook"]["secret"], hook);
    assert_eq!(after["security_keys"][0]["secret"], now["security_keys"][0]["secret"]);
    assert_eq!(after["security_keys"][1]["secret"]["hmac"].as_str().unwrap().len(), 64);
});

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    let req = app.request(Method::POST, path, Some(OPS)).json(&body);
    req.send().await.unwrap()
}

// A stored team that no longer builds (it lists a channel that is gone,
// as when a channel is deleted while a write that lists it is under
// way): a key endpoint refuses to change it rather than answer 201 for
// a key that would never be in force, and changes nothing.
both_stores!(a_key_endpoint_refuses_a_team_that_would_not_be_in_force, setup: with_operator(), |app: TestApp| async move {
    let res = put(&app, "newco", &team("newco", &generate_whsec()), &[]).await;
    assert_eq!(res.status(), 201);
    let mut record: Value = serde_json::from_str(&stored(&app, "newco").await.unwrap()).unwrap();
    record["body"]["channels"] = json!(["webchat", "gone"]);
    overwrite(&app, &keys::api_team("newco"), record.to_string()).await;
    let before = stored(&app, "newco").await;
    let res = post(&app, "/v1/teams/newco/security-keys", json!({"kid": "n2", "primary": true})).await;
    assert_eq!(refused_at(res).await, ["/channels/1"]);
    let res = post(&app, "/v1/teams/newco/api-keys", json!({"id": "desk", "role": "agent"})).await;
    assert_eq!(refused_at(res).await, ["/channels/1"]);
    assert_eq!(stored(&app, "newco").await, before, "nothing changed");
});

/// `plain` sealed as a gateway sealed secrets before salts (`cg1`), at
/// `place` under the suite's secrets key `k1` (32 zero bytes).
fn sealed_before_salts(place: &str, plain: &str) -> String {
    let cipher = Aes256Gcm::new(&[0u8; 32].into());
    let nonce = [7u8; 12];
    let aad = format!("cg1\nk1\n{place}");
    let payload = Payload {
        msg: plain.as_bytes(),
        aad: aad.as_bytes(),
    };
    let mut bytes = nonce.to_vec();
    bytes.extend(cipher.encrypt(&Nonce::from(nonce), payload).unwrap());
    format!("cg1:k1:{}", B64URL.encode(bytes))
}

/// The value `sealed` (`cg3`, a salt beside it, bound to a secret that is
/// sent nowhere: a security key) holds at `place`, under the suite's
/// secrets key `k1`.
fn opened_salted(place: &str, sealed: &str) -> String {
    let bytes = B64URL
        .decode(sealed.strip_prefix("cg3:k1:").unwrap())
        .unwrap();
    let (salt, rest) = bytes.split_at(16);
    let (nonce, ciphertext) = rest.split_at(12);
    let mut aad = format!("cg3\nk1\n{place}\n").into_bytes();
    aad.extend_from_slice(salt);
    aad.extend_from_slice(&0u64.to_be_bytes());
    let payload = Payload {
        msg: ciphertext,
        aad: &aad,
    };
    let cipher = Aes256Gcm::new(&[0u8; 32].into());
    let nonce: [u8; 12] = nonce.try_into().unwrap();
    let plain = cipher.decrypt(&Nonce::from(nonce), payload).unwrap();
    String::from_utf8(plain).unwrap()
}

/// A team stored before salts (its record written again as such a
/// gateway sealed it) is put in force by an instance that starts, reads
/// back, refuses its secrets moved, and a write of what a read shows
/// keeps them, salted from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_stored_before_salts_loads_reads_back_and_is_salted_at_its_next_write() {
    let Some(a) = spawn_with(Backend::Redis, with_operator()).await else {
        return;
    };
    let security = generate_whsec();
    let res = put(&a, "newco", &team("newco", &security), &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    let mut record: Value = serde_json::from_str(&stored(&a, "newco").await.unwrap()).unwrap();
    let body = &mut record["body"];
    body["security_keys"][0]["secret"] = json!(sealed_before_salts(
        "newco/security_keys/0/secret",
        &security
    ));
    body["webhook"]["secret"] = json!(sealed_before_salts(
        "newco/webhook/secret",
        webhook_secret()
    ));
    overwrite(&a, &keys::api_team("newco"), record.to_string()).await;

    let b = spawn_beside(&a, with_operator()).await;
    let shown = read(&b, "/v1/teams/newco").await;
    let key = shown["security_keys"][0]["secret"]["hmac"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(key.len(), 64);
    let mut moved = shown.clone();
    moved["webhook"]["secret"] = shown["security_keys"][0]["secret"].clone();
    let at = refused_at(put(&b, "newco", &moved, &[("If-Match", &tag)]).await).await;
    assert_eq!(at, ["/webhook/secret"]);

    // Written back: the values kept, salted from now on (a new ETag).
    let res = put(&b, "newco", &shown, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);
    let salted = etag_of(&res);
    let text = stored(&b, "newco").await.unwrap();
    assert!(
        text.contains("\"cg3:k1:") && !text.contains("\"cg1:"),
        "{text}"
    );
    let record: Value = serde_json::from_str(&text).unwrap();
    let sealed = record["body"]["security_keys"][0]["secret"]
        .as_str()
        .unwrap();
    assert_eq!(
        opened_salted("newco/security_keys/0/secret", sealed),
        security
    );
    let now = read(&b, "/v1/teams/newco").await;
    assert_ne!(now["security_keys"][0]["secret"]["hmac"], json!(key));
    // And from then on, what a read shows is kept as it is.
    let res = put(&b, "newco", &now, &[("If-Match", &salted)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(etag_of(&res), salted);
    assert_eq!(key_status(&b, "newco-bot-key").await, 200);
    b.stop_keeping_keys().await;
}

/// A body's URLs, each at its pointer.
fn team_with_urls(hook: &str, login: &str) -> Value {
    let mut body = team("newco", &generate_whsec());
    body["webhook"]["url"] = json!(hook);
    body["login_url"] = json!(login);
    body
}

both_stores!(a_url_naming_a_service_beside_the_gateway_is_refused_by_default, setup: strict(), |app: TestApp| async move {
    for (hook, login) in [
        ("http://127.0.0.1:9000/hook", "https://localhost/login"),
        ("http://169.254.169.254/latest/meta-data/", "https://[::1]/"),
        ("https://10.0.0.7/events", "https://192.168.1.1/"),
        ("https://[fd12:3456::1]/events", "https://0.0.0.0/"),
    ] {
        let res = put(&app, "newco", &team_with_urls(hook, login), &[]).await;
        assert_eq!(refused_at(res).await, ["/login_url", "/webhook/url"], "{hook} {login}");
    }
    let mut sms = json!({"name": "newsms", "kind": "twilio", "account_sid": "AC9",
        "auth_token": "t", "from": "+15550007777", "base_url": "http://127.0.0.1:9/",
        "templates": {"otp": "#PIN# is your code."}});
    let path = "/v1/channels/newsms";
    let res = app.request(Method::PUT, path, Some(OPS)).json(&sms).send().await.unwrap();
    assert_eq!(refused_at(res).await, ["/base_url"]);
    assert!(stored(&app, "newco").await.is_none(), "nothing was written");
    // A public address is taken.
    sms["base_url"] = json!("https://api.twilio.example/");
    let res = app.request(Method::PUT, path, Some(OPS)).json(&sms).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let res = put(&app, "newco", &team_with_urls("https://bot.newco.example/", "https://login.newco.example/"), &[]).await;
    assert_eq!(res.status(), 201);
});

both_stores!(a_destination_spelled_without_slashes_or_as_a_server_host_is_refused_too, setup: strict(), |app: TestApp| async move {
    // What a URL parser repairs names the same address.
    for (hook, login) in [
        ("http:127.0.0.1:6379/", "http:\\\\10.0.0.1\\"),
        ("http:/\t/169.254.169.254/", "HTTPS:/localhost/"),
    ] {
        let res = put(&app, "newco", &team_with_urls(hook, login), &[]).await;
        assert_eq!(refused_at(res).await, ["/login_url", "/webhook/url"], "{hook} {login}");
    }
    // An SMTP server beside the gateway (its Redis, say) is refused.
    let mut mail = json!({"name": "newmail", "kind": "smtp", "host": "127.0.0.1", "port": 6379,
        "tls": "none", "from": "no-reply@newco.example", "templates": {"otp": "#PIN# is your code."}});
    let path = "/v1/channels/newmail";
    let res = app.request(Method::PUT, path, Some(OPS)).json(&mail).send().await.unwrap();
    assert_eq!(refused_at(res).await, ["/host"]);
    mail["host"] = json!("smtp.newco.example");
    let res = app.request(Method::PUT, path, Some(OPS)).json(&mail).send().await.unwrap();
    assert_eq!(res.status(), 201);
});

both_stores!(a_private_destination_is_taken_where_the_system_allows_it, setup: with_operator(), |app: TestApp| async move {
    let body = team_with_urls("http://127.0.0.1:9000/hook", "https://localhost/login");
    assert_eq!(put(&app, "newco", &body, &[]).await.status(), 201);
});

both_stores!(a_url_carrying_a_credential_is_refused_even_where_private_ones_are_allowed, setup: with_operator(), |app: TestApp| async move {
    for (hook, login) in [
        ("https://bot:hunter2@bot.newco.example/", "https://login.newco.example/?access_token=x"),
        ("https://bot.newco.example/?sig=abc", "https://login.newco.example/?lang=en&API_KEY=y"),
        ("https://bot.newco.example/?x-Auth=1", "https://user@login.newco.example/"),
    ] {
        let res = put(&app, "newco", &team_with_urls(hook, login), &[]).await;
        assert_eq!(refused_at(res).await, ["/login_url", "/webhook/url"], "{hook} {login}");
    }
    let fine = team_with_urls("https://bot.newco.example/?team=newco", "https://login.newco.example/?lang=en");
    assert_eq!(put(&app, "newco", &fine, &[]).await.status(), 201);
});

both_stores!(a_twilio_sender_written_through_the_api_is_a_number_or_a_messaging_service, setup: with_operator(), |app: TestApp| async move {
    let body = |from: &str| json!({"name": "newsms", "kind": "twilio", "account_sid": "AC9",
        "auth_token": "t", "from": from, "templates": {"otp": "#PIN# is your code."}});
    let put_channel = |b: Value| {
        let req = app.request(Method::PUT, "/v1/channels/newsms?dry_run=true", Some(OPS));
        async move { req.json(&b).send().await.unwrap() }
    };
    for from in ["ACME", "15550007777", "+1 555 000 7777", "whatsapp:ACME", "MG123"] {
        assert_eq!(refused_at(put_channel(body(from)).await).await, ["/from"], "{from}");
    }
    for from in ["+15550007777", "whatsapp:+15550007777", "MG0123456789abcdef0123456789abcdef"] {
        assert_eq!(put_channel(body(from)).await.status(), 201, "{from}");
    }
});

both_stores!(if_match_star_names_no_version, setup: with_operator(), |app: TestApp| async move {
    let body = team("newco", &generate_whsec());
    let res = put(&app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201);
    let tag = etag_of(&res);
    let mut changed = body.clone();
    changed["settings"]["otp"]["ttl"] = json!("3m");
    for names in ["*", "\"x\", *"] {
        let res = put(&app, "newco", &changed, &[("If-Match", names)]).await;
        assert_problem(res, 428, "precondition_required").await;
        let res = app.request(Method::DELETE, "/v1/teams/newco", Some(OPS)).header("If-Match", names).send().await.unwrap();
        assert_problem(res, 428, "precondition_required").await;
    }
    let shown = read(&app, "/v1/teams/newco").await;
    assert_eq!(shown["settings"]["otp"]["ttl"], "2m", "nothing changed");
    let res = put(&app, "newco", &changed, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);
});
