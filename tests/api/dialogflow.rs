//! Dialogflow CX's webhook end to end
//! (docs/integrating-bot-platforms.md#dialogflow-cx): recorded
//! `WebhookRequest` bodies per tag (`tests/api/dialogflow/*.json`, with the
//! members Dialogflow sends that the gateway does not read), answered as a
//! `WebhookResponse`; a wrong code counts as the API's does, up to the lock;
//! a number is its integer's digits; text that is no code is not counted;
//! code_expired, send_failed, and the 400 and 404 answers.
use serde_json::{json, Value};

use crate::helpers::*;

const PATH: &str = "/v1/integrations/dialogflow-cx";

/// The acme team's `[dialogflow]` on `webchat`; 5 attempts per code and
/// the lock at the third failure, so that a few calls reach it.
fn setup() -> Setup {
    Setup {
        team_extra: "[dialogflow]\nchannel = \"webchat\"\n".into(),
        defaults: "[defaults.otp]\nmax_attempts = 5\n[defaults.lockout]\nthreshold = 3\n".into(),
        ..Setup::default()
    }
}

/// The recorded body of `tag`, on `session`, for the customer `cust-<session>`.
pub(crate) fn turn(tag: &str, session: &str) -> Value {
    let recorded = match tag {
        "status" => include_str!("dialogflow/status.json"),
        "send_code" => include_str!("dialogflow/send_code.json"),
        "check_code" => include_str!("dialogflow/check_code.json"),
        "send_link" => include_str!("dialogflow/send_link.json"),
        _ => panic!("no recorded body for {tag}"),
    };
    let mut body: Value = serde_json::from_str(recorded).unwrap();
    let name = body["sessionInfo"]["session"].as_str().unwrap();
    body["sessionInfo"]["session"] = name.replace("SESSION", session).into();
    body["sessionInfo"]["parameters"]["customer_ref"] = format!("cust-{session}").into();
    body
}

/// `chatgate.check_code` with the parameter `code` (as `@sys.number` or a
/// string entity gives it; `None`: not set) and what the customer typed.
fn check(session: &str, code: Option<Value>, text: &str) -> Value {
    let mut body = turn("check_code", session);
    let params = body["sessionInfo"]["parameters"].as_object_mut().unwrap();
    match &code {
        Some(c) => params.insert("code".into(), c.clone()),
        None => params.remove("code"),
    };
    let resolved = code.unwrap_or(Value::Null);
    body["pageInfo"]["formInfo"]["parameterInfo"][0]["value"] = resolved.clone();
    body["intentInfo"]["parameters"]["code"] =
        json!({"originalValue": text, "resolvedValue": resolved});
    body["text"] = text.into();
    body
}

/// Posts `body` as the bot; the answer must be a 200 WebhookResponse.
async fn call(app: &TestApp, body: &Value) -> Value {
    let res = app.post_json(PATH, Some(&app.keys.bot), body).await;
    assert_eq!(res.status(), 200, "{body}");
    let answer: Value = res.json().await.unwrap();
    let params = &answer["sessionInfo"]["parameters"];
    for member in [
        "chatgate_interaction_id",
        "chatgate_authenticated",
        "chatgate_method",
        "chatgate_challenge_id",
        "chatgate_result",
    ] {
        assert!(params.get(member).is_some(), "{member} in {answer}");
    }
    assert!(params["chatgate_authenticated"].is_boolean(), "{answer}");
    answer
}

fn result(answer: &Value) -> &str {
    answer["sessionInfo"]["parameters"]["chatgate_result"]
        .as_str()
        .unwrap()
}

fn said(answer: &Value) -> &str {
    answer["fulfillmentResponse"]["messages"][0]["text"]["text"][0]
        .as_str()
        .unwrap()
}

fn param<'a>(answer: &'a Value, name: &str) -> &'a Value {
    &answer["sessionInfo"]["parameters"][name]
}

