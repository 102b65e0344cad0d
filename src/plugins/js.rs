//! JavaScript plugins: the engine component and what a script is checked
//! against at upload.
//!
//! The engine is `plugins/js-engine` (QuickJS through rquickjs), built
//! from source for wasm32-wasip2 by the gateway's build script (`build.rs`)
//! and embedded here. The gateway compiles it once (in the bounded
//! compiler process, the artifact cached like any plugin's) and every
//! JavaScript plugin runs in it: the script is data passed with each call,
//! in a fresh instance with the same limits as a wasm plugin.

use sha2::{Digest, Sha256};

/// The engine component's bytes.
pub const ENGINE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/js_engine.wasm"));

/// Largest script accepted, well under the upload limit: a transform is
/// a few functions, and every call parses it again.
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// SHA-256 of the engine component, hex: its artifact's cache key.
pub fn engine_sha256() -> String {
    hex::encode(Sha256::digest(ENGINE_WASM))
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
                let artifact = compile_artifact(ENGINE_WASM).unwrap();
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
        let compiled: Compiled = engine.with_script(Arc::from(script));
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
    async fn the_check_names_the_line_of_a_syntax_error_and_bounds_the_top_level() {
        let (host, engine) = engine();
        let refused = host
            .check_script(
                &engine,
                "export function transform(e) {\n  return { body: e.id \n",
            )
            .await;
        match refused {
            Err(ScriptRefused::Invalid { line, message }) => {
                assert!(line >= 2, "{line}");
                assert!(message.starts_with("SyntaxError"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let spin = host
            .check_script(&engine, "for (;;) {}\nexport function transform() {}")
            .await;
        assert!(
            matches!(spin, Err(ScriptRefused::Failed(PluginError::Timeout(_)))),
            "{spin:?}"
        );
        assert_eq!(
            host.check_script(
                &engine,
                "export function transform(e) { return { body: e.payload }; }"
            )
            .await,
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
