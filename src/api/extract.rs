//! Request extractors that turn every malformed input into an [`ApiError`]
//! naming the field at fault, instead of axum's plain-text rejections.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::error::ApiError;
use crate::model::ids::IdError;
use crate::validation::FieldError;

/// A JSON request body. Syntax errors answer 400; JSON of the wrong shape
/// (wrong type, unknown or missing field) answers 422 with the field's path;
/// bodies over the limit answer 413; a body sent with a `Content-Type` other
/// than JSON answers 415 (a body without one is read as JSON).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(CONTENT_TYPE).cloned();
        // The body is read before any other check: answering first would
        // leave it unread on a connection the client may reuse.
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest(
                "request body is empty; a JSON object is required".into(),
            ));
        }
        check_json_content_type(content_type.as_ref())?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body means `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(CONTENT_TYPE).cloned();
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        check_json_content_type(content_type.as_ref())?;
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Refuses a body labelled as anything but JSON (`application/json` or
/// `application/*+json`, any parameters); an unlabelled body passes.
fn check_json_content_type(value: Option<&HeaderValue>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    let is_json = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
    if is_json {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(value.as_bytes());
    Err(ApiError::UnsupportedMediaType(format!(
        "the request body must be JSON sent as 'Content-Type: application/json', not '{shown}'"
    )))
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
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("request body is not valid JSON: {inner}"))
        } else {
            let message = inner.to_string();
            let field = field_at(&path, &message);
            let message = match &field {
                Some(f) if path != "." => format!("{f}: {message}"),
                _ => message,
            };
            ApiError::Unprocessable { field, message }
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// The field a deserialization error is about: its path, completed with the
/// field serde names in "missing field `x`" or "unknown field `x`" (reported
/// on the object that lacks or holds it). `None` when the error is about the
/// whole input.
fn field_at(path: &str, message: &str) -> Option<String> {
    let path = (path != ".").then_some(path);
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match (path, named) {
        (Some(p), Some(name)) if p == name || p.ends_with(&format!(".{name}")) => {
            Some(p.to_string())
        }
        (Some(p), Some(name)) => Some(format!("{p}.{name}")),
        (None, Some(name)) => Some(name.to_string()),
        (Some(p), None) => Some(p.to_string()),
        (None, None) => None,
    }
}

/// Query parameters; a malformed, missing or unknown one answers 400
/// `bad_request` naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(&parts.uri).map(ApiQuery)
    }
}

/// Reads a request's query parameters as [`ApiQuery`] does, for a handler
/// that must read its body before judging them.
pub fn parse_query<T: DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(v)| v)
        .map_err(query_error)
}

fn query_error(rejection: QueryRejection) -> ApiError {
    // axum deserializes the query through serde_path_to_error, whose path
    // names the parameter; find that error among the rejection's sources.
    let mut source = std::error::Error::source(&rejection);
    while let Some(err) = source {
        type PathError = serde_path_to_error::Error<serde::de::value::Error>;
        if let Some(err) = err.downcast_ref::<PathError>() {
            let message = err.inner().to_string();
            let field = field_at(&err.path().to_string(), &message);
            let message = match &field {
                Some(f) => format!("query parameter '{f}': {message}"),
                None => format!("invalid query string: {message}"),
            };
            return ApiError::BadParameter { field, message };
        }
        source = err.source();
    }
    ApiError::BadRequest(rejection.body_text())
}

/// Path parameters; one that cannot be read (not UTF-8 once decoded, or not
/// of the expected type) answers 400 `validation_failed` naming it, like a
/// malformed id does.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(rejection) => {
                // Some errors give the parameter's position, not its name.
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|params| params.iter().map(|(k, _)| k.to_string()).collect())
                    .unwrap_or_default();
                Err(path_error(rejection, &names))
            }
        }
    }
}

fn path_error(rejection: PathRejection, names: &[String]) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(err) = rejection else {
        // No path parameters at all: a handler on a route without any.
        return ApiError::Internal(rejection.body_text());
    };
    let (key, message) = match err.into_kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => {
            (Some(key), "is not valid UTF-8 once percent-decoded".into())
        }
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => (Some(key), format!("must be a {expected_type}")),
        ErrorKind::ParseErrorAtIndex {
            index,
            expected_type,
            ..
        } => (
            names.get(index).cloned(),
            format!("must be a {expected_type}"),
        ),
        ErrorKind::ParseError { expected_type, .. } => (
            (names.len() == 1).then(|| names[0].clone()),
            format!("must be a {expected_type}"),
        ),
        ErrorKind::DeserializeError { key, message, .. } => (Some(key), message),
        // The handler's type does not fit its route.
        other => return ApiError::Internal(format!("path parameters: {other}")),
    };
    match key {
        Some(key) => FieldError::new(key, message).into(),
        None => ApiError::BadRequest(format!("a path parameter {message}")),
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

/// For `#[serde(default, deserialize_with = "present")]` on an
/// `Option<Option<T>>` field of a PATCH body: tells a field sent as `null`
/// (`Some(None)`) from one left out (`None`).
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Upload {
        name: String,
        limit: Option<usize>,
    }

    async fn query<T: DeserializeOwned>(uri: &str) -> Result<T, ApiError> {
        let (mut parts, ()) = Request::get(uri).body(()).unwrap().into_parts();
        ApiQuery::<T>::from_request_parts(&mut parts, &())
            .await
            .map(|ApiQuery(v)| v)
    }

    fn field_and_code(e: &ApiError) -> (Option<&str>, &'static str) {
        (e.field(), e.code())
    }

    #[tokio::test]
    async fn query_errors_name_the_parameter() {
        for (uri, field) in [
            ("/x?name=a&limit=many", "limit"),
            ("/x?name=a&limit=", "limit"),
            ("/x?limit=1", "name"),
            ("/x", "name"),
            ("/x?name=a&colour=red", "colour"),
        ] {
            let err = query::<Upload>(uri).await.unwrap_err();
            assert_eq!(
                field_and_code(&err),
                (Some(field), "bad_request"),
                "{uri}: {err}"
            );
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(err.to_string().contains(field), "{uri}: {err}");
        }
        let ok = query::<Upload>("/x?name=a&limit=3").await.unwrap();
        assert_eq!((ok.name.as_str(), ok.limit), ("a", Some(3)));
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            #[serde(rename = "type")]
            kind: String,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Outer {
            name: String,
            event: Option<Inner>,
        }
        for (body, field) in [
            (r#"{"name": 5}"#, Some("name")),
            (r#"{}"#, Some("name")),
            (r#"{"name": "a", "colour": 1}"#, Some("colour")),
            (r#"{"name": "a", "event": {}}"#, Some("event.type")),
            (r#"{"name": "a", "event": {"type": 1}}"#, Some("event.type")),
            (
                r#"{"name": "a", "event": {"type": "t", "x": 1}}"#,
                Some("event.x"),
            ),
            (r#"[]"#, None),
        ] {
            let err = parse_json::<Outer>(body.as_bytes()).unwrap_err();
            assert_eq!(
                field_and_code(&err),
                (field, "invalid_body"),
                "{body}: {err}"
            );
        }
        for body in [
            &b"{\"name\": "[..],
            b"{\"name\": \"a\"} x",
            b"{\"name\": \"a\"}{}",
        ] {
            let err = parse_json::<Outer>(body).unwrap_err();
            assert_eq!(field_and_code(&err), (None, "bad_request"));
        }
        assert!(parse_json::<Outer>(b" {\"name\": \"a\"}\n ").is_ok());
    }

    #[tokio::test]
    async fn path_errors_name_the_parameter() {
        let app = Router::new()
            .route(
                "/one/{id}",
                get(|ApiPath(id): ApiPath<String>| async move { id }),
            )
            .route(
                "/two/{id}/{key_id}",
                get(|ApiPath((a, b)): ApiPath<(String, String)>| async move { a + &b }),
            )
            .route(
                "/num/{n}",
                get(|ApiPath(n): ApiPath<u32>| async move { n.to_string() }),
            );
        for (uri, field) in [
            ("/one/%FF", "id"),
            ("/two/a/%C3%28", "key_id"),
            ("/two/%FF/b", "id"),
            ("/num/x", "n"),
        ] {
            let resp = app
                .clone()
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], "validation_failed", "{uri}: {body}");
            assert_eq!(body["error"]["field"], field, "{uri}: {body}");
        }
        let resp = app
            .oneshot(Request::get("/one/caf%C3%A9").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&body[..], "café".as_bytes());
    }

    #[test]
    fn json_content_types() {
        let with = |ct: &str| check_json_content_type(Some(&HeaderValue::from_str(ct).unwrap()));
        assert!(check_json_content_type(None).is_ok());
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/merge-patch+json",
        ] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "text/json+xml",
        ] {
            let err = with(bad).unwrap_err();
            assert_eq!(err.code(), "unsupported_media_type", "{bad}");
        }
    }
}
