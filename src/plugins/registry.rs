//! Uploaded plugins and the cache of their compiled forms.
//!
//! A component is compiled once per content and engine, off the request
//! path: the upload stores the record and answers at once (`compiling`),
//! and a compile job (a bounded compiler process, a few at a time within a
//! memory budget) makes the machine code, loads it (which also checks it
//! against the sandbox's bounds and the world) and writes it to the
//! artifact cache on disk (`{data_dir}/plugin-artifacts`, by content hash
//! and engine fingerprint), so a restart loads instead of compiling. A
//! compile that fails leaves its message there too: the plugin is
//! `failed`, with that message, until it is deleted. Every process keeps a
//! bounded number of linked `Compiled` in memory, dropping a content's when
//! its last plugin is deleted. Every call still gets a fresh instance.
//!
//! A JavaScript plugin is a script the JavaScript engine runs
//! ([`super::js`]): the engine is compiled once (the same way, cached the
//! same way), the script is checked at upload in a fresh engine instance
//! (a syntax error is refused then), and it is `ready` at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::chain::{ChainOutcome, Prepared};
use super::compile::Compiler;
use super::error::PluginError;
use super::host::{CallReport, Compiled, JsEngine, PluginHost, ScriptRefused};
use super::js;
use super::latency::Latencies;
use super::turns::Turns;
use super::wit::WitEvent;
use crate::model::event::Event;
use crate::model::ids::{PluginId, TenantId};
use crate::model::plugin::{Language, Plugin, PluginRef};
use crate::model::tenant::Tenant;
use crate::signing::HeaderNames;
use crate::store::{NewPlugin, PluginQuota, Store, StoreError, Stored};
use sha2::{Digest, Sha256};

/// Linked plugins kept in memory, by content; past it the one used longest
/// ago is dropped (and loaded from its cached artifact when next used).
const COMPILED_KEPT: usize = 256;
/// Tenants whose turns are kept before idle ones are forgotten.
const TURNS_KEPT: usize = 1024;
/// Memory the compiles running at once may take together, in MiB. Each
/// compile reserves an estimate from its size (see [`compile_estimate_mib`]),
/// never more than the compiler process's own bound, so a few small ones
/// run side by side while a large one waits for room.
const COMPILE_BUDGET_MIB: u32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Invalid(#[from] PluginError),
    /// A script the JavaScript engine refused: the line (0 when unknown)
    /// and the engine's message.
    #[error("line {line}: {message}")]
    Script { line: u32, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a plugin's compile stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileState {
    /// Being compiled (or waiting for room to be); deliveries through it
    /// are retried on their schedule until it is ready.
    Compiling,
    /// Compiled: calls run it.
    Ready,
    /// Did not compile, with the compiler's message: deliveries through it
    /// end `plugin_failed`, and no endpoint may newly attach it.
    Failed(String),
}

impl CompileState {
    pub fn name(&self) -> &'static str {
        match self {
            CompileState::Compiling => "compiling",
            CompileState::Ready => "ready",
            CompileState::Failed(_) => "failed",
        }
    }
}

/// What an upload did.
pub struct Uploaded {
    pub stored: Stored,
    pub state: CompileState,
}

/// The memory a compile of `size` bytes of component is reserved: Cranelift
/// takes tens of times the component's size (an 18 MB component, hundreds
/// of MB), at most the compiler process's bound.
fn compile_estimate_mib(size: usize, bound_mib: u32) -> u32 {
    let estimate = 32 + ((size as u64 * 24) >> 20);
    (estimate.min(u64::from(bound_mib)) as u32).clamp(1, COMPILE_BUDGET_MIB)
}

/// Compiled artifacts on disk, by content and engine fingerprint:
/// `{sha256}-{engine}.cwasm` holds the machine code, `{sha256}-{engine}.failed`
/// the message of a compile that failed.
struct ArtifactDir {
    dir: PathBuf,
}

impl ArtifactDir {
    fn path(&self, sha256: &str, engine: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{engine}.{ext}"))
    }

