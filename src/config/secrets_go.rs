//! Where each secret of a team's or channel's body goes
//! (docs/operator-api.md#secrets): the members that decide it, as each
//! channel kind and provider declares them (`secrets_go` of its facts)
//! and as the team's own sections are. A write that keeps a secret as
//! its `{"hmac"}` read-back while one of them changes is refused at the
//! secret: it reaches a new destination only when its writer sends it.
use serde_json::Value;

use crate::channels::ChannelKind;
use crate::domain::team_secrets::{moved, Goes};
use crate::error::Pointed;
use crate::{network_verification, number_checks};

/// The team's own sections that send a secret, and where.
const TEAM_SECTIONS: [(&str, Goes); 4] = [
    (
        "/webhook",
        Goes {
            secret: "secret",
            to: &["url"],
        },
    ),
    (
        "/audit/webhook",
        Goes {
            secret: "secret",
            to: &["url"],
        },
    ),
    (
        "/oidc",
        Goes {
            secret: "client_secret",
            to: &["issuer"],
        },
    ),
    (
        "/console/oidc",
        Goes {
            secret: "client_secret",
            to: &["issuer"],
        },
    ),
];

/// The secrets a team's `written` body keeps as their `{"hmac"}` though
/// where they go differs from the `stored` body's: each a problem at its
/// pointer. A section's kind (`kind`, `provider`) decides too.
pub fn team_secrets_moved(written: &Value, stored: &Value) -> Vec<Pointed> {
    let mut problems: Vec<Pointed> = (TEAM_SECTIONS.iter())
        .flat_map(|(section, goes)| {
            moved(written, stored, section, None, std::slice::from_ref(goes))
        })
        .collect();
    let kind_of = |section: &str, member: &str| {
        let at = format!("{section}/{member}");
        written
            .pointer(&at)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let checks = kind_of("/number_checks", "kind");
    if let Some(info) =
        (number_checks::ProviderConfig::ALL.iter()).find(|p| p.source.as_str() == checks)
    {
        problems.extend(moved(
            written,
            stored,
            "/number_checks",
            Some("kind"),
            info.secrets_go,
        ));
    }
    let verification = kind_of("/number_verification", "provider");
    if let Some(info) =
        (network_verification::ProviderConfig::ALL.iter()).find(|p| p.name == verification)
    {
        let section = "/number_verification";
        problems.extend(moved(
            written,
            stored,
            section,
            Some("provider"),
            info.secrets_go,
        ));
    }
    problems
}

/// [`team_secrets_moved`] for a channel's body: its kind declares where
/// each of its secrets goes.
pub fn channel_secrets_moved(written: &Value, stored: &Value) -> Vec<Pointed> {
    let kind = written
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match ChannelKind::ALL.iter().find(|k| k.name == kind) {
        Some(info) => moved(written, stored, "", Some("kind"), info.secrets_go),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::is_secret_member;

    fn kept() -> Value {
        json!({"hmac": "00"})
    }

    #[test]
    fn every_declared_secret_is_a_secret_member_and_every_destination_a_key_of_its_kind() {
        for info in ChannelKind::ALL {
            for goes in info.secrets_go {
                assert!(
                    is_secret_member(goes.secret),
                    "{}: {}",
                    info.name,
                    goes.secret
                );
            }
        }
        // A provider's secrets and destinations are among its keys.
        let of_its_keys = |goes: &[Goes], keys: &[&str]| {
            for g in goes {
                assert!(is_secret_member(g.secret), "{}", g.secret);
                let members = g.to.iter().chain([&g.secret]);
                assert!(members.clone().all(|k| keys.contains(k)), "{g:?}");
            }
        };
        for info in number_checks::ProviderConfig::ALL {
            of_its_keys(info.secrets_go, info.keys);
        }
        for info in network_verification::ProviderConfig::ALL {
            of_its_keys(info.secrets_go, info.keys);
        }
    }

    #[test]
    fn a_kept_secret_whose_destination_changed_is_named_and_one_sent_again_is_not() {
        let stored =
            json!({"kind": "twilio", "base_url": "https://api.twilio.com", "auth_token": "sealed"});
        let mut written =
            json!({"kind": "twilio", "base_url": "https://evil.example", "auth_token": kept()});
        let problems = channel_secrets_moved(&written, &stored);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pointer, "/auth_token");
        assert!(problems[0].detail.contains("send the secret again"));
        // Where it was: kept.
        written["base_url"] = json!("https://api.twilio.com");
        assert!(channel_secrets_moved(&written, &stored).is_empty());
        // A base URL added where the default stood moves it too.
        let bare = json!({"kind": "twilio", "auth_token": "sealed"});
        assert_eq!(channel_secrets_moved(&written, &bare).len(), 1);
        // Sent again as itself: the writer knows it.
        written["base_url"] = json!("https://evil.example");
        written["auth_token"] = json!("the-token");
        assert!(channel_secrets_moved(&written, &stored).is_empty());
        // Another kind that takes the same member: its kind decides too.
        let slack = json!({"kind": "slack", "token": "sealed"});
        let telegram = json!({"kind": "telegram", "token": kept()});
        assert_eq!(
            channel_secrets_moved(&telegram, &slack)[0].pointer,
            "/token"
        );
        // An smtp password follows its host, port and TLS.
        let mail =
            json!({"kind": "smtp", "host": "smtp.example", "port": 587, "password": "sealed"});
        let mut moved_mail =
            json!({"kind": "smtp", "host": "smtp.example", "port": 2525, "password": kept()});
        assert_eq!(channel_secrets_moved(&moved_mail, &mail).len(), 1);
        moved_mail["port"] = json!(587);
        moved_mail["tls"] = json!("none");
        assert_eq!(channel_secrets_moved(&moved_mail, &mail).len(), 1);
    }

    #[test]
    fn a_team_s_sections_and_providers_name_where_their_secrets_go() {
        let stored = json!({
            "webhook": {"url": "https://bot.example/events", "secret": "sealed"},
            "oidc": {"issuer": "https://id.example", "client_secret": "sealed"},
            "number_verification": {"provider": "camara", "token_endpoint": "https://op.example/token",
                                    "client_secret": "sealed"},
            "number_checks": {"kind": "twilio_lookup", "auth_token": "sealed"},
        });
        let written = json!({
            "webhook": {"url": "https://bot.example/events", "secret": kept()},
            "oidc": {"issuer": "https://evil.example", "client_secret": kept()},
            "number_verification": {"provider": "camara", "token_endpoint": "https://evil.example/token",
                                    "client_secret": kept()},
            "number_checks": {"kind": "twilio_lookup", "base_url": "https://evil.example", "auth_token": kept()},
        });
        let mut at: Vec<String> = (team_secrets_moved(&written, &stored).into_iter())
            .map(|p| p.pointer)
            .collect();
        at.sort();
        assert_eq!(
            at,
            [
                "/number_checks/auth_token",
                "/number_verification/client_secret",
                "/oidc/client_secret"
            ]
        );
        let vonage = json!({"number_verification": {"provider": "vonage", "api_url": "https://api.nexmo.com",
                                                    "private_key": "sealed"}});
        let repointed = json!({"number_verification": {"provider": "vonage", "api_url": "https://evil.example",
                                                       "private_key": kept()}});
        let at = team_secrets_moved(&repointed, &vonage);
        assert_eq!(at[0].pointer, "/number_verification/private_key");
    }
}
