//! Endpoints, with what each refers to in columns of its own: the event
//! types it subscribes to by name and the plugins of its chain.

use std::collections::HashSet;
use std::sync::Arc;

use deadpool_postgres::GenericClient;

use super::{PgStore, body, exec, locks, page_of, row, rows};
use crate::model::endpoint::Endpoint;
use crate::model::event_type::EventFilter;
use crate::model::ids::{EndpointId, TenantId};
use crate::store::{EndpointChange, Page, Result, StoreError, TenantEndpoints, encode};

/// Event types `new` subscribes to by exact name that `old` did not.
fn new_event_types<'a>(old: Option<&Endpoint>, new: &'a Endpoint) -> Vec<&'a str> {
    new.events
        .iter()
        .filter(|name| !old.is_some_and(|o| o.events.contains(name)))
        .filter(|name| matches!(EventFilter::parse(name), Ok(EventFilter::Exact(_))))
        .map(String::as_str)
        .collect()
}

/// Plugins in the chain of `new` that were not in that of `old`.
fn new_plugins(old: Option<&Endpoint>, new: &Endpoint) -> Vec<String> {
    new.plugins
        .iter()
        .filter(|step| {
            !old.is_some_and(|o| o.plugins.iter().any(|p| p.plugin_id == step.plugin_id))
        })
        .map(|step| step.plugin_id.to_string())
        .collect()
}

