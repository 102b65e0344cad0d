//! FIFO lines as rows: a delivery in its endpoint's line has a
//! `line_position`, given in the order deliveries join; the line's head is
//! the one with the lowest.
//!
//! Same invariant as the embedded store's (`store/lines.rs`): only the
//! head is queued (it has a `next_retry` and an entry, retried in place as
//! any delivery); the others wait with neither. The transaction that ends
//! the head takes it out of the line and queues the next, due at once. A
//! waiting delivery that a person delivered by hand stays in the line and
//! is passed over when its turn comes. Every change to a line holds its
//! lock (lock 3 in locks.rs), so each line has one head however many
//! gateways share the database.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::rows::{enqueue, update};
use super::{body, rows};
use crate::model::delivery::{Delivery, DeliveryStatus};
use crate::model::ids::TenantId;
use crate::store::rows::queue_key;
use crate::store::{QueueEntry, Result};

/// Waiting deliveries read at once when looking for the next turn.
const TURN_BATCH: i64 = 32;

/// Whether `delivery`, being stored, joins its endpoint's line.
pub(super) fn joins(delivery: &Delivery) -> bool {
    delivery.fifo && delivery.next_retry.is_some()
}

/// Places each of `deliveries` (new, or ended and queued again, with its
/// `next_retry` set) that [`joins`] at the end of its endpoint's line: at
/// the front of an empty line it is the head and stays queued; behind
/// others it waits, its `next_retry` cleared. Returns each delivery's line
/// position; the caller writes them, holding their lines' locks.
pub(super) async fn join<C: GenericClient>(
    tx: &C,
    tenant: &TenantId,
    deliveries: &mut [Delivery],
) -> Result<Vec<Option<i64>>> {
    let mut positions = vec![None; deliveries.len()];
    let mut endpoints: Vec<String> = deliveries
        .iter()
        .filter(|d| joins(d))
        .map(|d| d.endpoint_id.to_string())
        .collect();
    if endpoints.is_empty() {
        return Ok(positions);
    }
    endpoints.sort_unstable();
    endpoints.dedup();
    let mut last: HashMap<String, i64> = rows(
        tx,
        "SELECT endpoint_id, max(line_position) FROM deliveries
         WHERE tenant_id = $1 AND endpoint_id = ANY($2) AND line_position IS NOT NULL
         GROUP BY endpoint_id",
        &[&tenant.to_string(), &endpoints],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    for (d, position) in deliveries.iter_mut().zip(&mut positions) {
        if !joins(d) {
            continue;
        }
        match last.get_mut(&d.endpoint_id.to_string()) {
            Some(tail) => {
                *tail += 1;
                *position = Some(*tail);
                d.next_retry = None;
            }
            None => {
                last.insert(d.endpoint_id.to_string(), 1);
                *position = Some(1);
            }
        }
    }
    Ok(positions)
}

/// Takes `delivery`, which has just ended, out of its line, clearing its
/// `fifo` mark (the caller writes it, with no position), and queues the
/// next delivery still waiting, due at `now`. Returns when that one is due,
/// if one was queued. A delivery that is not its line's head only leaves
/// it: the others keep their places and their turns.
pub(super) async fn leave<C: GenericClient>(
    tx: &C,
    tenant: &TenantId,
    delivery: &mut Delivery,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    delivery.fifo = false;
    let (t, e, id) = (
        tenant.to_string(),
        delivery.endpoint_id.to_string(),
        delivery.id.to_string(),
    );
    let head = rows(
        tx,
        "SELECT id FROM deliveries
         WHERE tenant_id = $1 AND endpoint_id = $2 AND line_position IS NOT NULL
         ORDER BY line_position LIMIT 1",
        &[&t, &e],
    )
    .await?;
    if head.first().map(|r| r.get::<_, &str>(0)) != Some(id.as_str()) {
        return Ok(None);
    }
    loop {
        let waiting = rows(
            tx,
            "SELECT body, line_position FROM deliveries
             WHERE tenant_id = $1 AND endpoint_id = $2 AND line_position IS NOT NULL
                 AND id <> $3
             ORDER BY line_position LIMIT $4 FOR UPDATE",
            &[&t, &e, &id, &TURN_BATCH],
        )
        .await?;
        if waiting.is_empty() {
            return Ok(None);
        }
        for r in &waiting {
            let mut next: Delivery = body(r, 0)?;
            if next.next_retry.is_some() {
                // Queued already (by a path outside the line): it heads
                // the line where it is.
                return Ok(None);
            }
            if next.status != DeliveryStatus::Delivered {
                next.next_retry = Some(now);
                let due = now.timestamp_millis();
                let entry = QueueEntry::of(*tenant, &next);
                enqueue(tx, &queue_key(due, &next.id), &entry).await?;
                update(tx, tenant, &next, r.try_get(1)?).await?;
                return Ok(Some(due));
            }
            // Delivered by hand while it waited: passed over.
            next.fifo = false;
            update(tx, tenant, &next, None).await?;
        }
    }
}
