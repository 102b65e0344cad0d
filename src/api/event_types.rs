//! The tenant's event type catalog (endpoints scope).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{EndpointsScope, TenantAuth};
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiJson, ApiPath, ApiQuery, PageParams, present};
use super::views::{EventTypeName, EventTypeView};
use super::{ApiResult, AppState, Created, Deleted, Envelope, created, ok};
use crate::model::event_type::{EventType, validate_name};
use crate::validation::FieldError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_event_type, list_event_types))
        .routes(routes!(
            get_event_type,
            update_event_type,
            delete_event_type
        ))
}

const MAX_DESCRIPTION: usize = 1000;

type Auth = TenantAuth<EndpointsScope>;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventType {
    /// Dot-separated name, such as `booking.created`.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// An example `data` payload.
    #[serde(default)]
    pub example: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventType {
    #[serde(default)]
    pub description: Option<String>,
    /// A new example; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub example: Option<Option<serde_json::Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeData {
    pub event_type: EventTypeView,
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeList {
    pub event_types: Vec<EventTypeView>,
    pub next_cursor: Option<String>,
}

fn description(raw: Option<String>) -> Result<String, FieldError> {
    let text = raw.unwrap_or_default().trim().to_string();
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(text)
}

async fn find(state: &AppState, auth: &Auth, name: &str) -> Result<EventType, ApiError> {
    state
        .store
        .get_event_type(&auth.tenant, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("event type '{name}' not found")))
}

fn refuse_builtin(et: &EventType) -> Result<(), ApiError> {
    if et.builtin {
        return Err(ApiError::Conflict(format!(
            "'{}' is built in and cannot be changed or deleted",
            et.name
        )));
    }
    Ok(())
}

/// Add an event type to the catalog.
#[utoipa::path(post, path = "/v1/event-types", tag = "event-types", security(("bearer" = [])),
    request_body(content = CreateEventType, example = json!({
        "name": "booking.cancelled",
        "description": "A booking was cancelled by the traveller or the agency.",
        "example": {"booking_id": "bk_1042", "reason": "traveller_request"}
    })),
    responses((status = 201, body = Envelope<EventTypeData>), (status = 400, body = ErrorEnvelope),
              (status = 409, body = ErrorEnvelope)))]
async fn create_event_type(
    auth: Auth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateEventType>,
) -> Created<EventTypeData> {
    validate_name(&body.name).map_err(|e| FieldError::new("name", e))?;
    if crate::model::event_type::is_operational(&body.name) {
        return Err(FieldError::new(
            "name",
            format!(
                "names under '{}' are the gateway's own operational events",
                crate::model::event_type::OPERATIONAL_PREFIX
            ),
        )
        .into());
    }
    let now = crate::time::now();
    let event_type = EventType {
        name: body.name,
        description: description(body.description)?,
        example: body.example,
        builtin: false,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_event_type(&auth.tenant, &event_type)
        .await?;
    created(EventTypeData {
        event_type: EventTypeView::from(&event_type),
    })
}

/// List the catalog in name order.
#[utoipa::path(get, path = "/v1/event-types", tag = "event-types", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Envelope<EventTypeList>)))]
async fn list_event_types(
    auth: Auth,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<EventTypeList> {
    let page = state
        .store
        .list_event_types(&auth.tenant, page.cursor.as_deref(), page.limit()?)
        .await?;
    ok(EventTypeList {
        event_types: page.items.iter().map(EventTypeView::from).collect(),
        next_cursor: page.next_cursor,
    })
}

/// Get one event type.
#[utoipa::path(get, path = "/v1/event-types/{name}", tag = "event-types", security(("bearer" = [])),
    params(("name" = inline(EventTypeName), Path, description = "Event type name")),
    responses((status = 200, body = Envelope<EventTypeData>), (status = 404, body = ErrorEnvelope)))]
async fn get_event_type(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<EventTypeData> {
    ok(EventTypeData {
        event_type: EventTypeView::from(&find(&state, &auth, &name).await?),
    })
}

/// Change an event type's description or example.
#[utoipa::path(patch, path = "/v1/event-types/{name}", tag = "event-types", security(("bearer" = [])),
    params(("name" = inline(EventTypeName), Path, description = "Event type name")),
    request_body(content = UpdateEventType, example = json!({
        "description": "A booking was confirmed and paid.",
        "example": {"booking_id": "bk_1042", "total": {"amount": 129900, "currency": "EUR"}}
    })),
    responses((status = 200, body = Envelope<EventTypeData>), (status = 404, body = ErrorEnvelope),
              (status = 409, body = ErrorEnvelope)))]
async fn update_event_type(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateEventType>,
) -> ApiResult<EventTypeData> {
    let mut event_type = find(&state, &auth, &name).await?;
    refuse_builtin(&event_type)?;
    if body.description.is_some() {
        event_type.description = description(body.description)?;
    }
    if let Some(example) = body.example {
        event_type.example = example;
    }
    event_type.updated_at = crate::time::now();
    state
        .store
        .update_event_type(&auth.tenant, &event_type)
        .await?;
    ok(EventTypeData {
        event_type: EventTypeView::from(&event_type),
    })
}

/// Remove an event type. Refused while an endpoint subscribes to it by name.
#[utoipa::path(delete, path = "/v1/event-types/{name}", tag = "event-types", security(("bearer" = [])),
    params(("name" = inline(EventTypeName), Path, description = "Event type name")),
    responses((status = 200, body = Envelope<Deleted>), (status = 404, body = ErrorEnvelope),
              (status = 409, body = ErrorEnvelope)))]
async fn delete_event_type(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Deleted, ApiError> {
    let event_type = find(&state, &auth, &name).await?;
    refuse_builtin(&event_type)?;
    // Refused by the store while an endpoint subscribes to it.
    state.store.delete_event_type(&auth.tenant, &name).await?;
    Ok(Deleted {
        id: name,
        deleted: true,
    })
}
