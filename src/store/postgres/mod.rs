//! The store over PostgreSQL: the same [`Backend`] as the embedded one, for
//! gateways that keep their facts in a database server.
//!
//! The schema is in `migrations/` (applied by `migrations.rs` when the
//! store connects). A record is a row of key columns, the columns queries
//! filter, order or refer by, and its serde JSON as `body`, encoded as the
//! embedded store encodes it, so the model types stay the one definition of
//! a record. Each operation that is one transaction on sled is one SQL
//! transaction here, and every commit is synchronous (the server's
//! `synchronous_commit = on`, its default): what returned is durable, so
//! [`Backend::flush`] has nothing left to do. The locks that keep rules
//! spanning records race-free are in `locks.rs`.
//!
//! What stays in the process, as on sled: the note of entries queued behind
//! the dispatcher's cursor (`take_queued_since`) and the fan-out budget.
//! The delivery path's reads of endpoints, tenants and events are kept for
//! a short time (`recent.rs`), so a change one gateway makes is obeyed by
//! the others within [`RECENT`](crate::store::RECENT); every other read,
//! the API's among them, asks the database. What
//! gateways sharing the database agree on (leases of due entries,
//! heartbeats, shares of limits, notices) is in `cluster.rs`.

mod cluster;
mod deliveries;
mod endpoints;
mod event_types;
mod events;
mod finish;
mod keys;
mod lines;
mod locks;
mod migrations;
mod plugins;
mod recent;
mod rows;
mod tenants;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use self::recent::Recent;
use super::deliveries::QueuedSince;
use super::{
    Backend, DeliveryChange, DeliveryFilter, DueScan, EndpointChange, FanOutPermit, NewPlugin,
    Page, PluginQuota, PublishOutcome, QueueEntry, QueueKey, Result, StoreError, Stored,
    TenantEndpoints, events::FANOUT_BUDGET,
};
use crate::model::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::model::endpoint::Endpoint;
use crate::model::event::Event;
use crate::model::event_type::EventType;
use crate::model::ids::{DeliveryId, EndpointId, KeyId, PluginId, TenantId};
use crate::model::plugin::Plugin;
use crate::model::tenant::{ApiKey, Tenant};

pub use cluster::PgOptions;

/// The store in a PostgreSQL database, over a pool of connections.
pub struct PgStore {
    pool: Pool,
    queued_since: Arc<QueuedSince>,
    fanout_budget: Arc<tokio::sync::Semaphore>,
    cluster: Arc<cluster::Cluster>,
    endpoints: Recent<(TenantId, EndpointId), Option<Arc<Endpoint>>>,
    tenants: Recent<TenantId, Option<Arc<Tenant>>>,
    events: Recent<(TenantId, String), Event>,
    /// Groups attempt results into transactions; spawned by the first
    /// result, on the runtime that ends attempts.
    finisher: std::sync::OnceLock<finish::Finisher>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.cluster.stop.cancel();
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, or
    /// `key=value` pairs) without TLS, brings its schema up to date (refusing
    /// a database whose schema is newer than this binary's), and joins the
    /// gateways that share it (`cluster.rs`): its heartbeat and its
    /// listener for their notices run on the caller's runtime until the
    /// store is closed or dropped.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Storage(format!("the database URL is not valid: {e}")))?;
        Self::connect_with(config, options).await
    }

    /// [`PgStore::connect`] with the connection settings already parsed.
    pub async fn connect_with(config: tokio_postgres::Config, options: PgOptions) -> Result<Self> {
        let store = Self::pooled(config.clone(), options)?;
        migrations::migrate(&mut store.client().await?).await?;
        store.cluster.join(&store.pool).await?;
        tokio::spawn(store.cluster.clone().heartbeat(store.pool.clone()));
        tokio::spawn(store.cluster.clone().listen(config));
        Ok(store)
    }

    /// The store over a pool that connects on first use, on the runtime
    /// that uses it; the schema is left as it is, and no heartbeat or
    /// listener runs.
    fn pooled(config: tokio_postgres::Config, options: PgOptions) -> Result<Self> {
        let pool_size = options.pool_size;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| StoreError::Storage(format!("cannot build the connection pool: {e}")))?;
        let queued_since = Arc::new(QueuedSince::default());
        Ok(Self {
            pool,
            cluster: Arc::new(cluster::Cluster::new(&options, queued_since.clone())),
            queued_since,
            fanout_budget: Arc::new(tokio::sync::Semaphore::new(FANOUT_BUDGET)),
            endpoints: Recent::new(recent::RECORD_TTL, recent::RECORDS, recent::one),
            tenants: Recent::new(recent::RECORD_TTL, recent::RECORDS, recent::one),
            finisher: std::sync::OnceLock::new(),
            events: Recent::new(recent::EVENT_TTL, recent::EVENT_BYTES, |e: &Event| {
                e.body.len() + e.id.len() + 64
            }),
        })
    }

    async fn client(&self) -> Result<Object> {
        pooled_client(&self.pool).await
    }
}

