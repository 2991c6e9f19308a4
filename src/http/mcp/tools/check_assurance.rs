//! `check_assurance` (docs/agents.md#check_assurance): `GET
//! …/assurance`, its query read by its own parser.
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::arguments::{interaction_id, Failure};
use super::tool::{Call, Effect, Hints, Tool};
use crate::gateway::assurance::AssuranceView;
use crate::http::assurance::{parse_ask, parse_transaction};

pub(super) struct CheckAssurance;

impl Tool for CheckAssurance {
    const NAME: &'static str = "check_assurance";
    const TITLE: &'static str = "Check the proof is enough for an action";
    const DESCRIPTION: &'static str = "Before a sensitive action (a balance, a payment, a change of details), asks whether \
    the customer's verification is recent and strong enough: name the bank's `intent` (a policy such as \
    payment), or give `max_age` (90s, 5m, 2h) and `methods`; `transaction` names one payment's hash. When \
    `satisfied` is false, `unmet` says why: start a new verification with start_verification and ask again.";
    const HINTS: Hints = Hints {
        effect: Effect::Reads,
        idempotent: true,
        open_world: false,
    };
    type Args = AssuranceArgs;
    type Output = AssuranceView;

    fn input_schema() -> Value {
        json!({
            "type": "object", "additionalProperties": false, "required": ["interaction_id"],
            "properties": {
                "interaction_id": {"type": "string", "format": "uuid"},
                "intent": {"type": "string", "minLength": 1, "maxLength": 64},
                "max_age": {"type": "string", "description": "a duration: 90s, 5m, 2h"},
                "methods": {"type": "array", "items": {"type": "string",
                    "enum": ["login_link", "oidc", "pre_chat", "otp", "pin", "app", "network", "wallet", "recognized"]}},
                "transaction": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"}
            }
        })
    }

    fn output_schema() -> Value {
        json!({
            "type": "object", "required": ["interaction_id", "satisfied", "status", "unmet"],
            "properties": {"interaction_id": {"type": "string"}, "satisfied": {"type": "boolean"},
                           "status": {"type": "string"}, "method": {"type": ["string", "null"]},
                           "authenticated_at": {"type": ["string", "null"]},
                           "age_seconds": {"type": ["integer", "null"]},
                           "unmet": {"type": "array", "items": {"type": "string"}}}
        })
    }

    async fn call(c: Call<'_>, a: AssuranceArgs) -> Result<AssuranceView, Failure> {
        let id = interaction_id(&a.interaction_id)?;
        let mut q = HashMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.insert(k.to_string(), v);
            }
        };
        put("intent", a.intent);
        put("max_age", a.max_age);
        put("methods", a.methods.map(|m| m.join(",")));
        put("transaction", a.transaction);
        let ask = parse_ask(&q)?;
        let transaction = parse_transaction(&q)?;
        let (st, team) = (c.st, c.bot.team());
        let now = st.clock.now();
        let answer =
            crate::gateway::assurance::assurance(&st.gateway, team, id, ask, transaction, now)
                .await?;
        Ok(answer)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssuranceArgs {
    interaction_id: String,
    intent: Option<String>,
    max_age: Option<String>,
    methods: Option<Vec<String>>,
    transaction: Option<String>,
}
