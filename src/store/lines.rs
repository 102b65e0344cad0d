//! FIFO lines: the deliveries of an endpoint with `ordering: fifo`, in the
//! order they were queued (docs/product.md, "Delivery controls").
//!
//! Tree `lines`, beside `deliveries` and with the same keys:
//! - `{tenant}/{endpoint}/` → [`Ends`]: the line's first and last delivery;
//! - `{tenant}/{endpoint}/{delivery}` → [`Link`]: the delivery after it.
//!
//! sled's transactions read by key only, so a line is a list linked from
//! one record to the next rather than a range.
//!
//! Invariant: only a line's head is queued (it has a `next_retry` and a
//! queue entry, retried in place as any delivery); every other delivery of
//! the line waits, `pending` with no `next_retry` and no entry. When the
//! head ends (delivered, failed with no attempt left, filtered, skipped),
//! the transaction that ends it takes it out of the line and queues the
//! next, due at once. So the dispatcher, which sees only heads, needs no
//! rule of its own, and an endpoint's line has one attempt in flight at
//! most, on any number of dispatchers.
//!
//! A waiting delivery that a person delivered by hand stays linked and is
//! passed over when its turn comes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::record::{Record, json_records};
use super::rows::{QueueEntry, delivery_key, queue_key};
use super::{StoreError, decode, encode};
use crate::model::delivery::{Delivery, DeliveryStatus};
use crate::model::ids::{DeliveryId, EndpointId, TenantId};

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// A line's first and last delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ends {
    head: DeliveryId,
    tail: DeliveryId,
}

/// The delivery queued after this one in its line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Link {
    next: Option<DeliveryId>,
}

json_records!(Ends, Link);

/// The trees a line's changes touch, inside one transaction.
pub(super) struct LineTx<'a> {
    pub deliveries: &'a TransactionalTree,
    pub queue: &'a TransactionalTree,
    pub lines: &'a TransactionalTree,
}

fn ends_key(tenant: &TenantId, endpoint: &EndpointId) -> Vec<u8> {
    format!("{tenant}/{endpoint}/").into_bytes()
}

fn read<T: Record>(tree: &TransactionalTree, key: &[u8]) -> TxResult<Option<T>> {
    tree.get(key)?
        .map(|v| decode(&v).map_err(ConflictableTransactionError::Abort))
        .transpose()
}

impl LineTx<'_> {
    /// Stores `delivery` (new, or ended and queued again, with its
    /// `next_retry` set) at the end of its endpoint's line: at the front of
    /// an empty line it is the head and is queued; behind others it waits.
    pub fn join(&self, tenant: TenantId, mut delivery: Delivery) -> TxResult<()> {
        let (endpoint, id) = (delivery.endpoint_id, delivery.id);
        let key = ends_key(&tenant, &endpoint);
        delivery.fifo = true;
        match read::<Ends>(self.lines, &key)? {
            Some(mut ends) => {
                let tail = delivery_key(&tenant, &endpoint, &ends.tail);
                self.lines.insert(tail, encode(&Link { next: Some(id) }))?;
                ends.tail = id;
                self.lines.insert(key, encode(&ends))?;
                delivery.next_retry = None;
            }
            None => {
                self.lines
                    .insert(key, encode(&Ends { head: id, tail: id }))?;
                self.enqueue(tenant, &delivery)?;
            }
        }
        let dkey = delivery_key(&tenant, &endpoint, &id);
        self.lines
            .insert(dkey.as_slice(), encode(&Link::default()))?;
        self.deliveries.insert(dkey, encode(&delivery))?;
        Ok(())
    }

    /// Takes `delivery`, which has just ended, out of its line, clearing
    /// its `fifo` mark (the caller writes it), and queues the next delivery
    /// still waiting, due at `now`. Returns when that one is due, if one
    /// was queued. A delivery that is not its line's head is only unmarked:
    /// the line stays as it is.
    pub fn leave(
        &self,
        tenant: TenantId,
        delivery: &mut Delivery,
        now: DateTime<Utc>,
    ) -> TxResult<Option<i64>> {
        delivery.fifo = false;
        let endpoint = delivery.endpoint_id;
        let key = ends_key(&tenant, &endpoint);
        let Some(mut ends) = read::<Ends>(self.lines, &key)? else {
            return Ok(None);
        };
        if ends.head != delivery.id {
            return Ok(None);
        }
        let mut next = self.unlink(&tenant, &endpoint, &delivery.id)?;
        while let Some(id) = next {
            let dkey = delivery_key(&tenant, &endpoint, &id);
            if let Some(mut waiting) = read::<Delivery>(self.deliveries, &dkey)? {
                if waiting.next_retry.is_some() {
                    // Queued already (by a path outside the line): it
                    // heads the line where it is.
                    ends.head = id;
                    self.lines.insert(key, encode(&ends))?;
                    return Ok(None);
                }
                if waiting.status != DeliveryStatus::Delivered {
                    waiting.next_retry = Some(now);
                    let due = self.enqueue(tenant, &waiting)?;
                    self.deliveries.insert(dkey, encode(&waiting))?;
                    ends.head = id;
                    self.lines.insert(key, encode(&ends))?;
                    return Ok(Some(due));
                }
                // Delivered by hand while it waited: passed over.
                waiting.fifo = false;
                self.deliveries.insert(dkey, encode(&waiting))?;
            }
            next = self.unlink(&tenant, &endpoint, &id)?;
        }
        self.lines.remove(key)?;
        Ok(None)
    }

    /// Removes the link of `id`; returns the delivery after it.
    fn unlink(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
    ) -> TxResult<Option<DeliveryId>> {
        let key = delivery_key(tenant, endpoint, id);
        let link: Option<Link> = read(self.lines, &key)?;
        self.lines.remove(key)?;
        Ok(link.and_then(|l| l.next))
    }

    /// Writes the queue entry of `delivery` at its `next_retry`.
    fn enqueue(&self, tenant: TenantId, delivery: &Delivery) -> TxResult<i64> {
        let due = delivery
            .next_retry
            .expect("a delivery is queued at its next_retry")
            .timestamp_millis();
        let entry = QueueEntry::of(tenant, delivery);
        self.queue
            .insert(queue_key(due, &delivery.id), encode(&entry))?;
        Ok(due)
    }
}
