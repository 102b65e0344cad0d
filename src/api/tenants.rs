//! Operator routes: tenants and their API keys (admin token).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiJson, ApiPath, ApiQuery, PageParams, path_id};
use super::views::{ApiKeyView, HeaderNamesView, ScopeView, TenantView};
use super::{ApiResult, AppState, Created, Deleted, Envelope, created, ok};
use crate::model::ids::{KeyId, TenantId};
use crate::model::preset::{self, Preset};
use crate::model::tenant::{ApiKey, KEY_TOKEN_PREFIX, Scope, Tenant, generate_token, hash_token};
use crate::signing::HeaderNames;
use crate::validation::{FieldError, display_name};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(delivery_stats))
}

const MAX_NAME: usize = 200;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// A name for people, such as the customer's company.
    pub name: String,
    /// Names of the event, delivery and signature headers on deliveries
    /// (over the preset's, if one is named).
    #[serde(default)]
    pub headers: Option<HeaderNamesView>,
    /// `mogu` or `menon`: start with that platform's header names and its
    /// whole event catalog, with example payloads.
    #[serde(default)]
    pub preset: Option<String>,
}

/// Changes to a tenant; fields left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default)]
    pub name: Option<String>,
    /// E.g. `{"event": "X-Mogu-Event", "delivery": "X-Mogu-Delivery",
    /// "signature": "X-Mogu-Signature-256"}`; names left out get the default.
    #[serde(default)]
    pub headers: Option<HeaderNamesView>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantData {
    pub tenant: TenantView,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
    pub next_cursor: Option<String>,
}

