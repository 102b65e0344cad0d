//! Tenants: the root of every other record.

use std::sync::Arc;

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::kept::Kept;
use super::{
    Page, Result, SledStore, decode, encode, keys_with_prefix, list_page, scoped_key, tenant_prefix,
};
use crate::model::event_type::EventType;
use crate::model::ids::TenantId;
use crate::model::tenant::Tenant;

/// Tenant records read by deliveries, kept decoded: every attempt needs its
/// tenant's header names. A miss reads the tree under the lock, and every
/// write of a record drops its copy after writing the tree, so a copy is
/// never older than the tree once the write has returned.
pub(super) type TenantRecords = Kept<TenantId, Tenant>;

impl SledStore {
    /// Stores a new tenant together with the built-in types of its catalog
    /// (`webhook.test`, the operational events).
    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.create_tenant_with(tenant, &[]).await
    }

    /// Stores a new tenant with the built-in types and `catalog`, all or
    /// nothing.
    pub async fn create_tenant_with(&self, tenant: &Tenant, catalog: &[EventType]) -> Result<()> {
        let types: Vec<(Vec<u8>, Vec<u8>)> = EventType::builtins(tenant.created_at)
            .iter()
            .chain(catalog)
            .map(|et| (scoped_key(&tenant.id, &et.name), encode(et)))
            .collect();
        let tenant_value = encode(tenant);
        (&self.tenants, &self.event_types).transaction(|(tenants, catalog)| {
            tenants.insert(tenant.id.to_string().as_bytes(), tenant_value.as_slice())?;
            for (key, value) in &types {
                catalog.insert(key.as_slice(), value.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<super::StoreError>>(())
        })?;
        self.flush().await
    }

    pub fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        self.tenants
            .get(id.to_string())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The tenant as deliveries see it: kept decoded after the first read.
    pub fn tenant_record(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>> {
        let mut records = self.tenant_records.lock();
        if let Some(tenant) = records.get(id) {
            return Ok(Some(tenant));
        }
        let Some(tenant) = self.get_tenant(id)? else {
            return Ok(None);
        };
        let tenant = Arc::new(tenant);
        records.keep(*id, tenant.clone());
        Ok(Some(tenant))
    }

    /// Replaces a stored tenant's record; `NotFound` if it is gone.
    pub async fn update_tenant(&self, tenant: &Tenant) -> Result<()> {
        let key = tenant.id.to_string();
        let value = encode(tenant);
        self.tenants.transaction(|tenants| {
            if tenants.get(key.as_bytes())?.is_none() {
                return sled::transaction::abort(super::StoreError::NotFound("tenant"));
            }
            tenants.insert(key.as_bytes(), value.as_slice())?;
            Ok(())
        })?;
        self.tenant_records.forget(&tenant.id);
        self.flush().await
    }

    pub fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Page<Tenant>> {
        list_page(&self.tenants, b"", after, limit, |t: &Tenant| {
            t.id.to_string()
        })
    }

    /// Deletes a tenant and everything it owns, in one transaction. Returns
    /// whether the tenant existed.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<bool> {
        let prefix = tenant_prefix(id);
        let keys = keys_with_prefix(&self.keys, &prefix)?;
        let event_types = keys_with_prefix(&self.event_types, &prefix)?;
        let key_hashes: Vec<sled::IVec> = keys
            .iter()
            .filter_map(|k| self.keys.get(k).ok().flatten())
            .filter_map(|v| decode::<super::keys::StoredKey>(&v).ok())
            .map(|k| k.hash.to_vec().into())
            .collect();
        let existed = {
            // Listed under the cache's lock, which every endpoint write
            // takes: none created meanwhile is left behind.
            let mut cache = self.endpoint_cache.write();
            let endpoints = keys_with_prefix(&self.endpoints, &prefix)?;
            let existed = (
                &self.tenants,
                &self.keys,
                &self.key_hashes,
                &self.endpoints,
                &self.event_types,
            )
                .transaction(|(tenants, k, kh, ep, et)| {
                    let existed = tenants.remove(id.to_string().as_bytes())?.is_some();
                    for key in &keys {
                        k.remove(key)?;
                    }
                    for hash in &key_hashes {
                        kh.remove(hash)?;
                    }
                    for key in &endpoints {
                        ep.remove(key)?;
                    }
                    for key in &event_types {
                        et.remove(key)?;
                    }
                    Ok::<_, ConflictableTransactionError<super::StoreError>>(existed)
                })?;
            cache.remove(id);
            existed
        };
        self.tenant_records.forget(id);
        // With the tenant and its keys gone nothing new can arrive; now the
        // bulk of its history.
        self.purge_deliveries(&prefix)?;
        let plugin_contents: Vec<String> = self
            .all_plugins(id)?
            .into_iter()
            .map(|p| p.sha256)
            .collect();
        for tree in [
            &self.events,
            &self.event_deliveries,
            &self.fanouts,
            &self.idempotency,
            &self.plugins,
        ] {
            let mut batch = sled::Batch::default();
            for key in keys_with_prefix(tree, &prefix)? {
                batch.remove(key);
            }
            tree.apply_batch(batch)?;
        }
        self.drop_unreferenced(&plugin_contents)?;
        self.recent_events.clear();
        self.plugin_records.clear();
        self.flush().await?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::tenant::Tenant;
    use crate::store::test_support::{temp_sled, tenant};

    /// Attempts read their tenant from memory; an update or a deletion is
    /// seen by the next read.
    #[tokio::test]
    async fn kept_tenant_records_follow_updates_and_deletion() {
        let (store, _dir) = temp_sled();
        let mut acme = tenant("acme");
        store.create_tenant(&acme).await.unwrap();
        assert_eq!(store.tenant_record(&acme.id).unwrap().unwrap().name, "acme");

        acme.name = "acme corp".into();
        store.update_tenant(&acme).await.unwrap();
        assert_eq!(
            store.tenant_record(&acme.id).unwrap().unwrap().name,
            "acme corp"
        );

        assert!(store.delete_tenant(&acme.id).await.unwrap());
        assert!(store.tenant_record(&acme.id).unwrap().is_none());
    }

    #[tokio::test]
    async fn tenants_list_in_creation_order_with_cursor() {
        let (store, _dir) = temp_sled();
        let made: Vec<Tenant> = (0..5).map(|i| tenant(&format!("t{i}"))).collect();
        for t in &made {
            store.create_tenant(t).await.unwrap();
        }
        let first = store.list_tenants(None, 2).unwrap();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.items[0].name, "t0");
        let cursor = first.next_cursor.unwrap();
        let second = store.list_tenants(Some(&cursor), 10).unwrap();
        assert_eq!(second.items.len(), 3);
        assert_eq!(second.items[0].name, "t2");
        assert!(second.next_cursor.is_none());
        assert!(store.delete_tenant(&made[0].id).await.unwrap());
        assert!(!store.delete_tenant(&made[0].id).await.unwrap());
        assert!(store.get_tenant(&made[0].id).unwrap().is_none());
    }
}
