//! The store's boundary: every durable operation the gateway needs, in
//! terms of records and opaque queue positions, never of a storage engine.
//!
//! [`Backend`] is what a storage engine implements (sled here, in
//! [`SledStore`]); [`Store`] is the handle the rest of the gateway holds. The
//! meaning of each operation (what is atomic, what is durable when it
//! returns, which rules it keeps) is the trait's, so every backend keeps the
//! invariants ARCHITECTURE.md lists; `contract.rs` tests them against any
//! backend.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    DeliveryFilter, DueScan, FanOutPermit, NewPlugin, Page, PluginQuota, PublishOutcome,
    QueueEntry, QueueKey, Result, SledStore, StoreError, Stored, TenantEndpoints,
};
use crate::model::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::model::endpoint::Endpoint;
use crate::model::event::Event;
use crate::model::event_type::EventType;
use crate::model::ids::{DeliveryId, EndpointId, KeyId, PluginId, TenantId};
use crate::model::plugin::Plugin;
use crate::model::tenant::{ApiKey, Tenant};

/// How old a record the delivery path reads (`recent_endpoint`,
/// `recent_tenant`) may be: a change made through another gateway sharing
/// the store is obeyed within this time, one made through this gateway at
/// once.
pub const RECENT: Duration = Duration::from_millis(500);

/// A change to a delivery at the end of its attempt: returns when the next
/// attempt is due (ms), or `None` for no further attempt.
pub type DeliveryChange = Box<dyn Fn(&mut Delivery) -> Option<i64> + Send + Sync>;

/// A change to an endpoint; may run more than once (compare-and-swap), and
/// may refuse.
pub type EndpointChange<'a> = &'a mut (dyn FnMut(&mut Endpoint) -> Result<()> + Send);

