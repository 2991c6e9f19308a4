//! A channel written as JSON by an operator (docs/operator-api.md#the-representation):
//! checked by the loader of channel files ([`channel_of_table`]), its
//! secrets written as plain values, every problem named by its RFC 6901
//! pointer into the body.
use super::channels::{channel_of_table, Written};
use super::every_problem::every_problem;
use super::form::{pointer_of_key, table_of_json, FormProblem};
use super::team_json::BODY;
use super::{ChannelConfig, Config};

impl Config {
    /// The channel an operator's JSON `body` writes, or every problem
    /// found ([`every_problem`]: a `name` left out gets a placeholder).
    /// `${…}` is not read in a body: where a secret goes it is a problem,
    /// elsewhere it is the text itself.
    pub fn channel_of_json(
        &self,
        body: &serde_json::Value,
    ) -> Result<ChannelConfig, Vec<FormProblem>> {
        every_problem(body, |b| self.check_channel(b), placeholder)
    }

    /// One pass of [`Config::channel_of_json`]: its shape's problems, or
    /// the first rule of a channel file it breaks.
    fn check_channel(&self, body: &serde_json::Value) -> Result<ChannelConfig, Vec<FormProblem>> {
        let table = table_of_json(body)?;
        let secrets = self.operator.as_deref().map(|o| &o.secrets);
        channel_of_table(table, Written::Body, BODY, secrets).map_err(|e| {
            vec![FormProblem {
                pointer: pointer_of_key(&e.key),
                detail: e.problem,
            }]
        })
    }
}

/// A value of a member every channel requires, which breaks no rule: what
/// stands for it once it was left out. A `kind` has none: its keys cannot
/// be checked without it.
fn placeholder(pointer: &str) -> Option<serde_json::Value> {
    (pointer == "/name").then(|| serde_json::json!("placeholder"))
}
