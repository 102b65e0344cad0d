//! Endpoints (docs/product.md, "Endpoints"): create, read, change, pause,
//! resume, rotate and delete. The signing secret leaves the gateway only in
//! the answers of create and rotate-secret.

use crate::plugins::registry::CompileState;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{EndpointsScope, TenantAuth};
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson, PageParams, path_id, present};
use super::lookup::{endpoint_of, find_endpoint};
use super::views::{
    DeliveryOrderView, EndpointStatusView, LastDeliveryView, PluginRefView, ResponseSummary,
};
use super::{ApiResult, AppState, Created, Deleted, Envelope, created, ok};
use crate::model::endpoint::{self, ClientTls, Endpoint, EndpointStatus, ReceiverAuth};
use crate::model::ids::{EndpointId, TenantId};
use crate::model::plugin::{MAX_CHAIN, PluginRef};
use crate::signing::generate_secret;
use crate::validation::{FieldError, display_name};
use chrono::{DateTime, Utc};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(
            get_webhook,
            patch_webhook,
            put_webhook,
            delete_webhook
        ))
        .routes(routes!(pause_webhook))
        .routes(routes!(resume_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test))
        .routes(routes!(recover))
        .routes(routes!(endpoint_stats))
}

type Auth = TenantAuth<EndpointsScope>;

/// An endpoint as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: EndpointId,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub status: EndpointStatusView,
    /// Why the gateway disabled the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub last_delivery: Option<LastDeliveryView>,
    /// The plugin chain run before signing, in order.
    pub plugins: Vec<PluginRefView>,
    /// The most attempts in flight at once to this endpoint: its own, or
    /// the gateway's default.
    pub max_in_flight: u32,
    /// Attempts in flight allowed now: the maximum while the receiver
    /// answers 2xx promptly, less after failures, timeouts or slow answers
    /// (down to 1, one probe at a time), growing back as it recovers.
    pub in_flight_limit: u32,
    /// Headers added to every delivery.
    #[schema(value_type = Object, example = json!({"X-Env": "prod"}))]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// How deliveries authenticate to the receiver; the password or token
    /// is never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthView>,
    /// Deliveries per second at most, when limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// The client certificate presented to the receiver (mutual TLS); its
    /// key is never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client: Option<TlsClientView>,
    /// `fifo`: one delivery at a time, in publish order.
    pub ordering: DeliveryOrderView,
    /// The signing secret: only in the answers of create and rotate-secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// While set, requests also carry a signature with the previous secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookView {
    fn of(state: &AppState, e: Endpoint) -> Self {
        let now = crate::time::now();
        let max_in_flight = e
            .max_in_flight
            .unwrap_or(state.service.default_max_in_flight() as u32);
        let in_flight_limit = state
            .service
            .in_flight_limit(&e.id)
            .map_or(max_in_flight, |l| l as u32);
        Self {
            max_in_flight,
            in_flight_limit,
            previous_secret_expires_at: e
                .previous_secret
                .as_ref()
                .map(|p| p.expires_at)
                .filter(|at| *at > now),
            id: e.id,
            name: e.name,
            url: e.url,
            events: e.events,
            status: e.status.into(),
            disabled_reason: e.disabled_reason,
            last_delivery: e.last_delivery.as_ref().map(LastDeliveryView::from),
            plugins: e.plugins.iter().map(PluginRefView::from).collect(),
            headers: e
                .headers
                .into_iter()
                .map(|(name, value)| (name, serde_json::Value::String(value)))
                .collect(),
            auth: e.auth.as_ref().map(AuthView::from),
            rate_limit: e.rate_limit,
            tls_client: e.tls_client.map(|t| TlsClientView { cert: t.cert }),
            ordering: e.ordering.into(),
            secret: None,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }

    fn with_secret(state: &AppState, e: Endpoint) -> Self {
        let secret = e.secret.clone();
        Self {
            secret: Some(secret),
            ..Self::of(state, e)
        }
    }
}

/// An endpoint's `auth` as the API shows it: the kind, and the username of
/// Basic; never the password or token.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AuthView {
    Basic { username: String },
    Bearer,
}