/// Sends codes until one has no leading zero (a number drops it): the code
/// and the answer that sent it.
async fn code_without_leading_zero(app: &TestApp, session: &str) -> (String, Value) {
    for _ in 0..4 {
        let sent = call(app, &turn("send_code", session)).await;
        assert_eq!(result(&sent), "code_sent", "{sent}");
        let code = app.last_code().await;
        if !code.starts_with('0') {
            return (code, sent);
        }
    }
    panic!("four codes with a leading zero");
}

both_stores!(every_tag_answers_a_webhook_response, setup: setup(), |app: TestApp| async move {
    let print = |tag: &str, request: &Value, answer: &Value| {
        println!("--- {tag} request\n{request:#}\n--- {tag} answer\n{answer:#}");
    };
    let status = turn("status", "df-tour");
    let answer = call(&app, &status).await;
    print("chatgate.status", &status, &answer);
    assert_eq!(result(&answer), "not_authenticated");
    assert_eq!(said(&answer), "You are not verified yet.");
    let id = param(&answer, "chatgate_interaction_id").as_str().unwrap().to_string();
    assert_eq!(param(&answer, "chatgate_challenge_id"), &Value::Null);
    assert_eq!(param(&answer, "chatgate_method"), &Value::Null);
    // The interaction is the API's: the session's last segment on webchat.
    let read = app.get(&id).await;
    assert_eq!(read["conversation_id"], "df-tour");
    assert_eq!(read["channel"], "webchat");
    assert_eq!(read["customer_ref"], "cust-df-tour");

    let (code, sent) = code_without_leading_zero(&app, "df-tour").await;
    print("chatgate.send_code", &turn("send_code", "df-tour"), &sent);
    assert_eq!(param(&sent, "chatgate_interaction_id"), id.as_str());
    let cid = param(&sent, "chatgate_challenge_id").as_str().unwrap().to_string();
    assert_eq!(app.get(&id).await["open_challenge"]["challenge_id"], cid.as_str());
    assert!(said(&sent).contains("verification code"), "{sent}");

    // `@sys.number` gives the code as 123456.0.
    let number: f64 = code.parse().unwrap();
    let request = check("df-tour", Some(json!(number)), &code);
    assert!(request.to_string().contains(&format!("{code}.0")), "{request}");
    let checked = call(&app, &request).await;
    print("chatgate.check_code", &request, &checked);
    assert_eq!(result(&checked), "authenticated", "{checked}");
    assert_eq!(param(&checked, "chatgate_authenticated"), true);
    assert_eq!(param(&checked, "chatgate_method"), "otp");
    assert_eq!(param(&checked, "chatgate_challenge_id"), &Value::Null);
    assert_eq!(param(&checked, "code"), &Value::Null);
    assert!(checked["sessionInfo"]["parameters"].as_object().unwrap().contains_key("code"));
    assert_eq!(app.get(&id).await["status"], "authenticated");

    let again = call(&app, &turn("status", "df-tour")).await;
    assert_eq!(result(&again), "authenticated");
    assert!(!again["sessionInfo"]["parameters"].as_object().unwrap().contains_key("code"));

    let link = turn("send_link", "df-tour");
    let linked = call(&app, &link).await;
    print("chatgate.send_link", &link, &linked);
    assert_eq!(result(&linked), "link_sent", "{linked}");
    assert_eq!(said(&linked), "I have sent you a link to sign in. Please open it to continue.");
    let purposes: Vec<Value> = app.chat_messages().await.iter().map(|m| m["purpose"].clone()).collect();
    assert!(purposes.contains(&json!("login_link")), "{purposes:?}");
});

