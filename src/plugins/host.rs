//! The WebAssembly sandbox: one wasmtime `Engine` and `Linker` for
//! the process, a fresh `Store` and instance per call.
//!
//! Calls run on the async executor itself, on a fiber stack: a ticker thread
//! advances the epoch every millisecond, and at each tick a running call
//! yields to the executor, so a plugin never holds an executor thread for
//! longer than a tick and no call pays a hand-off to another thread.
//!
//! Limits per call (ARCHITECTURE.md, "Plugin isolation"):
//! - CPU time, counted as the time the call ran between its resumptions
//!   (time spent waiting for the executor is not charged), checked at every
//!   tick;
//! - a wall-clock deadline around instantiation and the call, whatever the
//!   guest waits on: a guest blocked in a WASI wait runs no wasm, so no
//!   epoch tick would ever stop it, but its future is dropped at the
//!   deadline, which ends the call and returns its slot;
//! - linear memory summed over all the instance's memories, through a
//!   resource limiter; core instances, memories and tables per component,
//!   refused when a component is loaded, so the pool sized from them never
//!   runs short: a call waits for a slot, never fails for one;
//! - what it returns, checked and bounded by [`super::output`].
//!
//! WASI p2 is linked with an empty context: no files, network, environment
//! or arguments, random bytes in small amounts only, and stdout/stderr go to
//! bounded pipes that end up in the call's log. Instances come from the
//! pooling allocator with copy-on-write memory images; memory stays resident
//! between calls only where the kernel offers the pagemap scan that makes
//! resetting it cheap, and only its first MiB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolConcurrencyLimitError,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::output::{self, MAX_LOG_LINE, MAX_LOG_LINES};
use super::pipe::BoundedPipe;
use crate::signing::HeaderNames;

use super::error::PluginError;
use super::wit::{JsEnginePre, Transformer, TransformerPre, wit_log, wit_types};

pub use super::wit::{Delivery, Header, Outcome, ScriptError, WitEvent};

/// Per-call limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// CPU time one call may use.
    pub time: Duration,
    /// Wall-clock time a delivery's whole chain (or one dry run) may take,
    /// instantiation included.
    pub deadline: Duration,
    /// Calls one tenant may run at once: each running call takes its turns
    /// on the executor, so this bounds what one tenant's plugins take of
    /// the threads every tenant's deliveries share.
    pub tenant_calls: usize,
    /// Linear memory one call may use, summed over all its memories.
    pub memory: usize,
    /// Largest body a plugin may return.
    pub output: usize,
}

