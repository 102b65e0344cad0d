//! The HTTP API (docs/product.md, "API conventions"): JSON over axum, in
//! the `{"success", "data"}` envelope.
//!
//! Handlers authenticate through extractors ([`auth`]), read bodies through
//! [`extract::ApiJson`], call the [`Store`], and return
//! `Result<_, ApiError>`; statuses are decided in [`error`] alone. Answers
//! show the stored records through `views` (their own types, with their
//! own schemas), never the records themselves. The OpenAPI document is
//! generated from the handlers' annotations, and `contract_tests` hold it
//! to what the router serves and answers.

pub mod auth;
mod deliveries;
pub mod error;
mod event_types;
mod events;
pub mod extract;
mod health;
mod logs;
mod lookup;
mod plugins;
mod seller;
mod tenant;
mod tenants;
mod views;
mod webhooks;

#[cfg(test)]
mod contract_tests;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::Serialize;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::plugins::Plugins;
use crate::service::Service;
use crate::store::Store;
use crate::target_guard::TargetGuard;
use error::ApiError;
use extract::BodyLimit;

/// Everything a handler may use. axum clones it for every request (and for
/// every extractor that takes part of it), so it is one shared allocation.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl AppState {
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Parts {
    pub store: Store,
    pub service: Service,
    pub plugins: Arc<Plugins>,
    /// Renders `/metrics`; `None` when another server in this process owns
    /// the recorder.
    pub metrics: Option<PrometheusHandle>,
    pub config: Arc<Config>,
    pub guard: TargetGuard,
    /// SHA-256 of the operator admin token.
    pub admin_token_hash: [u8; 32],
}

/// The success envelope: `{"success": true, "data": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

pub type ApiResult<T> = Result<Json<Envelope<T>>, ApiError>;
pub type Created<T> = Result<(StatusCode, Json<Envelope<T>>), ApiError>;

/// A 200 answer.
pub fn ok<T>(data: T) -> ApiResult<T> {
    Ok(Json(Envelope {
        success: true,
        data,
    }))
}

/// A 201 answer.
pub fn created<T>(data: T) -> Created<T> {
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            success: true,
            data,
        }),
    ))
}

/// Answer of delete routes.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookgate",
        description = "Multi-tenant webhook gateway: endpoints, signed deliveries, retries, delivery logs and WASM plugins."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "operator", description = "Tenants and their API keys (admin token)"),
        (name = "tenant", description = "The signed-in tenant's own settings (endpoints scope)"),
        (name = "seller", description = "Menon's seller routes over the same endpoints, answering `createdAt` too (endpoints scope)"),
        (name = "event-types", description = "The tenant's event type catalog (endpoints scope)"),
        (name = "webhooks", description = "Endpoints (endpoints scope)"),
        (name = "deliveries", description = "An endpoint's deliveries and their attempts (endpoints scope)"),
        (name = "logs", description = "The same deliveries under their older name, `logs` (endpoints scope)"),
        (name = "events", description = "Publishing events (publish scope)"),
        (name = "plugins", description = "WebAssembly plugins (plugins scope)"),
        (name = "health", description = "Liveness, readiness, metrics and this document")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes: one router per resource, each with its part of the
/// OpenAPI document. Every route is registered with `routes!`, so none is
/// served without being documented (the contract tests check it).
fn resources(max_plugin_bytes: usize) -> Vec<OpenApiRouter<AppState>> {
    vec![
        tenants::routes(),
        tenant::routes(),
        seller::routes(),
        event_types::routes(),
        webhooks::routes(),
        deliveries::routes(),
        logs::routes(),
        events::routes(),
        plugins::routes(max_plugin_bytes),
        health::routes(),
        OpenApiRouter::new().routes(routes!(openapi_json)),
    ]
}

/// The OpenAPI document as served, serialised once when the router is built.
#[derive(Clone)]
struct OpenApiJson(bytes::Bytes);

/// This document: every route, with its parameters, bodies and answers.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0,
    )
        .into_response()
}

/// The full API router with its middleware.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = resources(state.config.max_plugin_bytes)
        .into_iter()
        .fold(
            OpenApiRouter::with_openapi(ApiDoc::openapi()),
            OpenApiRouter::merge,
        )
        .split_for_parts();
    let document = serde_json::to_vec(&openapi).expect("the OpenAPI document serialises");
    let api = api.layer(Extension(OpenApiJson(document.into())));
    let body_limit = state.config.max_body_bytes;
    // The dashboard's files are public: its data calls carry the key.
    let page = crate::ui::PageSettings {
        allow_http: state.config.allow_http,
        endpoint_concurrency: state.config.endpoint_concurrency,
    };
    let api = api.merge(crate::ui::routes(state.config.ui_dir.clone(), page));

    api.fallback(|| async { ApiError::NotFound("no such route".into()) })
    .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
    .with_state(state)
    .layer(DefaultBodyLimit::max(body_limit))
    .layer(middleware::from_fn(move |mut req: Request, next: Next| {
        req.extensions_mut().insert(BodyLimit(body_limit));
        next.run(req)
    }))
    // Whatever still answers an error outside the envelope.
    .layer(middleware::from_fn(error::json_errors))
    .layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUlid))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id)
            }))
            .layer(PropagateRequestIdLayer::x_request_id()),
    )
}

/// Request ids are ULIDs, like every other id here.
#[derive(Clone, Copy)]
struct MakeRequestUlid;

impl MakeRequestId for MakeRequestUlid {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&ulid::Ulid::new().to_string())
            .ok()
            .map(RequestId::new)
    }
}

impl IntoResponse for Deleted {
    fn into_response(self) -> Response {
        Json(Envelope {
            success: true,
            data: self,
        })
        .into_response()
    }
}
