//! Where the gateway connects for a team or channel written through the
//! operator API (docs/operator-api.md#destinations): an address of a
//! special-purpose registry written as itself is refused at the write,
//! and a name that resolves to one is refused where the gateway
//! connects, nothing sent there, unless `allow_private_destinations`.
use chatgate::domain::secrets::generate_whsec;
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::operator_inputs::refused_at;
use crate::operator_writes::{operator_section, put, team, with_operator, OPS};

/// The operator API on, `allow_private_destinations` as by default.
fn strict() -> Setup {
    Setup {
        system_extra: operator_section(false),
        ..Setup::default()
    }
}

both_stores!(an_address_of_any_special_purpose_range_written_as_itself_is_refused, setup: strict(), |app: TestApp| async move {
    for hook in [
        "http://100.100.100.200/latest/meta-data/",
        "https://100.64.0.1/",
        "https://198.18.0.1/",
        "https://192.0.0.170/",
        "https://192.0.2.10/",
        "http://224.0.0.251/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b:1::a00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[::127.0.0.1]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[ff02::1]/",
        "http://[fec0::1]/",
    ] {
        let mut body = team("newco", &generate_whsec());
        body["webhook"]["url"] = json!(hook);
        let res = put(&app, "newco", &body, &[]).await;
        assert_eq!(refused_at(res).await, ["/webhook/url"], "{hook}");
    }
    let mail = json!({"name": "newmail", "kind": "smtp", "host": "100.64.0.1", "port": 587,
        "from": "no-reply@newco.example", "templates": {"otp": "#PIN# is your code."}});
    let res = app.request(Method::PUT, "/v1/channels/newmail", Some(OPS)).json(&mail).send().await.unwrap();
    assert_eq!(refused_at(res).await, ["/host"]);
});

/// This machine's own name when it resolves only to addresses of a
/// special-purpose registry (loopback, or a private address of this
/// host), as a name an operator could write: it is not `localhost`.
async fn own_name() -> Option<String> {
    let name = hostname::get().ok()?.into_string().ok()?;
    let found: Vec<_> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .ok()?
        .collect();
    let special = found.iter().all(|a| chatgate::outbound::special(a.ip()));
    (!found.is_empty() && special).then_some(name)
}

/// A Twilio stand-in on every address of this machine, so that its own
/// name reaches it whatever that resolves to here.
async fn twilio_everywhere() -> MockServer {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let server = MockServer::builder().listener(listener).start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1", "status": "queued"})),
        )
        .mount(&server)
        .await;
    server
}

