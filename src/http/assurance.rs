//! `GET /v1/interactions/{id}/assurance` (docs/api.md#assurance-for-one-action): is the current
//! authentication recent and strong enough for one action?
use std::collections::HashMap;

use super::json::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{unknown_field, InteractionId, Now, QueryParams};
use super::openapi::{method_names, ApiKeyErrors, E404, E422};
use super::AppState;
use crate::config::Dur;
use crate::domain::assurance::Policy;
use crate::domain::input;
use crate::domain::interaction::Method;
use crate::error::{Error, Result};
use crate::gateway::{AssuranceAsk, AssuranceView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(assurance))
}

/// `transaction`: a transaction's hash (docs/api.md#approving-one-payment),
/// 43 base64url characters, else 422.
pub(super) fn parse_transaction(q: &HashMap<String, String>) -> Result<Option<String>> {
    let Some(hash) = q.get("transaction") else {
        return Ok(None);
    };
    let ok = hash.len() == 43
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(Error::invalid(
            "transaction",
            "must be a transaction_hash: 43 base64url characters",
        ));
    }
    Ok(Some(hash.clone()))
}

/// The query, parsed: a duration, a list of methods, or an intent's name.
pub(super) fn parse_ask(q: &HashMap<String, String>) -> Result<AssuranceAsk> {
    if let Some(unknown) = q.keys().find(|k| {
        !matches!(
            k.as_str(),
            "max_age" | "methods" | "intent" | "transaction" | "acr"
        )
    }) {
        return Err(unknown_field(unknown));
    }
    if let Some(intent) = q.get("intent") {
        if q.contains_key("max_age") || q.contains_key("methods") || q.contains_key("acr") {
            return Err(Error::invalid(
                "intent",
                "names a policy: give either intent, or max_age, methods and acr",
            ));
        }
        if intent.is_empty() || intent.len() > 64 {
            return Err(Error::invalid("intent", "must be 1 to 64 characters"));
        }
        return Ok(AssuranceAsk::Intent(intent.clone()));
    }
    let max_age = match q.get("max_age") {
        None => None,
        Some(v) => Some(
            Dur::parse(v)
                .ok()
                .and_then(|d| d.enabled())
                .ok_or_else(|| {
                    Error::invalid(
                        "max_age",
                        "must be a duration like 90s, 5m or 2h, more than 0s",
                    )
                })?,
        ),
    };
    // `recognized` is no method of an authentication: it lets a
    // recognized conversation meet the policy.
    let mut recognized = false;
    let methods = match q.get("methods") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(str::trim)
                .filter(|m| {
                    let named = *m == "recognized";
                    recognized |= named;
                    !named
                })
                .map(|m| {
                    Method::parse(m).ok_or_else(|| {
                        Error::invalid(
                            "methods",
                            &format!("each must be one of {}", method_names()),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    let acr = q.get("acr").map(|list| {
        let values: Vec<String> = list.split(',').map(|a| a.trim().to_string()).collect();
        input::acr_values("acr", &values)
    });
    Ok(AssuranceAsk::Policy(Policy {
        max_age,
        methods,
        recognized,
        otp_via: None,
        number_clean: false,
        transaction: None,
        acr: acr.transpose()?,
    }))
}

/// Is the current authentication recent and strong enough for one action?
///
/// A bad duration, an unknown method or intent, `intent` together with
/// `max_age` or `methods`, or a `transaction` that is no hash is 422.
#[utoipa::path(get, path = "/v1/interactions/{id}/assurance", operation_id = "assurance", tag = "interactions",
    security(("api_key" = [])),
    params(("id" = Uuid, Path),
           ("max_age" = Option<String>, Query, min_length = 1, description = "a duration: 90s, 5m, 2h (more than 0s)"),
           // Its pattern and description name every method: written
           // by `openapi::finish` from `method_names`.
           ("methods" = Option<String>, Query),
           ("intent" = Option<String>, Query, min_length = 1, max_length = 64,
            description = "a named policy of the settings; not with max_age, methods or acr"),
           ("acr" = Option<String>, Query, min_length = 1,
            description = "comma-separated, 1 to 5 values of 1 to 128 visible ASCII characters: the current authentication's `acr` (what the team's identity provider said of the sign-in, docs/api.md#the-interaction-object) is one of them"),
           ("transaction" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{43}$",
            description = "a `transaction_hash`: met only by an approval of that transaction (docs/api.md#approving-one-payment)")),
    responses((status = 200, body = AssuranceView), ApiKeyErrors, E404, E422))]
async fn assurance(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    InteractionId(id): InteractionId,
    QueryParams(q): QueryParams<HashMap<String, String>>,
) -> Result<Json<AssuranceView>> {
    // Bots and agents (and admins) may ask: every role.
    let ask = parse_ask(&q)?;
    let transaction = parse_transaction(&q)?;
    let team = caller.team();
    Ok(Json(
        crate::gateway::assurance::assurance(&st.gateway, team, id, ask, transaction, now).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's pattern and the 422's text name what the parser
    /// takes: every method and `recognized`, no fewer.
    #[test]
    fn the_methods_pattern_and_error_name_every_method() {
        let doc: serde_json::Value = serde_json::from_str(&crate::http::openapi_json()).unwrap();
        let params = doc["paths"]["/v1/interactions/{id}/assurance"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let methods = params.iter().find(|p| p["name"] == "methods").unwrap();
        let pattern = regex::Regex::new(methods["schema"]["pattern"].as_str().unwrap()).unwrap();
        let names = method_names();
        for name in names.split(", ") {
            assert!(pattern.is_match(name), "the pattern refuses {name}");
            assert!(
                methods["description"].as_str().unwrap().contains(name),
                "{name}"
            );
        }
        assert!(pattern.is_match(&names.replace(' ', "")));
        assert_eq!(names.split(", ").count(), Method::ALL.len() + 1);
        let q = HashMap::from([("methods".to_string(), "network, wallet".to_string())]);
        assert!(parse_ask(&q).is_ok());
        let q = HashMap::from([("methods".to_string(), "passkey".to_string())]);
        let refused = parse_ask(&q).err().unwrap().to_string();
        assert!(refused.contains(&names), "{refused}");
    }
}
