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
    Page, Result, SledStore, StoreError, decode, encode, list_page, scoped_key, tenant_prefix,
};
use crate::model::ids::{PluginId, TenantId};
use crate::model::plugin::{Language, Plugin};

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

/// How much plugin content one tenant may keep.
#[derive(Debug, Clone, Copy)]
pub struct PluginQuota {
    /// Plugin versions, all names together.
    pub count: usize,
    /// Bytes of all those versions' components together.
    pub bytes: usize,
}

/// A plugin version about to be stored: everything but its version number,
/// which the store assigns.
pub struct NewPlugin<'a> {
    pub tenant_id: TenantId,
    pub name: &'a str,
    pub sha256: &'a str,
    pub wasm: &'a [u8],
    /// What the bytes are.
    pub language: Language,
    /// The engine fingerprint an artifact is for.
    pub engine: &'a str,
    /// Serialised machine code for `engine`, when the upload compiled it
    /// already (uploads compiled off the request path store none).
    pub artifact: Option<&'a [u8]>,
}

/// What storing a plugin version did.
pub enum Stored {
    Created(Plugin),
    /// These bytes already were a version of this name: that version.
    Existing(Plugin),
}

impl SledStore {
    /// Stores `new` as the next version of its name, unless the same bytes
    /// already are a version of it. Numbering the version and checking the
    /// tenant's quota happen under the content lock, with the write: two
    /// uploads at once never get one version number or pass the quota
    /// together.
    pub async fn create_plugin(&self, new: NewPlugin<'_>, quota: PluginQuota) -> Result<Stored> {
        let contents = self.plugin_contents.hold();
        let existing = self.all_plugins(&new.tenant_id)?;
        let same_name = existing.iter().filter(|p| p.name == new.name);
        if let Some(same) = same_name.clone().find(|p| p.sha256 == new.sha256) {
            return Ok(Stored::Existing(same.clone()));
        }
        if existing.len() >= quota.count {
            return Err(StoreError::LimitReached(format!(
                "the tenant has {} plugin versions, the most it may keep; delete some first",
                existing.len()
            )));
        }
        let used: usize = existing.iter().map(|p| p.size).sum();
        if used + new.wasm.len() > quota.bytes {
            return Err(StoreError::LimitReached(format!(
                "the tenant's plugins would take {} bytes, over its quota of {} bytes; delete some first",
                used + new.wasm.len(),
                quota.bytes
            )));
        }
        let plugin = Plugin {
            id: PluginId::generate(),
            tenant_id: new.tenant_id,
            name: new.name.to_string(),
            version: same_name.map(|p| p.version).max().unwrap_or(0) + 1,
            sha256: new.sha256.to_string(),
            size: new.wasm.len(),
            created_at: crate::time::now(),
            language: new.language,
        };
        let key = scoped_key(&plugin.tenant_id, plugin.id);
        let value = encode(&plugin);
        let akey = artifact_key(&plugin.sha256, new.engine);
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
                    blobs.insert(plugin.sha256.as_bytes(), new.wasm)?;
                }
                if let Some(artifact) = new.artifact {
                    artifacts.insert(akey.as_slice(), artifact)?;
                }
                Ok(())
            })?;
        drop(contents);
        self.flush().await?;
        Ok(Stored::Created(plugin))
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
    /// record (of any tenant) has the same content; refused (`Conflict`,
    /// naming them) while an endpoint's chain holds it. Checked and removed
    /// under the endpoint cache's write lock, which every endpoint write
    /// holds while it checks its chain, so no chain can attach it in
    /// between.
    pub async fn delete_plugin(&self, plugin: &Plugin) -> Result<bool> {
        let key = scoped_key(&plugin.tenant_id, plugin.id);
        let existed = {
            let _endpoints = self.endpoint_cache.write();
            let users = self.endpoints_using(&plugin.tenant_id, |e| {
                e.plugins.iter().any(|p| p.plugin_id == plugin.id)
            })?;
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "plugin {} is used by {}; remove it from their chains first",
                    plugin.id,
                    users.join(", ")
                )));
            }
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

    /// A component's bytes, by SHA-256 (hex).
    pub fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .plugin_blobs
            .get(sha256.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// A component's machine code for one engine, if compiled before.
    pub fn plugin_artifact(&self, sha256: &str, engine: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .plugin_artifacts
            .get(artifact_key(sha256, engine))?
            .map(|v| v.to_vec()))
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
    use super::{NewPlugin, PluginQuota, Stored};
    use crate::model::ids::TenantId;
    use crate::model::plugin::Plugin;
    use crate::store::test_support::{temp_sled, tenant};
    use crate::store::{SledStore, StoreError};

    const ROOMY: PluginQuota = PluginQuota {
        count: usize::MAX,
        bytes: usize::MAX,
    };

    /// A content hash standing for `label`.
    fn content(label: &str) -> String {
        format!("{:064}", label.len())
    }

    async fn upload(
        store: &SledStore,
        tenant: TenantId,
        name: &str,
        sha256: &str,
        quota: PluginQuota,
    ) -> Result<Stored, StoreError> {
        let new = NewPlugin {
            tenant_id: tenant,
            name,
            sha256,
            wasm: b"wasm",
            language: crate::model::plugin::Language::Wasm,
            engine: "engine",
            artifact: Some(b"code".as_slice()),
        };
        store.create_plugin(new, quota).await
    }

    async fn created(store: &SledStore, tenant: TenantId, name: &str, sha256: &str) -> Plugin {
        match upload(store, tenant, name, sha256, ROOMY).await.unwrap() {
            Stored::Created(p) => p,
            Stored::Existing(p) => panic!("{} already stored", p.id),
        }
    }

    /// A record read (so kept decoded) and then removed, by plugin or by
    /// tenant deletion, is not served from memory.
    #[tokio::test]
    async fn removed_plugins_are_not_served_from_memory() {
        let (store, _dir) = temp_sled();
        let owner = tenant("acme");
        store.create_tenant(&owner).await.unwrap();
        let one = created(&store, owner.id, "one", &content("one")).await;
        let two = created(&store, owner.id, "two", &content("three")).await;
        for p in [&one, &two] {
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
        let (store, _dir) = temp_sled();
        let (gone, stays) = (tenant("gone"), tenant("stays"));
        store.create_tenant(&gone).await.unwrap();
        store.create_tenant(&stays).await.unwrap();
        let own = created(&store, gone.id, "own", &content("own")).await;
        let shared = created(&store, gone.id, "shared", &content("shared-content")).await;
        created(&store, stays.id, "copy", &shared.sha256).await;

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

    /// Versions of one name are numbered in order, the same bytes again
    /// return their version, and the tenant's quota holds by count and by
    /// bytes.
    #[tokio::test]
    async fn versions_are_numbered_and_the_quota_holds() {
        let (store, _dir) = temp_sled();
        let owner = tenant("acme");
        store.create_tenant(&owner).await.unwrap();
        let quota = PluginQuota {
            count: 2,
            bytes: 1 << 20,
        };
        let first = upload(&store, owner.id, "p", &content("a"), quota).await;
        let Ok(Stored::Created(first)) = first else {
            panic!("not created")
        };
        let again = upload(&store, owner.id, "p", &content("a"), quota).await;
        assert!(matches!(again, Ok(Stored::Existing(p)) if p.id == first.id));
        let second = upload(&store, owner.id, "p", &content("bb"), quota).await;
        assert!(matches!(second, Ok(Stored::Created(p)) if p.version == 2));
        let third = upload(&store, owner.id, "q", &content("ccc"), quota).await;
        assert!(matches!(third, Err(StoreError::LimitReached(_))), "count");
        assert!(store.delete_plugin(&first).await.unwrap());
        let tight = PluginQuota {
            count: 10,
            bytes: 6,
        };
        let over = upload(&store, owner.id, "q", &content("ccc"), tight).await;
        assert!(matches!(over, Err(StoreError::LimitReached(_))), "bytes");
        let fits = upload(&store, owner.id, "q", &content("ccc"), quota).await;
        assert!(matches!(fits, Ok(Stored::Created(_))));
    }

    /// Uploads of one name from two threads at once never share a version
    /// number, and together never pass the count quota.
    #[test]
    fn racing_uploads_get_distinct_versions_within_the_quota() {
        let (store, _dir) = temp_sled();
        let owner = tenant("acme");
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        runtime().block_on(store.create_tenant(&owner)).unwrap();
        let quota = PluginQuota {
            count: 150,
            bytes: usize::MAX,
        };
        let uploader = |side: &'static str| {
            let store = store.clone();
            std::thread::spawn(move || {
                let runtime = runtime();
                for i in 0..100 {
                    let sha256 = format!("{side}{i:063}");
                    let _ = runtime.block_on(upload(&store, owner.id, "same", &sha256, quota));
                }
            })
        };
        let (a, b) = (uploader("a"), uploader("b"));
        a.join().unwrap();
        b.join().unwrap();
        let versions: Vec<u32> = store
            .all_plugins(&owner.id)
            .unwrap()
            .into_iter()
            .map(|p| p.version)
            .collect();
        assert_eq!(versions.len(), 150, "the quota was passed or not filled");
        let distinct: std::collections::HashSet<u32> = versions.iter().copied().collect();
        assert_eq!(distinct.len(), versions.len(), "a version number repeats");
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
        let (store, _dir) = temp_sled();
        let owner = tenant("acme");
        runtime().block_on(store.create_tenant(&owner)).unwrap();
        let sha256 = content("same-content");
        // Uploads `name` with the shared content, runs `meanwhile`, deletes
        // it again; 500 times.
        let cycle = move |store: SledStore, name: &'static str, meanwhile: &dyn Fn()| {
            let runtime = runtime();
            let content = content("same-content");
            for _ in 0..500 {
                let p = runtime.block_on(created(&store, owner.id, name, &content));
                meanwhile();
                runtime.block_on(store.delete_plugin(&p)).unwrap();
            }
        };
        let deleter = {
            let store = store.clone();
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
