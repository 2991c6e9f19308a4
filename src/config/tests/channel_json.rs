//! The one validator of a channel: a JSON body is checked by the loader
//! of channel files, its secrets written as themselves, each problem named
//! by its RFC 6901 pointer; a body that writes what a file writes is the
//! same channel (the same print, the same read back).
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::operator::with_operator;
use super::{whsec, TWILIO_TOKEN};
use crate::channels::ChannelKind;
use crate::config::Config;

/// The fixture's `sms` channel (`twilio`) as a body, its secrets written.
fn sms_body() -> Value {
    json!({
        "name": "sms",
        "kind": "twilio",
        "base_url": "https://api.twilio.com",
        "account_sid": "AC123",
        "auth_token": TWILIO_TOKEN,
        "from": "+15550006666",
        "templates": {"otp": "#PIN# is your code."},
    })
}

/// The fixture's `webchat` channel (`webhook`) as a body.
fn webchat_body() -> Value {
    json!({
        "name": "webchat",
        "kind": "webhook",
        "url": "http://127.0.0.1:9000/chatgate/messages",
        "secret": whsec(0xE5),
    })
}

fn pointers(config: &Config, body: &Value) -> Vec<String> {
    match config.channel_of_json(body, &Default::default()) {
        Ok(_) => Vec::new(),
        Err(problems) => {
            let text = serde_json::to_string(&problems).unwrap();
            assert!(!text.contains(TWILIO_TOKEN), "{text}");
            assert!(!text.contains("not-a-whsec"), "{text}");
            let mut pointers: Vec<String> = problems.into_iter().map(|p| p.pointer).collect();
            pointers.sort();
            pointers
        }
    }
}

#[test]
fn a_body_that_writes_what_a_file_writes_is_the_same_channel() {
    let config = with_operator().load().unwrap();
    for (body, name) in [(sms_body(), "sms"), (webchat_body(), "webchat")] {
        let from_file = &config.channels[name];
        let from_body = config.channel_of_json(&body, &Default::default()).unwrap();
        assert_eq!(from_body.name, name);
        assert_eq!(from_body.kind.name(), from_file.kind.name());
        assert_eq!(from_body.print.digest(), from_file.print.digest(), "{name}");
        assert_eq!(from_body.form, from_file.form, "{name}");
        assert_eq!(from_body.vouches_for_sender, from_file.vouches_for_sender);
        assert_eq!(from_body.templates.texts, from_file.templates.texts);
        let hmac = from_body.form[if name == "sms" {
            "auth_token"
        } else {
            "secret"
        }]["hmac"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(hmac.len() == 64 && hmac.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let ChannelKind::Twilio(sms) = config
        .channel_of_json(&sms_body(), &Default::default())
        .unwrap()
        .kind
    else {
        panic!("not a twilio channel");
    };
    assert_eq!(sms.auth_token.get().expose_secret(), TWILIO_TOKEN);
    // Another value is another channel.
    let mut other = sms_body();
    other["auth_token"] = json!("another-token");
    let other = config.channel_of_json(&other, &Default::default()).unwrap();
    assert_ne!(other.print.digest(), config.channels["sms"].print.digest());
    assert_ne!(
        other.form["auth_token"],
        config.channels["sms"].form["auth_token"]
    );
}

#[test]
fn a_bad_body_lists_every_problem_at_its_pointer() {
    let config = with_operator().load().unwrap();
    let mut body = sms_body();
    body["name"] = json!("Not A Name");
    body["vouches_for_sender"] = json!("yes");
    body["base_url"] = json!("ftp://api.twilio.com");
    body["colour"] = json!("red");
    body["note"] = Value::Null;
    body["templates"]["subject"] = json!("Your code");
    assert_eq!(
        pointers(&config, &body),
        [
            "/base_url",
            "/colour",
            "/name",
            "/note",
            "/templates/subject",
            "/vouches_for_sender"
        ]
    );
    // A member each kind requires, missing; a kind there is none of.
    let mut body = webchat_body();
    body.as_object_mut().unwrap().remove("url");
    body["secret"] = json!("not-a-whsec-key");
    assert_eq!(pointers(&config, &body), ["/secret", "/url"]);
    let mut body = webchat_body();
    body["kind"] = json!("carrier-pigeon");
    assert_eq!(pointers(&config, &body), ["/kind"]);
    let problems = config
        .channel_of_json(&json!({"kind": "webhook"}), &Default::default())
        .unwrap_err();
    assert_eq!(problems[0].pointer, "/name");
    assert_eq!(problems[0].detail, "is required but missing");
    let problems = config
        .channel_of_json(&json!(["sms"]), &Default::default())
        .unwrap_err();
    assert_eq!(problems[0].pointer, "");
}

#[test]
fn a_reference_is_not_read_in_a_body() {
    let config = with_operator().load().unwrap();
    // Where a secret goes, `${…}` is refused, naming nothing it names.
    let mut body = sms_body();
    body["auth_token"] = json!("${FX_TWILIO_TOKEN}");
    let problems = config
        .channel_of_json(&body, &Default::default())
        .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].pointer, "/auth_token");
    assert!(
        !problems[0].detail.contains("FX_TWILIO_TOKEN"),
        "{problems:?}"
    );
    // The rest of the body is checked past it, a secret of each kind.
    body["templates"]["subject"] = json!("Your code");
    assert_eq!(
        pointers(&config, &body),
        ["/auth_token", "/templates/subject"]
    );
    let mut body = webchat_body();
    body["secret"] = json!("${FX_WEBCHAT_SECRET}");
    body["templates"] = json!({"subject": "Your code"});
    assert_eq!(pointers(&config, &body), ["/secret", "/templates/subject"]);
    // Elsewhere it is the text itself, not the variable's value.
    let mut body = sms_body();
    body["account_sid"] = json!("${FX_TWILIO_SID}");
    let ChannelKind::Twilio(sms) = config
        .channel_of_json(&body, &Default::default())
        .unwrap()
        .kind
    else {
        panic!("not a twilio channel");
    };
    assert_eq!(sms.account_sid, "${FX_TWILIO_SID}");
    // A secret that is not a string is a problem of its type.
    let mut body = sms_body();
    body["auth_token"] = json!(42);
    let problems = config
        .channel_of_json(&body, &Default::default())
        .unwrap_err();
    assert_eq!(problems[0].pointer, "/auth_token");
    assert!(
        problems[0].detail.contains("expected a string"),
        "{problems:?}"
    );
}
