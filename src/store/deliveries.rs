//! Delivery log entries and the durable queue of attempts.
//!
//! - `deliveries`: `{tenant}/{endpoint}/{delivery}` → [`Delivery`], so an
//!   endpoint's log lists by prefix, newest first by reverse scan.
//! - `queue`: due time (ms, big-endian) + delivery ULID → [`QueueEntry`], so
//!   due work is the front of the tree and needs no scan of future work.
//! - An entry stays in `queue` while its attempt runs; the dispatcher keeps
//!   the set of taken keys in memory. An attempt cut off by a crash leaves
//!   its entry due, so it is made again on the next start (at-least-once).
//!
//! Invariant: a delivery with `next_retry` set has exactly one entry, in
//! `queue`, keyed by that time; one without has none. Every
//! change to a delivery's schedule moves its entry in the same transaction.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::lines::LineTx;
pub(super) use super::rows::{QueueEntry, delivery_key, queue_key};
use super::{Page, Result, SledStore, decode, encode};
use crate::model::delivery::{Delivery, DeliveryStatus};
use crate::model::ids::{DeliveryId, EndpointId, TenantId};

/// Where a scheduled attempt sits in the queue: its due time, then its
/// delivery. Opaque outside the store; keys order by due time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey(sled::IVec);

impl QueueKey {
    /// A position just before every entry due at or after `due_ms`: the
    /// scan [`Store::due`] makes after it starts with them.
    pub fn before(due_ms: u64) -> Self {
        Self(sled::IVec::from(&due_ms.to_be_bytes()[..]))
    }

    /// When the entry at this key is due (ms).
    pub fn due_ms(&self) -> u64 {
        due_of(&self.0)
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key whose bytes are `bytes` (a [`queue_key`], as another backend
    /// stores it).
    pub(super) fn from_bytes(bytes: &[u8]) -> Self {
        Self(sled::IVec::from(bytes))
    }
}

/// The earliest due time among queue entries written since the dispatcher
/// last asked ([`Store::take_queued_since`]).
///
/// A delivery's due time is fixed before its transaction commits, so under
/// concurrent writes an entry can land behind keys the dispatcher's cursor
/// has already passed; without this it would wait for the cursor's next
/// wrap. Noted after the commit, so that whoever takes the mark can see the
/// entry.
#[derive(Debug)]
pub(super) struct QueuedSince(AtomicU64);

impl Default for QueuedSince {
    fn default() -> Self {
        Self(AtomicU64::new(u64::MAX))
    }
}

impl QueuedSince {
    pub(super) fn note(&self, due_ms: i64) {
        self.0.fetch_min(due_ms.max(0) as u64, Ordering::AcqRel);
    }

    /// The earliest due time noted since the last call, if any was.
    pub(super) fn take(&self) -> Option<u64> {
        let due = self.0.swap(u64::MAX, Ordering::AcqRel);
        (due != u64::MAX).then_some(due)
    }
}

fn due_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[..8].try_into().expect("queue keys start with 8 bytes"))
}

fn endpoint_prefix(tenant: &TenantId, endpoint: &EndpointId) -> Vec<u8> {
    format!("{tenant}/{endpoint}/").into_bytes()
}

/// Due work found by [`Store::due`].
pub struct DueScan {
    pub entries: Vec<(QueueKey, QueueEntry)>,
    /// When the earliest entry not yet due falls due, if any.
    pub next_due_ms: Option<u64>,
    /// No due entry lies beyond the ones returned.
    pub caught_up: bool,
}

/// Filters of the logs listing.
#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
}

impl DeliveryFilter {
    fn matches(&self, d: &Delivery) -> bool {
        self.status.is_none_or(|s| s == d.status)
            && self.event_type.as_ref().is_none_or(|t| *t == d.event_type)
    }
}

impl SledStore {
    /// Up to `limit` queue entries due at `now_ms`, oldest first, starting
    /// after the key `after` (from the front when `None`).
    pub fn due(&self, after: Option<&QueueKey>, now_ms: u64, limit: usize) -> Result<DueScan> {
        let mut entries = Vec::new();
        let mut next_due_ms = None;
        let mut caught_up = true;
        let range = match after {
            Some(key) => self
                .queue
                .range::<&[u8], _>((Bound::Excluded(key.bytes()), Bound::Unbounded)),
            None => self.queue.iter(),
        };
        for item in range {
            let (key, value) = item?;
            let due = due_of(&key);
            if due > now_ms {
                next_due_ms = Some(due);
                break;
            }
            if entries.len() == limit {
                caught_up = false;
                break;
            }
            entries.push((QueueKey(key), decode(&value)?));
        }
        Ok(DueScan {
            entries,
            next_due_ms,
            caught_up,
        })
    }

