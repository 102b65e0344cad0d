//! The keys of delivery rows and queue entries, and what an entry holds:
//! shared by the modules that write them (`deliveries.rs`, `events.rs`,
//! `lines.rs`); the layout is documented in `deliveries.rs`.

use serde::{Deserialize, Serialize};

use crate::model::delivery::Delivery;
use crate::model::ids::{DeliveryId, EndpointId, TenantId};

/// What the queue holds for one scheduled attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueEntry {
    pub tenant: TenantId,
    pub endpoint: EndpointId,
    pub delivery: DeliveryId,
    /// The head of a FIFO line (`lines.rs`): the next delivery waits for
    /// this one's result, so the result is written without waiting for
    /// company.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fifo: bool,
}

impl QueueEntry {
    /// The entry that queues `delivery`, a FIFO line's head when the
    /// delivery is in a line.
    pub(super) fn of(tenant: TenantId, delivery: &Delivery) -> Self {
        Self {
            tenant,
            endpoint: delivery.endpoint_id,
            delivery: delivery.id,
            fifo: delivery.fifo,
        }
    }
}

pub(super) fn queue_key(due_ms: i64, id: &DeliveryId) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    key.extend_from_slice(&(due_ms.max(0) as u64).to_be_bytes());
    key.extend_from_slice(&id.ulid().to_bytes());
    key
}

pub(super) fn delivery_key(tenant: &TenantId, endpoint: &EndpointId, id: &DeliveryId) -> Vec<u8> {
    format!("{tenant}/{endpoint}/{id}").into_bytes()
}
