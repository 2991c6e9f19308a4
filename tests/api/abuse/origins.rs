//! Lockouts a stranger cannot turn against the customer: with
//! `lockout.scope = "origin"` failures, lockouts and bans count per origin
//! of the subject (its device, else its conversation), and the strangers'
//! failures together lock out every unfamiliar origin while the familiar
//! ones keep working. On both stores.
use std::time::Duration;

use serde_json::{json, Value};

use crate::challenges::start;
use crate::helpers::*;

/// Origin scope: 3 failures lock an origin, its second lockout bans it,
/// and the strangers' 4th failure locks out every unfamiliar origin.
fn origin_setup(strangers_threshold: u32) -> Setup {
    Setup {
        defaults: format!(
            "[defaults.lockout]\nscope = \"origin\"\nthreshold = 3\nmax_lockouts_before_ban = 2\n\
             strangers_threshold = {strangers_threshold}\n[defaults.otp]\nmax_attempts = 100\nmax_sends = 1000"
        ),
        ..Setup::default()
    }
}

/// A webchat conversation `conv` naming customer `cust`; its id.
async fn conversation(app: &TestApp, conv: &str, cust: &str) -> String {
    app.create(json!({"channel": "webchat", "conversation_id": conv, "customer_ref": cust}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The customer proves themselves in `id`: its origin becomes familiar.
async fn succeed(app: &TestApp, id: &str) {
    let (cid, code) = app.start_otp(id).await;
    let res = app.verify_code(id, &cid, &code).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// `n` wrong codes on a fresh challenge of `id`; the last answer's status.
async fn wrong(app: &TestApp, id: &str, n: usize) -> u16 {
    let (cid, code) = app.start_otp(id).await;
    let mut last = 0;
    for _ in 0..n {
        last = app
            .verify_code(id, &cid, &wrong_code(&code))
            .await
            .status()
            .as_u16();
    }
    last
}

async fn subject(app: &TestApp, s: &str) -> Value {
    app.get_json(&format!("/v1/subjects/{s}"), Some(&app.keys.agent))
        .await
}

fn origin<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["origins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["origin"] == name)
        .unwrap_or_else(|| panic!("no origin {name} in {view}"))
}

async fn unlock(app: &TestApp, s: &str, body: Option<Value>) -> Value {
    let rb = app.request(
        reqwest::Method::POST,
        &format!("/v1/subjects/{s}/unlock"),
        Some(&app.keys.admin),
    );
    let rb = match body {
        Some(b) => rb.json(&b),
        None => rb,
    };
    let res = rb.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

both_stores!(
    a_stranger_is_locked_while_the_customer_s_familiar_conversation_still_verifies,
    setup: origin_setup(15),
    |mut app: TestApp| async move {
        let home = conversation(&app, "home", "cust-a").await;
        succeed(&app, &home).await;
        let eve = conversation(&app, "eve", "cust-a").await;
        assert_eq!(wrong(&app, &eve, 3).await, 423);
        let e = app.next_event("subject.locked", Duration::from_secs(5)).await.expect("subject.locked");
        let data = event_data(&e);
        assert_eq!(data["origin"], "webchat:eve", "{data}");
        assert_eq!(app.get(&eve).await["status"], "locked");
        assert!(app.get(&eve).await["locked_until"].is_string());
        // The customer, in their familiar conversation, is not locked out...
        assert_eq!(app.get(&home).await["status"], "authenticated");
        assert!(app.get(&home).await["locked_until"].is_null());
        succeed(&app, &home).await;
        // ...and their success leaves the stranger locked.
        assert_problem(start(&app, &eve, json!({"method": "otp"})).await, 423, "locked").await;
        let v = subject(&app, "cust-a").await;
        assert_eq!(v["origins"][0]["origin"], "webchat:home", "most recent first: {v}");
        assert_eq!(origin(&v, "webchat:home")["familiar"], true);
        let eve_o = origin(&v, "webchat:eve");
        assert_eq!((eve_o["familiar"].as_bool(), eve_o["lockouts"].as_u64(), eve_o["banned"].as_bool()), (Some(false), Some(1), Some(false)), "{v}");
        assert!(eve_o["locked_until"].is_string());
        assert_eq!(v["failures"], 3, "the strangers' failures: {v}");
        assert!(v["locked_until"].is_null() && v["strangers_locked_until"].is_null(), "{v}");
        assert_eq!(v["banned"], false);
    }
);

both_stores!(
    strangers_reaching_the_threshold_lock_out_a_never_seen_conversation_but_not_the_familiar_one,
    setup: origin_setup(4),
    |mut app: TestApp| async move {
        let home = conversation(&app, "home", "cust-b").await;
        succeed(&app, &home).await;
        let a = conversation(&app, "stranger-a", "cust-b").await;
        let b = conversation(&app, "stranger-b", "cust-b").await;
        assert_eq!(wrong(&app, &a, 2).await, 401);
        assert_eq!(wrong(&app, &b, 1).await, 401);
        assert_eq!(wrong(&app, &b, 1).await, 423, "the 4th strangers' failure");
        let e = app.next_event("subject.locked", Duration::from_secs(5)).await.expect("subject.locked");
        assert!(event_data(&e)["origin"].is_null(), "the strangers' lock is subject-wide");
        // A conversation never seen is locked before it types anything.
        let c = conversation(&app, "stranger-c", "cust-b").await;
        let view = app.get(&c).await;
        assert_eq!(view["status"], "locked", "{view}");
        assert_problem(start(&app, &c, json!({"method": "otp"})).await, 423, "locked").await;
        assert_problem(start(&app, &a, json!({"method": "otp"})).await, 423, "locked").await;
        // The familiar conversation keeps working.
        assert_eq!(app.get(&home).await["status"], "authenticated");
        succeed(&app, &home).await;
        let v = subject(&app, "cust-b").await;
        assert!(v["strangers_locked_until"].is_string(), "{v}");
        assert_eq!(v["locked_until"], v["strangers_locked_until"]);
        // The lock lasts `lockout.duration` (15 minutes).
        app.advance(901);
        assert_eq!(app.get(&c).await["status"], "unauthenticated");
    }
);

both_stores!(
    bans_count_per_origin_and_unlock_takes_one_origin_or_all,
    setup: origin_setup(100),
    |mut app: TestApp| async move {
        let eve = conversation(&app, "eve", "cust-c").await;
        let mallory = conversation(&app, "mallory", "cust-c").await;
        assert_eq!(wrong(&app, &eve, 3).await, 423);
        app.advance(901);
        assert_eq!(wrong(&app, &eve, 3).await, 403, "the second lockout bans eve's origin");
        let e = app.next_event("subject.banned", Duration::from_secs(5)).await.expect("subject.banned");
        assert_eq!(event_data(&e)["origin"], "webchat:eve");
        assert_eq!(app.get(&eve).await["status"], "banned");
        // Another origin of the same customer is not banned.
        assert_eq!(app.get(&mallory).await["status"], "unauthenticated");
        assert_eq!(wrong(&app, &mallory, 3).await, 423);
        let v = subject(&app, "cust-c").await;
        assert_eq!(origin(&v, "webchat:eve")["banned"], true);
        assert_eq!(v["banned"], false, "{v}");
        // Unlock one origin: eve's alone.
        let v = unlock(&app, "cust-c", Some(json!({"origin": "webchat:eve"}))).await;
        assert!(origin(&v, "webchat:mallory")["locked_until"].is_string(), "{v}");
        let e = app.next_event("subject.unlocked", Duration::from_secs(5)).await.expect("subject.unlocked");
        assert_eq!(event_data(&e)["origin"], "webchat:eve");
        // (Its open challenge shows again.)
        assert_eq!(app.get(&eve).await["status"], "pending");
        assert_eq!(app.get(&mallory).await["status"], "locked");
        // Unlock all.
        let v = unlock(&app, "cust-c", None).await;
        assert!(v["origins"].as_array().unwrap().iter().all(|o| o["locked_until"].is_null() && o["banned"] == false), "{v}");
        let e = app.next_event("subject.unlocked", Duration::from_secs(5)).await.expect("subject.unlocked");
        assert!(event_data(&e)["origin"].is_null());
        assert_eq!(app.get(&mallory).await["status"], "pending");
        // A body naming an unknown member is refused.
        let res = app
            .request(reqwest::Method::POST, "/v1/subjects/cust-c/unlock", Some(&app.keys.admin))
            .json(&json!({"orign": "webchat:eve"}))
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, "invalid_request").await;
    }
);

both_stores!(
    a_device_is_one_origin_across_conversations,
    setup: origin_setup(100),
    |app: TestApp| async move {
        let x = conversation(&app, "laptop-tab-1", "cust-d").await;
        let y = conversation(&app, "laptop-tab-2", "cust-d").await;
        let z = conversation(&app, "phone", "cust-d").await;
        for id in [&x, &y] {
            let mut claims = app.assertion_claims("cust-d");
            claims["fingerprint"] = json!("fp-laptop");
            let res = app
                .post_json(&format!("/v1/interactions/{id}/assertion"), Some(&app.keys.bot), &json!({"assertion": app.assertion(claims)}))
                .await;
            assert_eq!(res.status(), 200);
        }
        assert_eq!(wrong(&app, &x, 3).await, 423);
        // The other conversation of the same device is locked with it...
        assert_eq!(app.get(&y).await["status"], "locked");
        assert_problem(start(&app, &y, json!({"method": "otp"})).await, 423, "locked").await;
        // ...another conversation is not.
        assert_eq!(app.get(&z).await["status"], "unauthenticated");
        let v = subject(&app, "cust-d").await;
        let device = origin(&v, "device:fp-laptop");
        assert_eq!(device["familiar"], true, "the assertion's success made it familiar: {v}");
        assert_eq!(device["lockouts"], 1);
    }
);

fn parallel_setup() -> Setup {
    Setup {
        defaults:
            "[defaults.lockout]\nscope = \"origin\"\nthreshold = 1000\nstrangers_threshold = 1000\n\
                   [defaults.otp]\nmax_attempts = 100"
                .into(),
        ..Setup::default()
    }
}

/// 50 wrong codes at once from two origins: each origin and the strangers'
/// count hold every one of them.
async fn fifty_wrong_codes_from_two_origins(app: TestApp) {
    let one = conversation(&app, "one", "cust-e").await;
    let two = conversation(&app, "two", "cust-e").await;
    let c1 = app.start_otp(&one).await;
    let c2 = app.start_otp(&two).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (id, (cid, code)) = if i % 2 == 0 { (&one, &c1) } else { (&two, &c2) };
            let app = &app;
            async move {
                app.verify_code(id, cid, &wrong_code(code))
                    .await
                    .status()
                    .as_u16()
            }
        })
        .collect();
    let answers = futures::future::join_all(tasks).await;
    assert!(answers.iter().all(|s| *s == 401), "{answers:?}");
    let v = subject(&app, "cust-e").await;
    assert_eq!(origin(&v, "webchat:one")["failures"], 25, "{v}");
    assert_eq!(origin(&v, "webchat:two")["failures"], 25, "{v}");
    assert_eq!(v["failures"], 50, "{v}");
}

both_stores!(
    parallel_wrong_codes_across_two_origins_count_exactly,
    setup: parallel_setup(),
    fifty_wrong_codes_from_two_origins
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_codes_across_two_origins_count_exactly_on_a_cluster() {
    const TEST: &str = "parallel_wrong_codes_across_two_origins_count_exactly_on_a_cluster";
    let Some(cluster) = tokio::task::spawn_blocking(|| crate::redis_support::shared_cluster(TEST))
        .await
        .unwrap()
    else {
        return;
    };
    let setup = Setup {
        cluster_nodes: cluster.urls(),
        ..parallel_setup()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    fifty_wrong_codes_from_two_origins(app).await;
}

// Scope `subject` (the default) is unchanged: a stranger's failures lock
// the customer out everywhere, and the view has no origins.
both_stores!(
    subject_scope_counts_for_the_subject_as_before,
    setup: Setup {
        defaults: "[defaults.lockout]\nthreshold = 3".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let home = conversation(&app, "home", "cust-f").await;
        succeed(&app, &home).await;
        let eve = conversation(&app, "eve", "cust-f").await;
        assert_eq!(wrong(&app, &eve, 3).await, 423);
        assert_eq!(app.get(&home).await["status"], "locked");
        let v = subject(&app, "cust-f").await;
        assert!(v.get("origins").is_none() && v.get("strangers_locked_until").is_none(), "{v}");
        assert!(v["locked_until"].is_string());
    }
);

both_stores!(
    strangers_sends_never_use_up_a_familiar_origin_s_allowance,
    setup: Setup {
        defaults: "[defaults.lockout]\nscope = \"origin\"\n[defaults.otp]\nmax_sends = 2".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let home = conversation(&app, "home", "cust-sends").await;
        // Sent while home was not yet familiar: one of the strangers' two.
        succeed(&app, &home).await;
        // Every unfamiliar origin shares that allowance.
        let eve = conversation(&app, "eve", "cust-sends").await;
        let mallory = conversation(&app, "mallory", "cust-sends").await;
        assert_eq!(start(&app, &eve, json!({"method": "otp"})).await.status(), 201);
        assert_problem(start(&app, &mallory, json!({"method": "otp"})).await, 429, "rate_limited").await;
        let never_seen = conversation(&app, "never-seen", "cust-sends").await;
        assert_problem(start(&app, &never_seen, json!({"method": "otp"})).await, 429, "rate_limited").await;
        // The customer's familiar conversation has its own two.
        assert_eq!(start(&app, &home, json!({"method": "otp"})).await.status(), 201);
        assert_eq!(start(&app, &home, json!({"method": "otp"})).await.status(), 201);
        assert_problem(start(&app, &home, json!({"method": "otp"})).await, 429, "rate_limited").await;
        assert_problem(start(&app, &eve, json!({"method": "otp"})).await, 429, "rate_limited").await;
    }
);

both_stores!(
    strangers_lockouts_ban_every_unfamiliar_origin_and_the_familiar_one_keeps_working,
    setup: Setup {
        defaults: "[defaults.lockout]\nscope = \"origin\"\nthreshold = 3\nmax_lockouts_before_ban = 2\n\
                   strangers_threshold = 2\n[defaults.otp]\nmax_attempts = 100\nmax_sends = 1000".into(),
        ..Setup::default()
    },
    |mut app: TestApp| async move {
        let home = conversation(&app, "home", "cust-ban").await;
        succeed(&app, &home).await;
        let eve = conversation(&app, "eve", "cust-ban").await;
        let mallory = conversation(&app, "mallory", "cust-ban").await;
        assert_eq!(wrong(&app, &eve, 2).await, 423, "the strangers' first lockout");
        app.advance(901);
        assert_eq!(wrong(&app, &mallory, 2).await, 403, "their second bans them");
        let e = app.next_event("subject.banned", Duration::from_secs(5)).await.expect("subject.banned");
        assert!(event_data(&e)["origin"].is_null(), "the strangers' ban is subject-wide: {:?}", event_data(&e));
        // Every unfamiliar origin, seen or not, is banned; for good (ban_duration 0s).
        let zed = conversation(&app, "zed", "cust-ban").await;
        assert_eq!(app.get(&zed).await["status"], "banned");
        assert_problem(start(&app, &zed, json!({"method": "otp"})).await, 403, "banned").await;
        assert_problem(start(&app, &eve, json!({"method": "otp"})).await, 403, "banned").await;
        app.advance(3_600);
        assert_eq!(app.get(&zed).await["status"], "banned", "past lockout.duration");
        // The customer's familiar conversation keeps working.
        succeed(&app, &home).await;
        let v = subject(&app, "cust-ban").await;
        assert_eq!(v["banned"], true, "{v}");
        assert!(v["strangers_locked_until"].is_null(), "{v}");
        // An admin unlock lifts it.
        let v = unlock(&app, "cust-ban", None).await;
        assert_eq!(v["banned"], false, "{v}");
        assert_eq!(start(&app, &zed, json!({"method": "otp"})).await.status(), 201);
    }
);

both_stores!(
    strangers_never_use_up_a_familiar_origin_s_sends_to_its_number,
    setup: Setup {
        defaults: "[defaults.lockout]\nscope = \"origin\"\n[defaults.otp]\nmax_sends = 2".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let phone = json!({"phone": "+15551230042"});
        let with_phone = |conv: &str, cust: &str| {
            json!({"channel": "webchat", "conversation_id": conv, "customer_ref": cust, "contact": phone})
        };
        let id = |v: Value| v["id"].as_str().unwrap().to_string();
        let sms = json!({"method": "otp", "delivery": "sms"});
        // The customer's own conversation becomes familiar.
        let home = id(app.create(with_phone("home-n", "cust-n")).await);
        succeed(&app, &home).await;
        // Strangers, whichever subjects they name, share one allowance at
        // the customer's number: two codes, then 429.
        for (conv, cust) in [("eve-n", "cust-e1"), ("mallory-n", "cust-e2")] {
            let stranger = id(app.create(with_phone(conv, cust)).await);
            assert_eq!(start(&app, &stranger, sms.clone()).await.status(), 201, "{conv}");
        }
        let trent = id(app.create(with_phone("trent-n", "cust-e3")).await);
        assert_problem(start(&app, &trent, sms.clone()).await, 429, "rate_limited").await;
        // The familiar conversation keeps its own: two codes to its number.
        assert_eq!(start(&app, &home, sms.clone()).await.status(), 201);
        assert_eq!(start(&app, &home, sms.clone()).await.status(), 201);
        assert_problem(start(&app, &home, sms).await, 429, "rate_limited").await;
    }
);
