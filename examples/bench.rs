//! hookgate's load, fault and backlog harness (BENCHMARKS.md): the command
//! line of `hookgate_test_support::bench` (tests/support).
//!
//! `cargo run --release --example bench -- [options]` starts the release
//! gateway as its own process on a fresh data dir, a loopback sink that
//! checks every signature, publishes from concurrent clients and waits for
//! every delivery, then prints one table.
//!
//! Modes:
//! - `throughput` (default): publish and delivery rates, latencies, the
//!   gateway's CPU and peak RSS, and the same sink driven directly by reqwest
//!   (the ceiling); with `--hostile`, while a second tenant's endpoints all
//!   run a hostile plugin.
//! - `fault`: the sink fails or hangs a share of requests and the gateway is
//!   SIGKILLed and restarted mid-run; counts accepted, delivered, duplicated
//!   and lost events. Exits 1 if any accepted event was lost.
//! - `backlog`: a million deliveries queued across 10,000 endpoints while the
//!   sink is down, then the sink comes up; memory, API latency meanwhile and
//!   the drain rate.

use clap::Parser;
use hookgate_test_support::bench::modes;
use hookgate_test_support::components;

fn main() {
    let args = modes::Args::parse();
    if let Some(path) = &args.write_compile_bomb {
        std::fs::write(path, components::compile_bomb()).expect("write the compile bomb");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let lost = runtime.block_on(modes::run(args));
    std::process::exit(if lost > 0 { 1 } else { 0 });
}