/// Every durable operation of the gateway. All are `async`, reads too, so a
/// backend over the network (a database server) fits the same boundary as
/// an embedded one. A mutation returns once it is durable, unless noted as
/// bookkeeping the gateway can afford to lose in a crash.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    // The operator.

    /// Makes every write so far durable.
    async fn flush(&self) -> Result<()>;
    /// The process is stopping: gives back the shared work it holds and
    /// makes every write so far durable.
    async fn close(&self) -> Result<()>;
    /// Whether the store answers reads.
    async fn is_ready(&self) -> bool;
    async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>>;
    async fn set_admin_token_hash(&self, hash: [u8; 32]) -> Result<()>;

    // Tenants and their keys.

    async fn create_tenant(&self, tenant: &Tenant) -> Result<()>;
    /// Creates the tenant with `catalog` besides the built-in types, all or
    /// nothing.
    async fn create_tenant_with(&self, tenant: &Tenant, catalog: &[EventType]) -> Result<()>;
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;
    /// The tenant as attempts read it, possibly a shared copy.
    async fn tenant_record(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>>;
    /// The tenant as the delivery path reads it, at most [`RECENT`] old
    /// (see [`Backend::recent_endpoint`]).
    async fn recent_tenant(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>> {
        self.tenant_record(id).await
    }
    async fn update_tenant(&self, tenant: &Tenant) -> Result<()>;
    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Page<Tenant>>;
    /// Deletes the tenant and everything it owns.
    async fn delete_tenant(&self, id: &TenantId) -> Result<bool>;
    async fn create_key(&self, key: &ApiKey, token_hash: [u8; 32]) -> Result<()>;
    async fn list_keys(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ApiKey>>;
    async fn delete_key(&self, tenant: &TenantId, id: &KeyId) -> Result<bool>;
    async fn key_by_token_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>>;

    // The event type catalog.

    async fn create_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()>;
    async fn get_event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>>;
    async fn list_event_types(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<EventType>>;
    async fn event_type_names(&self, tenant: &TenantId) -> Result<Vec<String>>;
    async fn update_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()>;
    /// Refused (`Conflict`) while an endpoint subscribes to it by name,
    /// atomically with endpoint writes.
    async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<bool>;

    // Endpoints.

    /// Refused (`Conflict`) if an event type or plugin it names was deleted.
    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<()>;
    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Arc<Endpoint>>>;
    /// The endpoint as the delivery path reads it: what [`get_endpoint`]
    /// gave at most [`RECENT`] ago, or after this process's last change
    /// to it. A backend that reads cheaply reads it afresh.
    ///
    /// [`get_endpoint`]: Backend::get_endpoint
    async fn recent_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Arc<Endpoint>>> {
        self.get_endpoint(tenant, id).await
    }
    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Endpoint>>;
    /// Lends every endpoint of the tenant to `read`, in creation order.
    async fn read_endpoints(
        &self,
        tenant: &TenantId,
        read: &mut (dyn for<'e> FnMut(&'e TenantEndpoints) + Send),
    ) -> Result<()>;
    /// Applies `change` atomically; durable when it returns.
    async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: EndpointChange<'_>,
    ) -> Result<Endpoint>;
    /// Applies `change` atomically, without waiting for durability: for
    /// bookkeeping a crash may lose (the last delivery).
    async fn modify_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: EndpointChange<'_>,
    ) -> Result<Endpoint>;
    /// Deletes the endpoint, its log and every scheduled attempt.
    async fn delete_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<bool>;

    // Events, their fan-out and the queue.

    /// Takes room for `endpoints` deliveries in the fan-out budget, when a
    /// publish is that large.
    async fn reserve_fan_out(&self, endpoints: usize) -> Option<FanOutPermit>;
    /// Stores an event with its deliveries and their queue entries, all or
    /// nothing (an idempotent repeat stores nothing).
    async fn publish_reserved(
        &self,
        event: Event,
        deliveries: Vec<Delivery>,
        idempotency_key: Option<&str>,
        reserved: Option<FanOutPermit>,
    ) -> Result<PublishOutcome>;
    async fn get_event(&self, tenant: &TenantId, id: &str) -> Result<Option<Event>>;
    /// The event as the delivery path reads it: events never change, so a
    /// backend may keep those it published or read (one removed by
    /// retention may still be found for a while).
    async fn recent_event(&self, tenant: &TenantId, id: &str) -> Result<Option<Event>> {
        self.get_event(tenant, id).await
    }
    /// The `(endpoint, delivery)` pairs an event was fanned out to.
    async fn event_deliveries(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Vec<(EndpointId, DeliveryId)>>;
    /// Adds new deliveries (at most `FANOUT_CHUNK`) to a stored event, with
    /// their queue entries, all or nothing; `NotFound` if the event is gone.
    async fn add_deliveries(
        &self,
        tenant: &TenantId,
        event_id: &str,
        deliveries: &[Delivery],
    ) -> Result<()>;
    /// Stores an event made for a test send, with no fan-out.
    async fn put_event(&self, event: &Event) -> Result<()>;
    /// Up to `limit` queue entries due at `now_ms`, oldest first, after
    /// `after` (from the front when `None`). Where several processes share
    /// the queue, each entry is handed to one of them, and stays that
    /// one's until its attempt ends ([`Backend::finish_attempt`]), it is
    /// given back ([`Backend::release`]), or that process stops.
    async fn due(&self, after: Option<&QueueKey>, now_ms: u64, limit: usize) -> Result<DueScan>;
    /// [`Backend::due`], free to leave out the entries of the `passed`
    /// endpoints: the caller would pass over them (older entries of those
    /// endpoints already wait for it), so on a queue shared by several
    /// processes each one read would be claimed only to be given back. By
    /// default they are returned like any other.
    async fn due_passing(
        &self,
        after: Option<&QueueKey>,
        now_ms: u64,
        limit: usize,
        passed: &[EndpointId],
    ) -> Result<DueScan> {
        let _ = passed;
        self.due(after, now_ms, limit).await
    }
    /// Gives back entries [`Backend::due`] returned that this process will
    /// not start now, so that another process sharing the queue may.
    async fn release(&self, keys: &[QueueKey]) -> Result<()>;
    /// Returns when another process sharing the queue queued work; never
    /// where this process has the queue to itself.
    async fn queued_elsewhere(&self);
    /// This process's part of the limits that hold over every process
    /// sharing the store together (each endpoint's in-flight and rate
    /// limits).
    fn share(&self) -> Share;
    /// The earliest due time (ms) of the entries queued since the last call.
    fn take_queued_since(&self) -> Option<u64>;
    /// Entries waiting in the queue.
    async fn queue_len(&self) -> Result<usize>;
    /// Ends an attempt: `change` updates the delivery and says when it is
    /// due next; its entry moves there or goes, with the delivery, all or
    /// nothing. `None` if the delivery is gone.
    async fn finish_attempt(
        &self,
        key: &QueueKey,
        entry: &QueueEntry,
        change: DeliveryChange,
    ) -> Result<Option<Delivery>>;

    // Delivery logs.

    async fn get_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>>;
    /// Records an attempt made outside the schedule; with whether it took
    /// the delivery off the queue.
    async fn record_manual_attempt(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        attempt: &Attempt,
    ) -> Result<Option<(Delivery, bool)>>;
    /// Ends a delivery without a request (filtered, plugin failure).
    async fn settle_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        status: DeliveryStatus,
        reason: &str,
    ) -> Result<Option<Delivery>>;
    async fn insert_delivery(&self, tenant: &TenantId, delivery: &Delivery) -> Result<()>;
    /// Queues again, due at `now`, each delivery of the endpoint that ended
    /// `failed` in the window `(since, until)` (test sends aside), each with
    /// its queue entry, or when `fifo` at the end of the endpoint's line,
    /// oldest first; returns how many.
    async fn recover_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        window: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
        fifo: bool,
    ) -> Result<usize>;
    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
        cursor: Option<&DeliveryId>,
        limit: usize,
    ) -> Result<Page<Delivery>>;
    /// Removes logs older than `cutoff`; returns how many.
    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize>;

    // Plugins.

    /// Stores the next version of a name, numbered and checked against the
    /// quota atomically.
    async fn create_plugin(&self, new: NewPlugin<'_>, quota: PluginQuota) -> Result<Stored>;
    async fn get_plugin(&self, tenant: &TenantId, id: &PluginId) -> Result<Option<Arc<Plugin>>>;
    async fn list_plugins(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plugin>>;
    async fn all_plugins(&self, tenant: &TenantId) -> Result<Vec<Plugin>>;
    /// Refused (`Conflict`) while a chain holds it, atomically with
    /// endpoint writes; its content goes when no record refers to it.
    async fn delete_plugin(&self, plugin: &Plugin) -> Result<bool>;
    async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    async fn plugin_artifact(&self, sha256: &str, engine: &str) -> Result<Option<Vec<u8>>>;
    /// Caches machine code; may be lost, as it can be made again.
    async fn put_plugin_artifact(&self, sha256: &str, engine: &str, artifact: &[u8]) -> Result<()>;
}

/// One process's part of a limit every process sharing a store keeps
/// together: the parts of the `count` processes add up to the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// This process's place among them, from 0.
    pub rank: usize,
    pub count: usize,
}

