//! The person behind a WhatsApp conversation changed
//! (docs/channels.md#identity-changes): Meta's signed webhook, faked from
//! its published examples, ends what was proven in that conversation — on
//! both stores.
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::helpers::*;
use crate::receipts::{meta, whatsapp_setup, Ids, APP_SECRET};

/// A gateway whose `whatsapp` channel (and `wa-plain`, another
/// `whatsapp` channel) send to a fake Cloud API, conversations
/// remembered for a day.
async fn gateway(backend: Backend) -> Option<(TestApp, MockServer)> {
    gateway_with(backend, Setup::default()).await
}

/// [`gateway`] with `base`'s store and key prefix.
async fn gateway_with(backend: Backend, base: Setup) -> Option<(TestApp, MockServer)> {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/1065/messages"))
        .respond_with(Ids::new("wamid.out"))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/v21.0/1066/messages"))
        .respond_with(Ids::new("wamid.plain"))
        .mount(&provider)
        .await;
    let setup = Setup {
        defaults: r#"recognize_for = "1d""#.into(),
        store: base.store,
        key_prefix: base.key_prefix,
        ..whatsapp_setup(&provider)
    };
    let app = spawn_with(backend, setup).await?;
    Some((app, provider))
}

/// A webhook as Meta sends it, one change whose `value` is `value`.
fn webhook(value: Value) -> Value {
    let mut v = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550006666", "phone_number_id": "1065"}});
    v.as_object_mut()
        .unwrap()
        .extend(value.as_object().unwrap().clone());
    json!({"object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": v}]}]})
}

/// Meta's system message of `system_type` about the user `from`, id `id`.
fn system(id: &str, from: &str, system_type: &str) -> Value {
    webhook(
        json!({"messages": [{"from": from, "from_user_id": "US.13491208655302741918",
        "id": id, "timestamp": "1764064800", "type": "system",
        "system": {"body": format!("User A changed from {from} to 15559990000"),
                   "wa_id": "15559990000", "type": system_type}}]}),
    )
}

/// Meta's time of the messages and statuses below, in seconds.
const AT: i64 = 1_764_064_800;

/// An incoming text message with its contact's identity hash.
fn contact_hash(from: &str, hash: &str) -> Value {
    contact_hash_at(from, hash, AT)
}

/// An incoming text message with its contact's identity hash, sent at
/// Meta's time `at` (seconds), its id named by the hash and the time.
fn contact_hash_at(from: &str, hash: &str, at: i64) -> Value {
    webhook(json!({
        "contacts": [{"profile": {"name": "A"}, "wa_id": from, "identity_key_hash": hash}],
        "messages": [{"from": from, "id": format!("wamid.in.{hash}.{at}"), "timestamp": at.to_string(),
                      "type": "text", "text": {"body": "hi"}}]}))
}

/// A status of message `id`, with the recipient's identity hash.
fn status_hash(id: &str, to: &str, hash: &str) -> Value {
    webhook(json!({"statuses": [{"id": id, "status": "delivered",
        "timestamp": AT.to_string(), "recipient_id": to, "recipient_identity_key_hash": hash}]}))
}

/// Meta's id of the login link delivered now into interaction `id`'s
/// conversation on the `whatsapp` channel (the fake Cloud API answers its
/// nth message `wamid.out<n>`).
async fn delivered_link(app: &TestApp, provider: &MockServer, id: &str) -> String {
    let link = app.issue_link(id, json!({"deliver": true})).await;
    assert_eq!(link["delivered"], true, "{link}");
    let url = link["short_url"].as_str().unwrap();
    let requests = provider.received_requests().await.unwrap_or_default();
    let n = requests
        .iter()
        .filter(|r| r.url.path() == "/v21.0/1065/messages")
        .position(|r| String::from_utf8_lossy(&r.body).contains(url))
        .expect("the link's message");
    format!("wamid.out{}", n + 1)
}

