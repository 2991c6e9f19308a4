//! Recognized conversations (docs/api.md#recognized-conversations): a
//! conversation on a channel that vouches for its sender remembers who
//! authenticated in it for `recognize_for`; a recognized interaction meets
//! only assurance policies that list `recognized`.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// A month of recognition on every channel that vouches (sms is Twilio),
/// and the intents of a bank: a balance for a recognized customer, a
/// payment only after a fresh code or login.
fn month() -> Setup {
    Setup {
        defaults: r#"recognize_for = "30d""#.into(),
        team_extra: r#"
[settings.otp]
show_to_agents = true
[settings.intents.balance]
max_age = "30d"
methods = ["recognized", "otp", "login_link"]
[settings.intents.payment]
max_age = "5m"
methods = ["otp", "login_link"]
"#
        .into(),
        ..Setup::default()
    }
}

/// An interaction of SMS conversation `number` (created, or the existing one).
async fn sms(app: &TestApp, number: &str) -> Value {
    app.create(json!({"channel": "sms", "conversation_id": number, "contact": {"phone": number}}))
        .await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Lets the interaction be forgotten (`interaction_ttl`, a day by default).
fn a_day_later(app: &TestApp) {
    app.advance(86_400 + 60);
}

async fn post(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    app.post_json(path, Some(key), &json!({})).await
}

async fn assurance(app: &TestApp, id: &str, query: &str) -> Value {
    let path = format!("/v1/interactions/{id}/assurance?{query}");
    let res = app
        .request(Method::GET, &path, Some(&app.keys.bot))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

/// An OTP the agent reads (no chat message to parse), typed correctly.
async fn otp(app: &TestApp, id: &str) {
    let (cid, code) = app.agent_otp(id).await;
    assert_eq!(app.verify_code(id, &cid, &code).await.status(), 200);
}

/// A wrong code on a fresh OTP challenge of `id`: its answer's status.
async fn wrong_otp(app: &TestApp, id: &str) -> u16 {
    let (cid, code) = app.agent_otp(id).await;
    app.verify_code(id, &cid, &wrong_code(&code))
        .await
        .status()
        .as_u16()
}

both_stores!(
    a_login_on_sms_is_recognized_in_the_next_interaction_of_the_conversation,
    setup: month(),
    |app: TestApp| async move {
        let first = sms(&app, "+15551230001").await;
        assert_eq!(first["recognized"], Value::Null, "{first}");
        let id = id_of(&first);
        app.authenticate(&id, "cust-42").await;
        let v = app.get(&id).await;
        let r = &v["recognized"];
        assert_eq!(r["customer_id"], "cust-42", "{v}");
        assert_eq!(r["method"], "login_link");
        assert_eq!(r["authenticated_at"], v["authenticated_at"]);
        let at = chatgate::time::Timestamp::parse_rfc3339(r["authenticated_at"].as_str().unwrap()).unwrap();
        let until = chatgate::time::Timestamp::parse_rfc3339(r["until"].as_str().unwrap()).unwrap();
        assert_eq!(until.since(at).as_secs(), 30 * 86_400);
        assert_eq!((v["status"].clone(), v["method"].clone()), (json!("authenticated"), json!("login_link")));

        // The next day the interaction is forgotten; the conversation is not.
        a_day_later(&app);
        let second = sms(&app, "+15551230001").await;
        assert_ne!(id_of(&second), id, "a new interaction");
        assert_eq!(second["recognized"]["customer_id"], "cust-42", "{second}");
        assert_eq!(second["recognized"]["authenticated_at"], v["authenticated_at"]);
        // Being recognized is not being authenticated.
        assert_eq!(second["status"], "unauthenticated");
        assert_eq!(second["authenticated"], false);
        assert_eq!(second["method"], Value::Null);
        let read = app.get(&id_of(&second)).await;
        assert_eq!(read["recognized"], second["recognized"]);
        // Listed and streamed alike.
        let page = app.get_json("/v1/interactions?channel=sms", Some(&app.keys.agent)).await;
        assert_eq!(page["items"][0]["recognized"]["customer_id"], "cust-42", "{page}");
        // Another conversation of the channel is not.
        assert_eq!(sms(&app, "+15551230002").await["recognized"], Value::Null);
    }
);

/// `month()` with an anonymous web chat, `anon`.
fn with_anonymous_chat() -> Setup {
    let mut s = month();
    s.extra_channels = vec![anonymous_chat("anon")];
    s
}

both_stores!(web_chat_is_never_recognized, setup: with_anonymous_chat(), |app: TestApp| async move {
    let id = id_of(&app.create(json!({"channel": "anon", "conversation_id": "w-1"})).await);
    app.authenticate(&id, "cust-42").await;
    let v = app.get(&id).await;
    assert_eq!(v["authenticated"], true);
    assert_eq!(v["recognized"], Value::Null, "{v}");
});

both_stores!(recognition_is_off_by_default, |app: TestApp| async move {
    let id = id_of(&sms(&app, "+15551230003").await);
    app.authenticate(&id, "cust-42").await;
    assert_eq!(app.get(&id).await["recognized"], Value::Null);
    a_day_later(&app);
    assert_eq!(sms(&app, "+15551230003").await["recognized"], Value::Null);
});

/// A webhook channel whose file says it vouches is recognized; a Twilio
/// channel whose file says it does not is not.
fn overridden() -> Setup {
    let mut s = month();
    s.extra_channels = vec![
        (
            "portal".into(),
            format!(
                "name = \"portal\"\nkind = \"webhook\"\nvouches_for_sender = true\nurl = \"http://127.0.0.1:9/portal\"\nsecret = \"${{CG_TEST_UNSET_PORTAL:-{}}}\"\n",
                chatgate::domain::secrets::generate_whsec()
            ),
        ),
        (
            "sms2".into(),
            "name = \"sms2\"\nkind = \"twilio\"\nvouches_for_sender = false\nbase_url = \"http://127.0.0.1:9\"\naccount_sid = \"AC1\"\nauth_token = \"${CG_TEST_UNSET_TWILIO2:-t}\"\nfrom = \"+15550006667\"\n".into(),
        ),
    ];
    s
}

both_stores!(
    vouches_for_sender_overrides_the_kind_both_ways,
    setup: overridden(),
    |app: TestApp| async move {
        let portal = app.create(json!({"channel": "portal", "conversation_id": "p-1"})).await;
        app.authenticate(&id_of(&portal), "cust-42").await;
        let v = app.get(&id_of(&portal)).await;
        assert_eq!(v["recognized"]["customer_id"], "cust-42", "{v}");
        let sms2 = app
            .create(json!({"channel": "sms2", "conversation_id": "+15551230004", "contact": {"phone": "+15551230004"}}))
            .await;
        app.authenticate(&id_of(&sms2), "cust-42").await;
        assert_eq!(app.get(&id_of(&sms2)).await["recognized"], Value::Null);
    }
);

/// Slack and Telegram conversations may be channels or groups: by default
/// they are not recognized; a file that says every conversation is a
/// direct message (`vouches_for_sender = true`) turns it on.
fn chat_kinds() -> Setup {
    let mut s = month();
    let file = |name: &str, kind: &str, token: &str, vouches: &str| {
        format!(
            "name = \"{name}\"\nkind = \"{kind}\"\n{vouches}base_url = \"http://127.0.0.1:9\"\ntoken = \"${{CG_TEST_UNSET_TOKEN:-{token}}}\"\n"
        )
    };
    s.extra_channels = vec![
        ("slack".into(), file("slack", "slack", "xoxb-t", "")),
        (
            "telegram".into(),
            file("telegram", "telegram", "42:AAt", ""),
        ),
        (
            "slack_dm".into(),
            file("slack_dm", "slack", "xoxb-t", "vouches_for_sender = true\n"),
        ),
    ];
    s
}

both_stores!(
    slack_and_telegram_are_recognized_only_where_their_file_vouches,
    setup: chat_kinds(),
    |app: TestApp| async move {
        for channel in ["slack", "telegram", "slack_dm"] {
            let v = app.create(json!({"channel": channel, "conversation_id": "C0123"})).await;
            app.authenticate(&id_of(&v), "cust-42").await;
            let v = app.get(&id_of(&v)).await;
            assert_eq!(v["authenticated"], true, "{v}");
            let recognized = &v["recognized"];
            if channel == "slack_dm" {
                assert_eq!(recognized["customer_id"], "cust-42", "{channel}: {v}");
            } else {
                assert_eq!(recognized, &Value::Null, "{channel} does not vouch by default: {v}");
            }
        }
        // Another member of the group, the next day: nobody is recognized.
        a_day_later(&app);
        let v = app.create(json!({"channel": "slack", "conversation_id": "C0123"})).await;
        assert_eq!(v["recognized"], Value::Null, "{v}");
        let v = assurance(&app, &id_of(&v), "intent=balance").await;
        assert_eq!(v["satisfied"], false, "{v}");
    }
);

both_stores!(
    recognition_holds_only_for_the_customer_it_remembers,
    setup: month(),
    |app: TestApp| async move {
        let number = "+15551230019";
        let named = |customer_ref: &str| {
            json!({"channel": "sms", "conversation_id": number, "customer_ref": customer_ref, "contact": {"phone": number}})
        };
        let first = id_of(&sms(&app, number).await);
        app.authenticate(&first, "cust-42").await;
        // The next day, an interaction of the conversation naming another
        // customer: not recognized, and the balance needs a login.
        a_day_later(&app);
        let other = app.create(named("cust-43")).await;
        assert_eq!(other["recognized"], Value::Null, "another customer: {other}");
        let id = id_of(&other);
        assert_eq!(app.get(&id).await["recognized"], Value::Null);
        let page = app
            .get_json("/v1/interactions?channel=sms", Some(&app.keys.agent))
            .await;
        assert_eq!(page["items"][0]["id"], other["id"], "{page}");
        assert_eq!(page["items"][0]["recognized"], Value::Null, "{page}");
        let v = assurance(&app, &id, "intent=balance").await;
        assert_eq!(v["satisfied"], false, "{v}");
        assert_eq!(v["method"], Value::Null, "{v}");
        assert_eq!(v["age_seconds"], Value::Null, "{v}");
        let v = assurance(&app, &id, "methods=recognized").await;
        assert_eq!(v["unmet"], json!(["authenticated", "method"]), "{v}");
        // The conversation still remembers cust-42: another interaction
        // naming them, in any spelling, is recognized.
        a_day_later(&app);
        let again = app.create(named("  Cust-42 ")).await;
        assert_eq!(again["customer_ref"], "cust-42", "{again}");
        assert_eq!(again["recognized"]["customer_id"], "cust-42", "{again}");
        let v = assurance(&app, &id_of(&again), "intent=balance").await;
        assert_eq!((v["satisfied"].clone(), v["method"].clone()), (json!(true), json!("recognized")), "{v}");
    }
);

both_stores!(
    a_recognized_customer_may_see_a_balance_but_pays_only_after_a_code,
    setup: month(),
    |app: TestApp| async move {
        // Day 1: a login in the SMS conversation.
        let day1 = id_of(&sms(&app, "+15551230005").await);
        app.authenticate(&day1, "cust-42").await;
        // Day 2: a new interaction of the conversation.
        a_day_later(&app);
        let id = id_of(&sms(&app, "+15551230005").await);
        let v = assurance(&app, &id, "intent=balance").await;
        assert_eq!(v["satisfied"], true, "{v}");
        assert_eq!(v["unmet"], json!([]));
        assert_eq!(v["status"], "unauthenticated");
        assert_eq!(v["method"], "recognized");
        assert_eq!(v["age_seconds"], 86_460);
        let v = assurance(&app, &id, "intent=payment").await;
        assert_eq!(v["satisfied"], false, "{v}");
        assert_eq!(v["unmet"], json!(["authenticated", "max_age", "method"]));
        assert_eq!(v["method"], Value::Null);
        // The same by the caller's own policy.
        let v = assurance(&app, &id, "methods=recognized,otp&max_age=30d").await;
        assert_eq!((v["satisfied"].clone(), v["method"].clone()), (json!(true), json!("recognized")));
        assert_eq!(assurance(&app, &id, "methods=otp,login_link").await["satisfied"], false);
        // An OTP authenticates: the payment is allowed, judged by the OTP.
        otp(&app, &id).await;
        let v = assurance(&app, &id, "intent=payment").await;
        assert_eq!(v["satisfied"], true, "{v}");
        assert_eq!((v["method"].clone(), v["age_seconds"].clone()), (json!("otp"), json!(0)));
    }
);

both_stores!(
    max_age_measures_the_remembered_authentication,
    setup: month(),
    |app: TestApp| async move {
        let id = id_of(&sms(&app, "+15551230006").await);
        app.authenticate(&id, "cust-42").await;
        app.advance(3_600);
        // Expired (after 30 min): judged by what the conversation remembers.
        let v = assurance(&app, &id, "methods=recognized&max_age=2h").await;
        assert_eq!(v["status"], "expired", "{v}");
        assert_eq!((v["satisfied"].clone(), v["age_seconds"].clone()), (json!(true), json!(3_600)));
        let v = assurance(&app, &id, "methods=recognized&max_age=30m").await;
        assert_eq!(v["unmet"], json!(["max_age"]), "{v}");
        assert_eq!(v["age_seconds"], 3_600);
        assert_eq!(v["method"], "recognized");
    }
);

both_stores!(forget_logout_and_website_logout_forget, setup: month(), |mut app: TestApp| async move {
    // /forget, by the bot or an agent, answers the interaction.
    let id = id_of(&sms(&app, "+15551230007").await);
    app.authenticate(&id, "cust-42").await;
    let res = post(&app, &format!("/v1/interactions/{id}/forget"), &app.keys.agent).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["recognized"], Value::Null, "{v}");
    assert_eq!(v["status"], "authenticated", "the authentication stays");
    a_day_later(&app);
    assert_eq!(sms(&app, "+15551230007").await["recognized"], Value::Null);
    let res = post(&app, "/v1/interactions/00000000-0000-7000-8000-000000000000/forget", &app.keys.bot).await;
    assert_problem(res, 404, "not_found").await;

    // A logout forgets.
    let id = id_of(&sms(&app, "+15551230008").await);
    app.authenticate(&id, "cust-42").await;
    let res = post(&app, &format!("/v1/interactions/{id}/logout"), &app.keys.bot).await;
    assert_eq!(res.json::<Value>().await.unwrap()["recognized"], Value::Null);
    a_day_later(&app);
    assert_eq!(sms(&app, "+15551230008").await["recognized"], Value::Null);

    // The website's logout of the customer forgets their conversations,
    // also one whose interaction is long gone.
    let id = id_of(&sms(&app, "+15551230009").await);
    app.authenticate(&id, "cust-43").await;
    a_day_later(&app);
    let other = id_of(&sms(&app, "+15551230010").await);
    app.authenticate(&other, "cust-44").await;
    let again = sms(&app, "+15551230009").await;
    assert_eq!(again["recognized"]["customer_id"], "cust-43");
    app.authenticate(&id_of(&again), "cust-43").await;
    while app.events.try_recv().is_ok() {}
    let body = json!({"team": "acme", "customer_id": "cust-43"});
    let res = app.post_signed("/v1/customers/logout", &body, None).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 1}));
    // The logout's event shows the conversation forgotten.
    let data = loop {
        let e = app
            .next_event("interaction.logged_out", std::time::Duration::from_secs(5))
            .await
            .expect("interaction.logged_out");
        let data = event_data(&e);
        if data["interaction"]["id"] == again["id"] {
            break data;
        }
    };
    assert_eq!(data["interaction"]["recognized"], Value::Null, "{data}");
    assert_eq!(sms(&app, "+15551230009").await["recognized"], Value::Null);
    assert_eq!(app.get(&other).await["recognized"]["customer_id"], "cust-44", "another customer's stays");
});

