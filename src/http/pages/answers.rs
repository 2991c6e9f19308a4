//! The answers of the links' pages as the OpenAPI document says them: a
//! page (`text/html`), or problem+json and a page where a browser asks
//! for one; the `{code}` of a link's path; and the answers several
//! operations give word for word, written once.
use std::collections::BTreeMap;

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};
use utoipa::IntoResponses;

use super::MAX_LINK_CODE;
use crate::http::problem::PROBLEM_JSON;

/// A page's answer: `description`, an HTML page.
pub fn page(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "text/html",
            ContentBuilder::new().schema(Some(text())).build(),
        )
        .build()
        .into()
}

/// problem+json, or a page where `text/html` is accepted: `description`.
pub fn problem_or_page(description: &str) -> RefOr<Response> {
    let problem = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem")));
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, problem.build())
        .content(
            "text/html",
            ContentBuilder::new().schema(Some(text())).build(),
        )
        .build()
        .into()
}

/// The `{code}` of a link's path, at most [`MAX_LINK_CODE`] characters:
/// `description` says whose link.
pub fn code_param(description: &str) -> Parameter {
    ParameterBuilder::new()
        .name("code")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(text().max_length(Some(MAX_LINK_CODE))))
        .build()
}

/// A text's schema.
fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// 404 of a link's page: a code never issued (`page_link_unknown`).
pub struct LinkUnknown;

impl IntoResponses for LinkUnknown {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let unknown = page("a code that was never issued (`page_link_unknown`)");
        BTreeMap::from([("404".to_string(), unknown)])
    }
}

/// 503 of a link's page: the store cannot be reached (`page_try_again`).
pub struct LinkUnchecked;

impl IntoResponses for LinkUnchecked {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let unchecked = page("the link cannot be checked now (`page_try_again`)");
        BTreeMap::from([("503".to_string(), unchecked)])
    }
}
