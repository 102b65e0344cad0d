//! What hookgate's integration tests, benches and examples share, so each
//! exists once:
//!
//! - [`process`]: the one gateway launcher (the binary as its own process,
//!   its CPU and memory from /proc);
//! - [`database`]: the switch between the store backends the tests'
//!   gateways use (sled, or a database each on a PostgreSQL server);
//! - [`receiver`]: an HTTPS webhook receiver with a test CA;
//! - [`proxy`]: a CONNECT proxy that records its targets;
//! - [`verify`]: an independent check of both signature styles;
//! - [`wasm`]: the guest plugin crates built for wasm32-wasip2;
//! - [`components`]: hand-shaped components (bounds, a compile bomb);
//! - [`bench`]: the load, fault and backlog harness (`examples/bench.rs` is
//!   its command line; `tests/it/bench.rs` runs it small).

pub mod bench;
pub mod components;
pub mod cross;
pub mod database;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod verify;
pub mod wasm;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's root directory (this crate is `tests/support`).
pub fn repo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("the repository root")
    })
}
