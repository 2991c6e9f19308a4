//! Starting an OTP or session-PIN challenge (docs/api.md#challenges-otp-and-session-pin):
//! the verdict ladder, on plain values.
//!
//! [`ChallengeRequest::parse`] checks the request's shape before anything
//! is read. [`decide`] then takes the interaction, its subject and the
//! team's rules, and either refuses (the problem to answer; nothing is
//! counted) or opens the challenge and counts the send on the subject,
//! answering where the message goes and which destination's sends the
//! caller counts too (`domain::destination`). [`take_back`] undoes a start
//! whose message could not be sent.
//!
//! Every `match` over an enum here names each variant: a new method does
//! not compile until its rungs and its challenge are said.
#![deny(clippy::wildcard_enum_match_arm)]
use uuid::Uuid;

use super::bsuid::is_bsuid;
use super::challenge::{named, one_of, Challenge, ChallengeMethod, Delivery, Entry, Page, Proof};
use super::delivery_status::DeliveryState;
use super::destination_policy::{self, Reach};
use super::interaction::{Contact, InteractionRecord};
use super::locale::LocaleTag;
use super::otp::OtpCode;
use super::phone;
use super::secrets::Pepper;
use super::settings::Settings;
use super::subject::SubjectRecord;
use super::transaction::Transaction;
use super::wallet::payment;
use super::wallet_format::Format;
use super::wallet_state::{KeyRegistration, WalletChallenge};
use crate::error::Error;
use crate::time::Timestamp;

/// A request to start a challenge, its shape checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRequest {
    pub method: ChallengeMethod,
    pub delivery: Delivery,
    /// A phone number (`sms`) or e-mail address (`email`), shaped; else the
    /// interaction's contact.
    pub to: Option<String>,
    /// The language asked for from now on (docs/api.md#languages).
    pub locale: Option<LocaleTag>,
    /// The payment the code approves (docs/api.md#approving-one-payment).
    pub transaction: Option<Transaction>,
    /// `"entry": "page"`: the code or PIN is typed on the gateway's page,
    /// reached by a link in the conversation, never into the chat
    /// (docs/api.md#codes-typed-on-the-gateways-page).
    pub page_entry: bool,
    /// A wallet challenge's credential and expected values
    /// (docs/wallet.md#asking); its `credential` is empty until the
    /// team's `[wallet]` names it.
    pub wallet: Option<WalletChallenge>,
}

impl ChallengeRequest {
    /// The request as sent (`method`, `delivery`, `to`), or 422: an unknown
    /// method or delivery, a PIN prompt anywhere but the chat, a `to`
    /// that is not a phone number or address, or one for another delivery.
    pub fn parse(
        method: &str,
        delivery: Option<&str>,
        to: Option<&str>,
    ) -> Result<ChallengeRequest, Error> {
        let methods = ChallengeMethod::STARTABLE;
        let Some(method) = named(&methods, ChallengeMethod::as_str, method) else {
            let allowed = one_of(&methods, ChallengeMethod::as_str);
            return Err(Error::invalid("method", &format!("must be {allowed}")));
        };
        let deliveries = Delivery::REQUESTABLE;
        let requested = match delivery {
            None => None,
            Some(d) => match named(&deliveries, Delivery::as_str, d) {
                Some(d) => Some(d),
                None => {
                    let allowed = one_of(&deliveries, Delivery::as_str);
                    return Err(Error::invalid("delivery", &format!("must be {allowed}")));
                }
            },
        };
        let delivery = delivery_for(method, requested)?;
        if let (Some(why), Some(_)) = (own_contact_only(method), to) {
            return Err(Error::invalid("to", why));
        }
        let to = match (delivery, to) {
            (Delivery::Sms | Delivery::Voice, Some(t)) => Some(super::input::phone("to", t)?),
            (Delivery::Email, Some(t)) => Some(super::input::email("to", t)?),
            (Delivery::Ladder, Some(_)) => {
                return Err(Error::invalid(
                    "to",
                    "a ladder sends to the interaction's own contact",
                ))
            }
            (_, Some(_)) => {
                return Err(Error::invalid(
                    "to",
                    "only for sms, voice or email delivery",
                ))
            }
            (_, None) => None,
        };
        Ok(ChallengeRequest {
            method,
            delivery,
            to,
            locale: None,
            transaction: None,
            page_entry: false,
            wallet: None,
        })
    }

    /// The request with a wallet challenge's `credential` and `match`
    /// (docs/wallet.md#asking): for `method` `wallet`, `match` is up to 10
    /// members, each a claim name and a string of 1 to 200 characters,
    /// and `credential` a name or an array of 1 to 4 names, none twice
    /// (the team's `[wallet]` checks both, and that `match` names at
    /// least one claim unless the credential is an `sca` one that
    /// compares none); for any other method either is 422 naming it.
    pub fn for_wallet(
        mut self,
        credential: Option<&serde_json::Value>,
        asked: Option<&serde_json::Value>,
    ) -> Result<Self, Error> {
        let credential = credential.filter(|v| !v.is_null());
        let asked = asked.filter(|v| !v.is_null());
        if !self.method.request_doc().credential {
            let only = "only for method wallet";
            return match (credential, asked) {
                (Some(_), _) => Err(Error::invalid("credential", only)),
                (_, Some(_)) => Err(Error::invalid("match", only)),
                (None, None) => Ok(self),
            };
        }
        let mut credentials = wallet_credentials(credential)?.into_iter();
        let credential = credentials.next().unwrap_or_default();
        let asked = match asked {
            Some(asked) => wallet_match(asked)?,
            None => std::collections::BTreeMap::new(),
        };
        let mut wallet = WalletChallenge::asking(credential, Format::SdJwt, asked);
        wallet.also = credentials.collect();
        self.wallet = Some(wallet);
        Ok(self)
    }