/// An interaction on `channel` in conversation `number`, authenticated
/// as `cust-42` (so recognized), with an open OTP: (id, challenge id).
async fn proven(app: &TestApp, channel: &str, number: &str) -> (String, String) {
    let v = app
        .create(json!({"channel": channel, "conversation_id": number, "customer_ref": "cust-42"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    app.authenticate(&id, "cust-42").await;
    let res = crate::challenges::start(app, &id, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 201);
    let cid = res.json::<Value>().await.unwrap()["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated", "{v}");
    assert!(!v["recognized"].is_null(), "{v}");
    (id, cid)
}

async fn post(app: &TestApp, channel: &str, body: &Value) {
    let res = meta(app, channel, body, Some(APP_SECRET)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

async fn challenge_state(app: &TestApp, id: &str, cid: &str) -> Value {
    let path = format!("/v1/interactions/{id}/challenges/{cid}");
    app.get_json(&path, Some(&app.keys.bot)).await["state"].clone()
}

/// Asserts that what was proven in interaction `id` ended by an identity
/// change: its challenge `cid` failed, its authentication and recognition
/// gone, both events announced with `identity_changed`.
async fn assert_ended(app: &mut TestApp, id: &str, cid: &str) {
    assert_eq!(ended(app, id).await, cid);
    assert_eq!(challenge_state(app, id, cid).await, "failed");
}

/// Asserts that what was proven in interaction `id` ended by an identity
/// change, its open challenge failed: that challenge's id.
async fn ended(app: &mut TestApp, id: &str) -> String {
    let v = app.get(id).await;
    // Not `pending` either: no link or challenge is left open.
    assert_eq!(v["status"], "unauthenticated", "{v}");
    assert_eq!(v["method"], Value::Null, "{v}");
    assert_eq!(v["recognized"], Value::Null, "{v}");
    let failed = app
        .next_event("challenge.failed", Duration::from_secs(5))
        .await
        .expect("challenge.failed");
    let data = event_data(&failed);
    assert_eq!(data["reason"], "identity_changed", "{data}");
    assert_eq!(data["interaction"]["id"], id, "{data}");
    let cid = data["challenge"]["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = app
        .next_event("interaction.logged_out", Duration::from_secs(5))
        .await
        .expect("interaction.logged_out");
    let data = event_data(&out);
    assert_eq!(data["cause"], "identity_changed", "{data}");
    assert_eq!(data["interaction"]["id"], id, "{data}");
    cid
}

/// The audit entries `interaction.logged_out` of interaction `id`.
async fn logouts_recorded(app: &TestApp, id: &str) -> Vec<Value> {
    let page = app
        .get_json("/v1/audit?after=0&limit=1000", Some(&app.keys.admin))
        .await;
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "interaction.logged_out" && e["target"]["interaction_id"] == id)
        .cloned()
        .collect()
}

/// `chatgate_whatsapp_identity_changes_total` as `/metrics` says it now.
async fn changes_counted(app: &TestApp) -> u64 {
    let res = app
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("chatgate_whatsapp_identity_changes_total "))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

async fn system_messages_end_what_was_proven(backend: Backend) {
    let Some((mut app, _provider)) = gateway(backend).await else {
        return;
    };
    let counted = changes_counted(&app).await;
    // Another channel's conversation of the same number.
    let (other, other_cid) = proven(&app, "wa-plain", "15552220001").await;
    for (n, kind) in [
        "user_changed_number",
        "user_changed_user_id",
        "customer_changed_number",
        "customer_identity_changed",
    ]
    .into_iter()
    .enumerate()
    {
        let number = format!("1555222000{}", n + 1);
        let (id, cid) = proven(&app, "whatsapp", &number).await;
        let body = system(&format!("wamid.sys.{n}"), &number, kind);
        post(&app, "whatsapp", &body).await;
        assert_ended(&mut app, &id, &cid).await;
        let entries = logouts_recorded(&app, &id).await;
        assert_eq!(entries.len(), 1, "{entries:?}");
        let e = &entries[0];
        assert_eq!(e["actor"]["type"], "provider", "{e}");
        assert_eq!(e["actor"]["id"], "whatsapp", "{e}");
        assert_eq!(e["detail"]["cause"], "identity_changed", "{e}");
        // Proven again, then Meta sends the same message again: it acted once.
        app.authenticate(&id, "cust-42").await;
        post(&app, "whatsapp", &body).await;
        assert_eq!(app.get(&id).await["status"], "authenticated");
        assert_eq!(logouts_recorded(&app, &id).await.len(), 1);
    }
    // Four changes counted, each once.
    assert_eq!(changes_counted(&app).await, counted + 4);
    // The same number on another channel: untouched.
    let v = app.get(&other).await;
    assert_eq!(v["status"], "authenticated", "{v}");
    assert!(!v["recognized"].is_null(), "{v}");
    assert_eq!(challenge_state(&app, &other, &other_cid).await, "open");
    // A conversation the gateway never saw: 200, nothing.
    post(
        &app,
        "whatsapp",
        &system("wamid.sys.x", "15557770000", "user_changed_number"),
    )
    .await;
}

async fn a_new_identity_hash_ends_what_was_proven(backend: Backend) {
    let Some((mut app, provider)) = gateway(backend).await else {
        return;
    };
    // Contacts: the first hash is no change, nor is the same one again.
    let (id, cid) = proven(&app, "whatsapp", "15553330001").await;
    post(&app, "whatsapp", &contact_hash("15553330001", "h1")).await;
    post(&app, "whatsapp", &contact_hash("15553330001", "h1")).await;
    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated", "{v}");
    assert_eq!(challenge_state(&app, &id, &cid).await, "open");
    // A different one is.
    post(&app, "whatsapp", &contact_hash("15553330001", "h2")).await;
    assert_ended(&mut app, &id, &cid).await;
    // Statuses of a message the gateway sent: a first hash, then a new one.
    let (id, cid) = proven(&app, "whatsapp", "15553330002").await;
    let sent = delivered_link(&app, &provider, &id).await;
    post(&app, "whatsapp", &status_hash(&sent, "15553330002", "s1")).await;
    post(&app, "whatsapp", &status_hash(&sent, "15553330002", "s1")).await;
    assert_eq!(app.get(&id).await["status"], "authenticated");
    post(&app, "whatsapp", &status_hash(&sent, "15553330002", "s2")).await;
    assert_ended(&mut app, &id, &cid).await;
    // The same change again: the hash is the newest already.
    app.authenticate(&id, "cust-42").await;
    post(&app, "whatsapp", &status_hash(&sent, "15553330002", "s2")).await;
    assert_eq!(app.get(&id).await["status"], "authenticated");
}

/// docs/channels.md#identity-changes: one Meta app signs for all its
/// numbers; a change about another number (`metadata.phone_number_id`),
/// or about none, is not this channel's and changes nothing.
async fn another_number_s_changes_are_ignored(backend: Backend) {
    let Some((mut app, _provider)) = gateway(backend).await else {
        return;
    };
    let number = "15553340001";
    let (id, cid) = proven(&app, "whatsapp", number).await;
    post(&app, "whatsapp", &contact_hash_at(number, "h1", AT)).await;
    let theirs = |mut body: Value, metadata: Option<Value>| {
        let value = &mut body["entry"][0]["changes"][0]["value"];
        match metadata {
            Some(m) => value["metadata"] = m,
            None => {
                value.as_object_mut().unwrap().remove("metadata");
            }
        }
        body
    };
    let others = [
        Some(json!({"display_phone_number": "15550007777", "phone_number_id": "2077"})),
        Some(json!({"display_phone_number": "15550006666"})),
        None,
    ];
    for metadata in others {
        for body in [
            contact_hash_at(number, "h2", AT + 10),
            system("wamid.sys.theirs", number, "user_changed_number"),
        ] {
            post(&app, "whatsapp", &theirs(body, metadata.clone())).await;
        }
    }
    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated", "{v}");
    assert!(!v["recognized"].is_null(), "{v}");
    assert_eq!(challenge_state(&app, &id, &cid).await, "open");
    // The channel's own number: h2 is a change.
    post(&app, "whatsapp", &contact_hash_at(number, "h2", AT + 10)).await;
    assert_ended(&mut app, &id, &cid).await;
}

/// docs/channels.md#identity-changes: Meta does not promise order. A hash
/// the conversation had before, or one older than the newest, arriving
/// late, is no change; a new one of the newest's time is.
async fn a_late_hash_is_no_change(backend: Backend) {
    let Some((mut app, _provider)) = gateway(backend).await else {
        return;
    };
    let number = "15553350001";
    let (id, cid) = proven(&app, "whatsapp", number).await;
    post(&app, "whatsapp", &contact_hash_at(number, "h1", AT)).await;
    post(&app, "whatsapp", &contact_hash_at(number, "h2", AT + 20)).await;
    assert_ended(&mut app, &id, &cid).await;
    app.authenticate(&id, "cust-42").await;
    // h1 again (later than it was, still had before), h0 (never seen,
    // older than h2): no change.
    post(&app, "whatsapp", &contact_hash_at(number, "h1", AT + 30)).await;
    post(&app, "whatsapp", &contact_hash_at(number, "h0", AT + 10)).await;
    assert_eq!(app.get(&id).await["status"], "authenticated");
    assert_eq!(logouts_recorded(&app, &id).await.len(), 1);
    // A new hash of h2's time is a change.
    post(&app, "whatsapp", &contact_hash_at(number, "h3", AT + 20)).await;
    assert_eq!(app.get(&id).await["status"], "unauthenticated");
    assert_eq!(logouts_recorded(&app, &id).await.len(), 2);
}

/// docs/channels.md#identity-changes: a status about a message the
/// gateway never sent (another sender on the same number) changes
/// nothing: neither its hash nor Meta's refusal.
async fn a_status_of_a_message_never_sent_changes_nothing(backend: Backend) {
    let Some((mut app, provider)) = gateway(backend).await else {
        return;
    };
    let number = "15553360001";
    let (id, cid) = proven(&app, "whatsapp", number).await;
    post(&app, "whatsapp", &contact_hash(number, "h1")).await;
    post(&app, "whatsapp", &status_hash("wamid.never", number, "h2")).await;
    post(&app, "whatsapp", &refused("wamid.never", number)).await;
    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated", "{v}");
    assert_eq!(challenge_state(&app, &id, &cid).await, "open");
    // The same status of a message the gateway sent: a change.
    let sent = delivered_link(&app, &provider, &id).await;
    post(&app, "whatsapp", &status_hash(&sent, number, "h2")).await;
    assert_eq!(app.get(&id).await["status"], "unauthenticated");
    assert!(app
        .next_event("interaction.logged_out", Duration::from_secs(5))
        .await
        .is_some());
}

/// docs/channels.md#identity-changes: a webhook Meta sends again days
/// later acts once. The first change's webhook (its message id, the older
/// hash) comes back after a second change and a sign-in: nothing ends,
/// nothing is recorded, announced or counted again.
async fn a_late_retry_of_a_change_acts_once(backend: Backend) {
    let Some((mut app, _provider)) = gateway(backend).await else {
        return;
    };
    let counted = changes_counted(&app).await;
    let number = "15553370001";
    let (id, cid) = proven(&app, "whatsapp", number).await;
    post(&app, "whatsapp", &contact_hash_at(number, "h1", AT)).await;
    let first = contact_hash_at(number, "h2", AT + 10);
    post(&app, "whatsapp", &first).await;
    assert_ended(&mut app, &id, &cid).await;
    app.authenticate(&id, "cust-42").await;
    post(&app, "whatsapp", &contact_hash_at(number, "h3", AT + 20)).await;
    assert_eq!(app.get(&id).await["status"], "unauthenticated");
    let out = app
        .next_event("interaction.logged_out", Duration::from_secs(5))
        .await;
    assert!(out.is_some(), "the second change");
    app.authenticate(&id, "cust-42").await;
    // Later, Meta's retry of the first change.
    post(&app, "whatsapp", &first).await;
    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated", "{v}");
    assert_eq!(logouts_recorded(&app, &id).await.len(), 2);
    let again = app
        .next_event("interaction.logged_out", Duration::from_millis(500))
        .await;
    assert!(again.is_none(), "{again:?}");
    assert_eq!(
        changes_counted(&app).await,
        counted + 2,
        "changes, not deliveries"
    );
}

async fn an_unsigned_change_changes_nothing(backend: Backend) {
    let Some((app, _provider)) = gateway(backend).await else {
        return;
    };
    let (id, cid) = proven(&app, "whatsapp", "15554440001").await;
    post(&app, "whatsapp", &contact_hash("15554440001", "h1")).await;
    for secret in [None, Some("another-secret")] {
        for body in [
            system("wamid.sys.unsigned", "15554440001", "user_changed_number"),
            contact_hash("15554440001", "h2"),
        ] {
            let res = meta(&app, "whatsapp", &body, secret).await;
            assert_problem(res, 401, "invalid_signature").await;
        }
    }
    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated", "{v}");
    assert!(!v["recognized"].is_null(), "{v}");
    assert_eq!(challenge_state(&app, &id, &cid).await, "open");
    // The hash kept is still the signed one: h2 is a change when signed.
    post(&app, "whatsapp", &contact_hash("15554440001", "h2")).await;
    assert_eq!(app.get(&id).await["status"], "unauthenticated");
}

/// The JSON bodies the fake Cloud API received on the `whatsapp` channel.
async fn cloud_bodies(provider: &MockServer) -> Vec<Value> {
    let requests = provider.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == "/v21.0/1065/messages")
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

/// docs/channels.md#sends-know-the-identity: a code or a link into a
/// conversation whose identity hash is known carries it; before any
/// hash, nothing.
async fn sends_carry_the_known_identity(backend: Backend) {
    let Some((app, provider)) = gateway(backend).await else {
        return;
    };
    let member = "recipient_identity_key_hash";
    // No hash known: a link and a code go without one.
    let v = app
        .create(json!({"channel": "whatsapp", "conversation_id": "15556660001"}))
        .await;
    let unknown = v["id"].as_str().unwrap().to_string();
    app.issue_link(&unknown, json!({"deliver": true})).await;
    let res = crate::challenges::start(&app, &unknown, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 201);
    let bodies = cloud_bodies(&provider).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    for body in &bodies {
        assert!(body.get(member).is_none(), "{body}");
    }
    // Meta gave the hash beside its contact (digits alone, as Meta writes
    // them): a link and a code into the conversation carry it.
    post(&app, "whatsapp", &contact_hash("15556660002", "h1")).await;
    let v = app
        .create(json!({"channel": "whatsapp", "conversation_id": "+15556660002"}))
        .await;
    let known = v["id"].as_str().unwrap().to_string();
    app.issue_link(&known, json!({"deliver": true})).await;
    let res = crate::challenges::start(&app, &known, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 201);
    let bodies = cloud_bodies(&provider).await;
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    for body in &bodies[2..] {
        assert_eq!(body["to"], "+15556660002", "{body}");
        assert_eq!(body[member], "h1", "{body}");
    }
}

/// Meta's `failed` status of message `id` to `to`, refused with 137000
/// because the identity hash it carried is no longer the recipient's.
fn refused(id: &str, to: &str) -> Value {
    webhook(
        json!({"statuses": [{"id": id, "status": "failed", "timestamp": "1764064800",
        "recipient_id": to,
        "errors": [{"code": 137000, "title": "Identity key hash mismatch"}]}]}),
    )
}

/// docs/channels.md#sends-know-the-identity: Meta's refusal of a send for
/// a changed identity is a change; acted on once per status; the refused
/// hash is forgotten.
async fn a_refusal_for_a_changed_identity_ends_what_was_proven(backend: Backend) {
    let Some((mut app, provider)) = gateway(backend).await else {
        return;
    };
    let counted = changes_counted(&app).await;
    post(&app, "whatsapp", &contact_hash("15557770001", "h1")).await;
    let (id, cid) = proven(&app, "whatsapp", "15557770001").await;
    let sent = delivered_link(&app, &provider, &id).await;
    let body = refused(&sent, "15557770001");
    post(&app, "whatsapp", &body).await;
    assert_ended(&mut app, &id, &cid).await;
    let entries = logouts_recorded(&app, &id).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actor"]["id"], "whatsapp", "{}", entries[0]);
    assert_eq!(entries[0]["detail"]["cause"], "identity_changed");
    assert_eq!(changes_counted(&app).await, counted + 1);
    // Proven again, then Meta sends the same status again: it acted once.
    app.authenticate(&id, "cust-42").await;
    post(&app, "whatsapp", &body).await;
    assert_eq!(app.get(&id).await["status"], "authenticated");
    assert_eq!(logouts_recorded(&app, &id).await.len(), 1);
    // The refused hash is forgotten: a link goes without it.
    app.issue_link(&id, json!({"deliver": true})).await;
    let bodies = cloud_bodies(&provider).await;
    let last = bodies.last().unwrap();
    assert!(last.get("recipient_identity_key_hash").is_none(), "{last}");
}

/// Makes the fake Cloud API answer every send as Meta answers one whose
/// `recipient_identity_key_hash` is no longer the recipient's.
async fn refuse_for_identity(provider: &MockServer) {
    provider.reset().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/1065/messages"))
        .respond_with(wiremock::ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": "(#137000) Identity key hash mismatch",
                      "type": "OAuthException", "code": 137000, "fbtrace_id": "A"}})))
        .mount(provider)
        .await;
}

/// Asserts the one audit entry of interaction `id`'s logout, by Meta.
async fn logged_out_by_whatsapp(app: &TestApp, id: &str) {
    let entries = logouts_recorded(app, id).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actor"]["type"], "provider", "{}", entries[0]);
    assert_eq!(entries[0]["actor"]["id"], "whatsapp", "{}", entries[0]);
    assert_eq!(entries[0]["detail"]["cause"], "identity_changed");
}

/// docs/channels.md#sends-know-the-identity: a code Meta refuses with
/// 137000 is a failed send (502 `channel_error`) and a change.
async fn a_code_refused_for_a_changed_identity_ends_what_was_proven(backend: Backend) {
    let Some((mut app, provider)) = gateway(backend).await else {
        return;
    };
    let counted = changes_counted(&app).await;
    let (id, cid) = proven(&app, "whatsapp", "15558880001").await;
    refuse_for_identity(&provider).await;
    let res = crate::challenges::start(&app, &id, json!({"method": "otp"})).await;
    assert_problem(res, 502, "channel_error").await;
    assert_ended(&mut app, &id, &cid).await;
    logged_out_by_whatsapp(&app, &id).await;
    assert!(changes_counted(&app).await > counted);
}

/// docs/channels.md#sends-know-the-identity: a link Meta refuses with
/// 137000 is issued undelivered, used up by the change it is.
async fn a_link_refused_for_a_changed_identity_ends_what_was_proven(backend: Backend) {
    let Some((mut app, provider)) = gateway(backend).await else {
        return;
    };
    let counted = changes_counted(&app).await;
    let (id, cid) = proven(&app, "whatsapp", "15558880002").await;
    refuse_for_identity(&provider).await;
    let link = app.issue_link(&id, json!({"deliver": true})).await;
    assert_eq!(link["delivered"], false, "{link}");
    let error = link["delivery_error"].as_str().unwrap();
    assert!(error.contains("137000"), "{error}");
    assert_ended(&mut app, &id, &cid).await;
    logged_out_by_whatsapp(&app, &id).await;
    assert!(changes_counted(&app).await > counted);
}

/// docs/channels.md#sends-know-the-identity: a ladder's step into the
/// conversation that Meta refuses with 137000 fails the challenge — no
/// later step sends the code — and is a change.
async fn a_ladder_step_refused_for_a_changed_identity_ends_what_was_proven(backend: Backend) {
    let provider = MockServer::start().await;
    let setup = Setup {
        defaults: r#"recognize_for = "1d""#.into(),
        team_extra: "[settings.otp]\nladder = [\"whatsapp\", \"sms\"]\n".into(),
        ..whatsapp_setup(&provider)
    };
    let Some(mut app) = spawn_with(backend, setup).await else {
        return;
    };
    let number = "+15558880003";
    post(&app, "whatsapp", &contact_hash(&number[1..], "h3")).await;
    let v = app
        .create(json!({"channel": "whatsapp", "conversation_id": number,
            "customer_ref": "cust-42", "contact": {"phone": number}}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    app.authenticate(&id, "cust-42").await;
    refuse_for_identity(&provider).await;
    let res = crate::ladder::start_ladder(&app, &id).await;
    assert_problem(res, 502, "channel_error").await;
    // One send with the hash (the `authenticated` notice, which carries
    // none, may reach the fake after it was reset).
    let bodies = cloud_bodies(&provider).await;
    let carried: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.get("recipient_identity_key_hash").is_some())
        .collect();
    assert_eq!(carried.len(), 1, "{bodies:?}");
    assert_eq!(
        carried[0]["recipient_identity_key_hash"], "h3",
        "{}",
        carried[0]
    );
    let cid = ended(&mut app, &id).await;
    assert_eq!(challenge_state(&app, &id, &cid).await, "failed");
    let sms = crate::ladder::sent(&app).await;
    assert!(sms.is_empty(), "the next step sent the code: {sms:?}");
    logged_out_by_whatsapp(&app, &id).await;
}

/// docs/channels.md#sends-know-the-identity: an app challenge's prompt
/// Meta refuses with 137000 fails the challenge it announced (502
/// `channel_error`) and is a change.
async fn an_app_prompt_refused_for_a_changed_identity_ends_what_was_proven(backend: Backend) {
    let provider = MockServer::start().await;
    let idp = crate::oidc_provider::FakeIdp::start().await;
    let setup = Setup {
        defaults: r#"recognize_for = "1d""#.into(),
        team_extra: idp.team_section("ciba = true"),
        ..whatsapp_setup(&provider)
    };
    let Some(mut app) = spawn_with(backend, setup).await else {
        return;
    };
    idp.use_clock(app.clock.clone());
    post(&app, "whatsapp", &contact_hash("15558880004", "h4")).await;
    let v = app
        .create(
            json!({"channel": "whatsapp", "conversation_id": "15558880004",
            "customer_ref": "cust-42"}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    app.authenticate(&id, "cust-42").await;
    refuse_for_identity(&provider).await;
    let res = crate::challenges::start(&app, &id, json!({"method": "app"})).await;
    assert_problem(res, 502, "channel_error").await;
    let created = app
        .next_event("challenge.created", Duration::from_secs(5))
        .await
        .expect("challenge.created");
    let cid = ended(&mut app, &id).await;
    assert_eq!(event_data(&created)["challenge"]["challenge_id"], cid);
    assert_eq!(challenge_state(&app, &id, &cid).await, "failed");
    // One send with the hash (the `authenticated` notice, which carries
    // none, may reach the fake after it was reset).
    let bodies = cloud_bodies(&provider).await;
    let carried: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.get("recipient_identity_key_hash").is_some())
        .collect();
    assert_eq!(carried.len(), 1, "{bodies:?}");
    assert_eq!(
        carried[0]["recipient_identity_key_hash"], "h4",
        "{}",
        carried[0]
    );
    logged_out_by_whatsapp(&app, &id).await;
}

/// One new identity hash that ends what was proven in a conversation of
/// a number (two spellings: digits alone, and with `+`) costs three reads
/// and two commits: one read of the hash, the delivery's memory and both
/// spellings' links and recognitions; the interaction's unit of work (its
/// read, the audit head's, its commit, which forgets the recognition);
/// and one commit of the hash and the delivery's memory. The same
/// delivery again reads once and writes nothing.
async fn a_change_is_three_reads_and_two_commits(backend: Backend) {
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let inner: chatgate::store::SharedStore = match backend {
        Backend::Memory => std::sync::Arc::new(chatgate::store::memory::MemoryStore::new()),
        Backend::Redis => {
            if !crate::redis_support::redis_up().await {
                return;
            }
            let url = crate::redis_support::redis_url();
            let store = chatgate::store::redis::RedisStore::connect(&url, &prefix);
            std::sync::Arc::new(store.await.expect("valid Redis URL"))
        }
    };
    let counting = std::sync::Arc::new(crate::round_trips::Counting::over(inner));
    let base = Setup {
        store: Some(counting.clone()),
        key_prefix: Some(prefix),
        ..Setup::default()
    };
    let Some((mut app, _provider)) = gateway_with(backend, base).await else {
        return;
    };
    let (id, cid) = proven(&app, "whatsapp", "15553360001").await;
    post(&app, "whatsapp", &contact_hash("15553360001", "h1")).await;
    let counted = || {
        use std::sync::atomic::Ordering::SeqCst;
        (counting.reads.load(SeqCst), counting.commits.load(SeqCst))
    };
    let before = counted();
    post(&app, "whatsapp", &contact_hash("15553360001", "h2")).await;
    let after = counted();
    assert_ended(&mut app, &id, &cid).await;
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (3, 2),
        "(reads, commits) of a change"
    );
    let before = counted();
    post(&app, "whatsapp", &contact_hash("15553360001", "h2")).await;
    let after = counted();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 0),
        "(reads, commits) of the same delivery again"
    );
}

/// docs/channels.md#identity-changes: one change Meta delivers several
/// ways — its system message, the new hash on the next messages'
/// contacts, a second system message, and retries of each — ends what
/// was proven once and is counted once.
async fn one_change_delivered_many_ways_counts_once(backend: Backend) {
    let Some((mut app, _provider)) = gateway(backend).await else {
        return;
    };
    let counted = changes_counted(&app).await;
    let number = "15553380001";
    let (id, cid) = proven(&app, "whatsapp", number).await;
    // The hash before the change: the first seen is no change.
    post(&app, "whatsapp", &contact_hash_at(number, "h1", AT)).await;
    let said = system("wamid.sys.once", number, "user_changed_user_id");
    post(&app, "whatsapp", &said).await;
    assert_ended(&mut app, &id, &cid).await;
    for body in [
        said.clone(),
        contact_hash_at(number, "h2", AT + 10),
        contact_hash_at(number, "h2", AT + 11),
        system("wamid.sys.again", number, "user_changed_number"),
        contact_hash_at(number, "h2", AT + 10),
        said,
    ] {
        post(&app, "whatsapp", &body).await;
    }
    assert_eq!(
        changes_counted(&app).await,
        counted + 1,
        "changes, not deliveries"
    );
    assert_eq!(logouts_recorded(&app, &id).await.len(), 1);
    let again = app
        .next_event("interaction.logged_out", Duration::from_millis(500))
        .await;
    assert!(again.is_none(), "{again:?}");
    // A new proof, then a real second change: counted.
    app.authenticate(&id, "cust-42").await;
    post(&app, "whatsapp", &contact_hash_at(number, "h3", AT + 20)).await;
    assert_eq!(app.get(&id).await["status"], "unauthenticated");
    assert_eq!(changes_counted(&app).await, counted + 2);
}

/// Held by each test of this file: the changes metric is the process's,
/// so that each test counts only its own changes.
static COUNTED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let _counted = COUNTED.lock().await;
                super::$name(Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let _counted = COUNTED.lock().await;
                super::$name(Backend::Redis).await;
            }
        }
    )*};
}

on_both_stores!(
    system_messages_end_what_was_proven,
    a_new_identity_hash_ends_what_was_proven,
    another_number_s_changes_are_ignored,
    a_late_hash_is_no_change,
    a_status_of_a_message_never_sent_changes_nothing,
    a_late_retry_of_a_change_acts_once,
    an_unsigned_change_changes_nothing,
    sends_carry_the_known_identity,
    a_refusal_for_a_changed_identity_ends_what_was_proven,
    a_code_refused_for_a_changed_identity_ends_what_was_proven,
    a_link_refused_for_a_changed_identity_ends_what_was_proven,
    a_ladder_step_refused_for_a_changed_identity_ends_what_was_proven,
    an_app_prompt_refused_for_a_changed_identity_ends_what_was_proven,
    a_change_is_three_reads_and_two_commits,
    one_change_delivered_many_ways_counts_once,
);