    fn read(&self, sha256: &str, engine: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(sha256, engine, "cwasm")).ok()
    }

    fn has(&self, sha256: &str, engine: &str) -> bool {
        self.path(sha256, engine, "cwasm").is_file()
    }

    fn failure(&self, sha256: &str, engine: &str) -> Option<String> {
        std::fs::read_to_string(self.path(sha256, engine, "failed")).ok()
    }

    /// Writes through a temporary file and a rename, so a crash never
    /// leaves a partial artifact under the real name.
    fn write(&self, sha256: &str, engine: &str, ext: &str, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(sha256, engine, ext);
        let tmp = self.dir.join(format!(
            ".{sha256}-{engine}.{ext}.{}.tmp",
            std::process::id()
        ));
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    fn remove(&self, sha256: &str, engine: &str) {
        for ext in ["cwasm", "failed"] {
            let _ = std::fs::remove_file(self.path(sha256, engine, ext));
        }
    }
}

/// Refuses at once what cannot be a component, before it is stored or
/// compiled: the bytes must open with the component header (a core module
/// has the same magic with another layer).
fn component_header(bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_LAYER: [u8; 2] = [0x01, 0x00];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(PluginError::NotAComponent(
            "it does not start with the WebAssembly header".into(),
        ));
    }
    if bytes[6..8] != COMPONENT_LAYER {
        return Err(PluginError::NotAComponent(
            "it is a core module; build a component (wasm32-wasip2)".into(),
        ));
    }
    Ok(())
}

/// A compile job's state, watched by whoever waits for it.
type Job = watch::Sender<CompileState>;

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

    fn has(&self, sha256: &str) -> bool {
        self.entries.contains_key(sha256)
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
    /// The artifact cache on disk; without one (tools, tests), artifacts
    /// go to the store, as they did before there was a disk cache.
    artifacts: Option<ArtifactDir>,
    /// Compiles running, and those that failed, by content.
    jobs: Mutex<HashMap<String, Job>>,
    /// [`COMPILE_BUDGET_MIB`], a permit a MiB.
    budget: Semaphore,
    /// The JavaScript engine, compiled and linked on first use.
    js: tokio::sync::OnceCell<JsEngine>,
    /// Recent call times per plugin, for the p50 the API shows.
    latencies: Latencies,
}

impl Plugins {
    /// Plugins whose artifacts go to the store.
    pub fn new(
        host: Arc<PluginHost>,
        compiler: Compiler,
        store: Store,
        quota: PluginQuota,
    ) -> Arc<Self> {
        Self::build(host, compiler, store, quota, None)
    }

    /// Plugins whose artifacts are cached in `dir` (the gateway's
    /// `{data_dir}/plugin-artifacts`).
    pub fn with_artifact_dir(
        host: Arc<PluginHost>,
        compiler: Compiler,
        store: Store,
        quota: PluginQuota,
        dir: PathBuf,
    ) -> Arc<Self> {
        Self::build(host, compiler, store, quota, Some(ArtifactDir { dir }))
    }

    fn build(
        host: Arc<PluginHost>,
        compiler: Compiler,
        store: Store,
        quota: PluginQuota,
        artifacts: Option<ArtifactDir>,
    ) -> Arc<Self> {
        Arc::new(Self {
            host,
            tenant_turns: Mutex::default(),
            compiler,
            store,
            quota,
            compiled: Mutex::default(),
            artifacts,
            jobs: Mutex::default(),
            budget: Semaphore::new(COMPILE_BUDGET_MIB as usize),
            js: tokio::sync::OnceCell::new(),
            latencies: Latencies::default(),
        })
    }

