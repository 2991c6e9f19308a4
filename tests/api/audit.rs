//! The audit trail (docs/audit.md): one entry per action, chained without
//! a gap across instances, read by auditors and admins only, its head
//! signed; what an entry never holds.
use chatgate::domain::audit::verify_chain;
use chatgate::domain::audit_keys::{new_signing_key_pem, verify_signed, Jwks};
use chatgate::domain::secrets::ApiKeyHash;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::helpers::*;

/// The auditor key a test of this file gives acme: named by the test,
/// so that a second instance of one test knows it too.
pub(crate) fn auditor_key(seed: &str) -> String {
    format!("cg_auditor_{seed}")
}

pub(crate) fn audit_setup(seed: &str, extra: &str) -> Setup {
    let key = auditor_key(seed);
    Setup {
        team_extra: format!(
            "{extra}\n[[api_keys]]\nid = \"acme-auditor\"\nrole = \"auditor\"\nsha256 = \"{}\"\n",
            ApiKeyHash::of_key(&key).to_hex()
        ),
        ..Setup::default()
    }
}

/// Unlocks `cust-{i}` as acme's admin: one audited action, answered 200.
pub(crate) async fn unlock(app: &TestApp, i: impl std::fmt::Display) {
    let res = app
        .post_json(
            &format!("/v1/subjects/cust-{i}/unlock"),
            Some(&app.keys.admin),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
}

/// Every entry of acme's trail, page by page (each read adds its own
/// `audit.read`, answered by the next page).
pub(crate) async fn trail(app: &TestApp, key: &str) -> Vec<Map<String, Value>> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get_json(&format!("/v1/audit?after={after}&limit=1000"), Some(key))
            .await;
        let got = page["entries"].as_array().unwrap().clone();
        let next = page["next"].as_u64().unwrap();
        let full = got.len() == 1000;
        entries.extend(got.into_iter().map(|e| e.as_object().unwrap().clone()));
        after = next;
        if !full {
            return entries;
        }
    }
}

/// The actions of `entries`, but the configuration recorded at start.
fn actions(entries: &[Map<String, Value>]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| *a != "config.changed")
        .collect()
}

/// The entries of `entries` with `action`.
pub(crate) fn of<'a>(
    entries: &'a [Map<String, Value>],
    action: &str,
) -> Vec<&'a Map<String, Value>> {
    entries.iter().filter(|e| e["action"] == action).collect()
}

