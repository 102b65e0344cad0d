//! Uploaded plugins and the cache of their compiled forms.
//!
//! A component is compiled once per content and engine: at upload (which is
//! also its validation), the machine code is stored; later processes load it
//! from the store, and every process keeps one linked `Compiled` per content
//! in memory. Every call still gets a fresh instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::chain::{ChainOutcome, Prepared};
use super::host::{CallReport, Compiled, PluginError, PluginHost, WitEvent};
use super::{Plugin, PluginRef};
use crate::event::Event;
use crate::ids::{PluginId, TenantId};
use crate::store::{Store, StoreError};
use crate::tenant::Tenant;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Invalid(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an upload did.
pub enum Uploaded {
    Created(Plugin),
    /// The same bytes under the same name exist: that version is returned.
    Existing(Plugin),
}

pub struct Plugins {
    host: Arc<PluginHost>,
    store: Store,
    compiled: Mutex<HashMap<String, Compiled>>,
}

impl Plugins {
    pub fn new(host: Arc<PluginHost>, store: Store) -> Arc<Self> {
        Arc::new(Self {
            host,
            store,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// Validates, compiles and stores a component as the next version of
    /// `name`; the same bytes under the same name return that version.
    /// Compilation runs on the blocking pool.
    pub async fn upload(
        self: &Arc<Self>,
        tenant: &TenantId,
        name: &str,
        wasm: bytes::Bytes,
    ) -> Result<Uploaded, UploadError> {
        let sha256 = hex::encode(Sha256::digest(&wasm));
        let versions: Vec<Plugin> = self
            .store
            .all_plugins(tenant)?
            .into_iter()
            .filter(|p| p.name == name)
            .collect();
        if let Some(same) = versions.iter().find(|p| p.sha256 == sha256) {
            return Ok(Uploaded::Existing(same.clone()));
        }
        let this = self.clone();
        let bytes = wasm.clone();
        let (compiled, artifact) = tokio::task::spawn_blocking(move || this.host.compile(&bytes))
            .await
            .map_err(|e| PluginError::Host(e.to_string()))??;
        let plugin = Plugin {
            id: PluginId::generate(),
            tenant_id: *tenant,
            name: name.to_string(),
            version: versions.iter().map(|p| p.version).max().unwrap_or(0) + 1,
            sha256: sha256.clone(),
            size: wasm.len(),
            created_at: crate::time::now(),
        };
        let engine = self.host.engine_fingerprint();
        self.store
            .create_plugin(&plugin, &wasm, &engine, &artifact)
            .await?;
        self.cache().insert(sha256, compiled);
        Ok(Uploaded::Created(plugin))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Compiled>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The linked form of a plugin, if this process has it in memory.
    fn cached(&self, plugin: &Plugin) -> Option<Compiled> {
        self.cache().get(&plugin.sha256).cloned()
    }

    /// The linked form of a plugin: from memory, else from the stored
    /// artifact, else compiled again from its bytes (after an upgrade).
    pub fn compiled(&self, plugin: &Plugin) -> Result<Compiled, PluginError> {
        if let Some(c) = self.cached(plugin) {
            return Ok(c);
        }
        let engine = self.host.engine_fingerprint();
        let store_err = |e: StoreError| PluginError::Host(e.to_string());
        let compiled = match self
            .store
            .plugin_artifact(&plugin.sha256, &engine)
            .map_err(store_err)?
        {
            Some(artifact) => self.host.load(&artifact)?,
            None => {
                let wasm = self
                    .store
                    .plugin_blob(&plugin.sha256)
                    .map_err(store_err)?
                    .ok_or_else(|| PluginError::Host("the plugin's bytes are missing".into()))?;
                let (compiled, artifact) = self.host.compile(&wasm)?;
                self.store
                    .put_plugin_artifact(&plugin.sha256, &engine, &artifact)
                    .map_err(store_err)?;
                compiled
            }
        };
        self.cache().insert(plugin.sha256.clone(), compiled.clone());
        Ok(compiled)
    }

    /// Runs one plugin on an event, as a dry run or a chain step. A plugin
    /// not yet in memory is loaded (or compiled) on the blocking pool.
    pub async fn call(
        self: &Arc<Self>,
        plugin: &Plugin,
        event: &WitEvent,
        config: &str,
    ) -> CallReport {
        let compiled = match self.cached(plugin) {
            Some(compiled) => Ok(compiled),
            None => {
                let (this, plugin) = (self.clone(), plugin.clone());
                tokio::task::spawn_blocking(move || this.compiled(&plugin))
                    .await
                    .unwrap_or_else(|e| Err(PluginError::Host(e.to_string())))
            }
        };
        match compiled {
            Ok(compiled) => self.host.call(&compiled, event, config).await,
            Err(e) => CallReport {
                result: Err(e),
                logs: Vec::new(),
                elapsed: Default::default(),
            },
        }
    }

    /// Runs an endpoint's chain on an event.
    pub async fn run_chain(
        self: &Arc<Self>,
        tenant: &Tenant,
        endpoint_id: &str,
        chain: &[PluginRef],
        event: &Event,
    ) -> ChainOutcome {
        let mut prepared = Prepared::of(event);
        for step in chain {
            let plugin = match self.store.get_plugin(&tenant.id, &step.plugin_id) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return ChainOutcome::Failed(format!(
                        "plugin {} no longer exists",
                        step.plugin_id
                    ));
                }
                Err(e) => return ChainOutcome::Failed(format!("plugin store: {e}")),
            };
            let input = prepared.to_wit(event, endpoint_id);
            let report = self.call(&plugin, &input, &step.config.to_string()).await;
            for line in &report.logs {
                tracing::info!(plugin = %plugin.id, endpoint = endpoint_id, level = %line.level, "plugin log: {}", line.message);
            }
            metrics::histogram!("hookgate_plugin_call_seconds")
                .record(report.elapsed.as_secs_f64());
            match prepared.apply(report.result, &tenant.headers) {
                Ok(Some(reason)) => {
                    return ChainOutcome::Filtered(format!("{}: {reason}", plugin.label()));
                }
                Ok(None) => {}
                Err(e) => return ChainOutcome::Failed(format!("{}: {e}", plugin.label())),
            }
        }
        ChainOutcome::Deliver(prepared)
    }
}
