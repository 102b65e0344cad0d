//! Published events and their idempotency keys.
//!
//! Events are keyed `{tenant_id}/{event id}`; producer-chosen idempotency keys
//! `{tenant_id}/{key}` point at the event they first created. A publish writes
//! the event, the list of its deliveries, the deliveries and their queue
//! entries in one transaction.

use std::borrow::Cow;
use std::sync::Arc;

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::lines::LineTx;
use super::rows::{QueueEntry, delivery_key, queue_key};
use super::{Result, SledStore, StoreError, decode, encode, scoped_key};
use crate::model::delivery::Delivery;
use crate::model::event::Event;
use crate::model::ids::{DeliveryId, EndpointId, TenantId};

/// What a publish did.
#[derive(Debug)]
pub enum PublishOutcome {
    /// The event is new; its deliveries are queued.
    Created(Event),
    /// The id or idempotency key was seen before: nothing was written, and
    /// this is the first event.
    Duplicate(Event),
}

/// Deliveries written in one transaction. A publish to more endpoints writes
/// its event first, with a marker holding every delivery, then the
/// deliveries in transactions of this size: one transaction of 10,000
/// deliveries held hundreds of MB in sled's write set and node deltas
/// (BENCHMARKS.md, backlog memory).
pub const FANOUT_CHUNK: usize = 1000;

/// Deliveries of chunked fan-outs being written at once, in all: bounds the
/// memory concurrent publishes to many endpoints take. A fan-out larger than
/// this waits for the others and then runs alone.
pub(super) const FANOUT_BUDGET: usize = 16_384;

/// A share of [`FANOUT_BUDGET`] held by one publish to many endpoints, from
/// before its deliveries are built until they are written.
pub struct FanOutPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Takes the share of `budget` (of [`FANOUT_BUDGET`]) a publish to
/// `endpoints` endpoints needs: none up to [`FANOUT_CHUNK`]. Every backend
/// keeps one budget per process.
pub(super) async fn reserve_fan_out(
    budget: &Arc<tokio::sync::Semaphore>,
    endpoints: usize,
) -> Option<FanOutPermit> {
    if endpoints <= FANOUT_CHUNK {
        return None;
    }
    let permit = budget
        .clone()
        .acquire_many_owned(endpoints.min(FANOUT_BUDGET) as u32)
        .await
        .expect("the fan-out budget is never closed");
    Some(FanOutPermit { _permit: permit })
}

/// A delivery's rows: log key and value, and its queue entry if it is due;
/// or, for a FIFO delivery, the delivery itself, which joins its endpoint's
/// line (`store/lines.rs`) when it is written.
struct Row {
    key: Vec<u8>,
    value: Vec<u8>,
    queued: Option<(Vec<u8>, Vec<u8>)>,
    line: Option<(TenantId, Delivery)>,
}

impl Row {
    /// Writes the log entry and its queue entry, if any.
    fn write(
        &self,
        t: &LineTx,
    ) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
        if let Some((tenant, delivery)) = &self.line {
            return t.join(*tenant, delivery.clone());
        }
        t.deliveries
            .insert(self.key.as_slice(), self.value.as_slice())?;
        if let Some((qkey, qvalue)) = &self.queued {
            t.queue.insert(qkey.as_slice(), qvalue.as_slice())?;
        }
        Ok(())
    }
}

/// When the first of `deliveries` to be queued is due (ms), if any is.
fn earliest_due(deliveries: &[Delivery]) -> Option<i64> {
    deliveries
        .iter()
        .filter_map(|d| d.next_retry)
        .map(|due| due.timestamp_millis())
        .min()
}

