//! Delivery logs and the durable queue of attempts.
//!
//! - `deliveries`: one row per delivery, keyed `(tenant, endpoint, id)` so
//!   an endpoint's log lists newest first down its primary key.
//! - `queue`: one row per scheduled attempt, keyed by the embedded store's
//!   24-byte queue key (due time, then delivery), so a [`QueueKey`] means
//!   the same position on either backend and due work is the front of the
//!   key order.
//!
//! Invariant, as on sled: a delivery with `next_retry` set has exactly one
//! entry, keyed by that time; one without has none; every change to a
//! delivery's schedule moves its entry in the same transaction. An entry
//! stays while its attempt runs (the dispatcher keeps the taken keys in
//! memory), so an attempt cut off by a crash is made again.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::rows::{COLUMNS, enqueue, enqueue_all, entry_of, locked, update};
use super::{PgStore, body, exec, lines, locks, page, page_limit, row, rows};
use crate::model::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::model::ids::{DeliveryId, EndpointId, TenantId};
use crate::store::deliveries::QueuedSince;
use crate::store::rows::queue_key;
use crate::store::{
    DeliveryChange, DeliveryFilter, DueScan, Page, QueueEntry, QueueKey, Result, encode,
};

/// Deliveries removed by one statement of retention, so no transaction
/// holds many rows at once.
const PRUNE_CHUNK: i64 = 10_000;

