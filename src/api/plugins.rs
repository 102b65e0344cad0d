//! Plugins (plugins scope; docs/product.md, "Plugins"): upload, list, get,
//! delete, dry run.

use std::time::Duration;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{PluginsScope, TenantAuth};
use super::error::{ApiError, ErrorEnvelope};
use super::events::PublishEvent;
use super::extract::{
    ApiJson, ApiPath, ApiQuery, BodyLimit, PageParams, parse_query, path_id, read_body,
};
use super::views::{LogLineView, PluginView};
use super::{ApiResult, AppState, Deleted, Envelope, ok};
use crate::model::event::{Event, validate_external_id};
use crate::model::ids::PluginId;
use crate::model::plugin::{Language, Plugin, validate_name};
use crate::plugins::PluginError;
use crate::plugins::Prepared;
use crate::plugins::host::Outcome;
use crate::plugins::registry::{CompileState, UploadError};
use crate::store::Stored;
use crate::validation::FieldError;

/// Plugin routes; uploads may be up to `max_upload` bytes.
pub fn routes(max_upload: usize) -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(upload_plugin, list_plugins))
        .layer(DefaultBodyLimit::max(max_upload))
        .layer(axum::middleware::from_fn(
            move |mut req: Request, next: axum::middleware::Next| {
                req.extensions_mut().insert(BodyLimit(max_upload));
                next.run(req)
            },
        ));
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(get_plugin, delete_plugin))
        .routes(routes!(test_plugin))
}

type Auth = TenantAuth<PluginsScope>;

#[derive(Serialize, ToSchema)]
pub struct PluginData {
    pub plugin: PluginView,
    /// Endpoints whose chain holds this plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_by: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The plugin's name; uploading new bytes under a name makes its next version.
    #[param(pattern = "^[a-z0-9_-]{1,64}$", example = "crm-booking")]
    pub name: String,
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Invalid(PluginError::Host(detail)) => ApiError::Internal(detail),
            UploadError::Invalid(PluginError::Unavailable(detail)) => ApiError::Unavailable(detail),
            UploadError::Invalid(e) => ApiError::Unprocessable {
                field: Some("body".into()),
                message: format!("the upload is not a usable plugin: {e}"),
            },
            UploadError::Script { line, message } => ApiError::Unprocessable {
                field: Some("body".into()),
                message: if line > 0 {
                    format!("the script is not a usable plugin: line {line}: {message}")
                } else {
                    format!("the script is not a usable plugin: {message}")
                },
            },
            UploadError::Store(e) => e.into(),
        }
    }
}

/// What the upload's `Content-Type` says the bytes are: a component
/// (`application/wasm`; also when none is given, or
/// `application/octet-stream`) or a script (`text/javascript`,
/// `application/javascript`).
fn upload_language(req: &Request) -> Result<Language, ApiError> {
    let Some(value) = req.headers().get(axum::http::header::CONTENT_TYPE) else {
        return Ok(Language::Wasm);
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/wasm" | "application/octet-stream" | "" => Ok(Language::Wasm),
        "text/javascript" | "application/javascript" => Ok(Language::Javascript),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "upload a component as application/wasm or a script as text/javascript, not {other}"
        ))),
    }
}

/// Upload a plugin: a component (raw bytes, `application/wasm`) or a
/// JavaScript module exporting `transform(event, config)` (its source,
/// `text/javascript`). It is stored as the next version of `name`. A
/// component is compiled off the request path: the answer is 202 with
/// `state: "compiling"`, and the plugin then becomes `ready` or `failed`
/// (with the compiler's message). A script is checked at once (a syntax
/// error is a 422 giving the line) and is `ready`.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    params(UploadParams),
    request_body(content(
        (Vec<u8> = "application/wasm"),
        (String = "text/javascript", example = json!("export function transform(event, config) {\n  return { body: { deal: event.data.booking_id } };\n}\n"))
    )),
    responses((status = 201, description = "Stored and ready", body = Envelope<PluginData>),
              (status = 202, description = "Stored; the component is compiling", body = Envelope<PluginData>),
              (status = 200, description = "These bytes already are a version of this name", body = Envelope<PluginData>),
              (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope)))]
