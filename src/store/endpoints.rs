//! Endpoints, keyed `{tenant_id}/{endpoint_id}`, and the decoded copy of
//! them that publishes and attempts read.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sled::Transactional;
use sled::transaction::abort;

use super::{
    Page, Result, SledStore, StoreError, decode, encode, list_page, scoped_key, tenant_prefix,
};
use crate::model::endpoint::Endpoint;
use crate::model::event_type::EventFilter;
use crate::model::ids::{EndpointId, TenantId};

/// A tenant's endpoints by id (ids are ULIDs, so this is creation order).
pub type TenantEndpoints = BTreeMap<EndpointId, Arc<Endpoint>>;

/// Decoded endpoints of each tenant read since start. A publish reads every
/// endpoint of its tenant and an attempt reads its endpoint; decoding them
/// from sled each time cost a publish to 10,000 endpoints ~10,000 JSON
/// decodes (BENCHMARKS.md). A tenant is loaded on its first read; every write
/// to the `endpoints` tree (all in this file, plus `Store::delete_tenant`)
/// holds the write lock across its sled write and the matching change here,
/// so a reader never sees an endpoint older than the tree's.
#[derive(Default)]
pub(super) struct EndpointCache {
    tenants: RwLock<Tenants>,
    /// Counts reads, to stamp each tenant with its last one.
    reads: AtomicU64,
}

type Tenants = HashMap<TenantId, Cached>;

/// One tenant's endpoints, and when they were last read (a value of
/// [`EndpointCache::reads`]), so the least recently read go first.
pub(super) struct Cached {
    endpoints: TenantEndpoints,
    read_at: AtomicU64,
}

/// Endpoints kept decoded at most, counted when a tenant is loaded: about
/// 1 KiB each, so some 50 MiB.
const ENDPOINTS_KEPT: usize = 50_000;

impl EndpointCache {
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Tenants> {
        self.tenants.write().unwrap_or_else(|poisoned| {
            // A panic between a sled write and its change here may have left
            // a tenant behind the tree: forget every tenant, they reload.
            let mut cache = poisoned.into_inner();
            cache.clear();
            self.tenants.clear_poison();
            cache
        })
    }

