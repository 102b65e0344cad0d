//! Published events and their idempotency keys.
//!
//! Events are keyed `{tenant_id}/{event id}`; producer-chosen idempotency keys
//! `{tenant_id}/{key}` point at the event they first created. A publish writes
//! the event, the list of its deliveries, the deliveries and their queue
//! entries in one transaction.

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::deliveries::{QueueEntry, delivery_key, queue_key};
use super::{Result, Store, StoreError, decode, encode, scoped_key};
use crate::delivery::Delivery;
use crate::event::Event;
use crate::ids::{DeliveryId, EndpointId, TenantId};

/// What a publish did.
#[derive(Debug)]
pub enum PublishOutcome {
    /// The event is new; its deliveries are queued.
    Created(Event),
    /// The id or idempotency key was seen before: nothing was written, and
    /// this is the first event.
    Duplicate(Event),
}

impl Store {
    /// Stores an event with its deliveries, queuing those with a
    /// `next_retry`, unless
    /// its id or idempotency key already exists. Durable when it returns.
    pub async fn publish(
        &self,
        event: Event,
        deliveries: Vec<Delivery>,
        idempotency_key: Option<&str>,
    ) -> Result<PublishOutcome> {
        let tenant = event.tenant_id;
        let event_key = scoped_key(&tenant, &event.id);
        let idem_key = idempotency_key.map(|k| scoped_key(&tenant, k));
        let event_value = encode(&event);
        let list: Vec<(EndpointId, DeliveryId)> =
            deliveries.iter().map(|d| (d.endpoint_id, d.id)).collect();
        let list_value = encode(&list);
        let rows: Vec<_> = deliveries
            .iter()
            .map(|d| {
                let queued = d.next_retry.map(|due| {
                    let entry = QueueEntry {
                        tenant,
                        endpoint: d.endpoint_id,
                        delivery: d.id,
                    };
                    (queue_key(due.timestamp_millis(), &d.id), encode(&entry))
                });
                (
                    delivery_key(&tenant, &d.endpoint_id, &d.id),
                    encode(d),
                    queued,
                )
            })
            .collect();

        let existing = (
            &self.events,
            &self.event_deliveries,
            &self.idempotency,
            &self.deliveries,
            &self.queue,
        )
            .transaction(|(events, lists, idem, dels, queue)| {
                let earlier = match &idem_key {
                    Some(k) => match idem.get(k)? {
                        Some(id) => {
                            events.get(scoped_key(&tenant, String::from_utf8_lossy(&id)))?
                        }
                        None => None,
                    },
                    None => None,
                };
                let earlier = match earlier {
                    Some(e) => Some(e),
                    None => events.get(event_key.as_slice())?,
                };
                if let Some(earlier) = earlier {
                    return Ok(Some(earlier));
                }
                events.insert(event_key.as_slice(), event_value.as_slice())?;
                lists.insert(event_key.as_slice(), list_value.as_slice())?;
                if let Some(k) = &idem_key {
                    idem.insert(k.as_slice(), event.id.as_bytes())?;
                }
                for (dkey, dvalue, queued) in &rows {
                    dels.insert(dkey.as_slice(), dvalue.as_slice())?;
                    if let Some((qkey, qvalue)) = queued {
                        queue.insert(qkey.as_slice(), qvalue.as_slice())?;
                    }
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(None)
            })?;
        match existing {
            Some(bytes) => Ok(PublishOutcome::Duplicate(decode(&bytes)?)),
            None => {
                self.flush().await?;
                Ok(PublishOutcome::Created(event))
            }
        }
    }

    pub fn get_event(&self, tenant: &TenantId, id: &str) -> Result<Option<Event>> {
        self.events
            .get(scoped_key(tenant, id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The `(endpoint, delivery)` pairs an event was fanned out to.
    pub fn event_deliveries(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Vec<(EndpointId, DeliveryId)>> {
        Ok(self
            .event_deliveries
            .get(scoped_key(tenant, id))?
            .map(|v| decode(&v))
            .transpose()?
            .unwrap_or_default())
    }

    /// Stores an event made for a test send, with no fan-out.
    pub fn put_event(&self, event: &Event) -> Result<()> {
        self.events
            .insert(scoped_key(&event.tenant_id, &event.id), encode(event))?;
        Ok(())
    }
}
