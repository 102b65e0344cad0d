//! Uploaded plugins and the cache of their compiled forms.
//!
//! A component is compiled once per content and engine: at upload (which is
//! also its validation), in a bounded compiler process, and the machine code
//! is stored; later processes load it from the store, and every process
//! keeps a bounded number of linked `Compiled` in memory, dropping a
//! content's when its last plugin is deleted. Every call still gets a fresh
//! instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::chain::{ChainOutcome, Prepared};
use super::compile::Compiler;
use super::error::PluginError;
use super::host::{CallReport, Compiled, PluginHost};
use super::turns::Turns;
use super::wit::WitEvent;
use crate::model::event::Event;
use crate::model::ids::TenantId;
use crate::model::plugin::{Plugin, PluginRef};
use crate::model::tenant::Tenant;
use crate::signing::HeaderNames;
use crate::store::{NewPlugin, PluginQuota, Store, StoreError, Stored};
use sha2::{Digest, Sha256};

/// Linked plugins kept in memory, by content; past it the one used longest
/// ago is dropped (and loaded from its stored artifact when next used).
const COMPILED_KEPT: usize = 256;
/// Tenants whose turns are kept before idle ones are forgotten.
const TURNS_KEPT: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Invalid(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Linked plugins by content, each with when it was last used.
struct CompiledCache<C = Compiled> {
    entries: HashMap<String, (C, u64)>,
    clock: u64,
}

impl<C> Default for CompiledCache<C> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            clock: 0,
        }
    }
}

impl<C: Clone> CompiledCache<C> {
    fn get(&mut self, sha256: &str) -> Option<C> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(sha256).map(|(compiled, used)| {
            *used = clock;
            compiled.clone()
        })
    }

    /// The contents held.
    fn contents(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Drops the entries of `gone` contents.
    fn forget(&mut self, gone: &[String]) {
        for sha256 in gone {
            self.entries.remove(sha256);
        }
    }

    fn insert(&mut self, sha256: String, compiled: C) {
        if self.entries.len() >= COMPILED_KEPT && !self.entries.contains_key(&sha256) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(sha256, _)| sha256.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        self.entries.insert(sha256, (compiled, self.clock));
    }
}

pub struct Plugins {
    host: Arc<PluginHost>,
    /// Each tenant's turns at running calls (`Limits::tenant_calls`).
    tenant_turns: Mutex<HashMap<TenantId, Arc<Turns>>>,
    compiler: Compiler,
    store: Store,
    quota: PluginQuota,
    compiled: Mutex<CompiledCache>,
}

impl Plugins {
    pub fn new(
        host: Arc<PluginHost>,
        compiler: Compiler,
        store: Store,
        quota: PluginQuota,
    ) -> Arc<Self> {
        Arc::new(Self {
            host,
            tenant_turns: Mutex::default(),
            compiler,
            store,
            quota,
            compiled: Mutex::default(),
        })
    }

    /// Validates, compiles and stores a component as the next version of
    /// `name`; the same bytes under the same name return that version.
    pub async fn upload(
        self: &Arc<Self>,
        tenant: &TenantId,
        name: &str,
        wasm: bytes::Bytes,
    ) -> Result<Stored, UploadError> {
        let sha256 = hex::encode(Sha256::digest(&wasm));
        // Cheap refusals first: compiling is the expensive part.
        if let Some(same) = self
            .store
            .all_plugins(tenant)
            .await?
            .into_iter()
            .find(|p| p.name == name && p.sha256 == sha256)
        {
            return Ok(Stored::Existing(same));
        }
        let artifact = bytes::Bytes::from(self.compiler.compile(wasm.clone()).await?);
        let compiled = self.load(artifact.clone()).await?;
        let engine = self.host.engine_fingerprint();
        let new = NewPlugin {
            tenant_id: *tenant,
            name,
            sha256: &sha256,
            wasm: &wasm,
            engine: &engine,
            artifact: &artifact,
        };
        let stored = self.store.create_plugin(new, self.quota).await?;
        self.cache().insert(sha256, compiled);
        Ok(stored)
    }