    /// Marks `cached` as just read and returns its endpoints.
    fn stamp<'a>(&self, cached: &'a Cached) -> &'a TenantEndpoints {
        let now = self.reads.fetch_add(1, Ordering::Relaxed);
        cached.read_at.store(now, Ordering::Relaxed);
        &cached.endpoints
    }

    /// Makes room for `incoming` more endpoints by forgetting the tenants
    /// read longest ago (they reload on their next read), so the copies stay
    /// near `kept` endpoints however many tenants are read. A tenant larger
    /// than that is still kept, alone.
    fn make_room(cache: &mut Tenants, incoming: usize, kept: usize) {
        let mut total: usize = cache.values().map(|c| c.endpoints.len()).sum();
        if total + incoming <= kept {
            return;
        }
        let mut by_age: Vec<(u64, TenantId)> = cache
            .iter()
            .map(|(id, c)| (c.read_at.load(Ordering::Relaxed), *id))
            .collect();
        by_age.sort_unstable();
        for (_, victim) in by_age {
            if total + incoming <= kept {
                break;
            }
            total -= cache.remove(&victim).map_or(0, |c| c.endpoints.len());
        }
    }

    /// Puts `endpoint` in place of its cached copy, if its tenant is cached
    /// (a tenant not cached loads it from the tree when first read).
    fn put(cache: &mut Tenants, endpoint: &Endpoint) {
        if let Some(tenant) = cache.get_mut(&endpoint.tenant_id) {
            tenant
                .endpoints
                .insert(endpoint.id, Arc::new(endpoint.clone()));
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Tenants> {
        if self.tenants.is_poisoned() {
            drop(self.write());
        }
        self.tenants
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SledStore {
    /// Checks, under the endpoint cache's write lock, that what `new`
    /// refers to and `old` did not still exists: each event type it
    /// subscribes to by exact name and each plugin of its chain. Deleting an
    /// event type or a plugin checks its users under the same lock, so the
    /// two can never cross: no endpoint ever refers to a deleted one.
    fn check_references(&self, old: Option<&Endpoint>, new: &Endpoint) -> Result<()> {
        let tenant = &new.tenant_id;
        for name in &new.events {
            let known_before = old.is_some_and(|o| o.events.contains(name));
            if known_before || !matches!(EventFilter::parse(name), Ok(EventFilter::Exact(_))) {
                continue;
            }
            if !self.event_types.contains_key(scoped_key(tenant, name))? {
                return Err(StoreError::Conflict(format!(
                    "event type '{name}' was deleted meanwhile"
                )));
            }
        }
        for step in &new.plugins {
            let known_before =
                old.is_some_and(|o| o.plugins.iter().any(|p| p.plugin_id == step.plugin_id));
            if !known_before
                && !self
                    .plugins
                    .contains_key(scoped_key(tenant, step.plugin_id))?
            {
                return Err(StoreError::Conflict(format!(
                    "plugin {} was deleted meanwhile",
                    step.plugin_id
                )));
            }
        }
        Ok(())
    }

    /// The ids of `tenant`'s endpoints that `uses`, read from the tree;
    /// call with the endpoint cache's write lock held.
    pub(super) fn endpoints_using(
        &self,
        tenant: &TenantId,
        uses: impl Fn(&Endpoint) -> bool,
    ) -> Result<Vec<String>> {
        let mut users = Vec::new();
        for value in self.endpoints.scan_prefix(tenant_prefix(tenant)).values() {
            let endpoint: Endpoint = decode(&value?)?;
            if uses(&endpoint) {
                users.push(endpoint.id.to_string());
            }
        }
        Ok(users)
    }

    /// Stores a new endpoint; fails if its tenant is gone, or an event type
    /// or plugin it refers to was deleted meanwhile.
    pub async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let key = scoped_key(&endpoint.tenant_id, endpoint.id);
        let value = encode(endpoint);
        {
            let mut cache = self.endpoint_cache.write();
            self.check_references(None, endpoint)?;
            (&self.tenants, &self.endpoints).transaction(|(tenants, endpoints)| {
                if tenants
                    .get(endpoint.tenant_id.to_string().as_bytes())?
                    .is_none()
                {
                    return abort(StoreError::NotFound("tenant"));
                }
                endpoints.insert(key.as_slice(), value.as_slice())?;
                Ok(())
            })?;
            EndpointCache::put(&mut cache, endpoint);
        }
        self.flush().await
    }

    pub fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Arc<Endpoint>>> {
        self.with_endpoints(tenant, |endpoints| endpoints.get(id).cloned())
    }

    /// Lists a tenant's endpoints, oldest first.
    pub fn list_endpoints(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Endpoint>> {
        list_page(
            &self.endpoints,
            &tenant_prefix(tenant),
            after,
            limit,
            |e: &Endpoint| e.id.to_string(),
        )
    }

    /// Runs `read` over every endpoint of a tenant, loading the tenant
    /// first if it is not cached yet.
    pub fn with_endpoints<R>(
        &self,
        tenant: &TenantId,
        read: impl FnOnce(&TenantEndpoints) -> R,
    ) -> Result<R> {
        if let Some(cached) = self.endpoint_cache.read().get(tenant) {
            return Ok(read(self.endpoint_cache.stamp(cached)));
        }
        // Loaded under the write lock, so no write slips in between the
        // scan and the insert.
        let mut cache = self.endpoint_cache.write();
        if !cache.contains_key(tenant) {
            let loaded = self
                .endpoints
                .scan_prefix(tenant_prefix(tenant))
                .values()
                .map(|v| {
                    let endpoint: Endpoint = decode(&v?)?;
                    Ok((endpoint.id, Arc::new(endpoint)))
                })
                .collect::<Result<TenantEndpoints>>()?;
            EndpointCache::make_room(&mut cache, loaded.len(), ENDPOINTS_KEPT);
            let cached = Cached {
                endpoints: loaded,
                read_at: AtomicU64::new(0),
            };
            cache.insert(*tenant, cached);
        }
        Ok(read(self.endpoint_cache.stamp(&cache[tenant])))
    }

    /// Applies `change` to the stored endpoint atomically (compare-and-swap,
    /// retried if a concurrent writer got there first, so `change` may run
    /// more than once) and returns the result. `change` may refuse with its
    /// own error.
    pub async fn update_endpoint<E: From<StoreError>>(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: impl FnMut(&mut Endpoint) -> std::result::Result<(), E>,
    ) -> std::result::Result<Endpoint, E> {
        let endpoint = self.modify_endpoint(tenant, id, change)?;
        self.flush().await?;
        Ok(endpoint)
    }

    /// [`Store::update_endpoint`] without waiting for durability: for
    /// bookkeeping the engine can lose in a crash (last delivery).
    pub fn modify_endpoint<E: From<StoreError>>(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        mut change: impl FnMut(&mut Endpoint) -> std::result::Result<(), E>,
    ) -> std::result::Result<Endpoint, E> {
        let key = scoped_key(tenant, id);
        let mut cache = self.endpoint_cache.write();
        loop {
            let current = self
                .endpoints
                .get(&key)
                .map_err(StoreError::from)?
                .ok_or(StoreError::NotFound("endpoint"))?;
            let old: Endpoint = decode(&current)?;
            let mut endpoint = old.clone();
            change(&mut endpoint)?;
            self.check_references(Some(&old), &endpoint)?;
            let swapped = self
                .endpoints
                .compare_and_swap(&key, Some(&current), Some(encode(&endpoint)))
                .map_err(StoreError::from)?;
            if swapped.is_ok() {
                EndpointCache::put(&mut cache, &endpoint);
                return Ok(endpoint);
            }
        }
    }

    /// Deletes an endpoint with its log and every scheduled attempt, so
    /// nothing more is sent to it. Returns whether it existed.
    pub async fn delete_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<bool> {
        let existed = {
            let mut cache = self.endpoint_cache.write();
            let existed = self.endpoints.remove(scoped_key(tenant, id))?.is_some();
            if let Some(cached) = cache.get_mut(tenant) {
                cached.endpoints.remove(id);
            }
            existed
        };
        if existed {
            self.purge_endpoint_deliveries(tenant, id)?;
        }
        self.flush().await?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{event_type, stored_tenant, temp_sled};

    /// Loading a tenant past the bound forgets the tenants read longest ago
    /// until it fits; one larger than the bound is kept alone.
    #[test]
    fn loading_past_the_bound_forgets_the_tenants_read_longest_ago() {
        let cache = EndpointCache::default();
        let tenants: Vec<TenantId> = (0..3).map(|_| TenantId::generate()).collect();
        {
            let mut all = cache.write();
            for id in &tenants {
                let endpoints = (0..4)
                    .map(|_| {
                        let e = Endpoint::sample(*id, "kept");
                        (e.id, Arc::new(e))
                    })
                    .collect();
                let read_at = AtomicU64::new(0);
                all.insert(*id, Cached { endpoints, read_at });
            }
        }
        // Read order: 1, 2, then 0 again.
        for i in [1, 2, 0] {
            cache.stamp(&cache.read()[&tenants[i]]);
        }
        let mut all = cache.write();
        EndpointCache::make_room(&mut all, 4, 16);
        assert_eq!(all.len(), 3, "room enough: nobody forgotten");
        EndpointCache::make_room(&mut all, 5, 16);
        assert!(!all.contains_key(&tenants[1]), "read longest ago");
        assert_eq!(all.len(), 2);
        EndpointCache::make_room(&mut all, 9, 16);
        assert!(all.contains_key(&tenants[0]), "read last");
        assert_eq!(all.len(), 1);
        EndpointCache::make_room(&mut all, 40, 16);
        assert!(all.is_empty());
    }

    fn names(store: &SledStore, tenant: &TenantId) -> Vec<String> {
        store
            .with_endpoints(tenant, |all| all.values().map(|e| e.name.clone()).collect())
            .unwrap()
    }

    /// Every write reaches a tenant already cached, and what is cached is
    /// what a fresh store reads from the tree.
    #[tokio::test]
    async fn the_cache_follows_every_write() {
        let (store, _dir) = temp_sled();
        let tenant = stored_tenant(&store, "t").await;
        let t = tenant.id;
        let first = Endpoint::sample(t, "first");
        store.create_endpoint(&first).await.unwrap();
        assert_eq!(names(&store, &t), ["first"], "loaded from the tree");

        let second = Endpoint::sample(t, "second");
        store.create_endpoint(&second).await.unwrap();
        store
            .update_endpoint(&t, &first.id, |e| {
                e.name = "renamed".into();
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert_eq!(names(&store, &t), ["renamed", "second"]);
        let got = store.get_endpoint(&t, &first.id).unwrap().unwrap();
        assert_eq!(got.name, "renamed");

        // A refused change leaves both the tree and the cache as they were.
        let refused = store.update_endpoint(&t, &second.id, |e| {
            e.name = "never".into();
            Err(StoreError::Conflict("no".into()))
        });
        assert!(refused.await.is_err());
        assert_eq!(names(&store, &t), ["renamed", "second"]);

        assert!(store.delete_endpoint(&t, &second.id).await.unwrap());
        assert_eq!(names(&store, &t), ["renamed"]);
        assert!(store.get_endpoint(&t, &second.id).unwrap().is_none());
        let in_tree: Vec<String> = store
            .endpoints
            .scan_prefix(tenant_prefix(&t))
            .values()
            .map(|v| decode::<Endpoint>(&v.unwrap()).unwrap().name)
            .collect();
        assert_eq!(in_tree, ["renamed"], "the tree agrees");

        assert!(store.delete_tenant(&t).await.unwrap());
        assert!(names(&store, &t).is_empty());
        assert!(store.endpoints.is_empty());
    }

    /// Concurrent writers to one endpoint: the cache ends as the tree does.
    #[tokio::test]
    async fn concurrent_writes_leave_the_cache_as_the_tree() {
        let (store, _dir) = temp_sled();
        let tenant = stored_tenant(&store, "t").await;
        let ep = Endpoint::sample(tenant.id, "0");
        store.create_endpoint(&ep).await.unwrap();
        names(&store, &tenant.id);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        store
                            .modify_endpoint(&tenant.id, &ep.id, |e| {
                                e.name = (e.name.parse::<u32>().unwrap() + 1).to_string();
                                Ok::<_, StoreError>(())
                            })
                            .unwrap();
                    }
                });
            }
        });
        let stored: Endpoint = decode(
            &store
                .endpoints
                .get(scoped_key(&tenant.id, ep.id))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(stored.name, "800");
        assert_eq!(names(&store, &tenant.id), ["800"]);
    }

    /// Runs `attach` and `delete` on two threads `rounds` times each, each
    /// round on a fresh target made by `make`; then `check` judges the
    /// store. The store keeps each rule in one step, so no interleaving can
    /// leave an endpoint referring to a deleted record.
    fn race(
        rounds: usize,
        make: impl Fn(usize),
        attach: impl Fn(usize) + Sync,
        delete: impl Fn(usize) + Sync,
    ) {
        for round in 0..rounds {
            make(round);
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                s.spawn(|| {
                    barrier.wait();
                    attach(round);
                });
                s.spawn(|| {
                    barrier.wait();
                    delete(round);
                });
            });
        }
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// An event type deleted while an endpoint subscribes to it: either the
    /// subscription or the deletion is refused, never neither.
    #[test]
    fn deleting_an_event_type_never_crosses_a_subscription_to_it() {
        let (store, _dir) = temp_sled();
        let tenant = block_on(stored_tenant(&store, "t"));
        let t = tenant.id;
        let name = |round: usize| format!("race.t{round}");
        race(
            200,
            |round| block_on(store.create_event_type(&t, &event_type(&name(round)))).unwrap(),
            |round| {
                let mut ep = Endpoint::sample(t, "subscriber");
                ep.events = vec![name(round)];
                let _ = block_on(store.create_endpoint(&ep));
            },
            |round| {
                let _ = block_on(store.delete_event_type(&t, &name(round)));
            },
        );
        let catalog = store.event_type_names(&t).unwrap();
        store
            .with_endpoints(&t, |all| {
                for e in all.values() {
                    for n in &e.events {
                        assert!(catalog.contains(n), "{} subscribes to deleted {n}", e.id);
                    }
                }
            })
            .unwrap();
    }

    /// A plugin deleted while a chain attaches it: either the attach or the
    /// deletion is refused, never neither.
    #[test]
    fn deleting_a_plugin_never_crosses_a_chain_attaching_it() {
        use crate::model::plugin::PluginRef;
        use crate::store::{NewPlugin, PluginQuota, Stored};
        let (store, _dir) = temp_sled();
        let tenant = block_on(stored_tenant(&store, "t"));
        let t = tenant.id;
        let ep = Endpoint::sample(t, "chained");
        block_on(store.create_endpoint(&ep)).unwrap();
        let plugins = std::sync::Mutex::new(Vec::new());
        let quota = PluginQuota {
            count: usize::MAX,
            bytes: usize::MAX,
        };
        race(
            200,
            |round| {
                let sha256 = format!("{round:064}");
                let new = NewPlugin {
                    tenant_id: t,
                    name: "p",
                    sha256: &sha256,
                    wasm: b"wasm",
                    language: crate::model::plugin::Language::Wasm,
                    engine: "engine",
                    artifact: Some(b"code".as_slice()),
                };
                let Ok(Stored::Created(p)) = block_on(store.create_plugin(new, quota)) else {
                    panic!("not created");
                };
                plugins.lock().unwrap().push(p);
            },
            |round| {
                let id = plugins.lock().unwrap()[round].id;
                let _ = store.modify_endpoint(&t, &ep.id, |e| {
                    e.plugins = vec![PluginRef {
                        plugin_id: id,
                        config: serde_json::json!({}),
                    }];
                    Ok::<_, StoreError>(())
                });
            },
            |round| {
                let plugin = plugins.lock().unwrap()[round].clone();
                let _ = block_on(store.delete_plugin(&plugin));
            },
        );
        let chain = store
            .get_endpoint(&t, &ep.id)
            .unwrap()
            .unwrap()
            .plugins
            .clone();
        for step in chain {
            assert!(
                store.get_plugin(&t, &step.plugin_id).unwrap().is_some(),
                "the chain holds deleted plugin {}",
                step.plugin_id
            );
        }
    }
}
