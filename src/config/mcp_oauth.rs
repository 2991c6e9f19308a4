//! A team's `[mcp]` (docs/agents.md#oauth-access-tokens): `oauth`, the
//! authorization server whose access tokens act as the team's bot on the
//! MCP server beside its bot keys — its `issuer`, the `audience` a token
//! must name (default `{public_url}/mcp`) and the `scope` it must hold
//! (default `chatgate:bot`). Its metadata and key set are fetched and
//! cached as the OpenID login's are.
use std::sync::Arc;

use serde::Deserialize;

use super::de::from_table;
use super::form::FormProblem;
use super::{Config, ConfigError, OidcConfig, Team};

/// The scope an access token must hold unless the team names another.
pub const DEFAULT_SCOPE: &str = "chatgate:bot";

/// A team's `[mcp]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpTeamEntry {
    oauth: Option<OauthEntry>,
}

/// `[mcp] oauth`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OauthEntry {
    issuer: String,
    audience: Option<String>,
    scope: Option<String>,
}

/// A team's `[mcp] oauth`, checked.
#[derive(Debug)]
pub struct McpOauth {
    /// The authorization server as a provider the OpenID login's cache
    /// keeps (`crate::oidc::Providers`): its issuer and reach; no client
    /// of its own (its `client_id` is the audience, its secret empty).
    pub provider: OidcConfig,
    /// Every token's `aud` contains it.
    pub audience: String,
    /// Every token's scopes hold it.
    pub scope: String,
}

impl McpOauth {
    /// Whether `other` names this one's issuer and audience: two teams
    /// that did would each take the other's access tokens.
    pub fn takes_tokens_of(&self, other: &McpOauth) -> bool {
        self.provider.issuer == other.provider.issuer && self.audience == other.audience
    }
}

impl Config {
    /// The team other than `team` (a file team's only, unless
    /// `api_teams`) whose `[mcp] oauth` names `oauth`'s issuer and
    /// audience; found from the issuers kept with the teams, never by
    /// going round them
    /// (docs/decisions/0740-one-issuer-and-audience-one-team-at-every-write.md).
    pub fn mcp_audience_holder(
        &self,
        team: &str,
        oauth: &McpOauth,
        api_teams: bool,
    ) -> Option<&Arc<Team>> {
        let (issuer, audience) = (&oauth.provider.issuer, &oauth.audience);
        self.mcp_audience_holders(team, issuer, audience, api_teams)
            .next()
    }

    /// Every team other than `team` (a file team's only, unless
    /// `api_teams`) whose `[mcp] oauth` names `issuer` and `audience`, by
    /// id: [`Config::mcp_audience_holder`]'s index and check, for a pair
    /// read from a stored body ([`pair_of_body`]) as for a team built.
    pub fn mcp_audience_holders<'a, 'b>(
        &'a self,
        team: &'b str,
        issuer: &'b str,
        audience: &'b str,
        api_teams: bool,
    ) -> impl Iterator<Item = &'a Arc<Team>> + 'b
    where
        'a: 'b,
    {
        let same = move |t: &&Arc<Team>| {
            (t.mcp_oauth.as_ref())
                .is_some_and(|o| o.provider.issuer == issuer && o.audience == audience)
        };
        (self.sums.mcp_teams_of(issuer))
            .filter(move |id| id.as_str() != team)
            .filter_map(|id| self.teams.get(id))
            .filter(move |t| api_teams || t.api.is_none())
            .filter(same)
    }
}

/// The `[mcp] oauth` issuer and audience of a team's JSON body (its
/// secrets sealed or not: neither is one), the audience its default
/// (`{public_url}/mcp`) where not written; read without building the
/// team, so a pair it breaks a rule with is read as written. `None`
/// without an issuer.
pub fn pair_of_body(body: &serde_json::Value, public_url: &str) -> Option<(String, String)> {
    let oauth = body.pointer("/mcp/oauth")?;
    let issuer = oauth.get("issuer")?.as_str()?;
    let audience = match oauth.get("audience") {
        Some(audience) => audience.as_str()?.to_string(),
        None => default_audience(public_url),
    };
    Some((issuer.to_string(), audience))
}