/// An API `twilio` channel at `base_url` and a team that chats through
/// it, written; then an OTP started in a conversation on it. What the
/// start answered.
async fn otp_through_an_api_twilio_channel(app: &TestApp, base_url: &str) -> (u16, Value) {
    let channel = json!({"name": "newsms", "kind": "twilio", "account_sid": "AC9",
        "auth_token": "twilio-token-of-the-api-channel", "from": "+15550007777",
        "base_url": base_url, "templates": {"otp": "#PIN# is your code."}});
    let res = app
        .request(Method::PUT, "/v1/channels/newsms", Some(OPS))
        .json(&channel)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        201,
        "a name is written: it is checked where the gateway connects"
    );
    let mut body = team("newco", &generate_whsec());
    body["channels"] = json!(["newsms"]);
    assert_eq!(put(app, "newco", &body, &[]).await.status(), 201);
    let created: Value = app
        .create_as("newco-bot-key", json!({"channel": "newsms", "conversation_id": "+15550001234", "contact": {"phone": "+15550001234"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/interactions/{id}/challenges");
    let res = app
        .request(Method::POST, &path, Some("newco-bot-key"))
        .json(&json!({"method": "otp"}))
        .send()
        .await;
    let res = res.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// [`otp_through_an_api_twilio_channel`] with a `base_url` that names
/// this machine by its own name, served by [`twilio_everywhere`]: the
/// stand-in and what the start answered; `None` (said so) where the name
/// does not resolve to a special-purpose address.
async fn otp_to_this_machine(app: &TestApp) -> Option<(MockServer, u16, Value)> {
    let Some(name) = own_name().await else {
        eprintln!("skipped: this machine's name does not resolve to a special-purpose address");
        return None;
    };
    let twilio = twilio_everywhere().await;
    let base_url = format!("http://{name}:{}/", twilio.address().port());
    let (status, answer) = otp_through_an_api_twilio_channel(app, &base_url).await;
    Some((twilio, status, answer))
}

both_stores!(a_name_that_resolves_to_this_machine_is_not_connected_to, setup: strict(), |app: TestApp| async move {
    let Some((twilio, status, answer)) = otp_to_this_machine(&app).await else {
        return;
    };
    assert_eq!((status, answer["code"].as_str()), (502, Some("channel_error")), "{answer}");
    let detail = answer["detail"].as_str().unwrap();
    assert!(detail.contains("twilio refused: the destination's address is not public"), "{detail}");
    let reached = twilio.received_requests().await.unwrap();
    assert!(reached.is_empty(), "nothing, and no auth token, reached the listener");
});

both_stores!(a_name_that_resolves_to_this_machine_is_reached_where_the_system_allows_it, setup: with_operator(), |app: TestApp| async move {
    let Some((twilio, status, answer)) = otp_to_this_machine(&app).await else {
        return;
    };
    assert_eq!(status, 201, "{answer}");
    let reached = twilio.received_requests().await.unwrap();
    assert_eq!(reached.len(), 1, "the code went to the channel's provider");
});

/// The body of a read of `path`.
async fn read(app: &TestApp, path: &str) -> (String, Value) {
    let res = app
        .request(Method::GET, path, Some(OPS))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tag = res.headers()["etag"].to_str().unwrap().to_string();
    (tag, res.json().await.unwrap())
}

both_stores!(a_secret_kept_as_its_read_back_is_not_sent_to_a_new_destination, setup: with_operator(), |app: TestApp| async move {
    let mut body = team("newco", &generate_whsec());
    body["number_verification"] = json!({"provider": "camara",
        "authorization_endpoint": "https://op.example/authorize", "token_endpoint": "https://op.example/token",
        "verify_url": "https://op.example/verify", "client_id": "cg", "client_secret": "camara-client-secret"});
    let res = put(&app, "newco", &body, &[]).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let (tag, shown) = read(&app, "/v1/teams/newco").await;
    // Re-pointed, the secrets kept as their read-back: 422 at each secret.
    let mut repointed = shown.clone();
    repointed["number_verification"]["token_endpoint"] = json!("https://collector.example/token");
    repointed["webhook"]["url"] = json!("https://collector.example/events");
    let res = put(&app, "newco", &repointed, &[("If-Match", &tag)]).await;
    let p = assert_problem(res, 422, "invalid_config").await;
    let errors = p["errors"].as_array().unwrap();
    let at: Vec<&str> = errors.iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    assert_eq!(at, ["/number_verification/client_secret", "/webhook/secret"]);
    assert!(errors[0]["detail"].as_str().unwrap().contains("send the secret again"), "{p}");
    assert_eq!(read(&app, "/v1/teams/newco").await, (tag.clone(), shown.clone()), "nothing changed");
    // Kept where they go: the read written back is taken.
    let res = put(&app, "newco", &shown, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);
    // Sent again with the new destinations: the writer knows them.
    repointed["number_verification"]["client_secret"] = json!("camara-client-secret");
    repointed["webhook"]["secret"] = json!(generate_whsec());
    let res = put(&app, "newco", &repointed, &[("If-Match", &tag)]).await;
    assert_eq!(res.status(), 200);

    // A Twilio channel's base URL alike, its auth token kept.
    let channel = json!({"name": "newsms", "kind": "twilio", "account_sid": "AC9",
        "auth_token": "twilio-token-of-the-api-channel", "from": "+15550007777",
        "base_url": "https://api.twilio.example/", "templates": {"otp": "#PIN# is your code."}});
    let path = "/v1/channels/newsms";
    let res = app.request(Method::PUT, path, Some(OPS)).json(&channel).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let (tag, shown) = read(&app, path).await;
    let mut moved = shown.clone();
    moved["base_url"] = json!("https://collector.example/");
    let res = app.request(Method::PUT, path, Some(OPS)).header("If-Match", &tag).json(&moved).send().await.unwrap();
    assert_eq!(refused_at(res).await, ["/auth_token"]);
    moved["auth_token"] = json!("twilio-token-of-the-api-channel");
    let res = app.request(Method::PUT, path, Some(OPS)).header("If-Match", &tag).json(&moved).send().await.unwrap();
    assert_eq!(res.status(), 200);
});
