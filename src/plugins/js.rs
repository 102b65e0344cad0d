//! JavaScript plugins: the engine component, its preparation, and what a
//! script is checked against at upload.
//!
//! The engine is `plugins/js-engine` (QuickJS through rquickjs), built
//! from source for wasm32-wasip2 by the gateway's build script (`build.rs`)
//! and embedded here. The gateway prepares it ([`prepared_engine`]),
//! compiles it once (in the bounded compiler process, the artifact cached
//! like any plugin's) and every JavaScript plugin runs in it: the script
//! is data passed with each call, in a fresh instance with the same limits
//! as a wasm plugin.
//!
//! Preparing is pre-initialisation: the engine's `prepare` export starts
//! the JavaScript runtime and context once, and the instance's memory is
//! written back into the component as its initial state, so every fresh
//! instance begins with the engine already started instead of paying for
//! it on each call (ARCHITECTURE.md, "The JavaScript engine").

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Instance, Linker, WasmList};
use wasmtime::{Config, Engine, OptLevel, Store};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::error::PluginError;
use super::wit::{Transformer, wit_log, wit_types};

/// The engine component's bytes, as built.
pub const ENGINE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/js_engine.wasm"));

/// Largest script accepted, well under the upload limit: a transform is
/// a few functions, and its bytecode is kept in memory by every gateway
/// that runs it.
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// The engine's pre-initialisation export (`wit/js-engine.wit`).
const PREPARE: &str = "prepare";

/// Names how [`prepared_engine`] prepares, in the artifact's cache key:
/// change it when the preparation changes, so no artifact of another
/// preparation is loaded.
const PREPARATION: &[u8] = b"prepare-once-1";

/// The cache key of the engine's artifact, hex: SHA-256 of the engine
/// component and of its preparation.
pub fn engine_sha256() -> String {
    hex::encode(
        Sha256::new()
            .chain_update(ENGINE_WASM)
            .chain_update(PREPARATION)
            .finalize(),
    )
}

/// The engine component with its `prepare` export already run and its
/// state kept as the component's initial memory. Takes a compile of the
/// engine (unoptimised, in this process: the engine is the gateway's own,
/// not an upload) and a moment to run; callers cache what they compile
/// from it.
pub fn prepared_engine() -> Result<Vec<u8>, PluginError> {
    let failed =
        |e: wasmtime::Error| PluginError::Host(format!("preparing the JavaScript engine: {e:#}"));
    let mut wizer = Wizer::new();
    // The export stays: the host's bindings expect the whole world.
    wizer.init_func(PREPARE).keep_init_func(true);
    let (cx, instrumented) = wizer.instrument_component(ENGINE_WASM).map_err(failed)?;

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .cranelift_opt_level(OptLevel::None);
    let engine = Engine::new(&config).map_err(failed)?;
    let component = Component::new(&engine, &instrumented).map_err(failed)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(failed)?;
    Transformer::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(failed)?;
    let mut store = Store::new(&engine, Preparing::new());
    let instance = linker.instantiate(&mut store, &component).map_err(failed)?;
    instance
        .get_typed_func::<(), ()>(&mut store, PREPARE)
        .and_then(|prepare| prepare.call(&mut store, ()))
        .map_err(failed)?;

    let mut state = Prepared {
        store: &mut store,
        instance,
    };
    let snapshot = wizer.snapshot_component(&cx, &mut state);
    match pin!(snapshot).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(snapshot) => snapshot.map_err(failed),
        // Every call the snapshot makes is synchronous (see `Prepared`).
        Poll::Pending => unreachable!("the snapshot never waits"),
    }
}

/// The store's state while the engine prepares: WASI (the engine's start
/// reads the clock) and a log nobody reads (it logs nothing).
struct Preparing {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl Preparing {
    fn new() -> Self {
        Self {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for Preparing {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit_log::Host for Preparing {
    fn log(&mut self, _level: wit_log::Level, _message: String) {}
}

impl wit_types::Host for Preparing {}

/// The prepared instance, read by the snapshot through the functions the
/// instrumentation added: `instance` is the name of the instance they are
/// exported from, `func` one of them, each returning one value.
struct Prepared<'a> {
    store: &'a mut Store<Preparing>,
    instance: Instance,
}

impl Prepared<'_> {
    fn read<R>(&mut self, instance: &str, func: &str) -> R
    where
        R: wasmtime::component::Lift + wasmtime::component::ComponentType + 'static,
    {
        let exported = self
            .instance
            .get_export_index(&mut *self.store, None, instance)
            .and_then(|i| {
                self.instance
                    .get_export_index(&mut *self.store, Some(&i), func)
            })
            .unwrap_or_else(|| panic!("the instrumented engine exports {instance}#{func}"));
        let read = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, exported)
            .and_then(|f| f.call(&mut *self.store, ()))
            .unwrap_or_else(|e| panic!("reading {instance}#{func}: {e:#}"));
        read.0
    }
}

impl ComponentInstanceState for Prepared<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.read(instance, func);
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.read(instance, func)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.read(instance, func)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.read::<f32>(instance, func).to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.read::<f64>(instance, func).to_bits()
    }
}

