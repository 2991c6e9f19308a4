//! Criterion benchmarks of a wallet challenge's CPU (docs/performance.md#a-wallet-challenge),
//! beside an OTP challenge's, over the domain functions with the wallet
//! fixtures (tests/fixtures/wallet/fixtures.json) at their `now`: the
//! page's fresh request (a P-256 key, the `dc_api.jwt` object signed), the
//! request object a wallet fetches (`direct_post.jwt`, its key read back),
//! and the answer (the JWE opened, the SD-JWT VC verified, the claims
//! compared; an mdoc's `DeviceResponse` verified); and a payment's
//! presentation (its Key Binding JWT's `transaction_data` claims checked)
//! beside an identity one, without the JWE; and an identity presentation
//! whose issuer is found in a trusted list of 1,000 services
//! (docs/wallet.md#trusted-lists) beside one whose issuer is pasted.
//! Run: `cargo bench --bench wallet`; instructions once, without
//! criterion's loop: `cargo bench --bench wallet --no-run`, then
//! `valgrind --tool=callgrind <bench binary> --once`.
use std::collections::BTreeMap;

use chatgate::domain::otp;
use chatgate::domain::secrets::Pepper;
use chatgate::domain::transaction::Transaction;
use chatgate::domain::wallet::issuers::TrustedIssuers;
use chatgate::domain::wallet::jose::{b64url, to_b64url};
use chatgate::domain::wallet::request::{self, Credential, Mode, Request, Signer};
use chatgate::domain::wallet::request_key::RequestKey;
use chatgate::domain::wallet::{matching, mdoc, payment, response, sd_jwt, Format};
use chatgate::time::Timestamp;
use criterion::{black_box, Criterion};
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::Value;
use uuid::Uuid;

/// What every benchmark reads: the fixtures and the verifier's keys.
struct Fixture {
    f: Value,
    signer: Signer,
    trusted: TrustedIssuers,
    key: RequestKey,
    vct: Vec<String>,
    claims: Vec<String>,
    expected: BTreeMap<String, String>,
    now: Timestamp,
}

impl Fixture {
    fn new() -> Self {
        let f: Value =
            serde_json::from_str(include_str!("../tests/fixtures/wallet/fixtures.json")).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["chatgate.example".into()]).unwrap();
        let signer = Signer {
            key: p256::ecdsa::SigningKey::from_pkcs8_der(&made.key_pair.serialize_der()).unwrap(),
            chain: vec![made.cert.der().to_vec()],
        };
        let text = |p: &str| f.pointer(p).and_then(Value::as_str).unwrap().to_string();
        let trusted = TrustedIssuers::from_pems(&[text("/trusted/0")]).unwrap();
        let key = RequestKey::from_scalar(&b64url(&text("/request_key/d")).unwrap()).unwrap();
        let expected = BTreeMap::from([
            ("family_name".to_string(), "Lovelace".to_string()),
            ("birthdate".to_string(), "1815-12-10".to_string()),
        ]);
        let now = Timestamp::from_unix_seconds(f["now"].as_i64().unwrap());
        Fixture {
            vct: vec![text("/vct")],
            claims: expected.keys().cloned().collect(),
            f,
            signer,
            trusted,
            key,
            expected,
            now,
        }
    }

    fn text(&self, p: &str) -> &str {
        self.f.pointer(p).and_then(Value::as_str).unwrap()
    }

    /// The one credential asked, `pid`.
    fn credentials(&self) -> [Credential<'_>; 1] {
        [Credential {
            id: "pid",
            format: Format::SdJwt,
            vct: &self.vct,
            doctype: "",
            namespace: "",
            claims: self.claims.iter().map(String::as_str).collect(),
            authorities: &[],
        }]
    }

    fn request<'a>(
        &'a self,
        mode: Mode<'a>,
        key: &'a RequestKey,
        credentials: &'a [Credential<'a>],
    ) -> Request<'a> {
        Request {
            client_id: self.text("/client_id"),
            mode,
            state: "st-4f1c",
            nonce: self.text("/nonce"),
            credentials,
            key,
            wallet_nonce: Some("wn-42"),
            registration: None,
            transaction_data: None,
            now: self.now,
        }
    }

    /// The page's fresh request: a new key, the `dc_api.jwt` object signed.
    #[inline(never)]
    fn page_request(&self) -> String {
        let key = RequestKey::generate(&mut rand::rngs::OsRng);
        let origins = ["https://chatgate.example".to_string()];
        let mode = Mode::DcApi {
            expected_origins: &origins,
        };
        let credentials = self.credentials();
        request::sign(&self.request(mode, &key, &credentials), &self.signer)
    }

    /// The request object a wallet fetches: the request's key read back
    /// from its scalar, the `direct_post.jwt` object signed.
    #[inline(never)]
    fn request_object(&self) -> String {
        let key = RequestKey::from_scalar(&self.key.scalar()).unwrap();
        let mode = Mode::DirectPost {
            response_uri: "https://chatgate.example/w/response",
        };
        let credentials = self.credentials();
        request::sign(&self.request(mode, &key, &credentials), &self.signer)
    }

    /// An SD-JWT VC answer: the JWE opened, its presentation verified, the
    /// claims compared; whether all matched.
    #[inline(never)]
    fn sd_jwt_answer(&self) -> bool {
        let opened = response::open(self.text("/jwes/a128gcm"), &self.key).unwrap();
        let list = response::presentations(&opened, &["pid"]).unwrap().1;
        let expected = sd_jwt::Expected {
            trusted: &self.trusted,
            vct: &self.vct,
            audience: self.text("/client_id"),
            nonce: self.text("/nonce"),
            now: self.now,
        };
        match sd_jwt::verify(list[0], &expected) {
            sd_jwt::Outcome::Verified(v) => matching::compare(&self.expected, &v.claims).all,
            _ => false,
        }
    }

    /// An mdoc `DeviceResponse` through the Digital Credentials API,
    /// verified; whether it was.
    #[inline(never)]
    fn mdoc_answer(&self) -> bool {
        let expected = mdoc::Expected {
            trusted: &self.trusted,
            doctype: self.text("/mdoc/doctype"),
            namespace: self.text("/mdoc/namespace"),
            handover: mdoc::Handover::DcApi {
                origin: self.text("/mdoc/origin"),
                nonce: self.text("/nonce"),
                jwk_thumbprint: Some(self.text("/request_key/thumbprint")),
            },
            now: self.now,
        };
        let outcome = mdoc::verify(self.text("/mdoc/cases/dc_api"), &expected);
        matches!(outcome, mdoc::Outcome::Verified(_))
    }
}

