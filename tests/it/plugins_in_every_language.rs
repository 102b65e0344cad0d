//! Plugins in Rust, JavaScript and Python: `hookgate plugin new` writes
//! projects that build with their one command and run in the real sandbox,
//! and the examples written in each language give the same outputs
//! (tests/support/cross: the cases). JavaScript runs in the gateway's own
//! engine component, in the sandbox, as an uploaded script does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use hookgate::plugins::host::{
    Compiled, Header, Limits, Outcome, PluginHost, WitEvent, compile_artifact,
};
use hookgate::plugins::js::prepared_engine;
use hookgate::signing::HeaderNames;
use hookgate_test_support::cross::{self, Case};
use serde_json::{Value, json};

use crate::utils::wasm::plugin;

const HOOKGATE: &str = env!("CARGO_BIN_EXE_hookgate");

fn plugin_new(lang: &str, name: &str, dir: &Path) {
    cross::plugin_new(Path::new(HOOKGATE), lang, name, dir);
}

fn run(cmd: &mut Command) {
    cross::run(cmd);
}

fn python_component(dir: &Path, app: Option<&Path>) -> Option<Vec<u8>> {
    cross::python_component(Path::new(HOOKGATE), dir, app)
}

/// The sandbox with room for a component holding a Python interpreter.
fn host() -> Arc<PluginHost> {
    PluginHost::new(Limits {
        time: std::time::Duration::from_secs(2),
        deadline: std::time::Duration::from_secs(10),
        memory: 128 << 20,
        ..Limits::default()
    })
    .expect("plugin host")
}