    /// The earliest due time (ms) of the entries queued since the last call,
    /// if any were.
    pub fn take_queued_since(&self) -> Option<u64> {
        self.queued_since.take()
    }

    /// Entries waiting in the queue (counted by a scan: for start-up).
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Ends an attempt: applies `change` to the delivery, which returns when
    /// the next attempt is due (ms) or `None`; the entry is moved there or
    /// dropped in the same transaction. `None` if the delivery no longer
    /// exists.
    ///
    /// An entry stays in the queue while its attempt runs (the dispatcher
    /// remembers it is taken), so a crash mid-attempt leaves it due and it
    /// is attempted again on the next start.
    pub async fn finish_attempt(
        &self,
        key: &QueueKey,
        entry: &QueueEntry,
        change: impl Fn(&mut Delivery) -> Option<i64> + Send + 'static,
    ) -> Result<Option<Delivery>> {
        let dkey = delivery_key(&entry.tenant, &entry.endpoint, &entry.delivery);
        let (key, entry) = (key.clone(), entry.clone());
        let lane = match entry.fifo {
            true => super::writer::Lane::Publish,
            false => super::writer::Lane::Result,
        };
        let (updated, promoted) = self
            .writer
            .write(lane, 3, move |tx| {
                tx.queue.remove(key.bytes())?;
                let Some(current) = tx.deliveries.get(dkey.as_slice())? else {
                    return Ok((None, None));
                };
                let mut delivery: Delivery =
                    decode(&current).map_err(ConflictableTransactionError::Abort)?;
                let promoted = match change(&mut delivery) {
                    Some(due) => {
                        // Encoded only here: most attempts succeed and drop it.
                        tx.queue
                            .insert(queue_key(due, &delivery.id), encode(&entry))?;
                        None
                    }
                    None => {
                        // Ended: the invariant holds whatever `change` left.
                        delivery.next_retry = None;
                        match delivery.fifo {
                            true => {
                                tx.line()
                                    .leave(entry.tenant, &mut delivery, crate::time::now())?
                            }
                            false => None,
                        }
                    }
                };
                tx.deliveries.insert(dkey.as_slice(), encode(&delivery))?;
                Ok((Some(delivery), promoted))
            })
            .await?;
        if let Some(due) = updated.as_ref().and_then(|d| d.next_retry) {
            self.queued_since.note(due.timestamp_millis());
        }
        if let Some(due) = promoted {
            self.queued_since.note(due);
        }
        Ok(updated)
    }