    /// The request, registering the customer's attestation for payments
    /// when `register` (docs/wallet.md#registering-the-wallet-for-payments):
    /// for `method` `wallet` alone, and without a `transaction`; 422
    /// naming the member otherwise. Which credential may be registered is
    /// the team's `[wallet]`'s to say.
    pub fn registering(mut self, register: bool) -> Result<Self, Error> {
        if !register {
            return Ok(self);
        }
        if self.transaction.is_some() {
            return Err(Error::invalid(
                "transaction",
                "a registration approves no payment",
            ));
        }
        let Some(wallet) = self.wallet.as_mut() else {
            return Err(Error::invalid("register", "only for method wallet"));
        };
        wallet.registration = Some(KeyRegistration {
            register: true,
            thumbprint: None,
        });
        Ok(self)
    }

    /// The request as sent with its `entry` (`"chat"`, the default, or
    /// `"page"`): `"page"` goes with an OTP whose code goes somewhere other
    /// than the conversation (`delivery` `sms`, `email`, `voice`, `ladder`
    /// or `agent`) and with a PIN; with a code into the chat, or any other
    /// method, it is 422 naming `entry`, before any other rule of the
    /// method. Then as [`ChallengeRequest::parse`].
    pub fn parse_entered(
        method: &str,
        delivery: Option<&str>,
        to: Option<&str>,
        entry: Option<&str>,
    ) -> Result<ChallengeRequest, Error> {
        let page_entry = match entry {
            None | Some("chat") => false,
            Some("page") => true,
            Some(_) => return Err(Error::invalid("entry", "must be chat or page")),
        };
        if page_entry {
            page_entry_allowed(method, delivery)?;
        }
        let mut req = ChallengeRequest::parse(method, delivery, to)?;
        req.page_entry = page_entry;
        Ok(req)
    }

    /// The request, for `transaction` (docs/api.md#approving-one-payment):
    /// 422 for a PIN prompt, which proves no payment, and for agent
    /// delivery, since agents never see a transaction's code.
    pub fn for_transaction(mut self, transaction: Option<Transaction>) -> Result<Self, Error> {
        if transaction.is_some() {
            if !self.method.approves_payment() {
                return Err(Error::invalid(
                    "transaction",
                    "this method cannot approve a payment: use method otp, app or wallet",
                ));
            }
            if self.delivery == Delivery::Agent {
                return Err(Error::invalid(
                    "delivery",
                    "agents never see a transaction's code: send it to the customer",
                ));
            }
        }
        self.transaction = transaction;
        Ok(self)
    }
}

/// A channel and whom it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub channel: String,
    pub reach: Reach,
    /// Its file says the provider proves who writes in a conversation
    /// (`vouches_for_sender`): only then does a code shown there prove
    /// who typed it back.
    pub vouches: bool,
    /// A code sent through it shows its template's text (not a provider's
    /// own template, not the code alone).
    pub shows_text: bool,
    /// Its conversations are WhatsApp chats, named by a number or a
    /// business-scoped user id (docs/channels.md#business-scoped-user-ids).
    pub whatsapp: bool,
    /// It sends codes as a WhatsApp authentication template, which reaches
    /// phone numbers only.
    pub otp_template: bool,
}

impl Route {
    /// Whom it reaches with a message to `to` (`None`: the contact, or the
    /// conversation) in the conversation `conversation_id` of an
    /// interaction on `own`: its own WhatsApp chat named by a
    /// business-scoped user id is reached as that conversation, which has
    /// no number (docs/channels.md#business-scoped-user-ids); otherwise as
    /// its kind reaches people.
    pub fn reach_in(&self, own: &str, conversation_id: &str, to: Option<&str>) -> Reach {
        let bsuid_chat = self.whatsapp && self.channel == own && is_bsuid(conversation_id);
        if bsuid_chat && to.is_none() {
            Reach::PhoneChat
        } else {
            self.reach
        }
    }
}

/// The channels a challenge's message may take: the interaction's own
/// chat, and the team's SMS, e-mail and voice channels where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub chat: Route,
    pub sms: Option<Route>,
    pub email: Option<Route>,
    pub voice: Option<Route>,
}

/// The team's rules a start obeys: the interaction's settings, its routes,
/// and the pepper that hashes and seals the code.
pub struct Rules<'a> {
    pub settings: &'a Settings,
    pub routes: &'a Routes,
    pub pepper: &'a Pepper,
    /// How long a network link stays open: the team's
    /// `[number_verification] link_ttl` (`None`: the team has none, and a
    /// network challenge is 422).
    pub link_ttl: Option<std::time::Duration>,
    /// How long a wallet link stays open: the team's `[wallet] link_ttl`
    /// (`None`: the team has none, and a wallet challenge is 422).
    pub wallet_ttl: Option<std::time::Duration>,
}

