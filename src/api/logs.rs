//! The deliveries of [`super::deliveries`] under their older name: Menon's
//! routes (`/v1/webhooks/{id}/logs`, docs/platforms.md), answering under
//! `logs` and `log` with the same entries. Kept so integrations written
//! against them go on working; new ones use `.../deliveries`.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deliveries::{self, Auth, DeliveryData, DeliveryDetail, DeliveryQuery, DeliveryView};
use super::error::ErrorEnvelope;
use super::extract::{ApiPath, ApiQuery};
use super::{ApiResult, AppState, Envelope, ok};
use crate::model::ids::{DeliveryId, EndpointId};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_logs))
        .routes(routes!(get_log))
        .routes(routes!(retry_log))
}

/// An endpoint's deliveries under their older name.
#[derive(Serialize, ToSchema)]
pub struct LogList {
    pub logs: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// One delivery under its older name.
#[derive(Serialize, ToSchema)]
pub struct LogData {
    pub log: DeliveryDetail,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

impl From<DeliveryData> for LogData {
    fn from(d: DeliveryData) -> Self {
        Self {
            log: d.delivery,
            payload: d.payload,
        }
    }
}

/// An endpoint's deliveries, newest first (the older name of
/// `GET /v1/webhooks/{id}/deliveries`).
#[utoipa::path(get, path = "/v1/webhooks/{id}/logs", tag = "logs", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"), DeliveryQuery),
    responses((status = 200, body = Envelope<LogList>), (status = 404, body = ErrorEnvelope)))]
async fn list_logs(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> ApiResult<LogList> {
    let page = deliveries::page(&auth, &state, &id, query).await?;
    ok(LogList {
        logs: page.items.iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor,
    })
}

/// One delivery with its attempts (the older name of
/// `GET /v1/webhooks/{id}/deliveries/{delivery_id}`).
#[utoipa::path(get, path = "/v1/webhooks/{id}/logs/{log_id}", tag = "logs", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"),
           ("log_id" = inline(DeliveryId), Path, description = "Delivery id (dlv_...)")),
    responses((status = 200, body = Envelope<LogData>), (status = 404, body = ErrorEnvelope)))]
async fn get_log(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath((id, log_id)): ApiPath<(String, String)>,
) -> ApiResult<LogData> {
    ok(deliveries::detail(&auth, &state, (&id, &log_id), "log_id")
        .await?
        .into())
}

/// Redeliver now (the older name of
/// `POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry`).
#[utoipa::path(post, path = "/v1/webhooks/{id}/logs/{log_id}/retry", tag = "logs", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"),
           ("log_id" = inline(DeliveryId), Path, description = "Delivery id (dlv_...)")),
    responses((status = 200, body = Envelope<LogData>), (status = 404, body = ErrorEnvelope)))]
async fn retry_log(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath((id, log_id)): ApiPath<(String, String)>,
) -> ApiResult<LogData> {
    ok(deliveries::retry(&auth, &state, (&id, &log_id), "log_id")
        .await?
        .into())
}
