//! Errors as problem+json (docs/api.md): unknown paths are 404, bad and
//! malformed bodies and paths get a clear problem, never a 500.
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
    // A body labelled JSON that is refused: 400 or 422 `invalid_request`,
    // answered with the problem's body.
    let refused = |body: String, status: u16| {
        let sent = post(body.into(), Some("application/json"));
        async move { assert_problem(sent.await.unwrap(), status, "invalid_request").await }
    };
    refused("{not json".into(), 400).await;
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
    let b = refused(r#"{"channel": "webchat"}"#.into(), 400).await;
    assert!(
        b["detail"].as_str().unwrap().contains("conversation_id"),
        "{b}"
    );
    let body = r#"{"channel": "webchat", "conversation_id": "c", "session_pin": 482913}"#;
    let b = refused(body.into(), 400).await;
    assert!(b["detail"].as_str().unwrap().contains("session_pin"), "{b}");
    assert!(!b.to_string().contains("482913"), "{b}");
    // Present and typed right but not allowed: 422.
    refused(
        json!({"channel": "fax", "conversation_id": "c"}).to_string(),
        422,
    )
    .await;
    let long = json!({"channel": "webchat", "conversation_id": "x".repeat(257)});
    refused(long.to_string(), 422).await;
    let body = json!({"channel": "webchat", "conversation_id": "c", "session_pin": "12ab"});
    let b = refused(body.to_string(), 422).await;
    assert!(!b.to_string().contains("12ab"));
    // Nothing was created by any of these.
    let list: serde_json::Value = app
        .get_json("/v1/interactions", Some(&app.keys.agent))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
});

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
    a_member_named_twice_is_not_valid_json_and_changes_nothing,
    |app: TestApp| async move {
        let post = |path: String, body: &'static str| {
            app.request(Method::POST, &path, Some(&app.keys.bot))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        // Twice at the top, inside a nested object, and spelled once with
        // an escape: each 400, and no interaction was created.
        for body in [
            r#"{"channel": "webchat", "conversation_id": "a", "conversation_id": "b"}"#,
            r#"{"channel": "webchat", "conversation_id": "t", "contact": {"phone": "+447400123456", "email": "a@example.test", "phone": "+447400999888"}}"#,
            r#"{"channel": "webchat", "\u0063hannel": "sms", "conversation_id": "t"}"#,
        ] {
            let res = post("/v1/interactions".into(), body).await.unwrap();
            let problem = assert_problem(res, 400, "invalid_request").await;
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("twice"), "{detail}");
        }
        let page = app
            .get_json("/v1/interactions", Some(&app.keys.agent))
            .await;
        assert_eq!(page_ids(&page), Vec::<String>::new(), "nothing created");

        // A challenge asked with `method` twice: 400, no code sent.
        let id = app.new_interaction().await;
        let path = format!("/v1/interactions/{id}/challenges");
        let res = post(path, r#"{"method": "otp", "method": "otp"}"#)
            .await
            .unwrap();
        assert_problem(res, 400, "invalid_request").await;
        let otp = |m: &serde_json::Value| m["purpose"] == "otp";
        assert!(!app.chat_messages().await.iter().any(otp), "no code sent");

        // A signed login callback whose `outcome` is there twice (a signer
        // reading the first would have meant a failure): 400, and the
        // interaction stays unauthenticated; its link still works once.
        let link = app.issue_link(&id, json!({})).await;
        let token = link["token"].as_str().unwrap();
        let text = format!(
            r#"{{"token": "{token}", "outcome": "failure", "customer": {{"id": "cust-42"}}, "outcome": "success"}}"#
        );
        let key = app.keys.acme_key_bytes();
        let ts = app.now().unix_seconds();
        let msg_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let bytes = text.into_bytes();
        let signature = chatgate::domain::webhook_sig::sign(&key, &msg_id, ts, &bytes);
        let signed = Signed {
            bytes,
            id: msg_id,
            ts,
            signature,
        };
        let res = app.send_signed("/v1/login/callback", &signed).await;
        assert_problem(res, 400, "invalid_request").await;
        assert_eq!(app.get(&id).await["status"], "pending");
        assert_eq!(app.succeed(&link, "cust-42").await.status(), 200);
    }
);
