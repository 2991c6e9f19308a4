//! Failure counts that lock a customer out (docs/api.md#challenges-otp-and-session-pin):
//! the count of one customer stays exact across several interactions under
//! concurrency, also with successes interleaved.
use serde_json::json;

use crate::helpers::*;

async fn verify(app: &TestApp, id: &str, cid: &str, code: &str) -> u16 {
    app.verify_code(id, cid, code).await.status().as_u16()
}

async fn failures(app: &TestApp, subject: &str) -> u64 {
    app.get_json(&format!("/v1/subjects/{subject}"), Some(&app.keys.agent))
        .await["failures"]
        .as_u64()
        .unwrap()
}

fn customer_setup(threshold: u32) -> Setup {
    Setup {
        defaults: format!(
            "lockout = {{ threshold = {threshold} }}\notp = {{ max_attempts = 50, max_sends = 500 }}"
        ),
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    }
}

async fn interactions_of(app: &TestApp, customer: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": format!("{customer}-{i}"), "customer_ref": customer}))
            .await;
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    ids
}

both_stores!(
    failures_of_one_customer_count_exactly_across_interactions,
    setup: customer_setup(1000),
    |app: TestApp| async move {
        let ids = interactions_of(&app, "cust-x", 3).await;
        let mut challenges = Vec::new();
        for id in &ids {
            challenges.push((id.clone(), app.agent_otp(id).await));
        }
        // 45 wrong answers at once, 15 on each interaction.
        let burst = |n: usize| {
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let (id, (cid, code)) = challenges[i % challenges.len()].clone();
                    let app = &app;
                    async move { verify(app, &id, &cid, &wrong_code(&code)).await }
                })
                .collect();
            futures::future::join_all(tasks)
        };
        let answers = burst(45).await;
        assert!(answers.iter().all(|s| *s == 401), "{answers:?}");
        assert_eq!(failures(&app, "cust-x").await, 45);
        // A success on a fourth interaction clears them...
        let id = interactions_of(&app, "cust-x", 4).await.remove(3);
        let (cid, code) = app.agent_otp(&id).await;
        assert_eq!(verify(&app, &id, &cid, &code).await, 200);
        assert_eq!(failures(&app, "cust-x").await, 0);
        // ...and the next burst counts from zero, exactly.
        let answers = burst(30).await;
        assert!(answers.iter().all(|s| *s == 401), "{answers:?}");
        assert_eq!(failures(&app, "cust-x").await, 30);
    }
);

both_stores!(
    a_success_racing_a_failure_never_counts_a_cleared_failure,
    setup: customer_setup(4),
    |app: TestApp| async move {
        // Threshold 4, two failures recorded; then a success (which clears
        // them) and a failure at once, on other interactions. By the rules
        // the subject ends with 0 failures (failure first, then the success
        // clears all three) or 1 (success first) — never more: a lost clear
        // would leave 3, and the next wrong answer would lock.
        let ids = interactions_of(&app, "cust-race", 3).await;
        for round in 0..10 {
            let (cid_a, code_a) = app.agent_otp(&ids[0]).await;
            for _ in 0..2 {
                assert_eq!(verify(&app, &ids[0], &cid_a, &wrong_code(&code_a)).await, 401);
            }
            assert_eq!(failures(&app, "cust-race").await, 2, "round {round}");
            let (cid_b, code_b) = app.agent_otp(&ids[1]).await;
            let (cid_c, code_c) = app.agent_otp(&ids[2]).await;
            let wrong_c = wrong_code(&code_c);
            let (ok, bad) = tokio::join!(
                verify(&app, &ids[1], &cid_b, &code_b),
                verify(&app, &ids[2], &cid_c, &wrong_c),
            );
            assert_eq!(ok, 200, "round {round}");
            assert_eq!(bad, 401, "round {round}");
            let f = failures(&app, "cust-race").await;
            assert!(f <= 1, "round {round}: {f} failures counted");
            // The next wrong answer is counted on top, not locked.
            let (cid_d, code_d) = app.agent_otp(&ids[0]).await;
            let next = verify(&app, &ids[0], &cid_d, &wrong_code(&code_d)).await;
            assert_eq!(next, 401, "round {round}");
            // Clean slate for the next round.
            let (cid_e, code_e) = app.agent_otp(&ids[0]).await;
            assert_eq!(verify(&app, &ids[0], &cid_e, &code_e).await, 200);
        }
    }
);
