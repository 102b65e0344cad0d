//! Plugins: records per tenant, component bytes by content (shared by every
//! record with the same SHA-256), and compiled artifacts by content and
//! engine, all in the database.

use deadpool_postgres::GenericClient;

use super::{PgStore, body, exec, locks, page_of, row, rows};
use crate::model::ids::{PluginId, TenantId};
use crate::model::plugin::Plugin;
use crate::store::{NewPlugin, Page, PluginQuota, Result, StoreError, Stored, encode};

/// Every version of every plugin of a tenant, oldest first.
pub(super) async fn all_plugins<C: GenericClient>(
    client: &C,
    tenant: &TenantId,
) -> Result<Vec<Plugin>> {
    rows(
        client,
        "SELECT body FROM plugins WHERE tenant_id = $1 ORDER BY id",
        &[&tenant.to_string()],
    )
    .await?
    .iter()
    .map(|r| body(r, 0))
    .collect()
}

/// Removes the bytes (and with them the artifacts) of each of `contents`
/// that no plugin record, of any tenant, refers to any more. Holds their
/// content locks (lock 4 in locks.rs): an upload of the same bytes either
/// committed before, and its record is seen, or waits and stores them anew.
pub(super) async fn drop_unreferenced<C: GenericClient>(tx: &C, contents: &[String]) -> Result<()> {
    if contents.is_empty() {
        return Ok(());
    }
    locks::contents(tx, contents).await?;
    exec(
        tx,
        "DELETE FROM plugin_blobs b WHERE sha256 = ANY($1)
             AND NOT EXISTS (SELECT 1 FROM plugins p WHERE p.sha256 = b.sha256)",
        &[&contents],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// Stores `new` as the next version of its name, unless the same bytes
    /// already are a version of it. Numbering the version and checking the
    /// tenant's quota hold the tenant's row (lock 1 in locks.rs) with the
    /// write: two uploads at once never get one version number or pass the
    /// quota together.
    pub async fn create_plugin(&self, new: NewPlugin<'_>, quota: PluginQuota) -> Result<Stored> {
        let tenant = new.tenant_id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let tenant_row = "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE";
        let found = row(&tx, tenant_row, &[&tenant]).await?.is_some();
        let existing = all_plugins(&tx, &new.tenant_id).await?;
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
        if !found {
            return Err(StoreError::NotFound("tenant"));
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
        locks::contents(&tx, std::slice::from_ref(&plugin.sha256)).await?;
        exec(
            &tx,
            "INSERT INTO plugin_blobs (sha256, wasm) VALUES ($1, $2)
             ON CONFLICT (sha256) DO NOTHING",
            &[&plugin.sha256, &new.wasm],
        )
        .await?;
        exec(
            &tx,
            "INSERT INTO plugins (tenant_id, id, sha256, body) VALUES ($1, $2, $3, $4)",
            &[
                &tenant,
                &plugin.id.to_string(),
                &plugin.sha256,
                &encode(&plugin),
            ],
        )
        .await?;
        if let Some(artifact) = new.artifact {
            exec(
                &tx,
                "INSERT INTO plugin_artifacts (sha256, engine, artifact) VALUES ($1, $2, $3)
                 ON CONFLICT (sha256, engine) DO UPDATE SET artifact = EXCLUDED.artifact",
                &[&plugin.sha256, &new.engine, &artifact],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Stored::Created(plugin))
    }

    pub async fn get_plugin(&self, tenant: &TenantId, id: &PluginId) -> Result<Option<Plugin>> {
        let client = self.client().await?;
        row(
            &client,
            "SELECT body FROM plugins WHERE tenant_id = $1 AND id = $2",
            &[&tenant.to_string(), &id.to_string()],
        )
        .await?
        .map(|r| body(&r, 0))
        .transpose()
    }

    pub async fn list_plugins(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plugin>> {
        let client = self.client().await?;
        page_of(
            &client,
            "SELECT body FROM plugins WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&tenant.to_string()],
            after,
            limit,
            |p: &Plugin| p.id.to_string(),
        )
        .await
    }

    /// Deletes a plugin record, and its bytes and artifacts when no other
    /// record (of any tenant) has the same content; refused (`Conflict`,
    /// naming them) while an endpoint's chain holds it.
    pub async fn delete_plugin(&self, plugin: &Plugin) -> Result<bool> {
        let tenant = plugin.tenant_id.to_string();
        let id = plugin.id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Lock 1 (locks.rs), exclusive: a chain attaching it either
        // committed before (and is seen below) or waits, then finds it gone.
        row(
            &tx,
            "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE",
            &[&tenant],
        )
        .await?;
        let users: Vec<String> = rows(
            &tx,
            "SELECT id FROM endpoints WHERE tenant_id = $1 AND $2 = ANY(plugin_ids) ORDER BY id",
            &[&tenant, &id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "plugin {} is used by {}; remove it from their chains first",
                plugin.id,
                users.join(", ")
            )));
        }
        let deleted = exec(
            &tx,
            "DELETE FROM plugins WHERE tenant_id = $1 AND id = $2",
            &[&tenant, &id],
        )
        .await?;
        if deleted > 0 {
            drop_unreferenced(&tx, std::slice::from_ref(&plugin.sha256)).await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// A component's bytes, by SHA-256 (hex).
    pub async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let found = row(
            &client,
            "SELECT wasm FROM plugin_blobs WHERE sha256 = $1",
            &[&sha256],
        )
        .await?;
        Ok(found.map(|r| r.get(0)))
    }

    /// A component's machine code for one engine, if compiled before.
    pub async fn plugin_artifact(&self, sha256: &str, engine: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let found = row(
            &client,
            "SELECT artifact FROM plugin_artifacts WHERE sha256 = $1 AND engine = $2",
            &[&sha256, &engine],
        )
        .await?;
        Ok(found.map(|r| r.get(0)))
    }

    /// Caches a compiled artifact (after an engine change). Skipped when the
    /// content was dropped meanwhile, which would leave the artifact behind
    /// for good; under the content's lock, so that cannot happen between
    /// the check and the write.
    pub async fn put_plugin_artifact(
        &self,
        sha256: &str,
        engine: &str,
        artifact: &[u8],
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        locks::contents(&tx, &[sha256.to_string()]).await?;
        exec(
            &tx,
            "INSERT INTO plugin_artifacts (sha256, engine, artifact)
             SELECT $1::text, $2::text, $3::bytea
             WHERE EXISTS (SELECT 1 FROM plugin_blobs WHERE sha256 = $1::text)
             ON CONFLICT (sha256, engine) DO UPDATE SET artifact = EXCLUDED.artifact",
            &[&sha256, &engine, &artifact],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
