//! The gateway the harness measures: the release binary, built on demand,
//! started through [`crate::process`] on a fixed loopback port so it can be
//! SIGKILLed and restarted on the same state at the same URL.

use std::path::PathBuf;
use std::process::Command;

pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// Builds `target/release/hookgate` (a no-op when it is up to date) and
/// returns its path.
pub fn build_release_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Built together with the bench example so dependency features resolve
    // as they did for `cargo run --example bench`; the binary alone would
    // resolve them without dev-dependencies and rebuild half the tree.
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "hookgate",
            "--example",
            "bench",
        ])
        .current_dir(crate::repo_root())
        .status()
        .expect("run cargo build for the gateway");
    assert!(status.success(), "building the gateway failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    target.join("release").join("hookgate")
}