async fn upload_plugin(
    auth: Auth,
    State(state): State<AppState>,
    req: Request,
) -> Result<(StatusCode, Json<Envelope<PluginData>>), ApiError> {
    // The body is read before the query is judged: answering first would
    // leave the rest of the upload unread on a connection the client then
    // reuses, and its next request fails with a broken pipe.
    let uri = req.uri().clone();
    let language = upload_language(&req);
    let bytes = read_body(req, &()).await?;
    let params: UploadParams = parse_query(&uri)?;
    validate_name(&params.name)?;
    let language = language?;
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(match language {
            Language::Wasm => "the request body must be the component's bytes".into(),
            Language::Javascript => "the request body must be the script's source".into(),
        }));
    }
    let uploaded = state
        .plugins
        .upload(&auth.tenant, &params.name, language, bytes)
        .await?;
    let (status, plugin) = match uploaded.stored {
        Stored::Created(p) if uploaded.state == CompileState::Compiling => {
            (StatusCode::ACCEPTED, p)
        }
        Stored::Created(p) => (StatusCode::CREATED, p),
        Stored::Existing(p) => (StatusCode::OK, p),
    };
    tracing::info!(tenant = %auth.tenant, plugin = %plugin.id, name = %plugin.name, version = plugin.version, language = plugin.language.as_str(), state = uploaded.state.name(), "plugin uploaded");
    let view = PluginView::from(&plugin).with_status(&uploaded.state, None);
    Ok((
        status,
        Json(Envelope {
            success: true,
            data: PluginData {
                plugin: view,
                used_by: None,
            },
        }),
    ))
}

/// A plugin's view with its compile state and recent call time.
async fn view(state: &AppState, plugin: &Plugin) -> PluginView {
    let compile = state.plugins.state(plugin).await;
    PluginView::from(plugin).with_status(&compile, state.plugins.p50(&plugin.id))
}

/// List plugin versions, oldest first.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Envelope<PluginList>)))]
async fn list_plugins(
    auth: Auth,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<PluginList> {
    let page = state
        .store
        .list_plugins(&auth.tenant, page.cursor.as_deref(), page.limit()?)
        .await?;
    let mut plugins = Vec::with_capacity(page.items.len());
    for plugin in &page.items {
        plugins.push(view(&state, plugin).await);
    }
    ok(PluginList {
        plugins,
        next_cursor: page.next_cursor,
    })
}

async fn find(state: &AppState, auth: &Auth, raw: &str) -> Result<Plugin, ApiError> {
    let id: PluginId = path_id("id", raw)?;
    state
        .store
        .get_plugin(&auth.tenant, &id)
        .await?
        .map(std::sync::Arc::unwrap_or_clone)
        .ok_or_else(|| ApiError::not_found("plugin"))
}

async fn users(state: &AppState, plugin: &Plugin) -> Result<Vec<String>, ApiError> {
    Ok(state
        .store
        .with_endpoints(&plugin.tenant_id, |endpoints| {
            endpoints
                .values()
                .filter(|e| e.plugins.iter().any(|p| p.plugin_id == plugin.id))
                .map(|e| e.id.to_string())
                .collect()
        })
        .await?)
}

/// Get one plugin version and the endpoints using it.
#[utoipa::path(get, path = "/v1/plugins/{id}", tag = "plugins", security(("bearer" = [])),
    params(("id" = inline(PluginId), Path, description = "Plugin id (plg_...)")),
    responses((status = 200, body = Envelope<PluginData>), (status = 404, body = ErrorEnvelope)))]
