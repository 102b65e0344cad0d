//! Plugins: records per tenant, component bytes by content, and compiled
//! artifacts by content and engine.
//!
//! - `plugins`: `{tenant}/{plugin id}` → [`Plugin`]
//! - `plugin_blobs`: SHA-256 hex → component bytes (shared by every record
//!   with that content)
//! - `plugin_artifacts`: `{sha256}/{engine fingerprint}` → serialised machine
//!   code, so a restart loads instead of recompiling

use sled::Transactional;
use sled::transaction::abort;

use super::{
    Page, Result, Store, StoreError, decode, encode, list_page, scoped_key, tenant_prefix,
};
use crate::ids::{PluginId, TenantId};
use crate::plugins::Plugin;

fn artifact_key(sha256: &str, engine: &str) -> Vec<u8> {
    format!("{sha256}/{engine}").into_bytes()
}

impl Store {
    /// Stores a new plugin version with its bytes and compiled artifact.
    pub async fn create_plugin(
        &self,
        plugin: &Plugin,
        wasm: &[u8],
        engine: &str,
        artifact: &[u8],
    ) -> Result<()> {
        let key = scoped_key(&plugin.tenant_id, plugin.id);
        let value = encode(plugin);
        let akey = artifact_key(&plugin.sha256, engine);
        (
            &self.tenants,
            &self.plugins,
            &self.plugin_blobs,
            &self.plugin_artifacts,
        )
            .transaction(|(tenants, plugins, blobs, artifacts)| {
                if tenants
                    .get(plugin.tenant_id.to_string().as_bytes())?
                    .is_none()
                {
                    return abort(StoreError::NotFound("tenant"));
                }
                plugins.insert(key.as_slice(), value.as_slice())?;
                if blobs.get(plugin.sha256.as_bytes())?.is_none() {
                    blobs.insert(plugin.sha256.as_bytes(), wasm)?;
                }
                artifacts.insert(akey.as_slice(), artifact)?;
                Ok(())
            })?;
        self.flush().await
    }

    pub fn get_plugin(&self, tenant: &TenantId, id: &PluginId) -> Result<Option<Plugin>> {
        self.plugins
            .get(scoped_key(tenant, id))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn list_plugins(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plugin>> {
        list_page(
            &self.plugins,
            &tenant_prefix(tenant),
            after,
            limit,
            |p: &Plugin| p.id.to_string(),
        )
    }

    /// Every version of every plugin of a tenant, oldest first.
    pub fn all_plugins(&self, tenant: &TenantId) -> Result<Vec<Plugin>> {
        self.plugins
            .scan_prefix(tenant_prefix(tenant))
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// Deletes a plugin record, and its bytes and artifacts when no other
    /// record (of any tenant) has the same content.
    pub async fn delete_plugin(&self, plugin: &Plugin) -> Result<bool> {
        let existed = self
            .plugins
            .remove(scoped_key(&plugin.tenant_id, plugin.id))?
            .is_some();
        let shared = self.plugins.iter().values().any(|v| {
            v.ok()
                .and_then(|v| decode::<Plugin>(&v).ok())
                .is_some_and(|p| p.sha256 == plugin.sha256)
        });
        if existed && !shared {
            self.plugin_blobs.remove(plugin.sha256.as_bytes())?;
            let mut batch = sled::Batch::default();
            for key in self
                .plugin_artifacts
                .scan_prefix(format!("{}/", plugin.sha256))
                .keys()
            {
                batch.remove(key?);
            }
            self.plugin_artifacts.apply_batch(batch)?;
        }
        self.flush().await?;
        Ok(existed)
    }

    pub fn plugin_blob(&self, sha256: &str) -> Result<Option<sled::IVec>> {
        Ok(self.plugin_blobs.get(sha256.as_bytes())?)
    }

    pub fn plugin_artifact(&self, sha256: &str, engine: &str) -> Result<Option<sled::IVec>> {
        Ok(self.plugin_artifacts.get(artifact_key(sha256, engine))?)
    }

    /// Caches a compiled artifact (after an engine change); not flushed, as
    /// it can always be made again.
    pub fn put_plugin_artifact(&self, sha256: &str, engine: &str, artifact: &[u8]) -> Result<()> {
        self.plugin_artifacts
            .insert(artifact_key(sha256, engine), artifact)?;
        Ok(())
    }
}