fn row(tenant: TenantId, d: &Delivery) -> Row {
    let key = delivery_key(&tenant, &d.endpoint_id, &d.id);
    if d.fifo && d.next_retry.is_some() {
        return Row {
            key,
            value: Vec::new(),
            queued: None,
            line: Some((tenant, d.clone())),
        };
    }
    Row {
        key,
        value: encode(d),
        queued: d.next_retry.map(|due| {
            let entry = QueueEntry::of(tenant, d);
            (queue_key(due.timestamp_millis(), &d.id), encode(&entry))
        }),
        line: None,
    }
}

impl SledStore {
    /// Stores an event with its deliveries, queuing those with a
    /// `next_retry`, unless its id or idempotency key already exists.
    /// Durable when it returns.
    ///
    /// Up to [`FANOUT_CHUNK`] deliveries go in the event's own transaction.
    /// Beyond that the event's transaction also writes a fan-out marker with
    /// every delivery; the deliveries follow in chunks, and the marker is
    /// removed when the last is written. A crash in between leaves the marker,
    /// and [`SledStore::open`] finishes the fan-out, so an event that exists gets
    /// every delivery exactly once either way.
    pub async fn publish(
        &self,
        event: Event,
        deliveries: Vec<Delivery>,
        idempotency_key: Option<&str>,
    ) -> Result<PublishOutcome> {
        self.publish_reserved(event, deliveries, idempotency_key, None)
            .await
    }

    /// Takes the share of the fan-out budget a publish to `endpoints`
    /// endpoints needs (none up to [`FANOUT_CHUNK`]). Taken before the
    /// deliveries are built, so publishes waiting for the budget do not each
    /// hold thousands of them.
    pub async fn reserve_fan_out(&self, endpoints: usize) -> Option<FanOutPermit> {
        reserve_fan_out(&self.fanout_budget, endpoints).await
    }

    /// [`Store::publish`] with the budget already reserved for at least as
    /// many endpoints as there are deliveries (if not, it is taken here).
    pub async fn publish_reserved(
        &self,
        event: Event,
        deliveries: Vec<Delivery>,
        idempotency_key: Option<&str>,
        reserved: Option<FanOutPermit>,
    ) -> Result<PublishOutcome> {
        let tenant = event.tenant_id;
        let event_key = scoped_key(&tenant, &event.id);
        let idem_key = idempotency_key.map(|k| scoped_key(&tenant, k));
        let event_value = encode(&event);
        let list: Vec<(EndpointId, DeliveryId)> =
            deliveries.iter().map(|d| (d.endpoint_id, d.id)).collect();
        let list_value = encode(&list);
        let chunked = deliveries.len() > FANOUT_CHUNK;
        let earliest_due = earliest_due(&deliveries);
        // Only an event with a delivery to attempt is worth keeping decoded.
        let attempted = earliest_due.is_some();
        let _budget = match (reserved, chunked) {
            (Some(permit), _) => Some(permit),
            // Nothing reserved, or endpoints added since the reservation
            // made it a fan-out.
            (None, true) => self.reserve_fan_out(deliveries.len()).await,
            (None, false) => None,
        };
        let (rows, marker): (Vec<Row>, _) = if chunked {
            (
                Vec::new(),
                Some(encode(&(tenant, Cow::Borrowed(&deliveries[..])))),
            )
        } else {
            (deliveries.iter().map(|d| row(tenant, d)).collect(), None)
        };

        let weight = 3 + 2 * rows.len();
        let (key, event_id) = (event_key.clone(), event.id.clone());
        let existing = self
            .writer
            .write(super::writer::Lane::Publish, weight, move |tx| {
                let earlier = match &idem_key {
                    Some(k) => match tx.idempotency.get(k)? {
                        Some(id) => tx
                            .events
                            .get(scoped_key(&tenant, String::from_utf8_lossy(&id)))?,
                        None => None,
                    },
                    None => None,
                };
                let earlier = match earlier {
                    Some(e) => Some(e),
                    None => tx.events.get(key.as_slice())?,
                };
                if let Some(earlier) = earlier {
                    return Ok(Some(earlier));
                }
                tx.events.insert(key.as_slice(), event_value.as_slice())?;
                tx.event_deliveries
                    .insert(key.as_slice(), list_value.as_slice())?;
                if let Some(k) = &idem_key {
                    tx.idempotency.insert(k.as_slice(), event_id.as_bytes())?;
                }
                if let Some(marker) = &marker {
                    tx.fanouts.insert(key.as_slice(), marker.as_slice())?;
                }
                let line = tx.line();
                for row in &rows {
                    row.write(&line)?;
                }
                Ok(None)
            })
            .await?;
        if let Some(bytes) = existing {
            return Ok(PublishOutcome::Duplicate(decode(&bytes)?));
        }
        if let (Some(due), false) = (earliest_due, chunked) {
            self.queued_since.note(due);
        }
        if chunked {
            // Thousands of rows: off the async workers, so the API keeps
            // answering while they are written.
            let (store, key) = (self.clone(), event_key.clone());
            tokio::task::spawn_blocking(move || store.fan_out(&key, tenant, &deliveries))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        }
        self.flush().await?;
        if attempted {
            self.recent_events.insert(event_key, event.clone());
        }
        Ok(PublishOutcome::Created(event))
    }