async fn get_plugin(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<PluginData> {
    let plugin = find(&state, &auth, &id).await?;
    let used_by = Some(users(&state, &plugin).await?);
    ok(PluginData {
        plugin: view(&state, &plugin).await,
        used_by,
    })
}

/// Delete a plugin version. Refused while an endpoint's chain holds it.
#[utoipa::path(delete, path = "/v1/plugins/{id}", tag = "plugins", security(("bearer" = [])),
    params(("id" = inline(PluginId), Path, description = "Plugin id (plg_...)")),
    responses((status = 200, body = Envelope<Deleted>), (status = 404, body = ErrorEnvelope),
              (status = 409, body = ErrorEnvelope)))]
async fn delete_plugin(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Deleted, ApiError> {
    let plugin = find(&state, &auth, &id).await?;
    // Refused by the store while an endpoint's chain holds it.
    state.plugins.delete(&plugin).await?;
    Ok(Deleted {
        id: plugin.id.to_string(),
        deleted: true,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginTestRequest {
    /// The event to transform, as it would be published.
    pub event: PublishEvent,
    /// The configuration to run with; `{}` when left out.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// The endpoint id the plugin is told about.
    #[serde(default)]
    pub endpoint_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TestOutput {
    /// `deliver`, `drop` or `error`.
    pub outcome: &'static str,
    /// The input body the plugin got.
    pub input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Why it dropped the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub logs: Vec<LogLineView>,
    /// Wall time of the call, instantiation included.
    pub duration_us: u64,
}

/// Dry run: the plugin transforms a given event; nothing is stored or sent.
#[utoipa::path(post, path = "/v1/plugins/{id}/test", tag = "plugins", security(("bearer" = [])),
    params(("id" = inline(PluginId), Path, description = "Plugin id (plg_...)")),
    request_body(content = PluginTestRequest, example = json!({
        "event": {
            "type": "booking.created",
            "data": {"booking_id": "bk_1042", "traveller": {"name": "Ada Lovelace"}}
        },
        "config": {"fields": ["booking_id"]},
        "endpoint_id": "wh_01JD8Z5YV3B2C4D5E6F7G8H9JK"
    })),
    responses((status = 200, body = Envelope<TestOutput>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn test_plugin(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PluginTestRequest>,
) -> ApiResult<TestOutput> {
    let plugin = find(&state, &auth, &id).await?;
    crate::model::event_type::validate_name(&body.event.event_type)
        .map_err(|e| FieldError::new("event.type", e))?;
    if let Some(id) = &body.event.id {
        validate_external_id("event.id", id)?;
    }
    let event = Event::new(
        auth.tenant,
        body.event.id,
        &body.event.event_type,
        body.event.data,
    );
    let config = body
        .config
        .unwrap_or_else(|| serde_json::json!({}))
        .to_string();
    let endpoint_id = body.endpoint_id.unwrap_or_default();
    let input = Prepared::of(&event).to_wit(&event, &endpoint_id);
    let tenant = state
        .store
        .tenant_record(&auth.tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let report = state
        .plugins
        .dry_run(&plugin, &input, &config, &tenant.headers)
        .await;
    ok(dry_run_output(input.payload, report))
}

fn dry_run_output(input: String, report: crate::plugins::host::CallReport) -> TestOutput {
    let mut out = TestOutput {
        outcome: "error",
        input,
        body: None,
        headers: None,
        content_type: None,
        reason: None,
        error: None,
        logs: report.logs.into_iter().map(LogLineView::from).collect(),
        duration_us: duration_us(report.elapsed),
    };
    match report.result {
        Ok(Outcome::Deliver(d)) => {
            out.outcome = "deliver";
            out.body = Some(d.body);
            out.headers = Some(d.headers.into_iter().map(|h| (h.name, h.value)).collect());
            out.content_type = d.content_type;
        }
        Ok(Outcome::Drop(reason)) => {
            out.outcome = "drop";
            out.reason = Some(reason);
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}

fn duration_us(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}
