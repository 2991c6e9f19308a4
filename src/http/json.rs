//! The JSON body of a successful answer: `axum::Json`'s answer, serialized
//! into one buffer that fits our objects from the start. (axum's starts at
//! 128 bytes, doubles as it goes and takes every token through `BufMut`;
//! an interaction is ~600 bytes and every status read answers one.)
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// Room for an interaction, a challenge or a link without growing; a list
/// page grows from there.
const START: usize = 1024;

/// A `200`-style `application/json` answer (the handler sets the status).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(START);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            // Only what JSON cannot write fails (a map keyed by a sequence,
            // say); none of our answers holds one.
            Err(e) => {
                Error::internal_from("an answer could not be written as JSON", e).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    #[tokio::test]
    async fn answers_the_value_as_json() {
        let value = serde_json::json!({"id": "x", "n": [1, 2], "long": "é".repeat(2000)});
        let res = Json(&value).into_response();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            value
        );
    }

    #[tokio::test]
    async fn a_value_json_cannot_hold_is_a_problem_not_a_panic() {
        let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let res = Json(map).into_response();
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            super::super::problem::PROBLEM_JSON
        );
    }
}
