//! One team file (`config/teams/*.toml`): identity, login page, channels,
//! security and API keys, event webhook, and its resolved settings.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::de::from_table;
use super::env::Environment;
use super::files::{ApiKeyEntry, DialogflowEntry, SecurityKeyEntry, TeamFile, WebhookEntry};
use super::interpolate::interpolate_table;
use super::resolve::{resolve_over, Layer};
use super::toml_file::{display_path, read_toml};
use super::validate::{check_label, check_name, http_url};
use super::{
    ApiKey, ChannelConfig, ChannelKind, ConfigError, Dialogflow, SecurityKey, Settings, Team,
    TeamWebhook,
};
use crate::channels::kind::KindInfo;
use crate::domain::challenge::Delivery;
use crate::domain::secrets::{parse_whsec, ApiKeyHash, HmacKey};
use crate::domain::secrets_cipher::{Salts, SecretsCipher};

/// What every team inherits from the system file, made once for all of
/// them: the `[defaults]` layer, its print and its resolved settings,
/// whose texts a team shares where it writes none of its own.
pub(super) struct Inherited<'a> {
    defaults: Layer<'a>,
    /// `server.public_url`, whose host a `[wallet]` certificate names.
    public_url: &'a str,
    print: super::ConfigPrint,
    /// `[defaults]` resolved (`Config::defaults`).
    resolved: &'a Settings,
    /// What makes a team's JSON form (its secrets read back), when the
    /// operator API is on.
    secrets: Option<ReadBacks<'a>>,
}

impl<'a> Inherited<'a> {
    /// `print`: [`defaults_print`] of the `[defaults]` of `defaults`, made
    /// once for the configuration (`Config::defaults_print`).
    pub(super) fn new(
        defaults: Layer<'a>,
        print: &super::ConfigPrint,
        resolved: &'a Settings,
        secrets: Option<ReadBacks<'a>>,
        public_url: &'a str,
    ) -> Self {
        Inherited {
            defaults,
            public_url,
            print: print.clone(),
            resolved,
            secrets,
        }
    }
}

/// The print every team's starts from: its `[defaults]` (`table`), as
/// `settings.KEY`.
pub(super) fn defaults_print(table: &toml::Table) -> super::ConfigPrint {
    let mut print = super::ConfigPrint::default();
    print.add_table("settings", table);
    print
}

/// What a read shows of a team's or channel's secrets: the cipher's
/// read-back, with the salt kept beside each (none for a file's).
#[derive(Clone, Copy)]
pub(super) struct ReadBacks<'a> {
    pub cipher: &'a SecretsCipher,
    pub salts: &'a Salts,
}

impl<'a> ReadBacks<'a> {
    /// A file's: its secrets have no salt.
    pub(super) fn of_file(cipher: &'a SecretsCipher) -> Self {
        static NONE: Salts = Salts::new();
        ReadBacks {
            cipher,
            salts: &NONE,
        }
    }
}

/// The JSON form of a file's `table` (docs/operator-api.md#the-representation),
/// its secrets read back at `place` (a team's id, a channel's
/// [`super::channel_place`]) under `secrets`; `Null` while the operator
/// API is off (nothing reads it). `table` added to `print`, each secret as
/// its read-back while the API is on (so that no digest holds a bare hash
/// of a secret, and one written anew moves it), as itself while it is off.
pub(super) fn form_of(
    table: &toml::Table,
    place: &str,
    secrets: Option<ReadBacks<'_>>,
    print: &mut super::ConfigPrint,
) -> serde_json::Value {
    let Some(r) = secrets else {
        print.add_table("", table);
        return serde_json::Value::Null;
    };
    let read_back =
        |pointer: &str, v: &str| r.cipher.read_back(place, pointer, r.salts.get(pointer), v);
    // Each secret read back once: the form shows the read-back the print
    // was made of.
    let shown = super::form::secrets_read_back(table, &read_back);
    print.add_table("", &shown);
    super::form::json_form(&shown, &|_, read_back: &str| read_back.to_owned())
}

pub(super) fn load_team(
    path: &Path,
    env: &Environment,
    inherited: &Inherited<'_>,
    channels: &BTreeMap<String, ChannelConfig>,
) -> Result<Team, ConfigError> {
    let file = display_path(path);
    let mut table = read_toml(path, &file)?;
    interpolate_table(
        &mut table,
        env,
        &super::toml_file::folder_of(path),
        &file,
        "",
    )?;
    let modified = super::toml_file::modified_at(path);
    let mut team = team_of_table(table, &file, inherited, channels)?;
    team.modified = modified;
    Ok(team)
}

