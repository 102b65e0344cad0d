//! The store: every durable fact of the gateway, over embedded sled
//! (docs/product.md, "Storage").
//!
//! Nothing outside this module touches sled. Records are values in
//! per-kind trees, JSON but for the few written per delivery, which are
//! compact (`record.rs` says which and how); items that belong to a tenant are keyed `{tenant_id}/{id}`
//! so a tenant's items list in creation order (ids are ULIDs) by a prefix scan
//! that never reads another tenant's keys. Writes that must stay together run
//! in sled transactions (the hot paths' grouped by `writer`, several to one
//! transaction), and every mutation is flushed before it returns, so an API
//! answer of 2xx means the change survives a crash.

mod backend;
mod commit;
#[cfg(test)]
mod contract;
mod deliveries;
mod endpoints;
mod event_types;
mod events;
mod kept;
mod keys;
mod lines;
mod migrations;
mod plugins;
mod postgres;
mod recent_events;
mod record;
mod rows;
mod tenants;
mod writer;

pub use backend::{Backend, DeliveryChange, EndpointChange, RECENT, Share, Store};
pub use deliveries::{DeliveryFilter, DueScan, QueueKey};
pub use endpoints::TenantEndpoints;
pub use events::{FANOUT_CHUNK, FanOutPermit, PublishOutcome};
pub use plugins::{NewPlugin, PluginQuota, Stored};
pub use postgres::{PgOptions, PgStore};
pub use rows::QueueEntry;

use std::ops::Bound;

use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::Arc;

use sled::transaction::TransactionError;

use record::Record;

