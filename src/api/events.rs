//! Publishing events (publish scope; docs/product.md, "Events").

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{PublishScope, TenantAuth};
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiJson, ApiPath, OptionalJson};
use super::views::{DeliveryStatusView, EventRef};
use super::{ApiResult, AppState, Envelope, ok};
use crate::model::ids::{DeliveryId, EndpointId};
use crate::service::{DeliveryRef, NewEvent, Published};
use crate::validation::FieldError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(get_event))
        .routes(routes!(redeliver))
}

type Auth = TenantAuth<PublishScope>;

/// The header a producer may send instead of an `id` to make retries safe.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// An event type from the tenant's catalog.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload, delivered as the envelope's `data`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The producer's own event id; publishing the same id again creates
    /// nothing new.
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventDelivery {
    pub webhook_id: EndpointId,
    pub delivery_id: DeliveryId,
    /// The same id under its older name.
    pub log_id: DeliveryId,
    pub status: DeliveryStatusView,
}

impl EventDelivery {
    fn of(d: DeliveryRef) -> Self {
        Self {
            webhook_id: d.endpoint_id,
            delivery_id: d.delivery_id,
            log_id: d.delivery_id,
            status: d.status.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Object)]
    pub data: Box<serde_json::value::RawValue>,
    /// One per subscribed endpoint, with its current status.
    pub deliveries: Vec<EventDelivery>,
}

#[derive(Serialize, ToSchema)]
pub struct EventData {
    pub event: EventView,
    /// True when this id or idempotency key was published before: nothing
    /// new was created, and `event` is the first one.
    pub duplicate: bool,
}

/// The answer for an event and its deliveries.
fn view(published: Published) -> EventData {
    let event = published.event;
    EventData {
        event: EventView {
            data: event.data(),
            id: event.id,
            event_type: event.event_type,
            created_at: event.created_at,
            deliveries: published
                .deliveries
                .into_iter()
                .map(EventDelivery::of)
                .collect(),
        },
        duplicate: published.duplicate,
    }
}

/// Publish an event to every subscribed endpoint. 202 means it is durable.
#[utoipa::path(post, path = "/v1/events", tag = "events", security(("bearer" = [])),
    request_body(content = PublishEvent, example = json!({
        "type": "booking.created",
        "id": "bk_1042",
        "data": {
            "booking_id": "bk_1042",
            "traveller": {"name": "Ada Lovelace"},
            "total": {"amount": 129900, "currency": "EUR"}
        }
    })),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeated publish create nothing new")),
    responses((status = 202, description = "Accepted and durable", body = Envelope<EventData>),
              (status = 200, description = "Seen before: the first event", body = Envelope<EventData>),
              (status = 400, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)))]
async fn publish(
    auth: Auth,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PublishEvent>,
) -> Result<(StatusCode, Json<Envelope<EventData>>), ApiError> {
    let idempotency_key = headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str()
                .map_err(|_| FieldError::new("Idempotency-Key", "must be ASCII"))
        })
        .transpose()?;
    let new = NewEvent {
        event_type: body.event_type,
        data: body.data,
        id: body.id,
    };
    let published = state
        .service
        .publish(&auth.tenant, new, idempotency_key)
        .await?;
    let status = match published.duplicate {
        true => StatusCode::OK,
        false => StatusCode::ACCEPTED,
    };
    Ok((
        status,
        Json(Envelope {
            success: true,
            data: view(published),
        }),
    ))
}

/// Get an event with the status of each of its deliveries.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", security(("bearer" = [])),
    params(("id" = inline(EventRef), Path, description = "Event id: the gateway's `evt_...` or the producer's own")),
    responses((status = 200, body = Envelope<EventData>), (status = 404, body = ErrorEnvelope)))]
async fn get_event(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<EventData> {
    let published = state
        .service
        .event(&auth.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    ok(view(published))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// Only this endpoint (`wh_...`, subscribed and active); every active
    /// subscribed endpoint when left out.
    #[serde(default)]
    pub webhook_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Redelivered {
    /// The new deliveries, one per endpoint, queued now.
    pub deliveries: Vec<EventDelivery>,
}

/// Send a stored event again, as a new delivery, to one endpoint or every
/// active endpoint subscribed to its type.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", tag = "events", security(("bearer" = [])),
    params(("id" = inline(EventRef), Path, description = "Event id: the gateway's `evt_...` or the producer's own")),
    request_body(content = Option<RedeliverRequest>, description = "Optional: the one endpoint to send it to",
        example = json!({})),
    responses((status = 202, description = "Queued", body = Envelope<Redelivered>),
              (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope)))]
async fn redeliver(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<RedeliverRequest>,
) -> Result<(StatusCode, Json<Envelope<Redelivered>>), ApiError> {
    let only = match &body.webhook_id {
        Some(raw) => {
            let id: EndpointId = raw.parse().map_err(|e| ApiError::Unprocessable {
                field: Some("webhook_id".into()),
                message: format!("{e}"),
            })?;
            let endpoint = state
                .store
                .get_endpoint(&auth.tenant, &id)
                .await?
                .ok_or_else(|| ApiError::not_found("webhook"))?;
            Some(endpoint)
        }
        None => None,
    };
    let deliveries = state
        .service
        .redeliver(&auth.tenant, &id, only.as_deref())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Envelope {
            success: true,
            data: Redelivered {
                deliveries: deliveries.into_iter().map(EventDelivery::of).collect(),
            },
        }),
    ))
}