impl Limits {
    /// The limits of a gateway run without settings (the operator's
    /// settings take their defaults from here).
    pub const DEFAULT: Self = Self {
        time: Duration::from_millis(100),
        deadline: Duration::from_secs(1),
        tenant_calls: 16,
        memory: 32 << 20,
        output: 1 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Core instances one component may create (so one call).
pub const MAX_CORE_INSTANCES: u32 = 32;
/// Linear memories one component may define.
pub const MAX_MEMORIES: u32 = 4;
/// Tables one component may define.
pub const MAX_TABLES: u32 = 16;
/// Bytes of stdout and of stderr kept per call.
const PIPE_CAPACITY: usize = 4096;
/// Largest `get-random-bytes` request: a guest keys its hash maps with a
/// few bytes, and the host allocates the answer outside the guest's memory.
const MAX_RANDOM_BYTES: u64 = 64 << 10;
/// Calls that may run at once (pool slots, and their fiber stacks); calls
/// beyond it wait for a slot.
const POOL_SLOTS: u32 = 256;
/// A call that waits this long for a slot gives up: the gateway is too busy
/// to run it, and the delivery is retried later.
const SLOT_WAIT: Duration = Duration::from_secs(30);
/// Memory a pool slot keeps resident between calls (where resetting it is
/// cheap): enough for an ordinary plugin's stack and heap, and at most
/// this much per slot of the pool.
const KEEP_RESIDENT: usize = 1 << 20;
/// How often the epoch advances: the granularity of the time limit.
const TICK: Duration = Duration::from_millis(1);

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

impl CallReport {
    /// A call that ended before the guest ran.
    pub fn failed(error: PluginError) -> Self {
        Self {
            result: Err(error),
            logs: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// Waits up to `wait` for a turn (a pool slot, a tenant's call); past it
/// the gateway is too busy to run the call, which is retried later.
pub(super) async fn take_turn<P>(
    wait: Duration,
    turn: impl std::future::Future<Output = Result<P, tokio::sync::AcquireError>>,
    what: &str,
) -> Result<P, PluginError> {
    match tokio::time::timeout(wait, turn).await {
        Ok(permit) => Ok(permit.expect("turns are never closed")),
        Err(_) => Err(PluginError::Unavailable(format!(
            "{what} left no turn free within {wait:?}"
        ))),
    }
}

/// Per-call state; dropped with the store after the call.
struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: usize,
    /// Linear memory of every memory of the instance, in bytes.
    memory_used: usize,
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
        self.logs.push(LogLine {
            level: level.into(),
            message: output::bounded(message.trim_end(), MAX_LOG_LINE),
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
    /// Also asked when a memory is created (`current` 0), so the sum
    /// counts every memory from its first page.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_used - current + desired;
        if total > self.memory_limit {
            self.memory_denied = true;
            return Ok(false);
        }
        self.memory_used = total;
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
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// A component of the `transformer` world.
    Wasm(TransformerPre<CallState>),
    /// A script, run by the JavaScript engine: its module as the engine's
    /// bytecode, made by the engine's `compile` in a sandboxed call of this
    /// process (never stored, never taken from outside).
    Js {
        engine: JsEnginePre<CallState>,
        code: Arc<[u8]>,
    },
}

/// The JavaScript engine (`plugins/js-engine`, the `js-engine` world)
/// compiled and linked; every JavaScript plugin runs in it. Cheap to clone.
#[derive(Clone)]
pub struct JsEngine {
    pre: JsEnginePre<CallState>,
}

/// What one sandboxed call is asked to do.
enum Op<'a> {
    Transform {
        compiled: &'a Compiled,
        event: &'a WitEvent,
        config: &'a str,
    },
    Compile {
        engine: &'a JsEngine,
        script: &'a str,
    },
}

/// What the guest answered to an [`Op`].
enum Answer {
    Transform(Result<Outcome, String>),
    Compile(Result<Vec<u8>, ScriptError>),
}

/// One sandboxed call's end: the guest's answer (`None` at the deadline)
/// and what the call left behind.
struct Ended {
    called: Option<wasmtime::Result<Answer>>,
    memory_denied: bool,
    logs: Vec<LogLine>,
    elapsed: Duration,
}

/// Why a script was refused at upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptRefused {
    /// The engine refused it (a syntax error, no `transform` export, or a
    /// throw while its top level ran): the line (0 when unknown) and the
    /// engine's message.
    Invalid { line: u32, message: String },
    /// Running its top level hit a sandbox limit, or the gateway could not
    /// run the check.
    Failed(PluginError),
}

/// The engine settings that decide the machine code: shared by the host's
/// engine and the compiler's, so an artifact compiled by either loads in
/// the other. Instance allocation is not among them.
pub(super) fn code_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true);
    config
}

/// Compiles a component to this engine's serialised machine code, without
/// linking or instantiating it. Runs in the compiler process (see
/// [`super::compile`]), or in the caller's for offline use.
pub fn compile_artifact(wasm: &[u8]) -> Result<Vec<u8>, PluginError> {
    let engine = Engine::new(&code_config()).map_err(|e| PluginError::Host(format!("{e:#}")))?;
    engine
        .precompile_component(wasm)
        .map_err(|e| PluginError::NotAComponent(root_cause(&e)))
}

/// The process-wide plugin runtime.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    limits: Limits,
    /// One permit per pool slot, so a burst of calls waits for a slot
    /// instead of failing to instantiate.
    slots: tokio::sync::Semaphore,
    /// How long a call waits for a slot before giving up.
    slot_wait: Duration,
    /// Advances the epoch while calls run.
    ticker: Arc<Ticker>,
}

impl PluginHost {
    pub fn new(limits: Limits) -> Result<Arc<Self>, PluginError> {
        Self::with_slots(limits, POOL_SLOTS, SLOT_WAIT)
    }

