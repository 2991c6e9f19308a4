//! Criterion micro-benchmarks of the pure functions on the hot paths: login
//! token sign/verify, Standard Webhooks signature verify, code hash, API key
//! hash, an interaction record's stored form encode/decode, and reading an
//! outbox item.
//! Run: `cargo bench --bench hot_paths` (the load test is `tools/loadtest`).
use std::path::Path;

use chatgate::domain::interaction::{
    CallbackAnswer, Customer, InteractionRecord, Link, LinkUse, Method,
};
use chatgate::domain::login_token::{self, LoginClaims, Stage};
use chatgate::domain::otp;
use chatgate::domain::secrets::{ApiKeyHash, Pepper};
use chatgate::domain::webhook_sig;
use chatgate::events::{About, Event, EventType};
use chatgate::gateway::{decode_interaction, encode_interaction, Bookkeeping, OutboxItem};
use chatgate::store::memory::MemoryStore;
use chatgate::store::{Op, Store};
use chatgate::time::{Clock, SystemClock};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use uuid::Uuid;

fn hot_paths(c: &mut Criterion) {
    // The sample configuration: its demo secrets are fine for timing.
    let config = chatgate::config::load(Path::new("config/chatgate.toml")).expect("sample config");
    let team = config.team("acme").expect("acme");
    let key = team.primary_key().expect("a primary key");
    let now = SystemClock.now();
    let claims = LoginClaims {
        iss: config.server.issuer.clone(),
        aud: team.id.clone(),
        sub: Uuid::now_v7().to_string(),
        jti: Uuid::now_v7().to_string(),
        iat: now.unix_seconds(),
        exp: Some(now.unix_seconds() + 600),
        team: team.id.clone(),
        channel: "webchat".into(),
        stage: Stage::MidChat,
        scope: None,
        expected_customer: None,
        locale: None,
    };
    c.bench_function("login_token::issue", |b| {
        b.iter(|| login_token::issue(black_box(key), black_box(&claims)))
    });
    let token = login_token::issue(key, &claims).expect("token");
    let issuer = config.server.issuer.clone();
    c.bench_function("login_token::verify", |b| {
        b.iter(|| login_token::verify(black_box(&token), &issuer, |t| config.team(t), now))
    });

    let secret = key.secret.expose();
    let body = br#"{"token":"x","outcome":"success","customer":{"id":"cust-1"}}"#;
    let ts = now.unix_seconds();
    let sig = webhook_sig::sign(secret, "msg_1", ts, body);
    let ts_text = ts.to_string();
    c.bench_function("webhook_sig::verify", |b| {
        b.iter(|| {
            webhook_sig::verify(
                &[secret],
                Some("msg_1"),
                Some(&ts_text),
                Some(black_box(&sig)),
                black_box(body),
                now,
            )
        })
    });

    let pepper = Pepper::new("bench-pepper-0123456789abcdef");
    let cid = Uuid::now_v7();
    let code = otp::generate(6);
    let hash = otp::hash(&pepper, cid, &code);
    c.bench_function("otp::hash", |b| {
        b.iter(|| otp::hash(&pepper, cid, black_box(&code)))
    });
    c.bench_function("otp::verify (wrong code)", |b| {
        b.iter(|| otp::verify(&pepper, cid, black_box("000000"), &hash))
    });
    c.bench_function("ApiKeyHash::of_key", |b| {
        b.iter(|| ApiKeyHash::of_key(black_box("cgk_0123456789abcdef0123456789abcdef")))
    });

    let rec = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "conversation-1", now);
    let key = chatgate::store::keys::interaction("acme", rec.id);
    let json = encode_interaction(&rec, Bookkeeping::default(), None).expect("encode");
    c.bench_function("InteractionRecord encode", |b| {
        b.iter(|| encode_interaction(black_box(&rec), Bookkeeping::default(), None))
    });
    c.bench_function("InteractionRecord decode", |b| {
        b.iter(|| decode_interaction(black_box(&json), &key))
    });

    // What a login callback reads and writes in the load test: an
    // authenticated record holding its 16 most recent links, each used by a
    // callback whose answer it keeps.
    let mut busy = rec.clone();
    let settings = team.settings_for("webchat");
    for i in 0..16 {
        let link = Link {
            id: Uuid::now_v7(),
            expires_at: Some(now.plus(std::time::Duration::from_secs(600))),
            used: true,
            used_by: Some(LinkUse {
                webhook_id: webhook_sig::id_digest(&format!("msg_{i}")),
                answer: CallbackAnswer::Authenticated {
                    expires_at: Some(now.plus(std::time::Duration::from_secs(1800))),
                },
                body: Some(webhook_sig::id_digest(&format!("body_{i}"))),
            }),
            delivered_on: None,
        };
        busy.add_link(link, now);
    }
    let customer = Customer::from([("id".to_string(), "cust-42".to_string())]);
    busy.authenticate(Method::LoginLink, customer, now, settings);
    let busy_json = encode_interaction(&busy, Bookkeeping::default(), None).expect("encode");
    c.bench_function(
        "InteractionRecord encode (authenticated, 16 used links)",
        |b| b.iter(|| encode_interaction(black_box(&busy), Bookkeeping::default(), None)),
    );
    c.bench_function(
        "InteractionRecord decode (authenticated, 16 used links)",
        |b| b.iter(|| decode_interaction(black_box(&busy_json), &key)),
    );
    let stamp = serde_json::to_string(&now).expect("encode");
    c.bench_function("Timestamp encode", |b| {
        b.iter(|| serde_json::to_string(black_box(&now)))
    });
    c.bench_function("Timestamp decode", |b| {
        b.iter(|| serde_json::from_str::<chatgate::time::Timestamp>(black_box(&stamp)))
    });

    let data = serde_json::json!({ "interaction": serde_json::from_str::<serde_json::Value>(&json).expect("json") });
    let event = Event::new(EventType::ChallengeFailed, now, "acme", &data).expect("event");
    let about = About::interaction(rec.id, None);
    let item = serde_json::to_string(&OutboxItem::event(event, about, now)).expect("item");
    c.bench_function("OutboxItem decode (event)", |b| {
        b.iter(|| serde_json::from_str::<OutboxItem>(black_box(&item)))
    });

    // What a write does to the team's listing index and due queue: moves
    // one member of each, among 50 k.
    let store = MemoryStore::new();
    let members: Vec<String> = (0..50_000).map(|_| Uuid::now_v7().to_string()).collect();
    let moves = |member: &str, score: i64| {
        let ttl = std::time::Duration::from_secs(3600);
        let listing = Op::IndexAdd {
            key: "{acme}:idx".into(),
            member: member.into(),
            score,
            ttl,
        };
        let due = Op::QueueAdd {
            key: "{acme}:dueq".into(),
            member: member.into(),
            score,
            ttl,
        };
        [listing, due]
    };
    for (i, m) in members.iter().enumerate() {
        futures::executor::block_on(store.commit(moves(m, i as i64).to_vec())).expect("commit");
    }
    let mut n = members.len();
    c.bench_function(
        "MemoryStore commit: an index and a queue move among 50 k",
        |b| {
            b.iter(|| {
                n += 1;
                let ops = moves(&members[n % members.len()], n as i64).to_vec();
                futures::executor::block_on(store.commit(ops))
            })
        },
    );
    // As a write does it: the listing's score (creation) stays, the due
    // time moves.
    c.bench_function(
        "MemoryStore commit: a write's entries among 50 k (listing kept, due moved)",
        |b| {
            b.iter(|| {
                n += 1;
                let i = n % members.len();
                let [mut listing, due] = moves(&members[i], n as i64);
                if let Op::IndexAdd { score, .. } = &mut listing {
                    *score = i as i64;
                }
                futures::executor::block_on(store.commit(vec![listing, due]))
            })
        },
    );
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
