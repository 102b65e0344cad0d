//! An endpoint's deliveries, each with its attempts (endpoints scope;
//! docs/product.md, "Deliveries"). The same resources are also served under
//! their older name, `.../logs` ([`super::logs`]).

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
use crate::model::ids::{DeliveryId, EndpointId};
use crate::store::{DeliveryFilter, Page};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(retry_delivery))
}

pub(super) type Auth = TenantAuth<EndpointsScope>;

/// A delivery as listed: one event to one endpoint, stable across retries
/// (field names as Menon's log entries, docs/platforms.md).
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
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

/// A delivery with its attempts.
#[derive(Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    pub attempts: Vec<AttemptView>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
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

impl From<&Delivery> for DeliveryDetail {
    fn from(d: &Delivery) -> Self {
        Self {
            delivery: d.into(),
            attempts: d.attempts.iter().map(AttemptView::from).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryData {
    pub delivery: DeliveryDetail,
    /// The event envelope this delivery sends, as compact JSON before any
    /// plugin ran (for the dashboard's payload viewer); absent once pruned,
    /// and in a retry's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries with this status.
    pub status: Option<DeliveryStatusView>,
    /// Only deliveries of this event type.
    pub event_type: Option<String>,
    /// Deliveries per page, 1 to 250 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of an endpoint's deliveries, newest first. Shared with the
/// `.../logs` routes, as are [`detail`] and [`retry`].
pub(super) async fn page(
    auth: &Auth,
    state: &AppState,
    id: &str,
    query: DeliveryQuery,
) -> Result<Page<Delivery>, ApiError> {
    let (_, endpoint) = endpoint_of(state, &auth.tenant, id).await?;
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
    Ok(state
        .store
        .list_deliveries(&auth.tenant, &endpoint.id, &filter, cursor.as_ref(), limit)
        .await?)
}

/// One delivery of the endpoint, by the id in the path parameter `field`,
/// with the event it sends.
pub(super) async fn detail(
    auth: &Auth,
    state: &AppState,
    (id, delivery_id): (&str, &str),
    field: &str,
) -> Result<DeliveryData, ApiError> {
    let (_, endpoint) = endpoint_of(state, &auth.tenant, id).await?;
    let delivery = find(state, &endpoint, delivery_id, field).await?;
    let payload = state
        .store
        .get_event(&auth.tenant, &delivery.event_id)
        .await?
        .map(|e| e.body);
    Ok(DeliveryData {
        delivery: (&delivery).into(),
        payload,
    })
}

/// Redelivers now, outside the schedule.
pub(super) async fn retry(
    auth: &Auth,
    state: &AppState,
    (id, delivery_id): (&str, &str),
    field: &str,
) -> Result<DeliveryData, ApiError> {
    let (tenant, endpoint) = endpoint_of(state, &auth.tenant, id).await?;
    let delivery = find(state, &endpoint, delivery_id, field).await?;
    let updated = state.service.retry(&tenant, &endpoint, &delivery).await?;
    Ok(DeliveryData {
        delivery: (&updated).into(),
        payload: None,
    })
}

async fn find(
    state: &AppState,
    endpoint: &crate::model::endpoint::Endpoint,
    raw: &str,
    field: &str,
) -> Result<Delivery, ApiError> {
    let id: DeliveryId = path_id(field, raw)?;
    state
        .store
        .get_delivery(&endpoint.tenant_id, &endpoint.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "deliveries", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"), DeliveryQuery),
    responses((status = 200, body = Envelope<DeliveryList>), (status = 404, body = ErrorEnvelope)))]
async fn list_deliveries(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> ApiResult<DeliveryList> {
    let page = page(&auth, &state, &id, query).await?;
    ok(DeliveryList {
        deliveries: page.items.iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor,
    })
}

/// One delivery with its attempts (first 4 KiB of each response body).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "deliveries", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"),
           ("delivery_id" = inline(DeliveryId), Path, description = "Delivery id (dlv_...)")),
    responses((status = 200, body = Envelope<DeliveryData>), (status = 404, body = ErrorEnvelope)))]
async fn get_delivery(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> ApiResult<DeliveryData> {
    ok(detail(&auth, &state, (&id, &delivery_id), "delivery_id").await?)
}

/// Redeliver now, outside the schedule; answers with the attempt's result.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "deliveries", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)"),
           ("delivery_id" = inline(DeliveryId), Path, description = "Delivery id (dlv_...)")),
    responses((status = 200, body = Envelope<DeliveryData>), (status = 404, body = ErrorEnvelope)))]
async fn retry_delivery(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> ApiResult<DeliveryData> {
    ok(retry(&auth, &state, (&id, &delivery_id), "delivery_id").await?)
}