both_stores!(another_customer_replaces, setup: month(), |app: TestApp| async move {
    let id = id_of(&sms(&app, "+15551230011").await);
    app.authenticate(&id, "cust-42").await;
    app.authenticate(&id, "cust-43").await;
    assert_eq!(app.get(&id).await["recognized"]["customer_id"], "cust-43");
    // The website's logout of the one replaced forgets nothing.
    let body = json!({"team": "acme", "customer_id": "cust-42"});
    let res = app.post_signed("/v1/customers/logout", &body, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get(&id).await["recognized"]["customer_id"], "cust-43");
});

/// One wrong code locks; the second lockout bans.
fn strict() -> Setup {
    let mut s = month();
    s.defaults
        .push_str("\n[defaults.lockout]\nthreshold = 1\nmax_lockouts_before_ban = 2\n");
    s
}

both_stores!(a_lock_hides_recognition_and_a_ban_forgets_it, setup: strict(), |app: TestApp| async move {
    // Another conversation remembering the same customer.
    let elsewhere = id_of(&sms(&app, "+15551230017").await);
    app.authenticate(&elsewhere, "cust-42").await;
    let v = app
        .create(json!({"channel": "sms", "conversation_id": "+15551230012", "customer_ref": "cust-42", "contact": {"phone": "+15551230012"}}))
        .await;
    let id = id_of(&v);
    app.authenticate(&id, "cust-42").await;
    assert_eq!(wrong_otp(&app, &id).await, 423);
    let v = app.get(&id).await;
    assert_eq!(v["status"], "locked");
    assert_eq!(v["recognized"], Value::Null, "hidden while locked: {v}");
    assert_eq!(assurance(&app, &id, "intent=balance").await["satisfied"], false);
    // The lock ends (15 min): recognized again.
    app.advance(16 * 60);
    assert_eq!(app.get(&id).await["recognized"]["customer_id"], "cust-42");
    // The second lockout bans: forgotten, also after an admin's unlock.
    assert_eq!(wrong_otp(&app, &id).await, 403);
    let res = post(&app, "/v1/subjects/cust-42/unlock", &app.keys.admin).await;
    assert_eq!(res.status(), 200);
    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated", "{v}");
    assert_eq!(v["recognized"], Value::Null, "a ban forgets: {v}");
    let v = app.get(&elsewhere).await;
    assert_eq!(v["recognized"], Value::Null, "every conversation of the customer: {v}");
});

