//! A bot platform's turn (docs/integrating-bot-platforms.md#dialogflow-cx):
//! find or create the conversation's interaction, run the action its tag
//! names through the use cases the API's handlers call (so a refusal
//! counts as theirs does), and say the result.
use std::sync::Arc;

use uuid::Uuid;

use super::challenges::{self, read, verify};
use super::interactions::{self, NewInteraction};
use super::login::{self, LinkRequest};
use super::{Core, InteractionView};
use crate::config::{self, Team};
use crate::domain::bot_turn::{self, BotResult, Done, Said, Tag};
use crate::domain::challenge::{ChallengeMethod, Delivery};
use crate::domain::start_challenge::ChallengeRequest;
use crate::error::{Error, Result};
use crate::time::{Clock, Timestamp};

/// One webhook call, parsed.
#[derive(Debug, Clone)]
pub struct BotTurn {
    pub tag: Tag,
    /// The conversation on the team's bot channel (the platform's session).
    pub conversation: String,
    pub customer_ref: Option<String>,
    /// The language the platform speaks this turn (a BCP 47 tag), as it
    /// names it.
    pub locale: Option<String>,
    /// `chatgate.send_code`: the OTP's delivery; `None`: `chat`.
    pub delivery: Option<String>,
    /// `chatgate.check_code`: what the customer gave as the code.
    pub said: Option<Said>,
}

/// What the answer says.
#[derive(Debug)]
pub struct BotAnswer {
    pub result: BotResult,
    /// The result's text, for the customer.
    pub text: String,
    /// The interaction after the action.
    pub interaction: InteractionView,
}

/// Runs one turn on the conversation `turn.conversation` of `channel`.
pub async fn take_turn(
    core: &Arc<Core>,
    team: &Team,
    channel: &str,
    turn: BotTurn,
    clock: &dyn Clock,
) -> Result<BotAnswer> {
    // Find or create the conversation's interaction, in the turn's language.
    let new = new_interaction(&turn, channel);
    let (found, _) = interactions::create_interaction(core, team, new, clock.now()).await?;
    // Run the action; a refusal is an answer, not an error.
    let Acted { done, left, after } = act(core, team, &found, &turn, clock).await;
    // Where the interaction stands now: as the action's commit left it,
    // when the use case hands that back; else read once more.
    let interaction = match after {
        Some(view) => view,
        None => interactions::get_interaction(core, team, found.id, clock.now()).await?,
    };
    // Judge: an error that is no refusal stays the API's error.
    let status = interaction.status.into();
    let result = match done {
        Ok(d) => bot_turn::result_of(d, status),
        Err(e) => bot_turn::refusal(&e).ok_or(e)?,
    };
    // Say it.
    let text = say(core, team, channel, &interaction.locale, (result, left));
    Ok(BotAnswer {
        result,
        text,
        interaction,
    })
}

/// The find-or-create request of a turn. The one place the turn's
/// language is handed on: a request carrying a locale sets the
/// interaction's language from then on.
fn new_interaction(turn: &BotTurn, channel: &str) -> NewInteraction {
    NewInteraction {
        channel: channel.to_string(),
        conversation_id: turn.conversation.clone(),
        customer_ref: turn.customer_ref.clone(),
        session_pin: None,
        contact: None,
        locale: turn.locale.clone(),
    }
}

/// The text of `result`: the `say_*` text of the settings in force on
/// `channel` in the interaction's language (docs/api.md#languages),
/// `#LEFT#` filled. The one place a turn's text is chosen.
fn say(
    core: &Core,
    team: &Team,
    channel: &str,
    locale: &str,
    (result, left): (BotResult, Option<u32>),
) -> String {
    let settings = team.settings_for(channel);
    let channel_cfg = core.config().channels.get(channel);
    bot_turn::say(
        config::text(result.key(), settings, channel_cfg, locale),
        left,
    )
}

/// What the tag's action did.
struct Acted {
    done: Result<Done>,
    /// The attempts left, when it checked a code.
    left: Option<u32>,
    /// The interaction as the action left it, when it knows (a status
    /// changes nothing; a sent code or link, a right or wrong code are
    /// handed back by their use case): no read after it.
    after: Option<InteractionView>,
}

/// What the tag's action did.
async fn act(
    core: &Arc<Core>,
    team: &Team,
    found: &InteractionView,
    turn: &BotTurn,
    clock: &dyn Clock,
) -> Acted {
    let id = found.id;
    match turn.tag {
        Tag::Status => Acted {
            done: Ok(Done::Read),
            left: None,
            after: Some(found.clone()),
        },
        Tag::SendCode => send_code(core, team, id, turn, clock).await.into(),
        Tag::CheckCode => {
            let open = found.open_challenge.as_ref().map(|c| c.challenge_id);
            let length = team.settings_for(&found.channel).otp.length;
            let code = turn.said.as_ref().and_then(|s| s.code(length));
            check_code(core, team, (id, open), code, clock.now()).await
        }
        Tag::SendLink => send_link(core, team, id, clock).await.into(),
    }
}

/// What a send did, and the interaction as it left it, when it says.
type Sent = Result<(Done, Option<InteractionView>)>;

impl From<Sent> for Acted {
    fn from(sent: Sent) -> Self {
        let (done, after) = match sent {
            Ok((done, after)) => (Ok(done), after),
            Err(e) => (Err(e), None),
        };
        Acted {
            done,
            left: None,
            after,
        }
    }
}

/// `POST .../challenges` with an OTP.
async fn send_code(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    turn: &BotTurn,
    clock: &dyn Clock,
) -> Sent {
    let delivery = turn.delivery.as_deref().unwrap_or(Delivery::Chat.as_str());
    let req = ChallengeRequest::parse(ChallengeMethod::Otp.as_str(), Some(delivery), None)?;
    let (_, after) = challenges::start_challenge_seen(core, team, id, req, clock).await?;
    Ok((Done::CodeSent, after))
}

/// `POST .../login-links` with `deliver: true`.
async fn send_link(core: &Core, team: &Team, id: Uuid, clock: &dyn Clock) -> Sent {
    let req = LinkRequest {
        deliver: Some(true),
        ..LinkRequest::default()
    };
    let (issued, after) = login::issue_link_seen(core, team, id, req, clock.now()).await?;
    let delivered = issued.delivered;
    Ok((Done::LinkSent { delivered }, after))
}

/// `POST .../verify` of the open challenge `cid` of `id` with the code the
/// customer said (a number's padded to the code's length); what is not a
/// code (`None`) is checked against nothing and counted nowhere.
async fn check_code(
    core: &Arc<Core>,
    team: &Team,
    (id, cid): (Uuid, Option<Uuid>),
    code: Option<String>,
    now: Timestamp,
) -> Acted {
    let answered = |done, left| Acted {
        done,
        left,
        after: None,
    };
    let Some(cid) = cid else {
        return answered(Ok(Done::NoChallenge), None);
    };
    match code {
        Some(code) => match verify::verify_challenge_seen(core, team, id, cid, &code, now).await {
            Ok((verdict, seen)) => {
                let left = match &verdict {
                    Err(Error::InvalidCode { attempts_remaining }) => Some(*attempts_remaining),
                    _ => None,
                };
                Acted {
                    done: verdict.map(|_| Done::Verified),
                    left,
                    after: Some(seen),
                }
            }
            Err(e) => answered(Err(e), None),
        },
        None => match read::read_challenge(core, team, id, cid, false, now).await {
            Ok(c) => answered(Ok(Done::NotACode), Some(c.attempts_remaining)),
            Err(e) => answered(Err(e), None),
        },
    }
}