/// The audience of a team that writes none: the gateway's MCP resource.
fn default_audience(public_url: &str) -> String {
    format!("{}/mcp", public_url.trim_end_matches('/'))
}

/// The problem of a team's body whose `[mcp] oauth` issuer and audience
/// are team `holder`'s: at its `audience`, written or not (the default,
/// `{public_url}/mcp`, is the one it has then), so that a body checked
/// again without it lists it once. Its detail is the one text of that
/// refusal wherever a second team is refused the pair: a write, an
/// import, a team file (`mcp.oauth.audience`), a stored team a file
/// team's pair keeps out of force.
pub fn audience_taken(holder: &str) -> FormProblem {
    FormProblem {
        pointer: "/mcp/oauth/audience".into(),
        detail: format!(
            "team {holder:?} already takes this issuer's tokens for this audience (written, or the default {{public_url}}/mcp): give each team its own audience"
        ),
    }
}

/// A team's `[mcp]` section of `file`: its `oauth`, if written.
pub(super) fn load_team_mcp(
    table: toml::Table,
    file: &str,
    public_url: &str,
) -> Result<Option<McpOauth>, ConfigError> {
    let raw: McpTeamEntry = from_table(table, file, "mcp")?;
    let Some(raw) = raw.oauth else {
        return Ok(None);
    };
    let err =
        |key: &str, problem: &str| ConfigError::new(file, format!("mcp.oauth.{key}"), problem);
    if let Some(problem) = super::oidc::issuer_problem(&raw.issuer) {
        return Err(err("issuer", problem));
    }
    let audience = raw.audience.unwrap_or_else(|| default_audience(public_url));
    if audience.trim().is_empty() || audience.chars().any(char::is_control) {
        return Err(err(
            "audience",
            "must not be empty or hold a control character",
        ));
    }
    let scope = raw.scope.unwrap_or_else(|| DEFAULT_SCOPE.to_string());
    if !super::oidc::is_token(&scope) {
        return Err(err(
            "scope",
            "must be one scope name (printable ASCII, no space, quote or backslash)",
        ));
    }
    Ok(Some(McpOauth {
        provider: OidcConfig::checking_only(raw.issuer, audience.clone()),
        audience,
        scope,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Option<McpOauth>, String> {
        let table: toml::Table = toml.parse().map_err(|e| format!("{e}"))?;
        load_team_mcp(table, "teams/acme.toml", "https://gw.example").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_gateway_s_resource_and_chatgate_bot() {
        assert!(load("").unwrap().is_none());
        let o = load("oauth = { issuer = \"https://as.example\" }")
            .unwrap()
            .unwrap();
        assert_eq!(o.provider.issuer, "https://as.example");
        assert_eq!(o.audience, "https://gw.example/mcp");
        assert_eq!(o.scope, "chatgate:bot");
        let o = load("[oauth]\nissuer = \"http://127.0.0.1:9\"\naudience = \"api://chatgate\"\nscope = \"mcp\"")
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.audience.as_str(), o.scope.as_str()),
            ("api://chatgate", "mcp")
        );
    }

    #[test]
    fn each_refusal_names_its_key() {
        for (toml, key) in [
            (
                "oauth = { issuer = \"http://as.example\" }",
                "mcp.oauth.issuer",
            ),
            (
                "oauth = { issuer = \"https://as.example?x=1\" }",
                "mcp.oauth.issuer",
            ),
            ("oauth = { issuer = \"as.example\" }", "mcp.oauth.issuer"),
            ("oauth = { audience = \"a\" }", "mcp.oauth.issuer"),
            (
                "oauth = { issuer = \"https://as.example\", audience = \" \" }",
                "mcp.oauth.audience",
            ),
            (
                "oauth = { issuer = \"https://as.example\", scope = \"a b\" }",
                "mcp.oauth.scope",
            ),
            (
                "oauth = { issuer = \"https://as.example\", scope = \"\" }",
                "mcp.oauth.scope",
            ),
            (
                "oauth = { issuer = \"https://as.example\", scopes = [] }",
                "mcp.oauth.scopes",
            ),
            ("oath = { issuer = \"https://as.example\" }", "mcp.oath"),
        ] {
            let e = load(toml).unwrap_err();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }
}
