//! The WebAssembly sandbox (SPEC §3): one wasmtime `Engine` and `Linker` for
//! the process, a fresh `Store` and instance per call.
//!
//! Calls run on the async executor itself, on a fiber stack: a ticker thread
//! advances the epoch every millisecond, and at each tick a running call
//! yields to the executor, so a plugin never holds an executor thread for
//! longer than a tick and no call pays a hand-off to another thread.
//!
//! Limits per call: CPU time, counted as the time the call ran between its
//! resumptions (time spent waiting for the executor is not charged), checked
//! at every tick; linear memory through a resource
//! limiter, output size and header count checked on return. WASI p2 is linked
//! with an empty context: no files, network, environment or arguments, and
//! stdout/stderr go to bounded in-memory pipes that end up in the call's log.
//! Instances come from the pooling allocator with copy-on-write memory
//! images; memory stays resident between calls only where the kernel offers
//! the pagemap scan that makes resetting it cheap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Generated from `wit/plugin.wit`. In a module of its own: the generated
/// `hookgate` module would otherwise clash with this crate's own name.
mod bindings {
    wasmtime::component::bindgen!({
        world: "transformer",
        path: "wit",
        exports: { default: async },
    });
}

use bindings::hookgate::plugin::{log as wit_log, types as wit_types};
use bindings::{Transformer, TransformerPre};

pub use bindings::Outcome;
pub use bindings::hookgate::plugin::types::{Delivery as WitDelivery, Event as WitEvent, Header};

/// Per-call limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// CPU time one call may use.
    pub time: Duration,
    /// Linear memory one instance may grow to.
    pub memory: usize,
    /// Largest body a plugin may return.
    pub output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_millis(100),
            memory: 32 << 20,
            output: 1 << 20,
        }
    }
}

/// Most headers a plugin may add.
pub const MAX_HEADERS: usize = 32;
/// Log lines kept per call (host `log` import plus stdout/stderr).
pub const MAX_LOG_LINES: usize = 20;
/// Longest kept log line.
pub const MAX_LOG_LINE: usize = 1024;
/// Bytes of stdout and of stderr kept per call.
const PIPE_CAPACITY: usize = 4096;
/// Instances that may exist at once (pool slots, and their fiber stacks);
/// calls beyond it wait for a slot.
const POOL_SLOTS: u32 = 256;
/// How often the epoch advances: the granularity of the time limit.
const TICK: Duration = Duration::from_millis(1);

/// Why a plugin was refused or a call failed. Each is a `plugin_failed`
/// reason in the delivery log, or a 422 at upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not implement hookgate:plugin/transformer@0.1.0: {0}")]
    WrongWorld(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory limit of {0} MiB")]
    OutOfMemory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an error: {0}")]
    Returned(String),
    #[error("returned a body of {size} bytes, over the {limit}-byte limit")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("returned invalid output: {0}")]
    BadOutput(String),
    #[error("plugin host failure: {0}")]
    Host(String),
}

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `debug`, `info`, `warn`, `error`, or `stdout`/`stderr`.
    pub level: String,
    pub message: String,
}

/// What a call did: its result, its log and the time it took.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub result: Result<Outcome, PluginError>,
    pub logs: Vec<LogLine>,
    pub elapsed: Duration,
}

/// Per-call state; dropped with the store after the call.
struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: usize,
    memory_denied: bool,
    logs: Vec<LogLine>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    fn push_log(&mut self, level: &str, message: &str) {
        if self.logs.len() >= MAX_LOG_LINES {
            return;
        }
        let mut message = message.trim_end().to_string();
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.logs.push(LogLine {
            level: level.into(),
            message,
        });
    }
}

impl wit_log::Host for CallState {
    fn log(&mut self, level: wit_log::Level, message: String) {
        use wit_log::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.push_log(level, &message);
    }
}

impl wit_types::Host for CallState {}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A plugin compiled and linked, ready to instantiate; cheap to clone.
#[derive(Clone)]
pub struct Compiled {
    pre: TransformerPre<CallState>,
}