/// Checks that what `new` refers to and `old` did not still exists: each
/// event type it subscribes to by exact name and each plugin of its chain.
/// Call holding lock 1 (locks.rs), shared.
async fn check_references<C: GenericClient>(
    tx: &C,
    old: Option<&Endpoint>,
    new: &Endpoint,
) -> Result<()> {
    let tenant = new.tenant_id.to_string();
    let names = new_event_types(old, new);
    if !names.is_empty() {
        let known: HashSet<String> = rows(
            tx,
            "SELECT name FROM event_types WHERE tenant_id = $1 AND name = ANY($2)",
            &[&tenant, &names],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        if let Some(name) = names.iter().find(|n| !known.contains(**n)) {
            return Err(StoreError::Conflict(format!(
                "event type '{name}' was deleted meanwhile"
            )));
        }
    }
    let plugins = new_plugins(old, new);
    if !plugins.is_empty() {
        let known: HashSet<String> = rows(
            tx,
            "SELECT id FROM plugins WHERE tenant_id = $1 AND id = ANY($2)",
            &[&tenant, &plugins],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        if let Some(id) = plugins.iter().find(|id| !known.contains(*id)) {
            return Err(StoreError::Conflict(format!(
                "plugin {id} was deleted meanwhile"
            )));
        }
    }
    Ok(())
}

/// The reference columns of `endpoint`: its subscriptions and its chain.
fn references(endpoint: &Endpoint) -> (Vec<String>, Vec<String>) {
    let plugins = endpoint.plugins.iter().map(|p| p.plugin_id.to_string());
    (endpoint.events.clone(), plugins.collect())
}

impl PgStore {
    /// Stores a new endpoint; fails if its tenant is gone, or an event type
    /// or plugin it refers to was deleted meanwhile.
    pub async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let tenant = endpoint.tenant_id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Lock 1 (locks.rs), shared, across the check and the write.
        let tenant_row = "SELECT 1 FROM tenants WHERE id = $1 FOR KEY SHARE";
        let found = row(&tx, tenant_row, &[&tenant]).await?.is_some();
        check_references(&tx, None, endpoint).await?;
        if !found {
            return Err(StoreError::NotFound("tenant"));
        }
        let (events, plugins) = references(endpoint);
        exec(
            &tx,
            "INSERT INTO endpoints (tenant_id, id, events, plugin_ids, body)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, id) DO UPDATE SET events = EXCLUDED.events,
                 plugin_ids = EXCLUDED.plugin_ids, body = EXCLUDED.body",
            &[
                &tenant,
                &endpoint.id.to_string(),
                &events,
                &plugins,
                &encode(endpoint),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>> {
        let client = self.client().await?;
        row(
            &client,
            "SELECT body FROM endpoints WHERE tenant_id = $1 AND id = $2",
            &[&tenant.to_string(), &id.to_string()],
        )
        .await?
        .map(|r| body(&r, 0))
        .transpose()
    }

    /// Lists a tenant's endpoints, oldest first.
    pub async fn list_endpoints(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Endpoint>> {
        let client = self.client().await?;
        page_of(
            &client,
            "SELECT body FROM endpoints WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&tenant.to_string()],
            after,
            limit,
            |e: &Endpoint| e.id.to_string(),
        )
        .await
    }

    /// Every endpoint of a tenant, by id.
    pub async fn tenant_endpoints(&self, tenant: &TenantId) -> Result<TenantEndpoints> {
        let client = self.client().await?;
        rows(
            &client,
            "SELECT body FROM endpoints WHERE tenant_id = $1 ORDER BY id",
            &[&tenant.to_string()],
        )
        .await?
        .iter()
        .map(|r| {
            let endpoint: Endpoint = body(r, 0)?;
            Ok((endpoint.id, Arc::new(endpoint)))
        })
        .collect()
    }

    /// Applies `change` to the stored endpoint atomically, under its row's
    /// lock, and returns the result; `change` may refuse. It runs again,
    /// under lock 1 (locks.rs) as well, when it adds a reference, which is
    /// checked then: the bookkeeping of attempts never takes the tenant's
    /// lock.
    pub async fn change_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: EndpointChange<'_>,
    ) -> Result<Endpoint> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        let mut client = self.client().await?;
        let mut checked = false;
        loop {
            let tx = client.transaction().await?;
            if checked {
                let tenant_row = "SELECT 1 FROM tenants WHERE id = $1 FOR KEY SHARE";
                row(&tx, tenant_row, &[&tenant]).await?;
            }
            let current = row(
                &tx,
                "SELECT body FROM endpoints WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                &[&tenant, &id],
            )
            .await?
            .ok_or(StoreError::NotFound("endpoint"))?;
            let old: Endpoint = body(&current, 0)?;
            let mut endpoint = old.clone();
            change(&mut endpoint)?;
            let refers_anew = !new_event_types(Some(&old), &endpoint).is_empty()
                || !new_plugins(Some(&old), &endpoint).is_empty();
            if refers_anew && !checked {
                // The tenant's lock comes before the endpoint's row.
                tx.rollback().await?;
                checked = true;
                continue;
            }
            if refers_anew {
                check_references(&tx, Some(&old), &endpoint).await?;
            }
            let (events, plugins) = references(&endpoint);
            exec(
                &tx,
                "UPDATE endpoints SET events = $3, plugin_ids = $4, body = $5
                 WHERE tenant_id = $1 AND id = $2",
                &[&tenant, &id, &events, &plugins, &encode(&endpoint)],
            )
            .await?;
            tx.commit().await?;
            return Ok(endpoint);
        }
    }

    /// Deletes an endpoint with its log, its line and every scheduled
    /// attempt, so nothing more is sent to it. Returns whether it existed.
    pub async fn delete_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<bool> {
        let (t, e) = (tenant.to_string(), id.to_string());
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        locks::lines(&tx, tenant, [*id]).await?;
        let existed = exec(
            &tx,
            "DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2",
            &[&t, &e],
        )
        .await?
            > 0;
        if existed {
            // Deliveries first (lock 5): an attempt ending meanwhile has
            // moved its entry by the time the second statement looks.
            for sql in [
                "DELETE FROM deliveries WHERE tenant_id = $1 AND endpoint_id = $2",
                "DELETE FROM queue WHERE tenant_id = $1 AND endpoint_id = $2",
            ] {
                exec(&tx, sql, &[&t, &e]).await?;
            }
        }
        tx.commit().await?;
        Ok(existed)
    }
}