both_stores!(wrong_codes_count_as_the_api_s_up_to_the_lock, setup: setup(), |app: TestApp| async move {
    let sent = call(&app, &turn("send_code", "df-lock")).await;
    let id = param(&sent, "chatgate_interaction_id").as_str().unwrap().to_string();
    let cid = param(&sent, "chatgate_challenge_id").as_str().unwrap().to_string();
    let wrong = wrong_code(&app.last_code().await);

    // First failure, through Dialogflow, as a string entity.
    let first = call(&app, &check("df-lock", Some(json!(wrong)), &wrong)).await;
    assert_eq!(result(&first), "wrong_code");
    assert_eq!(said(&first), "That code is not right. You have 4 attempts left.");
    assert_eq!(param(&first, "chatgate_challenge_id"), cid.as_str());
    // Second, through the API: it sees the first.
    let res = app.verify_code(&id, &cid, &wrong).await;
    let body = assert_problem(res, 401, "invalid_code").await;
    assert_eq!(body["attempts_remaining"], 3);
    // Third, through Dialogflow again: the lockout's threshold.
    let third = call(&app, &check("df-lock", Some(json!(wrong)), &wrong)).await;
    assert_eq!(result(&third), "locked", "{third}");
    assert_eq!(said(&third), "Too many failed attempts. Please try again later.");
    assert_eq!(app.get(&id).await["status"], "locked");
    let status = call(&app, &turn("status", "df-lock")).await;
    assert_eq!(result(&status), "locked");
    // A new code is refused as the API refuses it.
    let refused = call(&app, &turn("send_code", "df-lock")).await;
    assert_eq!(result(&refused), "locked");
});

both_stores!(text_that_is_no_code_is_wrong_and_not_counted, setup: setup(), |app: TestApp| async move {
    let sent = call(&app, &turn("send_code", "df-text")).await;
    let id = param(&sent, "chatgate_interaction_id").as_str().unwrap().to_string();
    let cid = param(&sent, "chatgate_challenge_id").as_str().unwrap().to_string();
    let code = app.last_code().await;
    for (param_code, text) in [
        (None, "I have not got it yet"),
        (None, "12 34 56"),
        (Some(json!(12.5)), "twelve and a half"),
        (Some(json!("1234567890123456789012")), "1234567890123456789012"),
    ] {
        let answer = call(&app, &check("df-text", param_code, text)).await;
        assert_eq!(result(&answer), "wrong_code", "{text}: {answer}");
        assert_eq!(said(&answer), "That code is not right. You have 5 attempts left.");
    }
    let read = app
        .get_json(&format!("/v1/interactions/{id}/challenges/{cid}"), Some(&app.keys.bot))
        .await;
    assert_eq!(read["attempts_remaining"], 5, "nothing counted: {read}");
    // Without a `code` parameter, the text is the code.
    let right = call(&app, &check("df-text", None, &format!(" {code} "))).await;
    assert_eq!(result(&right), "authenticated", "{right}");
});

both_stores!(a_code_without_a_live_challenge_is_code_expired, setup: setup(), |app: TestApp| async move {
    let none = call(&app, &check("df-exp", Some(json!("123456")), "123456")).await;
    assert_eq!(result(&none), "code_expired");
    assert_eq!(param(&none, "chatgate_challenge_id"), &Value::Null);
    // Expired.
    call(&app, &turn("send_code", "df-exp")).await;
    let code = app.last_code().await;
    app.advance(181);
    let late = call(&app, &check("df-exp", Some(json!(code)), &code)).await;
    assert_eq!(result(&late), "code_expired", "{late}");
    assert_eq!(said(&late), "That code is no longer valid. Please ask for a new one.");
    // Used up: a right code, then the same again.
    call(&app, &turn("send_code", "df-exp")).await;
    let code = app.last_code().await;
    let right = call(&app, &check("df-exp", Some(json!(code)), &code)).await;
    assert_eq!(result(&right), "authenticated");
    let used = call(&app, &check("df-exp", Some(json!(code)), &code)).await;
    assert_eq!(result(&used), "code_expired");
    // Replaced: the first of two codes.
    call(&app, &turn("send_code", "df-exp")).await;
    let first = app.last_code().await;
    call(&app, &turn("send_code", "df-exp")).await;
    let second = app.last_code().await;
    if first != second {
        let stale = call(&app, &check("df-exp", Some(json!(first)), &first)).await;
        assert_eq!(result(&stale), "wrong_code", "the open challenge is the second");
    }
});