    /// Validates and stores `bytes` as the next version of `name`; the same
    /// bytes under the same name return that version. A component is
    /// checked for its header here and compiled off the request path (its
    /// state says how that went); a script is checked by the engine here
    /// and is ready at once.
    pub async fn upload(
        self: &Arc<Self>,
        tenant: &TenantId,
        name: &str,
        language: Language,
        bytes: bytes::Bytes,
    ) -> Result<Uploaded, UploadError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        // Cheap refusals first: compiling is the expensive part.
        if let Some(same) = self
            .store
            .all_plugins(tenant)
            .await?
            .into_iter()
            .find(|p| p.name == name && p.sha256 == sha256 && p.language == language)
        {
            let state = self.state(&same).await;
            return Ok(Uploaded {
                stored: Stored::Existing(same),
                state,
            });
        }
        let compiled = match language {
            Language::Wasm => {
                component_header(&bytes)?;
                None
            }
            Language::Javascript => Some(self.compile_script(&bytes).await?),
        };
        let engine = self.host.engine_fingerprint();
        let new = NewPlugin {
            tenant_id: *tenant,
            name,
            sha256: &sha256,
            wasm: &bytes,
            language,
            engine: &engine,
            artifact: None,
        };
        let stored = self.store.create_plugin(new, self.quota).await?;
        let state = match compiled {
            Some(compiled) => {
                self.cache().insert(sha256, compiled);
                CompileState::Ready
            }
            None => match &stored {
                Stored::Created(plugin) | Stored::Existing(plugin) => self.state(plugin).await,
            },
        };
        Ok(Uploaded { stored, state })
    }

    /// Compiles a script in the engine; its linked form when it passes.
    async fn compile_script(self: &Arc<Self>, bytes: &[u8]) -> Result<Compiled, UploadError> {
        let text =
            js::script_text(bytes).map_err(|message| UploadError::Script { line: 0, message })?;
        let engine = self.js_engine().await?;
        match self.host.compile_script(&engine, text).await {
            Ok(compiled) => Ok(compiled),
            Err(ScriptRefused::Invalid { line, message }) => {
                Err(UploadError::Script { line, message })
            }
            Err(ScriptRefused::Failed(e)) if e.is_gateway_trouble() => Err(e.into()),
            Err(ScriptRefused::Failed(e)) => Err(UploadError::Script {
                line: 0,
                message: format!("running its top level: {e}"),
            }),
        }
    }

    /// The JavaScript engine, compiled (or loaded from its cached
    /// artifact) and linked on first use.
    async fn js_engine(self: &Arc<Self>) -> Result<JsEngine, PluginError> {
        self.js
            .get_or_try_init(|| async {
                let sha256 = js::engine_sha256();
                let engine = self.host.engine_fingerprint();
                let artifact = match self.cached_artifact(&sha256, &engine).await? {
                    Some(artifact) => artifact,
                    None => {
                        let wasm = tokio::task::spawn_blocking(js::prepared_engine)
                            .await
                            .map_err(|e| PluginError::Host(e.to_string()))??;
                        let artifact = self.compile_bounded(wasm.into()).await.map_err(|e| {
                            PluginError::Host(format!("compiling the JavaScript engine: {e}"))
                        })?;
                        self.keep_artifact(&sha256, &engine, &artifact).await?;
                        artifact
                    }
                };
                let this = self.clone();
                tokio::task::spawn_blocking(move || this.host.load_js_engine(&artifact))
                    .await
                    .map_err(|e| PluginError::Host(e.to_string()))?
            })
            .await
            .cloned()
    }

    /// Compiles within the memory budget (the compiler bounds each process
    /// on its own).
    async fn compile_bounded(&self, wasm: bytes::Bytes) -> Result<Vec<u8>, PluginError> {
        let bound_mib = (self.compiler.limits().memory >> 20) as u32;
        let _room = self
            .budget
            .acquire_many(compile_estimate_mib(wasm.len(), bound_mib))
            .await
            .expect("the compile budget is never closed");
        self.compiler.compile(wasm).await
    }

    /// A cached artifact: from the disk cache, else from the store (where
    /// artifacts were kept before there was a disk cache, and still are
    /// without one).
    async fn cached_artifact(
        &self,
        sha256: &str,
        engine: &str,
    ) -> Result<Option<Vec<u8>>, PluginError> {
        if let Some(artifact) = self.artifacts.as_ref().and_then(|d| d.read(sha256, engine)) {
            return Ok(Some(artifact));
        }
        self.store
            .plugin_artifact(sha256, engine)
            .await
            .map_err(|e| PluginError::Host(e.to_string()))
    }

    /// Keeps an artifact for later processes: on disk, or in the store.
    async fn keep_artifact(
        &self,
        sha256: &str,
        engine: &str,
        artifact: &[u8],
    ) -> Result<(), PluginError> {
        match &self.artifacts {
            Some(dir) => dir
                .write(sha256, engine, "cwasm", artifact)
                .map_err(|e| PluginError::Host(format!("writing the artifact cache: {e}"))),
            None => self
                .store
                .put_plugin_artifact(sha256, engine, artifact)
                .await
                .map_err(|e| PluginError::Host(e.to_string())),
        }
    }

    /// Where a plugin's compile stands; starts one when its content has no
    /// artifact for this engine and none is running (a restart after an
    /// upgrade, or a compile cut off by one).
    pub async fn state(self: &Arc<Self>, plugin: &Plugin) -> CompileState {
        if plugin.language == Language::Javascript || self.cache().has(&plugin.sha256) {
            return CompileState::Ready;
        }
        if let Some(job) = self.jobs().get(&plugin.sha256) {
            return job.borrow().clone();
        }
        let engine = self.host.engine_fingerprint();
        if let Some(dir) = &self.artifacts {
            if dir.has(&plugin.sha256, &engine) {
                return CompileState::Ready;
            }
            if let Some(message) = dir.failure(&plugin.sha256, &engine) {
                return CompileState::Failed(message);
            }
        }
        if matches!(
            self.store.plugin_artifact(&plugin.sha256, &engine).await,
            Ok(Some(_))
        ) {
            return CompileState::Ready;
        }
        self.start_compile(&plugin.sha256);
        CompileState::Compiling
    }

    /// Waits until a plugin's compile has ended: `Ready` or `Failed`.
    pub async fn ready(self: &Arc<Self>, plugin: &Plugin) -> CompileState {
        let state = self.state(plugin).await;
        if state != CompileState::Compiling {
            return state;
        }
        let watching = self.jobs().get(&plugin.sha256).map(|job| job.subscribe());
        match watching {
            Some(mut rx) => rx
                .wait_for(|s| *s != CompileState::Compiling)
                .await
                .map(|s| s.clone())
                .unwrap_or_else(|_| CompileState::Compiling),
            None => self.state(plugin).await,
        }
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts compiling a content unless a job for it exists.
    fn start_compile(self: &Arc<Self>, sha256: &str) {
        {
            let mut jobs = self.jobs();
            if jobs.contains_key(sha256) {
                return;
            }
            jobs.insert(
                sha256.to_string(),
                watch::Sender::new(CompileState::Compiling),
            );
        }
        let this = self.clone();
        let sha256 = sha256.to_string();
        tokio::spawn(async move {
            let result = this.compile_content(&sha256).await;
            let engine = this.host.engine_fingerprint();
            let mut jobs = this.jobs();
            let state = match result {
                Ok(()) => {
                    if let Some(job) = jobs.remove(&sha256) {
                        job.send_replace(CompileState::Ready);
                    }
                    return;
                }
                Err(e) => {
                    let message = format!("{e}");
                    tracing::warn!(sha256 = %sha256, "plugin compile failed: {message}");
                    // The gateway's own trouble is not kept on disk: the
                    // next process tries again.
                    if !e.is_gateway_trouble()
                        && let Some(dir) = &this.artifacts
                        && let Err(e) = dir.write(&sha256, &engine, "failed", message.as_bytes())
                    {
                        tracing::warn!("writing the artifact cache: {e}");
                    }
                    CompileState::Failed(message)
                }
            };
            if let Some(job) = jobs.get(&sha256) {
                job.send_replace(state);
            }
        });
    }

    /// Compiles a stored content, loads it (the world and bounds check) and
    /// keeps its artifact.
    async fn compile_content(self: &Arc<Self>, sha256: &str) -> Result<(), PluginError> {
        let store_err = |e: StoreError| PluginError::Host(e.to_string());
        let wasm = self
            .store
            .plugin_blob(sha256)
            .await
            .map_err(store_err)?
            .ok_or_else(|| PluginError::Host("the plugin's bytes are missing".into()))?;
        let artifact = bytes::Bytes::from(self.compile_bounded(wasm.into()).await?);
        let compiled = self.load(artifact.clone()).await?;
        let engine = self.host.engine_fingerprint();
        self.keep_artifact(sha256, &engine, &artifact).await?;
        self.cache().insert(sha256.to_string(), compiled);
        Ok(())
    }

    /// Deletes a plugin version; its compiled form goes too when no other
    /// plugin has the same content.
    pub async fn delete(&self, plugin: &Plugin) -> Result<bool, StoreError> {
        let existed = self.store.delete_plugin(plugin).await?;
        self.latencies.forget(&plugin.id);
        self.forget_unstored().await;
        if matches!(self.store.plugin_blob(&plugin.sha256).await, Ok(None)) {
            self.jobs().remove(&plugin.sha256);
            if let Some(dir) = &self.artifacts {
                dir.remove(&plugin.sha256, &self.host.engine_fingerprint());
            }
        }
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

    /// The linked form of a plugin: from memory, else from its cached
    /// artifact. A component still compiling is the gateway's wait (the
    /// delivery is retried); one that failed is the plugin's failure.
    async fn compiled(self: &Arc<Self>, plugin: &Plugin) -> Result<Compiled, PluginError> {
        if let Some(c) = self.cache().get(&plugin.sha256) {
            return Ok(c);
        }
        let store_err = |e: StoreError| PluginError::Host(e.to_string());
        let compiled = match plugin.language {
            Language::Javascript => {
                let engine = self.js_engine().await?;
                let script = self
                    .store
                    .plugin_blob(&plugin.sha256)
                    .await
                    .map_err(store_err)?
                    .ok_or_else(|| PluginError::Host("the plugin's script is missing".into()))?;
                let script = String::from_utf8(script)
                    .map_err(|_| PluginError::Host("the stored script is not UTF-8".into()))?;
                // Passed at upload; compiled again once per process.
                self.host.compile_script(&engine, &script).await.map_err(
                    |refused| match refused {
                        ScriptRefused::Invalid { line, message } => PluginError::NotCompiled(
                            format!("the script no longer compiles: {message} (line {line})"),
                        ),
                        ScriptRefused::Failed(e) => e,
                    },
                )?
            }
            Language::Wasm => {
                let engine = self.host.engine_fingerprint();
                let artifact = match self.state(plugin).await {
                    CompileState::Ready => self.cached_artifact(&plugin.sha256, &engine).await?,
                    CompileState::Compiling => None,
                    CompileState::Failed(message) => {
                        return Err(PluginError::NotCompiled(message));
                    }
                };
                match artifact {
                    Some(artifact) => self.load(artifact.into()).await?,
                    // Ready in memory a moment ago, and dropped since.
                    None if self.cache().has(&plugin.sha256) => {
                        return Box::pin(self.compiled(plugin)).await;
                    }
                    None => {
                        return Err(PluginError::Unavailable(format!(
                            "{} is still compiling",
                            plugin.label()
                        )));
                    }
                }
            }
        };
        self.cache().insert(plugin.sha256.clone(), compiled.clone());
        Ok(compiled)
    }

    /// The median time of a plugin's recent calls, when it has any.
    pub fn p50(&self, plugin: &PluginId) -> Option<Duration> {
        self.latencies.p50(plugin)
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
        if report.result.is_ok() {
            self.latencies.record(plugin.id, report.elapsed);
        }
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
        // A dry run is someone waiting at a screen: a component still
        // compiling is waited for (within the compiler's own wall-clock
        // bound), not answered with "try later".
        if plugin.language == Language::Wasm {
            let wait = self.compiler.limits().cpu * 3 + Duration::from_secs(5);
            let _ = tokio::time::timeout(wait, self.ready(plugin)).await;
        }
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
