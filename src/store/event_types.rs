//! The per-tenant event type catalog, keyed `{tenant_id}/{name}`.

use sled::Transactional;
use sled::transaction::abort;

use super::{
    Page, Result, SledStore, StoreError, decode, encode, list_page, scoped_key, tenant_prefix,
};
use crate::model::event_type::EventType;
use crate::model::ids::TenantId;

impl SledStore {
    /// Adds a type to the catalog; `Conflict` if the name is taken.
    pub async fn create_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()> {
        let key = scoped_key(tenant, &et.name);
        let value = encode(et);
        (&self.tenants, &self.event_types).transaction(|(tenants, types)| {
            if tenants.get(tenant.to_string().as_bytes())?.is_none() {
                return abort(StoreError::NotFound("tenant"));
            }
            if types.get(key.as_slice())?.is_some() {
                return abort(StoreError::Conflict(format!(
                    "event type '{}' already exists",
                    et.name
                )));
            }
            types.insert(key.as_slice(), value.as_slice())?;
            Ok(())
        })?;
        self.flush().await
    }

    pub fn get_event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>> {
        self.event_types
            .get(scoped_key(tenant, name))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Lists the catalog in name order.
    pub fn list_event_types(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<EventType>> {
        list_page(
            &self.event_types,
            &tenant_prefix(tenant),
            after,
            limit,
            |et: &EventType| et.name.clone(),
        )
    }

    /// Every type name in the catalog, for validating subscriptions.
    pub fn event_type_names(&self, tenant: &TenantId) -> Result<Vec<String>> {
        let prefix = tenant_prefix(tenant);
        self.event_types
            .scan_prefix(&prefix)
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?[prefix.len()..]).into_owned()))
            .collect()
    }

    /// Replaces a stored type; `NotFound` if it does not exist.
    pub async fn update_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()> {
        let key = scoped_key(tenant, &et.name);
        let value = encode(et);
        self.event_types.transaction(|types| {
            if types.get(key.as_slice())?.is_none() {
                return abort(StoreError::NotFound("event type"));
            }
            types.insert(key.as_slice(), value.as_slice())?;
            Ok(())
        })?;
        self.flush().await
    }

    /// Deletes a type unless an endpoint subscribes to it by name
    /// (`Conflict`, naming them). Checked and removed under the endpoint
    /// cache's write lock, which every endpoint write holds while it checks
    /// its subscriptions, so no endpoint can subscribe in between.
    pub async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<bool> {
        let existed = {
            let _endpoints = self.endpoint_cache.write();
            let users = self.endpoints_using(tenant, |e| e.events.iter().any(|n| n == name))?;
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "event type '{name}' is subscribed by {}; remove it from them first",
                    users.join(", ")
                )));
            }
            self.event_types.remove(scoped_key(tenant, name))?.is_some()
        };
        self.flush().await?;
        Ok(existed)
    }
}
