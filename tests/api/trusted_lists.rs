//! Trusted lists (docs/wallet.md#trusted-lists), end to end: the lists are
//! built and signed here (ETSI TS 119 602's JSON binding, a compact JWS by
//! an operator certificate made by rcgen under a test CA, ES256 by p256),
//! served by a local HTTP server, and name the fixtures' issuer root as a
//! PID issuance service; the gateway's credential names the list and no
//! `trusted_issuers` of its own. Each bad list is never trusted (its
//! presentation waits, 502, nothing counted) and counted in its metric;
//! a list that goes bad keeps its last usable copy.
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use chatgate::time::Timestamp;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::{json, Value};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::wallet::{
    access, ada, answer_for, bound, failures, fetch_request, fixtures, interaction, present, read,
    respond, start, Access,
};

pub(crate) const PID_ISSUANCE: &str = "http://uri.etsi.org/19602/SvcType/PID/Issuance";
pub(crate) const PID_LIST: &str = "http://uri.etsi.org/19602/LoTEType/EUPIDProvidersList";

/// The scheme operator: its CA (pinned in `signers`), and the certificate
/// under it whose key signs the lists.
pub(crate) struct Operator {
    pub(crate) ca_pem: String,
    pub(crate) signer_der: Vec<u8>,
    pub(crate) key: p256::ecdsa::SigningKey,
}

pub(crate) fn operator(name: &str) -> Operator {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} Scheme CA"));
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} List Signer"));
    let signer = params.signed_by(&key, &ca, &ca_key).unwrap();
    Operator {
        ca_pem: ca.pem(),
        signer_der: signer.der().to_vec(),
        key: p256::ecdsa::SigningKey::from_pkcs8_der(&key.serialize_der()).unwrap(),
    }
}

/// The DER of the fixtures' trusted issuer root.
pub(crate) fn issuer_root_der() -> Vec<u8> {
    let pem = fixtures()["trusted"][0].as_str().unwrap().to_string();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(body).unwrap()
}

/// A PID providers list (JSON binding) of sequence `seq`, issued an hour
/// before `now`, next updated at `next_update`, naming `certs` (base64
/// DER, as `val`) as one PID issuance service.
pub(crate) fn lote(seq: i64, now: i64, next_update: i64, certs: &[String]) -> Value {
    lote_of(
        (PID_LIST, PID_ISSUANCE),
        seq,
        (now - 3600, next_update),
        certs,
    )
}

/// A list (JSON binding) of type `list` and sequence `seq`, issued at
/// `issued`, next updated at `next_update`, naming `certs` (base64 DER, as
/// `val`) as one service of type `service`.
pub(crate) fn lote_of(
    (list, service): (&str, &str),
    seq: i64,
    (issued, next_update): (i64, i64),
    certs: &[String],
) -> Value {
    let time = |t: i64| Timestamp::from_unix_seconds(t).to_rfc3339();
    let name = json!([{"lang": "en", "value": "Example"}]);
    let address = json!({
        "TEPostalAddress": [{"lang": "en", "StreetAddress": "1 Rue", "Country": "EU"}],
        "TEElectronicAddress": [{"lang": "en", "uriValue": "mailto:ops@example.eu"}],
    });
    json!({"LoTE": {
        "ListAndSchemeInformation": {
            "LoTEVersionIdentifier": 1,
            "LoTESequenceNumber": seq,
            "LoTEType": list,
            "SchemeOperatorName": name,
            "SchemeTerritory": "EU",
            "ListIssueDateTime": time(issued),
            "NextUpdate": time(next_update),
        },
        "TrustedEntitiesList": [{
            "TrustedEntityInformation": {
                "TEName": name, "TEAddress": address,
                "TEInformationURI": [{"lang": "en", "uriValue": "https://pid.example.eu"}],
            },
            "TrustedEntityServices": [{"ServiceInformation": {
                "ServiceName": name,
                "ServiceTypeIdentifier": service,
                "ServiceDigitalIdentity": {
                    "X509Certificates": certs.iter().map(|c| json!({"val": c})).collect::<Vec<_>>(),
                },
            }}],
        }],
    }})
}

