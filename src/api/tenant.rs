//! The signed-in tenant's own settings (endpoints scope): its delivery
//! header names, which it may read and change with its own key
//! (docs/product.md, "Signing").

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{EndpointsScope, TenantAuth};
use super::error::{ApiError, ErrorEnvelope};
use super::extract::ApiJson;
use super::tenants::TenantData;
use super::views::{HeaderNamesView, TenantView};
use super::{ApiResult, AppState, Envelope, ok};
use crate::signing::HeaderNames;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_own_tenant, update_own_tenant))
}

type Auth = TenantAuth<EndpointsScope>;

/// What a tenant may change of itself.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOwnTenant {
    /// The event, delivery and signature header names of its deliveries;
    /// names left out get the default.
    pub headers: HeaderNamesView,
}

/// The signed-in tenant: its name and delivery header names.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = Envelope<TenantData>), (status = 401, body = ErrorEnvelope)))]
async fn get_own_tenant(auth: Auth, State(state): State<AppState>) -> ApiResult<TenantData> {
    let tenant = state
        .store
        .get_tenant(&auth.tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    ok(TenantData {
        tenant: TenantView::from(&tenant),
    })
}

/// Change the signed-in tenant's delivery header names, e.g. to play Mogu
/// (`X-Mogu-Event`, `X-Mogu-Delivery`, `X-Mogu-Signature-256`).
#[utoipa::path(patch, path = "/v1/tenant", tag = "tenant", security(("bearer" = [])),
    request_body(content = UpdateOwnTenant, example = json!({
        "headers": {"event": "X-Mogu-Event", "delivery": "X-Mogu-Delivery", "signature": "X-Mogu-Signature-256"}
    })),
    responses((status = 200, body = Envelope<TenantData>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope)))]
async fn update_own_tenant(
    auth: Auth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<UpdateOwnTenant>,
) -> ApiResult<TenantData> {
    let mut tenant = state
        .store
        .get_tenant(&auth.tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let headers = HeaderNames::from(body.headers);
    headers.validate()?;
    tenant.headers = headers;
    state.store.update_tenant(&tenant).await?;
    ok(TenantData {
        tenant: TenantView::from(&tenant),
    })
}
