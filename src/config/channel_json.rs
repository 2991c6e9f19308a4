//! A channel written as JSON by an operator (docs/operator-api.md#the-representation):
//! checked by the loader of channel files ([`channel_of_table`]), its
//! secrets written as plain values, every problem named by its RFC 6901
//! pointer into the body.
use super::channels::{channel_of_table, Written};
use super::every_problem::every_problem;
use super::form::{is_secret_member, pointer_of_key, table_of_json, FormProblem};
use super::team_json::BODY;
use super::teams::ReadBacks;
use super::{ChannelConfig, Config};
use crate::domain::secrets_cipher::Salts;

impl Config {
    /// The channel an operator's JSON `body` writes, or every problem
    /// found ([`every_problem`], with a [`placeholder`] for a `name` or a
    /// secret left out).
    /// `${…}` is not read in a body: where a secret goes it is a problem,
    /// elsewhere it is the text itself.
    /// `salts`: those of the body's secrets, by pointer, which what a read
    /// shows of each is made with (docs/operator-api.md#secrets).
    pub fn channel_of_json(
        &self,
        body: &serde_json::Value,
        salts: &Salts,
    ) -> Result<ChannelConfig, Vec<FormProblem>> {
        every_problem(body, |b| self.check_channel(b, salts), placeholder)
    }

    /// One pass of [`Config::channel_of_json`]: its shape's problems, or
    /// the first rule of a channel file it breaks.
    fn check_channel(
        &self,
        body: &serde_json::Value,
        salts: &Salts,
    ) -> Result<ChannelConfig, Vec<FormProblem>> {
        let table = table_of_json(body)?;
        let secrets = (self.operator.as_deref()).map(|o| ReadBacks {
            cipher: &o.secrets,
            salts,
        });
        channel_of_table(table, Written::Body, BODY, secrets).map_err(|e| {
            vec![FormProblem {
                pointer: pointer_of_key(&e.key),
                detail: e.problem,
            }]
        })
    }
}

/// A value that breaks no rule for a member a channel requires: what
/// stands for it once it was left out, so that the rest of the body is
/// checked too (its `name`, a secret written as `${…}`). A `kind` has
/// none: its keys cannot be checked without it.
fn placeholder(pointer: &str) -> Option<serde_json::Value> {
    let value = match pointer.strip_prefix('/')? {
        "name" => "placeholder".to_string(),
        // A `webhook`'s `secret` is a `whsec_` key, as a team's is.
        "secret" => format!("whsec_{}", "A".repeat(43) + "="),
        member if is_secret_member(member) => "placeholder".to_string(),
        _ => return None,
    };
    Some(serde_json::Value::String(value))
}
