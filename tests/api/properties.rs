//! Property tests over what a client sends from outside, through
//! the real server: API keys, ids in paths, short-link codes, JSON bodies,
//! submitted codes, assertions, and Standard Webhooks headers. Whatever is
//! sent, the answer is the documented problem (never a 5xx) and never
//! repeats the value. Each case is one request, so counts stay small.
//! And what a client sends right: a valid team's JSON form round-trips
//! through the operator API with one `ETag` (`operator_teams`).
use std::fmt::Debug;
use std::future::Future;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::HeaderValue;
use reqwest::Response;
use serde_json::Value;

mod assertions;
mod bodies;
mod operator_teams;
mod paths;
mod signatures;

/// Never echoed: values carrying it must not come back in a `detail`.
const MARK: &str = "zq9x";

/// Runs `test` on `cases` values of `strategy`, one request each, on the
/// test's own (multi-thread) runtime; a failure is shrunk as usual.
fn run<S, F, Fut>(cases: u32, strategy: S, test: F)
where
    S: Strategy,
    S::Value: Debug,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let config = Config::default();
    let config = Config {
        // `PROPTEST_CASES`, when set, runs deeper.
        cases: std::env::var_os("PROPTEST_CASES").map_or(cases, |_| config.cases),
        failure_persistence: None,
        ..config
    };
    let mut runner = TestRunner::new(config);
    let handle = tokio::runtime::Handle::current();
    let result =
        tokio::task::block_in_place(|| runner.run(&strategy, |v| handle.block_on(test(v))));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Text a hostile client might send, short enough for a URL or a header.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\x7f\u{200b}\u{202e}\u{feff}a-zA-Z0-9 ./%?#:=_+-]{0,40}",
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        (any::<char>(), 200..2_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// `s` as one path segment. `.` and `..` would move to another path; a
/// segment over 7 KiB encoded is left out, so that two of them stay within
/// the 16 KiB request head (a longer head is 431: `connections.rs`).
fn segment(s: &str) -> Option<String> {
    let encoded = utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    (!matches!(s, "" | "." | "..") && encoded.len() <= 7 * 1024).then_some(encoded)
}

/// A problem+json answer with `status` and a code among `codes`, whose
/// detail does not contain [`MARK`].
async fn problem(res: Response, status: &[u16], codes: &[&str]) -> Result<Value, TestCaseError> {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    prop_assert!(status.contains(&got), "status {} {}", got, body);
    prop_assert!(
        ct.starts_with("application/problem+json"),
        "{} {}",
        ct,
        body
    );
    let code = body["code"].as_str().unwrap_or("");
    prop_assert!(codes.contains(&code), "{}", body);
    let detail = body["detail"].as_str().unwrap_or("");
    prop_assert!(!detail.contains(MARK), "{}", body);
    Ok(body)
}

/// Header values a client can put on the wire (visible ASCII, space, tab,
/// and obs-text bytes).
fn header_value() -> impl Strategy<Value = HeaderValue> {
    let bytes = prop_oneof![
        "[ -~]{0,80}".prop_map(String::into_bytes),
        prop::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..80),
    ];
    bytes.prop_filter_map("a valid header value", |b| HeaderValue::from_bytes(&b).ok())
}

/// Any JSON value, a few levels deep, some strings carrying [`MARK`].
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        hostile().prop_map(Value::String),
        hostile().prop_map(|s| Value::String(format!("{s}{MARK}"))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