    /// Deletes a plugin version; its compiled form goes too when no other
    /// plugin has the same content.
    pub async fn delete(&self, plugin: &Plugin) -> Result<bool, StoreError> {
        let existed = self.store.delete_plugin(plugin).await?;
        self.forget_unstored().await;
        Ok(existed)
    }

    /// Drops the compiled forms of content no longer stored (after plugin
    /// or tenant deletion).
    pub async fn forget_unstored(&self) {
        let mut gone = Vec::new();
        let held = self.cache().contents();
        for sha256 in held {
            if matches!(self.store.plugin_blob(&sha256).await, Ok(None)) {
                gone.push(sha256);
            }
        }
        self.cache().forget(&gone);
    }

    fn cache(&self) -> MutexGuard<'_, CompiledCache> {
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads machine code on the blocking pool: deserialising a large
    /// component takes milliseconds.
    async fn load(self: &Arc<Self>, artifact: bytes::Bytes) -> Result<Compiled, PluginError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.host.load(&artifact))
            .await
            .map_err(|e| PluginError::Host(e.to_string()))?
    }

    /// The linked form of a plugin: from memory, else from the stored
    /// artifact, else compiled again from its bytes (after an upgrade).
    async fn compiled(self: &Arc<Self>, plugin: &Plugin) -> Result<Compiled, PluginError> {
        if let Some(c) = self.cache().get(&plugin.sha256) {
            return Ok(c);
        }
        let engine = self.host.engine_fingerprint();
        let store_err = |e: StoreError| PluginError::Host(e.to_string());
        let artifact = self
            .store
            .plugin_artifact(&plugin.sha256, &engine)
            .await
            .map_err(store_err)?;
        let compiled = match artifact {
            Some(artifact) => self.load(artifact.into()).await?,
            None => {
                let wasm = self
                    .store
                    .plugin_blob(&plugin.sha256)
                    .await
                    .map_err(store_err)?
                    .ok_or_else(|| PluginError::Host("the plugin's bytes are missing".into()))?;
                let wasm = bytes::Bytes::from(wasm);
                let artifact = bytes::Bytes::from(self.compiler.compile(wasm).await?);
                let compiled = self.load(artifact.clone()).await?;
                self.store
                    .put_plugin_artifact(&plugin.sha256, &engine, &artifact)
                    .await
                    .map_err(store_err)?;
                compiled
            }
        };
        self.cache().insert(plugin.sha256.clone(), compiled.clone());
        Ok(compiled)
    }

    /// Runs one plugin on an event with `deadline` of wall-clock time, as a
    /// dry run or a chain step.
    pub async fn call(
        self: &Arc<Self>,
        plugin: &Plugin,
        event: &WitEvent,
        config: &str,
        tenant: &HeaderNames,
        deadline: Duration,
    ) -> CallReport {
        let compiled = match self.compiled(plugin).await {
            Ok(compiled) => compiled,
            Err(e) => return CallReport::failed(e),
        };
        // A tenant's calls take turns among themselves, so however many of
        // its endpoints run plugins, the others' deliveries keep the threads;
        // and one whose calls run out of CPU time gets fewer turns.
        let turn = match self
            .turns_of(&plugin.tenant_id)
            .take(self.host.slot_wait())
            .await
        {
            Ok(turn) => turn,
            Err(e) => return CallReport::failed(e),
        };
        let report = self
            .host
            .call(&compiled, event, config, tenant, deadline)
            .await;
        turn.end(&report.result, report.elapsed);
        report
    }

    /// The tenant's turns, made on first use; idle tenants are forgotten
    /// when the map grows, so it stays near the tenants running plugins.
    fn turns_of(&self, tenant: &TenantId) -> Arc<Turns> {
        let mut turns = self
            .tenant_turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if turns.len() >= TURNS_KEPT {
            turns.retain(|_, t| !t.idle());
        }
        turns
            .entry(*tenant)
            .or_insert_with(|| Turns::new(self.host.limits().tenant_calls))
            .clone()
    }

    /// A dry run: one plugin on an event, within the plugin deadline.
    pub async fn dry_run(
        self: &Arc<Self>,
        plugin: &Plugin,
        event: &WitEvent,
        config: &str,
        tenant: &HeaderNames,
    ) -> CallReport {
        let deadline = self.host.limits().deadline;
        self.call(plugin, event, config, tenant, deadline).await
    }

    /// Runs an endpoint's chain on an event. The chain as a whole has the
    /// plugin deadline of wall-clock time: each call gets what the ones
    /// before it left.
    pub async fn run_chain(
        self: &Arc<Self>,
        tenant: &Tenant,
        endpoint_id: &str,
        chain: &[PluginRef],
        event: &Event,
    ) -> ChainOutcome {
        let mut left = self.host.limits().deadline;
        let mut prepared = Prepared::of(event);
        for step in chain {
            let plugin = match self.store.get_plugin(&tenant.id, &step.plugin_id).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return ChainOutcome::Failed(format!(
                        "plugin {} no longer exists",
                        step.plugin_id
                    ));
                }
                Err(e) => return ChainOutcome::Unavailable(format!("plugin store: {e}")),
            };
            let input = prepared.to_wit(event, endpoint_id);
            let report = self
                .call(
                    &plugin,
                    &input,
                    &step.config.to_string(),
                    &tenant.headers,
                    left,
                )
                .await;
            left = left.saturating_sub(report.elapsed);
            for line in &report.logs {
                tracing::info!(plugin = %plugin.id, endpoint = endpoint_id, level = %line.level, "plugin log: {}", line.message);
            }
            metrics::histogram!("hookgate_plugin_call_seconds")
                .record(report.elapsed.as_secs_f64());
            match prepared.apply(report.result) {
                Ok(Some(reason)) => {
                    return ChainOutcome::Filtered(format!("{}: {reason}", plugin.label()));
                }
                Ok(None) => {}
                Err(e) if e.is_gateway_trouble() => {
                    return ChainOutcome::Unavailable(format!("{}: {e}", plugin.label()));
                }
                Err(e) => return ChainOutcome::Failed(format!("{}: {e}", plugin.label())),
            }
        }
        ChainOutcome::Deliver(prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::{COMPILED_KEPT, CompiledCache};

    /// Past its bound the cache drops the entry used longest ago, not the
    /// one inserted first.
    #[test]
    fn the_compiled_cache_is_bounded_and_drops_the_least_recently_used() {
        let mut cache = CompiledCache::<usize>::default();
        for i in 0..COMPILED_KEPT {
            cache.insert(format!("{i}"), i);
        }
        assert_eq!(cache.get("0"), Some(0));
        cache.insert("new".into(), 1000);
        assert_eq!(cache.entries.len(), COMPILED_KEPT);
        assert_eq!(cache.get("0"), Some(0), "used last, so kept");
        assert_eq!(cache.get("1"), None, "used longest ago, so dropped");
        assert_eq!(cache.get("new"), Some(1000));
    }

    /// After a deletion, the compiled forms of content no longer stored go.
    #[test]
    fn compiled_forms_of_deleted_content_are_dropped() {
        let mut cache = CompiledCache::<usize>::default();
        cache.insert("kept".into(), 1);
        cache.insert("deleted".into(), 2);
        let mut held = cache.contents();
        held.sort();
        assert_eq!(held, ["deleted", "kept"]);
        cache.forget(&["deleted".to_string()]);
        assert_eq!(cache.get("kept"), Some(1));
        assert_eq!(cache.get("deleted"), None);
    }
}
