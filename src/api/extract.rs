//! Request extractors that turn every malformed input into an [`ApiError`]
//! naming the field at fault, instead of axum's plain-text rejections.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::error::ApiError;
use crate::ids::IdError;
use crate::validation::FieldError;

/// A JSON request body. Syntax errors answer 400; JSON of the wrong shape
/// (wrong type, unknown or missing field) answers 422 with the field's path;
/// bodies over the limit answer 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest(
                "request body is empty; a JSON object is required".into(),
            ));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body means `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// The raw body, with a 413 that states the limit in force.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    // The limit in force is the router's DefaultBodyLimit; recover it for the message.
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map(|l| l.0)
        .unwrap_or_default();
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })
}

/// The body limit in force, put in request extensions by the router so
/// errors can state it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("request body is not valid JSON: {inner}"))
        } else {
            let field = (path != ".").then_some(path);
            let message = match &field {
                Some(f) => format!("{f}: {inner}"),
                None => inner.to_string(),
            };
            ApiError::Unprocessable { field, message }
        }
    })?;
    Ok(value)
}

/// Query parameters; malformed ones answer 400 naming the problem.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Parses a resource id taken from the path; a malformed one answers 400.
pub fn path_id<T: FromStr<Err = IdError>>(field: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse()
        .map_err(|e: IdError| FieldError::new(field, e).into())
}

/// Cursor pagination of list routes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 250 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 250;

impl PageParams {
    pub fn limit(&self) -> Result<usize, ApiError> {
        page_limit(self.limit)
    }
}

/// A list route's `limit` parameter: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] if absent.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => {
            Err(FieldError::new("limit", format!("must be between 1 and {MAX_PAGE}")).into())
        }
    }
}
