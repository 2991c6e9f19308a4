//! The API's outside: errors as problem+json, callers and roles, team
//! scoping, body limits, operations endpoints.
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

both_stores!(unknown_paths_are_problem_404, |app: TestApp| async move {
    let res = app
        .request(Method::GET, "/nope", None)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
    let res = app
        .request(Method::GET, "/v1/nope", Some(&app.keys.bot))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
});

both_stores!(
    missing_or_unknown_api_key_is_401,
    |app: TestApp| async move {
        let res = app
            .request(Method::GET, "/v1/interactions", None)
            .send()
            .await
            .unwrap();
        assert_problem(res, 401, "unauthorized").await;
        let res = app
            .request(Method::GET, "/v1/interactions", Some("cg_not_a_key"))
            .send()
            .await
            .unwrap();
        let body = assert_problem(res, 401, "unauthorized").await;
        assert!(!body.to_string().contains("cg_not_a_key"));
    }
);

both_stores!(roles_are_enforced, |app: TestApp| async move {
    // An agent may not create interactions; a bot may not list them.
    let res = app
        .post_json(
            "/v1/interactions",
            Some(&app.keys.agent),
            &json!({"channel": "webchat", "conversation_id": "c"}),
        )
        .await;
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .request(Method::GET, "/v1/interactions", Some(&app.keys.bot))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // An admin may do both.
    let res = app
        .post_json(
            "/v1/interactions",
            Some(&app.keys.admin),
            &json!({"channel": "webchat", "conversation_id": "c"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .request(Method::GET, "/v1/interactions", Some(&app.keys.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
});

both_stores!(
    another_teams_interaction_is_404_never_403,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        for key in [&app.keys.globex_agent, &app.keys.globex_bot] {
            let res = app
                .request(Method::GET, &format!("/v1/interactions/{id}"), Some(key))
                .send()
                .await
                .unwrap();
            assert_problem(res, 404, "not_found").await;
        }
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/login-links"),
                Some(&app.keys.globex_bot),
                &json!({}),
            )
            .await;
        assert_problem(res, 404, "not_found").await;
        let res = app
            .request(
                Method::GET,
                "/v1/interactions/not-a-uuid",
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_problem(res, 404, "not_found").await;
    }
);

both_stores!(bad_bodies_speak_problem_json, |app: TestApp| async move {
    let post = |body: reqwest::Body, ct: Option<&str>| {
        let mut rb = app
            .request(Method::POST, "/v1/interactions", Some(&app.keys.bot))
            .body(body);
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        rb.send()
    };
    assert_problem(
        post("{not json".into(), Some("application/json"))
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        post("channel=webchat".into(), Some("text/plain"))
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    // Too large: the gateway answers 413 from the declared length and
    // closes without reading the body, so the client sends only the head
    // (an HTTP client writing the whole body could find the socket closed
    // under it before reading the answer).
    let head = format!(
        "POST /v1/interactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        app.keys.bot,
        70 * 1024
    );
    let (status, answer) = app.raw(head.as_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    // A required field missing, or of the wrong type: 400 naming the field, never echoing the value.
    let b = assert_problem(
        post(r#"{"channel": "webchat"}"#.into(), Some("application/json"))
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(
        b["detail"].as_str().unwrap().contains("conversation_id"),
        "{b}"
    );
    let body = r#"{"channel": "webchat", "conversation_id": "c", "session_pin": 482913}"#;
    let b = assert_problem(
        post(body.into(), Some("application/json")).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(b["detail"].as_str().unwrap().contains("session_pin"), "{b}");
    assert!(!b.to_string().contains("482913"), "{b}");
    // Present and typed right but not allowed: 422.
    let body = json!({"channel": "fax", "conversation_id": "c"});
    assert_problem(
        post(body.to_string().into(), Some("application/json"))
            .await
            .unwrap(),
        422,
        "invalid_request",
    )
    .await;
    let body = json!({"channel": "webchat", "conversation_id": "x".repeat(257)});
    assert_problem(
        post(body.to_string().into(), Some("application/json"))
            .await
            .unwrap(),
        422,
        "invalid_request",
    )
    .await;
    let body = json!({"channel": "webchat", "conversation_id": "c", "session_pin": "12ab"});
    let b = assert_problem(
        post(body.to_string().into(), Some("application/json"))
            .await
            .unwrap(),
        422,
        "invalid_request",
    )
    .await;
    assert!(!b.to_string().contains("12ab"));
    // Nothing was created by any of these.
    let list: serde_json::Value = app
        .get_json("/v1/interactions", Some(&app.keys.agent))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
});

both_stores!(
    create_is_idempotent_per_conversation,
    |app: TestApp| async move {
        let body = json!({"channel": "webchat", "conversation_id": "abc-123", "customer_ref": "cust-42",
                      "session_pin": "482913", "contact": {"phone": "+15551230000", "email": "ada@example.com"}});
        let res = app
            .post_json("/v1/interactions", Some(&app.keys.bot), &body)
            .await;
        assert_eq!(res.status(), 201);
        let first: serde_json::Value = res.json().await.unwrap();
        assert_eq!(first["status"], "unauthenticated");
        assert_eq!(first["authenticated"], false);
        assert_eq!(first["has_session_pin"], true);
        assert_eq!(first["team"], "acme");
        assert!(!first.to_string().contains("482913"));
        let res = app
            .post_json("/v1/interactions", Some(&app.keys.bot), &body)
            .await;
        assert_eq!(res.status(), 200);
        let second: serde_json::Value = res.json().await.unwrap();
        assert_eq!(first["id"], second["id"]);
        // Another channel is another interaction.
        let other = app
            .create(json!({"channel": "sms", "conversation_id": "abc-123"}))
            .await;
        assert_ne!(other["id"], first["id"]);
    }
);

both_stores!(
    list_is_newest_first_filtered_and_paged,
    |app: TestApp| async move {
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(app.new_interaction().await);
            app.clock.advance(std::time::Duration::from_millis(5));
        }
        app.authenticate(&ids[1], "cust-1").await;
        let agent = Some(app.keys.agent.as_str());
        let page: serde_json::Value = app.get_json("/v1/interactions?limit=2", agent).await;
        assert_eq!(page_ids(&page), vec![ids[4].clone(), ids[3].clone()]);
        let cursor = page["next_cursor"].as_str().unwrap();
        let page2: serde_json::Value = app
            .get_json(&format!("/v1/interactions?limit=2&cursor={cursor}"), agent)
            .await;
        assert_eq!(page_ids(&page2), vec![ids[2].clone(), ids[1].clone()]);
        let auth: serde_json::Value = app
            .get_json("/v1/interactions?status=authenticated", agent)
            .await;
        let items = auth["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], ids[1].as_str());
        assert_eq!(auth["next_cursor"], serde_json::Value::Null);
        for bad in [
            "limit=0",
            "limit=501",
            "limit=x",
            "status=nope",
            "channel=fax",
        ] {
            let res = app
                .request(Method::GET, &format!("/v1/interactions?{bad}"), agent)
                .send()
                .await
                .unwrap();
            assert_problem(res, 422, "invalid_request").await;
        }
        // Another team sees none of them.
        let g: serde_json::Value = app
            .get_json("/v1/interactions", Some(&app.keys.globex_agent))
            .await;
        assert_eq!(g["items"].as_array().unwrap().len(), 0);
    }
);

#[tokio::test]
async fn operations_endpoints() {
    let app = spawn_app(Backend::Memory).await.unwrap();
    let health = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    assert_eq!(
        app.request(Method::GET, "/readyz", None)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.new_interaction().await;
    let metrics = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("chatgate_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("chatgate_interactions_created_total"));
    for line in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            line.starts_with("chatgate_") || line.starts_with("process_"),
            "{line}"
        );
    }
    let doc: serde_json::Value = app.get_json("/openapi.json", None).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/interactions",
        "/v1/interactions/{id}",
        "/v1/interactions/{id}/login-links",
        "/v1/login/callback",
        "/l/{code}",
        "/v1/customers/logout",
        "/v1/interactions/{id}/assertion",
        "/v1/interactions/{id}/activity",
        "/v1/interactions/{id}/logout",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
}

both_stores!(
    a_living_conversation_keeps_its_interaction,
    |app: TestApp| async move {
        let _ = app;
        // Writes keep the interaction, and its conversation, alive: the
        // conversation key never ends before the interaction. With a margin
        // of 0.5 s a write keeps that key until 2.5 s after it, and leaves
        // it be while its own end stays 0.25 s within.
        let setup = Setup {
            defaults: "interaction_ttl = \"2s\"".into(),
            ..Setup::default()
        };
        let Some(app) = spawn_with(app.backend, setup).await else {
            return;
        };
        let body = json!({"channel": "webchat", "conversation_id": "margins"});
        let id = app.create(body.clone()).await["id"].clone();
        let activity = || async {
            let path = format!("/v1/interactions/{}/activity", id.as_str().unwrap());
            let res = app.post_json(&path, Some(&app.keys.bot), &json!({})).await;
            assert_eq!(res.status(), 200);
        };
        // Both clocks, the gateway's and the store's TTLs, move together.
        let clock = app.clock.clone();
        let wait = |ms: u64| {
            let clock = clock.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                clock.advance(std::time::Duration::from_millis(ms));
            }
        };
        wait(200).await;
        activity().await; // ends at 2.2 s: left be (kept until 2.5 s)
        wait(600).await;
        activity().await; // ends at 2.8 s: extended to 3.3 s
        wait(1850).await;
        // At 2.65 s the interaction lives, and so does its conversation.
        let res = app
            .post_json("/v1/interactions", Some(&app.keys.bot), &body)
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["id"], id);
    }
);

both_stores!(
    malformed_paths_and_bodies_are_problem_json,
    |app: TestApp| async move {
        // Percent-encodings that are not UTF-8 name nothing.
        for path in ["/v1/interactions/%FF", "/l/%FF", "/v1/subjects/%FF"] {
            let res = app
                .request(Method::GET, path, Some(&app.keys.agent))
                .send()
                .await
                .unwrap();
            assert_problem(res, 404, "not_found").await;
        }
        // A query value that is not UTF-8 decodes lossily and is refused as a value.
        let res = app
            .request(
                Method::GET,
                "/v1/interactions?status=%FF",
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, "invalid_request").await;
        // An empty body labelled JSON is "no body" where the body is optional...
        let id = app.new_interaction().await;
        for (path, status) in [
            (format!("/v1/interactions/{id}/activity"), 200),
            (format!("/v1/interactions/{id}/login-links"), 201),
        ] {
            let res = app
                .request(Method::POST, &path, Some(&app.keys.bot))
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), status, "{path}");
        }
        // ...and 400 where it is required.
        let res = app
            .request(Method::POST, "/v1/interactions", Some(&app.keys.bot))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_problem(res, 400, "invalid_request").await;
        // Bytes after the JSON value: not valid JSON, and nothing created.
        let res = app
            .request(Method::POST, "/v1/interactions", Some(&app.keys.bot))
            .header("content-type", "application/json")
            .body(r#"{"channel": "webchat", "conversation_id": "t"}garbage"#)
            .send()
            .await
            .unwrap();
        assert_problem(res, 400, "invalid_request").await;
        let page = app
            .get_json("/v1/interactions", Some(&app.keys.agent))
            .await;
        assert_eq!(page_ids(&page), vec![id]);
    }
);

both_stores!(
    an_exactly_full_last_page_has_no_next_cursor,
    |app: TestApp| async move {
        let agent = Some(app.keys.agent.as_str());
        for _ in 0..3 {
            app.new_interaction().await;
            app.clock.advance(std::time::Duration::from_millis(5));
        }
        let page = app.get_json("/v1/interactions?limit=3", agent).await;
        assert_eq!(page_ids(&page).len(), 3);
        assert_eq!(page["next_cursor"], serde_json::Value::Null, "{page}");
        app.new_interaction().await; // a fourth: the oldest moves to a second page
        let page = app.get_json("/v1/interactions?limit=3", agent).await;
        let cursor = page["next_cursor"]
            .as_str()
            .expect("a fourth item follows")
            .to_string();
        let rest = app
            .get_json(&format!("/v1/interactions?limit=3&cursor={cursor}"), agent)
            .await;
        assert_eq!(page_ids(&rest).len(), 1);
        assert_eq!(rest["next_cursor"], serde_json::Value::Null);
    }
);
