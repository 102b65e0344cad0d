//! Attempt results written several to one transaction.
//!
//! At thousands of deliveries a second a transaction per result is most
//! of the database's work (a commit, and four round trips). Results end at
//! once in bursts, so the [`Finisher`] takes every result waiting when a
//! transaction can start and writes them together: one locking read of
//! their deliveries, one delete of their queue entries, one insert of the
//! retries, one update of the deliveries, one commit. Each result means
//! what it means alone (`deliveries::finish_one`): its delivery changed
//! and its entry moved or gone, in the transaction that holds the
//! delivery's row lock.
//!
//! What is not grouped goes alone, after the group commits: a delivery the
//! entry did not say is in a FIFO line (its line moves with it, under the
//! line's lock), a second result for one delivery, and every result of a
//! group whose transaction failed (a deadlock with an endpoint's deletion,
//! say), so one bad result never fails the others.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::deliveries::finish_one;
use super::{body, exec, pooled_client, rows};
use crate::model::delivery::Delivery;
use crate::store::deliveries::QueuedSince;
use crate::store::rows::queue_key;
use crate::store::{DeliveryChange, QueueEntry, QueueKey, Result, StoreError, encode};

/// Results written in one transaction at most.
const GROUP: usize = 128;
/// Group transactions at once: one commits while the next is written.
const GROUPS_AT_ONCE: usize = 2;

/// One attempt's end, waiting for its transaction.
struct Job {
    key: QueueKey,
    entry: QueueEntry,
    change: DeliveryChange,
    done: oneshot::Sender<Result<Option<Delivery>>>,
}

/// Hands attempt results to the task that groups them.
pub(super) struct Finisher {
    jobs: mpsc::UnboundedSender<Job>,
    /// Transactions written so far, grouped or alone (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    transactions: Arc<AtomicU64>,
}

impl Finisher {
    /// The finisher over `pool`, its task spawned on the caller's runtime;
    /// the task ends when the finisher is dropped and the last group is
    /// written.
    pub(super) fn spawn(pool: Pool, queued_since: Arc<QueuedSince>) -> Self {
        let (jobs, waiting) = mpsc::unbounded_channel();
        let transactions = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(pool, queued_since, waiting, transactions.clone()));
        Self { jobs, transactions }
    }

    /// Transactions written so far, grouped or alone.
    #[cfg(test)]
    pub(super) fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Ends an attempt as `deliveries::finish_one` does, in a group.
    pub(super) async fn finish(
        &self,
        key: &QueueKey,
        entry: &QueueEntry,
        change: DeliveryChange,
    ) -> Result<Option<Delivery>> {
        let (done, result) = oneshot::channel();
        let job = Job {
            key: key.clone(),
            entry: entry.clone(),
            change,
            done,
        };
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Storage("the store is closed".into()))?;
        result.await.map_err(|_| {
            StoreError::Storage("the store closed before the result was written".into())
        })?
    }
}