impl From<&ReceiverAuth> for AuthView {
    fn from(auth: &ReceiverAuth) -> Self {
        match auth {
            ReceiverAuth::Basic { username, .. } => AuthView::Basic {
                username: username.clone(),
            },
            ReceiverAuth::Bearer { .. } => AuthView::Bearer,
        }
    }
}

/// Credentials for the receiver, as a request sets them.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthIn {
    /// `Authorization: Basic ...` on every delivery.
    Basic { username: String, password: String },
    /// `Authorization: Bearer <token>` on every delivery.
    Bearer { token: String },
}

impl From<AuthIn> for ReceiverAuth {
    fn from(auth: AuthIn) -> Self {
        match auth {
            AuthIn::Basic { username, password } => ReceiverAuth::Basic { username, password },
            AuthIn::Bearer { token } => ReceiverAuth::Bearer { token },
        }
    }
}

/// An endpoint's client certificate as answers show it: without the key.
#[derive(Serialize, ToSchema)]
pub struct TlsClientView {
    /// The certificate chain, PEM.
    pub cert: String,
}

/// A client certificate and its private key, PEM, for mutual TLS.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsClientIn {
    /// The certificate, then any intermediates (`-----BEGIN CERTIFICATE-----`).
    pub cert: String,
    /// Its unencrypted private key (`-----BEGIN PRIVATE KEY-----`).
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookData {
    pub webhook: WebhookView,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Helps people recognise the endpoint; defaults to the URL's host.
    #[serde(default)]
    pub name: Option<String>,
    /// Where deliveries go. HTTPS only, public addresses only.
    pub url: String,
    /// Event types or patterns like `booking.*`; at least one.
    pub events: Vec<String>,
    /// Plugins to run on each delivery before signing, in order.
    #[serde(default)]
    pub plugins: Vec<PluginRefView>,
    /// The most attempts in flight at once to this endpoint, 1 to
    /// [`MAX_IN_FLIGHT`]; the gateway's default when left out.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// Headers added to every delivery, such as `{"X-Env": "prod"}`; none
    /// of the gateway's own.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    /// Credentials sent on every delivery.
    #[serde(default)]
    pub auth: Option<AuthIn>,
    /// Deliveries per second at most (`0.5` is one every two seconds); the
    /// excess waits in the queue. No limit when left out.
    #[serde(default)]
    pub rate_limit: Option<f64>,
    /// A client certificate for receivers that require mutual TLS.
    #[serde(default)]
    pub tls_client: Option<TlsClientIn>,
    /// `fifo` delivers one at a time, in publish order; `unordered` (the
    /// default) side by side.
    #[serde(default)]
    pub ordering: Option<DeliveryOrderView>,
}

/// Changes to an endpoint; fields left out stay as they are. The secret is kept.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// `active` (resume) or `paused`.
    #[serde(default)]
    pub status: Option<EndpointStatusView>,
    /// Replaces the plugin chain; `[]` removes it.
    #[serde(default)]
    pub plugins: Option<Vec<PluginRefView>>,
    /// The most attempts in flight at once, 1 to [`MAX_IN_FLIGHT`];
    /// `null` goes back to the gateway's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub max_in_flight: Option<Option<u32>>,
    /// Replaces the static headers; `null` or `{}` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Option<serde_json::Map<String, serde_json::Value>>>,
    /// Replaces the credentials; `null` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AuthIn>)]
    pub auth: Option<Option<AuthIn>>,
    /// Deliveries per second at most; `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub rate_limit: Option<Option<f64>>,
    /// Replaces the client certificate; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<TlsClientIn>)]
    pub tls_client: Option<Option<TlsClientIn>>,
    /// `fifo` or `unordered`. Deliveries already queued keep the order
    /// they were queued with.
    #[serde(default)]
    pub ordering: Option<DeliveryOrderView>,
}

fn validated_tls(state: &AppState, tls: TlsClientIn) -> Result<ClientTls, ApiError> {
    let tls = ClientTls {
        cert: tls.cert,
        key: tls.key,
    };
    state.service.check_client_tls(&tls)?;
    Ok(tls)
}

