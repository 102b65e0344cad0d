//! Endpoints, keyed `{tenant_id}/{endpoint_id}`.

use sled::Transactional;
use sled::transaction::abort;

use super::{
    Page, Result, Store, StoreError, decode, encode, list_page, scoped_key, tenant_prefix,
};
use crate::endpoint::Endpoint;
use crate::ids::{EndpointId, TenantId};

impl Store {
    /// Stores a new endpoint; fails if its tenant is gone.
    pub async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let key = scoped_key(&endpoint.tenant_id, endpoint.id);
        let value = encode(endpoint);
        (&self.tenants, &self.endpoints).transaction(|(tenants, endpoints)| {
            if tenants
                .get(endpoint.tenant_id.to_string().as_bytes())?
                .is_none()
            {
                return abort(StoreError::NotFound("tenant"));
            }
            endpoints.insert(key.as_slice(), value.as_slice())?;
            Ok(())
        })?;
        self.flush().await
    }

    pub fn get_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>> {
        self.endpoints
            .get(scoped_key(tenant, id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Lists a tenant's endpoints, oldest first.
    pub fn list_endpoints(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Endpoint>> {
        list_page(
            &self.endpoints,
            &tenant_prefix(tenant),
            after,
            limit,
            |e: &Endpoint| e.id.to_string(),
        )
    }

    /// Every endpoint of a tenant.
    pub fn all_endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>> {
        self.endpoints
            .scan_prefix(tenant_prefix(tenant))
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// Applies `change` to the stored endpoint atomically (compare-and-swap,
    /// retried if a concurrent writer got there first, so `change` may run
    /// more than once) and returns the result. `change` may refuse with its
    /// own error.
    pub async fn update_endpoint<E: From<StoreError>>(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: impl FnMut(&mut Endpoint) -> std::result::Result<(), E>,
    ) -> std::result::Result<Endpoint, E> {
        let endpoint = self.modify_endpoint(tenant, id, change)?;
        self.flush().await?;
        Ok(endpoint)
    }

    /// [`Store::update_endpoint`] without waiting for durability: for
    /// bookkeeping the engine can lose in a crash (last delivery).
    pub fn modify_endpoint<E: From<StoreError>>(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        mut change: impl FnMut(&mut Endpoint) -> std::result::Result<(), E>,
    ) -> std::result::Result<Endpoint, E> {
        let key = scoped_key(tenant, id);
        loop {
            let current = self
                .endpoints
                .get(&key)
                .map_err(StoreError::from)?
                .ok_or(StoreError::NotFound("webhook"))?;
            let mut endpoint: Endpoint = decode(&current)?;
            change(&mut endpoint)?;
            let swapped = self
                .endpoints
                .compare_and_swap(&key, Some(&current), Some(encode(&endpoint)))
                .map_err(StoreError::from)?;
            if swapped.is_ok() {
                return Ok(endpoint);
            }
        }
    }

    /// Deletes an endpoint with its log and every scheduled attempt, so
    /// nothing more is sent to it. Returns whether it existed.
    pub async fn delete_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<bool> {
        let existed = self.endpoints.remove(scoped_key(tenant, id))?.is_some();
        if existed {
            self.purge_endpoint_deliveries(tenant, id)?;
        }
        self.flush().await?;
        Ok(existed)
    }
}
