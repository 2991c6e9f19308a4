//! `get_verification` (docs/agents.md#get_verification): the wait is
//! the gateway's (`gateway::mcp::get_verification`); here, its bound and
//! its place in the waiting calls' budget (`http/waiting.rs`).
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::arguments::{broken, interaction_id, Failure};
use super::tool::{Call, Effect, Hints, Tool};
use crate::gateway::mcp::{self as use_cases, MAX_WAIT_SECONDS};

pub(super) struct GetVerification;

impl Tool for GetVerification {
    const NAME: &'static str = "get_verification";
    const TITLE: &'static str = "Learn whether the customer is verified";
    const DESCRIPTION: &'static str = "Tells whether the customer is verified (`authenticated`), how (`method`), until when, and \
    where the current challenge stands. With `wait_seconds` (up to 25) it waits for a change: pass the `cursor` of \
    its last answer as `after`, and it answers at once when something changed since that answer, else when \
    something changes or the wait ends — call it again with the new `cursor` to keep waiting while the customer \
    acts on their phone. When \
    `challenge.awaiting_code` is true, a chatgate page has shown the customer a short code to type into this \
    chat: pass what they type to confirm_chat_code.";
    const HINTS: Hints = Hints {
        effect: Effect::Reads,
        idempotent: true,
        open_world: false,
    };
    type Args = GetArgs;
    type Output = use_cases::Verification;

    fn input_schema() -> Value {
        json!({
            "type": "object", "additionalProperties": false, "required": ["interaction_id"],
            "properties": {"interaction_id": {"type": "string", "format": "uuid"},
                           "wait_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
                           "after": {"type": "string", "description": "the `cursor` of an earlier answer: wait for a change from it"}}
        })
    }

    fn output_schema() -> Value {
        verification_schema()
    }

    /// A wait holds a place of the waiting calls' budget; with none free
    /// for its key or in all, the call answers at once, as with
    /// `wait_seconds` 0, and so it does when a provider's request takes
    /// its place. A stateless call (no session) waits as well: its
    /// `after` is what it differs from.
    async fn call(c: Call<'_>, a: GetArgs) -> Result<use_cases::Verification, Failure> {
        let (st, bot) = (c.st, c.bot);
        let wait = a.wait_seconds.unwrap_or(0);
        if wait > MAX_WAIT_SECONDS {
            let why = format!("is at most {MAX_WAIT_SECONDS}");
            return Err(broken("/wait_seconds", &why, false));
        }
        let place = (wait > 0)
            .then(|| st.waiting.for_key(&bot.team_id, &bot.key_id))
            .flatten();
        let asked = use_cases::Asked {
            id: interaction_id(&a.interaction_id)?,
            wait: Duration::from_secs(if place.is_some() { wait } else { 0 }),
            after: a.after.as_deref(),
            session: c.session.map(|s| (bot.key_id.as_ref(), s)),
        };
        let taken = async {
            match &place {
                Some(p) => p.taken().await,
                None => std::future::pending().await,
            }
        };
        let clock = st.clock.as_ref();
        let answer =
            use_cases::get_verification(&st.gateway, bot.team(), asked, clock, taken).await?;
        Ok(answer)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GetArgs {
    interaction_id: String,
    wait_seconds: Option<u64>,
    after: Option<String>,
}

/// The schema of `get_verification`'s answer, which `confirm_chat_code`
/// answers too.
pub(super) fn verification_schema() -> Value {
    json!({
        "type": "object",
        "required": ["status", "authenticated", "method", "expires_at", "customer_id", "challenge", "cursor"],
        "properties": {
            "status": {"type": "string", "enum": ["unauthenticated", "pending", "authenticated", "expired", "locked", "banned"]},
            "authenticated": {"type": "boolean"},
            "method": {"type": ["string", "null"]},
            "expires_at": {"type": ["string", "null"]},
            "customer_id": {"type": ["string", "null"]},
            "challenge": {"type": ["object", "null"],
                "properties": {"challenge_id": {"type": "string"}, "method": {"type": "string"},
                               "state": {"type": "string"}, "result": {"type": ["string", "null"]},
                               "awaiting_code": {"type": "boolean"}}},
            "cursor": {"type": "string", "description": "what this answer was; pass it as get_verification's `after` to wait for a change from it"}
        }
    })
}