impl PgStore {
    /// Up to `limit` queue entries due at `now_ms`, oldest first, starting
    /// after the key `after` (from the front when `None`), each claimed for
    /// this gateway under a lease (`cluster.rs`): entries another gateway
    /// holds are left out, and this gateway's own are returned again, as on
    /// a queue of its own. Entries of the `passed` endpoints are left out
    /// too, neither claimed nor counted against `limit`.
    pub async fn due(
        &self,
        after: Option<&QueueKey>,
        now_ms: u64,
        limit: usize,
        passed: &[EndpointId],
    ) -> Result<DueScan> {
        if let Some(from) = self.cluster.claims_wait(now_ms) {
            return Ok(DueScan {
                entries: Vec::new(),
                next_due_ms: Some(from),
                caught_up: true,
            });
        }
        let client = self.client().await?;
        // Every key sorts after the empty one; every entry due by `now_ms`
        // sorts before `bound`.
        let after: &[u8] = after.map_or(&[], QueueKey::bytes);
        let bound = QueueKey::before(now_ms.saturating_add(1));
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX);
        let passed: Vec<String> = passed.iter().map(ToString::to_string).collect();
        // An entry this gateway holds with more than half its lease left is
        // returned without a new lease (the heartbeat renews it): a scan
        // passes over the entries it holds again and again, and each
        // renewal would be a new row version.
        let claimed = rows(
            &client,
            "WITH due AS (
                 SELECT key, tenant_id, endpoint_id, delivery_id, fifo,
                     leased_by IS NOT NULL AND leased_by = $3
                         AND leased_until > now() + $5::float8 / 2 * interval '1 millisecond'
                         AS kept
                 FROM queue
                 WHERE key > $1 AND key < $2
                     AND (leased_by IS NULL OR leased_by = $3 OR leased_until < now())
                     AND NOT (endpoint_id = ANY($6))
                 ORDER BY key LIMIT $4
                 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE queue q
                 SET leased_by = $3, leased_until = now() + $5::float8 * interval '1 millisecond'
                 FROM due WHERE q.key = due.key AND NOT due.kept)
             SELECT key, tenant_id, endpoint_id, delivery_id, fifo FROM due",
            &[
                &after,
                &bound.bytes(),
                &self.cluster.id,
                &fetch,
                &self.cluster.lease_ms(),
                &passed,
            ],
        )
        .await?;
        let mut entries = claimed
            .iter()
            .map(entry_of)
            .collect::<Result<Vec<(QueueKey, QueueEntry)>>>()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let caught_up = entries.len() < limit;
        let mut next_due_ms = None;
        if caught_up {
            let next = row(
                &client,
                "SELECT key FROM queue WHERE key > $1 ORDER BY key LIMIT 1",
                &[&bound.bytes()],
            )
            .await?;
            if let Some(next) = next {
                next_due_ms = Some(QueueKey::from_bytes(next.try_get(0)?).due_ms());
            }
        }
        Ok(DueScan {
            entries,
            next_due_ms,
            caught_up,
        })
    }

    /// Entries waiting in the queue (counted: for start-up).
    pub async fn queue_len(&self) -> Result<usize> {
        let client = self.client().await?;
        let count = row(&client, "SELECT count(*) FROM queue", &[]).await?;
        let count: i64 = count.map_or(Ok(0), |r| r.try_get(0))?;
        Ok(count as usize)
    }

    /// Ends an attempt (see [`finish_one`]); attempts not in a FIFO line
    /// are grouped with others ending at the same time, several to one
    /// transaction (`finish.rs`).
    pub async fn finish_attempt(
        &self,
        key: &QueueKey,
        entry: &QueueEntry,
        change: DeliveryChange,
    ) -> Result<Option<Delivery>> {
        if entry.fifo {
            return finish_one(&self.pool, &self.queued_since, key, entry, &change).await;
        }
        let finisher = self.finisher.get_or_init(|| {
            super::finish::Finisher::spawn(self.pool.clone(), self.queued_since.clone())
        });
        finisher.finish(key, entry, change).await
    }

    pub async fn get_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>> {
        let client = self.client().await?;
        row(
            &client,
            "SELECT body FROM deliveries WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3",
            &[&tenant.to_string(), &endpoint.to_string(), &id.to_string()],
        )
        .await?
        .map(|r| body(&r, 0))
        .transpose()
    }

    /// Records an attempt a person asked for. On success a scheduled retry
    /// is cancelled (its queue entry removed) and a line's head gives the
    /// next its turn, in the same transaction; on failure the schedule goes
    /// on as it was. Returns the updated delivery and whether an entry was
    /// removed.
    pub async fn record_manual_attempt(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        attempt: &Attempt,
    ) -> Result<Option<(Delivery, bool)>> {
        let now = crate::time::now();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        locks::lines(&tx, tenant, [*endpoint]).await?;
        let Some((mut delivery, mut position)) = locked(&tx, tenant, endpoint, id).await? else {
            return Ok(None);
        };
        let scheduled = delivery.next_retry;
        delivery.record(attempt.clone());
        let (mut unqueued, mut promoted) = (false, None);
        if attempt.success {
            if let Some(next) = scheduled {
                let key = queue_key(next.timestamp_millis(), id);
                unqueued = exec(&tx, "DELETE FROM queue WHERE key = $1", &[&key]).await? > 0;
                // A line's head, delivered: the next one's turn. One still
                // waiting is passed over when its turn comes.
                if delivery.fifo {
                    position = None;
                    promoted = lines::leave(&tx, tenant, &mut delivery, now).await?;
                }
            }
            delivery.next_retry = None;
        } else {
            delivery.next_retry = scheduled;
        }
        update(&tx, tenant, &delivery, position).await?;
        tx.commit().await?;
        if let Some(due) = promoted {
            self.queued_since.note(due);
        }
        Ok(Some((delivery, unqueued)))
    }

    /// Records an outcome reached without an HTTP attempt (a plugin dropped
    /// or failed on a manual retry); the schedule is left as it was.
    pub async fn settle_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        status: DeliveryStatus,
        reason: &str,
    ) -> Result<Option<Delivery>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some((mut delivery, position)) = locked(&tx, tenant, endpoint, id).await? else {
            return Ok(None);
        };
        delivery.status = status;
        delivery.error = Some(reason.to_string());
        delivery.updated_at = crate::time::now();
        update(&tx, tenant, &delivery, position).await?;
        tx.commit().await?;
        Ok(Some(delivery))
    }

    /// Queues again, due at `now`, every delivery of the endpoint that ended
    /// `failed` (no attempt left) between `since` and `until`, test sends
    /// aside, each with its entry, or, when `fifo`, at the end of the
    /// endpoint's line, oldest first. One transaction; returns how many.
    pub async fn recover_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        window: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
        fifo: bool,
    ) -> Result<usize> {
        let (since, until) = window;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The line's lock even when not joining it: tenant deletion holds
        // every line, so it never meets these rows half locked.
        locks::lines(&tx, tenant, [*endpoint]).await?;
        let candidates = rows(
            &tx,
            "SELECT body FROM deliveries
             WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'failed'
                 AND next_retry IS NULL AND line_position IS NULL AND NOT test
             ORDER BY id FOR UPDATE",
            &[&tenant.to_string(), &endpoint.to_string()],
        )
        .await?;
        let mut recovered = Vec::new();
        for r in &candidates {
            let mut d: Delivery = body(r, 0)?;
            let ended = d.status == DeliveryStatus::Failed
                && d.next_retry.is_none()
                && !d.fifo
                && !d.test
                && (since..=until).contains(&d.updated_at);
            if ended {
                d.next_retry = Some(now);
                d.updated_at = now;
                d.fifo = fifo;
                recovered.push(d);
            }
        }
        let positions = lines::join(&tx, tenant, &mut recovered).await?;
        for (d, position) in recovered.iter().zip(positions) {
            update(&tx, tenant, d, position).await?;
        }
        enqueue_all(&tx, tenant, recovered.iter()).await?;
        if !recovered.is_empty() {
            self.cluster.notify(&tx, now.timestamp_millis()).await?;
        }
        tx.commit().await?;
        if !recovered.is_empty() {
            self.queued_since.note(now.timestamp_millis());
        }
        Ok(recovered.len())
    }

    /// Stores a delivery that is not queued (a test send's log entry).
    pub async fn insert_delivery(&self, tenant: &TenantId, d: &Delivery) -> Result<()> {
        let client = self.client().await?;
        let sql = format!(
            "INSERT INTO deliveries (tenant_id, endpoint_id, id, {COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)
             ON CONFLICT (tenant_id, endpoint_id, id) DO UPDATE SET
                 event_id = EXCLUDED.event_id, event_type = EXCLUDED.event_type,
                 status = EXCLUDED.status, test = EXCLUDED.test,
                 created_at = EXCLUDED.created_at, next_retry = EXCLUDED.next_retry,
                 body = EXCLUDED.body"
        );
        exec(
            &client,
            &sql,
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
                &encode(d),
            ],
        )
        .await?;
        Ok(())
    }

    /// An endpoint's log, newest first, from after `cursor` (a delivery id).
    pub async fn list_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
        cursor: Option<&DeliveryId>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        let client = self.client().await?;
        let cursor = cursor.map(|c| c.to_string());
        let status = filter.status.map(|s| s.as_str());
        let items = rows(
            &client,
            "SELECT body FROM deliveries
             WHERE tenant_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR id < $3)
                 AND ($4::text IS NULL OR status = $4)
                 AND ($5::text IS NULL OR event_type = $5)
             ORDER BY id DESC LIMIT $6",
            &[
                &tenant.to_string(),
                &endpoint.to_string(),
                &cursor,
                &status,
                &filter.event_type,
                &page_limit(limit),
            ],
        )
        .await?
        .iter()
        .map(|r| body(r, 0))
        .collect::<Result<Vec<Delivery>>>()?;
        Ok(page(items, limit, |d: &Delivery| d.id.to_string()))
    }

    /// Retention: removes finished deliveries and events created before
    /// `cutoff`, a statement of at most [`PRUNE_CHUNK`] rows at a time.
    /// Deliveries still scheduled, or waiting in a FIFO line, are kept
    /// whatever their age. Rows another transaction holds are passed over
    /// (the next pass takes them), so retention never waits in a lock.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize> {
        let client = self.client().await?;
        let mut count = 0;
        loop {
            let removed = exec(
                &client,
                "WITH old AS (
                     SELECT tenant_id, endpoint_id, id FROM deliveries
                     WHERE created_at < $1 AND next_retry IS NULL AND line_position IS NULL
                     LIMIT $2 FOR UPDATE SKIP LOCKED)
                 DELETE FROM deliveries d USING old
                 WHERE d.tenant_id = old.tenant_id AND d.endpoint_id = old.endpoint_id
                     AND d.id = old.id",
                &[&cutoff, &PRUNE_CHUNK],
            )
            .await?;
            count += removed as usize;
            if removed < PRUNE_CHUNK as u64 {
                break;
            }
        }
        loop {
            // Their idempotency keys go with them.
            let removed = exec(
                &client,
                "WITH old AS (
                     SELECT tenant_id, id FROM events WHERE created_at < $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED)
                 DELETE FROM events e USING old
                 WHERE e.tenant_id = old.tenant_id AND e.id = old.id",
                &[&cutoff, &PRUNE_CHUNK],
            )
            .await?;
            if removed < PRUNE_CHUNK as u64 {
                break;
            }
        }
        Ok(count)
    }
}

