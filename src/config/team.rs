//! A team (tenant) and a channel, as loaded and validated. These are the
//! resolved forms: secrets decoded and typed, settings merged per channel.
use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

use super::{Settings, TemplateOverrides};
use crate::channels::ChannelKind;
use crate::domain::secrets::{ApiKeyHash, HmacKey, SecurityKey, TeamKeys};

/// What an API key may do (docs/api.md#callers-and-roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Bot,
    Agent,
    Admin,
    /// Reads the team's audit trail, and nothing else.
    Auditor,
}

impl Role {
    /// Bots and admins: create interactions, links, assertions, challenges, verify, activity.
    pub fn acts_as_bot(self) -> bool {
        matches!(self, Role::Bot | Role::Admin)
    }
    /// Agents and admins: read/list, subjects, events, reveal codes.
    pub fn acts_as_agent(self) -> bool {
        matches!(self, Role::Agent | Role::Admin)
    }
    /// Auditors and admins: read the audit trail.
    pub fn reads_audit(self) -> bool {
        matches!(self, Role::Auditor | Role::Admin)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bot => "bot",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }
}

#[derive(Debug)]
pub struct ApiKey {
    pub id: String,
    pub role: Role,
    /// SHA-256 of the key; the key itself is never stored.
    pub sha256: ApiKeyHash,
}

#[derive(Debug)]
pub struct TeamWebhook {
    pub url: Url,
    /// The `whsec_…` secret, ready to sign (made once, when the file is
    /// read).
    pub key: HmacKey,
}

/// A team's OpenID Connect provider (`[oidc]`): the gateway is the relying
/// party and runs the login itself (docs/api.md#hosted-login-openid-connect).
#[derive(Debug)]
pub struct OidcConfig {
    /// The provider's issuer: `https`, or `http` on a loopback address; no
    /// trailing slash is added or removed (it is compared as written).
    pub issuer: String,
    pub client_id: String,
    /// Sent by HTTP basic auth at the token endpoint (`client_secret_basic`).
    pub client_secret: SecretString,
    /// Always starts with `openid`.
    pub scopes: Vec<String>,
    /// The string claim that becomes `customer.id`.
    pub customer_claim: String,
    /// `Some`: sent as `max_age`; the ID token's `auth_time` must be within it.
    pub max_age: Option<std::time::Duration>,
    /// Not empty: sent as `acr_values`; the ID token's `acr` must be one of them.
    pub acr_values: Vec<String>,
    /// Serve `POST /oidc/backchannel-logout/{team}`
    /// (docs/api.md#revocation-from-the-identity-provider).
    pub backchannel_logout: bool,
    /// Let bots start `app` challenges: approval in the customer's own app,
    /// by OpenID Connect CIBA in poll mode
    /// (docs/api.md#approval-in-the-customers-app).
    pub ciba: bool,
    /// Where its discovery, keys and endpoints may be reached: its
    /// team's reach (docs/operator-api.md#destinations).
    pub reach: crate::outbound::Reach,
}

impl OidcConfig {
    /// An issuer whose tokens the gateway checks but where it signs no
    /// one in: `[operator.actor]`'s, a team's `[mcp] oauth`. Its
    /// `client_id` is the audience its tokens name; it has no secret.
    pub fn checking_only(issuer: String, audience: String) -> Self {
        OidcConfig {
            issuer,
            client_id: audience,
            client_secret: SecretString::from(String::new()),
            scopes: vec!["openid".into()],
            customer_claim: "sub".into(),
            max_age: None,
            acr_values: Vec::new(),
            backchannel_logout: false,
            ciba: false,
            reach: crate::outbound::Reach::Anywhere,
        }
    }
}

/// A team's `[console]`: who may act through the agent endpoints
/// (docs/api.md#a-person-behind-every-agent-action).
#[derive(Debug)]
pub struct ConsoleConfig {
    /// An agent or admin key's reveal, logout, unlock or forget needs a
    /// valid `Chatgate-Actor`, else 403 `person_required`.
    pub require_person: bool,
    /// Sign-ins started per second at most, in each instance
    /// (docs/console-sign-in.md#signing-in); beyond, 429 `rate_limited`.
    pub sign_in_rate: u32,
    /// `[console.oidc]`: the workforce provider whose tokens name a person.
    pub oidc: Option<ConsoleOidc>,
}