/// A connection of `pool`.
async fn pooled_client(pool: &Pool) -> Result<Object> {
    pool.get()
        .await
        .map_err(|e| StoreError::Storage(format!("no database connection: {e}")))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Storage(describe(&e))
    }
}

/// The server's own words for a database error, with its SQLSTATE.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The rows of `sql`, prepared once per connection.
async fn rows<C: GenericClient>(client: &C, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

async fn row<C: GenericClient>(client: &C, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

/// Runs `sql`; returns how many rows it changed.
async fn exec<C: GenericClient>(client: &C, sql: &str, params: Params<'_>) -> Result<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// The record in column `index` of `row`.
fn body<T: super::record::Record>(row: &Row, index: usize) -> Result<T> {
    super::decode(row.try_get::<_, &[u8]>(index)?)
}

/// An id read from a key column.
fn id<T: FromStr>(row: &Row, index: usize) -> Result<T> {
    let text: &str = row.try_get(index)?;
    text.parse()
        .map_err(|_| StoreError::Storage(format!("a stored id cannot be read: {text}")))
}

/// `LIMIT` for a page of `limit` items: one more, to know whether another
/// page follows.
fn page_limit(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

/// A page of `items` (fetched with [`page_limit`]), its cursor the last
/// item's when more follow.
fn page<T>(mut items: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(cursor_of(last)),
        _ => None,
    };
    Page { items, next_cursor }
}

/// A page of records from `sql`, whose rows hold a body, taking the key to
/// start after and the `LIMIT` (after any `params` of its own).
async fn page_of<C, T>(
    client: &C,
    sql: &str,
    params: Params<'_>,
    after: Option<&str>,
    limit: usize,
    cursor_of: impl Fn(&T) -> String,
) -> Result<Page<T>>
where
    C: GenericClient,
    T: super::record::Record,
{
    // Every key sorts after the empty string.
    let after = after.unwrap_or("");
    let fetch = page_limit(limit);
    let mut all: Vec<&(dyn ToSql + Sync)> = params.to_vec();
    all.push(&after);
    all.push(&fetch);
    let items = rows(client, sql, &all)
        .await?
        .iter()
        .map(|r| body(r, 0))
        .collect::<Result<Vec<T>>>()?;
    Ok(page(items, limit, cursor_of))
}

/// PostgreSQL as a [`Backend`]: each operation is the inherent method of
/// the same name, in this module's files.
#[async_trait::async_trait]
impl Backend for PgStore {
    async fn flush(&self) -> Result<()> {
        // Every commit waited for its WAL record to reach disk.
        Ok(())
    }
    async fn close(&self) -> Result<()> {
        self.cluster.leave(&self.pool).await
    }
    async fn release(&self, keys: &[QueueKey]) -> Result<()> {
        self.cluster.release(&self.pool, keys).await
    }
    async fn queued_elsewhere(&self) {
        self.cluster.woken.notified().await
    }
    fn share(&self) -> super::Share {
        self.cluster.share()
    }
    async fn is_ready(&self) -> bool {
        match self.client().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }
    async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>> {
        PgStore::admin_token_hash(self).await
    }
    async fn set_admin_token_hash(&self, hash: [u8; 32]) -> Result<()> {
        PgStore::set_admin_token_hash(self, hash).await
    }
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        PgStore::create_tenant_with(self, tenant, &[]).await
    }
    async fn create_tenant_with(&self, tenant: &Tenant, catalog: &[EventType]) -> Result<()> {
        PgStore::create_tenant_with(self, tenant, catalog).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        PgStore::get_tenant(self, id).await
    }
    async fn tenant_record(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>> {
        Ok(PgStore::get_tenant(self, id).await?.map(Arc::new))
    }
    async fn recent_tenant(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>> {
        if let Some(kept) = self.tenants.get(id) {
            return Ok(kept);
        }
        let at = std::time::Instant::now();
        let read = PgStore::get_tenant(self, id).await?.map(Arc::new);
        self.tenants.put(*id, read.clone(), at);
        Ok(read)
    }
    async fn update_tenant(&self, tenant: &Tenant) -> Result<()> {
        let updated = PgStore::update_tenant(self, tenant).await;
        self.tenants.forget(&tenant.id);
        updated
    }
    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Page<Tenant>> {
        PgStore::list_tenants(self, after, limit).await
    }
    async fn delete_tenant(&self, id: &TenantId) -> Result<bool> {
        let deleted = PgStore::delete_tenant(self, id).await;
        self.tenants.forget(id);
        self.endpoints.forget_where(|(tenant, _)| tenant == id);
        self.events.forget_where(|(tenant, _)| tenant == id);
        deleted
    }
    async fn create_key(&self, key: &ApiKey, token_hash: [u8; 32]) -> Result<()> {
        PgStore::create_key(self, key, token_hash).await
    }
    async fn list_keys(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ApiKey>> {
        PgStore::list_keys(self, tenant, after, limit).await
    }
    async fn delete_key(&self, tenant: &TenantId, id: &KeyId) -> Result<bool> {
        PgStore::delete_key(self, tenant, id).await
    }
    async fn key_by_token_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        PgStore::key_by_token_hash(self, hash).await
    }
    async fn create_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()> {
        PgStore::create_event_type(self, tenant, et).await
    }
    async fn get_event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>> {
        PgStore::get_event_type(self, tenant, name).await
    }
    async fn list_event_types(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<EventType>> {
        PgStore::list_event_types(self, tenant, after, limit).await
    }
    async fn event_type_names(&self, tenant: &TenantId) -> Result<Vec<String>> {
        PgStore::event_type_names(self, tenant).await
    }
    async fn update_event_type(&self, tenant: &TenantId, et: &EventType) -> Result<()> {
        PgStore::update_event_type(self, tenant, et).await
    }
    async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<bool> {
        PgStore::delete_event_type(self, tenant, name).await
    }
    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        PgStore::create_endpoint(self, endpoint).await
    }
    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Arc<Endpoint>>> {
        Ok(PgStore::get_endpoint(self, tenant, id).await?.map(Arc::new))
    }
    async fn recent_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Arc<Endpoint>>> {
        let key = (*tenant, *id);
        if let Some(kept) = self.endpoints.get(&key) {
            return Ok(kept);
        }
        let at = std::time::Instant::now();
        let read = PgStore::get_endpoint(self, tenant, id).await?.map(Arc::new);
        self.endpoints.put(key, read.clone(), at);
        Ok(read)
    }
    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Endpoint>> {
        PgStore::list_endpoints(self, tenant, after, limit).await
    }
    async fn read_endpoints(
        &self,
        tenant: &TenantId,
        read: &mut (dyn for<'e> FnMut(&'e TenantEndpoints) + Send),
    ) -> Result<()> {
        let endpoints = PgStore::tenant_endpoints(self, tenant).await?;
        read(&endpoints);
        Ok(())
    }
    async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: EndpointChange<'_>,
    ) -> Result<Endpoint> {
        let changed = PgStore::change_endpoint(self, tenant, id, change).await;
        self.endpoints.forget(&(*tenant, *id));
        changed
    }
    async fn modify_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: EndpointChange<'_>,
    ) -> Result<Endpoint> {
        // Durable as an update is: a synchronous commit costs one endpoint
        // write a second at most (the attempts' bookkeeping is throttled).
        let changed = PgStore::change_endpoint(self, tenant, id, change).await;
        self.endpoints.forget(&(*tenant, *id));
        changed
    }
    async fn delete_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<bool> {
        let deleted = PgStore::delete_endpoint(self, tenant, id).await;
        self.endpoints.forget(&(*tenant, *id));
        deleted
    }
    async fn reserve_fan_out(&self, endpoints: usize) -> Option<FanOutPermit> {
        super::events::reserve_fan_out(&self.fanout_budget, endpoints).await
    }
    async fn publish_reserved(
        &self,
        event: Event,
        deliveries: Vec<Delivery>,
        idempotency_key: Option<&str>,
        reserved: Option<FanOutPermit>,
    ) -> Result<PublishOutcome> {
        let at = std::time::Instant::now();
        let fanned_out = !deliveries.is_empty();
        let outcome =
            PgStore::publish_reserved(self, event, deliveries, idempotency_key, reserved).await?;
        if let (PublishOutcome::Created(event), true) = (&outcome, fanned_out) {
            let key = (event.tenant_id, event.id.clone());
            self.events.put(key, event.clone(), at);
        }
        Ok(outcome)
    }
    async fn get_event(&self, tenant: &TenantId, id: &str) -> Result<Option<Event>> {
        PgStore::get_event(self, tenant, id).await
    }
    async fn recent_event(&self, tenant: &TenantId, id: &str) -> Result<Option<Event>> {
        let key = (*tenant, id.to_string());
        if let Some(kept) = self.events.get(&key) {
            return Ok(Some(kept));
        }
        let at = std::time::Instant::now();
        let read = PgStore::get_event(self, tenant, id).await?;
        if let Some(event) = &read {
            self.events.put(key, event.clone(), at);
        }
        Ok(read)
    }
    async fn event_deliveries(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Vec<(EndpointId, DeliveryId)>> {
        PgStore::event_deliveries(self, tenant, id).await
    }
    async fn add_deliveries(
        &self,
        tenant: &TenantId,
        event_id: &str,
        deliveries: &[Delivery],
    ) -> Result<()> {
        PgStore::add_deliveries(self, tenant, event_id, deliveries).await
    }
    async fn put_event(&self, event: &Event) -> Result<()> {
        PgStore::put_event(self, event).await
    }
    async fn due(&self, after: Option<&QueueKey>, now_ms: u64, limit: usize) -> Result<DueScan> {
        PgStore::due(self, after, now_ms, limit, &[]).await
    }
    async fn due_passing(
        &self,
        after: Option<&QueueKey>,
        now_ms: u64,
        limit: usize,
        passed: &[EndpointId],
    ) -> Result<DueScan> {
        PgStore::due(self, after, now_ms, limit, passed).await
    }
    fn take_queued_since(&self) -> Option<u64> {
        self.queued_since.take()
    }
    async fn queue_len(&self) -> Result<usize> {
        PgStore::queue_len(self).await
    }
    async fn finish_attempt(
        &self,
        key: &QueueKey,
        entry: &QueueEntry,
        change: DeliveryChange,
    ) -> Result<Option<Delivery>> {
        PgStore::finish_attempt(self, key, entry, change).await
    }
    async fn get_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>> {
        PgStore::get_delivery(self, tenant, endpoint, id).await
    }
    async fn record_manual_attempt(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        attempt: &Attempt,
    ) -> Result<Option<(Delivery, bool)>> {
        PgStore::record_manual_attempt(self, tenant, endpoint, id, attempt).await
    }
    async fn settle_delivery(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        id: &DeliveryId,
        status: DeliveryStatus,
        reason: &str,
    ) -> Result<Option<Delivery>> {
        PgStore::settle_delivery(self, tenant, endpoint, id, status, reason).await
    }
    async fn insert_delivery(&self, tenant: &TenantId, delivery: &Delivery) -> Result<()> {
        PgStore::insert_delivery(self, tenant, delivery).await
    }
    async fn recover_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        window: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
        fifo: bool,
    ) -> Result<usize> {
        PgStore::recover_deliveries(self, tenant, endpoint, window, now, fifo).await
    }
    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
        cursor: Option<&DeliveryId>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        PgStore::list_deliveries(self, tenant, endpoint, filter, cursor, limit).await
    }
    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize> {
        let pruned = PgStore::prune(self, cutoff).await;
        self.events.forget_where(|_| true);
        pruned
    }
    async fn create_plugin(&self, new: NewPlugin<'_>, quota: PluginQuota) -> Result<Stored> {
        PgStore::create_plugin(self, new, quota).await
    }
    async fn get_plugin(&self, tenant: &TenantId, id: &PluginId) -> Result<Option<Arc<Plugin>>> {
        Ok(PgStore::get_plugin(self, tenant, id).await?.map(Arc::new))
    }
    async fn list_plugins(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plugin>> {
        PgStore::list_plugins(self, tenant, after, limit).await
    }
    async fn all_plugins(&self, tenant: &TenantId) -> Result<Vec<Plugin>> {
        let client = self.client().await?;
        plugins::all_plugins(&client, tenant).await
    }
    async fn delete_plugin(&self, plugin: &Plugin) -> Result<bool> {
        PgStore::delete_plugin(self, plugin).await
    }
    async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        PgStore::plugin_blob(self, sha256).await
    }
    async fn plugin_artifact(&self, sha256: &str, engine: &str) -> Result<Option<Vec<u8>>> {
        PgStore::plugin_artifact(self, sha256, engine).await
    }
    async fn put_plugin_artifact(&self, sha256: &str, engine: &str, artifact: &[u8]) -> Result<()> {
        PgStore::put_plugin_artifact(self, sha256, engine, artifact).await
    }
}
