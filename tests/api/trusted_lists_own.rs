//! Trusted lists beyond a presentation's chain (docs/wallet.md#trusted-lists),
//! end to end with the lists `trusted_lists.rs` builds and signs:
//! `verify_own`, the bank's own access and registration certificates
//! looked for on its `wrpac` and `wrprc` lists at start and at each reload
//! (docs/wallet.md#the-banks-own-certificates); a list of 5 MiB and one
//! issued ahead, never trusted and counted; a reload whose trusted list is
//! refused, the running set kept.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chatgate::app::Reloaded;
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer};

use crate::helpers::*;
use crate::trusted_lists::{
    es256, fetches, issuer_root_der, list_name, lote, lote_of, metric, operator, presented, served,
    signed, spawn_lists, Operator, PID_ISSUANCE, PID_LIST,
};
use crate::wallet::{
    access, ada, answer_for, bound, failures, fetch_request, fixtures, interaction, present, read,
    respond, start, wallet_setup, Access,
};

pub(crate) const WRPAC: (&str, &str) = (
    "http://uri.etsi.org/19602/LoTEType/EUWRPACProvidersList",
    "http://uri.etsi.org/19602/SvcType/WRPAC/Issuance",
);
pub(crate) const WRPRC: (&str, &str) = (
    "http://uri.etsi.org/19602/LoTEType/EUWRPRCProvidersList",
    "http://uri.etsi.org/19602/SvcType/WRPRC/Issuance",
);

/// The wall clock, in Unix seconds: a gateway starts at it.
pub(crate) fn wall_now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// The base64 DER of each certificate of `pem`, in order.
pub(crate) fn ders_of(pem: &str) -> Vec<String> {
    pem.split("-----END CERTIFICATE-----")
        .map(|part| {
            part.lines()
                .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
                .collect::<String>()
        })
        .filter(|body| !body.is_empty())
        .collect()
}

/// The base64 DER of a self-signed certificate no list of the bank's holds.
pub(crate) fn elsewhere() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    B64.encode(cert.der())
}

/// Serves, in place of what `server` served, a `wrpac` list at
/// `/lists/wrpac` and a `wrprc` list at `/lists/wrprc`, each signed by
/// `op`: (its sequence, next update, certificates).
pub(crate) async fn serve_own(
    server: &MockServer,
    op: &Operator,
    now: i64,
    ac: (i64, i64, &[String]),
    rc: (i64, i64, &[String]),
) {
    server.reset().await;
    for (at, kind, (seq, next, certs)) in [("/lists/wrpac", WRPAC, ac), ("/lists/wrprc", WRPRC, rc)]
    {
        let body = signed(op, es256(), &lote_of(kind, seq, (now - 3600, next), certs));
        Mock::given(path(at))
            .respond_with(served(body))
            .mount(server)
            .await;
    }
}

/// acme's `[wallet]` with `verify_own = true`, its registration
/// certificate `rc`, and its `wrpac` and `wrprc` lists at `server`, pinned
/// to `op`'s CA.
pub(crate) fn own_setup(a: &Access, op: &Operator, rc: &str, server: &str) -> Setup {
    own_setup_named(a, op, rc, server, ("own_ac", "own_rc"))
}

/// [`own_setup`], its `wrpac` and `wrprc` lists named `names`.
pub(crate) fn own_setup_named(
    a: &Access,
    op: &Operator,
    rc: &str,
    server: &str,
    names: (&str, &str),
) -> Setup {
    let list = |name: &str, kind: &str| {
        format!(
            "[wallet.trusted_lists.{name}]\nurl = \"{server}/lists/{kind}\"\ntype = \"{kind}\"\n\
             signers = ['''\n{}''']\n",
            op.ca_pem
        )
    };
    let extra = format!(
        "registration_certificate = \"{rc}\"\nverify_own = true\n{}{}",
        list(names.0, "wrpac"),
        list(names.1, "wrprc")
    );
    wallet_setup(a, &extra)
}

/// Reloads and expects the set refused, naming acme's file and `key`: the
/// problem.
pub(crate) async fn refused(app: &TestApp, key: &str) -> String {
    match app.reloader.reload().await {
        Reloaded::Refused(e) => {
            assert!(e.file.ends_with("acme.toml"), "{e}");
            assert_eq!(e.key, key, "{e}");
            e.problem
        }
        Reloaded::Applied { .. } => panic!("applied: {key} should have been refused"),
    }
}