/// `payload` signed as a compact JWS by `op` with `header` (its `x5c`
/// added when absent).
pub(crate) fn signed(op: &Operator, mut header: Value, payload: &Value) -> String {
    if header.get("x5c").is_none() {
        header["x5c"] = json!([B64.encode(&op.signer_der)]);
    }
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(payload.to_string())
    );
    let sig: p256::ecdsa::Signature = op.key.sign(input.as_bytes());
    format!("{input}.{}", B64URL.encode(sig.to_bytes()))
}

pub(crate) fn es256() -> Value {
    json!({"alg": "ES256", "typ": "jose"})
}

pub(crate) fn served(body: impl Into<Vec<u8>>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into(), "application/jwt")
}

/// acme with a `[wallet]` whose `pid` credential trusts the list `list`
/// at `url` only, pinned to `op`'s CA.
fn setup(a: &Access, op: &Operator, list: &str, url: &str) -> Setup {
    Setup {
        team_extra: format!(
            "[wallet]\nsigning_key = '''\n{}'''\ncertificate_chain = '''\n{}'''\n\
             [wallet.trusted_lists.{list}]\nurl = \"{url}\"\ntype = \"pid\"\n\
             signers = ['''\n{}''']\n\
             [[wallet.credentials]]\nid = \"pid\"\nformat = \"dc+sd-jwt\"\n\
             vct = [\"urn:eudi:pid:1\"]\nclaims = [\"given_name\", \"family_name\", \"birthdate\"]\n\
             trusted_lists = [\"{list}\"]\n",
            a.key_pem, a.chain_pem, op.ca_pem
        ),
        ..Setup::default()
    }
}

/// acme with one trusted list (at a loopback port nothing answers), so
/// that the trusted-list families have series: what `metrics::` tests of
/// every family spawn.
pub(crate) fn with_a_list() -> Setup {
    let op = operator("Metrics");
    setup(&access(), &op, "metrics", "http://127.0.0.1:9/lists/pid")
}

pub(crate) const METRICS_TOKEN: &str = "lists-metrics-token-0123456789";

/// The value `/metrics` serves for `series` (its name and labels), read
/// with the metrics token.
pub(crate) async fn metric(app: &TestApp, series: &str) -> Option<f64> {
    let res = app
        .request(reqwest::Method::GET, "/metrics", Some(METRICS_TOKEN))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    let prefix = format!("{series} ");
    let line = text.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
    line.map(|v| v.trim().parse().unwrap())
}