/// A `[dialogflow]` channel whose chat cannot be reached (a chat that
/// vouches for its sender, so that a code may go there).
fn unreachable_setup() -> Setup {
    let channel = format!(
        "name = \"deadchat\"\nkind = \"webhook\"\nvouches_for_sender = true\nurl = \"http://127.0.0.1:{}/messages\"\nsecret = \"${{CG_TEST_UNSET_DEAD:-{}}}\"\n",
        free_port(),
        chatgate::domain::secrets::generate_whsec()
    );
    Setup {
        extra_channels: vec![("deadchat".into(), channel)],
        team_extra: "[dialogflow]\nchannel = \"deadchat\"\n".into(),
        ..Setup::default()
    }
}

both_stores!(a_message_the_channel_fails_is_send_failed, setup: unreachable_setup(), |app: TestApp| async move {
    let code = call(&app, &turn("send_code", "df-dead")).await;
    assert_eq!(result(&code), "send_failed", "{code}");
    assert_eq!(said(&code), "Sorry, I could not send the message. Please try again.");
    assert_eq!(param(&code, "chatgate_challenge_id"), &Value::Null);
    let link = call(&app, &turn("send_link", "df-dead")).await;
    assert_eq!(result(&link), "send_failed", "{link}");
    let id = param(&link, "chatgate_interaction_id").as_str().unwrap().to_string();
    assert_eq!(app.get(&id).await["channel"], "deadchat");
});

both_stores!(what_is_not_a_webhook_request_is_400_and_a_team_without_dialogflow_404, setup: setup(), |app: TestApp| async move {
    let bot = Some(app.keys.bot.as_str());
    let mut unknown = turn("status", "df-bad");
    unknown["fulfillmentInfo"]["tag"] = "chatgate.unlock".into();
    let body = assert_problem(app.post_json(PATH, bot, &unknown).await, 400, "invalid_request").await;
    assert!(body["detail"].as_str().unwrap().contains("fulfillmentInfo.tag"), "{body}");
    let mut no_session = turn("status", "df-bad");
    no_session.as_object_mut().unwrap().remove("sessionInfo");
    assert_problem(app.post_json(PATH, bot, &no_session).await, 400, "invalid_request").await;
    let mut wrong_type = turn("status", "df-bad");
    wrong_type["fulfillmentInfo"] = json!("chatgate.status");
    assert_problem(app.post_json(PATH, bot, &wrong_type).await, 400, "invalid_request").await;
    let mut not_a_session = turn("status", "df-bad");
    not_a_session["sessionInfo"]["session"] = "df-bad".into();
    assert_problem(app.post_json(PATH, bot, &not_a_session).await, 400, "invalid_request").await;
    let list = app.get_json("/v1/interactions?channel=webchat&conversation_id=df-bad", Some(&app.keys.agent)).await;
    assert_eq!(list["items"], json!([]), "nothing created: {list}");
    // Globex has no [dialogflow]; an agent key is no bot.
    let globex = Some(app.keys.globex_bot.as_str());
    let status = turn("status", "df-bad");
    assert_problem(app.post_json(PATH, globex, &status).await, 404, "not_found").await;
    let agent = Some(app.keys.agent.as_str());
    assert_problem(app.post_json(PATH, agent, &status).await, 403, "forbidden").await;
});

/// The document states the operation: its request takes members it does
/// not list (Dialogflow's), its answer is what the gateway answers.
#[tokio::test]
async fn the_document_states_the_webhook() {
    let Some(app) = spawn_with(Backend::Memory, setup()).await else {
        return;
    };
    let doc = app.get_json("/openapi.json", None).await;
    let op = &doc["paths"][PATH]["post"];
    assert_eq!(op["operationId"], "dialogflow_cx_webhook");
    let request = &op["requestBody"]["content"]["application/json"]["schema"];
    for tag in ["status", "send_code", "check_code", "send_link"] {
        let body = turn(tag, "df-doc");
        crate::openapi::conforms(&doc, request, &body, tag).unwrap();
    }
    let answer_schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
    let sent = call(&app, &turn("send_code", "df-doc")).await;
    crate::openapi::conforms(&doc, answer_schema, &sent, "send_code").unwrap();
    let wrong = call(&app, &check("df-doc", Some(json!(1.0)), "1")).await;
    crate::openapi::conforms(&doc, answer_schema, &wrong, "check_code").unwrap();
}

