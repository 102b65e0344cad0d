//! Operational events: the gateway's own events about a tenant's endpoints
//! and deliveries (`hookgate.endpoint.disabled`, `hookgate.delivery.failed`,
//! `hookgate.endpoint.recovered`; docs/product.md, "Operational events"),
//! published to the tenant's endpoints that subscribe to them and signed
//! and delivered like any event.
//!
//! Announcing one never fails what caused it: an error is logged. A
//! delivery of an operational event that fails for good announces nothing
//! more, so an endpoint that subscribes to them and fails cannot feed
//! itself.

use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{RetrySchedule, fanout};
use crate::model::delivery::Delivery;
use crate::model::endpoint::Endpoint;
use crate::model::event::Event;
use crate::model::event_type::{DELIVERY_FAILED, ENDPOINT_DISABLED, ENDPOINT_RECOVERED};
use crate::model::ids::TenantId;
use crate::store::Store;

/// Entries waiting in the queue, and the dispatcher's wake-up: shared by
/// the engine and its attempts, which queue operational events.
#[derive(Default)]
pub(super) struct Queued {
    count: AtomicI64,
    pub wake: Notify,
}

impl Queued {
    pub fn new(count: i64) -> Self {
        metrics::gauge!("hookgate_queue_depth").set(count as f64);
        Self {
            count: AtomicI64::new(count),
            wake: Notify::new(),
        }
    }

    pub fn add(&self, delta: i64) {
        let now = self.count.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!("hookgate_queue_depth").set(now as f64);
    }

    /// `count` entries were queued: the dispatcher looks now.
    pub fn queued(&self, count: usize) {
        self.add(count as i64);
        self.wake.notify_one();
    }
}

/// One operational event to announce.
pub(crate) struct Notice {
    tenant: TenantId,
    event_type: &'static str,
    data: Value,
}

impl Notice {
    /// The gateway disabled `endpoint` while recording `delivery`.
    pub fn disabled(endpoint: &Endpoint, delivery: &Delivery, reason: &str) -> Self {
        Self {
            tenant: endpoint.tenant_id,
            event_type: ENDPOINT_DISABLED,
            data: json!({
                "webhook_id": endpoint.id,
                "webhook_name": endpoint.name,
                "delivery_id": delivery.id,
                "event_id": delivery.event_id,
                "reason": reason,
            }),
        }
    }

    /// `delivery` ran out of attempts.
    pub fn failed(endpoint: &Endpoint, delivery: &Delivery) -> Self {
        Self {
            tenant: endpoint.tenant_id,
            event_type: DELIVERY_FAILED,
            data: json!({
                "webhook_id": endpoint.id,
                "webhook_name": endpoint.name,
                "delivery_id": delivery.id,
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "attempts": delivery.attempts.len(),
                "reason": delivery.error.as_deref().unwrap_or("unknown"),
            }),
        }
    }

    /// A disabled `endpoint` is active again, for `reason`.
    pub fn recovered(endpoint: &Endpoint, reason: &str) -> Self {
        Self {
            tenant: endpoint.tenant_id,
            event_type: ENDPOINT_RECOVERED,
            data: json!({
                "webhook_id": endpoint.id,
                "webhook_name": endpoint.name,
                "delivery_id": null,
                "reason": reason,
            }),
        }
    }
}

/// Publishes operational events: the engine's attempts hold one, and the
/// engine lends it to the use cases that re-enable endpoints.
pub(super) struct Announcer {
    pub store: Store,
    pub schedule: RetrySchedule,
    pub queued: std::sync::Arc<Queued>,
}

impl Announcer {
    /// Publishes `notice` to the tenant's endpoints that subscribe to its
    /// type; stores nothing when none does. Errors are logged, not returned.
    pub(crate) async fn announce(&self, notice: Notice) {
        let Notice {
            tenant,
            event_type,
            data,
        } = notice;
        let event = Event::new(tenant, None, event_type, data);
        let deliveries = self.store.with_endpoints(&tenant, |endpoints| {
            let endpoints = endpoints.values().map(|e| e.as_ref());
            fanout::deliveries_for(&event, endpoints, &self.schedule)
        });
        let deliveries = match deliveries {
            Ok(d) if d.is_empty() => return,
            Ok(d) => d,
            Err(e) => {
                tracing::error!(tenant = %tenant, event_type, error = %e, "cannot announce an operational event");
                return;
            }
        };
        let queued = deliveries.iter().filter(|d| d.next_retry.is_some()).count();
        match self.store.publish(event, deliveries, None).await {
            Ok(_) => self.queued.queued(queued),
            Err(e) => {
                tracing::error!(tenant = %tenant, event_type, error = %e, "cannot announce an operational event");
            }
        }
    }
}
