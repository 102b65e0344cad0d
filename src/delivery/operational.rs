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
    /// The attempts of the last minute.
    pub recent: Recent,
}

impl Queued {
    pub fn new(count: i64) -> Self {
        metrics::gauge!("hookgate_queue_depth").set(count as f64);
        Self {
            count: AtomicI64::new(count),
            wake: Notify::new(),
            recent: Recent::default(),
        }
    }

    /// Entries waiting now.
    pub fn count(&self) -> i64 {
        self.count.load(Ordering::Relaxed)
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

/// Attempts over the last minute, second by second: what the operator's
/// view shows as deliveries per second and failure rate.
pub(super) struct Recent(std::sync::Mutex<[(u64, u32, u32); 60]>);

impl Default for Recent {
    fn default() -> Self {
        Self(std::sync::Mutex::new([(0, 0, 0); 60]))
    }
}

/// The recent rates, over the last 10 s (per second) and 60 s (share).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub delivered_per_second: f64,
    pub failed_per_second: f64,
    /// Failed attempts among all attempts of the last minute (0 when none).
    pub failure_rate: f64,
    pub attempts_last_minute: u64,
}

impl Recent {
    /// Notes one attempt's outcome at `second` (Unix time).
    pub fn record(&self, second: u64, success: bool) {
        let mut buckets = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = &mut buckets[(second % 60) as usize];
        if bucket.0 != second {
            *bucket = (second, 0, 0);
        }
        match success {
            true => bucket.1 += 1,
            false => bucket.2 += 1,
        }
    }

    /// The rates as of `second` (Unix time), the current second left out.
    pub fn rates(&self, second: u64) -> Rates {
        let buckets = *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let within = |span: u64| {
            buckets
                .iter()
                .filter(|(at, ..)| *at < second && second - at <= span)
                .fold((0u64, 0u64), |(ok, bad), (_, o, b)| {
                    (ok + *o as u64, bad + *b as u64)
                })
        };
        let (ok10, bad10) = within(10);
        let (ok60, bad60) = within(60);
        let all = ok60 + bad60;
        Rates {
            delivered_per_second: ok10 as f64 / 10.0,
            failed_per_second: bad10 as f64 / 10.0,
            failure_rate: if all == 0 {
                0.0
            } else {
                bad60 as f64 / all as f64
            },
            attempts_last_minute: all,
        }
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
        let deliveries = self
            .store
            .with_endpoints(&tenant, |endpoints| {
                let endpoints = endpoints.values().map(|e| e.as_ref());
                fanout::deliveries_for(&event, endpoints, &self.schedule)
            })
            .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_cover_the_last_seconds_and_forget_older_ones() {
        let recent = Recent::default();
        for second in 1000..1010 {
            for _ in 0..9 {
                recent.record(second, true);
            }
            recent.record(second, false);
        }
        // The current second is not counted yet.
        recent.record(1010, false);
        let rates = recent.rates(1010);
        assert_eq!(rates.delivered_per_second, 9.0);
        assert_eq!(rates.failed_per_second, 1.0);
        assert_eq!(rates.attempts_last_minute, 100);
        assert!((rates.failure_rate - 0.1).abs() < 1e-9);
        // A minute later all of it is gone, though the slots are reused.
        let later = recent.rates(1075);
        assert_eq!(later.attempts_last_minute, 0);
        assert_eq!(later.failure_rate, 0.0);
        recent.record(1075, true);
        assert_eq!(recent.rates(1076).attempts_last_minute, 1);
    }
}