/// Where a challenge's message goes: a channel, and the recipient when the
/// channel sends to a person (`None`: the interaction's conversation, or its
/// contact, resolved by the sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: String,
    pub to: Option<String>,
}

/// A wallet challenge's `credential`: none (the team's only one), a
/// name, or an array of 1 to [`MAX_CREDENTIALS`] names, none twice; each
/// of at most 64 characters. 422 naming `credential` otherwise.
///
/// [`MAX_CREDENTIALS`]: crate::domain::wallet_state::MAX_CREDENTIALS
fn wallet_credentials(value: Option<&serde_json::Value>) -> Result<Vec<String>, Error> {
    use crate::domain::wallet_state::MAX_CREDENTIALS;
    let unknown = || Error::invalid("credential", "is not one of the team's credentials");
    let names: Vec<String> = match value {
        None => return Ok(Vec::new()),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(list)) => {
            if !(1..=MAX_CREDENTIALS).contains(&list.len()) {
                return Err(Error::invalid(
                    "credential",
                    "must be a credential id or an array of 1 to 4 of them",
                ));
            }
            let names: Option<Vec<String>> = list
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect();
            names.ok_or_else(unknown)?
        }
        Some(_) => {
            return Err(Error::invalid(
                "credential",
                "must be a credential id or an array of 1 to 4 of them",
            ))
        }
    };
    if names.iter().any(|n| n.is_empty() || n.len() > 64) {
        return Err(unknown());
    }
    if names
        .iter()
        .enumerate()
        .any(|(i, n)| names[..i].contains(n))
    {
        return Err(Error::invalid("credential", "names a credential twice"));
    }
    Ok(names)
}

/// Wallet challenge `w` (challenge `id`, started at `now`), for
/// `transaction` when it approves one: with the `transaction_data` entry
/// each of its requests carries (docs/wallet.md#a-payment-approved-in-the-wallet).
fn paying(
    w: &WalletChallenge,
    transaction: Option<&Transaction>,
    id: Uuid,
    now: Timestamp,
) -> WalletChallenge {
    let data = transaction.and_then(|t| payment::transaction_data(&w.credential, id, now, t));
    WalletChallenge {
        transaction_data: data,
        ..w.clone()
    }
}

/// A wallet challenge's `match`: up to 10 members, each value a string
/// of 1 to 200 characters; 422 naming `match` (or the member) otherwise.
fn wallet_match(
    value: &serde_json::Value,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    use crate::domain::wallet_state::{MAX_MATCH, MAX_VALUE_CHARS};
    let object = value
        .as_object()
        .filter(|o| o.len() <= MAX_MATCH)
        .ok_or_else(|| Error::invalid("match", "must be an object of 1 to 10 claims"))?;
    let mut asked = std::collections::BTreeMap::new();
    for (name, v) in object {
        let at = format!("match.{name}");
        if name.is_empty() || name.chars().count() > 128 {
            return Err(Error::invalid(
                "match",
                "a claim name is 1 to 128 characters",
            ));
        }
        let text = v
            .as_str()
            .filter(|t| (1..=MAX_VALUE_CHARS).contains(&t.chars().count()))
            .ok_or_else(|| Error::invalid(&at, "must be a string of 1 to 200 characters"))?;
        asked.insert(name.clone(), text.to_string());
    }
    Ok(asked)
}

/// Whether a code of `method` (as named in the request), sent as
/// `delivery` asks, may be typed on the gateway's page: an OTP that goes
/// somewhere other than the conversation itself, or a PIN; 422 naming
/// `entry` otherwise. An unknown method is left to the method's own rule.
/// Every method is named, so a new one does not compile until it is
/// placed on this side or the other.
fn page_entry_allowed(method: &str, delivery: Option<&str>) -> Result<(), Error> {
    let refused = |why| Err(Error::invalid("entry", why));
    let methods = ChallengeMethod::STARTABLE;
    let Some(method) = named(&methods, ChallengeMethod::as_str, method) else {
        return Ok(());
    };
    match method {
        ChallengeMethod::Pin => Ok(()),
        ChallengeMethod::Otp if matches!(delivery, None | Some("chat")) => refused(
            "a code delivered into the chat is typed there: send it by sms, email, voice, \
             ladder or to an agent to have it typed on the page",
        ),
        ChallengeMethod::Otp => Ok(()),
        // Nothing to type: the customer approves, or opens a link.
        ChallengeMethod::App | ChallengeMethod::Network | ChallengeMethod::Wallet => {
            refused("only a code (otp) or a session PIN (pin) is typed on the page")
        }
        // Never asked for by a request (a login page shows it): the
        // method's own rule refuses it.
        ChallengeMethod::Binding => Ok(()),
    }
}

/// Why `method`'s message goes to the interaction's own contact or
/// conversation only, so that a request naming a `to` is 422; `None` for
/// a method that may be sent to one.
fn own_contact_only(method: ChallengeMethod) -> Option<&'static str> {
    match method {
        ChallengeMethod::Network => {
            Some("a network check verifies the interaction's own contact.phone")
        }
        ChallengeMethod::Wallet => {
            Some("a wallet link goes to the interaction's own conversation or contact")
        }
        ChallengeMethod::Otp
        | ChallengeMethod::Pin
        | ChallengeMethod::App
        | ChallengeMethod::Binding => None,
    }
}