/// The team `table` (interpolated, as `file` wrote it) makes, checked by
/// every rule of a team file: the one check of a file at start-up and of
/// an operator's JSON body (docs/operator-api.md#the-representation).
pub(super) fn team_of_table(
    table: toml::Table,
    file: &str,
    inherited: &Inherited<'_>,
    channels: &BTreeMap<String, ChannelConfig>,
) -> Result<Team, ConfigError> {
    let defaults = &inherited.defaults;
    let err = |key: &str, problem: String| ConfigError::new(file, key, problem);
    let place = table
        .get("id")
        .and_then(toml::Value::as_str)
        .unwrap_or_default();
    let mut own = super::ConfigPrint::default();
    let form = form_of(&table, place, inherited.secrets, &mut own);
    let mut print = inherited.print.clone();
    print.add_print("", &own);
    let raw: TeamFile = from_table(table, file, "")?;

    check_name(&raw.id).map_err(|p| err("id", p))?;
    if let Some(name) = &raw.display_name {
        display_name(name).map_err(|p| err("display_name", p))?;
    }
    let login_url = http_url(&raw.login_url).map_err(|p| err("login_url", p))?;

    let mut seen = BTreeSet::new();
    for (i, name) in raw.channels.iter().enumerate() {
        let key = format!("channels[{i}]");
        if !channels.contains_key(name) {
            return Err(err(
                &key,
                format!("no channel file defines a channel named {name:?}"),
            ));
        }
        if !seen.insert(name) {
            return Err(err(&key, format!("channel {name:?} is listed twice")));
        }
        let info = channels.get(name).map(|c| c.kind.info());
        if let Some(info) = info.filter(|i| !i.chat) {
            let (kind, serves) = (info.name, off_chat_serves(info));
            return Err(err(
                &key,
                format!("channel {name:?} is of kind {kind}, which serves only {serves}"),
            ));
        }
    }
    if let Some(name) = &raw.voice_channel {
        voice_channel(name, channels).map_err(|p| err("voice_channel", p))?;
    }
    let delivery = [
        ("sms_channel", &raw.sms_channel, Delivery::Sms),
        ("email_channel", &raw.email_channel, Delivery::Email),
    ];
    for (key, chosen, serves) in delivery {
        let kinds: Vec<&str> = ChannelKind::ALL
            .iter()
            .filter(|k| k.serves.contains(&serves))
            .map(|k| k.name)
            .collect();
        let Some(name) = chosen else { continue };
        if !seen.contains(name) {
            return Err(err(
                key,
                format!(
                    "{name:?} is not one of the team's channels, which are {}",
                    raw.channels.join(", ")
                ),
            ));
        }
        let kind = channels.get(name).map_or("", |c| c.kind.name());
        if !kinds.contains(&kind) {
            return Err(err(
                key,
                format!(
                    "channel {name:?} is of kind {kind}; expected {}",
                    kinds.join(" or ")
                ),
            ));
        }
    }

    let security_keys = security_keys(raw.security_keys, file)?;
    let api_keys = api_keys(raw.api_keys, file)?;
    let webhook = raw
        .webhook
        .map(|t| team_webhook(t, file, "webhook"))
        .transpose()?;
    let audit_webhook = raw
        .audit
        .and_then(|a| a.webhook)
        .map(|t| team_webhook(t, file, "audit.webhook"))
        .transpose()?;

    let oidc = raw
        .oidc
        .map(|t| super::oidc::load_oidc(t, file))
        .transpose()?;
    let console = super::oidc::load_console(raw.console, file)?;
    let ssf = raw
        .ssf
        .map(|t| super::oidc::load_ssf(t, file))
        .transpose()?;
    let dialogflow = dialogflow(raw.dialogflow, &raw.channels, file)?;
    let number_checks = raw
        .number_checks
        .map(|t| super::number_checks::load_number_checks(t, file, &raw.id))
        .transpose()?;
    let number_verification = raw
        .number_verification
        .map(|t| super::number_verification::load_number_verification(t, file))
        .transpose()?;
    let wallet = raw
        .wallet
        .map(|t| super::wallet::load_wallet(t, file, inherited.public_url))
        .transpose()?;
    let mcp_oauth = match raw.mcp {
        Some(t) => super::mcp_oauth::load_team_mcp(t, file, inherited.public_url)?,
        None => None,
    };

    let team_layer = || Layer {
        file,
        prefix: "settings".into(),
        table: &raw.settings,
    };
    let mut settings = resolve_over(inherited.resolved, &[defaults.clone(), team_layer()])?;
    settings.share_texts(inherited.resolved);
    check_ladder(
        &settings,
        &[defaults.clone(), team_layer()],
        channels,
        number_verification.is_some(),
    )?;
    let mut channel_settings = BTreeMap::new();
    for (name, value) in &raw.channel_settings {
        let key = format!("channel_settings.{name}");
        if !seen.contains(name) {
            return Err(err(
                &key,
                format!(
                    "{name:?} is not one of the team's channels, which are {}",
                    raw.channels.join(", ")
                ),
            ));
        }
        if !value.is_table() {
            return Err(err(&key, "wrong type: expected a table".into()));
        }
    }
    let empty = toml::Table::new();
    for name in &raw.channels {
        let over = raw
            .channel_settings
            .get(name)
            .and_then(toml::Value::as_table)
            .unwrap_or(&empty);
        if over.is_empty() {
            // A layer that writes nothing: the team's settings, resolved
            // and checked above, found there (`Team::settings_for`).
            continue;
        }
        let layers = [
            defaults.clone(),
            team_layer(),
            Layer {
                file,
                prefix: format!("channel_settings.{name}"),
                table: over,
            },
        ];
        let mut resolved = resolve_over(&settings, &layers)?;
        resolved.share_texts(&settings);
        check_ladder(&resolved, &layers, channels, number_verification.is_some())?;
        channel_settings.insert(name.clone(), resolved);
    }

    let print = with_channels(print, &raw.channels, channels);
    let whatsapp_chats = (raw.channels.iter())
        .filter(|name| channels.get(*name).is_some_and(|c| c.kind.whatsapp_chat()))
        .cloned()
        .collect();
    Ok(Team {
        keyspace: raw.id.clone(),
        id: raw.id,
        display_name: raw.display_name,
        file: PathBuf::from(file),
        login_url,
        channels: raw.channels,
        sms_channel: raw.sms_channel,
        email_channel: raw.email_channel,
        voice_channel: raw.voice_channel,
        security_keys,
        api_keys,
        webhook,
        audit_webhook,
        print,
        own_digest: own.digest(),
        oidc,
        console,
        ssf,
        dialogflow,
        number_checks,
        number_verification,
        wallet,
        mcp_oauth,
        settings,
        channel_settings,
        whatsapp_chats,
        form: super::FormText::of(&form),
        modified: None,
        api: None,
    })
}