/// `[console] sign_in_rate` when the team file does not say.
pub const DEFAULT_SIGN_IN_RATE: u32 = 10;

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            require_person: false,
            sign_in_rate: DEFAULT_SIGN_IN_RATE,
            oidc: None,
        }
    }
}

/// A team's workforce OpenID Connect provider (`[console.oidc]`).
#[derive(Debug)]
pub struct ConsoleOidc {
    /// Its issuer, client and scopes, checked as `[oidc]`'s.
    pub provider: OidcConfig,
    /// A `Chatgate-Actor` token's `aud` contains it.
    pub actor_audience: String,
    /// Which values of which ID token claim make a person an agent or an
    /// admin at the console's sign-in.
    pub roles: ConsoleRoles,
    /// A console session ends after this long without a request.
    pub session_idle: std::time::Duration,
    /// A console session ends this long after its sign-in, whatever it did.
    pub session_max: std::time::Duration,
}

/// `role_claim`, `agent_values` and `admin_values` of `[console.oidc]`
/// (docs/console-sign-in.md#roles).
#[derive(Debug, Clone)]
pub struct ConsoleRoles {
    /// The ID token claim read: a string or an array of strings.
    pub claim: String,
    pub agent_values: Vec<String>,
    pub admin_values: Vec<String>,
}

/// A team's Shared Signals transmitter (`[ssf]`): the gateway receives its
/// Security Event Tokens at `POST /ssf/{team}/events`
/// (docs/api.md#revocation-from-the-identity-provider).
#[derive(Debug)]
pub struct SsfConfig {
    /// Every token's `iss`.
    pub issuer: String,
    /// The transmitter's key set: `https`, or `http` on a loopback address.
    pub jwks_uri: url::Url,
    /// Every token's `aud` contains it.
    pub audience: String,
    /// What a `credential-change` event does.
    pub on_credential_change: OnCredentialChange,
    /// Where its key set may be fetched from: its team's reach.
    pub reach: crate::outbound::Reach,
}

/// What a `credential-change` event does: log the customer out everywhere
/// (the default) or nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCredentialChange {
    #[default]
    Logout,
    Ignore,
}

/// A team's `[dialogflow]` (docs/integrating-bot-platforms.md#dialogflow-cx).
#[derive(Debug, Clone)]
pub struct Dialogflow {
    /// The channel whose conversations are the agent's sessions.
    pub channel: String,
}