/// The delivery of a request for `method` that asked for `requested`
/// (`None`: the method's default), or 422 when they do not go together.
pub fn delivery_for(
    method: ChallengeMethod,
    requested: Option<Delivery>,
) -> Result<Delivery, Error> {
    let refused = |why| Err(Error::invalid("delivery", why));
    match (method, requested) {
        (ChallengeMethod::Pin, None | Some(Delivery::Chat)) => Ok(Delivery::Chat),
        (ChallengeMethod::Pin, Some(_)) => refused("a PIN prompt goes into the chat"),
        (ChallengeMethod::Otp, d) => Ok(d.unwrap_or(Delivery::Chat)),
        (ChallengeMethod::App, None) => Ok(Delivery::App),
        (ChallengeMethod::App, Some(_)) => refused("an app challenge goes to the customer's app"),
        // A network link goes where the customer reads it: the chat, or an
        // SMS to the number it checks.
        (ChallengeMethod::Network, None | Some(Delivery::Chat)) => Ok(Delivery::Chat),
        (ChallengeMethod::Network, Some(Delivery::Sms)) => Ok(Delivery::Sms),
        (ChallengeMethod::Network, Some(_)) => {
            refused("a network link goes into the chat or by sms")
        }
        // A wallet link goes where the customer reads it: the chat, or to
        // the interaction's phone or e-mail address.
        (ChallengeMethod::Wallet, None | Some(Delivery::Chat)) => Ok(Delivery::Chat),
        (ChallengeMethod::Wallet, Some(Delivery::Sms)) => Ok(Delivery::Sms),
        (ChallengeMethod::Wallet, Some(Delivery::Email)) => Ok(Delivery::Email),
        (ChallengeMethod::Wallet, Some(_)) => {
            refused("a wallet link goes into the chat, by sms or by email")
        }
        // Opened only by a login callback (login binding), never here.
        (ChallengeMethod::Binding, _) => {
            let methods = ChallengeMethod::STARTABLE;
            let allowed = one_of(&methods, ChallengeMethod::as_str);
            Err(Error::invalid("method", &format!("must be {allowed}")))
        }
    }
}

/// What a request that starts a method's challenge may say, as the API's
/// document shows it (`NewChallenge` in `src/http/challenges.rs`: one
/// variant of its `anyOf` a form, one sentence of its description a
/// method). A method writes its own in [`ChallengeMethod::request_doc`],
/// so that the document names it with no line of its own; a test holds
/// the forms to what [`delivery_for`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDoc {
    /// Its sentence of the request's description.
    pub prose: &'static str,
    /// Its forms, each a variant of the document's `anyOf`; none for a
    /// method no request starts.
    pub forms: &'static [RequestForm],
    /// Whether it asks for a credential from the customer's wallet
    /// (`credential`, `match`, `register`: docs/wallet.md#asking); any
    /// other method is 422 naming them.
    pub credential: bool,
}

/// One form of a request for a method ([`RequestDoc::forms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestForm {
    /// Its title in the document.
    pub title: &'static str,
    /// The `delivery` it takes.
    pub delivery: Deliveries,
    /// What its `to` names, if it takes one.
    pub to: Option<Addressee>,
}

/// The `delivery` a request's form takes ([`RequestForm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deliveries {
    /// None: left out (or null) for the method's own.
    None,
    /// One of these, or left out for the method's default.
    Optional(&'static [Delivery]),
    /// This one, named.
    Required(Delivery),
}

/// What a request's `to` names ([`RequestForm::to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressee {
    /// A phone number.
    Phone,
    /// An e-mail address.
    Email,
}