/// Checks static headers against the tenant's own header names.
async fn validated_headers(
    state: &AppState,
    tenant: &TenantId,
    headers: serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match value {
            serde_json::Value::String(value) => pairs.push((name, value)),
            _ => {
                return Err(ApiError::unprocessable(FieldError::new(
                    format!("headers.{name}"),
                    "must be a string",
                )));
            }
        }
    }
    let names = state
        .store
        .tenant_record(tenant)
        .await?
        .map(|t| t.headers.clone())
        .unwrap_or_default();
    endpoint::validate_headers(pairs, &names).map_err(ApiError::unprocessable)
}

fn validated_auth(auth: AuthIn) -> Result<ReceiverAuth, ApiError> {
    let auth = ReceiverAuth::from(auth);
    auth.validate().map_err(ApiError::unprocessable)?;
    Ok(auth)
}

fn validated_rate(rate: f64) -> Result<f64, ApiError> {
    endpoint::validate_rate_limit(rate).map_err(ApiError::unprocessable)
}

/// The highest `max_in_flight` an endpoint may ask for.
pub const MAX_IN_FLIGHT: u32 = 1024;

fn validated_max_in_flight(max: Option<u32>) -> Result<Option<u32>, FieldError> {
    match max {
        Some(n) if !(1..=MAX_IN_FLIGHT).contains(&n) => Err(FieldError::new(
            "max_in_flight",
            format!("must be from 1 to {MAX_IN_FLIGHT}"),
        )),
        _ => Ok(max),
    }
}

fn validated_url(state: &AppState, raw: &str) -> Result<String, FieldError> {
    state
        .guard
        .check_url(raw.trim())
        .map(String::from)
        .map_err(|e| FieldError::new("url", e))
}

async fn validated_events(
    state: &AppState,
    tenant: &TenantId,
    events: &[String],
) -> Result<Vec<String>, ApiError> {
    let catalog = state.store.event_type_names(tenant).await?;
    Ok(endpoint::validate_events(events, &catalog)?)
}

/// Checks a plugin chain: at most [`MAX_CHAIN`] plugins, each one of the
/// tenant's and none that failed to compile.
async fn validated_chain(
    state: &AppState,
    tenant: &TenantId,
    chain: Vec<PluginRefView>,
) -> Result<Vec<PluginRef>, ApiError> {
    if chain.len() > MAX_CHAIN {
        return Err(FieldError::new(
            "plugins",
            format!("at most {MAX_CHAIN} plugins per endpoint"),
        )
        .into());
    }
    for (i, step) in chain.iter().enumerate() {
        let field = || format!("plugins[{i}].plugin_id");
        let Some(plugin) = state.store.get_plugin(tenant, &step.plugin_id).await? else {
            return Err(
                FieldError::new(field(), format!("plugin {} not found", step.plugin_id)).into(),
            );
        };
        // One still compiling may be attached: deliveries through it are
        // retried until it is ready. One that failed never will be.
        if let CompileState::Failed(message) = state.plugins.state(&plugin).await {
            return Err(ApiError::Unprocessable {
                field: Some(field()),
                message: format!(
                    "{}: plugin {} did not compile: {message}",
                    field(),
                    step.plugin_id
                ),
            });
        }
    }
    Ok(chain.into_iter().map(PluginRef::from).collect())
}

/// Create an endpoint. The answer holds the signing secret, shown this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body(content = CreateWebhook, example = json!({
        "name": "Bookings CRM",
        "url": "https://crm.example.com/hooks/bookings",
        "events": ["booking.*"]
    })),
    responses((status = 201, body = Envelope<WebhookData>), (status = 400, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope)))]