#[derive(Debug)]
pub struct Team {
    pub id: String,
    /// What its store keys are made from (`store::keys::keyspace`): its
    /// id, or for a team written through the operator API, its id and
    /// the incarnation chosen when it was created, so that an id written
    /// again after a delete reads nothing the deleted team left
    /// (docs/decisions/0437-a-team-id-written-again-is-a-new-tenant.md).
    pub keyspace: String,
    /// How the gateway's own pages name the team to a customer
    /// (`display_name`; `None`: its id).
    pub display_name: Option<String>,
    /// The file it came from (for messages).
    pub file: PathBuf,
    /// The team's login page; the token is added as `?token=`.
    pub login_url: Url,
    /// Names of the channels the team may use.
    pub channels: Vec<String>,
    pub sms_channel: Option<String>,
    pub email_channel: Option<String>,
    /// The `twilio_voice` channel of `delivery: "voice"`; never one of
    /// `channels` (docs/api.md#codes-read-by-a-voice-call).
    pub voice_channel: Option<String>,
    /// At least one; exactly one is primary.
    pub security_keys: Vec<SecurityKey>,
    pub api_keys: Vec<ApiKey>,
    pub webhook: Option<TeamWebhook>,
    /// `[audit] webhook`: where each audit entry is POSTed.
    pub audit_webhook: Option<TeamWebhook>,
    /// The team's effective configuration as the audit trail records it.
    pub print: super::ConfigPrint,
    /// The digest of what its file or body writes alone, without the
    /// `[defaults]` it inherits or the channels it lists: for a team of
    /// the operator API, what the store keeps of it and its `ETag`
    /// (docs/decisions/0630-an-etag-is-of-what-the-store-keeps.md).
    pub own_digest: String,
    /// The team's identity provider, when the gateway runs its logins.
    pub oidc: Option<OidcConfig>,
    /// `[console]`; its default when absent.
    pub console: ConsoleConfig,
    /// The team's Shared Signals transmitter, when it pushes events.
    pub ssf: Option<SsfConfig>,
    /// `[dialogflow]`, when a Dialogflow CX agent calls the gateway.
    pub dialogflow: Option<Dialogflow>,
    /// `[number_checks]`: the provider asked about a phone number before a
    /// code goes to it (docs/number-checks.md).
    pub number_checks: Option<crate::number_checks::NumberChecks>,
    /// `[number_verification]`: the mobile operator asked whether the
    /// customer's phone holds the number on file
    /// (docs/network-authentication.md).
    pub number_verification: Option<super::NumberVerification>,
    /// `[wallet]`: the credentials a wallet challenge may ask for, and the
    /// verifier's access certificate (docs/wallet.md#configuration).
    pub wallet: Option<super::WalletConfig>,
    /// `[mcp] oauth`: the authorization server whose access tokens act as
    /// the team's bot on the MCP server (docs/agents.md#oauth-access-tokens).
    pub mcp_oauth: Option<super::McpOauth>,
    /// System defaults with the team's `[settings]` applied.
    pub settings: Settings,
    /// For each of the team's channels whose `[channel_settings.NAME]`
    /// writes something: `settings` with it applied. Another channel's
    /// settings are `settings` ([`Team::settings_for`],
    /// [`Team::settings_by_channel`]), not a copy of them
    /// (docs/decisions/0702-what-a-team-inherits-is-shared.md).
    pub channel_settings: BTreeMap<String, Settings>,
    /// The team's channels whose conversations are WhatsApp chats, named
    /// by a number or a business-scoped user id
    /// (docs/channels.md#business-scoped-user-ids).
    pub whatsapp_chats: Vec<String>,
    /// The JSON form of its file, secrets read back as HMACs
    /// (docs/operator-api.md#the-representation), kept as its text; `Null`
    /// while the operator API is off.
    pub form: super::FormText,
    /// When its file was last modified, as this instance read it (for a
    /// team written through the operator API: when it was written).
    pub modified: Option<crate::time::Timestamp>,
    /// Written through the operator API and kept in the store (source
    /// `api`), not a file (docs/operator-api.md#two-sources-one-namespace):
    /// the digest the store keeps of it, its `ETag` on every instance.
    pub api: Option<String>,
}

impl Team {
    /// Makes what this team fetches and asks (its identity providers,
    /// Shared Signals keys, number checks, network verification and
    /// status lists) connect only where `reach` allows; its webhooks and
    /// channels are sent on the client of [`super::Config::reach_of`]
    /// (docs/operator-api.md#destinations).
    pub fn reaching(&mut self, reach: crate::outbound::Reach) {
        if let Some(oidc) = &mut self.oidc {
            oidc.reach = reach;
        }
        if let Some(console) = &mut self.console.oidc {
            console.provider.reach = reach;
        }
        if let Some(ssf) = &mut self.ssf {
            ssf.reach = reach;
        }
        if let Some(nc) = &mut self.number_checks {
            nc.reach = reach;
        }
        if let Some(nv) = &mut self.number_verification {
            nv.reach = reach;
        }
        if let Some(wallet) = &mut self.wallet {
            wallet.reach = reach;
        }
        if let Some(oauth) = &mut self.mcp_oauth {
            oauth.provider.reach = reach;
        }
    }

    /// Does this team send through the channel `name` (in `channels`, as
    /// its `sms_channel`, `email_channel` or `voice_channel`, or as a step of an
    /// `otp.ladder` of its settings)?
    pub fn uses_channel(&self, name: &str) -> bool {
        self.channels_used().any(|used| used == name)
    }

