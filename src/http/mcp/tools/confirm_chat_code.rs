//! `confirm_chat_code` (docs/agents.md#confirm_chat_code): the binding
//! code the customer typed into the chat, and nothing else
//! (`gateway::mcp::confirm_chat_code`).
use serde::Deserialize;
use serde_json::{json, Value};

use super::arguments::{interaction_id, Failure};
use super::get_verification::verification_schema;
use super::tool::{Call, Effect, Hints, Tool};
use crate::gateway::mcp as use_cases;

pub(super) struct ConfirmChatCode;

impl Tool for ConfirmChatCode {
    const NAME: &'static str = "confirm_chat_code";
    const TITLE: &'static str = "Confirm the code the customer typed into the chat";
    const DESCRIPTION: &'static str = "Only when get_verification says `challenge.awaiting_code`: a chatgate page showed the \
    customer a short binding code and asked them to type it into this chat, proving they are the person in this \
    conversation. Pass exactly what they typed. It is never for a one-time code sent to the customer's phone or \
    e-mail, nor a PIN or password: those are typed on chatgate's page, and any other challenge is refused with \
    entry_page and nothing counted. A wrong code counts against the customer.";
    const HINTS: Hints = Hints {
        effect: Effect::Writes { destructive: false },
        idempotent: false,
        open_world: false,
    };
    type Args = ConfirmArgs;
    type Output = use_cases::Verification;

    fn input_schema() -> Value {
        json!({
            "type": "object", "additionalProperties": false, "required": ["interaction_id", "code"],
            "properties": {"interaction_id": {"type": "string", "format": "uuid"},
                           "code": {"type": "string", "description": "what the customer typed into the chat"}}
        })
    }

    fn output_schema() -> Value {
        verification_schema()
    }

    async fn call(c: Call<'_>, a: ConfirmArgs) -> Result<use_cases::Verification, Failure> {
        let id = interaction_id(&a.interaction_id)?;
        let (st, team) = (c.st, c.bot.team());
        let now = st.clock.now();
        use_cases::confirm_chat_code(&st.gateway, team, id, &a.code, now).await?;
        let answer = use_cases::verification(&st.gateway, team, id, st.clock.now()).await?;
        Ok(answer)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfirmArgs {
    interaction_id: String,
    code: String,
}