pub(super) async fn create_webhook(
    auth: Auth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Created<WebhookData> {
    let url = validated_url(&state, &body.url)?;
    let name = match &body.name {
        Some(name) => display_name("name", name, endpoint::MAX_NAME_LEN)?,
        None => url::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(String::from))
            .unwrap_or_else(|| url.clone()),
    };
    let events = validated_events(&state, &auth.tenant, &body.events).await?;
    let plugins = validated_chain(&state, &auth.tenant, body.plugins).await?;
    let max_in_flight = validated_max_in_flight(body.max_in_flight)?;
    let headers = match body.headers {
        Some(h) => validated_headers(&state, &auth.tenant, h).await?,
        None => Vec::new(),
    };
    let receiver_auth = body.auth.map(validated_auth).transpose()?;
    let rate_limit = body.rate_limit.map(validated_rate).transpose()?;
    let tls_client = body
        .tls_client
        .map(|t| validated_tls(&state, t))
        .transpose()?;
    let now = crate::time::now();
    let endpoint = Endpoint {
        id: EndpointId::generate(),
        tenant_id: auth.tenant,
        name,
        url,
        events,
        status: EndpointStatus::Active,
        disabled_reason: None,
        secret: generate_secret(),
        previous_secret: None,
        last_delivery: None,
        plugins,
        max_in_flight,
        headers,
        auth: receiver_auth,
        rate_limit,
        tls_client,
        ordering: body.ordering.map(Into::into).unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    state.store.create_endpoint(&endpoint).await?;
    tracing::info!(tenant = %auth.tenant, endpoint = %endpoint.id, "endpoint created");
    created(WebhookData {
        webhook: WebhookView::with_secret(&state, endpoint),
    })
}

/// List endpoints, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Envelope<WebhookList>)))]
pub(super) async fn list_webhooks(
    auth: Auth,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<WebhookList> {
    let page = state
        .store
        .list_endpoints(&auth.tenant, page.cursor.as_deref(), page.limit()?)
        .await?;
    ok(WebhookList {
        webhooks: page
            .items
            .into_iter()
            .map(|e| WebhookView::of(&state, e))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// Get one endpoint (without its secret).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    responses((status = 200, body = Envelope<WebhookData>), (status = 404, body = ErrorEnvelope)))]
async fn get_webhook(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<WebhookData> {
    ok(WebhookData {
        webhook: WebhookView::of(&state, find_endpoint(&state, &auth.tenant, &id).await?),
    })
}

pub(super) async fn update(
    auth: Auth,
    state: AppState,
    raw_id: &str,
    body: UpdateWebhook,
) -> ApiResult<WebhookData> {
    let id: EndpointId = path_id("id", raw_id)?;
    let name = body
        .name
        .as_deref()
        .map(|n| display_name("name", n, endpoint::MAX_NAME_LEN))
        .transpose()?;
    let url = body
        .url
        .as_deref()
        .map(|u| validated_url(&state, u))
        .transpose()?;
    let events = match body.events.as_deref() {
        Some(e) => Some(validated_events(&state, &auth.tenant, e).await?),
        None => None,
    };
    let plugins = match body.plugins {
        Some(chain) => Some(validated_chain(&state, &auth.tenant, chain).await?),
        None => None,
    };
    let max_in_flight = body
        .max_in_flight
        .map(validated_max_in_flight)
        .transpose()?;
    let headers = match body.headers {
        Some(Some(h)) => Some(validated_headers(&state, &auth.tenant, h).await?),
        Some(None) => Some(Vec::new()),
        None => None,
    };
    let receiver_auth = body
        .auth
        .map(|a| a.map(validated_auth).transpose())
        .transpose()?;
    let rate_limit = body
        .rate_limit
        .map(|r| r.map(validated_rate).transpose())
        .transpose()?;
    let tls_client = body
        .tls_client
        .map(|t| t.map(|t| validated_tls(&state, t)).transpose())
        .transpose()?;
    let status = body.status.map(EndpointStatus::from);
    if status == Some(EndpointStatus::Disabled) {
        return Err(FieldError::new(
            "status",
            "only the gateway disables endpoints; use 'paused' or 'active'",
        )
        .into());
    }
    let now = crate::time::now();
    let mut re_enabled = false;
    let endpoint = state
        .store
        .update_endpoint(&auth.tenant, &id, |e| {
            re_enabled =
                e.status == EndpointStatus::Disabled && status == Some(EndpointStatus::Active);
            if let Some(name) = &name {
                e.name = name.clone();
            }
            if let Some(url) = &url {
                e.url = url.clone();
            }
            if let Some(events) = &events {
                e.events = events.clone();
            }
            if let Some(status) = status {
                set_status(e, status);
            }
            if let Some(plugins) = &plugins {
                e.plugins = plugins.clone();
            }
            if let Some(max) = max_in_flight {
                e.max_in_flight = max;
            }
            if let Some(headers) = &headers {
                e.headers = headers.clone();
            }
            if let Some(receiver_auth) = &receiver_auth {
                e.auth = receiver_auth.clone();
            }
            if let Some(rate) = rate_limit {
                e.rate_limit = rate;
            }
            if let Some(tls) = &tls_client {
                e.tls_client = tls.clone();
            }
            if let Some(ordering) = body.ordering {
                e.ordering = ordering.into();
            }
            e.updated_at = now;
            Ok::<_, ApiError>(())
        })
        .await?;
    if re_enabled {
        state
            .service
            .announce_recovered(&endpoint, "resumed by the integrator")
            .await;
    }
    ok(WebhookData {
        webhook: WebhookView::of(&state, endpoint),
    })
}

/// Moves an endpoint to `active` or `paused`; leaving `disabled` clears its reason.
fn set_status(e: &mut Endpoint, status: EndpointStatus) {
    if e.status != status {
        e.status = status;
        e.disabled_reason = None;
    }
}

/// Change an endpoint's name, URL, events or status; the secret is kept.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    request_body(content = UpdateWebhook, example = json!({
        "name": "Bookings CRM (EU)",
        "events": ["booking.created"],
        "status": "active"
    })),
    responses((status = 200, body = Envelope<WebhookData>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn patch_webhook(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> ApiResult<WebhookData> {
    update(auth, state, &id, body).await
}

/// Same as PATCH, for clients written against Menon's `PUT`
/// (docs/platforms.md).
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    request_body(content = UpdateWebhook, example = json!({
        "name": "Bookings CRM (EU)",
        "events": ["booking.created"],
        "status": "active"
    })),
    responses((status = 200, body = Envelope<WebhookData>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn put_webhook(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> ApiResult<WebhookData> {
    update(auth, state, &id, body).await
}

/// Delete an endpoint; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    responses((status = 200, body = Envelope<Deleted>), (status = 404, body = ErrorEnvelope)))]
pub(super) async fn delete_webhook(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Deleted, ApiError> {
    let id: EndpointId = path_id("id", &id)?;
    if !state.store.delete_endpoint(&auth.tenant, &id).await? {
        return Err(ApiError::not_found("webhook"));
    }
    tracing::info!(tenant = %auth.tenant, endpoint = %id, "endpoint deleted");
    Ok(Deleted {
        id: id.to_string(),
        deleted: true,
    })
}

/// Pause: no deliveries until resumed, and events published meanwhile are never sent.
#[utoipa::path(post, path = "/v1/webhooks/{id}/pause", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    responses((status = 200, body = Envelope<WebhookData>), (status = 404, body = ErrorEnvelope)))]
async fn pause_webhook(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<WebhookData> {
    let body = UpdateWebhook {
        status: Some(EndpointStatusView::Paused),
        ..Default::default()
    };
    update(auth, state, &id, body).await
}

/// Resume a paused or disabled endpoint: deliveries start again at once.
#[utoipa::path(post, path = "/v1/webhooks/{id}/resume", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    responses((status = 200, body = Envelope<WebhookData>), (status = 404, body = ErrorEnvelope)))]
async fn resume_webhook(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<WebhookData> {
    let body = UpdateWebhook {
        status: Some(EndpointStatusView::Active),
        ..Default::default()
    };
    update(auth, state, &id, body).await
}

/// Rotate the signing secret. The answer holds the new secret, shown this
/// once; the old one keeps signing until `previous_secret_expires_at`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    responses((status = 200, body = Envelope<WebhookData>), (status = 404, body = ErrorEnvelope)))]
async fn rotate_secret(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<WebhookData> {
    let id: EndpointId = path_id("id", &id)?;
    let overlap = chrono::Duration::from_std(state.config.rotation_overlap)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let new_secret = generate_secret();
    let now = crate::time::now();
    let endpoint = state
        .store
        .update_endpoint(&auth.tenant, &id, |e| {
            e.rotate_secret(new_secret.clone(), now + overlap);
            e.updated_at = now;
            Ok::<_, ApiError>(())
        })
        .await?;
    tracing::info!(tenant = %auth.tenant, endpoint = %id, "endpoint secret rotated");
    ok(WebhookData {
        webhook: WebhookView::with_secret(&state, endpoint),
    })
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct WebhookTestRequest {
    /// Send an example of this catalog type instead of `webhook.test`.
    #[serde(default)]
    pub event_type: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TestData {
    /// The receiver's answer to the test send.
    pub result: ResponseSummary,
    /// The delivery the test made, with its attempt.
    pub delivery: super::deliveries::DeliveryDetail,
    /// The same delivery under its older name.
    pub log: super::deliveries::DeliveryDetail,
}

/// Send a test event now, even while paused, and answer with the receiver's result.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    request_body(content = Option<WebhookTestRequest>, description = "Optional: the event type to send an example of",
        example = json!({"event_type": "booking.created"})),
    responses((status = 200, body = Envelope<TestData>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
pub(super) async fn send_test(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<WebhookTestRequest>,
) -> ApiResult<TestData> {
    let (tenant, endpoint) = endpoint_of(&state, &auth.tenant, &id).await?;
    let delivery = state
        .service
        .send_test(&tenant, &endpoint, body.event_type)
        .await?;
    let attempt = delivery.attempts.last().cloned();
    let result = match attempt {
        Some(a) => ResponseSummary::from(&a),
        // A plugin dropped or failed it: nothing was sent.
        None => ResponseSummary {
            success: false,
            response_code: None,
            response_time_ms: 0,
            response_body: None,
            error: Some(format!(
                "{}: {}",
                delivery.status.as_str(),
                delivery.error.as_deref().unwrap_or_default()
            )),
        },
    };
    ok(TestData {
        result,
        delivery: (&delivery).into(),
        log: (&delivery).into(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// Deliveries that ended `failed` from this time on (RFC 3339).
    pub since: DateTime<Utc>,
    /// ... up to this time; now when left out.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct Recovered {
    /// How many deliveries were queued again.
    pub recovered: usize,
}

/// Queue again every delivery of the endpoint that ended `failed` in a time
/// window, and make the endpoint active again (disabled or paused).
#[utoipa::path(post, path = "/v1/webhooks/{id}/recover", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    request_body(content = RecoverRequest, example = json!({"since": "2026-12-01T00:00:00Z"})),
    responses((status = 202, description = "Queued", body = Envelope<Recovered>),
              (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn recover(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RecoverRequest>,
) -> Created<Recovered> {
    let endpoint = find_endpoint(&state, &auth.tenant, &id).await?;
    let recovered = state
        .service
        .recover(&endpoint, body.since, body.until)
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(Envelope {
            success: true,
            data: Recovered { recovered },
        }),
    ))
}

/// One hour of an endpoint's attempts.
#[derive(Serialize, ToSchema)]
pub struct HourView {
    pub start: DateTime<Utc>,
    /// Attempts answered 2xx.
    pub delivered: u32,
    pub failed: u32,
    /// Median time to a 2xx answer, when there was one.
    pub latency_p50_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointStats {
    /// The last 24 hours, oldest first (the current hour last).
    pub hours: Vec<HourView>,
    /// Every delivery of the last 24 hours was counted (false past the
    /// newest 20,000).
    pub complete: bool,
}

/// The endpoint's last 24 hours: attempts delivered and failed per hour,
/// and the median latency.
#[utoipa::path(get, path = "/v1/webhooks/{id}/stats", tag = "webhooks", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    responses((status = 200, body = Envelope<EndpointStats>), (status = 404, body = ErrorEnvelope)))]
async fn endpoint_stats(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<EndpointStats> {
    let endpoint = find_endpoint(&state, &auth.tenant, &id).await?;
    let (hours, complete) = state.service.endpoint_stats(&endpoint).await?;
    ok(EndpointStats {
        hours: hours
            .into_iter()
            .map(|h| HourView {
                start: h.start,
                delivered: h.delivered,
                failed: h.failed,
                latency_p50_ms: h.latency_p50_ms,
            })
            .collect(),
        complete,
    })
}