impl ChallengeMethod {
    /// What a request that starts it may say ([`RequestDoc`]), one `match`
    /// naming every method: a method added does not compile until it
    /// says its own.
    pub fn request_doc(self) -> RequestDoc {
        match self {
            ChallengeMethod::Otp => RequestDoc {
                prose:
                    "For OTP, `delivery` is `chat` (default), `sms`, `email`, `voice` (a call on \
                    the team's `voice_channel`), `agent` or `ladder` (the team's `otp.ladder`); \
                    `to` names the number or address for `sms`/`voice`/`email`, else the \
                    interaction's `contact` is used.",
                forms: &[
                    RequestForm {
                        title: "otp in the chat or for an agent",
                        delivery: Deliveries::Optional(&[Delivery::Chat, Delivery::Agent]),
                        to: None,
                    },
                    RequestForm {
                        title: "otp by sms",
                        delivery: Deliveries::Required(Delivery::Sms),
                        to: Some(Addressee::Phone),
                    },
                    RequestForm {
                        title: "otp read by a voice call",
                        delivery: Deliveries::Required(Delivery::Voice),
                        to: Some(Addressee::Phone),
                    },
                    RequestForm {
                        title: "otp by e-mail",
                        delivery: Deliveries::Required(Delivery::Email),
                        to: Some(Addressee::Email),
                    },
                    RequestForm {
                        title: "otp by the delivery ladder",
                        delivery: Deliveries::Required(Delivery::Ladder),
                        to: None,
                    },
                ],
                credential: false,
            },
            ChallengeMethod::Pin => RequestDoc {
                prose: "A PIN prompt goes into the chat.",
                forms: &[RequestForm {
                    title: "pin",
                    delivery: Deliveries::Optional(&[Delivery::Chat]),
                    to: None,
                }],
                credential: false,
            },
            // Nothing to send: the customer approves in the app.
            ChallengeMethod::App => RequestDoc {
                prose: "`app` asks the customer to approve in their own app                 \
                    (docs/api.md#approval-in-the-customers-app): it needs the interaction's \
                    `customer_ref`, and takes no `delivery` or `to`.",
                forms: &[RequestForm {
                    title: "app (the team's [oidc] has ciba = true)",
                    delivery: Deliveries::None,
                    to: None,
                }],
                credential: false,
            },
            // A network check checks the number on file, never a `to`.
            ChallengeMethod::Network => RequestDoc {
                prose:
                    "`network` sends a one-time link (`delivery` `chat`, the default, or `sms`) \
                    that the customer opens on mobile data: the mobile operator confirms the \
                    phone holds the interaction's `contact.phone` \
                    (docs/network-authentication.md); it takes no `to` or `transaction`.",
                forms: &[RequestForm {
                    title: "network (the team has [number_verification])",
                    delivery: Deliveries::Optional(&[Delivery::Chat, Delivery::Sms]),
                    to: None,
                }],
                credential: false,
            },
            // Its link goes to the interaction's own conversation or contact.
            ChallengeMethod::Wallet => RequestDoc {
                prose: "`wallet` sends a one-time link (`delivery` `chat`, the default, `sms` or \
                    `email`) where the customer presents a credential from their wallet, which \
                    must show the `match` claims with those values (docs/wallet.md#asking); \
                    `credential` names one of the team's `[wallet]` credentials, or 1 to 4 of \
                    them of which the customer presents any one; it takes no `to`, and a \
                    `transaction` (with `payee_id`) for the team's `sca` credential alone, which \
                    requires one (docs/wallet.md#a-payment-approved-in-the-wallet).",
                forms: &[RequestForm {
                    title: "wallet (the team has [wallet])",
                    delivery: Deliveries::Optional(&[
                        Delivery::Chat,
                        Delivery::Sms,
                        Delivery::Email,
                    ]),
                    to: None,
                }],
                credential: true,
            },
            // A login page shows it; no request starts it.
            ChallengeMethod::Binding => RequestDoc {
                prose: "",
                forms: &[],
                credential: false,
            },
        }
    }
}

/// A challenge started: already the interaction's current one, its send
/// counted on the subject.
#[derive(Debug, Clone)]
pub struct Started {
    pub method: ChallengeMethod,
    /// The page of its own its proof waits for, whose link the caller
    /// saves (`None`: a code or PIN typed in the chat).
    pub page: Option<Page>,
    pub expires_at: Timestamp,
    pub attempts_allowed: u32,
    /// The message to send (`None`: agent delivery, nothing is sent).
    pub message: Option<Message>,
    /// The phone number or address whose sends the caller counts, in the
    /// same commit (`domain::destination`), when the message goes to a
    /// person (an SMS or e-mail channel, or a conversation that is a phone
    /// number).
    pub destination: Option<String>,
    /// Whose allowance at the destination the send uses (under
    /// `lockout.scope = "origin"`: the strangers' or a familiar origin's;
    /// `None`, the destination's one).
    pub allowance: Option<String>,
    /// The challenge it replaced, to reopen should the message fail.
    pub previous: Option<Challenge>,
    /// How far its message got (`None`: nothing is sent).
    pub delivery_state: Option<DeliveryState>,
}