/// The document names the tags the handler answers, the deliveries it
/// passes on, and the session's form: what it accepts is not refused for
/// its form.
#[tokio::test]
async fn the_document_names_the_tags_and_parameters() {
    let Some(app) = spawn_with(Backend::Memory, setup()).await else {
        return;
    };
    let doc = app.get_json("/openapi.json", None).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["DialogflowTag"]["enum"],
        json!([
            "chatgate.status",
            "chatgate.send_code",
            "chatgate.check_code",
            "chatgate.send_link"
        ])
    );
    let params = &schemas["DialogflowParameters"];
    assert_eq!(params["additionalProperties"], true, "{params}");
    assert_eq!(
        params["properties"]["customer_ref"]["$ref"],
        "#/components/schemas/CustomerRefText"
    );
    let deliveries = params["properties"]["chatgate_delivery"]["enum"]
        .as_array()
        .unwrap();
    assert!(deliveries.contains(&json!("chat")) && deliveries.contains(&json!("sms")));
    assert!(params["properties"].get("code").is_some(), "{params}");
    let info = &schemas["DialogflowSessionInfo"];
    assert_eq!(info["properties"]["session"]["pattern"], "/sessions/[^/]+$");
    let three = app.get_json("/openapi.json?version=3.0", None).await;
    assert_eq!(
        three["components"]["schemas"]["DialogflowTag"]["enum"],
        schemas["DialogflowTag"]["enum"]
    );
}

/// One code per send window.
fn one_send_setup() -> Setup {
    Setup {
        team_extra: "[dialogflow]\nchannel = \"webchat\"\n".into(),
        defaults: "[defaults.otp]\nmax_sends = 1\n".into(),
        ..Setup::default()
    }
}

both_stores!(the_send_limit_is_rate_limited, setup: one_send_setup(), |app: TestApp| async move {
    let first = call(&app, &turn("send_code", "df-limit")).await;
    assert_eq!(result(&first), "code_sent");
    let cid = param(&first, "chatgate_challenge_id").clone();
    let second = call(&app, &turn("send_code", "df-limit")).await;
    assert_eq!(result(&second), "rate_limited", "{second}");
    assert_eq!(said(&second), "Too many codes were sent. Please try again later.");
    // The first code is still the open one, as after the API's 429.
    assert_eq!(param(&second, "chatgate_challenge_id"), &cid);
    let id = param(&first, "chatgate_interaction_id").as_str().unwrap().to_string();
    let res = app
        .post_json(&format!("/v1/interactions/{id}/challenges"), Some(&app.keys.bot), &json!({"method": "otp"}))
        .await;
    assert_problem(res, 429, "rate_limited").await;
});

/// The acme team's `[dialogflow]` on `webchat`, speaking English and
/// Spanish, with Spanish `say_*` texts and a Spanish code message.
fn setup_in_spanish() -> Setup {
    Setup {
        team_extra: "[dialogflow]\nchannel = \"webchat\"\n".into(),
        defaults: concat!(
            "[defaults.locale]\nsupported = [\"en\", \"es\"]\n",
            "[defaults.translations.es]\n",
            "otp = \"Tu código es #PIN#, por #MINUTES# minutos.\"\n",
            "say_not_authenticated = \"Todavía no estás verificado.\"\n",
            "say_code_sent = \"Te he enviado un código.\"\n",
            "say_wrong_code = \"Ese código no es correcto. Te quedan #LEFT# intentos.\"\n",
        )
        .into(),
        ..Setup::default()
    }
}

