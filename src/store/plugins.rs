//! Plugins: records per tenant, component bytes by content, and compiled
//! artifacts by content and engine.
//!
//! - `plugins`: `{tenant}/{plugin id}` → [`Plugin`]
//! - `plugin_blobs`: SHA-256 hex → component bytes (shared by every record
//!   with that content)
//! - `plugin_artifacts`: `{sha256}/{engine fingerprint}` → serialised machine
//!   code, so a restart loads instead of recompiling

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sled::Transactional;
use sled::transaction::abort;

use super::kept::Kept;
use super::{
    Page, Result, Store, StoreError, decode, encode, list_page, scoped_key, tenant_prefix,
};
use crate::ids::{PluginId, TenantId};
use crate::plugins::Plugin;

/// Plugin records read by deliveries, kept decoded: every call of a chain
/// step reads its record. Records never change once stored; the two paths
/// that remove them (plugin and tenant deletion) clear their copies.
pub(super) type PluginRecords = Kept<Vec<u8>, Plugin>;

/// Serialises storing plugin content with deciding that content is no
/// longer used. Without it a deletion could find no record referring to some
/// bytes, an upload of the same bytes could then commit (finding them
/// present, so not writing them), and the deletion would remove them from
/// under the new record.
#[derive(Default)]
pub(super) struct ContentLock(Mutex<()>);

