//! One channel file (`channels/*.toml`): `name`, `kind`, the kind's settings
//! (docs/channels.md) and optional `[templates]`. Secrets (`secret`,
//! `auth_token`, `token`, `password`) must be written as `${VAR}`.
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::de::from_table;
use super::files::{
    Port, SmtpChannel, TokenChannel, TwilioChannel, WebhookChannel, WhatsappChannel,
};
use super::interpolate::{interpolate_table, is_single_reference};
use super::toml_file::{display_path, read_toml};
use super::validate::{check_name, http_url, template_problem};
use super::{ChannelConfig, ChannelKind, ConfigError, SmtpTls, TemplateOverrides};
use crate::domain::secrets::parse_whsec;

/// Keys that hold secrets: only `${VAR}` references are accepted in channel files.
const SECRET_KEYS: [&str; 4] = ["secret", "auth_token", "token", "password"];

/// The kinds, as written in `kind`.
const KINDS: &str = "webhook, twilio, whatsapp, slack, telegram or smtp";

pub(super) fn load_channel(
    path: &Path,
    env: &super::env::Environment,
) -> Result<ChannelConfig, ConfigError> {
    let file = display_path(path);
    let file = file.as_str();
    let err = |key: &str, problem: String| ConfigError::new(file, key, problem);
    let mut table = read_toml(path, file)?;

    for key in SECRET_KEYS {
        if let Some(toml::Value::String(raw)) = table.get(key) {
            if !is_single_reference(raw) {
                return Err(err(
                    key,
                    "secrets in channel files must be written as \"${VARIABLE}\", not as a literal value"
                        .into(),
                ));
            }
        }
    }
    interpolate_table(&mut table, env, file, "")?;

    let name = take_string(&mut table, "name", file)?;
    check_name(&name).map_err(|p| err("name", p))?;
    let kind = take_string(&mut table, "kind", file)?;
    let vouches_for_sender = match table.remove("vouches_for_sender") {
        None => matches!(kind.as_str(), "twilio" | "whatsapp" | "slack" | "telegram"),
        Some(toml::Value::Boolean(b)) => b,
        Some(_) => {
            return Err(err(
                "vouches_for_sender",
                "wrong type: expected a boolean".into(),
            ))
        }
    };
    let templates: TemplateOverrides = match table.remove("templates") {
        None => TemplateOverrides::default(),
        Some(toml::Value::Table(t)) => from_table(t, file, "templates")?,
        Some(_) => return Err(err("templates", "wrong type: expected a table".into())),
    };
    if let Some((key, problem)) = template_problem(&templates) {
        return Err(err(key, problem.into()));
    }
    if templates.subject.is_some() && kind != "smtp" {
        return Err(err(
            "templates.subject",
            "only smtp channels have a subject".into(),
        ));
    }

    let url = |key: &str, s: &str| http_url(s).map_err(|p| err(key, p));
    let required = |key: &str, s: &str| {
        if s.trim().is_empty() {
            Err(err(key, "must not be empty".into()))
        } else {
            Ok(())
        }
    };
    let kind = match kind.as_str() {
        "webhook" => {
            let c: WebhookChannel = from_table(table, file, "")?;
            ChannelKind::Webhook {
                url: url("url", &c.url)?,
                secret: parse_whsec(&c.secret).map_err(|p| err("secret", p))?,
            }
        }
        "twilio" => {
            let c: TwilioChannel = from_table(table, file, "")?;
            required("account_sid", &c.account_sid)?;
            required("auth_token", &c.auth_token)?;
            required("from", &c.from)?;
            ChannelKind::Twilio {
                base_url: url("base_url", &c.base_url)?,
                account_sid: c.account_sid,
                auth_token: SecretString::from(c.auth_token),
                from: c.from,
            }
        }
        "whatsapp" => {
            let c: WhatsappChannel = from_table(table, file, "")?;
            required("api_version", &c.api_version)?;
            required("phone_number_id", &c.phone_number_id)?;
            required("token", &c.token)?;
            ChannelKind::Whatsapp {
                base_url: url("base_url", &c.base_url)?,
                api_version: c.api_version,
                phone_number_id: c.phone_number_id,
                token: SecretString::from(c.token),
            }
        }
        "slack" | "telegram" => {
            let c: TokenChannel = from_table(table, file, "")?;
            required("token", &c.token)?;
            let default = if kind == "slack" {
                "https://slack.com"
            } else {
                "https://api.telegram.org"
            };
            let base_url = url("base_url", c.base_url.as_deref().unwrap_or(default))?;
            let token = SecretString::from(c.token);
            if kind == "slack" {
                ChannelKind::Slack { base_url, token }
            } else {
                ChannelKind::Telegram { base_url, token }
            }
        }
        "smtp" => smtp(from_table(table, file, "")?, file)?,
        _ => return Err(err("kind", format!("must be one of {KINDS}"))),
    };
    Ok(ChannelConfig {
        name,
        file: PathBuf::from(file),
        kind,
        templates,
        vouches_for_sender,
    })
}

fn smtp(c: SmtpChannel, file: &str) -> Result<ChannelKind, ConfigError> {
    let err = |key: &str, problem: &str| ConfigError::new(file, key, problem);
    if c.host.trim().is_empty() {
        return Err(err("host", "must not be empty"));
    }
    let default_port = match c.tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    };
    let port = match c.port {
        None => default_port,
        Some(Port::Number(n)) => u16::try_from(n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| err("port", "must be from 1 to 65535"))?,
        Some(Port::Text(s)) => s
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| err("port", "must be from 1 to 65535"))?,
    };
    if !c.from.contains('@') {
        return Err(err("from", "must be an e-mail address"));
    }
    match (&c.username, &c.password) {
        (Some(_), None) => return Err(err("password", "is required when username is set")),
        (None, Some(_)) => return Err(err("username", "is required when password is set")),
        _ => {}
    }
    Ok(ChannelKind::Smtp {
        host: c.host.trim().to_string(),
        port,
        tls: c.tls,
        username: c.username,
        password: c.password.map(SecretString::from),
        from: c.from,
    })
}

/// Removes the required string `key` from the top level of a channel file.
fn take_string(table: &mut toml::Table, key: &str, file: &str) -> Result<String, ConfigError> {
    match table.remove(key) {
        Some(toml::Value::String(s)) => Ok(s),
        Some(_) => Err(ConfigError::new(file, key, "wrong type: expected a string")),
        None => Err(ConfigError::new(file, key, "is required but missing")),
    }
}