/// A team's `display_name`: 1..64 characters, not blank, none of them
/// a control, format or otherwise invisible character (a customer reads
/// it on a page as the name of whom they are talking to).
fn display_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > 64 {
        return Err("must be 1 to 64 characters, not blank".into());
    }
    match name
        .chars()
        .find(|c| crate::domain::characters::refused_in_identifier(*c))
    {
        Some(c) => Err(format!(
            "must not hold the invisible or control character U+{:04X}",
            c as u32
        )),
        None => Ok(()),
    }
}

/// `[dialogflow]`: its `channel` must be one of the team's `channels`.
fn dialogflow(
    entry: Option<DialogflowEntry>,
    channels: &[String],
    file: &str,
) -> Result<Option<Dialogflow>, ConfigError> {
    let Some(entry) = entry else { return Ok(None) };
    if !channels.contains(&entry.channel) {
        let problem = format!(
            "{:?} is not one of the team's channels, which are {}",
            entry.channel,
            channels.join(", ")
        );
        return Err(ConfigError::new(file, "dialogflow.channel", problem));
    }
    Ok(Some(Dialogflow {
        channel: entry.channel,
    }))
}

/// What a channel of a kind that never carries a chat's messages
/// (`KindInfo::chat`) serves instead: a step of `otp.ladder`, and the
/// team's `voice_channel` if it reads codes aloud.
fn off_chat_serves(info: &KindInfo) -> &'static str {
    if info.serves.contains(&Delivery::Voice) {
        "as the team's voice_channel or a step of otp.ladder"
    } else {
        "as a step of otp.ladder"
    }
}

