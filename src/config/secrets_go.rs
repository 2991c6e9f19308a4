//! Where each secret of a team's or channel's body goes
//! (docs/operator-api.md#secrets), declared once: the members that decide
//! it, as each channel kind and provider declares them (`secrets_go` of
//! its facts) and as the team's own sections are ([`declared`]). Two
//! rules are written over that declaration, never per section: a write
//! that keeps a secret as its `{"hmac"}` read-back while where it goes
//! changes is refused at the secret ([`secrets_moved`]), and a sealed
//! secret is bound to where it goes ([`secret_goes_to`]), so that an
//! export edited to send it elsewhere does not open
//! (docs/decisions/0550-a-sealed-secret-is-bound-to-its-destination.md).
use serde_json::Value;

use super::form::{channel_place, is_secret_member};
use crate::channels::ChannelKind;
use crate::domain::team_secrets::Goes;
use crate::error::Pointed;
use crate::{network_verification, number_checks};

/// The team's own sections that hold a secret, and where each goes
/// (nowhere: a key that signs).
const TEAM_SECTIONS: [(&str, Goes); 5] = [
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
    (
        "/wallet",
        Goes {
            secret: "signing_key",
            to: &[],
        },
    ),
];

/// The kind a section's declaration is of: its member that names the
/// kind, the kind's name, and whether a section that names none is of it.
#[derive(Debug, Clone, Copy)]
pub struct KindOf {
    pub member: &'static str,
    pub name: &'static str,
    pub default: bool,
}

/// One secret a body may hold, declared: the section it stands in (`""`:
/// the body itself), the kind that takes it (none: the section's own),
/// and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    pub section: &'static str,
    pub kind: Option<KindOf>,
    pub goes: Goes,
}

impl Declared {
    /// The secret's pointer.
    pub fn pointer(&self) -> String {
        format!("{}/{}", self.section, self.goes.secret)
    }

    /// Whether `body`'s section is of this declaration's kind (one that
    /// names none: of the default kind).
    fn applies(&self, body: &Value) -> bool {
        let Some(k) = self.kind else {
            return true;
        };
        let named = body.pointer(&format!("{}/{}", self.section, k.member));
        match named {
            Some(v) => v.as_str() == Some(k.name),
            None => k.default,
        }
    }
}

/// Every secret a channel's body (`channel`) or a team's body may hold,
/// as its section or its kind declares it.
pub fn declared(channel: bool) -> Vec<Declared> {
    let of = |section, member, name, default, goes: &'static [Goes]| {
        let kind = Some(KindOf {
            member,
            name,
            default,
        });
        goes.iter().map(move |g| Declared {
            section,
            kind,
            goes: *g,
        })
    };
    if channel {
        let kinds = ChannelKind::ALL.iter();
        return kinds
            .flat_map(|k| of("", "kind", k.name, false, k.secrets_go))
            .collect();
    }
    let own = TEAM_SECTIONS.iter().map(|(section, goes)| Declared {
        section,
        kind: None,
        goes: *goes,
    });
    let checks = (number_checks::ProviderConfig::ALL.iter()).flat_map(|p| {
        of(
            "/number_checks",
            "kind",
            p.source.as_str(),
            false,
            p.secrets_go,
        )
    });
    let verification = network_verification::ProviderConfig::ALL.iter();
    let verification = verification.flat_map(|p| {
        let default = p.name == super::number_verification::DEFAULT_PROVIDER;
        of(
            "/number_verification",
            "provider",
            p.name,
            default,
            p.secrets_go,
        )
    });
    own.chain(checks).chain(verification).collect()
}

/// Where the secret at `pointer` of `body` (of `place`: a team's id, a
/// channel's [`channel_place`]) goes: its kind and the members its
/// declaration names, as the body writes them; `""` for a secret no
/// declaration names (a security key: it signs, it is never sent).
pub fn secret_goes_to(place: &str, body: &Value, pointer: &str) -> String {
    let channel = place.starts_with(&channel_place(""));
    let found = (declared(channel).into_iter()).find(|d| d.pointer() == pointer && d.applies(body));
    let Some(d) = found else {
        return String::new();
    };
    let at = |member: &str| {
        let v = body.pointer(&format!("{}/{member}", d.section));
        v.cloned().unwrap_or(Value::Null)
    };
    let kind = d.kind.map_or("", |k| k.name);
    let to: Vec<Value> = d.goes.to.iter().map(|m| at(m)).collect();
    serde_json::json!([kind, to]).to_string()
}

/// The secrets `written` keeps as their `{"hmac"}` read-back though where
/// they go ([`secret_goes_to`]) differs from `stored`'s: each a problem at
/// its pointer. One rule over every declared secret.
pub fn secrets_moved(place: &str, written: &Value, stored: &Value) -> Vec<Pointed> {
    let channel = place.starts_with(&channel_place(""));
    let kept_back = |p: &str| (written.pointer(p)).is_some_and(|v| v.get("hmac").is_some());
    let mut pointers: Vec<String> = (declared(channel).iter())
        .filter(|d| is_secret_member(d.goes.secret))
        .map(Declared::pointer)
        .filter(|p| kept_back(p))
        .filter(|p| secret_goes_to(place, written, p) != secret_goes_to(place, stored, p))
        .collect();
    pointers.sort();
    pointers.dedup();
    (pointers.into_iter())
        .map(|pointer| Pointed {
            pointer,
            detail: "its destination changed: send the secret again".into(),
        })
        .collect()
}