    pub fn get_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>> {
        self.deliveries
            .get(delivery_key(tenant, endpoint, id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Records an attempt a person asked for. On success a scheduled retry
    /// is cancelled (its queue entry removed) in the same transaction; on
    /// failure the schedule goes on as it was. Returns the updated delivery
    /// and whether a queue entry was removed.
    pub async fn record_manual_attempt(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        attempt: &crate::model::delivery::Attempt,
    ) -> Result<Option<(Delivery, bool)>> {
        let dkey = delivery_key(tenant, endpoint, id);
        let now = crate::time::now();
        let (updated, promoted) = (&self.deliveries, &self.queue, &self.lines).transaction(
            |(deliveries, queue, lines)| {
                let Some(current) = deliveries.get(dkey.as_slice())? else {
                    return Ok((None, None));
                };
                let mut delivery: Delivery =
                    decode(&current).map_err(ConflictableTransactionError::Abort)?;
                let scheduled = delivery.next_retry;
                delivery.record(attempt.clone());
                let (mut unqueued, mut promoted) = (false, None);
                if attempt.success {
                    if let Some(next) = scheduled {
                        unqueued = queue
                            .remove(queue_key(next.timestamp_millis(), id))?
                            .is_some();
                        // A line's head, delivered: the next one's turn. One
                        // still waiting is passed over when its turn comes.
                        if delivery.fifo {
                            let line = LineTx {
                                deliveries,
                                queue,
                                lines,
                            };
                            promoted = line.leave(*tenant, &mut delivery, now)?;
                        }
                    }
                    delivery.next_retry = None;
                } else {
                    delivery.next_retry = scheduled;
                }
                deliveries.insert(dkey.as_slice(), encode(&delivery))?;
                Ok((Some((delivery, unqueued)), promoted))
            },
        )?;
        if let Some(due) = promoted {
            self.queued_since.note(due);
        }
        self.flush().await?;
        Ok(updated)
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
        let dkey = delivery_key(tenant, endpoint, id);
        let at = crate::time::now();
        let updated = self.deliveries.transaction(|deliveries| {
            let Some(current) = deliveries.get(dkey.as_slice())? else {
                return Ok(None);
            };
            let mut delivery: Delivery =
                decode(&current).map_err(ConflictableTransactionError::Abort)?;
            delivery.status = status;
            delivery.error = Some(reason.to_string());
            delivery.updated_at = at;
            deliveries.insert(dkey.as_slice(), encode(&delivery))?;
            Ok(Some(delivery))
        })?;
        self.flush().await?;
        Ok(updated)
    }

    /// Queues again, due at `now`, every delivery of the endpoint that ended
    /// `failed` (no attempt left) between `since` and `until`, test sends
    /// aside; each delivery and its new queue entry together, or, when
    /// `fifo`, each at the end of the endpoint's line, oldest first.
    /// Returns how many. Durable when it returns.
    pub async fn recover_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        window: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
        fifo: bool,
    ) -> Result<usize> {
        let (since, until) = window;
        let due = now.timestamp_millis();
        let mut recovered = 0;
        for item in self
            .deliveries
            .scan_prefix(endpoint_prefix(tenant, endpoint))
        {
            let (key, value) = item?;
            let delivery: Delivery = decode(&value)?;
            let ended = delivery.status == DeliveryStatus::Failed
                && delivery.next_retry.is_none()
                && !delivery.fifo
                && !delivery.test
                && (since..=until).contains(&delivery.updated_at);
            if !ended {
                continue;
            }
            let entry = encode(&QueueEntry::of(*tenant, &delivery));
            let requeued = (&self.deliveries, &self.queue, &self.lines).transaction(
                |(deliveries, queue, lines)| {
                    // Read again inside: an attempt or a retry may have moved it.
                    let Some(current) = deliveries.get(&key)? else {
                        return Ok(false);
                    };
                    let mut d: Delivery =
                        decode(&current).map_err(ConflictableTransactionError::Abort)?;
                    if d.status != DeliveryStatus::Failed || d.next_retry.is_some() || d.fifo {
                        return Ok(false);
                    }
                    d.next_retry = Some(now);
                    d.updated_at = now;
                    if fifo {
                        let line = LineTx {
                            deliveries,
                            queue,
                            lines,
                        };
                        line.join(*tenant, d)?;
                    } else {
                        queue.insert(queue_key(due, &d.id), entry.as_slice())?;
                        deliveries.insert(&key, encode(&d))?;
                    }
                    Ok(true)
                },
            )?;
            recovered += usize::from(requeued);
        }
        if recovered > 0 {
            self.queued_since.note(due);
        }
        self.flush().await?;
        Ok(recovered)
    }

    /// Stores a delivery that is not queued (a test send's log entry).
    pub async fn insert_delivery(&self, tenant: &TenantId, delivery: &Delivery) -> Result<()> {
        self.deliveries.insert(
            delivery_key(tenant, &delivery.endpoint_id, &delivery.id),
            encode(delivery),
        )?;
        self.flush().await
    }

    /// An endpoint's log, newest first, from after `cursor` (a delivery id).
    pub fn list_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
        cursor: Option<&DeliveryId>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        let prefix = endpoint_prefix(tenant, endpoint);
        let end = match cursor {
            Some(id) => delivery_key(tenant, endpoint, id),
            // '0' follows '/' in ASCII: the first key past the prefix.
            None => [&prefix[..prefix.len() - 1], b"0"].concat(),
        };
        let mut items = Vec::new();
        let mut more = false;
        let range = self
            .deliveries
            .range((Bound::Included(prefix), Bound::Excluded(end)));
        for item in range.rev() {
            let (_, value) = item?;
            let delivery: Delivery = decode(&value)?;
            if !filter.matches(&delivery) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(delivery);
        }
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(last.id.to_string()),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Removes every delivery under `prefix` with its queue entry.
    pub(super) fn purge_deliveries(&self, prefix: &[u8]) -> Result<usize> {
        let mut deliveries = sled::Batch::default();
        let mut scheduled = sled::Batch::default();
        let mut count = 0;
        for item in self.deliveries.scan_prefix(prefix) {
            let (key, value) = item?;
            let delivery: Delivery = decode(&value)?;
            if let Some(next) = delivery.next_retry {
                scheduled.remove(queue_key(next.timestamp_millis(), &delivery.id));
            }
            deliveries.remove(key);
            count += 1;
        }
        // Queue entries first: a delivery must never be left scheduled
        // without its record (workers skip entries whose record is gone).
        // Lines are keyed as the deliveries are, their ends just under the
        // endpoint's prefix.
        self.queue.apply_batch(scheduled)?;
        let mut links = sled::Batch::default();
        for key in super::keys_with_prefix(&self.lines, prefix)? {
            links.remove(key);
        }
        self.lines.apply_batch(links)?;
        self.deliveries.apply_batch(deliveries)?;
        Ok(count)
    }

    /// Drops all deliveries of an endpoint (it was deleted).
    pub(super) fn purge_endpoint_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
    ) -> Result<usize> {
        self.purge_deliveries(&endpoint_prefix(tenant, endpoint))
    }

    /// Retention: removes finished deliveries and events created before
    /// `cutoff`. Deliveries still scheduled, or waiting in a FIFO line, are
    /// kept whatever their age.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize> {
        let mut batch = sled::Batch::default();
        let mut count = 0;
        for item in self.deliveries.iter() {
            let (key, value) = item?;
            let delivery: Delivery = decode(&value)?;
            if delivery.created_at < cutoff && delivery.next_retry.is_none() && !delivery.fifo {
                batch.remove(key);
                count += 1;
            }
        }
        self.deliveries.apply_batch(batch)?;
        let mut batch = sled::Batch::default();
        for item in self.events.iter() {
            let (key, value) = item?;
            let event: crate::model::event::Event = decode(&value)?;
            if event.created_at < cutoff {
                batch.remove(key);
            }
        }
        self.event_deliveries.apply_batch(batch.clone())?;
        self.events.apply_batch(batch)?;
        self.recent_events.clear();
        self.flush().await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_sled;

    fn delivery(age_days: i64, scheduled: bool) -> Delivery {
        let at = crate::time::now() - chrono::Duration::days(age_days);
        let mut d = Delivery::new(EndpointId::generate(), "evt_x", "a.b", at);
        d.status = if scheduled {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Delivered
        };
        d.next_retry = scheduled.then_some(at);
        d
    }

    #[tokio::test]
    async fn prune_removes_old_finished_entries_only() {
        let (store, _dir) = temp_sled();
        let tenant = TenantId::generate();
        let (old, recent, old_scheduled) =
            (delivery(40, false), delivery(1, false), delivery(40, true));
        for d in [&old, &recent, &old_scheduled] {
            store.insert_delivery(&tenant, d).await.unwrap();
        }
        let cutoff = crate::time::now() - chrono::Duration::days(30);
        assert_eq!(store.prune(cutoff).await.unwrap(), 1);
        let get = |d: &Delivery| store.get_delivery(&tenant, &d.endpoint_id, &d.id).unwrap();
        assert!(get(&old).is_none());
        assert!(get(&recent).is_some());
        assert!(
            get(&old_scheduled).is_some(),
            "scheduled work is never pruned"
        );
    }

    #[tokio::test]
    async fn finishing_an_attempt_moves_or_drops_its_entry() {
        let (store, _dir) = temp_sled();
        let tenant = TenantId::generate();
        let d = delivery(0, true);
        let key = QueueKey(queue_key(0, &d.id).into());
        let entry = QueueEntry::of(tenant, &d);
        store
            .deliveries
            .insert(delivery_key(&tenant, &d.endpoint_id, &d.id), encode(&d))
            .unwrap();
        store.queue.insert(key.bytes(), encode(&entry)).unwrap();
        let due = store.due(None, u64::MAX, 10).unwrap();
        assert_eq!(due.entries.len(), 1);
        // A failed attempt moves the entry to its retry time...
        store
            .finish_attempt(&key, &entry, |_| Some(5_000))
            .await
            .unwrap();
        assert!(store.due(None, 4_999, 10).unwrap().entries.is_empty());
        let later = store.due(None, 5_000, 10).unwrap();
        assert_eq!(later.entries.len(), 1);
        // ...and one with nothing left to do drops it.
        let (key, entry) = later.entries.into_iter().next().unwrap();
        store.finish_attempt(&key, &entry, |_| None).await.unwrap();
        assert!(store.due(None, u64::MAX, 10).unwrap().entries.is_empty());
    }

    #[test]
    fn queue_keys_sort_by_due_time_then_id() {
        let (a, b) = (DeliveryId::generate(), DeliveryId::generate());
        assert!(queue_key(5, &b) < queue_key(6, &a));
        assert!(queue_key(5, &a) < queue_key(5, &b));
        assert_eq!(due_of(&queue_key(1234, &a)), 1234);
    }
}