    /// The channels this team sends through, as [`Team::uses_channel`]
    /// names them (one may come more than once).
    pub fn channels_used(&self) -> impl Iterator<Item = &str> {
        let named = [&self.sms_channel, &self.email_channel, &self.voice_channel];
        let ladders = std::iter::once(&self.settings)
            .chain(self.channel_settings.values())
            .flat_map(|s| s.otp.ladder.iter());
        (self.channels.iter().map(String::as_str))
            .chain(named.into_iter().filter_map(|c| c.as_deref()))
            .chain(ladders.map(String::as_str))
    }

    /// The `otp.ttl` of the codes this team sends through `channel`: that
    /// of the channel's own settings (the team's, under its
    /// `channel_settings`), and, when it is the team's `sms_channel`, the
    /// longest of every channel's whose codes it carries, so a provider that
    /// drops late messages (WhatsApp's authentication templates) drops no
    /// code still valid.
    pub fn otp_ttl_through(&self, channel: &str) -> std::time::Duration {
        let carries_all = self.sms_channel.as_deref() == Some(channel);
        self.channels
            .iter()
            .filter(|c| carries_all || c.as_str() == channel)
            .map(|c| self.settings_for(c).otp.ttl.get())
            .max()
            .unwrap_or_else(|| self.settings_for(channel).otp.ttl.get())
    }

    /// The settings in force for an interaction on `channel`.
    pub fn settings_for(&self, channel: &str) -> &Settings {
        self.channel_settings.get(channel).unwrap_or(&self.settings)
    }

    /// Each of the team's channels with the settings in force on it.
    pub fn settings_by_channel(&self) -> impl Iterator<Item = (&String, &Settings)> {
        (self.channels.iter()).map(|c| (c, self.settings_for(c)))
    }

    /// Whether a step-up rule of the team, on any of its channels, reads a
    /// customer's validated devices (a new fingerprint, a region change):
    /// only then are they remembered.
    pub fn remembers_devices(&self) -> bool {
        std::iter::once(&self.settings)
            .chain(self.channel_settings.values())
            .any(|s| s.step_up.on_new_fingerprint || s.step_up.on_region_change)
    }
    /// What names the conversation of `rec`: on one of the team's
    /// WhatsApp channels, its number or a business-scoped user id; `None`
    /// elsewhere.
    pub fn conversation_kind(
        &self,
        rec: &crate::domain::interaction::InteractionRecord,
    ) -> Option<crate::domain::bsuid::ConversationKind> {
        let whatsapp = self.whatsapp_chats.contains(&rec.channel);
        crate::domain::bsuid::conversation_kind(whatsapp, &rec.conversation_id)
    }
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels.iter().any(|c| c == channel)
    }
    /// The key that signs login tokens.
    pub fn primary_key(&self) -> Option<&SecurityKey> {
        self.security_keys.iter().find(|k| k.primary)
    }
    pub fn key_by_kid(&self, kid: &str) -> Option<&SecurityKey> {
        self.security_keys.iter().find(|k| k.kid == kid)
    }
}

impl TeamKeys for Team {
    fn team_id(&self) -> &str {
        &self.id
    }
    fn key_by_kid(&self, kid: &str) -> Option<&SecurityKey> {
        Team::key_by_kid(self, kid)
    }
}

#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub file: PathBuf,
    pub kind: ChannelKind,
    pub templates: TemplateOverrides,
    /// `[translations.TAG]`: texts in other languages, tag → key → text
    /// (docs/configuration.md#languages).
    pub translations: std::collections::BTreeMap<String, crate::domain::settings::Texts>,
    /// The provider proves who writes in a conversation, so a conversation
    /// may be recognized (`recognize_for`, docs/api.md#recognized-conversations).
    /// Default: true for twilio, whatsapp, slack and telegram; false for
    /// webhook (web chat) and smtp.
    pub vouches_for_sender: bool,
    /// The file's keys and their digests, for the audit trail.
    pub print: super::ConfigPrint,
    /// The JSON form of its file, secrets read back as HMACs
    /// (docs/operator-api.md#the-representation); `Null` while the
    /// operator API is off.
    pub form: serde_json::Value,
    /// When its file was last modified, as this instance read it; for a
    /// channel of the operator API, when it was written.
    pub modified: Option<crate::time::Timestamp>,
    /// Written through the operator API and kept in the store (source
    /// `api`), not a file (docs/operator-api.md#two-sources-one-namespace).
    pub api: bool,
}