/// [`secrets_moved`] for a team's body.
pub fn team_secrets_moved(written: &Value, stored: &Value) -> Vec<Pointed> {
    secrets_moved("", written, stored)
}

/// [`secrets_moved`] for a channel's body: its kind declares where each
/// of its secrets goes.
pub fn channel_secrets_moved(written: &Value, stored: &Value) -> Vec<Pointed> {
    secrets_moved(&channel_place(""), written, stored)
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

    /// `v` set at `pointer` of `body`, the objects on the way made.
    fn set(body: &mut Value, pointer: &str, v: Value) {
        let mut at = body;
        let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
        for (i, t) in tokens.iter().enumerate() {
            let o = at.as_object_mut().unwrap();
            if i + 1 == tokens.len() {
                o.insert(t.to_string(), v);
                return;
            }
            at = o.entry(t.to_string()).or_insert_with(|| json!({}));
        }
    }

    /// Generated from [`declared`], nothing written per section: for each
    /// secret every kind and section declares, each member that decides
    /// where it goes, changed while the secret is kept as its `{"hmac"}`,
    /// is refused at the secret, and a body sealed before that member was
    /// edited does not open at the secret; a section of its default kind
    /// is tried naming its kind and naming none.
    #[test]
    fn every_declared_destination_moved_is_refused_and_sealed_does_not_open() {
        use crate::domain::secrets_cipher::{Salts, SecretsCipher};
        use crate::domain::team_secrets::{open, seal};
        let cipher = SecretsCipher::new(&[("k".to_string(), [9u8; 32])]).unwrap();
        let mut tried = Vec::new();
        for channel in [false, true] {
            let place = match channel {
                true => channel_place("sms"),
                false => "acme".to_string(),
            };
            for d in declared(channel) {
                let names = match d.kind {
                    Some(k) if k.default => vec![Some(k), None],
                    Some(k) => vec![Some(k)],
                    None => vec![None],
                };
                for (named, member) in names
                    .iter()
                    .flat_map(|n| d.goes.to.iter().map(move |m| (n, m)))
                {
                    let mut stored = json!({});
                    if let Some(k) = named {
                        set(
                            &mut stored,
                            &format!("{}/{}", d.section, k.member),
                            json!(k.name),
                        );
                    }
                    for m in d.goes.to {
                        set(
                            &mut stored,
                            &format!("{}/{m}", d.section),
                            json!("https://a.example/"),
                        );
                    }
                    set(&mut stored, &d.pointer(), json!("s3cret"));
                    let mut written = stored.clone();
                    set(&mut written, &d.pointer(), kept());
                    let at = format!("{}/{member}", d.section);
                    let what = format!("{place}{at} ({named:?})");
                    assert!(
                        secrets_moved(&place, &written, &stored).is_empty(),
                        "{what}"
                    );
                    set(&mut written, &at, json!("https://b.example/"));
                    let refused = secrets_moved(&place, &written, &stored);
                    assert!(refused.iter().any(|p| p.pointer == d.pointer()), "{what}");
                    let sealed = seal(
                        &stored,
                        &place,
                        (&is_secret_member, secret_goes_to),
                        &cipher,
                        &Salts::new(),
                    );
                    assert!(
                        open(
                            &sealed,
                            &place,
                            (&is_secret_member, secret_goes_to),
                            &cipher
                        )
                        .is_ok(),
                        "{what}"
                    );
                    let mut edited = sealed.clone();
                    set(&mut edited, &at, json!("https://b.example/"));
                    let err = open(
                        &edited,
                        &place,
                        (&is_secret_member, secret_goes_to),
                        &cipher,
                    )
                    .unwrap_err();
                    assert_eq!(err.0, d.pointer(), "{what}");
                    tried.push(what);
                }
            }
        }
        // The rule reached the kinds that declare: a CAMARA section that
        // names no provider among them.
        assert!(
            tried
                .iter()
                .any(|t| t == "acme/number_verification/token_endpoint (None)"),
            "{tried:?}"
        );
        assert!(
            tried.iter().any(|t| t.starts_with("~channel:sms/base_url")),
            "{tried:?}"
        );
        assert!(
            tried.iter().any(|t| t.starts_with("acme/webhook/url")),
            "{tried:?}"
        );
    }

    #[test]
    fn a_camara_section_that_names_no_provider_keeps_its_secret_only_where_it_was() {
        let stored = json!({"number_verification": {"token_endpoint": "https://op.example/token",
                                                    "client_secret": "sealed"}});
        let written = json!({"number_verification": {"token_endpoint": "https://evil.example/token",
                                                     "client_secret": kept()}});
        let at = team_secrets_moved(&written, &stored);
        assert_eq!(at.len(), 1);
        assert_eq!(at[0].pointer, "/number_verification/client_secret");
        // Naming the default it had: where it goes did not change.
        let mut named = stored.clone();
        named["number_verification"]["provider"] = json!("camara");
        named["number_verification"]["client_secret"] = kept();
        assert!(team_secrets_moved(&named, &stored).is_empty());
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