/// The kinds with delivery receipts, as the channel kinds' facts say
/// (`KindInfo::receipts`), in the order of `ChannelKind::ALL`.
fn receipt_kinds() -> String {
    let kinds = ChannelKind::ALL.iter().filter(|k| k.receipts);
    kinds.map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// A team's `voice_channel` `name`: a channel file of a kind that reads
/// codes aloud (docs/api.md#codes-read-by-a-voice-call).
fn voice_channel(name: &str, channels: &BTreeMap<String, ChannelConfig>) -> Result<(), String> {
    let kinds: Vec<&str> = ChannelKind::ALL
        .iter()
        .filter(|k| k.serves.contains(&Delivery::Voice))
        .map(|k| k.name)
        .collect();
    match channels.get(name).map(|c| c.kind.name()) {
        None => Err(format!("no channel file defines a channel named {name:?}")),
        Some(kind) if !kinds.contains(&kind) => Err(format!(
            "channel {name:?} is of kind {kind}; expected {}",
            kinds.join(" or ")
        )),
        Some(_) => Ok(()),
    }
}

/// `otp.ladder` of `settings`, resolved from `layers`: every step names a
/// channel file; every step but the last is of a kind with delivery
/// receipts, and the last of such a kind or `smtp`
/// (docs/api.md#delivery-ladder). The error names the step in the highest
/// layer that wrote the ladder.
fn check_ladder(
    settings: &super::Settings,
    layers: &[Layer<'_>],
    channels: &BTreeMap<String, ChannelConfig>,
    verifies: bool,
) -> Result<(), ConfigError> {
    let ladder = &settings.otp.ladder;
    let written = layers.iter().rev().find(|l| {
        l.table
            .get("otp")
            .and_then(toml::Value::as_table)
            .is_some_and(|otp| otp.contains_key("ladder"))
    });
    let Some(layer) = written else {
        return Ok(());
    };
    let last = ladder.len().saturating_sub(1);
    let mut seen = BTreeSet::new();
    for (i, name) in ladder.iter().enumerate() {
        let key = super::de::join(&layer.prefix, &format!("otp.ladder[{i}]"));
        let err = |problem: String| ConfigError::new(layer.file, &key, problem);
        // The network step (docs/network-authentication.md): first, and
        // only for a team whose operator can answer it.
        if name == crate::domain::challenge::NETWORK_STEP {
            match (i, verifies) {
                (0, true) => continue,
                (0, false) => {
                    return Err(err(
                        "the network step needs the team's [number_verification]".into(),
                    ))
                }
                _ => return Err(err("the network step can only be the ladder's first".into())),
            }
        }
        let Some(channel) = channels.get(name) else {
            return Err(err(format!(
                "no channel file defines a channel named {name:?}"
            )));
        };
        if !seen.insert(name) {
            return Err(err(format!("channel {name:?} is a step twice")));
        }
        let info = channel.kind.info();
        let ok = info.receipts || (i == last && info.name == "smtp");
        if !ok {
            let kinds = receipt_kinds();
            let which = if i == last {
                format!("the last step must be of a kind with delivery receipts ({kinds}) or smtp")
            } else {
                format!(
                    "every step but the last must be of a kind with delivery receipts ({kinds})"
                )
            };
            return Err(err(format!(
                "channel {name:?} is of kind {}; {which}",
                info.name
            )));
        }
    }
    Ok(())
}

/// A webhook table of a team's file (`[webhook]`, `[audit.webhook]`, named
/// `at` in errors): its URL, and its `whsec_…` secret made ready to sign.
fn team_webhook(table: toml::Table, file: &str, at: &str) -> Result<TeamWebhook, ConfigError> {
    let err = |key: &str, problem: String| ConfigError::new(file, format!("{at}.{key}"), problem);
    let w: WebhookEntry = from_table(table, file, at)?;
    let url = http_url(&w.url).map_err(|p| err("url", p))?;
    let secret = parse_whsec(w.secret.get().expose_secret()).map_err(|p| err("secret", p))?;
    Ok(TeamWebhook {
        url,
        key: HmacKey::new(secret.expose()),
    })
}

/// How to make a security key, said by each error about one.
const MAKE_SECURITY_KEY: &str = "`chatgate keygen security-key` prints a new one";

fn security_keys(entries: Vec<toml::Table>, file: &str) -> Result<Vec<SecurityKey>, ConfigError> {
    let err = |key: String, problem: String| ConfigError::new(file, key, problem);
    if entries.is_empty() {
        return Err(err(
            "security_keys".into(),
            format!("at least one [[security_keys]] is required; {MAKE_SECURITY_KEY}"),
        ));
    }
    let mut keys: Vec<SecurityKey> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("security_keys[{i}]");
        let k: SecurityKeyEntry = from_table(entry, file, &at)?;
        check_label(&k.kid).map_err(|p| err(format!("{at}.kid"), p))?;
        if keys.iter().any(|other| other.kid == k.kid) {
            return Err(err(
                format!("{at}.kid"),
                format!("kid {:?} is used twice", k.kid),
            ));
        }
        let secret = parse_whsec(k.secret.get().expose_secret())
            .map_err(|p| err(format!("{at}.secret"), format!("{p}; {MAKE_SECURITY_KEY}")))?;
        keys.push(SecurityKey::new(k.kid, secret, k.primary));
    }
    match keys.iter().filter(|k| k.primary).count() {
        1 => Ok(keys),
        0 => Err(err(
            "security_keys".into(),
            "no key is marked primary = true (exactly one must be)".into(),
        )),
        n => Err(err(
            "security_keys".into(),
            format!("{n} keys are marked primary = true (exactly one must be)"),
        )),
    }
}

fn api_keys(entries: Vec<toml::Table>, file: &str) -> Result<Vec<ApiKey>, ConfigError> {
    let err = |key: String, problem: String| ConfigError::new(file, key, problem);
    let mut keys: Vec<ApiKey> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("api_keys[{i}]");
        let k: ApiKeyEntry = from_table(entry, file, &at)?;
        check_label(&k.id).map_err(|p| err(format!("{at}.id"), p))?;
        if keys.iter().any(|other| other.id == k.id) {
            return Err(err(
                format!("{at}.id"),
                format!("api key id {:?} is used twice", k.id),
            ));
        }
        let sha256 = ApiKeyHash::from_hex(&k.sha256).map_err(|p| err(format!("{at}.sha256"), p))?;
        if keys.iter().any(|other| other.sha256.matches(&sha256)) {
            return Err(err(
                format!("{at}.sha256"),
                "the same key is configured twice".into(),
            ));
        }
        keys.push(ApiKey {
            id: k.id,
            role: k.role,
            sha256,
        });
    }
    Ok(keys)
}