/// docs/wallet.md#the-banks-own-certificates: the access certificate's CA
/// on the `wrpac` list and the registration certificate's provider on the
/// `wrprc` list, the gateway starts; either dropped from a usable copy,
/// a reload is refused naming the certificate's key (and a start too); a
/// list with no usable copy is no refusal.
async fn the_banks_own_certificates_are_on_its_lists(backend: Backend) {
    let server = MockServer::start().await;
    let op = operator("Own");
    let provider = operator("Registrar");
    let a = access();
    let now = wall_now();
    let access_ca = ders_of(&a.chain_pem).pop().unwrap();
    let registrar = ders_of(&provider.ca_pem).pop().unwrap();
    let rc = signed(
        &provider,
        json!({"alg": "ES256", "typ": "rc-wrp+jwt"}),
        &json!({"sub": "acme", "iat": now}),
    );
    let later = now + 30 * 86_400;
    let (ac, rcs) = ([access_ca.clone()], [registrar.clone()]);
    let other = [elsewhere()];
    serve_own(&server, &op, now, (1, later, &ac), (1, later, &rcs)).await;
    let Some(app) = spawn_with(backend, own_setup(&a, &op, &rc, &server.uri())).await else {
        return;
    };
    // Both held: a reload applies.
    crate::reload::reload_applies(&app).await;
    // The access CA dropped from the wrpac list: refused, and a start too.
    serve_own(&server, &op, now, (2, later, &other), (1, later, &rcs)).await;
    let problem = refused(&app, "wallet.certificate_chain").await;
    assert!(problem.contains("own_ac"), "{problem}");
    let config = chatgate::config::load(&app.dir.join("config/chatgate.toml")).unwrap();
    let Err(e) = chatgate::app::App::build(config, chatgate::app::Options::default()).await else {
        panic!("started with its access certificate on no usable wrpac list");
    };
    assert!(e.to_string().contains("wallet.certificate_chain"), "{e}");
    // The running set stays in force.
    assert!(!app.new_interaction().await.is_empty());
    // The registrar dropped from the wrprc list (a copy good for ten
    // minutes): refused, naming the registration certificate.
    serve_own(&server, &op, now, (3, later, &ac), (2, now + 600, &other)).await;
    let problem = refused(&app, "wallet.registration_certificate").await;
    assert!(problem.contains("own_rc"), "{problem}");
    // Both lists gone, and the copies kept since the start (the refused
    // reloads kept nothing they read) past their NextUpdate: nothing to
    // check against, a warning, not a refusal.
    server.reset().await;
    app.advance(31 * 86_400);
    crate::reload::reload_applies(&app).await;
    // The registrar back: applies.
    let now = app.now().unix_seconds();
    let later = now + 30 * 86_400;
    serve_own(&server, &op, now, (4, later, &ac), (3, later, &rcs)).await;
    crate::reload::reload_applies(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banks_own_certificates_are_on_its_lists_memory() {
    the_banks_own_certificates_are_on_its_lists(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banks_own_certificates_are_on_its_lists_redis() {
    the_banks_own_certificates_are_on_its_lists(Backend::Redis).await;
}

/// `verify_own` without a `wrpac` list, or with a registration
/// certificate and no `wrprc` list, or with one that carries no `x5c`,
/// is refused naming the key.
#[test]
fn verify_own_needs_its_lists_naming_the_key() {
    let a = access();
    let op = operator("Conf");
    let provider = operator("Registrar");
    let list = |name: &str, kind: &str| {
        format!(
            "[trusted_lists.{name}]\nurl = \"https://lists.example.eu/{kind}\"\ntype = \"{kind}\"\n\
             signers = ['''\n{}''']\n",
            op.ca_pem
        )
    };
    let rc = signed(
        &provider,
        json!({"alg": "ES256", "typ": "rc-wrp+jwt"}),
        &json!({"sub": "acme"}),
    );
    let bare_rc = {
        let mut parts = rc.split('.');
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"alg": "ES256", "typ": "rc-wrp+jwt"}).to_string());
        parts.next();
        format!(
            "{header}.{}.{}",
            parts.next().unwrap(),
            parts.next().unwrap()
        )
    };
    let both = format!("{}{}", list("ac", "wrpac"), list("rc", "wrprc"));
    let cases = [
        (String::new(), list("rc", "wrprc"), "verify_own"),
        (
            format!("registration_certificate = \"{rc}\"\n"),
            list("ac", "wrpac"),
            "verify_own",
        ),
        (
            format!("registration_certificate = \"{bare_rc}\"\n"),
            both.clone(),
            "registration_certificate",
        ),
        (String::new(), list("ac", "wrpac"), ""),
        (format!("registration_certificate = \"{rc}\"\n"), both, ""),
    ];
    for (top, lists, key) in cases {
        let mut table: toml::Table = toml::from_str(&format!(
            "{top}verify_own = true\ntrusted_issuers = ['''\n{}''']\n{lists}\
             [[credentials]]\nid = \"pid\"\nformat = \"dc+sd-jwt\"\n\
             vct = [\"urn:eudi:pid:1\"]\nclaims = [\"family_name\"]\n",
            fixtures()["trusted"][0].as_str().unwrap()
        ))
        .unwrap();
        table.insert("signing_key".into(), a.key_pem.clone().into());
        table.insert("certificate_chain".into(), a.chain_pem.clone().into());
        let read = chatgate::config::WalletConfig::from_table(table, "https://gateway.test");
        match (key, read) {
            ("", Ok(w)) => assert!(w.verify_own.is_some()),
            ("", Err(e)) => panic!("refused: {e}"),
            (key, Ok(_)) => panic!("{key}: accepted"),
            (key, Err(e)) => {
                let e = e.to_string();
                assert!(e.contains(&format!("wallet.{key}:")), "{key}: {e}");
            }
        }
    }
}

/// `body` served at `/lists/pid` in place of what `server` served, the
/// answer `jwe` of challenge `cid` of `id` sent past the last failed
/// fetch's hold: 502, the challenge open, nothing counted, the fetch
/// counted once as `result`, the list not usable.
async fn never_trusted(
    (app, server): (&TestApp, &MockServer),
    (list, customer): (&str, &str),
    (id, cid, jwe): (&str, &str, &str),
    (body, result): (String, &str),
) {
    app.advance(5);
    server.reset().await;
    Mock::given(path("/lists/pid"))
        .respond_with(served(body))
        .expect(1..)
        .mount(server)
        .await;
    let before = fetches(app, list, result).await;
    assert_problem(respond(app, jwe).await, 502, "channel_error").await;
    assert_eq!(fetches(app, list, result).await - before, 1.0, "{result}");
    assert_eq!(read(app, id, cid, &app.keys.bot).await["state"], "open");
    assert_eq!(failures(app, customer).await, 0);
    let usable = format!("chatgate_trusted_list_usable{{team=\"acme\",list=\"{list}\"}}");
    assert_eq!(metric(app, &usable).await, Some(0.0));
}

/// A challenge for Ada of a new interaction of `customer`, and the answer
/// of the fixtures' ES256 credential: (interaction, challenge, answer).
async fn an_answer(app: &TestApp, a: &Access, customer: &str) -> (String, String, String) {
    let now = app.now().unix_seconds();
    let id = interaction(app, customer).await;
    let (cid, link) = start(app, &id, ada()).await;
    let asked = fetch_request(app, a, &link).await;
    let jwe = answer_for(&asked, &present("es256", &asked, None, now));
    (id, cid, jwe)
}

/// A list of 5 MiB, signed and naming the issuer (its services repeated
/// to that length), is never trusted: `bad_list`, past the 1 MiB read.
async fn a_five_mib_list_is_never_trusted(backend: Backend) {
    let server = MockServer::start().await;
    let op = operator("Long");
    let list = list_name("long", backend);
    let now = fixtures()["now"].as_i64().unwrap();
    let root = B64.encode(issuer_root_der());
    let copies = 5 * 1024 * 1024 * 3 / 4 / root.len() + 1;
    let body = signed(
        &op,
        es256(),
        &lote(3, now, now + 86_400, &vec![root; copies]),
    );
    assert!(body.len() >= 5 * 1024 * 1024, "{}", body.len());
    let Some((app, a)) = spawn_lists(backend, &op, &list, &server).await else {
        return;
    };
    let customer = format!("cust-{list}");
    let (id, cid, jwe) = an_answer(&app, &a, &customer).await;
    never_trusted(
        (&app, &server),
        (&list, &customer),
        (&id, &cid, &jwe),
        (body, "bad_list"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_mib_list_is_never_trusted_memory() {
    a_five_mib_list_is_never_trusted(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_mib_list_is_never_trusted_redis() {
    a_five_mib_list_is_never_trusted(Backend::Redis).await;
}

/// A list whose `ListIssueDateTime` is more than 60 s ahead is never
/// trusted (`bad_list`); 30 s ahead, within the clocks' leeway, it is.
async fn a_list_issued_ahead_is_never_trusted(backend: Backend) {
    let server = MockServer::start().await;
    let op = operator("Ahead");
    let list = list_name("ahead", backend);
    let now = fixtures()["now"].as_i64().unwrap();
    let root = [B64.encode(issuer_root_der())];
    let issued_at = |issued: i64| {
        let payload = lote_of((PID_LIST, PID_ISSUANCE), 3, (issued, now + 86_400), &root);
        signed(&op, es256(), &payload)
    };
    let Some((app, a)) = spawn_lists(backend, &op, &list, &server).await else {
        return;
    };
    let customer = format!("cust-{list}");
    let (id, cid, jwe) = an_answer(&app, &a, &customer).await;
    // The gateway's clock is `now` + 5 s at the fetch: 120 s ahead of it.
    never_trusted(
        (&app, &server),
        (&list, &customer),
        (&id, &cid, &jwe),
        (issued_at(now + 125), "bad_list"),
    )
    .await;
    app.advance(5);
    server.reset().await;
    Mock::given(path("/lists/pid"))
        .respond_with(served(issued_at(now + 40)))
        .mount(&server)
        .await;
    bound(&app, respond(&app, &jwe).await, &id, &cid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_issued_ahead_is_never_trusted_memory() {
    a_list_issued_ahead_is_never_trusted(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_issued_ahead_is_never_trusted_redis() {
    a_list_issued_ahead_is_never_trusted(Backend::Redis).await;
}

/// A reload naming an unknown list, an `http://` list off loopback, no
/// `signers` or a bad `type` is refused naming the key, and the running
/// set stays in force: its list still trusts the issuer.
async fn a_reload_with_a_bad_trusted_list_is_refused(backend: Backend) {
    let server = MockServer::start().await;
    let op = operator("Reload");
    let list = list_name("reload", backend);
    let now = fixtures()["now"].as_i64().unwrap();
    let root = B64.encode(issuer_root_der());
    let good = signed(&op, es256(), &lote(3, now, now + 86_400, &[root]));
    Mock::given(path("/lists/pid"))
        .respond_with(served(good))
        .mount(&server)
        .await;
    let Some((app, a)) = spawn_lists(backend, &op, &list, &server).await else {
        return;
    };
    let file = app.dir.join("config/teams/acme.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let url = format!("url = \"{}/lists/pid\"", server.uri());
    let signers = format!("signers = ['''\n{}''']\n", op.ca_pem);
    let named = format!("trusted_lists = [\"{list}\"]");
    let at = |k: &str| format!("wallet.trusted_lists.{list}.{k}");
    let cases = [
        (
            named.as_str(),
            "trusted_lists = [\"nope\"]",
            "wallet.credentials[0].trusted_lists[0]".to_string(),
        ),
        (
            url.as_str(),
            "url = \"http://lists.example.eu/pid\"",
            at("url"),
        ),
        (signers.as_str(), "", at("signers")),
        ("type = \"pid\"", "type = \"pids\"", at("type")),
    ];
    for (from, to, key) in cases {
        assert!(text.contains(from), "{from}");
        std::fs::write(&file, text.replace(from, to)).unwrap();
        refused(&app, &key).await;
        let customer = format!("cust-{list}");
        let (res, id, cid) = presented(&app, &a, &customer).await;
        bound(&app, res, &id, &cid).await;
    }
    std::fs::write(&file, &text).unwrap();
    crate::reload::reload_applies(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_bad_trusted_list_is_refused_memory() {
    a_reload_with_a_bad_trusted_list_is_refused(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_bad_trusted_list_is_refused_redis() {
    a_reload_with_a_bad_trusted_list_is_refused(Backend::Redis).await;
}
