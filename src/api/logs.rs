//! Delivery logs per endpoint (endpoints scope; docs/product.md, "Delivery
//! logs").

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{EndpointsScope, TenantAuth};
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiPath, ApiQuery, page_limit, path_id};
use super::lookup::endpoint_of;
use super::views::{AttemptView, DeliveryStatusView};
use super::{ApiResult, AppState, Envelope, ok};
use crate::model::delivery::Delivery;
use crate::model::endpoint::Endpoint;
use crate::model::ids::{DeliveryId, EndpointId};
use crate::store::DeliveryFilter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_logs))
        .routes(routes!(get_log))
        .routes(routes!(retry_log))
}

type Auth = TenantAuth<EndpointsScope>;

/// A log entry as listed (Menon's field names, docs/platforms.md).
#[derive(Serialize, ToSchema)]
pub struct LogEntry {
    pub id: DeliveryId,
    pub webhook_id: EndpointId,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatusView,
    pub response_code: Option<u16>,
    pub response_time_ms: Option<u64>,
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    pub error: Option<String>,
    pub retry_count: u32,
    pub next_retry: Option<chrono::DateTime<chrono::Utc>>,
    pub test: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A log entry with its attempts.
#[derive(Serialize, ToSchema)]
pub struct LogDetail {
    #[serde(flatten)]
    pub entry: LogEntry,
    pub attempts: Vec<AttemptView>,
}

impl LogEntry {
    fn of(d: &Delivery) -> Self {
        Self {
            id: d.id,
            webhook_id: d.endpoint_id,
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status.into(),
            response_code: d.response_code,
            response_time_ms: d.response_time_ms,
            delivered_at: d.delivered_at,
            error: d.error.clone(),
            retry_count: d.retry_count,
            next_retry: d.next_retry,
            test: d.test,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

impl LogDetail {
    pub fn of(d: Delivery) -> Self {
        Self {
            entry: LogEntry::of(&d),
            attempts: d.attempts.iter().map(AttemptView::from).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LogList {
    pub logs: Vec<LogEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LogData {
    pub log: LogDetail,
    /// The event envelope this entry delivers, as compact JSON before any
    /// plugin ran (for the dashboard's payload viewer); absent once pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only entries with this status.
    pub status: Option<DeliveryStatusView>,
    /// Only entries of this event type.
    pub event_type: Option<String>,
    /// Entries per page, 1 to 250 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn find_log(state: &AppState, endpoint: &Endpoint, raw: &str) -> Result<Delivery, ApiError> {
    let id: DeliveryId = path_id("log_id", raw)?;
    state
        .store
        .get_delivery(&endpoint.tenant_id, &endpoint.id, &id)?
        .ok_or_else(|| ApiError::not_found("log"))
}

/// An endpoint's delivery log, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/logs", tag = "logs", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"), LogQuery),
    responses((status = 200, body = Envelope<LogList>), (status = 404, body = ErrorEnvelope)))]
async fn list_logs(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<LogList> {
    let (_, endpoint) = endpoint_of(&state, &auth.tenant, &id)?;
    let limit = page_limit(query.limit)?;
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| path_id::<DeliveryId>("cursor", c))
        .transpose()?;
    let filter = DeliveryFilter {
        status: query.status.map(Into::into),
        event_type: query.event_type,
    };
    let page =
        state
            .store
            .list_deliveries(&auth.tenant, &endpoint.id, &filter, cursor.as_ref(), limit)?;
    ok(LogList {
        logs: page.items.iter().map(LogEntry::of).collect(),
        next_cursor: page.next_cursor,
    })
}

/// One log entry with its attempts (first 4 KiB of each response body).
#[utoipa::path(get, path = "/v1/webhooks/{id}/logs/{log_id}", tag = "logs", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"),
           ("log_id" = inline(DeliveryId), Path, description = "Log entry id (msg_...)")),
    responses((status = 200, body = Envelope<LogData>), (status = 404, body = ErrorEnvelope)))]
async fn get_log(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath((id, log_id)): ApiPath<(String, String)>,
) -> ApiResult<LogData> {
    let (_, endpoint) = endpoint_of(&state, &auth.tenant, &id)?;
    let delivery = find_log(&state, &endpoint, &log_id)?;
    let payload = state
        .store
        .get_event(&auth.tenant, &delivery.event_id)?
        .map(|e| e.body);
    ok(LogData {
        log: LogDetail::of(delivery),
        payload,
    })
}

/// Redeliver now, outside the schedule; answers with the attempt's result.
#[utoipa::path(post, path = "/v1/webhooks/{id}/logs/{log_id}/retry", tag = "logs", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"),
           ("log_id" = inline(DeliveryId), Path, description = "Log entry id (msg_...)")),
    responses((status = 200, body = Envelope<LogData>), (status = 404, body = ErrorEnvelope)))]
async fn retry_log(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath((id, log_id)): ApiPath<(String, String)>,
) -> ApiResult<LogData> {
    let (tenant, endpoint) = endpoint_of(&state, &auth.tenant, &id)?;
    let delivery = find_log(&state, &endpoint, &log_id)?;
    let updated = state.service.retry(&tenant, &endpoint, &delivery).await?;
    ok(LogData {
        log: LogDetail::of(updated),
        payload: None,
    })
}