/// A gateway trusting `list` at `server`'s `/lists/pid`, its clock at the
/// fixtures' `now` once its fetch at start (at the wall clock's time) is
/// done.
pub(crate) async fn spawn_lists(
    backend: Backend,
    op: &Operator,
    list: &str,
    server: &MockServer,
) -> Option<(TestApp, Access)> {
    let a = access();
    let url = format!("{}/lists/pid", server.uri());
    let setup = Setup {
        // The team-labelled series are served to the token's holder only.
        server: format!("metrics_token = \"{METRICS_TOKEN}\""),
        ..setup(&a, op, list, &url)
    };
    let app = spawn_with(backend, setup).await?;
    for _ in 0..500 {
        let mut asked = 0.0;
        for result in [
            "ok",
            "unreachable",
            "bad_signature",
            "bad_list",
            "expired",
            "rollback",
        ] {
            asked += fetches(&app, list, result).await;
        }
        if asked >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.clock.set(Timestamp::from_unix_seconds(
        fixtures()["now"].as_i64().unwrap(),
    ));
    Some((app, a))
}

/// A wallet challenge for Ada on a new interaction of `customer`,
/// answered with the fixtures' ES256 credential at the gateway's time:
/// the answer, the interaction's and the challenge's ids.
pub(crate) async fn presented(
    app: &TestApp,
    a: &Access,
    customer: &str,
) -> (reqwest::Response, String, String) {
    let now = app.now().unix_seconds();
    let id = interaction(app, customer).await;
    let (cid, link) = start(app, &id, ada()).await;
    let asked = fetch_request(app, a, &link).await;
    let res = respond(
        app,
        &answer_for(&asked, &present("es256", &asked, None, now)),
    )
    .await;
    (res, id, cid)
}

pub(crate) async fn fetches(app: &TestApp, list: &str, result: &str) -> f64 {
    let series = format!(
        "chatgate_trusted_list_fetches_total{{team=\"acme\",list=\"{list}\",result=\"{result}\"}}"
    );
    metric(app, &series).await.unwrap_or(0.0)
}

/// Waits (up to 30 s of real time) until `list` was fetched once more
/// with `result` than `before`, and no more.
pub(crate) async fn fetched(app: &TestApp, list: &str, result: &str, before: f64) {
    for _ in 0..600 {
        if fetches(app, list, result).await > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        fetches(app, list, result).await - before,
        1.0,
        "{list}: {result}"
    );
}

pub(crate) fn list_name(base: &str, backend: Backend) -> String {
    format!(
        "{base}_{}",
        if backend == Backend::Memory { "m" } else { "r" }
    )
}

/// docs/wallet.md#trusted-lists: an issuer the list names is trusted, its
/// Subject Key Identifier offered in the request; the list is fetched
/// once per `refresh`, not once per presentation.
async fn a_listed_issuer_is_trusted(backend: Backend) {
    let server = MockServer::start().await;
    let op = operator("Ok");
    let list = list_name("listed", backend);
    let now = fixtures()["now"].as_i64().unwrap();
    let root = B64.encode(issuer_root_der());
    let body = signed(&op, es256(), &lote(3, now, now + 86_400, &[root]));
    Mock::given(path("/lists/pid"))
        .respond_with(served(body))
        .mount(&server)
        .await;
    let Some((app, a)) = spawn_lists(backend, &op, &list, &server).await else {
        return;
    };
    let before = fetches(&app, &list, "ok").await;
    for _ in 0..2 {
        let (res, id, cid) = presented(&app, &a, &format!("cust-{list}")).await;
        bound(&app, res, &id, &cid).await;
        assert_eq!(app.get(&id).await["method"], "wallet");
    }
    // Kept for its refresh: asked once for both presentations.
    assert_eq!(fetches(&app, &list, "ok").await - before, 1.0);
    // The listed issuer's Subject Key Identifier is offered to wallets.
    let id = interaction(&app, &format!("cust-{list}-aki")).await;
    let (_, link) = start(&app, &id, ada()).await;
    let asked = fetch_request(&app, &a, &link).await;
    let aki = B64URL.encode(hex::decode("3C6643471C0C3C0797A57BBEC68793CECD76FA10").unwrap());
    assert_eq!(
        asked["dcql_query"]["credentials"][0]["trusted_authorities"],
        json!([{"type": "aki", "values": [aki]}])
    );
    let usable = format!("chatgate_trusted_list_usable{{team=\"acme\",list=\"{list}\"}}");
    assert_eq!(metric(&app, &usable).await, Some(1.0));
    let left =
        format!("chatgate_trusted_list_next_update_seconds{{team=\"acme\",list=\"{list}\"}}");
    let left = metric(&app, &left).await.unwrap();
    assert!(left > 0.0 && left <= 86_400.0, "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_issuer_is_trusted_memory() {
    a_listed_issuer_is_trusted(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_issuer_is_trusted_redis() {
    a_listed_issuer_is_trusted(Backend::Redis).await;
}

/// Each bad list, served in turn: never trusted (the presentation that
/// needs it is 502, the challenge stays open, no failure counted), and
/// counted by its `result`.
async fn each_bad_list_is_never_trusted(backend: Backend) {
    let server = MockServer::start().await;
    let op = operator("Bad");
    let other = operator("Other");
    let list = list_name("bad", backend);
    let now = fixtures()["now"].as_i64().unwrap();
    let root = B64.encode(issuer_root_der());
    let good = lote(3, now, now + 86_400, std::slice::from_ref(&root));
    let good_jws = signed(&op, es256(), &good);
    let (h, p, s) = {
        let mut parts = good_jws.split('.');
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    };
    let mut altered = good.clone();
    altered["LoTE"]["ListAndSchemeInformation"]["LoTESequenceNumber"] = json!(4);
    let altered = format!("{h}.{}.{s}", B64URL.encode(altered.to_string()));
    let mut wallet_type = good.clone();
    wallet_type["LoTE"]["ListAndSchemeInformation"]["LoTEType"] =
        json!("http://uri.etsi.org/19602/LoTEType/EUWalletProvidersList");
    let mut unknown = good.clone();
    unknown["LoTE"]["ListAndSchemeInformation"]["Unknown"] = json!(1);
    let not_base64 = lote(3, now, now + 86_400, &["not base64 at all!".to_string()]);
    let hs256 = {
        let header = json!({"alg": "HS256", "x5c": [B64.encode(&op.signer_der)]});
        let input = format!("{}.{p}", B64URL.encode(header.to_string()));
        format!("{input}.{}", B64URL.encode([7u8; 32]))
    };
    let none = format!("{}.{p}.", B64URL.encode(json!({"alg": "none"}).to_string()));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "bad_signature",
            format!("{h}.{p}.{}", B64URL.encode([1u8; 64])).into(),
        ),
        ("bad_signature", altered.into()),
        ("bad_signature", hs256.into()),
        ("bad_signature", none.into()),
        // Signed under a CA the team does not pin.
        ("bad_signature", signed(&other, es256(), &good).into()),
        ("bad_list", signed(&op, es256(), &wallet_type).into()),
        ("bad_list", signed(&op, es256(), &unknown).into()),
        ("bad_list", signed(&op, es256(), &not_base64).into()),
        // The JSON binding unsigned: not a JWS.
        ("bad_list", good.to_string().into()),
        ("bad_list", vec![b'a'; 1024 * 1024 + 1]),
        (
            "expired",
            signed(
                &op,
                es256(),
                &lote(3, now, now - 1, std::slice::from_ref(&root)),
            )
            .into(),
        ),
    ];
    let Some((app, a)) = spawn_lists(backend, &op, &list, &server).await else {
        return;
    };
    let id = interaction(&app, &format!("cust-{list}")).await;
    let (cid, link) = start(&app, &id, ada()).await;
    let asked = fetch_request(&app, &a, &link).await;
    let jwe = answer_for(&asked, &present("es256", &asked, None, now));
    for (n, (result, body)) in cases.into_iter().enumerate() {
        // Past the hold of the last failed fetch: asked again.
        app.advance(5);
        server.reset().await;
        Mock::given(path("/lists/pid"))
            .respond_with(served(body))
            .expect(1..)
            .mount(&server)
            .await;
        let before = fetches(&app, &list, result).await;
        let res = respond(&app, &jwe).await;
        assert_problem(res, 502, "channel_error").await;
        assert_eq!(
            fetches(&app, &list, result).await - before,
            1.0,
            "case {n}: {result}"
        );
        assert_eq!(
            read(&app, &id, &cid, &app.keys.bot).await["state"],
            "open",
            "case {n}"
        );
        assert_eq!(failures(&app, &format!("cust-{list}")).await, 0, "case {n}");
        let usable = format!("chatgate_trusted_list_usable{{team=\"acme\",list=\"{list}\"}}");
        assert_eq!(metric(&app, &usable).await, Some(0.0), "case {n}");
    }
    // The list good again: the same answer is verified.
    app.advance(5);
    server.reset().await;
    Mock::given(path("/lists/pid"))
        .respond_with(served(good_jws))
        .mount(&server)
        .await;
    bound(&app, respond(&app, &jwe).await, &id, &cid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_list_is_never_trusted_memory() {
    each_bad_list_is_never_trusted(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_list_is_never_trusted_redis() {
    each_bad_list_is_never_trusted(Backend::Redis).await;
}

/// A refresh that finds a lower sequence number, or a list gone, keeps
/// the last usable copy; a new copy that drops the issuer's service stops
/// trusting it (`untrusted_issuer`), and the change is in the audit trail.
async fn a_list_keeps_its_last_usable_copy(backend: Backend) {
    let server = MockServer::start().await;
    let op = operator("Keep");
    let list = list_name("keep", backend);
    let now = fixtures()["now"].as_i64().unwrap();
    let root = B64.encode(issuer_root_der());
    let serve = |body: String| {
        let server = &server;
        async move {
            server.reset().await;
            Mock::given(path("/lists/pid"))
                .respond_with(served(body))
                .mount(server)
                .await;
        }
    };
    serve(signed(
        &op,
        es256(),
        &lote(5, now, now + 30 * 86_400, std::slice::from_ref(&root)),
    ))
    .await;
    let Some((app, a)) = spawn_lists(backend, &op, &list, &server).await else {
        return;
    };
    let customer = format!("cust-{list}");
    let (res, id, cid) = presented(&app, &a, &customer).await;
    bound(&app, res, &id, &cid).await;
    // A lower sequence number, past the refresh: refused, the copy kept.
    serve(signed(
        &op,
        es256(),
        &lote(4, now, now + 30 * 86_400, std::slice::from_ref(&root)),
    ))
    .await;
    // The timer fetches it once its refresh has passed (docs/decisions/0891-a-presentation-holding-a-usable-list-never-waits-for-its-fetch.md).
    let before = fetches(&app, &list, "rollback").await;
    app.advance(3600);
    fetched(&app, &list, "rollback", before).await;
    let (res, id, cid) = presented(&app, &a, &customer).await;
    bound(&app, res, &id, &cid).await;
    // Unreachable: the copy kept still.
    server.reset().await;
    let before = fetches(&app, &list, "unreachable").await;
    app.advance(3600);
    fetched(&app, &list, "unreachable", before).await;
    let (res, id, cid) = presented(&app, &a, &customer).await;
    bound(&app, res, &id, &cid).await;
    // A new copy without the issuer: no longer trusted.
    let elsewhere = B64.encode(
        rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .der(),
    );
    serve(signed(
        &op,
        es256(),
        &lote(6, now, now + 30 * 86_400, &[elsewhere]),
    ))
    .await;
    let before = fetches(&app, &list, "ok").await;
    app.advance(3600);
    fetched(&app, &list, "ok", before).await;
    let (res, id, cid) = presented(&app, &a, &customer).await;
    assert_eq!(res.status(), 200);
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(c["wallet"]["result"], "untrusted_issuer");
    let trail = crate::actors::trail(&app).await;
    let changed = trail
        .iter()
        .find(|e| e["action"] == "wallet.trusted_list.changed")
        .expect("the change in the audit trail");
    assert_eq!(changed["detail"]["list"], list.as_str());
    assert_eq!(changed["detail"]["sequence"], 6);
    assert_eq!(
        changed["detail"]["services_added"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        changed["detail"]["services_removed"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(changed["actor"]["type"], "system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_keeps_its_last_usable_copy_memory() {
    a_list_keeps_its_last_usable_copy(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_keeps_its_last_usable_copy_redis() {
    a_list_keeps_its_last_usable_copy(Backend::Redis).await;
}

/// A configuration naming an unknown list, an `http://` list off
/// loopback, no `signers`, a bad `type`, `refresh` or `max_stale` is
/// refused (at start and at a reload alike), naming the key.
#[test]
fn a_bad_trusted_list_is_refused_naming_the_key() {
    let a = access();
    let op = operator("Conf");
    let ok = format!(
        "url = \"https://lists.example.eu/pid\"\ntype = \"pid\"\nsigners = ['''\n{}''']\n",
        op.ca_pem
    );
    let no_signers = "url = \"https://lists.example.eu/pid\"\ntype = \"pid\"\n".to_string();
    let cases = [
        (ok.clone(), "nope", "credentials[0].trusted_lists[0]"),
        (
            ok.replace("https://lists.example.eu", "http://lists.example.eu"),
            "pid",
            "trusted_lists.pid.url",
        ),
        (no_signers, "pid", "trusted_lists.pid.signers"),
        (
            ok.replace("type = \"pid\"", "type = \"pids\""),
            "pid",
            "trusted_lists.pid.type",
        ),
        (
            format!("{ok}refresh = \"1m\"\n"),
            "pid",
            "trusted_lists.pid.refresh",
        ),
        (
            format!("{ok}max_stale = \"8d\"\n"),
            "pid",
            "trusted_lists.pid.max_stale",
        ),
        (ok.clone(), "pid", ""),
        (
            ok.replace("https://lists.example.eu", "http://127.0.0.1:9"),
            "pid",
            "",
        ),
    ];
    for (list, named, key) in cases {
        let mut table: toml::Table = toml::from_str(&format!(
            "[trusted_lists.pid]\n{list}\
             [[credentials]]\nid = \"pid\"\nformat = \"dc+sd-jwt\"\n\
             vct = [\"urn:eudi:pid:1\"]\nclaims = [\"family_name\"]\ntrusted_lists = [\"{named}\"]\n"
        ))
        .unwrap();
        table.insert("signing_key".into(), a.key_pem.clone().into());
        table.insert("certificate_chain".into(), a.chain_pem.clone().into());
        let read = chatgate::config::WalletConfig::from_table(table, "https://gateway.test");
        match (key, read) {
            ("", Ok(w)) => assert_eq!(w.trusted_lists.len(), 1),
            ("", Err(e)) => panic!("refused: {e}"),
            (key, Ok(_)) => panic!("{key}: accepted"),
            (key, Err(e)) => {
                let e = e.to_string();
                assert!(e.contains(&format!("wallet.{key}")), "{key}: {e}");
            }
        }
    }
}

/// A presentation that finds its list due while a usable copy is kept
/// answers with that copy at once: the list is fetched in the background
/// by the timer, however slow its server
/// (docs/decisions/0891-a-presentation-holding-a-usable-list-never-waits-for-its-fetch.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presentation_does_not_wait_for_a_due_list_s_fetch() {
    let server = MockServer::start().await;
    let op = operator("Slow");
    let list = list_name("slow", Backend::Memory);
    let now = fixtures()["now"].as_i64().unwrap();
    let root = B64.encode(issuer_root_der());
    let body = signed(&op, es256(), &lote(3, now, now + 30 * 86_400, &[root]));
    Mock::given(path("/lists/pid"))
        .respond_with(served(body.clone()))
        .mount(&server)
        .await;
    let Some((app, a)) = spawn_lists(Backend::Memory, &op, &list, &server).await else {
        return;
    };
    let customer = format!("cust-{list}");
    // The first presentation at the fixtures' time reads a usable copy.
    let (res, id, cid) = presented(&app, &a, &customer).await;
    bound(&app, res, &id, &cid).await;
    // Its server slows down to 8 s an answer (the fetch's limit is 10 s),
    // and its refresh passes.
    server.reset().await;
    let slow = served(body).set_delay(std::time::Duration::from_secs(8));
    Mock::given(path("/lists/pid"))
        .respond_with(slow)
        .mount(&server)
        .await;
    let before = fetches(&app, &list, "ok").await;
    app.advance(3600);
    let id = interaction(&app, &customer).await;
    let (cid, link) = start(&app, &id, ada()).await;
    let asked = fetch_request(&app, &a, &link).await;
    let at = app.now().unix_seconds();
    let answer = answer_for(&asked, &present("es256", &asked, None, at));
    let started = std::time::Instant::now();
    let res = respond(&app, &answer).await;
    let took = started.elapsed();
    bound(&app, res, &id, &cid).await;
    assert!(
        took < std::time::Duration::from_secs(4),
        "the presentation waited {took:?} for the list"
    );
    // The timer's fetch lands in the background.
    fetched(&app, &list, "ok", before).await;
}
