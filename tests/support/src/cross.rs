//! The same plugin in several languages: shared cases (`cross/cases.json`,
//! inputs only: the Rust component's outputs are the reference every other
//! language must match byte for byte).
//!
//! A case gives the payload as a JSON value (written compact, members in
//! order) or as exact text (`payload_text`), and the config the same way
//! (`config` / `config_text`). The event's id, type and time are the
//! payload's own when it is an envelope, as the gateway's always are.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

/// One input of a plugin: what the gateway would pass to `transform`.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub id: String,
    pub event_type: String,
    pub created_at: String,
    pub endpoint_id: String,
    pub payload: String,
    pub headers: Vec<(String, String)>,
    pub config: String,
}

fn dir() -> PathBuf {
    crate::repo_root().join("tests/support/cross")
}

/// The cases of one plugin (`crm-booking`, `field-filter`).
pub fn cases(plugin: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("read cases.json");
    let all: Value = serde_json::from_str(&text).expect("cases.json is JSON");
    let cases = all[plugin]
        .as_array()
        .unwrap_or_else(|| panic!("cases.json has no cases for {plugin}"));
    cases
        .iter()
        .map(|case| {
            let text_or_json = |text: &str, value: &str| match (case.get(text), case.get(value)) {
                (Some(Value::String(text)), None) => text.clone(),
                (None, Some(value)) => value.to_string(),
                _ => panic!("case {}: give exactly one of {text}, {value}", case["name"]),
            };
            let payload = text_or_json("payload_text", "payload");
            let config = text_or_json("config_text", "config");
            let envelope: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
            let member =
                |key: &str, default: &str| envelope[key].as_str().unwrap_or(default).to_owned();
            Case {
                name: case["name"].as_str().expect("a case has a name").to_owned(),
                id: member("id", "evt_cross"),
                event_type: member("type", "booking.created"),
                created_at: member("created_at", "2026-11-23T10:30:00.000Z"),
                endpoint_id: "wh_cross".into(),
                payload,
                headers: vec![("X-Earlier".into(), "1".into())],
                config,
            }
        })
        .collect()
}

/// An outcome in the shape the languages are compared in:
/// `{"outcome": "deliver", "body", "headers": [[name, value]], "content_type"}`,
/// `{"outcome": "drop", "reason"}` or `{"outcome": "error"}` (error texts,
/// such as a JSON parser's, differ between languages).
pub fn deliver(body: &str, headers: &[(String, String)], content_type: Option<&str>) -> Value {
    json!({"outcome": "deliver", "body": body, "headers": headers, "content_type": content_type})
}

/// See [`deliver`].
pub fn drop(reason: &str) -> Value {
    json!({"outcome": "drop", "reason": reason})
}

/// See [`deliver`].
pub fn error() -> Value {
    json!({"outcome": "error"})
}

/// The version of componentize-py the Python template's build.sh installs.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// A `componentize-py` to build Python plugins with: `$COMPONENTIZE_PY`
/// (tests/run sets it), else one installed once into
/// `target/componentize-py` (a venv), so a machine with `python3` needs
/// nothing more. `None` when there is no `python3` with `venv` to install it
/// with, or PyPI cannot be reached.
pub fn componentize_py() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("COMPONENTIZE_PY") {
        return Some(PathBuf::from(path));
    }
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let venv = crate::repo_root().join("target/componentize-py");
            let bin = venv.join("bin/componentize-py");
            let version = || {
                Command::new(&bin)
                    .arg("--version")
                    .output()
                    .is_ok_and(|out| {
                        String::from_utf8_lossy(&out.stdout).trim()
                            == format!("componentize-py {COMPONENTIZE_PY_VERSION}")
                    })
            };
            if version() {
                return Some(bin);
            }
            let ok = |cmd: &mut Command| cmd.status().is_ok_and(|s| s.success());
            let installed = ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))
                && ok(Command::new(venv.join("bin/pip")).args([
                    "install",
                    "--quiet",
                    &format!("componentize-py=={COMPONENTIZE_PY_VERSION}"),
                ]));
            (installed && version()).then_some(bin)
        })
        .clone()
}

/// `hookgate plugin new --lang <lang> <name> --dir <dir>` with the gateway
/// binary `hookgate`.
pub fn plugin_new(hookgate: &std::path::Path, lang: &str, name: &str, dir: &std::path::Path) {
    let out = Command::new(hookgate)
        .args(["plugin", "new", "--lang", lang, name, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plugin new --lang {lang}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("next, in"), "{said}");
}

/// Runs `cmd`, which must succeed.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python project from the template (made by the gateway binary
/// `hookgate`) in `dir`, with `app` as its app.py, built with its
/// build.sh; `None` when componentize-py cannot be had here.
pub fn python_component(
    hookgate: &std::path::Path,
    dir: &std::path::Path,
    app: Option<&std::path::Path>,
) -> Option<Vec<u8>> {
    let Some(componentize_py) = componentize_py() else {
        eprintln!("skipped: no componentize-py (needs python3 with venv, and PyPI)");
        return None;
    };
    plugin_new(hookgate, "python", "py-plugin", dir);
    if let Some(app) = app {
        std::fs::copy(app, dir.join("app.py")).unwrap();
    }
    run(Command::new(dir.join("build.sh")).env("COMPONENTIZE_PY", componentize_py));
    Some(std::fs::read(dir.join("plugin.wasm")).unwrap())
}