    /// A host running at most `slots` calls at once, each waiting at most
    /// `slot_wait` for its turn.
    pub fn with_slots(
        limits: Limits,
        slots: u32,
        slot_wait: Duration,
    ) -> Result<Arc<Self>, PluginError> {
        // Every count is per-component bound times slots: whatever the mix
        // of components running, a call that has a slot has room.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .total_core_instances(slots * MAX_CORE_INSTANCES)
            .total_memories(slots * MAX_MEMORIES)
            .total_tables(slots * MAX_TABLES)
            .total_stacks(slots)
            .max_memory_size(limits.memory);
        // Keeping pages resident only pays when resetting them is a pagemap
        // scan away; without it, it would memset the kept bytes every call.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(limits.memory.min(KEEP_RESIDENT))
                .table_keep_resident(1 << 16);
        }
        let mut config = code_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
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
        let ticker = Ticker::start(&engine);
        Ok(Arc::new(Self {
            engine,
            linker,
            limits,
            slots: tokio::sync::Semaphore::new(slots as usize),
            slot_wait,
            ticker,
        }))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How long a call waits for its turn before the gateway gives up on it.
    pub fn slot_wait(&self) -> Duration {
        self.slot_wait
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

    /// Validates and compiles a component in this process: it must be a
    /// component within the sandbox's bounds, and its imports and exports
    /// must fit the `transformer` world. For offline use and tests; the
    /// gateway compiles uploads in a bounded child process instead.
    pub fn compile(&self, wasm: &[u8]) -> Result<(Compiled, Vec<u8>), PluginError> {
        let artifact = compile_artifact(wasm)?;
        Ok((self.load(&artifact)?, artifact))
    }

    /// Loads machine code made by [`compile_artifact`], checking the
    /// component against the sandbox's bounds and the world.
    ///
    /// The bytes must come from this gateway's own compiler: deserialising
    /// trusts them to be wasmtime's output.
    pub fn load(&self, artifact: &[u8]) -> Result<Compiled, PluginError> {
        // SAFETY: artifacts are made only by `compile_artifact`, in this
        // process or in the gateway's own compiler process, with the same
        // code settings, and stored keyed by `engine_fingerprint`.
        let component = unsafe { Component::deserialize(&self.engine, artifact) }
            .map_err(|e| over_bound(&e).unwrap_or_else(|| PluginError::Host(root_cause(&e))))?;
        self.link(&component)
    }

    fn link(&self, component: &Component) -> Result<Compiled, PluginError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| PluginError::WrongWorld(root_cause(&e)))?;
        let pre = TransformerPre::new(pre).map_err(|e| PluginError::WrongWorld(root_cause(&e)))?;
        Ok(Compiled {
            kind: Kind::Wasm(pre),
        })
    }

    /// Loads the JavaScript engine's machine code (made by
    /// [`compile_artifact`] from the engine component, like any plugin's)
    /// and links it against the `js-engine` world.
    pub fn load_js_engine(&self, artifact: &[u8]) -> Result<JsEngine, PluginError> {
        // SAFETY: as in `load`: the gateway's own compiler made it.
        let component = unsafe { Component::deserialize(&self.engine, artifact) }
            .map_err(|e| PluginError::Host(root_cause(&e)))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(JsEnginePre::new)
            .map_err(|e| PluginError::Host(format!("the JavaScript engine: {}", root_cause(&e))))?;
        Ok(JsEngine { pre })
    }

