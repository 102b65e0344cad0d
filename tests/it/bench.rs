//! The bench harness's three modes (BENCHMARKS.md), run small against the
//! tests' gateway binary with the operator's own command line. A lost delivery,
//! or a harness that stops doing what an option asks (faults, plugin, slow and
//! failing endpoints, rate, plain HTTP, the ceiling), fails here rather than
//! only in a hand-run benchmark.

use hookgate_test_support::bench::modes;

use clap::Parser;

fn args(mode_args: &[&str]) -> modes::Args {
    let binary = env!("CARGO_BIN_EXE_hookgate");
    let mut argv = vec!["bench", "--gateway-binary", binary];
    argv.extend_from_slice(mode_args);
    modes::Args::parse_from(argv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_mode_with_every_option_delivers_and_measures() {
    // 4 endpoints: one always failing, one answering 50 ms late; 200 events
    // of 2 KiB at 400/s through the field-filter plugin; then the ceiling.
    let args = args(&[
        "-n",
        "200",
        "-c",
        "8",
        "-e",
        "4",
        "--payload",
        "2048",
        "--plugin",
        "field-filter",
        "--failing-share",
        "0.25",
        "--slow-share",
        "0.25",
        "--slow-delay",
        "50ms",
        "--rate",
        "400",
    ]);
    let report = modes::throughput(&args).await;
    assert_eq!((report.failing, report.slow), (1, 1));
    assert_eq!(report.accepted, 200);
    assert_eq!(report.accept.len(), 200);
    // At 400/s, 200 publishes take at least half a second.
    assert!(
        report.publish_elapsed >= std::time::Duration::from_millis(450),
        "{:?}",
        report.publish_elapsed
    );
    assert_eq!(
        report.expected, 600,
        "the failing endpoint is not waited for"
    );
    assert_eq!(report.delivered, 600);
    assert_eq!(report.bad_signatures, 0);
    assert_eq!(report.receipt.len(), 600);
    // A third of the receipts come from the late endpoint.
    let p99 = report.receipt[report.receipt.len() * 99 / 100];
    assert!(p99 >= 50_000, "publish->receipt p99 {p99} µs");
    assert!(report.delivery_rate > 0.0);
    // At the gateway's own concurrency (3 endpoints delivered to × 64)
    // and at the harness's 8 clients.
    let in_flight: Vec<usize> = report.ceiling.iter().map(|c| c.1).collect();
    assert_eq!(in_flight, [192, 8]);
    assert!(report.ceiling.iter().all(|c| c.0 > 0.0));
    assert!(report.usage.cpu_seconds > 0.0 && report.usage.peak_rss_mib > 0.0);
}

/// `--http` runs the gateway with `HOOKGATE_ALLOW_HTTP`, and the sink on
/// plain HTTP: without the setting the endpoints could not be created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_mode_over_plain_http() {
    let args = args(&["--http", "-n", "100", "-c", "4", "-e", "2", "--no-ceiling"]);
    let report = modes::throughput(&args).await;
    assert_eq!(report.expected, 200);
    assert_eq!(report.delivered, 200);
    assert_eq!(report.bad_signatures, 0);
    assert!(report.ceiling.is_empty());
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
