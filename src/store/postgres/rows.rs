//! Writing delivery rows and queue entries: shared by the deliveries, the
//! events that fan out to them and the FIFO lines that move them.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{body, exec, id, row};
use crate::model::delivery::Delivery;
use crate::model::ids::{DeliveryId, EndpointId, TenantId};
use crate::store::rows::queue_key;
use crate::store::{QueueEntry, QueueKey, Result, encode};

/// The columns of a delivery row after its key, in this order.
pub(super) const COLUMNS: &str =
    "event_id, event_type, status, test, created_at, next_retry, line_position, body";

/// Stores new `deliveries` of `tenant`, each at its line position if it is
/// in a line.
pub(super) async fn insert_all<C: GenericClient>(
    tx: &C,
    tenant: &TenantId,
    deliveries: &[Delivery],
    positions: &[Option<i64>],
) -> Result<()> {
    let text = |f: fn(&Delivery) -> String| deliveries.iter().map(f).collect::<Vec<_>>();
    let endpoints = text(|d| d.endpoint_id.to_string());
    let ids = text(|d| d.id.to_string());
    let event_ids = text(|d| d.event_id.clone());
    let event_types = text(|d| d.event_type.clone());
    let statuses = text(|d| d.status.as_str().to_string());
    let tests: Vec<bool> = deliveries.iter().map(|d| d.test).collect();
    let created: Vec<DateTime<Utc>> = deliveries.iter().map(|d| d.created_at).collect();
    let next: Vec<Option<DateTime<Utc>>> = deliveries.iter().map(|d| d.next_retry).collect();
    let bodies: Vec<Vec<u8>> = deliveries.iter().map(encode).collect();
    let sql = format!(
        "INSERT INTO deliveries (tenant_id, endpoint_id, id, {COLUMNS})
         SELECT $1::text, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
             $7::bool[], $8::timestamptz[], $9::timestamptz[], $10::int8[], $11::bytea[])"
    );
    exec(
        tx,
        &sql,
        &[
            &tenant.to_string(),
            &endpoints,
            &ids,
            &event_ids,
            &event_types,
            &statuses,
            &tests,
            &created,
            &next,
            &positions,
            &bodies,
        ],
    )
    .await?;
    Ok(())
}

/// Writes the queue entry of each of `deliveries` that has a `next_retry`.
pub(super) async fn enqueue_all<'a, C: GenericClient>(
    tx: &C,
    tenant: &TenantId,
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> Result<()> {
    let (mut keys, mut endpoints, mut ids, mut fifo) = (vec![], vec![], vec![], vec![]);
    for d in deliveries {
        if let Some(due) = d.next_retry {
            keys.push(queue_key(due.timestamp_millis(), &d.id));
            endpoints.push(d.endpoint_id.to_string());
            ids.push(d.id.to_string());
            fifo.push(d.fifo);
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    exec(
        tx,
        "INSERT INTO queue (key, tenant_id, endpoint_id, delivery_id, fifo)
         SELECT k, $1::text, e, d, f FROM unnest($2::bytea[], $3::text[], $4::text[], $5::bool[])
             AS u(k, e, d, f)
         ON CONFLICT (key) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,
             endpoint_id = EXCLUDED.endpoint_id, delivery_id = EXCLUDED.delivery_id,
             fifo = EXCLUDED.fifo",
        &[&tenant.to_string(), &keys, &endpoints, &ids, &fifo],
    )
    .await?;
    Ok(())
}

/// Writes `entry` at `key`.
pub(super) async fn enqueue<C: GenericClient>(
    tx: &C,
    key: &[u8],
    entry: &QueueEntry,
) -> Result<()> {
    exec(
        tx,
        "INSERT INTO queue (key, tenant_id, endpoint_id, delivery_id, fifo)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (key) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,
             endpoint_id = EXCLUDED.endpoint_id, delivery_id = EXCLUDED.delivery_id,
             fifo = EXCLUDED.fifo",
        &[
            &key,
            &entry.tenant.to_string(),
            &entry.endpoint.to_string(),
            &entry.delivery.to_string(),
            &entry.fifo,
        ],
    )
    .await?;
    Ok(())
}

/// Writes a stored delivery back, at `position` in its line (`None`: in
/// none).
pub(super) async fn update<C: GenericClient>(
    tx: &C,
    tenant: &TenantId,
    d: &Delivery,
    position: Option<i64>,
) -> Result<()> {
    exec(
        tx,
        "UPDATE deliveries SET event_id = $4, event_type = $5, status = $6, test = $7,
             created_at = $8, next_retry = $9, line_position = $10, body = $11
         WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3",
        &[
            &tenant.to_string(),
            &d.endpoint_id.to_string(),
            &d.id.to_string(),
            &d.event_id,
            &d.event_type,
            &d.status.as_str(),
            &d.test,
            &d.created_at,
            &d.next_retry,
            &position,
            &encode(d),
        ],
    )
    .await?;
    Ok(())
}

/// A delivery and its line position, locked until the transaction ends.
pub(super) async fn locked<C: GenericClient>(
    tx: &C,
    tenant: &TenantId,
    endpoint: &EndpointId,
    id: &DeliveryId,
) -> Result<Option<(Delivery, Option<i64>)>> {
    let found = row(
        tx,
        "SELECT body, line_position FROM deliveries
         WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3 FOR UPDATE",
        &[&tenant.to_string(), &endpoint.to_string(), &id.to_string()],
    )
    .await?;
    found.map(|r| Ok((body(&r, 0)?, r.try_get(1)?))).transpose()
}

/// A queue row as its key and entry.
pub(super) fn entry_of(r: &Row) -> Result<(QueueKey, QueueEntry)> {
    let key = QueueKey::from_bytes(r.try_get(0)?);
    let entry = QueueEntry {
        tenant: id(r, 1)?,
        endpoint: id(r, 2)?,
        delivery: id(r, 3)?,
        fifo: r.try_get(4)?,
    };
    Ok((key, entry))
}