    /// Writes `deliveries` chunk by chunk, each delivery only if it is not
    /// there yet (an attempt may already have updated it), then removes the
    /// fan-out marker under `event_key`.
    fn fan_out(&self, event_key: &[u8], tenant: TenantId, deliveries: &[Delivery]) -> Result<()> {
        for chunk in deliveries.chunks(FANOUT_CHUNK) {
            let rows: Vec<Row> = chunk.iter().map(|d| row(tenant, d)).collect();
            (&self.deliveries, &self.queue, &self.lines).transaction(|(dels, queue, lines)| {
                let line = LineTx {
                    deliveries: dels,
                    queue,
                    lines,
                };
                for row in &rows {
                    if dels.get(row.key.as_slice())?.is_none() {
                        row.write(&line)?;
                    }
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })?;
            if let Some(due) = earliest_due(chunk) {
                self.queued_since.note(due);
            }
        }
        self.fanouts.remove(event_key)?;
        Ok(())
    }

    /// Finishes the fan-outs a crash interrupted (see [`Store::publish`]).
    /// Returns how many there were.
    pub(super) fn resume_fan_outs(&self) -> Result<usize> {
        let mut resumed = 0;
        for item in self.fanouts.iter() {
            let (event_key, marker) = item?;
            let (tenant, deliveries): (TenantId, Cow<'_, [Delivery]>) = decode(&marker)?;
            self.fan_out(&event_key, tenant, &deliveries)?;
            resumed += 1;
        }
        Ok(resumed)
    }

    pub fn get_event(&self, tenant: &TenantId, id: &str) -> Result<Option<Event>> {
        let key = scoped_key(tenant, id);
        if let Some(event) = self.recent_events.get(&key) {
            return Ok(Some(Event::clone(&event)));
        }
        self.events.get(key)?.map(|v| decode(&v)).transpose()
    }

    /// The `(endpoint, delivery)` pairs an event was fanned out to.
    pub fn event_deliveries(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Vec<(EndpointId, DeliveryId)>> {
        let key = scoped_key(tenant, id);
        match self.event_deliveries.get(&key)? {
            Some(list) => decode(&list),
            None => Ok(Vec::new()),
        }
    }

    /// Adds `deliveries` (new ones, of at most [`FANOUT_CHUNK`]) to a stored
    /// event: their rows, their queue entries and the event's list, all or
    /// nothing. `NotFound` if the event is gone. Durable when it returns.
    pub async fn add_deliveries(
        &self,
        tenant: &TenantId,
        event_id: &str,
        deliveries: &[Delivery],
    ) -> Result<()> {
        if deliveries.len() > FANOUT_CHUNK {
            return Err(StoreError::LimitReached(format!(
                "at most {FANOUT_CHUNK} deliveries at once"
            )));
        }
        let key = scoped_key(tenant, event_id);
        let rows: Vec<Row> = deliveries.iter().map(|d| row(*tenant, d)).collect();
        let added: Vec<(EndpointId, DeliveryId)> =
            deliveries.iter().map(|d| (d.endpoint_id, d.id)).collect();
        (
            &self.events,
            &self.event_deliveries,
            &self.deliveries,
            &self.queue,
            &self.lines,
        )
            .transaction(|(events, lists, dels, queue, lines)| {
                if events.get(key.as_slice())?.is_none() {
                    return Err(ConflictableTransactionError::Abort(StoreError::NotFound(
                        "event",
                    )));
                }
                let mut list: Vec<(EndpointId, DeliveryId)> = match lists.get(key.as_slice())? {
                    Some(bytes) => decode(&bytes).map_err(ConflictableTransactionError::Abort)?,
                    None => Vec::new(),
                };
                list.extend(added.iter().copied());
                lists.insert(key.as_slice(), encode(&list))?;
                let line = LineTx {
                    deliveries: dels,
                    queue,
                    lines,
                };
                for row in &rows {
                    row.write(&line)?;
                }
                Ok(())
            })?;
        if let Some(due) = earliest_due(deliveries) {
            self.queued_since.note(due);
        }
        self.flush().await
    }

    /// Stores an event made for a test send, with no fan-out.
    pub fn put_event(&self, event: &Event) -> Result<()> {
        self.events
            .insert(scoped_key(&event.tenant_id, &event.id), encode(event))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::delivery::DeliveryStatus;
    use crate::store::test_support::temp_sled;

    /// An event and `n` deliveries of it: every tenth skipped, the rest due.
    fn fan_out_of(tenant: TenantId, n: usize) -> (Event, Vec<Delivery>) {
        let event = Event::new(tenant, None, "a.b", serde_json::json!({"k": 1}));
        let deliveries = (0..n)
            .map(|i| {
                let mut d = Delivery::new(
                    EndpointId::generate(),
                    &event.id,
                    &event.event_type,
                    event.created_at,
                );
                if i % 10 == 0 {
                    d.status = DeliveryStatus::Skipped;
                } else {
                    d.next_retry = Some(event.created_at);
                }
                d
            })
            .collect();
        (event, deliveries)
    }

    fn assert_all_stored(store: &SledStore, tenant: TenantId, deliveries: &[Delivery]) {
        for d in deliveries {
            let stored = store.get_delivery(&tenant, &d.endpoint_id, &d.id).unwrap();
            assert!(stored.is_some(), "delivery {} is stored", d.id);
        }
    }

    fn due_count(deliveries: &[Delivery]) -> usize {
        deliveries.iter().filter(|d| d.next_retry.is_some()).count()
    }

    #[tokio::test]
    async fn removed_events_are_not_served_from_memory() {
        let (store, _dir) = temp_sled();
        let tenant = crate::store::test_support::tenant("acme");
        store.create_tenant(&tenant).await.unwrap();
        let publish = |store: &SledStore| {
            let event = Event::new(tenant.id, None, "a.b", serde_json::json!({"n": 1}));
            let store = store.clone();
            async move {
                store
                    .publish(event.clone(), Vec::new(), None)
                    .await
                    .unwrap();
                event.id
            }
        };
        let pruned = publish(&store).await;
        let stored = store.get_event(&tenant.id, &pruned).unwrap();
        assert_eq!(stored.expect("published").id, pruned);
        store
            .prune(crate::time::now() + chrono::Duration::days(1))
            .await
            .unwrap();
        assert!(store.get_event(&tenant.id, &pruned).unwrap().is_none());

        let orphaned = publish(&store).await;
        assert!(store.get_event(&tenant.id, &orphaned).unwrap().is_some());
        store.delete_tenant(&tenant.id).await.unwrap();
        assert!(store.get_event(&tenant.id, &orphaned).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_large_fan_out_is_written_whole_in_chunks() {
        let (store, _dir) = temp_sled();
        let tenant = TenantId::generate();
        let (event, deliveries) = fan_out_of(tenant, 2 * FANOUT_CHUNK + 7);
        let id = event.id.clone();
        let outcome = store.publish(event, deliveries.clone(), None).await;
        assert!(matches!(outcome, Ok(PublishOutcome::Created(_))));
        assert_all_stored(&store, tenant, &deliveries);
        assert_eq!(store.queue_len(), due_count(&deliveries));
        assert_eq!(
            store.event_deliveries(&tenant, &id).unwrap().len(),
            deliveries.len()
        );
        assert!(store.fanouts.is_empty(), "the marker is gone once done");
    }

    /// A publish whose reservation holds the whole budget writes its
    /// fan-out on that reservation (taking it again would wait forever),
    /// and gives the budget back.
    #[tokio::test]
    async fn a_reserved_fan_out_runs_on_its_reservation() {
        let (store, _dir) = temp_sled();
        assert!(store.reserve_fan_out(FANOUT_CHUNK).await.is_none());
        let tenant = TenantId::generate();
        let (event, deliveries) = fan_out_of(tenant, FANOUT_CHUNK + 1);
        let reserved = store.reserve_fan_out(FANOUT_BUDGET * 2).await;
        assert_eq!(store.fanout_budget.available_permits(), 0);
        let publish = store.publish_reserved(event, deliveries.clone(), None, reserved);
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), publish)
            .await
            .expect("the publish waited for the budget it holds");
        assert!(matches!(outcome, Ok(PublishOutcome::Created(_))));
        assert_all_stored(&store, tenant, &deliveries);
        assert_eq!(store.fanout_budget.available_permits(), FANOUT_BUDGET);
    }

    /// A crash after the event and the first chunk: opening the store writes
    /// the rest, and leaves what an attempt already changed as it was.
    #[tokio::test]
    async fn an_interrupted_fan_out_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::generate();
        let (event, deliveries) = fan_out_of(tenant, FANOUT_CHUNK + 300);
        {
            let store = SledStore::open(dir.path(), 16 << 20).unwrap();
            let event_key = scoped_key(&tenant, &event.id);
            store.events.insert(&event_key, encode(&event)).unwrap();
            store
                .fanouts
                .insert(
                    &event_key,
                    encode(&(tenant, Cow::Borrowed(&deliveries[..]))),
                )
                .unwrap();
            // The first chunk was written, then delivery 1 was attempted
            // and delivered: its queue entry is gone.
            for (i, d) in deliveries[..FANOUT_CHUNK].iter().enumerate() {
                let mut d = d.clone();
                if i == 1 {
                    d.status = DeliveryStatus::Delivered;
                    d.next_retry = None;
                }
                let row = row(tenant, &d);
                store.deliveries.insert(row.key, row.value).unwrap();
                if let Some((k, v)) = row.queued {
                    store.queue.insert(k, v).unwrap();
                }
            }
            store.flush().await.unwrap();
        }
        // sled's lock goes with the commit thread's handle, shortly after.
        let store = (0..50)
            .find_map(|_| {
                SledStore::open(dir.path(), 16 << 20).ok().or_else(|| {
                    std::thread::sleep(Duration::from_millis(100));
                    None
                })
            })
            .expect("the store reopens");
        assert!(store.fanouts.is_empty());
        assert_all_stored(&store, tenant, &deliveries);
        let attempted = &deliveries[1];
        let kept = store
            .get_delivery(&tenant, &attempted.endpoint_id, &attempted.id)
            .unwrap()
            .unwrap();
        assert_eq!(kept.status, DeliveryStatus::Delivered, "not overwritten");
        assert_eq!(store.queue_len(), due_count(&deliveries) - 1);
    }
}
