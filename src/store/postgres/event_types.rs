//! The per-tenant event type catalog.

use super::{PgStore, body, exec, page_of, row, rows};
use crate::model::event_type::EventType;
use crate::model::ids::TenantId;
use crate::store::{Page, Result, StoreError, encode};

impl PgStore {
    /// Adds a type to the catalog; `Conflict` if the name is taken.
    pub async fn create_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()> {
        let id = tenant.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let tenant_row = "SELECT 1 FROM tenants WHERE id = $1 FOR KEY SHARE";
        if row(&tx, tenant_row, &[&id]).await?.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        let created = exec(
            &tx,
            "INSERT INTO event_types (tenant_id, name, body) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, name) DO NOTHING",
            &[&id, &et.name, &encode(et)],
        )
        .await?;
        if created == 0 {
            return Err(StoreError::Conflict(format!(
                "event type '{}' already exists",
                et.name
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>> {
        let client = self.client().await?;
        row(
            &client,
            "SELECT body FROM event_types WHERE tenant_id = $1 AND name = $2",
            &[&tenant.to_string(), &name],
        )
        .await?
        .map(|r| body(&r, 0))
        .transpose()
    }

    /// Lists the catalog in name order.
    pub async fn list_event_types(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<EventType>> {
        let client = self.client().await?;
        page_of(
            &client,
            "SELECT body FROM event_types WHERE tenant_id = $1 AND name > $2
             ORDER BY name LIMIT $3",
            &[&tenant.to_string()],
            after,
            limit,
            |et: &EventType| et.name.clone(),
        )
        .await
    }

    /// Every type name in the catalog, for validating subscriptions.
    pub async fn event_type_names(&self, tenant: &TenantId) -> Result<Vec<String>> {
        let client = self.client().await?;
        let names = rows(
            &client,
            "SELECT name FROM event_types WHERE tenant_id = $1 ORDER BY name",
            &[&tenant.to_string()],
        )
        .await?;
        Ok(names.iter().map(|r| r.get(0)).collect())
    }

    /// Replaces a stored type; `NotFound` if it does not exist.
    pub async fn update_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()> {
        let client = self.client().await?;
        let updated = exec(
            &client,
            "UPDATE event_types SET body = $3 WHERE tenant_id = $1 AND name = $2",
            &[&tenant.to_string(), &et.name, &encode(et)],
        )
        .await?;
        match updated {
            0 => Err(StoreError::NotFound("event type")),
            _ => Ok(()),
        }
    }

    /// Deletes a type unless an endpoint subscribes to it by name
    /// (`Conflict`, naming them).
    pub async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<bool> {
        let id = tenant.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Lock 1 (locks.rs), exclusive: an endpoint write subscribing to it
        // either committed before (and is seen below) or waits, then finds
        // it gone.
        row(
            &tx,
            "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
        let users: Vec<String> = rows(
            &tx,
            "SELECT id FROM endpoints WHERE tenant_id = $1 AND $2 = ANY(events) ORDER BY id",
            &[&id, &name],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "event type '{name}' is subscribed by {}; remove it from them first",
                users.join(", ")
            )));
        }
        let deleted = exec(
            &tx,
            "DELETE FROM event_types WHERE tenant_id = $1 AND name = $2",
            &[&id, &name],
        )
        .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }
}
