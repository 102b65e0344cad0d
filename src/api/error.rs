//! The API's error type: the one place where failures become HTTP statuses
//! and the JSON error envelope (docs/product.md, "Envelope and errors").

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;
use crate::validation::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field breaks a rule (400).
    #[error(transparent)]
    Validation(#[from] FieldError),
    /// The request cannot be read at all: malformed JSON, bad query (400).
    #[error("{0}")]
    BadRequest(String),
    /// A query or path parameter that cannot be read (400, `bad_request`).
    #[error("{message}")]
    BadParameter {
        field: Option<String>,
        message: String,
    },
    /// Well-formed JSON of the wrong shape: wrong type, unknown or missing field (422).
    #[error("{message}")]
    Unprocessable {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// Something broke inside; the details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest(_) | ApiError::BadParameter { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::BadRequest(_) | ApiError::BadParameter { .. } => "bad_request",
            ApiError::Unprocessable { .. } => "invalid_body",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub(crate) fn field(&self) -> Option<&str> {
        match self {
            ApiError::Validation(e) => Some(&e.field),
            ApiError::Unprocessable { field, .. } | ApiError::BadParameter { field, .. } => {
                field.as_deref()
            }
            _ => None,
        }
    }

    /// A field that is well formed but breaks a rule of its own (422).
    pub fn unprocessable(e: FieldError) -> Self {
        ApiError::Unprocessable {
            field: Some(e.field),
            message: e.message,
        }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }
}

/// A store record as the API names it.
fn api_name(record: &str) -> &str {
    match record {
        "endpoint" => "webhook",
        "event" => "event (past retention, or never published)",
        other => other,
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(e: crate::service::ServiceError) -> Self {
        match e {
            crate::service::ServiceError::Invalid(e) => e.into(),
            crate::service::ServiceError::Unprocessable(e) => ApiError::unprocessable(e),
            crate::service::ServiceError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(record) => ApiError::not_found(api_name(record)),
            StoreError::Conflict(msg) => ApiError::Conflict(msg),
            StoreError::LimitReached(message) => ApiError::Unprocessable {
                field: None,
                message,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The error envelope: `{"success": false, "error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, such as `validation_failed`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error while serving a request");
        }
        let mut response = envelope(
            self.status(),
            self.code(),
            self.to_string(),
            self.field().map(String::from),
        );
        if matches!(self, ApiError::Unauthorized(_)) {
            // RFC 9110 §15.5.2 / RFC 6750: a 401 names the scheme it wants.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn envelope(status: StatusCode, code: &str, message: String, field: Option<String>) -> Response {
    let body = ErrorEnvelope {
        success: false,
        error: ErrorBody {
            code: code.into(),
            message,
            field,
        },
    };
    (status, Json(body)).into_response()
}

/// Middleware that puts every error answer not already in the envelope
/// (axum's own plain-text rejections, an empty 405, a dashboard 404) into
/// it, keeping the status and headers and using the text as the message.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let reason = status.canonical_reason().unwrap_or("error");
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let message = text.unwrap_or_else(|| reason.to_string());
    let fresh = envelope(status, &code_of(status), message, None);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, fresh.into_body())
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
}

/// The `error.code` of a bare status: the one [`ApiError`] uses for it, or
/// the status's reason in snake case (`length_required`).
fn code_of(status: StatusCode) -> String {
    let known = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::INTERNAL_SERVER_ERROR => "internal_error",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    match status.canonical_reason() {
        Some(reason) => reason
            .chars()
            .filter_map(|c| match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' => Some(c.to_ascii_lowercase()),
                ' ' | '-' => Some('_'),
                _ => None,
            })
            .collect(),
        None if status.is_client_error() => "bad_request".into(),
        None => "internal_error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_statuses_get_the_api_codes() {
        assert_eq!(code_of(StatusCode::BAD_REQUEST), "bad_request");
        assert_eq!(code_of(StatusCode::PAYLOAD_TOO_LARGE), "payload_too_large");
        assert_eq!(code_of(StatusCode::LENGTH_REQUIRED), "length_required");
        assert_eq!(
            code_of(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            "request_header_fields_too_large"
        );
        assert_eq!(code_of(StatusCode::from_u16(499).unwrap()), "bad_request");
        for e in [
            ApiError::BadRequest(String::new()),
            ApiError::MethodNotAllowed,
            ApiError::PayloadTooLarge(1),
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::Unprocessable {
                field: None,
                message: String::new(),
            },
            ApiError::Unavailable(String::new()),
            ApiError::Internal(String::new()),
        ] {
            assert_eq!(code_of(e.status()), e.code());
        }
    }

    #[tokio::test]
    async fn plain_error_answers_are_put_in_the_envelope() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt;

        let app = Router::new()
            .route(
                "/plain",
                get(|| async { (StatusCode::BAD_REQUEST, "no good") }),
            )
            .route("/empty", get(|| async { StatusCode::LENGTH_REQUIRED }))
            .route("/fine", get(|| async { "hello" }))
            .route("/api", get(|| async { ApiError::Forbidden("nope".into()) }))
            .layer(axum::middleware::from_fn(json_errors));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let resp = app
                    .oneshot(Request::get(path).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = resp.status();
                let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
                let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, ct, bytes)
            }
        };
        let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();

        let (status, ct, body) = call("/plain").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(ct.unwrap(), "application/json");
        let body = json(&body);
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "no good");

        let (status, _, body) = call("/empty").await;
        assert_eq!(status, StatusCode::LENGTH_REQUIRED);
        assert_eq!(json(&body)["error"]["code"], "length_required");
        assert_eq!(json(&body)["error"]["message"], "Length Required");

        let (_, _, body) = call("/api").await;
        assert_eq!(json(&body)["error"]["message"], "nope");

        let (status, _, body) = call("/fine").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"hello");
    }
}