/// The JavaScript plugin at `path` as the gateway runs an uploaded script:
/// in its engine component, on `host`.
fn script(host: &PluginHost, path: &Path) -> Compiled {
    let script = std::fs::read_to_string(path).unwrap();
    let engine = host
        .load_js_engine(&compile_artifact(&prepared_engine().unwrap()).unwrap())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime
        .block_on(host.compile_script(&engine, &script))
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

fn wit_event(case: &Case) -> WitEvent {
    WitEvent {
        id: case.id.clone(),
        event_type: case.event_type.clone(),
        created_at: case.created_at.clone(),
        endpoint_id: case.endpoint_id.clone(),
        payload: case.payload.clone(),
        headers: case
            .headers
            .iter()
            .map(|(name, value)| Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// Each case through the real sandbox, in the runner's shape (errors with
/// their message in `error`).
fn outcomes(host: &PluginHost, compiled: &Compiled, cases: &[Case]) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let names = HeaderNames::default();
    cases
        .iter()
        .map(|case| {
            let report = runtime.block_on(host.call(
                compiled,
                &wit_event(case),
                &case.config,
                &names,
                std::time::Duration::from_secs(10),
            ));
            match report.result {
                Ok(Outcome::Deliver(d)) => {
                    let headers: Vec<(String, String)> =
                        d.headers.into_iter().map(|h| (h.name, h.value)).collect();
                    cross::deliver(&d.body, &headers, d.content_type.as_deref())
                }
                Ok(Outcome::Drop(reason)) => cross::drop(&reason),
                Err(e) => json!({"outcome": "error", "error": e.to_string()}),
            }
        })
        .collect()
}

/// Outcomes compared across languages: an error's text is the language's
/// own (a JSON parser's message, say), so only that it is one counts.
fn comparable(outcome: &Value) -> Value {
    if outcome["outcome"] == "error" {
        cross::error()
    } else {
        outcome.clone()
    }
}

fn assert_same(language: &str, plugin: &str, cases: &[Case], rust: &[Value], other: &[Value]) {
    for ((case, rust), other) in cases.iter().zip(rust).zip(other) {
        assert_eq!(
            comparable(other),
            comparable(rust),
            "{plugin} in {language}, case {:?}: {other} but Rust gave {rust}",
            case.name
        );
    }
}

/// Cases of every kind, so a comparison means something.
fn assert_covers(plugin: &str, rust: &[Value]) {
    for kind in ["deliver", "drop", "error"] {
        assert!(
            rust.iter().any(|o| o["outcome"] == kind),
            "{plugin}: no case ends in {kind}"
        );
    }
}

#[test]
fn plugins_in_every_language_give_the_same_outputs() {
    let host = host();
    let js = |plugin: &str| {
        script(
            &host,
            &hookgate_test_support::repo_root().join(format!("plugins/{plugin}/plugin.js")),
        )
    };
    let mut python = Vec::new();
    for plugin in ["crm-booking", "field-filter"] {
        let cases = cross::cases(plugin);
        let (compiled, _) = host.compile(&self::plugin(plugin)).unwrap();
        let rust = outcomes(&host, &compiled, &cases);
        assert_covers(plugin, &rust);
        assert_same(
            "JavaScript",
            plugin,
            &cases,
            &rust,
            &outcomes(&host, &js(plugin), &cases),
        );
        python.push((plugin, cases, rust));
    }
    for (plugin, cases, rust) in python {
        let dir = tempfile::tempdir().unwrap();
        let app = hookgate_test_support::repo_root().join(format!("plugins/{plugin}/plugin.py"));
        let Some(wasm) = python_component(dir.path(), Some(&app)) else {
            return;
        };
        let (compiled, _) = host.compile(&wasm).unwrap();
        assert_same(
            "Python",
            plugin,
            &cases,
            &rust,
            &outcomes(&host, &compiled, &cases),
        );
    }
}

/// The template's own function, on one event: what each language's
/// template must answer.
const TEMPLATE_EVENT: &str = r#"{"id":"evt_1","type":"booking.created","created_at":"2026-11-23T10:30:00.000Z","data":{"booking":{"id":"bk_1","total":12.5}}}"#;

fn template_cases() -> Vec<Case> {
    ["{\"prefix\":\"booking.\"}", "{\"prefix\":\"trip.\"}", "{"]
        .into_iter()
        .map(|config| Case {
            name: config.into(),
            id: "evt_1".into(),
            event_type: "booking.created".into(),
            created_at: "2026-11-23T10:30:00.000Z".into(),
            endpoint_id: "wh_1".into(),
            payload: TEMPLATE_EVENT.into(),
            headers: Vec::new(),
            config: config.into(),
        })
        .collect()
}

fn assert_template_outcomes(language: &str, name: &str, got: &[Value]) {
    let body = r#"{"event":"evt_1","type":"booking.created","data":{"booking":{"id":"bk_1","total":12.5}}}"#;
    let expected = [
        cross::deliver(body, &[("X-Plugin".into(), name.into())], None),
        cross::drop("not a trip. event: booking.created"),
        cross::error(),
    ];
    for (got, expected) in got.iter().zip(&expected) {
        assert_eq!(&comparable(got), expected, "{language} template");
    }
    assert_eq!(got.len(), expected.len());
}

#[test]
fn plugin_new_rust_builds_with_one_command_and_runs_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("acme-sync");
    plugin_new("rust", "acme-sync", &project);
    // Its own lock file and target: it builds as a tenant's copy would,
    // outside this workspace (the target dir is kept between test runs).
    let target = hookgate_test_support::repo_root().join("target/plugin-new");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]));
    let wasm = std::fs::read(target.join("wasm32-wasip2/release/acme_sync.wasm")).unwrap();
    let host = host();
    let (compiled, _) = host.compile(&wasm).unwrap();
    assert_template_outcomes(
        "Rust",
        "acme-sync",
        &outcomes(&host, &compiled, &template_cases()),
    );
    // The project's own unit tests pass too.
    run(Command::new(&cargo)
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .args(["test", "--quiet"]));

    // `hookgate plugin run` takes the component as it is.
    let event = dir.path().join("event.json");
    std::fs::write(&event, TEMPLATE_EVENT).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["plugin", "run"])
        .arg(target.join("wasm32-wasip2/release/acme_sync.wasm"))
        .arg("--event")
        .arg(&event)
        .args(["--config", r#"{"prefix":"booking.","typo":1}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("config is invalid: unknown field `typo`"),
        "{error}"
    );
}

#[test]
fn plugin_new_python_builds_with_one_command_and_runs_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let Some(wasm) = python_component(dir.path(), None) else {
        return;
    };
    let host = host();
    let (compiled, _) = host.compile(&wasm).unwrap();
    assert_template_outcomes(
        "Python",
        "py-plugin",
        &outcomes(&host, &compiled, &template_cases()),
    );
}

#[test]
fn plugin_new_js_writes_a_plugin_the_engine_runs() {
    let dir = tempfile::tempdir().unwrap();
    plugin_new("js", "js-plugin", dir.path());
    let js = dir.path().join("plugin.js");
    let host = host();
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(
        readme.contains("v1/plugins?name=js-plugin")
            && readme.contains("Content-Type: text/javascript"),
        "{readme}"
    );
    assert_template_outcomes(
        "JavaScript",
        "js-plugin",
        &outcomes(&host, &script(&host, &js), &template_cases()),
    );
}

#[test]
fn plugin_new_refuses_bad_names_and_used_directories() {
    let dir = tempfile::tempdir().unwrap();
    let new = |name: &str, dir: &PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["plugin", "new", "--lang", "rust", name, "--dir"])
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = new("Bad Name", &dir.path().join("x"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid plugin name"));
    std::fs::write(dir.path().join("used.txt"), "x").unwrap();
    let out = new("fine", &dir.path().to_path_buf());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an empty directory"));
}