/// The process-wide plugin runtime.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    limits: Limits,
    /// One permit per pool slot, so a burst of calls waits for a slot
    /// instead of failing to instantiate.
    slots: tokio::sync::Semaphore,
}

impl PluginHost {
    pub fn new(limits: Limits) -> Result<Arc<Self>, PluginError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 2)
            .total_memories(POOL_SLOTS * 2)
            .total_tables(POOL_SLOTS * 2)
            .total_stacks(POOL_SLOTS)
            .max_memory_size(limits.memory);
        // Keeping pages resident only pays when resetting them is a pagemap
        // scan away; without it, it would memset the kept bytes every call.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(limits.memory.min(16 << 20))
                .table_keep_resident(1 << 16);
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Lets `perf` name plugin functions (/tmp/perf-<pid>.map) when
        // profiling the gateway; off by default, it writes a file per process.
        if std::env::var_os("HOOKGATE_PLUGIN_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| PluginError::Host(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|_| Transformer::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
            .map_err(|e| PluginError::Host(format!("{e:#}")))?;
        start_ticker(&engine);
        Ok(Arc::new(Self {
            engine,
            linker,
            limits,
            slots: tokio::sync::Semaphore::new(POOL_SLOTS as usize),
        }))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Identifies this engine's compiled-code format, so cached artifacts of
    /// another wasmtime version or configuration are never loaded.
    pub fn engine_fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// Validates and compiles a component: it must be a component, and its
    /// imports and exports must fit the `transformer` world. Returns it with
    /// its serialised machine code, for the artifact cache.
    pub fn compile(&self, wasm: &[u8]) -> Result<(Compiled, Vec<u8>), PluginError> {
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| PluginError::NotAComponent(root_cause(&e)))?;
        let compiled = self.link(&component)?;
        let artifact = component
            .serialize()
            .map_err(|e| PluginError::Host(format!("{e:#}")))?;
        Ok((compiled, artifact))
    }

    /// Loads machine code made by [`PluginHost::compile`] of this engine.
    ///
    /// The bytes must come from this gateway's own store: deserialising
    /// trusts them to be wasmtime's output.
    pub fn load(&self, artifact: &[u8]) -> Result<Compiled, PluginError> {
        // SAFETY: artifacts are written only by `compile` into the gateway's
        // store and keyed by `engine_fingerprint`, so they are this engine's
        // own serialised output.
        let component = unsafe { Component::deserialize(&self.engine, artifact) }
            .map_err(|e| PluginError::Host(format!("{e:#}")))?;
        self.link(&component)
    }

    fn link(&self, component: &Component) -> Result<Compiled, PluginError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| PluginError::WrongWorld(root_cause(&e)))?;
        let pre = TransformerPre::new(pre).map_err(|e| PluginError::WrongWorld(root_cause(&e)))?;
        Ok(Compiled { pre })
    }

    /// Runs one transform in a fresh instance, on the current task: the call
    /// yields at every epoch tick.
    pub async fn call(&self, compiled: &Compiled, event: &WitEvent, config: &str) -> CallReport {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the slots are never closed");
        let stdout = MemoryOutputPipe::new(PIPE_CAPACITY);
        let stderr = MemoryOutputPipe::new(PIPE_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let mut store = Store::new(
            &self.engine,
            CallState {
                wasi,
                table: ResourceTable::new(),
                memory_limit: self.limits.memory,
                memory_denied: false,
                logs: Vec::new(),
            },
        );
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        let started = Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(charge(self.limits.time, started));

        let called = match compiled.pre.instantiate_async(&mut store).await {
            Ok(t) => t.call_transform(&mut store, event, config).await,
            Err(e) => Err(e),
        };
        let elapsed = started.elapsed();

        let result = match called {
            Ok(Ok(outcome)) => self.check_output(outcome),
            Ok(Err(message)) if store.data().memory_denied => Err(PluginError::Returned(format!(
                "{message} (it reached its memory limit of {} MiB)",
                self.limits.memory >> 20
            ))),
            Ok(Err(message)) => Err(PluginError::Returned(message)),
            Err(e) => Err(self.classify(&e, store.data().memory_denied)),
        };
        let state = store.data_mut();
        for (level, pipe) in [("stdout", &stdout), ("stderr", &stderr)] {
            for line in String::from_utf8_lossy(&pipe.contents()).lines() {
                state.push_log(level, line);
            }
        }
        CallReport {
            result,
            logs: std::mem::take(&mut state.logs),
            elapsed,
        }
    }

    fn classify(&self, e: &wasmtime::Error, memory_denied: bool) -> PluginError {
        // A denied allocation is the cause even when the guest then spun
        // or trapped while handling it.
        if memory_denied {
            return PluginError::OutOfMemory(self.limits.memory >> 20);
        }
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return PluginError::Timeout(self.limits.time);
        }
        PluginError::Trap(root_cause(e))
    }

    fn check_output(&self, outcome: Outcome) -> Result<Outcome, PluginError> {
        let Outcome::Deliver(delivery) = &outcome else {
            return Ok(outcome);
        };
        if delivery.body.len() > self.limits.output {
            return Err(PluginError::OutputTooLarge {
                size: delivery.body.len(),
                limit: self.limits.output,
            });
        }
        if delivery.headers.len() > MAX_HEADERS {
            return Err(PluginError::BadOutput(format!(
                "{} headers, at most {MAX_HEADERS} are allowed",
                delivery.headers.len()
            )));
        }
        for h in &delivery.headers {
            check_header(&h.name, &h.value)?;
        }
        if let Some(ct) = &delivery.content_type {
            reqwest::header::HeaderValue::from_str(ct)
                .map_err(|_| PluginError::BadOutput(format!("invalid content-type {ct:?}")))?;
        }
        Ok(outcome)
    }
}

