//! Authentication extractors (docs/product.md, "Authentication"): handlers name
//! what they need (`Admin`, or `TenantAuth<EndpointsScope>`) and never parse
//! headers.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::model::ids::TenantId;
use crate::model::tenant::{Scope, hash_token};

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing 'Authorization: Bearer <key>' header",
        ))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must be 'Bearer <key>'",
        ))
}

fn is_admin(state: &AppState, token: &str) -> bool {
    bool::from(hash_token(token).ct_eq(&state.admin_token_hash))
}

/// The request carries the operator admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if is_admin(state, token) {
            return Ok(Admin);
        }
        match state.store.key_by_token_hash(&hash_token(token)).await? {
            Some(_) => Err(ApiError::Forbidden(
                "this route needs the operator admin token, not a tenant API key".into(),
            )),
            None => Err(ApiError::Unauthorized("invalid token")),
        }
    }
}

/// The request may read `/metrics`: it carries the operator's
/// `metrics_token`, or none is set.
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.config.metrics_token else {
            return Ok(MetricsReader);
        };
        let token = bearer(parts)?;
        if bool::from(hash_token(token).ct_eq(&hash_token(expected))) {
            Ok(MetricsReader)
        } else {
            Err(ApiError::Unauthorized("invalid metrics token"))
        }
    }
}

/// A scope a route requires, as a type.
pub trait RequiredScope {
    const SCOPE: Scope;
}

pub struct PublishScope;
pub struct EndpointsScope;
pub struct PluginsScope;

impl RequiredScope for PublishScope {
    const SCOPE: Scope = Scope::Publish;
}
impl RequiredScope for EndpointsScope {
    const SCOPE: Scope = Scope::Endpoints;
}
impl RequiredScope for PluginsScope {
    const SCOPE: Scope = Scope::Plugins;
}

/// The request carries a tenant API key holding scope `S`. Handlers reach
/// only `tenant`'s data through it, so another tenant's ids answer 404.
pub struct TenantAuth<S> {
    pub tenant: TenantId,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope> FromRequestParts<AppState> for TenantAuth<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let Some(key) = state.store.key_by_token_hash(&hash_token(token)).await? else {
            if is_admin(state, token) {
                return Err(ApiError::Forbidden(
                    "the operator admin token cannot act as a tenant; use a tenant API key".into(),
                ));
            }
            return Err(ApiError::Unauthorized("invalid API key"));
        };
        if !key.allows(S::SCOPE) {
            return Err(ApiError::Forbidden(format!(
                "this API key lacks the '{}' scope",
                S::SCOPE
            )));
        }
        Ok(TenantAuth {
            tenant: key.tenant_id,
            _scope: PhantomData,
        })
    }
}