impl Share {
    /// The share of a process alone.
    pub const WHOLE: Self = Self { rank: 0, count: 1 };

    /// This process's part of `limit` slots: `limit / count`, and one more
    /// for the first `limit % count` processes. Zero when there are more
    /// processes than slots and this one's place is past them.
    pub fn of(self, limit: usize) -> usize {
        let count = self.count.max(1);
        limit / count + usize::from(self.rank < limit % count)
    }

    /// This process's part of a rate.
    pub fn of_rate(self, rate: f64) -> f64 {
        rate / self.count.max(1) as f64
    }
}

/// The handle the gateway holds: one backend, shared. Cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl std::ops::Deref for Store {
    type Target = dyn Backend + 'static;

    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.0
    }
}

impl Store {
    /// The store on embedded sled in `dir`.
    pub fn open(dir: &std::path::Path, cache_bytes: u64) -> Result<Self> {
        Ok(Self::on(SledStore::open(dir, cache_bytes)?))
    }

    pub fn on(backend: impl Backend + 'static) -> Self {
        Self(Arc::new(backend))
    }

    /// Runs `read` on every endpoint of the tenant, in creation order.
    pub async fn with_endpoints<R>(
        &self,
        tenant: &TenantId,
        read: impl FnOnce(&TenantEndpoints) -> R + Send,
    ) -> Result<R>
    where
        R: Send,
    {
        let mut read = Some(read);
        let mut out = None;
        self.0
            .read_endpoints(tenant, &mut |endpoints| {
                if let Some(read) = read.take() {
                    out = Some(read(endpoints));
                }
            })
            .await?;
        Ok(out.expect("read_endpoints lends the endpoints once"))
    }

    /// Applies `change` to the endpoint atomically; durable when it returns.
    /// `change` may run more than once, and may refuse with its own error.
    pub async fn update_endpoint<E: From<StoreError> + Send>(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        mut change: impl FnMut(&mut Endpoint) -> std::result::Result<(), E> + Send,
    ) -> std::result::Result<Endpoint, E> {
        let mut refusal = None;
        let mut adapted = |e: &mut Endpoint| refused(change(e), &mut refusal);
        let result = self.0.update_endpoint(tenant, id, &mut adapted).await;
        settle(result, refusal)
    }

    /// [`Store::update_endpoint`] without waiting for durability.
    pub async fn modify_endpoint<E: From<StoreError> + Send>(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        mut change: impl FnMut(&mut Endpoint) -> std::result::Result<(), E> + Send,
    ) -> std::result::Result<Endpoint, E> {
        let mut refusal = None;
        let mut adapted = |e: &mut Endpoint| refused(change(e), &mut refusal);
        let result = self.0.modify_endpoint(tenant, id, &mut adapted).await;
        settle(result, refusal)
    }

    /// Ends an attempt (see [`Backend::finish_attempt`]).
    pub async fn finish_attempt(
        &self,
        key: &QueueKey,
        entry: &QueueEntry,
        change: impl Fn(&mut Delivery) -> Option<i64> + Send + Sync + 'static,
    ) -> Result<Option<Delivery>> {
        self.0.finish_attempt(key, entry, Box::new(change)).await
    }

    /// Stores an event with its deliveries (see [`Backend::publish_reserved`]).
    pub async fn publish(
        &self,
        event: Event,
        deliveries: Vec<Delivery>,
        idempotency_key: Option<&str>,
    ) -> Result<PublishOutcome> {
        let reserved = self.0.reserve_fan_out(deliveries.len()).await;
        self.0
            .publish_reserved(event, deliveries, idempotency_key, reserved)
            .await
    }
}

/// A caller's refusal, kept aside while the backend sees `Refused`.
fn refused<E>(result: std::result::Result<(), E>, kept: &mut Option<E>) -> Result<()> {
    result.map_err(|e| {
        *kept = Some(e);
        StoreError::Refused
    })
}

fn settle<E: From<StoreError>>(
    result: Result<Endpoint>,
    refusal: Option<E>,
) -> std::result::Result<Endpoint, E> {
    match (result, refusal) {
        (Err(_), Some(refusal)) => Err(refusal),
        (result, _) => result.map_err(E::from),
    }
}
