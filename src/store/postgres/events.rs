//! Published events, their idempotency keys and their fan-out.
//!
//! A publish writes the event, its idempotency key, every delivery and
//! their queue entries in one transaction, however many deliveries there
//! are: the embedded store's chunked fan-out and its marker guard sled's
//! memory, which a database server does not share, so a crash leaves a
//! publish whole or absent. An event's deliveries are its rows in
//! `deliveries` (test sends aside), in id order, which is the order they
//! were made.

use deadpool_postgres::GenericClient;

use super::rows::{enqueue_all, insert_all};
use super::{PgStore, body, exec, id, lines, locks, row, rows};
use crate::model::delivery::Delivery;
use crate::model::event::Event;
use crate::model::ids::{DeliveryId, EndpointId, TenantId};
use crate::store::events::reserve_fan_out;
use crate::store::{FANOUT_CHUNK, FanOutPermit, PublishOutcome, Result, StoreError, encode};

/// The event an idempotency key of `tenant` names, if any.
async fn event_by_key<C: GenericClient>(
    client: &C,
    tenant: &str,
    key: &str,
) -> Result<Option<Event>> {
    row(
        client,
        "SELECT e.body FROM idempotency_keys i
         JOIN events e ON e.tenant_id = i.tenant_id AND e.id = i.event_id
         WHERE i.tenant_id = $1 AND i.key = $2",
        &[&tenant, &key],
    )
    .await?
    .map(|r| body(&r, 0))
    .transpose()
}

async fn event_by_id<C: GenericClient>(
    client: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<Event>> {
    row(
        client,
        "SELECT body FROM events WHERE tenant_id = $1 AND id = $2",
        &[&tenant, &id],
    )
    .await?
    .map(|r| body(&r, 0))
    .transpose()
}

/// The first event, found after losing a race for its id or key to a
/// publish that committed meanwhile.
fn first(found: Option<Event>) -> Result<PublishOutcome> {
    found.map(PublishOutcome::Duplicate).ok_or_else(|| {
        StoreError::Conflict("the event was published and removed meanwhile; publish again".into())
    })
}

/// Writes `deliveries` of one tenant with their queue entries, each FIFO
/// one joining its endpoint's line (whose lock the caller holds). Returns
/// when the first queued is due (ms), if any is.
async fn store_deliveries<C: GenericClient>(
    tx: &C,
    tenant: &TenantId,
    mut deliveries: Vec<Delivery>,
) -> Result<Option<i64>> {
    let positions = lines::join(tx, tenant, &mut deliveries).await?;
    for (chunk, positions) in deliveries
        .chunks(FANOUT_CHUNK)
        .zip(positions.chunks(FANOUT_CHUNK))
    {
        insert_all(tx, tenant, chunk, positions).await?;
        enqueue_all(tx, tenant, chunk.iter()).await?;
    }
    Ok(deliveries
        .iter()
        .filter_map(|d| d.next_retry)
        .map(|due| due.timestamp_millis())
        .min())
}

/// The endpoints whose lines `deliveries` join.
fn joining(deliveries: &[Delivery]) -> impl Iterator<Item = EndpointId> + '_ {
    deliveries
        .iter()
        .filter(|d| lines::joins(d))
        .map(|d| d.endpoint_id)
}