use crate::model::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::model::endpoint::Endpoint;
use crate::model::event::Event;
use crate::model::event_type::EventType;
use crate::model::ids::{DeliveryId, EndpointId, KeyId, PluginId, TenantId};
use crate::model::plugin::Plugin;
use crate::model::tenant::{ApiKey, Tenant};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk, corruption, I/O).
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("a stored record cannot be read: {0}")]
    Corrupt(String),
    #[error("cannot make writes durable: {0}")]
    Flush(String),
    #[error("cannot write: {0}")]
    Write(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A quota would be passed; the request asked for more than allowed.
    #[error("{0}")]
    LimitReached(String),
    /// The caller's change refused itself (see `Store::update_endpoint`).
    #[error("the change was refused")]
    Refused,
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<postcard::Error> for StoreError {
    fn from(e: postcard::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One page of a listing, in key order, with the cursor of the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `after` to get the following page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// The store on embedded sled; cheap to clone: one reference count.
#[derive(Clone)]
pub struct SledStore(Arc<Shared>);

/// The trees and in-memory state every handle of one store shares.
pub struct Shared {
    meta: sled::Tree,
    tenants: sled::Tree,
    keys: sled::Tree,
    key_hashes: sled::Tree,
    endpoints: sled::Tree,
    endpoint_cache: endpoints::EndpointCache,
    event_types: sled::Tree,
    events: sled::Tree,
    recent_events: recent_events::RecentEvents,
    plugin_records: plugins::PluginRecords,
    tenant_records: tenants::TenantRecords,
    /// Held while a plugin's content is stored or checked for removal.
    plugin_contents: plugins::ContentLock,
    queued_since: deliveries::QueuedSince,
    /// `{tenant}/{event id}` → the event's `(endpoint, delivery)` pairs. Kept
    /// apart from the event, which every attempt reads: with thousands of
    /// endpoints the list is far larger than the event itself.
    event_deliveries: sled::Tree,
    /// `{tenant}/{event id}` → `(tenant, deliveries)` of a fan-out still
    /// being written (see `Store::publish`).
    fanouts: sled::Tree,
    fanout_budget: Arc<tokio::sync::Semaphore>,
    idempotency: sled::Tree,
    deliveries: sled::Tree,
    queue: sled::Tree,
    /// Each FIFO endpoint's deliveries in order (`lines.rs`).
    lines: sled::Tree,
    plugins: sled::Tree,
    plugin_blobs: sled::Tree,
    plugin_artifacts: sled::Tree,
    committer: commit::GroupCommit,
    writer: writer::Writer,
}

impl std::ops::Deref for SledStore {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

const ADMIN_TOKEN_HASH: &[u8] = b"admin_token_sha256";

impl SledStore {
    /// Opens (or creates) the store in `dir`. sled locks the directory, so a
    /// second gateway on the same data dir fails here instead of corrupting it.
    /// `cache_bytes` bounds the memory sled caches pages in. An older layout
    /// is brought up to date (`migrations`), and fan-outs a crash
    /// interrupted are finished, before anything reads the store.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()?;
        let events = db.open_tree("events")?;
        let event_deliveries = db.open_tree("event_deliveries")?;
        let fanouts = db.open_tree("fanouts")?;
        let idempotency = db.open_tree("idempotency_keys")?;
        let deliveries = db.open_tree("deliveries")?;
        let queue = db.open_tree("queue")?;
        let lines = db.open_tree("lines")?;
        let writer = writer::Writer::start(writer::Trees {
            events: events.clone(),
            event_deliveries: event_deliveries.clone(),
            idempotency: idempotency.clone(),
            deliveries: deliveries.clone(),
            queue: queue.clone(),
            fanouts: fanouts.clone(),
            lines: lines.clone(),
        });
        let store = Self(Arc::new(Shared {
            meta: db.open_tree("meta")?,
            tenants: db.open_tree("tenants")?,
            keys: db.open_tree("api_keys")?,
            key_hashes: db.open_tree("api_key_hashes")?,
            endpoints: db.open_tree("endpoints")?,
            endpoint_cache: Default::default(),
            event_types: db.open_tree("event_types")?,
            events,
            recent_events: Default::default(),
            plugin_records: Default::default(),
            tenant_records: Default::default(),
            plugin_contents: Default::default(),
            queued_since: Default::default(),
            event_deliveries,
            fanouts,
            fanout_budget: Arc::new(tokio::sync::Semaphore::new(events::FANOUT_BUDGET)),
            idempotency,
            deliveries,
            queue,
            lines,
            plugins: db.open_tree("plugins")?,
            plugin_blobs: db.open_tree("plugin_blobs")?,
            plugin_artifacts: db.open_tree("plugin_artifacts")?,
            committer: commit::GroupCommit::start(db.clone()),
            writer,
        }));
        let migrated = migrations::migrate(&store, &db)?;
        if migrated | (store.resume_fan_outs()? > 0) {
            db.flush()?;
        }
        Ok(store)
    }

    /// Makes every write so far durable. Concurrent callers share one fsync.
    pub async fn flush(&self) -> Result<()> {
        self.committer.commit().await.map_err(StoreError::Flush)
    }

    /// Whether the store answers reads (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.meta.get(ADMIN_TOKEN_HASH).is_ok()
    }

    pub fn admin_token_hash(&self) -> Result<Option<[u8; 32]>> {
        Ok(self
            .meta
            .get(ADMIN_TOKEN_HASH)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok()))
    }

    pub async fn set_admin_token_hash(&self, hash: [u8; 32]) -> Result<()> {
        self.meta.insert(ADMIN_TOKEN_HASH, &hash[..])?;
        self.flush().await
    }
}

fn encode<T: Record>(value: &T) -> Vec<u8> {
    value.to_value()
}

fn decode<T: Record>(bytes: &[u8]) -> Result<T> {
    T::from_value(bytes)
}

/// The key of a tenant's item: `{tenant_id}/{item}`.
fn scoped_key(tenant: &TenantId, item: impl std::fmt::Display) -> Vec<u8> {
    format!("{tenant}/{item}").into_bytes()
}

fn tenant_prefix(tenant: &TenantId) -> Vec<u8> {
    format!("{tenant}/").into_bytes()
}

/// Reads up to `limit` records under `prefix`, starting after the item named
/// by `after` (the part of the key behind the prefix).
fn list_page<T: Record>(
    tree: &sled::Tree,
    prefix: &[u8],
    after: Option<&str>,
    limit: usize,
    cursor_of: impl Fn(&T) -> String,
) -> Result<Page<T>> {
    let start = match after {
        Some(after) => Bound::Excluded([prefix, after.as_bytes()].concat()),
        None => Bound::Included(prefix.to_vec()),
    };
    let mut items = Vec::with_capacity(limit.min(256));
    let mut more = false;
    for entry in tree.range((start, Bound::Unbounded)) {
        let (key, value) = entry?;
        if !key.starts_with(prefix) {
            break;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(decode(&value)?);
    }
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(cursor_of(last)),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// All keys under `prefix`, for deletes that span a tenant.
fn keys_with_prefix(tree: &sled::Tree, prefix: &[u8]) -> Result<Vec<sled::IVec>> {
    tree.scan_prefix(prefix)
        .keys()
        .collect::<Result<_, _>>()
        .map_err(Into::into)
}

/// sled as a [`Backend`]: each operation is the inherent method of the same
/// name, in this module's files.
#[async_trait::async_trait]
impl Backend for SledStore {
    async fn flush(&self) -> Result<()> {
        SledStore::flush(self).await
    }
    async fn close(&self) -> Result<()> {
        // No other process can hold the directory's lock: nothing is shared.
        SledStore::flush(self).await
    }
    async fn release(&self, _keys: &[QueueKey]) -> Result<()> {
        // The queue is this process's alone: an entry not started stays
        // due for its next scan.
        Ok(())
    }
    async fn queued_elsewhere(&self) {
        std::future::pending().await
    }
    fn share(&self) -> Share {
        Share::WHOLE
    }
    async fn is_ready(&self) -> bool {
        SledStore::is_ready(self)
    }
    async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>> {
        SledStore::admin_token_hash(self)
    }
    async fn set_admin_token_hash(&self, hash: [u8; 32]) -> Result<()> {
        SledStore::set_admin_token_hash(self, hash).await
    }
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        SledStore::create_tenant(self, tenant).await
    }
    async fn create_tenant_with(&self, tenant: &Tenant, catalog: &[EventType]) -> Result<()> {
        SledStore::create_tenant_with(self, tenant, catalog).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        SledStore::get_tenant(self, id)
    }
    async fn tenant_record(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>> {
        SledStore::tenant_record(self, id)
    }
    async fn update_tenant(&self, tenant: &Tenant) -> Result<()> {
        SledStore::update_tenant(self, tenant).await
    }
    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Page<Tenant>> {
        SledStore::list_tenants(self, after, limit)
    }
    async fn delete_tenant(&self, id: &TenantId) -> Result<bool> {
        SledStore::delete_tenant(self, id).await
    }
    async fn create_key(&self, key: &ApiKey, token_hash: [u8; 32]) -> Result<()> {
        SledStore::create_key(self, key, token_hash).await
    }
    async fn list_keys(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ApiKey>> {
        SledStore::list_keys(self, tenant, after, limit)
    }
    async fn delete_key(&self, tenant: &TenantId, id: &KeyId) -> Result<bool> {
        SledStore::delete_key(self, tenant, id).await
    }
    async fn key_by_token_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        SledStore::key_by_token_hash(self, hash)
    }
    async fn create_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()> {
        SledStore::create_event_type(self, tenant, et).await
    }
    async fn get_event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>> {
        SledStore::get_event_type(self, tenant, name)
    }
    async fn list_event_types(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<EventType>> {
        SledStore::list_event_types(self, tenant, after, limit)
    }
    async fn event_type_names(&self, tenant: &TenantId) -> Result<Vec<String>> {
        SledStore::event_type_names(self, tenant)
    }
    async fn update_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()> {
        SledStore::update_event_type(self, tenant, et).await
    }
    async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<bool> {
        SledStore::delete_event_type(self, tenant, name).await
    }
    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        SledStore::create_endpoint(self, endpoint).await
    }
    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Arc<Endpoint>>> {
        SledStore::get_endpoint(self, tenant, id)
    }
    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Endpoint>> {
        SledStore::list_endpoints(self, tenant, after, limit)
    }
    async fn read_endpoints(
        &self,
        tenant: &TenantId,
        read: &mut (dyn for<'e> FnMut(&'e TenantEndpoints) + Send),
    ) -> Result<()> {
        SledStore::with_endpoints(self, tenant, |endpoints| read(endpoints))
    }
    async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: EndpointChange<'_>,
    ) -> Result<Endpoint> {
        SledStore::update_endpoint(self, tenant, id, change).await
    }
    async fn modify_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: EndpointChange<'_>,
    ) -> Result<Endpoint> {
        SledStore::modify_endpoint(self, tenant, id, change)
    }
    async fn delete_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<bool> {
        SledStore::delete_endpoint(self, tenant, id).await
    }
    async fn reserve_fan_out(&self, endpoints: usize) -> Option<FanOutPermit> {
        SledStore::reserve_fan_out(self, endpoints).await
    }
    async fn publish_reserved(
        &self,
        event: Event,
        deliveries: Vec<Delivery>,
        idempotency_key: Option<&str>,
        reserved: Option<FanOutPermit>,
    ) -> Result<PublishOutcome> {
        SledStore::publish_reserved(self, event, deliveries, idempotency_key, reserved).await
    }
    async fn get_event(&self, tenant: &TenantId, id: &str) -> Result<Option<Event>> {
        SledStore::get_event(self, tenant, id)
    }
    async fn event_deliveries(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Vec<(EndpointId, DeliveryId)>> {
        SledStore::event_deliveries(self, tenant, id)
    }
    async fn put_event(&self, event: &Event) -> Result<()> {
        SledStore::put_event(self, event)
    }
    async fn due(&self, after: Option<&QueueKey>, now_ms: u64, limit: usize) -> Result<DueScan> {
        SledStore::due(self, after, now_ms, limit)
    }
    fn take_queued_since(&self) -> Option<u64> {
        SledStore::take_queued_since(self)
    }
    async fn queue_len(&self) -> Result<usize> {
        Ok(SledStore::queue_len(self))
    }
    async fn finish_attempt(
        &self,
        key: &QueueKey,
        entry: &QueueEntry,
        change: DeliveryChange,
    ) -> Result<Option<Delivery>> {
        SledStore::finish_attempt(self, key, entry, change).await
    }
    async fn get_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>> {
        SledStore::get_delivery(self, tenant, endpoint, id)
    }
    async fn record_manual_attempt(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        attempt: &Attempt,
    ) -> Result<Option<(Delivery, bool)>> {
        SledStore::record_manual_attempt(self, tenant, endpoint, id, attempt).await
    }
    async fn settle_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        status: DeliveryStatus,
        reason: &str,
    ) -> Result<Option<Delivery>> {
        SledStore::settle_delivery(self, tenant, endpoint, id, status, reason).await
    }
    async fn insert_delivery(&self, tenant: &TenantId, delivery: &Delivery) -> Result<()> {
        SledStore::insert_delivery(self, tenant, delivery).await
    }
    async fn recover_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        window: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
        fifo: bool,
    ) -> Result<usize> {
        SledStore::recover_deliveries(self, tenant, endpoint, window, now, fifo).await
    }
    async fn add_deliveries(
        &self,
        tenant: &TenantId,
        event_id: &str,
        deliveries: &[Delivery],
    ) -> Result<()> {
        SledStore::add_deliveries(self, tenant, event_id, deliveries).await
    }
    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
        cursor: Option<&DeliveryId>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        SledStore::list_deliveries(self, tenant, endpoint, filter, cursor, limit)
    }
    async fn prune(&self, cutoff: chrono::DateTime<chrono::Utc>) -> Result<usize> {
        SledStore::prune(self, cutoff).await
    }
    async fn create_plugin(&self, new: NewPlugin<'_>, quota: PluginQuota) -> Result<Stored> {
        SledStore::create_plugin(self, new, quota).await
    }
    async fn get_plugin(&self, tenant: &TenantId, id: &PluginId) -> Result<Option<Arc<Plugin>>> {
        SledStore::get_plugin(self, tenant, id)
    }
    async fn list_plugins(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plugin>> {
        SledStore::list_plugins(self, tenant, after, limit)
    }
    async fn all_plugins(&self, tenant: &TenantId) -> Result<Vec<Plugin>> {
        SledStore::all_plugins(self, tenant)
    }
    async fn delete_plugin(&self, plugin: &Plugin) -> Result<bool> {
        SledStore::delete_plugin(self, plugin).await
    }
    async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        SledStore::plugin_blob(self, sha256)
    }
    async fn plugin_artifact(&self, sha256: &str, engine: &str) -> Result<Option<Vec<u8>>> {
        SledStore::plugin_artifact(self, sha256, engine)
    }
    async fn put_plugin_artifact(&self, sha256: &str, engine: &str, artifact: &[u8]) -> Result<()> {
        SledStore::put_plugin_artifact(self, sha256, engine, artifact)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Backend, SledStore, Store};
    use crate::model::ids::TenantId;
    use crate::model::tenant::Tenant;

    /// A tenant record, not stored.
    pub fn tenant(name: &str) -> Tenant {
        Tenant {
            id: TenantId::generate(),
            name: name.into(),
            headers: Default::default(),
            created_at: crate::time::now(),
        }
    }

    /// A store in a fresh temp dir, kept alive by the returned guard.
    pub fn temp_store() -> (Store, tempfile::TempDir) {
        let (sled, dir) = temp_sled();
        (Store::on(sled), dir)
    }

    /// The sled store itself, for tests of its own layout.
    pub fn temp_sled() -> (SledStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (SledStore::open(dir.path(), 16 << 20).unwrap(), dir)
    }

    /// An event type of that name, not stored.
    pub fn event_type(name: &str) -> crate::model::event_type::EventType {
        let now = crate::time::now();
        crate::model::event_type::EventType {
            name: name.into(),
            description: String::new(),
            example: None,
            builtin: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// A stored tenant whose catalog holds `a.b`, the type
    /// `Endpoint::sample` subscribes to.
    pub async fn stored_tenant<S: Backend + ?Sized>(store: &S, name: &str) -> Tenant {
        let tenant = tenant(name);
        store.create_tenant(&tenant).await.unwrap();
        store
            .create_event_type(&tenant.id, &event_type("a.b"))
            .await
            .unwrap();
        tenant
    }
}
