//! A team written as JSON by an operator (docs/operator-api.md#the-representation):
//! checked by the loader of team files ([`team_of_table`]) over the same
//! `[defaults]` and channel files, then against the teams in force, every
//! problem named by its RFC 6901 pointer into the body.
use std::collections::BTreeSet;

use super::form::{pointer_of_key, table_of_json, FormProblem};
use super::resolve::Layer;
use super::teams::{team_of_table, Inherited};
use super::toml_file::display_path;
use super::{Config, Team};
use crate::domain::secrets::ApiKeyHash;

/// The name a body goes by where a file's name would be.
const BODY: &str = "(body)";

/// The most problems one answer lists.
const MAX_PROBLEMS: usize = 32;

impl Config {
    /// The team an operator's JSON `body` writes, or every problem found.
    /// The loader stops at a file's first problem; to find the next, the
    /// member at fault is left out (an array as a whole, so the pointers
    /// of the rest still name the body's members) and the body checked
    /// again. A problem that only leaving out made (a required member now
    /// missing) is not listed: its table is left out instead, or a
    /// top-level member replaced by a placeholder that breaks no rule.
    /// It ends when the body passes, nothing more can be left out, or
    /// [`MAX_PROBLEMS`] are found.
    pub fn team_of_json(&self, body: &serde_json::Value) -> Result<Team, Vec<FormProblem>> {
        let mut body = body.clone();
        let mut problems: Vec<FormProblem> = Vec::new();
        // The pointers of the problems listed, and of the members left out.
        let mut seen = BTreeSet::new();
        for _ in 0..MAX_PROBLEMS * 2 {
            let found = match self.check_team(&body) {
                Ok(team) if problems.is_empty() => return Ok(team),
                Ok(_) => break,
                Err(found) => found,
            };
            let mut went_on = false;
            for p in found {
                let made_by_us = seen.contains(&p.pointer);
                let left = match made_by_us {
                    true => fill_in(&mut body, &p.pointer),
                    false => {
                        leave_out(&mut body, &p.pointer).or_else(|| fill_in(&mut body, &p.pointer))
                    }
                };
                if !made_by_us {
                    seen.insert(p.pointer.clone());
                    problems.push(p);
                }
                went_on |= left.is_some();
                seen.extend(left);
            }
            if !went_on || problems.len() >= MAX_PROBLEMS {
                break;
            }
        }
        problems.truncate(MAX_PROBLEMS);
        Err(problems)
    }

    /// One pass of [`Config::team_of_json`]: its shape's problems, or the
    /// first rule of a team file it breaks.
    fn check_team(&self, body: &serde_json::Value) -> Result<Team, Vec<FormProblem>> {
        let table = table_of_json(body)?;
        let file = display_path(&self.path);
        let defaults = Layer {
            file: &file,
            prefix: "defaults".into(),
            table: &self.defaults_table,
        };
        let secrets = self.operator.as_deref().map(|o| &o.secrets);
        let inherited = Inherited::new(defaults, secrets);
        let problem = |pointer: String, detail: String| vec![FormProblem { pointer, detail }];
        let team = team_of_table(table, BODY, &inherited, &self.channels).map_err(|e| {
            // A problem of a layer below the body's (none: those were
            // checked at start-up) names the body as a whole.
            let pointer = if e.file == BODY {
                pointer_of_key(&e.key)
            } else {
                String::new()
            };
            problem(pointer, e.problem)
        })?;
        if team.id == self.server.issuer.trim() {
            let detail = "must not be the server's issuer: login tokens and this team's pre-chat assertions would be interchangeable";
            return Err(problem("/id".into(), detail.into()));
        }
        for (i, key) in team.api_keys.iter().enumerate() {
            if self.api_key_taken(&team.id, &key.sha256) {
                let detail = "the same key is already configured for another team or an operator";
                return Err(problem(format!("/api_keys/{i}/sha256"), detail.into()));
            }
        }
        Ok(team)
    }
}

impl Config {
    /// Whether `key` is the API key of a team other than `team`, or an
    /// operator's: a key identifies one team.
    pub fn api_key_taken(&self, team: &str, key: &ApiKeyHash) -> bool {
        let other_team = (self.teams.values())
            .filter(|t| t.id != team)
            .any(|t| t.api_keys.iter().any(|k| k.sha256.matches(key)));
        let operators = (self.operator.as_deref()).map_or(&[][..], |o| &o.api_keys[..]);
        other_team || operators.iter().any(|k| k.sha256.matches(key))
    }
}

/// For a member `pointer` names that is missing (or was left out): its
/// parent left out, or, for a member of the body itself that a team
/// requires, a placeholder that breaks no rule put in. The pointer of
/// what changed, or `None`.
fn fill_in(body: &mut serde_json::Value, pointer: &str) -> Option<String> {
    if let Some((parent, _)) = pointer.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
        return leave_out(body, parent);
    }
    let placeholder = match pointer {
        "/id" => serde_json::json!("placeholder"),
        "/login_url" => serde_json::json!("https://placeholder.invalid/"),
        "/security_keys" => serde_json::json!([{
            "kid": "placeholder",
            "secret": format!("whsec_{}", "A".repeat(43) + "="),
            "primary": true,
        }]),
        _ => return None,
    };
    let serde_json::Value::Object(members) = body else {
        return None;
    };
    let fresh = (members.insert(pointer[1..].to_string(), placeholder)).is_none();
    fresh.then(|| pointer.to_string())
}

/// Leaves out of `body` the member `pointer` names, or the array it is
/// in (the outermost): the pointer of what was left out, `None` when there
/// is none (the body as a whole, a member that is missing).
fn leave_out(body: &mut serde_json::Value, pointer: &str) -> Option<String> {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut at = body;
    let mut path = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let serde_json::Value::Object(members) = at else {
            return None;
        };
        path.push('/');
        path.push_str(&super::form::escape(token));
        let last = i + 1 == tokens.len();
        if last || members.get(token).is_some_and(serde_json::Value::is_array) {
            return members.remove(token).map(|_| path);
        }
        at = members.get_mut(token)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_member_at_fault_is_left_out_or_its_array_whole() {
        let mut body = json!({"a": {"b/c": 1, "d": 2}, "list": [{"x": 1}, {"x": 2}]});
        assert_eq!(leave_out(&mut body, "/a/b~1c").as_deref(), Some("/a/b~1c"));
        assert_eq!(leave_out(&mut body, "/list/1/x").as_deref(), Some("/list"));
        assert_eq!(body, json!({"a": {"d": 2}}));
        for nothing in ["", "/missing", "/a/d/e", "/a/missing/x"] {
            assert_eq!(leave_out(&mut body, nothing), None, "{nothing}");
        }
        assert_eq!(body, json!({"a": {"d": 2}}));
    }

    #[test]
    fn a_member_made_missing_leaves_its_table_out_or_gets_a_placeholder() {
        let mut body = json!({"webhook": {"url": "x"}});
        assert_eq!(
            fill_in(&mut body, "/webhook/secret").as_deref(),
            Some("/webhook")
        );
        assert_eq!(body, json!({}));
        assert_eq!(
            fill_in(&mut body, "/login_url").as_deref(),
            Some("/login_url")
        );
        assert_eq!(fill_in(&mut body, "/login_url"), None, "already there");
        assert_eq!(fill_in(&mut body, "/colour"), None);
        assert_eq!(fill_in(&mut body, ""), None);
    }
}