    /// A JavaScript plugin: its script compiled by the engine in a fresh
    /// instance, within the plugin limits. The script must parse as an ES
    /// module exporting a function `transform`, and its top level must
    /// run; the module's bytecode is what each call then loads.
    pub async fn compile_script(
        &self,
        engine: &JsEngine,
        script: &str,
    ) -> Result<Compiled, ScriptRefused> {
        let deadline = self.limits.deadline;
        let ended = self
            .sandboxed(Op::Compile { engine, script }, deadline)
            .await
            .map_err(ScriptRefused::Failed)?;
        match ended.called {
            Some(Ok(Answer::Compile(Ok(code)))) => Ok(Compiled {
                kind: Kind::Js {
                    engine: engine.pre.clone(),
                    code: Arc::from(code),
                },
            }),
            Some(Ok(Answer::Compile(Err(e)))) if ended.memory_denied => {
                Err(ScriptRefused::Failed(PluginError::Returned(format!(
                    "{} (it reached its memory limit of {} MiB)",
                    output::bounded(&e.message, output::MAX_MESSAGE),
                    self.limits.memory >> 20
                ))))
            }
            Some(Ok(Answer::Compile(Err(e)))) => Err(ScriptRefused::Invalid {
                line: e.line,
                message: output::bounded(&e.message, output::MAX_MESSAGE),
            }),
            Some(Ok(Answer::Transform(_))) => unreachable!("a compile answers a compile"),
            None => Err(ScriptRefused::Failed(PluginError::Deadline(deadline))),
            Some(Err(e)) => Err(ScriptRefused::Failed(
                self.classify(&e, ended.memory_denied),
            )),
        }
    }

    /// Runs one transform in a fresh instance, on the current task: the call
    /// yields at every epoch tick. It waits for a pool slot first (not
    /// charged), then has `deadline` of wall-clock time to instantiate and
    /// return, less the time it spent waiting for the executor after its
    /// yields (a busy gateway's, not the plugin's). `tenant` names the
    /// tenant's own headers, which the plugin may not set. The report's
    /// `elapsed` is that same time, the call's own.
    pub async fn call(
        &self,
        compiled: &Compiled,
        event: &WitEvent,
        config: &str,
        tenant: &HeaderNames,
        deadline: Duration,
    ) -> CallReport {
        let op = Op::Transform {
            compiled,
            event,
            config,
        };
        let ended = match self.sandboxed(op, deadline).await {
            Ok(ended) => ended,
            Err(e) => return CallReport::failed(e),
        };
        let memory_denied = ended.memory_denied;
        let result = match ended.called {
            None => Err(PluginError::Deadline(self.limits.deadline)),
            Some(Ok(Answer::Transform(Err(message)))) if memory_denied => {
                Err(PluginError::Returned(format!(
                    "{} (it reached its memory limit of {} MiB)",
                    output::bounded(&message, output::MAX_MESSAGE),
                    self.limits.memory >> 20
                )))
            }
            Some(Ok(Answer::Transform(returned))) => {
                output::check(returned, self.limits.output, tenant)
            }
            Some(Ok(Answer::Compile(_))) => unreachable!("a transform answers a transform"),
            Some(Err(e)) => Err(self.classify(&e, memory_denied)),
        };
        CallReport {
            result,
            logs: ended.logs,
            elapsed: ended.elapsed,
        }
    }

