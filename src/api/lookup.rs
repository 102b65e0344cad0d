//! Finding the signed-in tenant's records by the ids in a path: another
//! tenant's answer 404, as if they did not exist.

use std::sync::Arc;

use super::AppState;
use super::error::ApiError;
use super::extract::path_id;
use crate::model::endpoint::Endpoint;
use crate::model::ids::{EndpointId, TenantId};
use crate::model::tenant::Tenant;

/// One of `tenant`'s endpoints by its path id; another tenant's is 404.
pub(super) async fn find_endpoint(
    state: &AppState,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Endpoint, ApiError> {
    let id: EndpointId = path_id("id", raw_id)?;
    state
        .store
        .get_endpoint(tenant, &id)
        .await?
        .map(Arc::unwrap_or_clone)
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// The tenant and one of its endpoints; another tenant's endpoint is 404.
pub(super) async fn endpoint_of(
    state: &AppState,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<(Tenant, Endpoint), ApiError> {
    let endpoint = find_endpoint(state, tenant, raw_id).await?;
    let tenant = state
        .store
        .get_tenant(tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok((tenant, endpoint))
}
