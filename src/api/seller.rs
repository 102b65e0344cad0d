//! Menon's seller routes (docs/platforms.md): `/api/seller/webhooks` lists,
//! creates, changes, deletes and tests the signed-in tenant's endpoints
//! exactly as `/v1/webhooks` does, for clients written against Menon's
//! API. Their answers carry `createdAt` beside `created_at`, as Menon's do.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{EndpointsScope, TenantAuth};
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson, PageParams};
use super::webhooks::{
    self, CreateWebhook, TestData, UpdateWebhook, WebhookData, WebhookTestRequest, WebhookView,
};
use super::{ApiResult, AppState, Created, Deleted, Envelope};
use crate::model::ids::EndpointId;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(seller_list, seller_create))
        .routes(routes!(seller_update, seller_delete))
        .routes(routes!(seller_test))
}

type Auth = TenantAuth<EndpointsScope>;

/// An endpoint as Menon's routes show it: the `/v1` view and `createdAt`.
#[derive(Serialize, ToSchema)]
pub struct SellerWebhookView {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The creation time under Menon's name.
    #[serde(rename = "createdAt")]
    pub created_at_camel: DateTime<Utc>,
}

impl From<WebhookView> for SellerWebhookView {
    fn from(webhook: WebhookView) -> Self {
        Self {
            created_at_camel: webhook.created_at,
            webhook,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SellerWebhookData {
    pub webhook: SellerWebhookView,
}

#[derive(Serialize, ToSchema)]
pub struct SellerWebhookList {
    pub webhooks: Vec<SellerWebhookView>,
    pub next_cursor: Option<String>,
}

fn seller(data: WebhookData) -> SellerWebhookData {
    SellerWebhookData {
        webhook: data.webhook.into(),
    }
}

/// List endpoints (as `GET /v1/webhooks`).
#[utoipa::path(get, path = "/api/seller/webhooks", tag = "seller", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Envelope<SellerWebhookList>), (status = 401, body = ErrorEnvelope)))]
async fn seller_list(
    auth: Auth,
    state: State<AppState>,
    page: ApiQuery<PageParams>,
) -> ApiResult<SellerWebhookList> {
    let list = webhooks::list_webhooks(auth, state, page).await?.0.data;
    super::ok(SellerWebhookList {
        webhooks: list.webhooks.into_iter().map(Into::into).collect(),
        next_cursor: list.next_cursor,
    })
}

/// Create an endpoint (as `POST /v1/webhooks`); the answer holds its
/// secret, shown this once.
#[utoipa::path(post, path = "/api/seller/webhooks", tag = "seller", security(("bearer" = [])),
    request_body(content = CreateWebhook, example = json!({
        "url": "https://yourapp.example.com/webhooks/menon",
        "events": ["booking.*"]
    })),
    responses((status = 201, body = Envelope<SellerWebhookData>), (status = 400, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope)))]
async fn seller_create(
    auth: Auth,
    state: State<AppState>,
    body: ApiJson<CreateWebhook>,
) -> Created<SellerWebhookData> {
    let (status, answer) = webhooks::create_webhook(auth, state, body).await?;
    Ok((
        status,
        axum::Json(Envelope {
            success: true,
            data: seller(answer.0.data),
        }),
    ))
}

/// Change an endpoint (as `PATCH /v1/webhooks/{id}`).
#[utoipa::path(patch, path = "/api/seller/webhooks/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    request_body(content = UpdateWebhook, example = json!({
        "events": ["booking.created"],
        "status": "active"
    })),
    responses((status = 200, body = Envelope<SellerWebhookData>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn seller_update(
    auth: Auth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> ApiResult<SellerWebhookData> {
    let data = webhooks::update(auth, state, &id, body).await?.0.data;
    super::ok(seller(data))
}

/// Delete an endpoint (as `DELETE /v1/webhooks/{id}`).
#[utoipa::path(delete, path = "/api/seller/webhooks/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    responses((status = 200, body = Envelope<Deleted>), (status = 404, body = ErrorEnvelope)))]
async fn seller_delete(
    auth: Auth,
    state: State<AppState>,
    id: ApiPath<String>,
) -> Result<Deleted, ApiError> {
    webhooks::delete_webhook(auth, state, id).await
}

/// Send a test event now (as `POST /v1/webhooks/{id}/test`), optionally
/// an example of a chosen type.
#[utoipa::path(post, path = "/api/seller/webhooks/{id}/test", tag = "seller", security(("bearer" = [])),
    params(("id" = inline(EndpointId), Path, description = "Endpoint id (wh_...)")),
    request_body(content = Option<WebhookTestRequest>, description = "Optional: the event type to send an example of",
        example = json!({"event_type": "webhook.test"})),
    responses((status = 200, body = Envelope<TestData>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn seller_test(
    auth: Auth,
    state: State<AppState>,
    id: ApiPath<String>,
    body: OptionalJson<WebhookTestRequest>,
) -> ApiResult<TestData> {
    webhooks::send_test(auth, state, id, body).await
}