impl PgStore {
    /// Stores an event with its deliveries, queuing those with a
    /// `next_retry`, unless its id or idempotency key already exists. One
    /// transaction; durable when it returns.
    pub async fn publish_reserved(
        &self,
        event: Event,
        deliveries: Vec<Delivery>,
        idempotency_key: Option<&str>,
        reserved: Option<FanOutPermit>,
    ) -> Result<PublishOutcome> {
        let _budget = match reserved {
            Some(permit) => Some(permit),
            // Nothing reserved, or endpoints added since the reservation
            // made it a fan-out.
            None => reserve_fan_out(&self.fanout_budget, deliveries.len()).await,
        };
        let tenant = event.tenant_id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Locks 2 and 3 (locks.rs) before any row.
        locks::lines(&tx, &event.tenant_id, joining(&deliveries)).await?;
        if let Some(key) = idempotency_key
            && let Some(earlier) = event_by_key(&tx, &tenant, key).await?
        {
            return Ok(PublishOutcome::Duplicate(earlier));
        }
        let created = exec(
            &tx,
            "INSERT INTO events (tenant_id, id, created_at, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, id) DO NOTHING",
            &[&tenant, &event.id, &event.created_at, &encode(&event)],
        )
        .await?;
        if created == 0 {
            return first(event_by_id(&tx, &tenant, &event.id).await?);
        }
        if let Some(key) = idempotency_key {
            let claimed = exec(
                &tx,
                "INSERT INTO idempotency_keys (tenant_id, key, event_id) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, key) DO NOTHING",
                &[&tenant, &key, &event.id],
            )
            .await?;
            if claimed == 0 {
                // A publish with the same key committed after the check
                // above: it was first, and this one stores nothing.
                tx.rollback().await?;
                return first(event_by_key(&client, &tenant, key).await?);
            }
        }
        let due = store_deliveries(&tx, &event.tenant_id, deliveries).await?;
        if let Some(due) = due {
            self.cluster.notify(&tx, due).await?;
        }
        tx.commit().await?;
        if let Some(due) = due {
            self.queued_since.note(due);
        }
        Ok(PublishOutcome::Created(event))
    }

    pub async fn get_event(&self, tenant: &TenantId, id: &str) -> Result<Option<Event>> {
        let client = self.client().await?;
        event_by_id(&client, &tenant.to_string(), id).await
    }

    /// The `(endpoint, delivery)` pairs an event was fanned out to.
    pub async fn event_deliveries(
        &self,
        tenant: &TenantId,
        event: &str,
    ) -> Result<Vec<(EndpointId, DeliveryId)>> {
        let client = self.client().await?;
        rows(
            &client,
            "SELECT endpoint_id, id FROM deliveries
             WHERE tenant_id = $1 AND event_id = $2 AND NOT test ORDER BY id",
            &[&tenant.to_string(), &event],
        )
        .await?
        .iter()
        .map(|r| Ok((id(r, 0)?, id(r, 1)?)))
        .collect()
    }

    /// Adds `deliveries` (new ones, at most [`FANOUT_CHUNK`]) to a stored
    /// event, with their queue entries, all or nothing. `NotFound` if the
    /// event is gone. Durable when it returns.
    pub async fn add_deliveries(
        &self,
        tenant: &TenantId,
        event: &str,
        deliveries: &[Delivery],
    ) -> Result<()> {
        if deliveries.len() > FANOUT_CHUNK {
            return Err(StoreError::LimitReached(format!(
                "at most {FANOUT_CHUNK} deliveries at once"
            )));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        locks::lines(&tx, tenant, joining(deliveries)).await?;
        // Held until the commit: retention waits, or passes the event over.
        let stored = row(
            &tx,
            "SELECT 1 FROM events WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE",
            &[&tenant.to_string(), &event],
        )
        .await?;
        if stored.is_none() {
            return Err(StoreError::NotFound("event"));
        }
        let due = store_deliveries(&tx, tenant, deliveries.to_vec()).await?;
        if let Some(due) = due {
            self.cluster.notify(&tx, due).await?;
        }
        tx.commit().await?;
        if let Some(due) = due {
            self.queued_since.note(due);
        }
        Ok(())
    }

    /// Stores an event made for a test send, with no fan-out.
    pub async fn put_event(&self, event: &Event) -> Result<()> {
        let client = self.client().await?;
        exec(
            &client,
            "INSERT INTO events (tenant_id, id, created_at, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, id)
             DO UPDATE SET created_at = EXCLUDED.created_at, body = EXCLUDED.body",
            &[
                &event.tenant_id.to_string(),
                &event.id,
                &event.created_at,
                &encode(event),
            ],
        )
        .await?;
        Ok(())
    }
}