    /// Runs `op` in a fresh store and instance: waits for a pool slot
    /// first (not charged), then has `deadline` of its own wall-clock time
    /// (see [`CallClock::own`]) to instantiate and return, with the CPU,
    /// memory and output limits. `Err` only when it could not start.
    async fn sandboxed(&self, op: Op<'_>, deadline: Duration) -> Result<Ended, PluginError> {
        let _slot = take_turn(self.slot_wait, self.slots.acquire(), "the plugin pool").await?;
        if deadline.is_zero() {
            return Err(PluginError::Deadline(self.limits.deadline));
        }
        // Before the store exists: no guest code runs without ticks.
        let _ticking = self.ticker.running();
        let stdout = BoundedPipe::new(PIPE_CAPACITY);
        let stderr = BoundedPipe::new(PIPE_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        let mut store = Store::new(
            &self.engine,
            CallState {
                wasi,
                table: ResourceTable::new(),
                memory_limit: self.limits.memory,
                memory_used: 0,
                memory_denied: false,
                logs: Vec::new(),
            },
        );
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        let started = Instant::now();
        let clock = CallClock::new(started);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(charge(self.limits.time, clock.clone()));

        // Dropping the future at the deadline ends the call wherever it is,
        // in wasm or awaiting a host call; the store goes with it.
        let called = within(&clock, deadline, async {
            match op {
                Op::Transform {
                    compiled,
                    event,
                    config,
                } => match &compiled.kind {
                    Kind::Wasm(pre) => {
                        let instance = pre.instantiate_async(&mut store).await?;
                        let out = instance.call_transform(&mut store, event, config).await?;
                        Ok(Answer::Transform(out))
                    }
                    Kind::Js { engine, code } => {
                        let instance = engine.instantiate_async(&mut store).await?;
                        let out = instance
                            .call_transform(&mut store, code, event, config)
                            .await?;
                        Ok(Answer::Transform(out))
                    }
                },
                Op::Compile { engine, script } => {
                    let instance = engine.pre.instantiate_async(&mut store).await?;
                    Ok(Answer::Compile(
                        instance.call_compile(&mut store, script).await?,
                    ))
                }
            }
        })
        .await;
        let elapsed = clock.own();

        let state = store.data_mut();
        for (level, pipe) in [("stdout", &stdout), ("stderr", &stderr)] {
            let (kept, dropped) = pipe.contents();
            for line in String::from_utf8_lossy(&kept).lines() {
                state.push_log(level, line);
            }
            if dropped > 0 {
                state.push_log(level, &format!("({dropped} more bytes not kept)"));
            }
        }
        Ok(Ended {
            called,
            memory_denied: state.memory_denied,
            logs: std::mem::take(&mut state.logs),
            elapsed,
        })
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
        // The pool is sized so this does not happen; if it does, it is the
        // gateway's shortage, not the plugin's fault.
        if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
            return PluginError::Unavailable(root_cause(e));
        }
        PluginError::Trap(root_cause(e))
    }
}

/// A component over one of the sandbox's per-component bounds, as wasmtime
/// words it when loading, said in the sandbox's own terms.
fn over_bound(e: &wasmtime::Error) -> Option<PluginError> {
    let text = format!("{e:#}");
    let bound = if text.contains("core module instances") {
        format!("at most {MAX_CORE_INSTANCES} core instances per plugin")
    } else if text.contains("linear memories") {
        format!("at most {MAX_MEMORIES} memories per plugin")
    } else if text.contains("tables, which exceeds") || text.contains("table does not fit") {
        format!("at most {MAX_TABLES} tables per plugin, of limited size")
    } else if text.contains("memory does not fit") {
        "a memory's initial size must fit the plugin memory limit".to_string()
    } else if text.contains("instance size does not fit") {
        "its instances' state is larger than the sandbox allows".to_string()
    } else {
        return None;
    };
    Some(PluginError::Bound(format!("{bound} ({})", root_cause(e))))
}

/// The innermost error message, which says the most.
fn root_cause(e: &wasmtime::Error) -> String {
    let mut text = e.root_cause().to_string();
    if text.len() > 500 {
        text.truncate(500);
    }
    text
}

/// Where one call's wall-clock time went, in nanoseconds from its start:
/// what it spent parked waiting for the executor after a yield is the
/// gateway's, everything else (running, waiting on a host call) the call's
/// own.
struct CallClock {
    started: Instant,
    /// Time parked after yields that ended.
    waited: AtomicU64,
    /// When the call last yielded, or [`RUNNING`].
    parked_at: AtomicU64,
    /// When the call last got the thread back.
    resumed: AtomicU64,
}