both_stores!(
    reveal_logout_forget_and_unlock_are_chained_entries,
    setup: audit_setup("actions", "[settings.otp]\nshow_to_agents = true\n"),
    |app: TestApp| async move {
        let auditor = auditor_key("actions");
        let id = app.new_interaction().await;
        let cid = app.agent_challenge(&id).await;
        let res = app
            .request(
                Method::GET,
                &format!("/v1/interactions/{id}/challenges/{cid}/code"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        app.authenticate(&id, "cust-audit").await;
        let res = app
            .post_json(&format!("/v1/interactions/{id}/logout"), Some(&app.keys.agent), &json!({}))
            .await;
        assert_eq!(res.status(), 200);
        let res = app
            .post_json("/v1/subjects/cust-audit/unlock", Some(&app.keys.admin), &json!({}))
            .await;
        assert_eq!(res.status(), 200);

        let entries = trail(&app, &auditor).await;
        assert_eq!(
            actions(&entries),
            ["challenge.code_revealed", "interaction.logged_out", "subject.unlocked"],
            "{entries:#?}"
        );
        let ends = verify_chain(&entries).expect("a valid chain");
        assert_eq!(ends["acme"].0, 4);
        // The configuration in force came first.
        assert_eq!(entries[0]["action"], "config.changed");
        assert_eq!(entries[0]["detail"]["source"], "start");
        assert!(entries[0]["detail"]["previous_digest"].is_null());
        assert_eq!(entries[0]["actor"], json!({"type": "system"}));
        let reveal = &entries[1];
        assert_eq!(reveal["seq"], 2);
        assert_eq!(reveal["team"], "acme");
        assert_eq!(reveal["outcome"], "success");
        assert_eq!(reveal["actor"]["type"], "api_key");
        assert_eq!(reveal["actor"]["api_key_id"], "acme-agent");
        assert_eq!(reveal["actor"]["ip"], "127.0.0.1");
        assert_eq!(reveal["request_id"], request_id.as_str());
        assert_eq!(reveal["target"]["interaction_id"], id.as_str());
        assert_eq!(reveal["target"]["challenge_id"], cid.as_str());
        assert_eq!(entries[2]["detail"]["cause"], "api");
        assert_eq!(entries[3]["actor"]["api_key_id"], "acme-admin");
        assert_eq!(entries[3]["target"]["subject"], "cust-audit");
        // The first read is recorded after the entries it answered.
        let page = app.get_json("/v1/audit?after=4", Some(&auditor)).await;
        let read = &page["entries"][0];
        assert_eq!(read["action"], "audit.read", "{page}");
        assert_eq!(read["seq"], 5);
        assert_eq!(read["actor"]["api_key_id"], "acme-auditor");
        assert_eq!(page["next"], 5);
    }
);

both_stores!(
    only_auditors_and_admins_read_and_a_refusal_is_recorded,
    setup: audit_setup("roles", ""),
    |app: TestApp| async move {
        let auditor = auditor_key("roles");
        // The auditor may do nothing else.
        for (m, path) in [(Method::GET, "/v1/interactions"), (Method::POST, "/v1/interactions")] {
            let res = app.request(m, path, Some(&auditor)).json(&json!({})).send().await.unwrap();
            assert_problem(res, 403, "forbidden").await;
        }
        // An agent may not read the trail.
        let res = app.request(Method::GET, "/v1/audit", Some(&app.keys.agent)).send().await.unwrap();
        assert_problem(res, 403, "forbidden").await;
        let res = app.request(Method::GET, "/v1/audit/head", Some(&app.keys.bot)).send().await.unwrap();
        assert_problem(res, 403, "forbidden").await;
        // No key, or a wrong one: nobody to record.
        let res = app.request(Method::GET, "/v1/audit", None).send().await.unwrap();
        assert_problem(res, 401, "unauthorized").await;
        // Bad paging is 422 and records nothing.
        for q in [
            "limit=0",
            "limit=1001",
            "after=-1",
            "after=9223372036854775808",
            "page=2",
        ] {
            let res = app.request(Method::GET, &format!("/v1/audit?{q}"), Some(&auditor)).send().await.unwrap();
            assert_problem(res, 422, "invalid_request").await;
        }
        let admin = app.get_json("/v1/audit", Some(&app.keys.admin)).await;
        let entries: Vec<Map<String, Value>> = admin["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_object().unwrap().clone())
            .collect();
        assert_eq!(actions(&entries), ["access.denied"; 4], "{admin:#}");
        let all = of(&entries, "access.denied");
        let denied = all[2];
        assert_eq!(denied["outcome"], "denied");
        assert_eq!(denied["actor"]["api_key_id"], "acme-agent");
        assert_eq!(denied["detail"]["reason"], "forbidden");
        assert_eq!(denied["detail"]["route"], "/v1/audit");
        assert_eq!(all[0]["actor"]["api_key_id"], "acme-auditor");
        verify_chain(&entries).unwrap();
    }
);

both_stores!(
    the_head_is_signed_by_the_listed_key,
    setup: Setup {
        system_extra: format!("[audit]\nsigning_key = \"\"\"\n{}\"\"\"\n", new_signing_key_pem().unwrap()),
        ..audit_setup("head", "")
    },
    |app: TestApp| async move {
        let auditor = auditor_key("head");
        // The configuration recorded at start is the first entry.
        let first = app.get_json("/v1/audit/head", Some(&auditor)).await;
        assert_eq!(first["seq"], 1);
        let res = app
            .post_json("/v1/subjects/cust-h/unlock", Some(&app.keys.admin), &json!({}))
            .await;
        assert_eq!(res.status(), 200);
        let head = app.get_json("/v1/audit/head", Some(&auditor)).await;
        // The first head read is entry 2, the unlock entry 3.
        assert_eq!(head["seq"], 3, "{head}");
        assert_eq!(head["team"], "acme");
        let jwks: Jwks = app
            .client
            .get(app.url("/.well-known/chatgate-audit-keys"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks.keys.len(), 1);
        assert_eq!(jwks.keys[0].kty, "OKP");
        assert_eq!(jwks.keys[0].crv, "Ed25519");
        let claims: Value = verify_signed(head["signature"].as_str().unwrap(), &jwks).unwrap();
        assert_eq!(claims["seq"], 3);
        assert_eq!(claims["hash"], head["hash"]);
        assert_eq!(claims["team"], "acme");
        assert!(claims["iat"].is_i64());
        let entries = trail(&app, &auditor).await;
        assert_eq!(entries[0]["hash"], first["hash"]);
        assert_eq!(entries[2]["hash"], head["hash"]);
        assert_eq!(entries[2]["action"], "subject.unlocked");
    }
);

both_stores!(
    a_lockout_by_failures_is_the_gateway_s_entry,
    setup: audit_setup("lock", "[settings.lockout]\nthreshold = 1\n[settings.otp]\nshow_to_agents = true\n"),
    |app: TestApp| async move {
        let auditor = auditor_key("lock");
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": "lock-1", "customer_ref": "cust-lock"}))
            .await;
        let id = v["id"].as_str().unwrap();
        let (cid, code) = app.agent_otp(id).await;
        let res = app.verify_code(id, &cid, &wrong_code(&code)).await;
        assert_eq!(res.status(), 423);
        let entries = trail(&app, &auditor).await;
        assert_eq!(actions(&entries), ["challenge.code_revealed", "subject.locked"]);
        let lock = of(&entries, "subject.locked")[0];
        assert_eq!(lock["actor"], json!({"type": "system"}));
        assert_eq!(lock["target"]["subject"], "cust-lock");
        assert_eq!(lock["target"]["interaction_id"], id);
        assert!(lock.get("request_id").is_none());
        verify_chain(&entries).unwrap();
    }
);

both_stores!(
    no_code_pin_phone_e_mail_or_secret_is_in_any_entry,
    setup: audit_setup(
        "secrets",
        "[settings]\nrecognize_for = \"30d\"\n[settings.otp]\nshow_to_agents = true\n"
    ),
    |app: TestApp| async move {
        let auditor = auditor_key("secrets");
        let phone = "+15551234567";
        let email = "ada.audit@example.com";
        let pin = "482913";
        let v = app
            .create(json!({"channel": "sms", "conversation_id": phone, "customer_ref": "cust-sec",
                "session_pin": pin, "contact": {"phone": phone, "email": email}}))
            .await;
        let id = v["id"].as_str().unwrap();
        let (_cid, code) = app.agent_otp(id).await;
        app.authenticate(id, "cust-sec").await;
        for path in [format!("/v1/interactions/{id}/forget"), format!("/v1/interactions/{id}/logout")] {
            let res = app.post_json(&path, Some(&app.keys.agent), &json!({})).await;
            assert_eq!(res.status(), 200);
        }
        let res = app.post_json("/v1/subjects/cust-sec/unlock", Some(&app.keys.admin), &json!({})).await;
        assert_eq!(res.status(), 200);
        let entries = trail(&app, &auditor).await;
        assert_eq!(
            actions(&entries),
            ["challenge.code_revealed", "recognition.forgotten", "interaction.logged_out", "subject.unlocked"]
        );
        let text = serde_json::to_string(&entries).unwrap();
        for secret in [
            code.as_str(), pin, phone, "5551234567", email, app.keys.agent.as_str(),
            app.keys.admin.as_str(), app.keys.bot.as_str(), auditor.as_str(),
            app.keys.acme_security.as_str(), "test-pepper",
        ] {
            assert!(!text.contains(secret), "an entry holds {secret:?}: {text}");
        }
    }
);

/// Two instances on one Redis, 40 audited actions at once spread over
/// both: every one is an entry, `seq` 1..=40 without a gap, each `prev`
/// the entry before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_actions_on_two_instances_chain_without_a_gap() {
    let Some(a) = spawn_with(Backend::Redis, audit_setup("two", "")).await else {
        return;
    };
    let b = spawn_with(
        Backend::Redis,
        Setup {
            key_prefix: Some(a.key_prefix.clone()),
            keys: Some(a.keys.clone()),
            ..audit_setup("two", "")
        },
    )
    .await
    .unwrap();
    let n = 40;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            async move {
                app.post_json(
                    &format!("/v1/subjects/cust-{i}/unlock"),
                    Some(&app.keys.admin),
                    &json!({}),
                )
                .await
                .status()
            }
        })
        .collect();
    for status in futures::future::join_all(tasks).await {
        assert_eq!(status, 200);
    }
    let entries = trail(&b, &auditor_key("two")).await;
    // Each test instance has a configuration of its own (its own chat
    // mock, a random old security key): each started recorded it.
    let configs = of(&entries, "config.changed").len();
    assert_eq!(entries.len(), n + configs, "one entry per unlock");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    verify_chain(&entries).expect("a valid chain");
    let mut subjects: Vec<&str> = of(&entries, "subject.unlocked")
        .into_iter()
        .map(|e| e["target"]["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), n, "every unlock once");
    b.stop_keeping_keys().await;
    a.stop().await;
}

/// What one instance wrote, another (after the first stopped) reads and
/// chains after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_outlives_the_instance_that_wrote_it() {
    let Some(a) = spawn_with(Backend::Redis, audit_setup("restart", "")).await else {
        return;
    };
    let res = a
        .post_json(
            "/v1/subjects/cust-r/unlock",
            Some(&a.keys.admin),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let setup = Setup {
        key_prefix: Some(a.key_prefix.clone()),
        keys: Some(a.keys.clone()),
        ..audit_setup("restart", "")
    };
    a.stop_keeping_keys().await;
    let b = spawn_with(Backend::Redis, setup).await.unwrap();
    let res = b
        .post_json(
            "/v1/subjects/cust-r/unlock",
            Some(&b.keys.admin),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let entries = trail(&b, &auditor_key("restart")).await;
    assert_eq!(actions(&entries), ["subject.unlocked", "subject.unlocked"]);
    // The second instance's configuration differs in what the test
    // harness draws anew (an old security key): the entry names the key,
    // never its value.
    let changes = of(&entries, "config.changed");
    assert_eq!(changes.len(), 2);
    let changed = &changes[1]["detail"]["changed"];
    assert!(
        changed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "security_keys"),
        "{changed}"
    );
    verify_chain(&entries).unwrap();
}

/// `chatgate audit verify` on an export, its head and the served keys:
/// `ok`, then the first bad `seq` of a changed export, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_verifies_an_export_and_names_a_changed_entry() {
    let setup = Setup {
        system_extra: format!(
            "[audit]\nsigning_key = \"\"\"\n{}\"\"\"\n",
            new_signing_key_pem().unwrap()
        ),
        ..audit_setup("cli", "")
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let auditor = auditor_key("cli");
    for i in 0..3 {
        unlock(&app, i).await;
    }
    // The head first, then the pages up to it.
    let head = app.get_json("/v1/audit/head", Some(&auditor)).await;
    let entries = trail(&app, &auditor).await;
    let keys = app
        .client
        .get(app.url("/.well-known/chatgate-audit-keys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = app.dir.join("export");
    std::fs::create_dir_all(&dir).unwrap();
    let lines: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    std::fs::write(dir.join("trail.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(dir.join("head.json"), head.to_string()).unwrap();
    std::fs::write(dir.join("keys.json"), &keys).unwrap();
    let run = |file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
            .args(["audit", "verify", "--keys"])
            .arg(dir.join("keys.json"))
            .arg("--head")
            .arg(dir.join("head.json"))
            .arg(dir.join(file))
            .output()
            .unwrap()
    };
    let ok = run("trail.jsonl");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        out.trim(),
        format!("ok: {} entries, teams acme", entries.len())
    );
    // The second unlock's subject rewritten.
    let changed = lines.join("\n").replacen("cust-1", "cust-9", 1);
    std::fs::write(dir.join("changed.jsonl"), changed).unwrap();
    let bad = run("changed.jsonl");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.trim(), "team acme, seq 3: hash mismatch", "{err}");
}

/// Frames received by a test syslog receiver: `(seq, message)`.
pub(crate) type Received = std::sync::Arc<std::sync::Mutex<Vec<(u64, String)>>>;

/// Accepts connections on `listener` and keeps every RFC 6587
/// octet-counted frame, until `stop` fires (the listener and its
/// connections are then closed).
pub(crate) fn receiver(
    listener: tokio::net::TcpListener,
    got: Received,
) -> tokio::sync::oneshot::Sender<()> {
    tls_receiver(listener, None, got, Default::default())
}

/// [`receiver`], over TLS when `tls` is given (RFC 5425: the same frames
/// in the session); `sessions` counts the connections accepted (a TLS
/// handshake tried, whether or not it ended well).
fn tls_receiver(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    got: Received,
    sessions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> tokio::sync::oneshot::Sender<()> {
    let (tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stop => return,
                accepted = listener.accept() => {
                    let Ok((sock, _)) = accepted else { return };
                    sessions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let got = got.clone();
                    let tls = tls.clone();
                    conns.spawn(async move {
                        match tls {
                            None => read_frames(sock, got).await,
                            Some(acceptor) => {
                                if let Ok(session) = acceptor.accept(sock).await {
                                    read_frames(session, got).await;
                                }
                            }
                        }
                    });
                }
            }
        }
    });
    tx
}

/// Keeps every octet-counted frame read from `sock` in `got`.
async fn read_frames(mut sock: impl tokio::io::AsyncRead + Unpin, got: Received) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = sock.read(&mut chunk).await {
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(space) = buf.iter().position(|&b| b == b' ') {
            let len: usize = std::str::from_utf8(&buf[..space]).unwrap().parse().unwrap();
            if buf.len() < space + 1 + len {
                break;
            }
            let msg = String::from_utf8(buf[space + 1..space + 1 + len].to_vec()).unwrap();
            buf.drain(..space + 1 + len);
            let seq = msg
                .split("seq=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            got.lock().unwrap().push((seq, msg));
        }
    }
}

/// A certificate authority made for one test, and a server certificate
/// for `localhost` it signed: the authority's PEM and the server's
/// acceptor.
fn tls_authority() -> (String, tokio_rustls::TlsAcceptor) {
    use tokio_rustls::rustls;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "chatgate test SIEM CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (
        ca.pem(),
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
    )
}

/// A TLS syslog setup: the receiver at `localhost:port`, its authority
/// trusted through `ca_file` (written in a folder of its own).
fn tls_setup(seed: &str, port: u16, ca_pem: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("chatgate-siem-ca-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("siem-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    Setup {
        system_extra: format!(
            "[audit.syslog]\naddress = \"tcp://localhost:{port}\"\ntls = true\nca_file = \"{}\"\n",
            ca_file.display()
        ),
        ..audit_setup(seed, "")
    }
}

/// Over TLS (RFC 5425) to a receiver whose certificate the `ca_file`'s
/// authority signed for its host, every entry arrives as over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_syslog_receiver_trusted_by_the_ca_file_gets_every_entry() {
    let (ca_pem, acceptor) = tls_authority();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Received::default();
    let _stop = tls_receiver(listener, Some(acceptor), got.clone(), Default::default());
    let app = spawn_with(Backend::Memory, tls_setup("tls", port, &ca_pem))
        .await
        .unwrap();
    for i in 1..=3 {
        unlock(&app, i).await;
    }
    assert!(received_all(&got, 4).await, "every entry over TLS");
    let got = got.lock().unwrap().clone();
    let (_, msg) = got
        .iter()
        .find(|(s, m)| *s == 4 && m.contains("team=\"acme\""))
        .unwrap();
    assert!(msg.starts_with("<110>1 "), "{msg}");
    let json: Value = serde_json::from_str(json_of(msg)).unwrap();
    assert_eq!(json["action"], "subject.unlocked");
    assert_eq!(json["target"]["subject"], "cust-3");
}

/// A receiver whose certificate no trusted authority signed gets nothing
/// (no entry leaves without a checked session), and its failing is one
/// warning however many rounds try it.
#[tokio::test]
async fn an_untrusted_tls_syslog_receiver_gets_nothing_and_is_one_warning() {
    // This test's own thread (a current-thread runtime runs the sink here too).
    let (capture, _guard) = crate::logs::Capture::at_info();
    let (trusted_pem, _) = tls_authority();
    let (_, impostor) = tls_authority();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Received::default();
    let sessions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let _stop = tls_receiver(listener, Some(impostor), got.clone(), sessions.clone());
    let app = spawn_with(Backend::Memory, tls_setup("untrusted", port, &trusted_pem))
        .await
        .unwrap();
    let res = app
        .post_json(
            "/v1/subjects/cust-u/unlock",
            Some(&app.keys.admin),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200, "a failing sink delays no request");
    // Counted, not timed: wait for four handshakes refused.
    for _ in 0..150 {
        if sessions.load(std::sync::atomic::Ordering::SeqCst) >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        sessions.load(std::sync::atomic::Ordering::SeqCst) >= 4,
        "the sink tried again"
    );
    assert!(
        got.lock().unwrap().is_empty(),
        "nothing over an untrusted session"
    );
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("syslog receiver fails"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("TLS refused"), "{}", warnings[0]);
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
}

/// The entry's JSON of a syslog message: its MSG after the byte order
/// mark RFC 5424 asks of a UTF-8 MSG (docs/audit.md#wiring-a-siem).
pub(crate) fn json_of(msg: &str) -> &str {
    let after = msg.split_once("] ").unwrap().1;
    after
        .strip_prefix('\u{feff}')
        .unwrap_or_else(|| panic!("no byte order mark before the MSG: {msg}"))
}

/// Waits (up to 15 s) until `got` holds every `seq` of 1..=n.
async fn received_all(got: &Received, n: u64) -> bool {
    for _ in 0..150 {
        let seqs: std::collections::BTreeSet<u64> =
            got.lock().unwrap().iter().map(|(s, _)| *s).collect();
        if (1..=n).all(|s| seqs.contains(&s)) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// A syslog receiver that goes away and comes back receives every entry,
/// as RFC 5424 messages; the requests meanwhile answer as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syslog_receiver_that_goes_away_and_comes_back_gets_every_entry() {
    for backend in [Backend::Memory, Backend::Redis] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let setup = Setup {
            system_extra: format!("[audit.syslog]\naddress = \"tcp://127.0.0.1:{port}\"\n"),
            ..audit_setup("syslog", "")
        };
        let Some(app) = spawn_with(backend, setup).await else {
            continue;
        };
        let got = Received::default();
        let stop = receiver(listener, got.clone());
        for i in 1..=5 {
            unlock(&app, i).await;
        }
        assert!(
            received_all(&got, 5).await,
            "{backend:?}: the first five arrive"
        );
        // The receiver goes away; five more entries are written meanwhile.
        stop.send(()).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        for i in 6..=10 {
            unlock(&app, i).await;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "no request waits on the sink"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        // It comes back on the same address.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let _stop = receiver(listener, got.clone());
        assert!(
            received_all(&got, 10).await,
            "{backend:?}: every entry, once it is back"
        );
        let got = got.lock().unwrap().clone();
        let (seq, msg) = got.iter().find(|(s, _)| *s == 7).unwrap();
        assert_eq!(*seq, 7);
        let prefix = "<110>1 ";
        assert!(msg.starts_with(prefix), "{msg}");
        let parts: Vec<&str> = msg.splitn(7, ' ').collect();
        assert_eq!(parts[3], "chatgate", "APP-NAME: {msg}");
        assert_eq!(parts[4], "-", "PROCID: {msg}");
        assert_eq!(parts[5], "subject.unlocked", "MSGID: {msg}");
        assert!(
            parts[6].starts_with("[chatgate@32473 team=\"acme\" seq=\"7\"] \u{feff}{"),
            "{msg}"
        );
        let json: Value = serde_json::from_str(json_of(msg)).unwrap();
        assert_eq!(json["seq"], 7);
        assert_eq!(
            json["time"].as_str().unwrap(),
            parts[1],
            "TIMESTAMP is the entry's time"
        );
        // As an RFC 5424 parser of someone else's hand reads it.
        let parsed = syslog_loose::parse_message_with_year_exact(
            msg,
            |_| 2026,
            syslog_loose::Variant::RFC5424,
        )
        .unwrap();
        assert_eq!(parsed.protocol, syslog_loose::Protocol::RFC5424(1));
        assert_eq!(
            parsed.facility,
            Some(syslog_loose::SyslogFacility::LOG_AUDIT)
        );
        assert_eq!(
            parsed.severity,
            Some(syslog_loose::SyslogSeverity::SEV_INFO)
        );
        assert_eq!(parsed.appname, Some("chatgate"));
        assert_eq!(parsed.msgid, Some("subject.unlocked"));
        assert!(parsed.procid.is_none(), "PROCID -");
        assert_eq!(
            parsed.timestamp.unwrap().timestamp_millis(),
            chatgate::time::Timestamp::parse_rfc3339(parts[1])
                .unwrap()
                .unix_millis()
        );
        let sd = &parsed.structured_data[0];
        assert_eq!(sd.id, "chatgate@32473");
        assert_eq!(sd.params, [("team", "acme"), ("seq", "7")]);
        let msg = parsed.msg.strip_prefix('\u{feff}').unwrap_or(parsed.msg);
        assert_eq!(serde_json::from_str::<Value>(msg).unwrap(), json);
    }
}

/// A receiver that takes connections but never reads delays no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_syslog_receiver_delays_no_request() {
    // Bound, never accepted: connects wait in the backlog, nothing is read.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let setup = Setup {
        system_extra: format!("[audit.syslog]\naddress = \"tcp://127.0.0.1:{port}\"\n"),
        ..audit_setup("hanging", "")
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let started = std::time::Instant::now();
    for i in 0..30 {
        unlock(&app, i).await;
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

/// A gateway process killed (`SIGKILL`) right after it answered an
/// unlock leaves the unlock's entry: it was committed with the unlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_after_an_action_leaves_its_entry() {
    let Some(app) = spawn_with(Backend::Redis, audit_setup("kill", "")).await else {
        return;
    };
    let process = Instance::start(&app.dir).await;
    let res = reqwest::Client::new()
        .post(format!("{}/v1/subjects/cust-k/unlock", process.base))
        .bearer_auth(&app.keys.admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    process.signal("-KILL");
    drop(process);
    let entries = trail(&app, &auditor_key("kill")).await;
    assert_eq!(actions(&entries), ["subject.unlocked"]);
    // The process started with the test's own files: the configuration
    // was recorded once, by whichever started first.
    assert_eq!(of(&entries, "config.changed").len(), 1);
    let unlock = of(&entries, "subject.unlocked")[0];
    assert_eq!(unlock["target"]["subject"], "cust-k");
    verify_chain(&entries).unwrap();
}

/// A team's audit webhook gets every entry, in `seq` order, signed by
/// Standard Webhooks with `webhook-id` the entry's `id`; a receiver that
/// refuses is asked again, with backoff, until it takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_s_audit_webhook_gets_every_entry_signed_and_in_order() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    for backend in [Backend::Memory, Backend::Redis] {
        let hook = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/audit"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&hook)
            .await;
        Mock::given(method("POST"))
            .and(path("/audit"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&hook)
            .await;
        let secret = chatgate::domain::secrets::generate_whsec();
        let extra = format!(
            "[audit]\nwebhook = {{ url = \"{}/audit\", secret = \"{secret}\" }}\n",
            hook.uri()
        );
        let Some(app) = spawn_with(backend, audit_setup("hook", &extra)).await else {
            continue;
        };
        for i in 1..=3 {
            unlock(&app, i).await;
        }
        // The refusals' backoff runs on the gateway's clock.
        let mut taken = Vec::new();
        for _ in 0..100 {
            app.advance(10);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let requests = hook.received_requests().await.unwrap();
            if requests.len() >= 6 {
                taken = requests;
                break;
            }
        }
        assert_eq!(taken.len(), 6, "{backend:?}: two refused, then four taken");
        let key = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            secret.trim_start_matches("whsec_"),
        )
        .unwrap();
        let mut seqs = Vec::new();
        for r in &taken[2..] {
            let entry: Value = serde_json::from_slice(&r.body).unwrap();
            let header = |name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_string();
            assert_eq!(header("webhook-id"), entry["id"].as_str().unwrap());
            let ts: i64 = header("webhook-timestamp").parse().unwrap();
            let want =
                chatgate::domain::webhook_sig::sign(&key, &header("webhook-id"), ts, &r.body);
            assert_eq!(header("webhook-signature"), want);
            seqs.push(entry["seq"].as_u64().unwrap());
        }
        assert_eq!(
            seqs,
            [1, 2, 3, 4],
            "{backend:?}: in order, the refused one again first"
        );
        // The first refused was entry 1, asked again.
        let first: Value = serde_json::from_slice(&taken[0].body).unwrap();
        assert_eq!(first["seq"], 1);
    }
}

/// A reload with another team configuration records `config.changed`
/// once, naming the keys that changed and never a value; a reload with
/// the same one records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_records_what_changed_once() {
    let app = spawn_with(Backend::Memory, audit_setup("reload", ""))
        .await
        .unwrap();
    let auditor = auditor_key("reload");
    let team_file = app.dir.join("config/teams/acme.toml");
    let mut text = std::fs::read_to_string(&team_file).unwrap();
    text += "\n[[api_keys]]\nid = \"acme-bot-2\"\nrole = \"bot\"\nsha256 = \"";
    text += &ApiKeyHash::of_key("cg_another_bot_key_for_the_reload").to_hex();
    text += "\"\n\n[settings.otp]\nttl = \"2m\"\n";
    std::fs::write(&team_file, text).unwrap();
    for _ in 0..2 {
        match app.reloader.reload().await {
            chatgate::app::Reloaded::Applied { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    let entries = trail(&app, &auditor).await;
    let changes = of(&entries, "config.changed");
    assert_eq!(changes.len(), 2, "at start, then once: {entries:#?}");
    let start = &changes[0]["detail"];
    let reload = &changes[1]["detail"];
    assert_eq!(reload["source"], "reload");
    assert_eq!(reload["previous_digest"], start["digest"]);
    assert_ne!(reload["digest"], start["digest"]);
    assert_eq!(reload["changed"], json!(["api_keys", "settings.otp.ttl"]));
    assert_eq!(reload["api_keys_added"], json!(["acme-bot-2"]));
    assert_eq!(reload["api_keys_removed"], json!([]));
    assert!(start["changed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "security_keys"));
    let text = serde_json::to_string(&changes).unwrap();
    for value in ["2m", app.keys.acme_security.as_str(), "test-pepper"] {
        assert!(!text.contains(value), "{value:?} in {text}");
    }
    verify_chain(&entries).unwrap();
}

/// A reload's `config.changed` that the store refused (an outage) is kept
/// and written once the store is back, never dropped, on a lone instance
/// (docs/audit.md#configuration-changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_s_config_changed_refused_by_an_outage_is_written_when_the_store_is_back() {
    for backend in [Backend::Memory, Backend::Redis] {
        let Some((inner, prefix)) = crate::outbox::own_store(backend).await else {
            continue;
        };
        let store = crate::stalls::Stalling::over(inner);
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store.store()),
            ..audit_setup("outage", "")
        };
        let Some(app) = spawn_with(backend, setup).await else {
            continue;
        };
        let auditor = auditor_key("outage");
        let team_file = app.dir.join("config/teams/acme.toml");
        let text = std::fs::read_to_string(&team_file).unwrap();
        std::fs::write(
            &team_file,
            text + "
[settings.otp]
ttl = \"2m\"\n",
        )
        .unwrap();
        store.stall(true);
        match app.reloader.reload().await {
            chatgate::app::Reloaded::Applied { .. } => {}
            other => panic!("{backend:?}: {other:?}"),
        }
        // Down a while longer than a retry, then back.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        store.stall(false);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let reloads = loop {
            let entries = trail(&app, &auditor).await;
            let reloads: Vec<_> = of(&entries, "config.changed")
                .into_iter()
                .filter(|e| e["detail"]["source"] == "reload")
                .cloned()
                .collect();
            if !reloads.is_empty() || std::time::Instant::now() > deadline {
                break reloads;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(
            reloads.len(),
            1,
            "{backend:?}: the reload's entry, written once"
        );
        assert_eq!(reloads[0]["detail"]["changed"], json!(["settings.otp.ttl"]));
    }
}

/// Every entry lives `[audit] retention`; once the oldest are gone, a
/// read from before them starts at the oldest entry kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_from_before_the_kept_entries_starts_at_the_oldest_kept() {
    let setup = Setup {
        system_extra: "[audit]\nretention = \"2d\"\n".into(),
        ..audit_setup("retention", "")
    };
    let Some(app) = spawn_with(Backend::Redis, setup).await else {
        return;
    };
    for i in 0..6 {
        unlock(&app, i).await;
    }
    let redis = crate::redis_support::TestPrefix::for_prefix(&app.key_prefix);
    let key = |what: &str| format!("{}:{{acme}}:{what}", app.key_prefix);
    for what in ["a:1", "a:7", "ah", "acfg", "acfgd"] {
        let ttl = redis.pttl(&key(what));
        assert!(ttl > 86_400_000 && ttl <= 2 * 86_400_000, "{what}: {ttl}");
    }
    // The oldest four expire (as the store drops them, oldest first).
    for seq in 1..=4 {
        redis.raw(&["DEL", &key(&format!("a:{seq}"))]);
    }
    let auditor = auditor_key("retention");
    let page = app
        .get_json("/v1/audit?after=0&limit=2", Some(&auditor))
        .await;
    let seqs: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [5, 6], "{page}");
    assert_eq!(page["next"], 6);
    let entries: Vec<Map<String, Value>> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_object().unwrap().clone())
        .collect();
    verify_chain(&entries).expect("an export that starts later verifies");
}