/// Ends an attempt on its own: applies `change` to the delivery, which
/// returns when the next attempt is due (ms) or `None`; the entry moves
/// there or goes, and a FIFO line's head that ended gives the next its
/// turn, in one transaction. `None` if the delivery no longer exists (its
/// entry goes all the same).
pub(super) async fn finish_one(
    pool: &deadpool_postgres::Pool,
    queued_since: &QueuedSince,
    key: &QueueKey,
    entry: &QueueEntry,
    change: &DeliveryChange,
) -> Result<Option<Delivery>> {
    let mut client = super::pooled_client(pool).await?;
    let tx = client.transaction().await?;
    if entry.fifo {
        locks::lines(&tx, &entry.tenant, [entry.endpoint]).await?;
    }
    let current = locked(&tx, &entry.tenant, &entry.endpoint, &entry.delivery).await?;
    exec(&tx, "DELETE FROM queue WHERE key = $1", &[&key.bytes()]).await?;
    let Some((mut delivery, mut position)) = current else {
        tx.commit().await?;
        return Ok(None);
    };
    let promoted = match change(&mut delivery) {
        Some(due) => {
            enqueue(&tx, &queue_key(due, &delivery.id), entry).await?;
            None
        }
        None => {
            // Ended: the invariant holds whatever `change` left.
            delivery.next_retry = None;
            match delivery.fifo {
                true => {
                    if !entry.fifo {
                        // Late, as the entry did not say: a line's head
                        // is queued with its mark.
                        locks::lines(&tx, &entry.tenant, [entry.endpoint]).await?;
                    }
                    position = None;
                    lines::leave(&tx, &entry.tenant, &mut delivery, crate::time::now()).await?
                }
                false => None,
            }
        }
    };
    update(&tx, &entry.tenant, &delivery, position).await?;
    tx.commit().await?;
    if let Some(due) = delivery.next_retry {
        queued_since.note(due.timestamp_millis());
    }
    if let Some(due) = promoted {
        queued_since.note(due);
    }
    Ok(Some(delivery))
}
