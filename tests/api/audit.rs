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
fn auditor_key(seed: &str) -> String {
    format!("cg_auditor_{seed}")
}

fn audit_setup(seed: &str, extra: &str) -> Setup {
    let key = auditor_key(seed);
    Setup {
        team_extra: format!(
            "{extra}\n[[api_keys]]\nid = \"acme-auditor\"\nrole = \"auditor\"\nsha256 = \"{}\"\n",
            ApiKeyHash::of_key(&key).to_hex()
        ),
        ..Setup::default()
    }
}

/// Every entry of acme's trail, page by page (each read adds its own
/// `audit.read`, answered by the next page).
async fn trail(app: &TestApp, key: &str) -> Vec<Map<String, Value>> {
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

fn actions(entries: &[Map<String, Value>]) -> Vec<&str> {
    entries.iter().map(|e| e["action"].as_str().unwrap()).collect()
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
        assert_eq!(ends["acme"].0, 3);
        let reveal = &entries[0];
        assert_eq!(reveal["seq"], 1);
        assert_eq!(reveal["team"], "acme");
        assert_eq!(reveal["outcome"], "success");
        assert_eq!(reveal["actor"]["type"], "api_key");
        assert_eq!(reveal["actor"]["api_key_id"], "acme-agent");
        assert_eq!(reveal["actor"]["ip"], "127.0.0.1");
        assert_eq!(reveal["request_id"], request_id.as_str());
        assert_eq!(reveal["target"]["interaction_id"], id.as_str());
        assert_eq!(reveal["target"]["challenge_id"], cid.as_str());
        assert_eq!(entries[1]["detail"]["cause"], "api");
        assert_eq!(entries[2]["actor"]["api_key_id"], "acme-admin");
        assert_eq!(entries[2]["target"]["subject"], "cust-audit");
        // The first read is recorded after the entries it answered.
        let page = app.get_json("/v1/audit?after=3", Some(&auditor)).await;
        let read = &page["entries"][0];
        assert_eq!(read["action"], "audit.read", "{page}");
        assert_eq!(read["seq"], 4);
        assert_eq!(read["actor"]["api_key_id"], "acme-auditor");
        assert_eq!(page["next"], 4);
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
        for q in ["limit=0", "limit=1001", "after=-1", "page=2"] {
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
        let denied = &entries[2];
        assert_eq!(denied["outcome"], "denied");
        assert_eq!(denied["actor"]["api_key_id"], "acme-agent");
        assert_eq!(denied["detail"]["reason"], "forbidden");
        assert_eq!(denied["detail"]["route"], "/v1/audit");
        assert_eq!(entries[0]["actor"]["api_key_id"], "acme-auditor");
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
        let empty = app.get_json("/v1/audit/head", Some(&auditor)).await;
        assert_eq!(empty["seq"], 0);
        assert_eq!(empty["hash"], "0".repeat(64));
        let res = app
            .post_json("/v1/subjects/cust-h/unlock", Some(&app.keys.admin), &json!({}))
            .await;
        assert_eq!(res.status(), 200);
        let head = app.get_json("/v1/audit/head", Some(&auditor)).await;
        // The first head read is entry 1, the unlock entry 2.
        assert_eq!(head["seq"], 2, "{head}");
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
        assert_eq!(claims["seq"], 2);
        assert_eq!(claims["hash"], head["hash"]);
        assert_eq!(claims["team"], "acme");
        assert!(claims["iat"].is_i64());
        let entries = trail(&app, &auditor).await;
        assert_eq!(entries[1]["hash"], head["hash"]);
        assert_eq!(entries[1]["action"], "subject.unlocked");
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
        let lock = &entries[1];
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
    assert_eq!(entries.len(), n, "one entry per unlock");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
    verify_chain(&entries).expect("a valid chain");
    let mut subjects: Vec<&str> = entries.iter().map(|e| e["target"]["subject"].as_str().unwrap()).collect();
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
        .post_json("/v1/subjects/cust-r/unlock", Some(&a.keys.admin), &json!({}))
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
        .post_json("/v1/subjects/cust-r/unlock", Some(&b.keys.admin), &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let entries = trail(&b, &auditor_key("restart")).await;
    assert_eq!(actions(&entries), ["subject.unlocked", "subject.unlocked"]);
    verify_chain(&entries).unwrap();
}

/// `chatgate audit verify` on an export, its head and the served keys:
/// `ok`, then the first bad `seq` of a changed export, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_verifies_an_export_and_names_a_changed_entry() {
    let setup = Setup {
        system_extra: format!("[audit]\nsigning_key = \"\"\"\n{}\"\"\"\n", new_signing_key_pem().unwrap()),
        ..audit_setup("cli", "")
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let auditor = auditor_key("cli");
    for i in 0..3 {
        let res = app
            .post_json(&format!("/v1/subjects/cust-{i}/unlock"), Some(&app.keys.admin), &json!({}))
            .await;
        assert_eq!(res.status(), 200);
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
    let lines: Vec<String> = entries.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
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
    assert!(ok.status.success(), "{out} {}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(out.trim(), format!("ok: {} entries, teams acme", entries.len()));
    // The second unlock's subject rewritten.
    let changed = lines.join("\n").replacen("cust-1", "cust-9", 1);
    std::fs::write(dir.join("changed.jsonl"), changed).unwrap();
    let bad = run("changed.jsonl");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.trim(), "team acme, seq 2: hash mismatch", "{err}");
}
