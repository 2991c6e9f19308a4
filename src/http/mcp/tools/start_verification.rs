//! `start_verification` (docs/agents.md#start_verification): the
//! interaction found or created as `POST /v1/interactions` does, then the
//! proof as `…/login-links` (delivered) or `…/challenges` (a code always
//! with `entry: page`) does.
use serde::Deserialize;
use serde_json::{json, Value};

use super::arguments::{broken, interaction_id, Failure};
use super::tool::{Call, Effect, Hints, Tool};
use crate::error::Error;
use crate::gateway::mcp::{self as use_cases, Proof};
use crate::gateway::{LinkRequest, NewInteraction};
use crate::http::challenges::NewChallenge;

pub(super) struct StartVerification;

impl Tool for StartVerification {
    const NAME: &'static str = "start_verification";
    const TITLE: &'static str = "Start verifying the customer";
    const DESCRIPTION: &'static str = "Sends the customer in this conversation somewhere to prove who they are. \
    You never see or handle their code: tell the customer the `say` sentence (it says where to look; \
    it holds no link, code or number), then call get_verification to learn the result. \
    Choose `proof`: \"link\" (a sign-in link into this chat; the customer signs in on the bank's page), \
    \"code\" (a one-time code to the customer's phone by SMS or voice, or by e-mail; the customer types it \
    on chatgate's page reached by a link in this chat, never into the chat), \"network\" (a link the customer \
    opens on their phone over mobile data: their mobile operator confirms the phone number), \"wallet\" \
    (a link where the customer shows a credential from their digital wallet; needs `match`), or \"app\" \
    (the customer approves in the bank's own app). Name the conversation by `conversation` (it is found or \
    created) or by the `interaction_id` an earlier call answered.";
    const HINTS: Hints = Hints {
        effect: Effect::Writes { destructive: false },
        idempotent: false,
        open_world: true,
    };
    type Args = StartArgs;
    type Output = use_cases::StartedVerification;

    fn input_schema() -> Value {
        json!({
            "type": "object", "additionalProperties": false, "required": ["proof"],
            "properties": {
                "conversation": {"type": "object", "additionalProperties": false,
                    "required": ["channel", "conversation_id"],
                    "properties": {"channel": {"type": "string", "description": "one of the team's channels"},
                                   "conversation_id": {"type": "string", "minLength": 1, "maxLength": 256}}},
                "interaction_id": {"type": "string", "format": "uuid"},
                "customer_ref": {"type": "string", "description": "whom the bank expects (a CRM id); with conversation"},
                "locale": {"type": "string", "description": "the conversation's language, a BCP 47 tag such as es or pt-BR"},
                "contact": {"type": "object", "additionalProperties": false,
                    "properties": {"phone": {"type": "string"}, "email": {"type": "string"}},
                    "description": "where a code may go; with conversation"},
                "proof": {"type": "string", "enum": ["link", "code", "network", "wallet", "app"]},
                "delivery": {"type": "string", "enum": ["sms", "email", "voice"],
                    "description": "for code: where it goes; default the first the contact allows"},
                "credential": {"type": "string", "description": "for wallet: one of the team's credentials"},
                "match": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "for wallet: claim name → the value the bank expects"},
                "transaction": {"type": "object", "description": "for code or app: the one payment it approves"}
            }
        })
    }

    fn output_schema() -> Value {
        json!({
            "type": "object", "required": ["interaction_id", "challenge_id", "status", "sent_to", "say"],
            "properties": {
                "interaction_id": {"type": "string"},
                "challenge_id": {"type": ["string", "null"]},
                "status": {"type": "string"},
                "sent_to": {"type": "string", "enum": ["chat", "sms", "email", "voice", "app"]},
                "say": {"type": "string"}
            }
        })
    }

    async fn call(c: Call<'_>, a: StartArgs) -> Result<use_cases::StartedVerification, Failure> {
        a.check()?;
        let (st, team) = (c.st, c.bot.team());
        let now = st.clock.now();
        let view = match (&a.conversation, &a.interaction_id) {
            (Some(conv), _) => {
                let new = NewInteraction {
                    channel: conv.channel.clone(),
                    conversation_id: conv.conversation_id.clone(),
                    customer_ref: a.customer_ref.clone(),
                    session_pin: None,
                    contact: a
                        .contact
                        .as_ref()
                        .map(|c| crate::domain::interaction::Contact {
                            phone: c.phone.clone(),
                            email: c.email.clone(),
                        }),
                    locale: a.locale.clone(),
                };
                crate::gateway::interactions::create_interaction(&st.gateway, team, new, now)
                    .await?
                    .0
            }
            (None, Some(id)) => {
                let id = interaction_id(id)?;
                crate::gateway::interactions::get_interaction(&st.gateway, team, id, now).await?
            }
            (None, None) => return Err(broken("/interaction_id", "is required", true)),
        };
        let proof = proof_of(&a, team, &view)?;
        let clock = st.clock.as_ref();
        let started =
            use_cases::start_verification(&st.gateway, team, view.id, proof, clock).await?;
        Ok(started)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Conversation {
    channel: String,
    conversation_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactArg {
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ProofName {
    Link,
    Code,
    Network,
    Wallet,
    App,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartArgs {
    conversation: Option<Conversation>,
    interaction_id: Option<String>,
    customer_ref: Option<String>,
    locale: Option<String>,
    contact: Option<ContactArg>,
    proof: ProofName,
    delivery: Option<String>,
    credential: Option<String>,
    #[serde(rename = "match")]
    expected: Option<Value>,
    transaction: Option<Value>,
}

impl StartArgs {
    /// The rules the schema states that serde does not: one way to name
    /// the interaction; each member with the proof it belongs to.
    fn check(&self) -> Result<(), Failure> {
        let bad = |pointer: &str, why: &str| Err(broken(pointer, why, false));
        match (&self.conversation, &self.interaction_id) {
            (Some(_), Some(_)) | (None, None) => {
                return bad(
                    "/interaction_id",
                    "give conversation or interaction_id, one of them",
                )
            }
            (None, Some(_)) if self.customer_ref.is_some() || self.contact.is_some() => {
                let at = match self.contact.is_some() {
                    true => "/contact",
                    false => "/customer_ref",
                };
                return bad(at, "customer_ref and contact go with conversation");
            }
            _ => {}
        }
        let code = self.proof == ProofName::Code;
        let wallet = self.proof == ProofName::Wallet;
        if self.delivery.is_some() && !code {
            return bad("/delivery", "delivery goes with proof code");
        }
        if let Some(d) = self
            .delivery
            .as_deref()
            .filter(|d| !["sms", "email", "voice"].contains(d))
        {
            let _ = d;
            return bad("/delivery", "delivery must be sms, email or voice");
        }
        if (self.credential.is_some() || self.expected.is_some()) && !wallet {
            let at = match self.credential.is_some() {
                true => "/credential",
                false => "/match",
            };
            return bad(at, "credential and match go with proof wallet");
        }
        let pays = matches!(self.proof, ProofName::Code | ProofName::App);
        if self.transaction.as_ref().is_some_and(|t| !t.is_null()) && !pays {
            return bad("/transaction", "transaction goes with proof code or app");
        }
        Ok(())
    }
}

/// The proof `a` asks for, as its HTTP twin's parser reads it.
fn proof_of(
    a: &StartArgs,
    team: &crate::config::Team,
    view: &crate::gateway::InteractionView,
) -> Result<Proof, Failure> {
    let (method, delivery, entry) = match a.proof {
        ProofName::Link => {
            return Ok(Proof::Link(LinkRequest {
                deliver: Some(true),
                locale: a
                    .locale
                    .as_deref()
                    .map(crate::domain::locale::LocaleTag::requested)
                    .transpose()?,
                ..LinkRequest::default()
            }))
        }
        ProofName::Code => {
            let delivery = a.delivery.clone().or_else(|| first_delivery(team, view));
            let delivery = delivery.ok_or_else(|| {
                Error::invalid(
                    "delivery",
                    "the contact has no phone number or e-mail address the team sends codes to",
                )
            })?;
            ("otp", Some(delivery), Some("page".to_string()))
        }
        ProofName::Network => ("network", None, None),
        ProofName::Wallet => ("wallet", None, None),
        ProofName::App => ("app", None, None),
    };
    let asked = NewChallenge {
        method: method.into(),
        delivery,
        to: None,
        locale: a.locale.clone(),
        transaction: a.transaction.clone(),
        entry,
        credential: a.credential.clone().map(serde_json::Value::String),
        expected: a.expected.clone(),
        register: None,
    };
    Ok(Proof::Challenge(Box::new(asked.parse()?)))
}

/// A code's delivery by default: the team's first, of `sms`, `email` and
/// `voice`, that the interaction's contact allows.
fn first_delivery(
    team: &crate::config::Team,
    view: &crate::gateway::InteractionView,
) -> Option<String> {
    let (phone, email) = (view.contact.phone.is_some(), view.contact.email.is_some());
    let first = [
        (team.sms_channel.is_some() && phone, "sms"),
        (team.email_channel.is_some() && email, "email"),
        (team.voice_channel.is_some() && phone, "voice"),
    ];
    first.iter().find(|(ok, _)| *ok).map(|(_, d)| d.to_string())
}