const RUNNING: u64 = u64::MAX;

impl CallClock {
    fn new(started: Instant) -> Arc<Self> {
        Arc::new(Self {
            started,
            waited: AtomicU64::new(0),
            parked_at: AtomicU64::new(RUNNING),
            resumed: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// The wall-clock time the call has had to itself: the deadline counts
    /// this, so a busy gateway does not run honest plugins out of time.
    fn own(&self) -> Duration {
        let now = self.now();
        let mut waited = self.waited.load(Ordering::Relaxed);
        let parked = self.parked_at.load(Ordering::Relaxed);
        if parked != RUNNING {
            waited += now.saturating_sub(parked);
        }
        Duration::from_nanos(now.saturating_sub(waited))
    }

    fn park(&self) {
        self.parked_at.store(self.now(), Ordering::Relaxed);
    }

    fn resume(&self) {
        let now = self.now();
        let parked = self.parked_at.swap(RUNNING, Ordering::Relaxed);
        if parked != RUNNING {
            self.waited
                .fetch_add(now.saturating_sub(parked), Ordering::Relaxed);
        }
        self.resumed.store(now, Ordering::Relaxed);
    }
}

/// Runs `call` until it ends or has had `deadline` of its own time
/// ([`CallClock::own`]); `None` at the deadline, the call's future dropped.
async fn within<T>(
    clock: &CallClock,
    deadline: Duration,
    call: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut call = std::pin::pin!(call);
    loop {
        let own = clock.own();
        if own >= deadline {
            return None;
        }
        tokio::select! {
            biased;
            done = &mut call => return Some(done),
            _ = tokio::time::sleep(deadline - own) => {}
        }
    }
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
    clock: Arc<CallClock>,
) -> impl FnMut(wasmtime::StoreContextMut<'_, CallState>) -> wasmtime::Result<UpdateDeadline>
+ Send
+ Sync
+ 'static {
    let mut used = Duration::ZERO;
    move |_| {
        let ran_since = clock.resumed.load(Ordering::Relaxed);
        used += Duration::from_nanos(clock.now().saturating_sub(ran_since));
        if used >= budget {
            return Ok(UpdateDeadline::Interrupt);
        }
        let clock = clock.clone();
        clock.park();
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                clock.resume();
            }),
        ))
    }
}

/// Advances the engine's epoch every [`TICK`] while a call runs, and sleeps
/// while none does: an idle ticker would wake the gateway a thousand times
/// a second for nothing.
struct Ticker {
    /// Calls running; the ticker ticks while it is above zero.
    calls: std::sync::Mutex<usize>,
    changed: std::sync::Condvar,
}

/// A running call's claim on the ticker; ends with the call.
struct Ticking<'a>(&'a Ticker);

impl Ticker {
    /// Starts the ticker thread, which ends once `engine` is dropped.
    fn start(engine: &Engine) -> Arc<Self> {
        let ticker = Arc::new(Self {
            calls: std::sync::Mutex::new(0),
            changed: std::sync::Condvar::new(),
        });
        let (weak, this) = (engine.weak(), Arc::downgrade(&ticker));
        std::thread::Builder::new()
            .name("hookgate-plugin-epoch".into())
            .spawn(move || {
                while let Some(ticker) = this.upgrade() {
                    {
                        let calls = ticker.calls.lock().unwrap_or_else(|e| e.into_inner());
                        // Wakes now and then to see whether the host is gone.
                        let _ = ticker.changed.wait_timeout_while(
                            calls,
                            Duration::from_secs(1),
                            |calls| *calls == 0,
                        );
                    }
                    drop(ticker);
                    let Some(engine) = weak.upgrade() else { return };
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .expect("spawn the epoch ticker");
        ticker
    }

    fn running(&self) -> Ticking<'_> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        *calls += 1;
        if *calls == 1 {
            self.changed.notify_one();
        }
        Ticking(self)
    }
}

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        *self.0.calls.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
    }
}
