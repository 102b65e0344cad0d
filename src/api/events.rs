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
use super::extract::{ApiJson, ApiPath};
use super::{ApiResult, AppState, Envelope, ok};
use crate::delivery::fanout;
use crate::model::delivery::DeliveryStatus;
use crate::model::event::{Event, validate_external_id};
use crate::model::event_type::validate_name;
use crate::model::ids::{DeliveryId, EndpointId};
use crate::store::{FANOUT_CHUNK, PublishOutcome};
use crate::validation::FieldError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(get_event))
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
    pub log_id: DeliveryId,
    pub status: DeliveryStatus,
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

/// A stored event with the current status of each of its deliveries.
fn view(state: &AppState, event: Event) -> Result<EventView, ApiError> {
    let list = state.store.event_deliveries(&event.tenant_id, &event.id)?;
    let mut deliveries = Vec::with_capacity(list.len());
    for (webhook_id, log_id) in list {
        if let Some(d) = state
            .store
            .get_delivery(&event.tenant_id, &webhook_id, &log_id)?
        {
            deliveries.push(EventDelivery {
                webhook_id,
                log_id,
                status: d.status,
            });
        }
    }
    Ok(view_with(event, deliveries))
}

fn view_with(event: Event, deliveries: Vec<EventDelivery>) -> EventView {
    EventView {
        data: event.data(),
        id: event.id,
        event_type: event.event_type,
        created_at: event.created_at,
        deliveries,
    }
}

/// Publish an event to every subscribed endpoint. 202 means it is durable.
#[utoipa::path(post, path = "/v1/events", tag = "events", security(("bearer" = [])),
    request_body = PublishEvent,
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
    validate_name(&body.event_type).map_err(|e| FieldError::new("type", e))?;
    if state
        .store
        .get_event_type(&auth.tenant, &body.event_type)?
        .is_none()
    {
        return Err(FieldError::new(
            "type",
            format!("'{}' is not in the event type catalog", body.event_type),
        )
        .into());
    }
    if let Some(id) = &body.id {
        validate_external_id("id", id)?;
    }
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        Some(v) => {
            let key = v
                .to_str()
                .map_err(|_| FieldError::new("Idempotency-Key", "must be ASCII"))?;
            validate_external_id("Idempotency-Key", key)?;
            Some(key.to_string())
        }
        None => None,
    };
    let event = Event::new(auth.tenant, body.id, &body.event_type, body.data);
    // A publish to thousands of endpoints waits for its share of the
    // fan-out budget before building its deliveries; one to no subscriber
    // (or few) never waits.
    let subscribers = state.store.with_endpoints(&auth.tenant, |endpoints| {
        match endpoints.len() > FANOUT_CHUNK {
            true => fanout::count(&event.event_type, endpoints.values().map(|e| e.as_ref())),
            false => endpoints.len(),
        }
    })?;
    let reserved = state.store.reserve_fan_out(subscribers).await;
    let deliveries = state.store.with_endpoints(&auth.tenant, |endpoints| {
        let endpoints = endpoints.values().map(|e| e.as_ref());
        fanout::deliveries_for(&event, endpoints, &state.config.retry_schedule)
    })?;
    let queued = deliveries.iter().filter(|d| d.next_retry.is_some()).count();
    // A new event's deliveries are the ones just written: no need to read
    // them back for the answer.
    let fresh: Vec<EventDelivery> = deliveries
        .iter()
        .map(|d| EventDelivery {
            webhook_id: d.endpoint_id,
            log_id: d.id,
            status: d.status,
        })
        .collect();
    let outcome = state
        .store
        .publish_reserved(event, deliveries, idempotency_key.as_deref(), reserved)
        .await?;
    let (status, event, duplicate) = match outcome {
        PublishOutcome::Created(event) => {
            state.engine.queued(queued);
            metrics::counter!("hookgate_events_published_total").increment(1);
            (StatusCode::ACCEPTED, view_with(event, fresh), false)
        }
        PublishOutcome::Duplicate(event) => (StatusCode::OK, view(&state, event)?, true),
    };
    Ok((
        status,
        Json(Envelope {
            success: true,
            data: EventData { event, duplicate },
        }),
    ))
}

/// Get an event with the status of each of its deliveries.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = Envelope<EventData>), (status = 404, body = ErrorEnvelope)))]
async fn get_event(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<EventData> {
    let event = state
        .store
        .get_event(&auth.tenant, &id)?
        .ok_or_else(|| ApiError::not_found("event"))?;
    ok(EventData {
        event: view(&state, event)?,
        duplicate: false,
    })
}
