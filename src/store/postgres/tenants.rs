//! Tenants, the root of every other record, and the operator's token.

use super::{PgStore, body, exec, locks, page_of, plugins, row, rows};
use crate::model::event_type::EventType;
use crate::model::ids::TenantId;
use crate::model::tenant::Tenant;
use crate::store::{Page, Result, StoreError, encode};

const ADMIN_TOKEN_HASH: &str = "admin_token_sha256";

impl PgStore {
    pub async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>> {
        let client = self.client().await?;
        let found = row(
            &client,
            "SELECT value FROM meta WHERE key = $1",
            &[&ADMIN_TOKEN_HASH],
        )
        .await?;
        Ok(found.and_then(|r| <[u8; 32]>::try_from(r.get::<_, &[u8]>(0)).ok()))
    }

    pub async fn set_admin_token_hash(&self, hash: [u8; 32]) -> Result<()> {
        let client = self.client().await?;
        exec(
            &client,
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&ADMIN_TOKEN_HASH, &&hash[..]],
        )
        .await?;
        Ok(())
    }

    /// Stores a new tenant with the built-in types of its catalog and
    /// `catalog`, all or nothing.
    pub async fn create_tenant_with(&self, tenant: &Tenant, catalog: &[EventType]) -> Result<()> {
        let types: Vec<EventType> = EventType::builtins(tenant.created_at)
            .into_iter()
            .chain(catalog.iter().cloned())
            .collect();
        let names: Vec<&str> = types.iter().map(|et| et.name.as_str()).collect();
        let bodies: Vec<Vec<u8>> = types.iter().map(encode).collect();
        let id = tenant.id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        exec(
            &tx,
            "INSERT INTO tenants (id, body) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
            &[&id, &encode(tenant)],
        )
        .await?;
        exec(
            &tx,
            "INSERT INTO event_types (tenant_id, name, body)
             SELECT $1::text, * FROM unnest($2::text[], $3::bytea[])
             ON CONFLICT (tenant_id, name) DO UPDATE SET body = EXCLUDED.body",
            &[&id, &names, &bodies],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let client = self.client().await?;
        row(
            &client,
            "SELECT body FROM tenants WHERE id = $1",
            &[&id.to_string()],
        )
        .await?
        .map(|r| body(&r, 0))
        .transpose()
    }

    /// Replaces a stored tenant's record; `NotFound` if it is gone.
    pub async fn update_tenant(&self, tenant: &Tenant) -> Result<()> {
        let client = self.client().await?;
        let updated = exec(
            &client,
            "UPDATE tenants SET body = $2 WHERE id = $1",
            &[&tenant.id.to_string(), &encode(tenant)],
        )
        .await?;
        match updated {
            0 => Err(StoreError::NotFound("tenant")),
            _ => Ok(()),
        }
    }

    pub async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Page<Tenant>> {
        let client = self.client().await?;
        page_of(
            &client,
            "SELECT body FROM tenants WHERE id > $1 ORDER BY id LIMIT $2",
            &[],
            after,
            limit,
            |t: &Tenant| t.id.to_string(),
        )
        .await
    }

    /// Deletes a tenant and everything it owns, in one transaction. Returns
    /// whether the tenant existed.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<bool> {
        let tenant = id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Locks 1 and 2 (locks.rs): no endpoint write, plugin upload or
        // line change of the tenant runs meanwhile.
        let existed = row(
            &tx,
            "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE",
            &[&tenant],
        )
        .await?
        .is_some();
        locks::all_lines(&tx, id).await?;
        // Deliveries before their queue entries (lock 5); the events take
        // their idempotency keys with them.
        for sql in [
            "DELETE FROM deliveries WHERE tenant_id = $1",
            "DELETE FROM queue WHERE tenant_id = $1",
            "DELETE FROM events WHERE tenant_id = $1",
            "DELETE FROM api_keys WHERE tenant_id = $1",
            "DELETE FROM endpoints WHERE tenant_id = $1",
            "DELETE FROM event_types WHERE tenant_id = $1",
        ] {
            exec(&tx, sql, &[&tenant]).await?;
        }
        let contents: Vec<String> = rows(
            &tx,
            "DELETE FROM plugins WHERE tenant_id = $1 RETURNING sha256",
            &[&tenant],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        plugins::drop_unreferenced(&tx, &contents).await?;
        exec(&tx, "DELETE FROM tenants WHERE id = $1", &[&tenant]).await?;
        tx.commit().await?;
        Ok(existed)
    }
}