/// A team removed at a reload gets `config.changed` in its own trail
/// (everything removed, `digest` the empty configuration's), once; when
/// it comes back, another (everything added again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_that_leaves_and_comes_back_is_recorded_in_its_own_trail() {
    let globex_auditor = auditor_key("leave-globex");
    let setup = Setup {
        globex_extra: format!(
            "[[api_keys]]\nid = \"globex-auditor\"\nrole = \"auditor\"\nsha256 = \"{}\"\n",
            ApiKeyHash::of_key(&globex_auditor).to_hex()
        ),
        ..audit_setup("leave", "")
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Received::default();
    let _stop = receiver(listener, got.clone());
    let setup = Setup {
        system_extra: format!("[audit.syslog]\naddress = \"tcp://127.0.0.1:{port}\"\n"),
        ..setup
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let reload = || async {
        match app.reloader.reload().await {
            chatgate::app::Reloaded::Applied { .. } => {}
            other => panic!("{other:?}"),
        }
    };
    let file = app.dir.join("config/teams/globex.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    reload().await;
    reload().await;
    // Gone: its keys open nothing.
    let res = app
        .request(Method::GET, "/v1/audit", Some(&globex_auditor))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    // The syslog sink still sends the removed team's entries, its
    // removal's among them.
    let mut sent = false;
    for _ in 0..150 {
        sent = got.lock().unwrap().iter().any(|(seq, msg)| {
            *seq == 2 && msg.contains("team=\"globex\"") && msg.contains("config.changed")
        });
        if sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        sent,
        "the removal reaches the SIEM: {:?}",
        got.lock()
            .unwrap()
            .iter()
            .map(|(s, m)| (*s, m.chars().take(90).collect::<String>()))
            .collect::<Vec<_>>()
    );
    std::fs::write(&file, text).unwrap();
    reload().await;

    let entries = trail(&app, &globex_auditor).await;
    let changes = of(&entries, "config.changed");
    assert_eq!(changes.len(), 3, "start, gone, back: {entries:#?}");
    assert!(changes.iter().all(|e| e["team"] == "globex"));
    let (start, gone, back) = (
        &changes[0]["detail"],
        &changes[1]["detail"],
        &changes[2]["detail"],
    );
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(gone["source"], "reload");
    assert_eq!(gone["previous_digest"], start["digest"]);
    assert_eq!(gone["digest"], empty, "the empty configuration");
    assert_eq!(gone["changed"], start["changed"], "every key");
    assert_eq!(
        gone["api_keys_removed"],
        json!(["globex-bot", "globex-agent", "globex-auditor"])
    );
    assert_eq!(gone["security_keys_removed"], json!(["g1"]));
    assert_eq!(gone["api_keys_added"], json!([]));
    assert_eq!(changes[1]["actor"], json!({"type": "system"}));
    assert_eq!(back["source"], "reload");
    assert_eq!(back["previous_digest"], empty);
    assert_eq!(back["digest"], start["digest"]);
    assert_eq!(back["api_keys_added"], gone["api_keys_removed"]);
    assert_eq!(back["security_keys_added"], json!(["g1"]));
    verify_chain(&entries).unwrap();
    // acme's trail holds none of it.
    let acme = trail(&app, &auditor_key("leave")).await;
    assert_eq!(of(&acme, "config.changed").len(), 1);
}

/// Several instances starting at once on one store with a changed
/// configuration record it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_record_a_change_once() {
    let Some(a) = spawn_with(Backend::Redis, audit_setup("at-once", "")).await else {
        return;
    };
    let team_file = a.dir.join("config/teams/acme.toml");
    let text = std::fs::read_to_string(&team_file).unwrap() + "\n[settings.otp]\nttl = \"2m\"\n";
    std::fs::write(&team_file, text).unwrap();
    let start = || async {
        let config = chatgate::config::load(&a.dir.join("config/chatgate.toml")).unwrap();
        chatgate::app::App::build(config, chatgate::app::Options::default())
            .await
            .unwrap()
    };
    let started = futures::future::join_all((0..4).map(|_| start())).await;
    let entries = trail(&a, &auditor_key("at-once")).await;
    let changes = of(&entries, "config.changed");
    assert_eq!(
        changes.len(),
        2,
        "a's start, then the change once: {changes:#?}"
    );
    assert_eq!(changes[1]["detail"]["source"], "start");
    assert_eq!(changes[1]["detail"]["changed"], json!(["settings.otp.ttl"]));
    verify_chain(&entries).unwrap();
    drop(started);
    a.stop().await;
}
