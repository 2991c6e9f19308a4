//! A valid team's JSON form round-trips through the operator API
//! (docs/operator-api.md#concurrency): written with `PUT`, read with `GET`,
//! one `ETag`; the read written back with it is 200 with the same `ETag`.
use chatgate::domain::secrets::{generate_whsec, ApiKeyHash};
use proptest::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

use super::run;
use crate::helpers::*;
use crate::operator_writes::{etag_of, put, with_operator, OPS};

/// What varies between the teams written: settings within their ranges,
/// the channels among the sample's, up to three API keys, a webhook, and
/// a text.
#[derive(Debug, Clone)]
struct Shape {
    otp_length: u32,
    otp_ttl_secs: u32,
    otp_max_attempts: u32,
    pin: (u32, u32),
    sms: bool,
    key_roles: Vec<&'static str>,
    webhook: bool,
    text: Option<String>,
}

fn shape() -> impl Strategy<Value = Shape> {
    let pin = (1u32..=20, 0u32..=19).prop_map(|(min, more)| (min, (min + more).min(20)));
    let role = prop::sample::select(vec!["bot", "agent", "admin"]);
    (
        (4u32..=10, 1u32..=86_400, 1u32..=20),
        pin,
        any::<bool>(),
        prop::collection::vec(role, 0..=3),
        any::<bool>(),
        prop::option::of("[a-zA-Z0-9 ]{0,30}"),
    )
        .prop_map(
            |((length, ttl, attempts), pin, sms, key_roles, webhook, text)| Shape {
                otp_length: length,
                otp_ttl_secs: ttl,
                otp_max_attempts: attempts,
                pin,
                sms,
                key_roles,
                webhook,
                text,
            },
        )
}

/// Team `id`'s body of `shape`: its keys its own (no other team has them).
fn body_of(id: &str, shape: &Shape) -> Value {
    let api_keys: Vec<Value> = (shape.key_roles.iter().enumerate())
        .map(|(i, role)| {
            let sha256 = ApiKeyHash::of_key(&format!("{id}-key-{i}")).to_hex();
            json!({"id": format!("{id}-k{i}"), "role": role, "sha256": sha256})
        })
        .collect();
    let channels = match shape.sms {
        true => json!(["webchat", "sms"]),
        false => json!(["webchat"]),
    };
    let mut settings = json!({
        "otp": {
            "length": shape.otp_length,
            "ttl": format!("{}s", shape.otp_ttl_secs),
            "max_attempts": shape.otp_max_attempts,
        },
        "pin": {"min_length": shape.pin.0, "max_length": shape.pin.1},
    });
    if let Some(text) = &shape.text {
        settings["templates"] = json!({"otp": format!("Your code: #PIN# {text}")});
    }
    let mut body = json!({
        "id": id,
        "login_url": format!("https://login.{id}.example/"),
        "channels": channels,
        "security_keys": [{"kid": "p1", "secret": generate_whsec(), "primary": true}],
        "api_keys": api_keys,
        "settings": settings,
    });
    if shape.webhook {
        body["webhook"] =
            json!({"url": format!("https://bot.{id}.example/events"), "secret": generate_whsec()});
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_team_round_trips_through_put_and_get_with_one_etag() {
    let app = spawn_with(Backend::Memory, with_operator()).await.unwrap();
    let app = &app;
    let made = std::sync::atomic::AtomicUsize::new(0);
    let made = &made;
    run(16, shape(), |shape| async move {
        let n = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("prop-{n}");
        let res = put(app, &id, &body_of(&id, &shape), &[("If-None-Match", "*")]).await;
        prop_assert_eq!(res.status().as_u16(), 201);
        let written = etag_of(&res);
        let shown: Value = res.json().await.unwrap();

        let res = app
            .request(Method::GET, &format!("/v1/teams/{id}"), Some(OPS))
            .send()
            .await
            .unwrap();
        prop_assert_eq!(res.status().as_u16(), 200);
        prop_assert_eq!(etag_of(&res), written.clone());
        let read: Value = res.json().await.unwrap();
        prop_assert_eq!(&read, &shown);

        let res = put(app, &id, &read, &[("If-Match", &written)]).await;
        prop_assert_eq!(res.status().as_u16(), 200);
        prop_assert_eq!(etag_of(&res), written);
        Ok(())
    });
}