/// The fixture credential presented with a Key Binding JWT signed here
/// by the holder's key for the fixtures' `client_id` and `nonce` at
/// `now`, carrying `extra` claims: an identity presentation with none, a
/// payment's with its `transaction_data` claims.
fn presented(fx: &Fixture, extra: Value) -> String {
    use p256::ecdsa::signature::Signer as _;
    use sha2::Digest as _;
    let full = fx.text("/cases/es256");
    let (without_kb, _) = full.rsplit_once('~').unwrap();
    let up_to_kb = format!("{without_kb}~");
    let sd_hash = to_b64url(&sha2::Sha256::digest(up_to_kb.as_bytes()));
    let mut claims = serde_json::json!({"iat": fx.now.unix_seconds(), "aud": fx.text("/client_id"),
                                        "nonce": fx.text("/nonce"), "sd_hash": sd_hash});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let header = serde_json::json!({"typ": "kb+jwt", "alg": "ES256"});
    let input = format!(
        "{}.{}",
        to_b64url(header.to_string().as_bytes()),
        to_b64url(claims.to_string().as_bytes())
    );
    let holder = b64url(fx.text("/holder/d")).unwrap();
    let holder = p256::ecdsa::SigningKey::from_slice(&holder).unwrap();
    let signature: p256::ecdsa::Signature = holder.sign(input.as_bytes());
    format!("{up_to_kb}{input}.{}", to_b64url(&signature.to_bytes()))
}

/// A payment's `transaction_data` entry and the Key Binding JWT claims
/// that approve it.
fn payment_claims() -> (String, Value) {
    use sha2::Digest as _;
    let t = Transaction::parse(
        "transaction",
        &serde_json::json!({"type": "payment", "amount": "120.00", "currency": "EUR",
                            "payee": "ACME Energy Ltd", "payee_id": "DE89370400440532013000"}),
    )
    .unwrap();
    let data =
        payment::transaction_data("sca", Uuid::now_v7(), Timestamp::from_unix_seconds(0), &t)
            .unwrap();
    let claims = serde_json::json!({
        "transaction_data_hashes": [to_b64url(&sha2::Sha256::digest(data.as_bytes()))],
        "transaction_data_hashes_alg": "sha-256", "response_mode": "direct_post.jwt",
        "amr": [{"knowledge": "pin_6_or_more_digits"}, {"possession": "key_in_local_native_wscd"}],
        "jti": "psd2-code-1",
    });
    (data, claims)
}

/// A presentation verified as an answer verifies it (no JWE): for
/// identity, its claims compared; for a payment (`data` its entry), its
/// Key Binding JWT's payment claims checked. Whether it held.
#[inline(never)]
fn presentation_answer(fx: &Fixture, presented: &str, data: Option<&str>) -> bool {
    let expected = sd_jwt::Expected {
        trusted: &fx.trusted,
        vct: &fx.vct,
        audience: fx.text("/client_id"),
        nonce: fx.text("/nonce"),
        now: fx.now,
    };
    let sd_jwt::Outcome::Verified(v) = sd_jwt::verify(presented, &expected) else {
        return false;
    };
    match data {
        None => matching::compare(&fx.expected, &v.claims).all,
        Some(data) => payment::presented((true, Some(data)), &v.key_binding, "direct_post.jwt")
            .is_ok_and(|sca| sca.is_some()),
    }
}