/// Create a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "operator", security(("bearer" = [])),
    request_body(content = CreateTenant, example = json!({
        "name": "Acme Travel",
        "headers": {
            "event": "X-Mogu-Event",
            "delivery": "X-Mogu-Delivery",
            "signature": "X-Mogu-Signature-256"
        }
    })),
    responses((status = 201, body = Envelope<TenantData>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
async fn create_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Created<TenantData> {
    let preset = match &body.preset {
        Some(name) => Some(Preset::named(name).ok_or_else(|| {
            ApiError::unprocessable(FieldError::new(
                "preset",
                format!(
                    "unknown preset '{name}'; one of: {}",
                    preset::NAMES.join(", ")
                ),
            ))
        })?),
        None => None,
    };
    let headers = match (body.headers, &preset) {
        (Some(headers), _) => HeaderNames::from(headers),
        (None, Some(preset)) => preset.headers.clone(),
        (None, None) => HeaderNames::default(),
    };
    headers.validate()?;
    let now = crate::time::now();
    let tenant = Tenant {
        id: TenantId::generate(),
        name: display_name("name", &body.name, MAX_NAME)?,
        headers,
        created_at: now,
    };
    let catalog = preset.map(|p| p.event_types(now)).unwrap_or_default();
    state.store.create_tenant_with(&tenant, &catalog).await?;
    tracing::info!(tenant = %tenant.id, "tenant created");
    created(TenantData {
        tenant: TenantView::from(&tenant),
    })
}

/// List tenants, oldest first.
#[utoipa::path(get, path = "/v1/tenants", tag = "operator", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Envelope<TenantList>), (status = 401, body = ErrorEnvelope)))]
async fn list_tenants(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<TenantList> {
    let page = state
        .store
        .list_tenants(page.cursor.as_deref(), page.limit()?)
        .await?;
    ok(TenantList {
        tenants: page.items.iter().map(TenantView::from).collect(),
        next_cursor: page.next_cursor,
    })
}

async fn find_tenant(state: &AppState, raw_id: &str) -> Result<Tenant, ApiError> {
    let id: TenantId = path_id("id", raw_id)?;
    state
        .store
        .get_tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// Get one tenant.
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "operator", security(("bearer" = [])),
    params(("id" = inline(TenantId), Path, description = "Tenant id (ten_...)")),
    responses((status = 200, body = Envelope<TenantData>), (status = 404, body = ErrorEnvelope)))]
async fn get_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<TenantData> {
    ok(TenantData {
        tenant: TenantView::from(&find_tenant(&state, &id).await?),
    })
}

/// Rename a tenant or change its delivery header names.
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "operator", security(("bearer" = [])),
    params(("id" = inline(TenantId), Path, description = "Tenant id (ten_...)")),
    request_body(content = UpdateTenant, example = json!({
        "name": "Acme Travel GmbH",
        "headers": {"signature": "X-Acme-Signature-256"}
    })),
    responses((status = 200, body = Envelope<TenantData>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn update_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> ApiResult<TenantData> {
    let mut tenant = find_tenant(&state, &id).await?;
    if let Some(name) = &body.name {
        tenant.name = display_name("name", name, MAX_NAME)?;
    }
    if let Some(headers) = body.headers {
        let headers = HeaderNames::from(headers);
        headers.validate()?;
        tenant.headers = headers;
    }
    state.store.update_tenant(&tenant).await?;
    ok(TenantData {
        tenant: TenantView::from(&tenant),
    })
}

/// Delete a tenant with everything it owns: keys, endpoints, event types,
/// events and delivery logs.
#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "operator", security(("bearer" = [])),
    params(("id" = inline(TenantId), Path, description = "Tenant id (ten_...)")),
    responses((status = 200, body = Envelope<Deleted>), (status = 404, body = ErrorEnvelope)))]
async fn delete_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Deleted, ApiError> {
    let id: TenantId = path_id("id", &id)?;
    if !state.store.delete_tenant(&id).await? {
        return Err(ApiError::not_found("tenant"));
    }
    // Its plugins' compiled forms, unless another tenant has the content.
    state.plugins.forget_unstored().await;
    tracing::info!(tenant = %id, "tenant deleted");
    Ok(Deleted {
        id: id.to_string(),
        deleted: true,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, such as "billing service".
    #[serde(default)]
    pub name: Option<String>,
    /// At least one of `publish`, `endpoints`, `plugins`.
    pub scopes: Vec<ScopeView>,
}

/// An API key as shown; `token` only in the answer that created it.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The bearer token. Shown once: only its hash is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyData {
    pub key: KeyView,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
}

/// Create an API key for a tenant. The token is in this answer only.
#[utoipa::path(post, path = "/v1/tenants/{id}/keys", tag = "operator", security(("bearer" = [])),
    params(("id" = inline(TenantId), Path, description = "Tenant id (ten_...)")),
    request_body(content = CreateKey, example = json!({
        "name": "billing service",
        "scopes": ["publish"]
    })),
    responses((status = 201, body = Envelope<KeyData>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Created<KeyData> {
    let tenant = find_tenant(&state, &id).await?;
    if body.scopes.is_empty() {
        return Err(
            FieldError::new("scopes", "give at least one of publish, endpoints, plugins").into(),
        );
    }
    let mut scopes: Vec<Scope> = body.scopes.into_iter().map(Scope::from).collect();
    scopes.sort_by_key(|s| Scope::ALL.iter().position(|x| x == s));
    scopes.dedup();
    let name = match body.name {
        Some(name) => display_name("name", &name, MAX_NAME)?,
        None => scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("+"),
    };
    let token = generate_token(KEY_TOKEN_PREFIX);
    let key = ApiKey {
        id: KeyId::generate(),
        tenant_id: tenant.id,
        name,
        scopes,
        token_prefix: token[..KEY_TOKEN_PREFIX.len() + 6].to_string(),
        created_at: crate::time::now(),
    };
    state.store.create_key(&key, hash_token(&token)).await?;
    tracing::info!(tenant = %tenant.id, key = %key.id, "API key created");
    created(KeyData {
        key: KeyView {
            key: ApiKeyView::from(&key),
            token: Some(token),
        },
    })
}

/// List a tenant's API keys (never their tokens).
#[utoipa::path(get, path = "/v1/tenants/{id}/keys", tag = "operator", security(("bearer" = [])),
    params(("id" = inline(TenantId), Path, description = "Tenant id (ten_...)"), PageParams),
    responses((status = 200, body = Envelope<KeyList>), (status = 404, body = ErrorEnvelope)))]
async fn list_keys(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<KeyList> {
    let tenant = find_tenant(&state, &id).await?;
    let page = state
        .store
        .list_keys(&tenant.id, page.cursor.as_deref(), page.limit()?)
        .await?;
    ok(KeyList {
        keys: page.items.iter().map(ApiKeyView::from).collect(),
        next_cursor: page.next_cursor,
    })
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/v1/tenants/{id}/keys/{key_id}", tag = "operator", security(("bearer" = [])),
    params(("id" = inline(TenantId), Path, description = "Tenant id (ten_...)"),
           ("key_id" = inline(KeyId), Path, description = "Key id (key_...)")),
    responses((status = 200, body = Envelope<Deleted>), (status = 404, body = ErrorEnvelope)))]
async fn revoke_key(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((id, key_id)): ApiPath<(String, String)>,
) -> Result<Deleted, ApiError> {
    let tenant = find_tenant(&state, &id).await?;
    let key_id: KeyId = path_id("key_id", &key_id)?;
    if !state.store.delete_key(&tenant.id, &key_id).await? {
        return Err(ApiError::not_found("API key"));
    }
    tracing::info!(tenant = %tenant.id, key = %key_id, "API key revoked");
    Ok(Deleted {
        id: key_id.to_string(),
        deleted: true,
    })
}

/// The gateway's deliveries now, for the operator.
#[derive(Serialize, ToSchema)]
pub struct DeliveryStats {
    /// Attempts waiting in the queue, all tenants.
    pub queue_depth: i64,
    /// Attempts answered 2xx per second, over the last 10 s.
    pub delivered_per_second: f64,
    /// Failed attempts per second, over the last 10 s.
    pub failed_per_second: f64,
    /// Failed attempts among all of the last minute.
    pub failure_rate: f64,
    pub attempts_last_minute: u64,
}

/// Queue depth, deliveries per second and failure rate, all tenants.
#[utoipa::path(get, path = "/v1/stats", tag = "operator", security(("bearer" = [])),
    responses((status = 200, body = Envelope<DeliveryStats>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope)))]
async fn delivery_stats(_: Admin, State(state): State<AppState>) -> ApiResult<DeliveryStats> {
    let (queue_depth, rates) = state.service.delivery_stats();
    ok(DeliveryStats {
        queue_depth,
        delivered_per_second: rates.delivered_per_second,
        failed_per_second: rates.failed_per_second,
        failure_rate: rates.failure_rate,
        attempts_last_minute: rates.attempts_last_minute,
    })
}