/// The verdict on starting challenge `id` (its code `code`, for an OTP) on
/// `rec`, whose subject is `subject`, at `now`. The rungs, in order:
///
/// 1. the destination policy (docs/api.md#where-an-otp-may-go): a `to`
///    that is not on file, a phone number the SMS rules refuse (whatever
///    the channel that reaches it): 403 or 422, before anything is counted;
/// 2. the subject (or origin) is locked (423) or banned (403);
/// 3. SMS or e-mail delivery the team has no channel for: 422;
/// 4. `otp.require_other_channel` and an OTP into the chat: 422; an OTP
///    into a chat whose channel does not vouch for its sender (a web
///    chat, Slack, a Telegram bot, e-mail): 422 saying what to do instead
///    (docs/api.md#what-a-code-proves); a transaction on a channel that
///    cannot show its text: 422; an OTP as a WhatsApp authentication
///    template into a conversation named by a business-scoped user id,
///    which has no number: 422;
/// 5. SMS or e-mail to the contact, and it has no phone or address: 422;
/// 6. a channel that sends to a person, and nobody to send to: 422;
/// 7. agent delivery without `otp.show_to_agents`: 422;
/// 8. a PIN prompt on an interaction without a session PIN: 409;
/// 9. the subject's send limit (`otp.max_sends` per `otp.send_window`): 429.
///
/// Otherwise the challenge is opened (an OTP started during a live step-up
/// completes it, and ends with it) and the send counted.
pub fn decide(
    req: &ChallengeRequest,
    id: Uuid,
    code: &OtpCode,
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<Started, Error> {
    let s = rules.settings;
    let own = MethodRungs::of(req.method);
    if own.network {
        network_possible(rules, &rec.contact)?;
    }
    if own.opens == Opens::Wallet && (rules.wallet_ttl.is_none() || req.wallet.is_none()) {
        return Err(Error::invalid("method", "wallet needs the team's [wallet]"));
    }
    destination_policy::allow(&s.otp, req.delivery, req.to.as_deref(), &rec.contact)?;
    let route = route(rules.routes, req.delivery);
    let to = to_contact(req, &rec.contact);
    // Whom the message reaches, and whether the SMS rules let it go there
    // (the refusals of later rungs wait for their turn).
    let reach = match (&route, &to) {
        (Ok(Some(r)), Ok(to)) => {
            Some(r.reach_in(&rec.channel, &rec.conversation_id, to.as_deref()))
        }
        _ => None,
    };
    let recipient = match (&route, &to, reach) {
        (Ok(Some(_)), Ok(to), Some(reach)) => destination_policy::recipient(
            reach,
            &s.otp,
            &rec.contact,
            &rec.conversation_id,
            to.clone(),
        )?,
        _ => None,
    };
    subject.ensure_clear_for(rec.lockout_origin(s).as_deref(), now)?;
    let route = route?;
    route_rungs(req, own, route, rules, rec)?;
    let to = to?;
    let way = Way {
        route,
        reach,
        recipient,
        to,
    };
    let destination = way.destination(own, rec)?;
    if req.delivery == Delivery::Agent && !s.otp.show_to_agents {
        return Err(Error::invalid(
            "delivery",
            "agent delivery needs otp.show_to_agents",
        ));
    }
    let channel = route.map(|r| r.channel.as_str());
    let opened = new_challenge(req, id, code, rec, rules, now)?.sent_through(channel);
    let origin = rec.lockout_origin(s);
    let allowance = subject.allowance_of(origin.as_deref(), now);
    subject.take_send_for(origin.as_deref(), now, &s.lockout, &s.otp)?;
    let started = Started {
        method: opened.method(),
        page: opened.proof.page(),
        expires_at: opened.expires_at,
        attempts_allowed: opened.max_attempts,
        message: route.map(|r| Message {
            channel: r.channel.clone(),
            to: way.to,
        }),
        destination,
        allowance,
        previous: rec.challenge.clone(),
        delivery_state: opened.delivery_state.clone(),
    };
    rec.open_new_challenge(opened, now);
    Ok(started)
}

/// Rung 4 of [`decide`], on the route the message takes: a code's own
/// rules (another channel than the chat under
/// `otp.require_other_channel`, a chat that vouches for its sender), a
/// page-entry challenge's chat that reaches the customer, and a
/// transaction's text shown.
fn route_rungs(
    req: &ChallengeRequest,
    own: MethodRungs,
    route: Option<&Route>,
    rules: &Rules<'_>,
    rec: &InteractionRecord,
) -> Result<(), Error> {
    let same_channel = route.is_some_and(|r| r.channel == rec.channel);
    if rules.settings.otp.require_other_channel && own.code && same_channel {
        return Err(Error::invalid(
            "delivery",
            "the code must travel on another channel than the chat",
        ));
    }
    if own.code && req.delivery == Delivery::Chat {
        refuse_unvouched_chat(&rules.routes.chat)?;
    }
    if req.page_entry {
        refuse_unreachable_chat(&rules.routes.chat, rec)?;
    }
    if req.transaction.is_some() && route.is_some_and(|r| !r.shows_text) {
        return Err(Error::invalid(
            "delivery",
            "this channel sends codes without the text, so it cannot show the payment",
        ));
    }
    Ok(())
}

/// Where a message goes: its route, whom it reaches, the recipient the
/// SMS rules let it go to, and the `to` asked for (or the contact's).
struct Way<'a> {
    route: Option<&'a Route>,
    reach: Option<Reach>,
    recipient: Option<String>,
    to: Option<String>,
}

impl Way<'_> {
    /// Rungs 4 to 6 of [`decide`] on whom the message reaches, then whose
    /// send limit it counts against: the person a phone or e-mail channel
    /// reaches, or the number a phone conversation is.
    fn destination(
        &self,
        own: MethodRungs,
        rec: &InteractionRecord,
    ) -> Result<Option<String>, Error> {
        let (route, reach, to) = (self.route, self.reach, self.to.as_deref());
        if own.code
            && route.is_some_and(|r| r.otp_template)
            && self.recipient.is_none()
            && reach == Some(Reach::PhoneChat)
            && is_bsuid(&rec.conversation_id)
        {
            // Meta sends authentication templates to phone numbers only
            // (docs/channels.md#business-scoped-user-ids).
            return Err(Error::invalid(
                "delivery",
                "this channel sends codes as a WhatsApp authentication template, which reaches \
                 phone numbers only, and this conversation is a business-scoped user id: send \
                 the code to the customer's contact (delivery \"sms\", \"email\", \"voice\" or \
                 \"ladder\") or use a login link",
            ));
        }
        // A conversation on an SMS or e-mail channel is reached through the
        // interaction's contact: without one, nothing can be sent (a request
        // problem, not a provider failure).
        let to_person = route
            .zip(reach)
            .filter(|(_, reach)| matches!(reach, Reach::Phone | Reach::Voice | Reach::Email));
        if to_person.is_some() && self.recipient.is_none() {
            return Err(Error::invalid(
                "delivery",
                "this channel needs the interaction's contact, and it has none",
            ));
        }
        Ok(match route.and(reach) {
            Some(Reach::Phone | Reach::Voice | Reach::Email) => self.recipient.clone(),
            // A conversation named by a business-scoped user id: its sends
            // count against the id, kept as given.
            Some(Reach::PhoneChat) if to.is_none() && is_bsuid(&rec.conversation_id) => {
                Some(rec.conversation_id.clone())
            }
            Some(Reach::PhoneChat) => {
                let number = to.unwrap_or(&rec.conversation_id);
                Some(phone::e164(number).unwrap_or_else(|| number.to_string()))
            }
            Some(Reach::Conversation) | None => None,
        })
    }
}