/// An API key may belong to one team only (its hash identifies the team).
/// `seen` holds the keys of the teams checked before, by hash, with their
/// team and id; `team`'s join them. One lookup per key, so loading many
/// teams costs in proportion to their number (docs/operations.md#capacity-of-one-instance).
pub(super) fn check_unique_api_keys(
    team: &Team,
    seen: &mut HashMap<String, (String, String)>,
) -> Result<(), ConfigError> {
    let hashes: Vec<String> = team.api_keys.iter().map(|k| k.sha256.to_hex()).collect();
    for (i, hash) in hashes.iter().enumerate() {
        if let Some((other, dup)) = seen.get(hash) {
            return Err(ConfigError::new(
                &team.file.display().to_string(),
                format!("api_keys[{i}].sha256"),
                format!("the same key is already configured for team {other:?} (id {dup:?})"),
            ));
        }
    }
    for (hash, key) in hashes.into_iter().zip(&team.api_keys) {
        seen.insert(hash, (team.id.clone(), key.id.clone()));
    }
    Ok(())
}

/// An operator key is no team's key: the same hash in `[operator]
/// api_keys` and a team file (`seen`, as [`check_unique_api_keys`] left
/// it) stops the start-up, naming the operator key.
pub(super) fn check_operator_keys(
    operator: &super::OperatorConfig,
    seen: &HashMap<String, (String, String)>,
    file: &str,
) -> Result<(), ConfigError> {
    for (i, key) in operator.api_keys.iter().enumerate() {
        if let Some((team, id)) = seen.get(&key.sha256.to_hex()) {
            return Err(ConfigError::new(
                file,
                format!("operator.api_keys[{i}].sha256"),
                format!("the same key is already configured for team {team:?} (id {id:?})"),
            ));
        }
    }
    Ok(())
}

/// `print` with the files of the team's channels, as `channels.NAME.KEY`.
fn with_channels(
    mut print: super::ConfigPrint,
    names: &[String],
    channels: &BTreeMap<String, ChannelConfig>,
) -> super::ConfigPrint {
    for name in names {
        if let Some(c) = channels.get(name) {
            print.add_print(&format!("channels.{name}"), &c.print);
        }
    }
    print
}