impl ContentLock {
    fn hold(&self) -> MutexGuard<'_, ()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

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
        let contents = self.plugin_contents.hold();
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
        drop(contents);
        self.flush().await
    }

    pub fn get_plugin(&self, tenant: &TenantId, id: &PluginId) -> Result<Option<Arc<Plugin>>> {
        let key = scoped_key(tenant, id);
        if let Some(plugin) = self.plugin_records.lock().get(&key) {
            return Ok(Some(plugin));
        }
        let Some(plugin): Option<Plugin> =
            self.plugins.get(&key)?.map(|v| decode(&v)).transpose()?
        else {
            return Ok(None);
        };
        let plugin = Arc::new(plugin);
        let mut records = self.plugin_records.lock();
        // Under the lock, so a deletion that cleared the copy in between
        // cannot be undone: it removed the record from the tree first.
        if self.plugins.contains_key(&key)? {
            records.keep(key, plugin.clone());
        }
        Ok(Some(plugin))
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
        let key = scoped_key(&plugin.tenant_id, plugin.id);
        let existed = {
            let mut records = self.plugin_records.lock();
            let existed = self.plugins.remove(&key)?.is_some();
            records.forget(&key);
            existed
        };
        if existed {
            self.drop_unreferenced(std::slice::from_ref(&plugin.sha256))?;
        }
        self.flush().await?;
        Ok(existed)
    }

    /// Removes the bytes and compiled artifacts of each of `contents` (SHA-256
    /// hex) that no plugin record, of any tenant, refers to any more.
    pub(super) fn drop_unreferenced(&self, contents: &[String]) -> Result<()> {
        let _held = self.plugin_contents.hold();
        let referenced: HashSet<String> = self
            .plugins
            .iter()
            .values()
            .filter_map(|v| v.ok().and_then(|v| decode::<Plugin>(&v).ok()))
            .map(|p| p.sha256)
            .collect();
        for sha256 in contents.iter().filter(|c| !referenced.contains(*c)) {
            self.plugin_blobs.remove(sha256.as_bytes())?;
            let mut batch = sled::Batch::default();
            for key in self
                .plugin_artifacts
                .scan_prefix(format!("{sha256}/"))
                .keys()
            {
                batch.remove(key?);
            }
            self.plugin_artifacts.apply_batch(batch)?;
        }
        Ok(())
    }

    pub fn plugin_blob(&self, sha256: &str) -> Result<Option<sled::IVec>> {
        Ok(self.plugin_blobs.get(sha256.as_bytes())?)
    }

    pub fn plugin_artifact(&self, sha256: &str, engine: &str) -> Result<Option<sled::IVec>> {
        Ok(self.plugin_artifacts.get(artifact_key(sha256, engine))?)
    }

    /// Caches a compiled artifact (after an engine change); not flushed, as
    /// it can always be made again. Skipped when the content was dropped
    /// meanwhile, which would leave the artifact behind for good.
    pub fn put_plugin_artifact(&self, sha256: &str, engine: &str, artifact: &[u8]) -> Result<()> {
        let _held = self.plugin_contents.hold();
        if self.plugin_blobs.contains_key(sha256.as_bytes())? {
            self.plugin_artifacts
                .insert(artifact_key(sha256, engine), artifact)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::PluginId;
    use crate::plugins::Plugin;
    use crate::store::Store;
    use crate::store::test_support::{temp_store, tenant};

    fn plugin(tenant: crate::ids::TenantId, name: &str) -> Plugin {
        Plugin {
            id: PluginId::generate(),
            tenant_id: tenant,
            name: name.into(),
            version: 1,
            sha256: format!("{:064}", name.len()),
            size: 4,
            created_at: crate::time::now(),
        }
    }

    /// A record read (so kept decoded) and then removed, by plugin or by
    /// tenant deletion, is not served from memory.
    #[tokio::test]
    async fn removed_plugins_are_not_served_from_memory() {
        let (store, _dir) = temp_store();
        let owner = tenant("acme");
        store.create_tenant(&owner).await.unwrap();
        let (one, two) = (plugin(owner.id, "one"), plugin(owner.id, "two"));
        for p in [&one, &two] {
            store
                .create_plugin(p, b"wasm", "engine", b"code")
                .await
                .unwrap();
            assert_eq!(
                store.get_plugin(&owner.id, &p.id).unwrap().unwrap().id,
                p.id
            );
        }

        assert!(store.delete_plugin(&one).await.unwrap());
        assert!(store.get_plugin(&owner.id, &one.id).unwrap().is_none());
        assert!(store.get_plugin(&owner.id, &two.id).unwrap().is_some());

        assert!(store.delete_tenant(&owner.id).await.unwrap());
        assert!(store.get_plugin(&owner.id, &two.id).unwrap().is_none());
    }

    /// Deleting a tenant removes its plugins' bytes and artifacts, except
    /// content another tenant's plugin still refers to.
    #[tokio::test]
    async fn a_deleted_tenants_plugin_content_goes_unless_shared() {
        let (store, _dir) = temp_store();
        let (gone, stays) = (tenant("gone"), tenant("stays"));
        store.create_tenant(&gone).await.unwrap();
        store.create_tenant(&stays).await.unwrap();
        let own = plugin(gone.id, "own");
        let shared = plugin(gone.id, "shared-content");
        let copy = Plugin {
            id: PluginId::generate(),
            tenant_id: stays.id,
            ..shared.clone()
        };
        for p in [&own, &shared, &copy] {
            store
                .create_plugin(p, b"wasm", "engine", b"code")
                .await
                .unwrap();
        }

        assert!(store.delete_tenant(&gone.id).await.unwrap());
        // (bytes kept, artifact kept)
        let kept = |sha256: &str| {
            (
                store.plugin_blob(sha256).unwrap().is_some(),
                store.plugin_artifact(sha256, "engine").unwrap().is_some(),
            )
        };
        assert_eq!(kept(&own.sha256), (false, false));
        assert_eq!(kept(&shared.sha256), (true, true));
    }

    /// A plugin uploaded with the same content as one being deleted keeps
    /// its bytes: the deletion's "is this content still used?" check and
    /// its removal of the bytes cannot straddle the upload.
    #[test]
    fn an_upload_racing_a_deletion_of_the_same_content_keeps_its_bytes() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let (store, _dir) = temp_store();
        let owner = tenant("acme");
        runtime().block_on(store.create_tenant(&owner)).unwrap();
        let content = plugin(owner.id, "same-content").sha256;
        let sha256 = content.clone();
        // Uploads `name` with the shared content, runs `meanwhile`, deletes
        // it again; 500 times.
        let cycle = move |store: Store, name: &'static str, meanwhile: &dyn Fn()| {
            let runtime = runtime();
            for _ in 0..500 {
                let p = Plugin {
                    sha256: content.clone(),
                    ..plugin(owner.id, name)
                };
                runtime
                    .block_on(store.create_plugin(&p, b"wasm", "engine", b"code"))
                    .unwrap();
                meanwhile();
                runtime.block_on(store.delete_plugin(&p)).unwrap();
            }
        };
        let deleter = {
            let (store, cycle) = (store.clone(), cycle.clone());
            std::thread::spawn(move || cycle(store, "deleted", &|| {}))
        };
        let lost = std::sync::atomic::AtomicUsize::new(0);
        cycle(store.clone(), "kept", &|| {
            // Give a deletion that already checked the content time to
            // remove the bytes under this record.
            std::thread::yield_now();
            if store.plugin_blob(&sha256).unwrap().is_none() {
                lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        deleter.join().unwrap();
        assert_eq!(
            lost.into_inner(),
            0,
            "uploads whose bytes a racing deletion removed"
        );
    }
}