/// Headers a plugin may not set: the gateway's own and hop-by-hop ones.
const RESERVED_HEADERS: [&str; 10] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    "te",
    crate::signing::WEBHOOK_ID,
    crate::signing::WEBHOOK_TIMESTAMP,
    crate::signing::WEBHOOK_SIGNATURE,
];

fn check_header(name: &str, value: &str) -> Result<(), PluginError> {
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(PluginError::BadOutput(format!(
            "invalid header name {name:?}"
        )));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(PluginError::BadOutput(format!(
            "header {name} is set by the gateway"
        )));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(PluginError::BadOutput(format!(
            "invalid value for header {name}"
        )));
    }
    Ok(())
}

/// The innermost error message, which says the most.
fn root_cause(e: &wasmtime::Error) -> String {
    let mut text = e.root_cause().to_string();
    if text.len() > 500 {
        text.truncate(500);
    }
    text
}

/// The epoch callback of one call: charges the time the call ran since it
/// last got the thread, traps once `budget` is spent, and otherwise yields
/// to the executor until the next tick.
///
/// Charging running time rather than ticks matters under load: a call
/// resumed after waiting several ticks finds its deadline already passed,
/// and counting that as a tick would time it out without letting it run.
fn charge(
    budget: Duration,
    started: Instant,
) -> impl FnMut(wasmtime::StoreContextMut<'_, CallState>) -> wasmtime::Result<UpdateDeadline>
+ Send
+ Sync
+ 'static {
    // Nanoseconds from `started` to the call's last resumption.
    let resumed = Arc::new(AtomicU64::new(0));
    let mut used = Duration::ZERO;
    move |_| {
        let ran_since = Duration::from_nanos(resumed.load(Ordering::Relaxed));
        used += started.elapsed().saturating_sub(ran_since);
        if used >= budget {
            return Ok(UpdateDeadline::Interrupt);
        }
        let resumed = resumed.clone();
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                resumed.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }),
        ))
    }
}

/// Advances the engine's epoch every [`TICK`] while the engine lives.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("hookgate-plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("spawn the epoch ticker");
}
