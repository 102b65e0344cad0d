//! Tenant API keys; the token's hash is a unique column, which
//! authenticates requests.

use super::{PgStore, body, exec, page_of, row};
use crate::model::ids::{KeyId, TenantId};
use crate::model::tenant::ApiKey;
use crate::store::{Page, Result, StoreError, encode};

impl PgStore {
    /// Stores a key with its hash; fails if the tenant is gone.
    pub async fn create_key(&self, key: &ApiKey, token_hash: [u8; 32]) -> Result<()> {
        let tenant = key.tenant_id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Held until the commit: the tenant's deletion waits for the key,
        // and then removes it.
        let tenant_row = "SELECT 1 FROM tenants WHERE id = $1 FOR KEY SHARE";
        if row(&tx, tenant_row, &[&tenant]).await?.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        exec(
            &tx,
            "INSERT INTO api_keys (tenant_id, id, token_hash, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, id)
             DO UPDATE SET token_hash = EXCLUDED.token_hash, body = EXCLUDED.body",
            &[&tenant, &key.id.to_string(), &&token_hash[..], &encode(key)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_keys(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ApiKey>> {
        let client = self.client().await?;
        page_of(
            &client,
            "SELECT body FROM api_keys WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&tenant.to_string()],
            after,
            limit,
            |k: &ApiKey| k.id.to_string(),
        )
        .await
    }

    /// Revokes a key: it stops authenticating at once. Returns whether it
    /// existed.
    pub async fn delete_key(&self, tenant: &TenantId, id: &KeyId) -> Result<bool> {
        let client = self.client().await?;
        let deleted = exec(
            &client,
            "DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2",
            &[&tenant.to_string(), &id.to_string()],
        )
        .await?;
        Ok(deleted > 0)
    }

    /// The key whose token hashes to `hash`, if any.
    pub async fn key_by_token_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        let client = self.client().await?;
        row(
            &client,
            "SELECT body FROM api_keys WHERE token_hash = $1",
            &[&&hash[..]],
        )
        .await?
        .map(|r| body(&r, 0))
        .transpose()
    }
}
