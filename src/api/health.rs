//! Liveness and readiness probes.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::MetricsReader;
use super::error::ApiError;
use super::{ApiResult, AppState, ok};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = super::Envelope<Health>)))]
pub async fn healthz() -> ApiResult<Health> {
    ok(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The process can serve requests: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = super::Envelope<Health>), (status = 503, body = super::error::ErrorEnvelope)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Health> {
    if !state.store.is_ready().await {
        return Err(ApiError::Unavailable("the store is not answering".into()));
    }
    ok(Health {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Prometheus metrics: published events, attempts by outcome, queue depth,
/// attempt latency.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
              (status = 401, description = "The operator set `metrics_token` and the request does not carry it", body = super::error::ErrorEnvelope),
              (status = 503, description = "Another server in this process records the metrics", body = super::error::ErrorEnvelope)))]
pub async fn metrics(_: MetricsReader, State(state): State<AppState>) -> Result<String, ApiError> {
    state
        .metrics
        .as_ref()
        .map(|m| m.render())
        .ok_or_else(|| ApiError::Unavailable("metrics are not recorded in this process".into()))
}