/// The rungs of [`decide`] that are one method's own, said for every
/// method by one exhaustive `match`: a method added to
/// [`ChallengeMethod`] does not compile until its rungs are said here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MethodRungs {
    /// Before rung 1: the team's `[number_verification]` and a phone on
    /// file ([`network_possible`]).
    network: bool,
    /// Rung 4's rules of a code the customer reads: another channel than
    /// the chat under `otp.require_other_channel`, a chat that vouches
    /// for its sender, a WhatsApp authentication template only to a
    /// phone number.
    code: bool,
    /// What is opened ([`new_challenge`]).
    opens: Opens,
}

/// The challenge a method opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opens {
    /// A prompt for the session PIN (rung 8: 409 without one).
    Pin,
    /// A link the mobile operator confirms.
    Network,
    /// A link the customer's wallet answers with a credential.
    Wallet,
    /// A code: sent, typed in, or approved in the app.
    Code,
}

impl MethodRungs {
    fn of(method: ChallengeMethod) -> Self {
        let (network, code, opens) = match method {
            ChallengeMethod::Otp => (false, true, Opens::Code),
            ChallengeMethod::Pin => (false, false, Opens::Pin),
            ChallengeMethod::App => (false, false, Opens::Code),
            ChallengeMethod::Network => (true, false, Opens::Network),
            ChallengeMethod::Wallet => (false, false, Opens::Wallet),
            // Never started here (`ChallengeRequest::parse` refuses it):
            // a login page shows it.
            ChallengeMethod::Binding => (false, false, Opens::Code),
        };
        MethodRungs {
            network,
            code,
            opens,
        }
    }
}

/// A network challenge needs the team's `[number_verification]` and a
/// number to verify, the interaction's `contact.phone`: 422 otherwise.
fn network_possible(rules: &Rules<'_>, contact: &Contact) -> Result<(), Error> {
    if rules.link_ttl.is_none() {
        return Err(Error::invalid(
            "method",
            "network needs the team's [number_verification]",
        ));
    }
    if contact.phone.is_none() {
        return Err(Error::invalid(
            "method",
            "network verifies the interaction's contact.phone, and it has none",
        ));
    }
    Ok(())
}

/// A code shown in the conversation it is typed back into proves who is
/// there only where the channel vouches for its sender: elsewhere anyone
/// who opens the conversation, naming any customer, reads it back
/// (docs/api.md#what-a-code-proves). A PIN prompt is not a code: the
/// agent gave the PIN on another channel.
fn refuse_unvouched_chat(chat: &Route) -> Result<(), Error> {
    if chat.vouches {
        return Ok(());
    }
    Err(Error::DeliveryRefused(
        "delivery: this chat's channel does not vouch for who writes in it, so a code shown here \
         proves nothing: send the code to the customer's contact (delivery \"sms\", \"email\", \
         \"voice\" or \"ladder\") or use a login link",
    ))
}

/// The route of `delivery` (`None`: nothing is sent), or 422 when the team
/// has no channel for it.
fn route(routes: &Routes, delivery: Delivery) -> Result<Option<&Route>, Error> {
    let not_allowed = || Error::invalid("delivery", "is not allowed for this team");
    match delivery {
        // A ladder's steps are chosen by `domain::ladder`.
        Delivery::Agent | Delivery::LoginPage | Delivery::Ladder | Delivery::App => Ok(None),
        Delivery::Chat => Ok(Some(&routes.chat)),
        Delivery::Sms => routes.sms.as_ref().map(Some).ok_or_else(not_allowed),
        Delivery::Email => routes.email.as_ref().map(Some).ok_or_else(not_allowed),
        Delivery::Voice => routes.voice.as_ref().map(Some).ok_or_else(not_allowed),
    }
}

/// A page-entry challenge's link goes into the conversation after the
/// code: on a channel that reaches the customer's phone or e-mail address
/// rather than a conversation, the interaction must have that contact,
/// else 422 naming `entry` before anything is sent or counted (the code
/// would go out with nowhere to type it).
fn refuse_unreachable_chat(chat: &Route, rec: &InteractionRecord) -> Result<(), Error> {
    let reach = chat.reach_in(&rec.channel, &rec.conversation_id, None);
    let to_person = matches!(reach, Reach::Phone | Reach::Voice | Reach::Email);
    if to_person && reach.recipient(&rec.contact, None).is_none() {
        return Err(Error::invalid(
            "entry",
            "the page's link goes into the conversation, whose channel needs the \
             interaction's contact, and it has none",
        ));
    }
    Ok(())
}

