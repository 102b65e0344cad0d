//! The bench harness's fault and backlog modes (issue 6), run small against
//! the tests' gateway binary with the operator's own command line. A lost
//! delivery, or a harness that stops injecting the faults it reports, fails
//! here rather than only in a hand-run benchmark.

#[path = "../../examples/bench/gateway.rs"]
#[allow(dead_code)]
mod gateway;
#[path = "../../examples/bench/load.rs"]
#[allow(dead_code)]
mod load;
#[path = "../../examples/bench/modes.rs"]
#[allow(dead_code)]
mod modes;
#[path = "../../examples/bench/sink.rs"]
#[allow(dead_code)]
mod sink;

// The harness's modules reach these as `super::receiver` and `super::wasm`.
use crate::utils::{receiver, wasm};

use clap::Parser;

fn args(mode_args: &[&str]) -> modes::Args {
    let binary = env!("CARGO_BIN_EXE_hookgate");
    let mut argv = vec!["bench", "--gateway-binary", binary];
    argv.extend_from_slice(mode_args);
    modes::Args::parse_from(argv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_mode_loses_nothing_across_sigkills_and_a_failing_sink() {
    // Publishing at 200/s spans about 3 s, so both kills land mid-publish
    // even when a restart of the debug gateway takes a second.
    let args = args(&[
        "--mode",
        "fault",
        "-n",
        "600",
        "-c",
        "8",
        "-e",
        "2",
        "--rate",
        "200",
        "--kills",
        "2",
        "--kill-every",
        "600ms",
        "--fail-share",
        "0.2",
        "--hang-share",
        "0.02",
    ]);
    let report = modes::fault(&args).await;
    assert_eq!(report.kills, 2);
    assert_eq!(report.kills_while_publishing, 2, "kills after publishing");
    assert!(report.sink_failed > 0, "the sink failed no request");
    assert!(report.sink_hung > 0, "the sink left no request hanging");
    assert_eq!(report.accepted, 600);
    assert_eq!(report.expected, 1_200);
    assert_eq!(report.bad_signatures, 0);
    assert_eq!(report.lost, 0, "{} of 1,200 delivered", report.delivered);
    assert_eq!(report.delivered, 1_200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_mode_queues_with_the_sink_down_and_drains_it() {
    let args = args(&[
        "--mode",
        "backlog",
        "-n",
        "40",
        "-e",
        "50",
        "--down-for",
        "1s",
    ]);
    let report = modes::backlog(&args).await;
    assert_eq!(report.accepted, 40);
    assert_eq!(report.expected, 2_000);
    assert_eq!(report.delivered, 2_000, "lost {}", report.lost);
    assert_eq!(report.bad_signatures, 0);
    // The probes ran through the fill, the outage and the drain, and every
    // one was answered.
    assert!(
        report.probe_publish.len() >= 10,
        "{:?}",
        report.probe_publish
    );
    assert!(report.probe_read.len() >= 10);
    assert_eq!(report.probe_failures, 0);
    // Both memory readings came through (the sampled RSS and the kernel's
    // high-water mark are read at different times, so neither bounds the
    // other), under the backlog target.
    let (sampled, peak) = (report.sampled_rss_mib, report.usage.peak_rss_mib);
    assert!(sampled > 0.0 && peak > 0.0, "RSS {sampled} / {peak} MiB");
    assert!(peak < 250.0, "peak RSS {peak} MiB");
}