/// The issuers of a trusted list of `n` services, the fixtures' root last
/// among `n - 1` other CAs, as a credential with no PEM of its own trusts
/// them: the list's set shared, not copied.
fn listed(fx: &Fixture, n: usize) -> TrustedIssuers {
    let mut ders: Vec<Vec<u8>> = (1..n)
        .map(|i| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("PID Provider {i} Root"));
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().der().to_vec()
        })
        .collect();
    let root = fx.text("/trusted/0");
    let body: String = root.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    ders.push(
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap(),
    );
    let list = TrustedIssuers::from_ders(&ders).unwrap();
    TrustedIssuers::default().with([std::sync::Arc::new(list)])
}

/// An identity presentation verified against `trusted` and compared.
#[inline(never)]
fn presentation_trusting(fx: &Fixture, trusted: &TrustedIssuers, presented: &str) -> bool {
    let expected = sd_jwt::Expected {
        trusted,
        vct: &fx.vct,
        audience: fx.text("/client_id"),
        nonce: fx.text("/nonce"),
        now: fx.now,
    };
    match sd_jwt::verify(presented, &expected) {
        sd_jwt::Outcome::Verified(v) => matching::compare(&fx.expected, &v.claims).all,
        _ => false,
    }
}

/// An OTP challenge's start (a code drawn and hashed) and its check.
#[inline(never)]
fn otp_start(pepper: &Pepper, cid: Uuid) -> String {
    otp::hash(pepper, cid, &otp::generate(6))
}

fn wallet(c: &mut Criterion) {
    let fx = Fixture::new();
    assert!(
        fx.sd_jwt_answer(),
        "the fixtures' answer verifies and matches"
    );
    assert!(fx.mdoc_answer(), "the fixtures' mdoc verifies");
    let pepper = Pepper::new("bench-pepper-0123456789abcdef");
    let cid = Uuid::now_v7();
    let code = otp::generate(6);
    let hash = otp::hash(&pepper, cid, &code);
    c.bench_function("otp start: a code drawn and hashed", |b| {
        b.iter(|| otp_start(&pepper, black_box(cid)))
    });
    c.bench_function("otp check: the right code", |b| {
        b.iter(|| otp::verify(&pepper, cid, black_box(code.expose()), &hash))
    });
    c.bench_function("wallet page: a fresh P-256 key, dc_api.jwt signed", |b| {
        b.iter(|| fx.page_request())
    });
    c.bench_function("wallet request object: direct_post.jwt signed", |b| {
        b.iter(|| fx.request_object())
    });
    c.bench_function(
        "wallet answer: JWE opened, SD-JWT VC verified, compared",
        |b| b.iter(|| fx.sd_jwt_answer()),
    );
    c.bench_function("wallet answer: mdoc::verify (dc_api)", |b| {
        b.iter(|| fx.mdoc_answer())
    });
    let identity = presented(&fx, serde_json::json!({}));
    let (data, claims) = payment_claims();
    let paying = presented(&fx, claims);
    assert!(presentation_answer(&fx, &identity, None));
    assert!(presentation_answer(&fx, &paying, Some(&data)));
    c.bench_function("wallet presentation, identity: verified, compared", |b| {
        b.iter(|| presentation_answer(&fx, black_box(&identity), None))
    });
    c.bench_function(
        "wallet presentation, payment: verified, transaction_data checked",
        |b| b.iter(|| presentation_answer(&fx, black_box(&paying), Some(&data))),
    );
    let one = listed(&fx, 1);
    let thousand = listed(&fx, 1000);
    assert!(presentation_trusting(&fx, &one, &identity));
    assert!(presentation_trusting(&fx, &thousand, &identity));
    c.bench_function(
        "wallet presentation, identity: issuer in a trusted list of 1 service",
        |b| b.iter(|| presentation_trusting(&fx, &one, black_box(&identity))),
    );
    c.bench_function(
        "wallet presentation, identity: issuer in a trusted list of 1,000 services",
        |b| b.iter(|| presentation_trusting(&fx, &thousand, black_box(&identity))),
    );
}

/// `--once`: each path run once, for `valgrind --tool=callgrind` (its
/// instructions per path are the `Fixture` functions' inclusive counts);
/// otherwise criterion.
fn main() {
    if std::env::args().any(|a| a == "--once") {
        let fx = Fixture::new();
        let pepper = Pepper::new("bench-pepper-0123456789abcdef");
        let cid = Uuid::now_v7();
        let hash = otp_start(&pepper, cid);
        black_box(otp::verify(&pepper, cid, "000000", &hash));
        black_box(fx.page_request());
        black_box(fx.request_object());
        assert!(fx.sd_jwt_answer() && fx.mdoc_answer());
        let identity = presented(&fx, serde_json::json!({}));
        let (data, claims) = payment_claims();
        let paying = presented(&fx, claims);
        assert!(presentation_answer(&fx, &identity, None));
        assert!(presentation_answer(&fx, &paying, Some(&data)));
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    wallet(&mut c);
    c.final_summary();
}