/// Takes what waits, up to [`GROUP`], each time a group may start.
async fn run(
    pool: Pool,
    queued_since: Arc<QueuedSince>,
    mut waiting: mpsc::UnboundedReceiver<Job>,
    transactions: Arc<AtomicU64>,
) {
    let groups = Arc::new(Semaphore::new(GROUPS_AT_ONCE));
    loop {
        let Ok(permit) = groups.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = waiting.recv().await else {
            return;
        };
        let mut group = vec![first];
        while group.len() < GROUP {
            match waiting.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (pool, queued_since) = (pool.clone(), queued_since.clone());
        let transactions = transactions.clone();
        tokio::spawn(async move {
            let written = finish_all(&pool, &queued_since, group).await;
            transactions.fetch_add(written, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Writes `jobs`, grouped where they can be, and tells each its result;
/// the transactions it took.
async fn finish_all(pool: &Pool, queued_since: &QueuedSince, jobs: Vec<Job>) -> u64 {
    let mut written = 0;
    let mut seen = HashSet::new();
    let (group, mut alone): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|job| seen.insert(job.entry.delivery));
    if group.len() == 1 {
        alone.extend(group);
    } else {
        written += 1;
        match grouped(pool, queued_since, &group).await {
            Ok(results) => {
                for (job, result) in group.into_iter().zip(results) {
                    match result {
                        Some(result) => {
                            let _ = job.done.send(Ok(result));
                        }
                        None => alone.push(job),
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, results = group.len(), "a group of attempt results failed; writing each alone");
                alone.extend(group);
            }
        }
    }
    for job in alone {
        let result = finish_one(pool, queued_since, &job.key, &job.entry, &job.change).await;
        let _ = job.done.send(result);
        written += 1;
    }
    written
}

/// One transaction for `jobs` (each for a different delivery): per job its
/// result, or `None` for one left to go alone (its delivery is in a FIFO
/// line).
async fn grouped(
    pool: &Pool,
    queued_since: &QueuedSince,
    jobs: &[Job],
) -> Result<Vec<Option<Option<Delivery>>>> {
    let mut client = pooled_client(pool).await?;
    let tx = client.transaction().await?;
    let column =
        |f: fn(&QueueEntry) -> String| jobs.iter().map(|j| f(&j.entry)).collect::<Vec<_>>();
    let (tenants, endpoints, ids) = (
        column(|e| e.tenant.to_string()),
        column(|e| e.endpoint.to_string()),
        column(|e| e.delivery.to_string()),
    );
    // Locked in key order, as every transaction that locks several
    // deliveries does.
    let found = rows(
        &tx,
        "SELECT d.tenant_id, d.endpoint_id, d.id, d.body, d.line_position
         FROM deliveries d
         JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(t, e, i)
           ON d.tenant_id = u.t COLLATE \"C\" AND d.endpoint_id = u.e COLLATE \"C\"
              AND d.id = u.i COLLATE \"C\"
         ORDER BY d.tenant_id, d.endpoint_id, d.id
         FOR UPDATE OF d",
        &[&tenants, &endpoints, &ids],
    )
    .await?;
    let mut current: HashMap<(String, String, String), (Delivery, Option<i64>)> = HashMap::new();
    for r in &found {
        let key = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        current.insert(key, (body(r, 3)?, r.try_get(4)?));
    }

    let mut results = Vec::with_capacity(jobs.len());
    let mut gone_keys: Vec<Vec<u8>> = Vec::new();
    let mut queued = Queued::default();
    let mut changed = Changed::default();
    for (i, job) in jobs.iter().enumerate() {
        let key = (tenants[i].clone(), endpoints[i].clone(), ids[i].clone());
        let Some((mut delivery, position)) = current.remove(&key) else {
            gone_keys.push(job.key.bytes().to_vec());
            results.push(Some(None));
            continue;
        };
        if delivery.fifo {
            results.push(None);
            continue;
        }
        gone_keys.push(job.key.bytes().to_vec());
        match (job.change)(&mut delivery) {
            Some(due) => queued.push(queue_key(due, &delivery.id), &job.entry),
            None => delivery.next_retry = None,
        }
        changed.push(&tenants[i], &delivery, position);
        results.push(Some(Some(delivery)));
    }
    exec(
        &tx,
        "DELETE FROM queue WHERE key = ANY($1::bytea[])",
        &[&gone_keys],
    )
    .await?;
    queued.write(&tx).await?;
    changed.write(&tx).await?;
    tx.commit().await?;
    for delivery in results.iter().flatten().flatten() {
        if let Some(due) = delivery.next_retry {
            queued_since.note(due.timestamp_millis());
        }
    }
    Ok(results)
}

/// Queue entries to write, as columns.
#[derive(Default)]
struct Queued {
    keys: Vec<Vec<u8>>,
    tenants: Vec<String>,
    endpoints: Vec<String>,
    deliveries: Vec<String>,
    fifo: Vec<bool>,
}

impl Queued {
    fn push(&mut self, key: Vec<u8>, entry: &QueueEntry) {
        self.keys.push(key);
        self.tenants.push(entry.tenant.to_string());
        self.endpoints.push(entry.endpoint.to_string());
        self.deliveries.push(entry.delivery.to_string());
        self.fifo.push(entry.fifo);
    }

    async fn write(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        exec(
            tx,
            "INSERT INTO queue (key, tenant_id, endpoint_id, delivery_id, fifo)
             SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::bool[])
             ON CONFLICT (key) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,
                 endpoint_id = EXCLUDED.endpoint_id, delivery_id = EXCLUDED.delivery_id,
                 fifo = EXCLUDED.fifo",
            &[
                &self.keys,
                &self.tenants,
                &self.endpoints,
                &self.deliveries,
                &self.fifo,
            ],
        )
        .await?;
        Ok(())
    }
}

/// Delivery rows to write back, as columns (`rows::update` for many).
#[derive(Default)]
struct Changed {
    tenants: Vec<String>,
    endpoints: Vec<String>,
    ids: Vec<String>,
    event_ids: Vec<String>,
    event_types: Vec<String>,
    statuses: Vec<String>,
    tests: Vec<bool>,
    created: Vec<DateTime<Utc>>,
    next: Vec<Option<DateTime<Utc>>>,
    positions: Vec<Option<i64>>,
    bodies: Vec<Vec<u8>>,
}

impl Changed {
    fn push(&mut self, tenant: &str, d: &Delivery, position: Option<i64>) {
        self.tenants.push(tenant.to_string());
        self.endpoints.push(d.endpoint_id.to_string());
        self.ids.push(d.id.to_string());
        self.event_ids.push(d.event_id.clone());
        self.event_types.push(d.event_type.clone());
        self.statuses.push(d.status.as_str().to_string());
        self.tests.push(d.test);
        self.created.push(d.created_at);
        self.next.push(d.next_retry);
        self.positions.push(position);
        self.bodies.push(encode(d));
    }

    async fn write(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        exec(
            tx,
            "UPDATE deliveries AS d SET event_id = u.ev, event_type = u.et, status = u.st,
                 test = u.te, created_at = u.ca, next_retry = u.nr, line_position = u.lp,
                 body = u.b
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::bool[], $8::timestamptz[], $9::timestamptz[], $10::int8[], $11::bytea[])
                 AS u(t, e, i, ev, et, st, te, ca, nr, lp, b)
             WHERE d.tenant_id = u.t COLLATE \"C\" AND d.endpoint_id = u.e COLLATE \"C\"
                 AND d.id = u.i COLLATE \"C\"",
            &[
                &self.tenants,
                &self.endpoints,
                &self.ids,
                &self.event_ids,
                &self.event_types,
                &self.statuses,
                &self.tests,
                &self.created,
                &self.next,
                &self.positions,
                &self.bodies,
            ],
        )
        .await?;
        Ok(())
    }
}
