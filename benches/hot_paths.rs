//! Criterion micro-benchmarks of the pure functions on the hot paths: login
//! token sign/verify, Standard Webhooks signature verify, code hash, API key
//! hash, and an interaction record's JSON encode/decode.
//! Run: `cargo bench --bench hot_paths` (the load test is `examples/loadtest`).
use std::path::Path;

use chatgate::domain::interaction::InteractionRecord;
use chatgate::domain::login_token::{self, LoginClaims, Stage};
use chatgate::domain::otp;
use chatgate::domain::secrets::{ApiKeyHash, Pepper};
use chatgate::domain::webhook_sig;
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
    let json = serde_json::to_string(&rec).expect("encode");
    c.bench_function("InteractionRecord encode", |b| {
        b.iter(|| serde_json::to_string(black_box(&rec)))
    });
    c.bench_function("InteractionRecord decode", |b| {
        b.iter(|| serde_json::from_str::<InteractionRecord>(black_box(&json)))
    });
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