/// A script's text, or why the bytes are not one.
pub fn script_text(bytes: &[u8]) -> Result<&str, String> {
    if bytes.len() > MAX_SCRIPT_BYTES {
        return Err(format!(
            "the script is {} bytes, over the {MAX_SCRIPT_BYTES}-byte limit",
            bytes.len()
        ));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("the script is not UTF-8 text: {e}"))?;
    if text.trim().is_empty() {
        return Err("the script is empty".into());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use super::*;
    use crate::plugins::PluginError;
    use crate::plugins::host::{
        Compiled, JsEngine, Limits, Outcome, PluginHost, ScriptRefused, WitEvent, compile_artifact,
    };
    use crate::signing::HeaderNames;

    /// One host and engine for the module's tests: compiling the engine
    /// takes seconds.
    fn engine() -> (Arc<PluginHost>, JsEngine) {
        static ENGINE: OnceLock<(Arc<PluginHost>, JsEngine)> = OnceLock::new();
        ENGINE
            .get_or_init(|| {
                let host = PluginHost::new(Limits::default()).unwrap();
                let artifact = compile_artifact(&prepared_engine().unwrap()).unwrap();
                let engine = host.load_js_engine(&artifact).unwrap();
                (host, engine)
            })
            .clone()
    }

    fn event() -> WitEvent {
        WitEvent {
            id: "evt_1".into(),
            event_type: "booking.created".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            endpoint_id: "wh_1".into(),
            payload: r#"{"id":"evt_1","type":"booking.created","created_at":"2026-01-01T00:00:00Z","data":{"booking":{"id":"bk_7"}}}"#.into(),
            headers: vec![],
        }
    }

    async fn run(script: &str) -> (Result<Outcome, PluginError>, Vec<String>) {
        let (host, engine) = engine();
        let compiled: Compiled = host.compile_script(&engine, script).await.unwrap();
        let report = host
            .call(
                &compiled,
                &event(),
                "{}",
                &HeaderNames::default(),
                Limits::DEFAULT.deadline,
            )
            .await;
        let logs = report
            .logs
            .iter()
            .map(|l| format!("{}: {}", l.level, l.message))
            .collect();
        (report.result, logs)
    }

    #[tokio::test]
    async fn a_script_transforms_an_event_in_the_sandbox() {
        let (out, logs) = run(
            "export function transform(event) { console.log('seen', event.id); return { body: { deal: event.data.booking.id }, headers: { 'X-A': 'b' } }; }",
        )
        .await;
        match out {
            Ok(Outcome::Deliver(d)) => {
                assert_eq!(d.body, r#"{"deal":"bk_7"}"#);
                assert_eq!(d.headers[0].name, "X-A");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(logs, ["info: seen evt_1"]);
    }

    /// Every call starts from the same prepared memory; `Math.random` is
    /// still seeded per call.
    #[tokio::test]
    async fn calls_from_the_prepared_engine_draw_their_own_random_numbers() {
        let script =
            "export function transform() { return { body: [Math.random(), Math.random()] }; }";
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            let (out, _) = run(script).await;
            let Ok(Outcome::Deliver(d)) = out else {
                panic!("{out:?}")
            };
            let numbers: Vec<f64> = serde_json::from_str(&d.body).unwrap();
            assert!(
                numbers.iter().all(|n| (0.0..1.0).contains(n)),
                "{numbers:?}"
            );
            assert_ne!(numbers[0], numbers[1]);
            seen.insert(d.body);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    #[tokio::test]
    async fn hostile_scripts_end_in_their_reason() {
        let (out, _) = run("export function transform() { for (;;) {} }").await;
        assert!(matches!(out, Err(PluginError::Timeout(_))), "{out:?}");
        let (out, _) = run(
            "export function transform() { const a = []; for (;;) a.push(new Uint8Array(1 << 20)); }",
        )
        .await;
        let text = format!("{out:?}");
        assert!(text.contains("memory limit"), "{text}");
        let (out, _) =
            run("function f() { return f() + 1; }\nexport function transform() { return f(); }")
                .await;
        // The engine's own stack check, or the sandbox's wasm stack bound,
        // whichever comes first.
        let text = format!("{out:?}");
        assert!(
            text.contains("RangeError") || text.contains("call stack exhausted"),
            "{text}"
        );
        let (out, _) = run("export function transform() { throw new Error('nope'); }").await;
        assert!(
            matches!(&out, Err(PluginError::Returned(m)) if m.contains("Error: nope")),
            "{out:?}"
        );
        let (out, _) =
            run("export function transform() { return { body: 'x'.repeat(2 << 20) }; }").await;
        assert!(
            matches!(out, Err(PluginError::OutputTooLarge { .. })),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn compiling_names_the_line_of_a_syntax_error_and_bounds_the_top_level() {
        let (host, engine) = engine();
        let refused = host
            .compile_script(
                &engine,
                "export function transform(e) {\n  return { body: e.id \n",
            )
            .await
            .map(|_| ());
        match refused {
            Err(ScriptRefused::Invalid { line, message }) => {
                assert!(line >= 2, "{line}");
                assert!(message.starts_with("SyntaxError"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let spin = host
            .compile_script(&engine, "for (;;) {}\nexport function transform() {}")
            .await
            .map(|_| ());
        assert!(
            matches!(spin, Err(ScriptRefused::Failed(PluginError::Timeout(_)))),
            "{spin:?}"
        );
        assert_eq!(
            host.compile_script(
                &engine,
                "export function transform(e) { return { body: e.payload }; }"
            )
            .await
            .map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn scripts_must_be_text() {
        assert!(script_text(b"\xff\xfe").unwrap_err().contains("UTF-8"));
        assert!(script_text(b"  \n").unwrap_err().contains("empty"));
        assert!(
            script_text(&vec![b' '; MAX_SCRIPT_BYTES + 1])
                .unwrap_err()
                .contains("limit")
        );
    }
}