/// The recipient of an SMS or e-mail: the request's, else the contact's
/// (422 when it has none); `None` for the other deliveries.
fn to_contact(req: &ChallengeRequest, contact: &Contact) -> Result<Option<String>, Error> {
    if req.to.is_some() {
        return Ok(req.to.clone());
    }
    let (on_file, what) = match req.delivery {
        Delivery::Sms | Delivery::Voice => {
            (&contact.phone, "required: the interaction has no phone")
        }
        Delivery::Email => (&contact.email, "required: the interaction has no e-mail"),
        Delivery::Chat
        | Delivery::Agent
        | Delivery::LoginPage
        | Delivery::Ladder
        | Delivery::App => return Ok(None),
    };
    on_file
        .clone()
        .map(Some)
        .ok_or_else(|| Error::invalid("to", what))
}

/// The challenge to open, one function per way of proving: a PIN prompt
/// for the session PIN (409 without one), a network or wallet link, or
/// an OTP for `code`, sealed for agents where they may see it. Each is
/// typed where the request's `entry` says, and a step-up's ends with it.
fn new_challenge(
    req: &ChallengeRequest,
    id: Uuid,
    code: &OtpCode,
    rec: &InteractionRecord,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<Challenge, Error> {
    let step_up = rec.live_step_up(now).map(|p| p.until);
    match MethodRungs::of(req.method).opens {
        Opens::Pin => new_pin(req, id, rec, rules, now),
        Opens::Wallet => new_wallet(req, id, rules, step_up, now),
        Opens::Network => new_network(req, id, rules, step_up, now),
        Opens::Code => new_code(req, id, code, rules, step_up, now),
    }
}

/// A prompt for the session PIN: 409 without one.
fn new_pin(
    req: &ChallengeRequest,
    id: Uuid,
    rec: &InteractionRecord,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<Challenge, Error> {
    let hash = rec.session_pin_hash.as_ref().ok_or(Error::NoSessionPin)?;
    let mut c = Challenge::new_pin(id, hash, &rules.settings.pin, now);
    c.proof = Proof::Pin {
        entry: Entry::of(req.page_entry),
    };
    Ok(c)
}

/// A wallet link, for the request's transaction when it approves one
/// (`decide` refused a team without `[wallet]` or a request without its
/// credential).
fn new_wallet(
    req: &ChallengeRequest,
    id: Uuid,
    rules: &Rules<'_>,
    step_up: Option<Timestamp>,
    now: Timestamp,
) -> Result<Challenge, Error> {
    let (Some(ttl), Some(w)) = (rules.wallet_ttl, req.wallet.as_ref()) else {
        return Err(Error::invalid("method", "wallet needs the team's [wallet]"));
    };
    let w = paying(w, req.transaction.as_ref(), id, now);
    let c = Challenge::new_wallet(id, req.delivery, ttl, step_up.is_some(), w, now);
    Ok(c.ending_by(step_up)
        .for_transaction(req.transaction.clone()))
}

/// A network link (`decide` refused a team without
/// `[number_verification]`).
fn new_network(
    req: &ChallengeRequest,
    id: Uuid,
    rules: &Rules<'_>,
    step_up: Option<Timestamp>,
    now: Timestamp,
) -> Result<Challenge, Error> {
    let Some(ttl) = rules.link_ttl else {
        return Err(Error::invalid(
            "method",
            "network needs the team's [number_verification]",
        ));
    };
    let c = Challenge::new_network(id, req.delivery, ttl, step_up.is_some(), now);
    Ok(c.ending_by(step_up))
}

/// An OTP for `code`: agents never see a transaction's code, so it is
/// sealed for them only without one.
fn new_code(
    req: &ChallengeRequest,
    id: Uuid,
    code: &OtpCode,
    rules: &Rules<'_>,
    step_up: Option<Timestamp>,
    now: Timestamp,
) -> Result<Challenge, Error> {
    let s = rules.settings;
    let seal = s.otp.show_to_agents && req.transaction.is_none();
    let mut c = Challenge::new_otp(
        id,
        req.delivery,
        code,
        rules.pepper,
        &s.otp,
        seal,
        step_up.is_some(),
        now,
    )?;
    c.proof = Proof::otp(Entry::of(req.page_entry));
    Ok(c.ending_by(step_up)
        .for_transaction(req.transaction.clone()))
}

/// Takes back challenge `id`, started at `now`, whose message could not be
/// sent: `previous` is current again if still open, and the send counted
/// for the subject (or `origin`) is given back. `false` when a newer challenge replaced it meanwhile
/// (nothing to take back).
pub fn take_back(
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    origin: Option<&str>,
    id: Uuid,
    previous: Option<Challenge>,
    now: Timestamp,
) -> bool {
    if rec.challenge.as_ref().map(|c| c.id) != Some(id) {
        return false;
    }
    rec.challenge = previous.filter(|p| p.is_open(now));
    if let Some(p) = &rec.challenge {
        rec.past_challenges.retain(|past| past.id != p.id);
    }
    subject.give_back_send_for(origin, now);
    true
}

// A test may pick the one variant it is about.
#[cfg(test)]
#[allow(clippy::wildcard_enum_match_arm)]
mod tests;
