//! Builds the guest plugin crates (plugins/*, tests/plugins/*) for
//! wasm32-wasip2, once per test process, adding the rustup target if it is
//! missing, so a fresh machine needs nothing beyond `cargo test`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every guest crate the tests use.
pub const GUESTS: [&str; 11] = [
    "crm-booking",
    "field-filter",
    "redact",
    "hostile-spin",
    "hostile-memory-bomb",
    "hostile-trap",
    "hostile-huge-output",
    "hostile-wrong-world",
    "hostile-sleep",
    "hostile-strings",
    "honest-busy",
];

const TARGET: &str = "wasm32-wasip2";

fn root() -> &'static Path {
    crate::repo_root()
}

fn ensure_target() {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
    {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .expect("run rustup");
    assert!(status.success(), "rustup target add {TARGET} failed");
}

fn build_all() -> PathBuf {
    ensure_target();
    // A target dir of their own: the outer cargo may still hold target/'s lock.
    let target_dir = root().join("target/plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .env("CARGO_TARGET_DIR", &target_dir)
        .args([
            "build",
            "--quiet",
            "--target",
            TARGET,
            "--profile",
            "plugin",
        ]);
    for guest in GUESTS {
        cmd.args(["-p", guest]);
    }
    let status = cmd.status().expect("run cargo for the guest plugins");
    assert!(status.success(), "building the guest plugins failed");
    target_dir.join(TARGET).join("plugin")
}

/// The path of a built guest plugin's component, by crate name.
pub fn plugin_path(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    assert!(GUESTS.contains(&name), "unknown guest crate {name}");
    DIR.get_or_init(build_all)
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// The bytes of a built guest plugin's component.
pub fn plugin(name: &str) -> Vec<u8> {
    std::fs::read(plugin_path(name)).unwrap()
}