/// One wrong code locks, for two days.
fn long_locks() -> Setup {
    let mut s = month();
    s.defaults
        .push_str("\n[defaults.lockout]\nthreshold = 1\nduration = \"2d\"\n");
    s
}

/// What the list of interactions shows of `id`.
async fn listed(app: &TestApp, id: &str) -> Value {
    let page = app
        .get_json("/v1/interactions?channel=sms", Some(&app.keys.agent))
        .await;
    let items = page["items"].as_array().unwrap();
    items.iter().find(|v| v["id"] == id).unwrap().clone()
}

both_stores!(
    a_lock_of_the_remembered_customer_hides_them_from_an_interaction_naming_no_one,
    setup: long_locks(),
    |app: TestApp| async move {
        let number = "+15551230019";
        let first = id_of(&sms(&app, number).await);
        app.authenticate(&first, "cust-42").await;
        // The customer is locked from another conversation.
        let v = app
            .create(json!({"channel": "sms", "conversation_id": "+15551230020", "customer_ref": "cust-42", "contact": {"phone": "+15551230020"}}))
            .await;
        assert_eq!(wrong_otp(&app, &id_of(&v)).await, 423);
        let v = app.get(&first).await;
        assert_eq!(v["recognized"], Value::Null, "hidden while the customer is locked: {v}");
        // A new interaction of the remembered conversation, naming no one.
        a_day_later(&app);
        let created = sms(&app, number).await;
        let id = id_of(&created);
        assert_ne!(id, first);
        assert_eq!(created["recognized"], Value::Null, "{created}");
        assert_eq!(created["locked_until"], Value::Null, "its own subject is clear: {created}");
        assert_eq!(app.get(&id).await["recognized"], Value::Null);
        assert_eq!(listed(&app, &id).await["recognized"], Value::Null);
        let v = assurance(&app, &id, "intent=balance").await;
        assert_eq!(v["satisfied"], false, "{v}");
        // Unlocked: recognized again, everywhere.
        let res = post(&app, "/v1/subjects/cust-42/unlock", &app.keys.admin).await;
        assert_eq!(res.status(), 200);
        assert_eq!(app.get(&id).await["recognized"]["customer_id"], "cust-42");
        assert_eq!(listed(&app, &id).await["recognized"]["customer_id"], "cust-42");
        let v = assurance(&app, &id, "intent=balance").await;
        assert_eq!((&v["satisfied"], &v["method"]), (&json!(true), &json!("recognized")), "{v}");
    }
);

