//! A team written as JSON by an operator (docs/operator-api.md#the-representation):
//! checked by the loader of team files ([`team_of_table`]) over the same
//! `[defaults]` and channel files, then against the teams in force, every
//! problem named by its RFC 6901 pointer into the body.
use super::every_problem::every_problem;
use super::form::{pointer_of_key, table_of_json, FormProblem};
use super::resolve::Layer;
use super::teams::{team_of_table, Inherited, ReadBacks};
use super::toml_file::display_path;
use super::{Config, Team};
use crate::domain::secrets::ApiKeyHash;
use crate::domain::secrets_cipher::Salts;

/// The name a body goes by where a file's name would be.
pub(super) const BODY: &str = "(body)";

impl Config {
    /// The team an operator's JSON `body` writes, or every problem found
    /// ([`every_problem`]: a required member left out gets a placeholder
    /// that breaks no rule, [`placeholder`]).
    /// `salts`: those of the body's secrets, by pointer, which what a read
    /// shows of each is made with (docs/operator-api.md#secrets).
    pub fn team_of_json(
        &self,
        body: &serde_json::Value,
        salts: &Salts,
    ) -> Result<Team, Vec<FormProblem>> {
        every_problem(body, |b| self.check_team(b, salts, true), placeholder)
    }

    /// [`Config::team_of_json`] for a team the store holds, being put in
    /// force: its API keys checked against the file teams' and the
    /// operators' only, since which of two stored teams keeps a key is
    /// settled over the teams put in force together
    /// (docs/operator-api.md#keys).
    pub fn stored_team_of_json(
        &self,
        body: &serde_json::Value,
        salts: &Salts,
    ) -> Result<Team, Vec<FormProblem>> {
        every_problem(body, |b| self.check_team(b, salts, false), placeholder)
    }

    /// One pass of [`Config::team_of_json`]: its shape's problems, or the
    /// first rule of a team file it breaks; `api_teams`: a key of an API
    /// team in force breaks one too, and so does another team's `[mcp]
    /// oauth` issuer and audience.
    fn check_team(
        &self,
        body: &serde_json::Value,
        salts: &Salts,
        api_teams: bool,
    ) -> Result<Team, Vec<FormProblem>> {
        let table = table_of_json(body)?;
        let file = display_path(&self.path);
        let defaults = Layer {
            file: &file,
            prefix: "defaults".into(),
            table: &self.defaults_table,
        };
        let secrets = (self.operator.as_deref()).map(|o| ReadBacks {
            cipher: &o.secrets,
            salts,
        });
        let inherited = Inherited::new(
            defaults,
            &self.defaults_print,
            &self.defaults,
            secrets,
            &self.server.public_url,
        );
        let problem = |pointer: String, detail: String| vec![FormProblem { pointer, detail }];
        let mut team = team_of_table(table, BODY, &inherited, &self.channels).map_err(|e| {
            // A problem of a layer below the body's (none: those were
            // checked at start-up) names the body as a whole.
            let pointer = if e.file == BODY {
                pointer_of_key(&e.key)
            } else {
                String::new()
            };
            problem(pointer, e.problem)
        })?;
        team.reaching(self.reach_of(true));
        if team.id == self.server.issuer.trim() {
            let detail = "must not be the server's issuer: login tokens and this team's pre-chat assertions would be interchangeable";
            return Err(problem("/id".into(), detail.into()));
        }
        for (i, key) in team.api_keys.iter().enumerate() {
            if self.api_key_taken(&team.id, &key.sha256, api_teams) {
                return Err(vec![api_key_taken_at(i)]);
            }
        }
        // A stored team's is settled over the teams put in force together,
        // and a file team's stops a start or a reload (`gateway::operator`).
        let oauth = team.mcp_oauth.as_ref().filter(|_| api_teams);
        if let Some(holder) = oauth.and_then(|o| self.mcp_audience_holder(&team.id, o, true)) {
            return Err(vec![super::mcp_oauth::audience_taken(&holder.id)]);
        }
        Ok(team)
    }
}

/// The problem of a team's body whose API key at `index` of `api_keys`
/// another team or an operator holds: a key names one team.
pub fn api_key_taken_at(index: usize) -> FormProblem {
    FormProblem {
        pointer: format!("/api_keys/{index}/sha256"),
        detail: "the same key is already configured for another team or an operator".into(),
    }
}

impl Config {
    /// Whether `key` is the API key of a team other than `team` (an API
    /// team's only when `api_teams`), or an operator's: a key identifies
    /// one team. One lookup by digest, whatever the number of teams
    /// (docs/decisions/0490-api-keys-found-by-their-digest.md).
    pub fn api_key_taken(&self, team: &str, key: &ApiKeyHash, api_teams: bool) -> bool {
        let other_team =
            (self.key_holders.holders(key)).any(|h| *h.team != *team && (api_teams || !h.api));
        let operators = (self.operator.as_deref()).map_or(&[][..], |o| &o.api_keys[..]);
        other_team || operators.iter().any(|k| k.sha256.matches(key))
    }
}

/// A value of a member of a team that a team requires, which breaks no
/// rule: what stands for it once it was left out.
fn placeholder(pointer: &str) -> Option<serde_json::Value> {
    let value = match pointer {
        "/id" => serde_json::json!("placeholder"),
        "/login_url" => serde_json::json!("https://placeholder.invalid/"),
        "/security_keys" => serde_json::json!([{
            "kid": "placeholder",
            "secret": format!("whsec_{}", "A".repeat(43) + "="),
            "primary": true,
        }]),
        _ => return None,
    };
    Some(value)
}