both_stores!(a_turn_speaks_the_language_dialogflow_names, setup: setup_in_spanish(), |app: TestApp| async move {
    let in_spanish = |mut body: Value| {
        body["languageCode"] = "es-ES".into();
        body
    };
    // The turn's `languageCode` is the conversation's language: what it
    // says, the interaction's `locale`, and the code the chat receives.
    let answer = call(&app, &in_spanish(turn("status", "df-es"))).await;
    assert_eq!(said(&answer), "Todavía no estás verificado.");
    let id = param(&answer, "chatgate_interaction_id").as_str().unwrap().to_string();
    let read = app.get(&id).await;
    assert_eq!((read["locale"].as_str(), read["requested_locale"].as_str()), (Some("es"), Some("es-ES")));
    let sent = call(&app, &in_spanish(turn("send_code", "df-es"))).await;
    assert_eq!(said(&sent), "Te he enviado un código.");
    let code = app.last_code().await;
    let msgs = app.chat_messages().await;
    let otp = msgs.iter().rev().find(|m| m["purpose"] == "otp").unwrap();
    assert_eq!(otp["text"], format!("Tu código es {code}, por 3 minutos."));
    // `#LEFT#` filled in the Spanish text.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let answer = call(&app, &in_spanish(check("df-es", Some(wrong.into()), wrong))).await;
    assert_eq!(result(&answer), "wrong_code");
    assert_eq!(said(&answer), "Ese código no es correcto. Te quedan 2 intentos.");
    // A turn in a language the team does not speak falls back to English,
    // and switches the conversation to it.
    let mut other = turn("status", "df-es");
    other["languageCode"] = "fr".into();
    let answer = call(&app, &other).await;
    assert_eq!(said(&answer), "You are not verified yet.");
    assert_eq!(app.get(&id).await["locale"], "en");
});

/// acme's `[dialogflow]` on an anonymous web chat, `anon`: a session
/// parameter names the customer, and anyone in the chat reads the code.
fn anonymous_setup() -> Setup {
    Setup {
        team_extra: "[dialogflow]\nchannel = \"anon\"\n".into(),
        extra_channels: vec![anonymous_chat("anon")],
        ..Setup::default()
    }
}

both_stores!(a_code_into_a_chat_that_does_not_vouch_is_not_allowed, setup: anonymous_setup(), |app: TestApp| async move {
    let mut body = turn("send_code", "df-anon");
    body["sessionInfo"]["parameters"]["customer_ref"] = "victim-42".into();
    let answer = call(&app, &body).await;
    assert_eq!(result(&answer), "not_allowed", "{answer}");
    assert_eq!(
        said(&answer),
        "I cannot send a code into this chat. Ask me for a sign-in link, or for a code by text message."
    );
    assert_eq!(param(&answer, "chatgate_challenge_id"), &Value::Null);
    assert!(app.chat_messages().await.iter().all(|m| m["purpose"] != "otp"));
    // `chatgate_delivery = "chat"` said outright is refused alike; a link is not.
    body["sessionInfo"]["parameters"]["chatgate_delivery"] = "chat".into();
    assert_eq!(result(&call(&app, &body).await), "not_allowed");
    assert_eq!(result(&call(&app, &turn("send_link", "df-anon")).await), "link_sent");
});

both_stores!(a_number_that_dropped_a_code_s_leading_zero_is_padded_back, setup: setup(), |app: TestApp| async move {
    // Codes are uniform: about one in ten starts with a zero. Each session
    // is its own customer, so no send limit is reached on the way.
    let mut found = None;
    for i in 0..200 {
        let session = format!("df-zero-{i}");
        let sent = call(&app, &turn("send_code", &session)).await;
        assert_eq!(result(&sent), "code_sent", "{sent}");
        let code = app.last_code().await;
        if code.starts_with('0') {
            found = Some((session, code));
            break;
        }
    }
    let (session, code) = found.expect("a code with a leading zero in 200");
    // `@sys.number` gives 012345 as 12345.0: taken as 012345.
    let number: f64 = code.parse().unwrap();
    assert!(!format!("{number}").starts_with('0'));
    let checked = call(&app, &check(&session, Some(json!(number)), &code)).await;
    assert_eq!(result(&checked), "authenticated", "{checked}");
});
