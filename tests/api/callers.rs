//! Callers (docs/api.md): a missing or unknown API key is 401, each role
//! reaches only its own endpoints, and another team's interaction is 404,
//! never 403.
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

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