both_stores!(
    a_ban_of_an_interaction_that_is_its_own_subject_forgets_its_conversation,
    setup: strict(),
    |app: TestApp| async move {
        let id = id_of(&sms(&app, "+15551230018").await);
        app.authenticate(&id, "cust-42").await;
        assert_eq!(wrong_otp(&app, &id).await, 423);
        app.advance(16 * 60);
        assert_eq!(wrong_otp(&app, &id).await, 403);
        let subject = format!("/v1/subjects/interaction%3A{id}/unlock");
        assert_eq!(post(&app, &subject, &app.keys.admin).await.status(), 200);
        let v = app.get(&id).await;
        assert_eq!(v["status"], "authenticated", "{v}");
        assert_eq!(v["recognized"], Value::Null, "a ban forgets: {v}");
    }
);

both_stores!(
    recognition_ends_after_recognize_for,
    setup: Setup { defaults: r#"recognize_for = "2h""#.into(), ..Setup::default() },
    |app: TestApp| async move {
        let id = id_of(&sms(&app, "+15551230013").await);
        app.authenticate(&id, "cust-42").await;
        app.advance(7_199);
        assert_eq!(app.get(&id).await["recognized"]["customer_id"], "cust-42");
        app.advance(1);
        assert_eq!(app.get(&id).await["recognized"], Value::Null);
    }
);

both_stores!(
    another_team_never_sees_it,
    setup: Setup { globex_channels: vec!["sms".into()], ..month() },
    |app: TestApp| async move {
        let id = id_of(&sms(&app, "+15551230014").await);
        app.authenticate(&id, "cust-42").await;
        let res = app
            .request(Method::POST, "/v1/interactions", Some(&app.keys.globex_bot))
            .json(&json!({"channel": "sms", "conversation_id": "+15551230014"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["team"], "globex");
        assert_eq!(v["recognized"], Value::Null, "{v}");
        // And acme's own stays.
        assert_eq!(app.get(&id).await["recognized"]["customer_id"], "cust-42");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognition_survives_a_restart_on_redis() {
    let Some(a) = spawn_with(Backend::Redis, month()).await else {
        return;
    };
    let id = id_of(&sms(&a, "+15551230015").await);
    a.authenticate(&id, "cust-42").await;
    let setup = Setup {
        key_prefix: Some(a.key_prefix.clone()),
        keys: Some(a.keys.clone()),
        ..month()
    };
    // Keep the keys: stop without the cleanup a dropped TestApp does.
    let mut a = a;
    a.backend = Backend::Memory;
    a.stop().await;

    let b = spawn_with(Backend::Redis, setup).await.unwrap();
    assert_eq!(b.get(&id).await["recognized"]["customer_id"], "cust-42");
    // The interaction forgotten, a new one of the conversation still is.
    a_day_later(&b);
    assert_eq!(
        sms(&b, "+15551230015").await["recognized"]["customer_id"],
        "cust-42"
    );
}

/// Redis reads (`GET`, `MGET`) since the last `CONFIG RESETSTAT` (the
/// background sweeper's scripts are not counted: a status read runs none).
fn reads_since_reset(admin: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(admin).unwrap();
    info.lines()
        .filter(|l| {
            ["cmdstat_get:", "cmdstat_mget:"]
                .iter()
                .any(|c| l.starts_with(c))
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// `GET /v1/interactions/{id}` on `app`, and the Redis reads it cost.
async fn counted(admin: &mut redis::Connection, app: &TestApp, id: &str) -> (Value, u64) {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(admin)
        .unwrap();
    let v = app.get(id).await;
    (v, reads_since_reset(admin))
}

/// The Redis round trips of a status read, counted by a private Redis: one
/// with or without a recognized conversation; on an instance's first read
/// of an interaction it never saw, up to three (neither its conversation
/// nor, for an interaction naming no customer, the remembered customer's
/// subject is known there yet), then one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_read_is_one_redis_round_trip_with_or_without_recognition() {
    let Some(server) = crate::redis_support::OwnRedis::private("status read round trips").await
    else {
        return;
    };
    let setup = Setup {
        redis_url: Some(server.url()),
        ..with_anonymous_chat()
    };
    let a = spawn_with(Backend::Redis, setup.clone()).await.unwrap();
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection_with_timeout(std::time::Duration::from_secs(1))
        .unwrap();
    let web = id_of(
        &a.create(json!({"channel": "anon", "conversation_id": "w-rt"}))
            .await,
    );
    a.authenticate(&web, "cust-42").await;
    let text = id_of(&sms(&a, "+15551230016").await);
    a.authenticate(&text, "cust-42").await;
    // Let the outbox deliver what the logins sent.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (v, without) = counted(&mut admin, &a, &web).await;
    assert_eq!(v["recognized"], Value::Null);
    let (v, with) = counted(&mut admin, &a, &text).await;
    assert_eq!(v["recognized"]["customer_id"], "cust-42");
    let b = spawn_with(
        Backend::Redis,
        Setup {
            key_prefix: Some(a.key_prefix.clone()),
            keys: Some(a.keys.clone()),
            ..setup
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, first_elsewhere) = counted(&mut admin, &b, &text).await;
    let (v, then) = counted(&mut admin, &b, &text).await;
    assert_eq!(v["recognized"]["customer_id"], "cust-42");
    eprintln!("status read round trips: without {without}, with {with}, another instance's first {first_elsewhere}, then {then}");
    assert_eq!((without, with, then), (1, 1, 1));
    assert!(first_elsewhere <= 3, "{first_elsewhere}");
}
