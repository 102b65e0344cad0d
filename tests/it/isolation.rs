//! Plugin isolation against hostile guests: wall-clock deadlines, bounds on
//! a component's shape and on compiling it, plugin strings, headers, logs
//! and WASI imports, per-tenant plugin quotas, honest load, and shutdown.
//!
//! Each hostile class runs while a bystander tenant publishes plain events
//! to its own receiver: every one must arrive, on time, and the gateway's
//! memory must stay bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::utils::components::{
    compile_bomb, many_instances, many_memories, many_tables, max_shape_transformer,
    with_custom_section,
};
use crate::utils::wasm::plugin;
use crate::utils::*;

const LONG: Duration = Duration::from_secs(20);
const EVENT: &str = "order.created";
/// The plugin deadline of the tests that run into it.
const SHORT_DEADLINE: Duration = Duration::from_millis(500);
/// Longest a cut plugin string (reason, error) may be stored.
const SHORT: usize = 2048;
/// Log lines one call keeps.
const MAX_LOG_LINES: usize = 20;
/// Longest kept log line, with room for a cut marker.
const MAX_LOG_LINE: usize = 1024 + 64;
/// Most a bystander delivery may take, from publish to arrival.
const ON_TIME: Duration = Duration::from_secs(1);
/// The same while uploads compile beside it: each compile is a child
/// process taking the machine's cores for seconds, so on a loaded 2-core
/// machine a delivery may wait on the CPU a little over [`ON_TIME`]; a
/// gateway that waited on the compile itself would hold the bystander
/// for the compile's whole length (seconds to a minute).
const ON_TIME_BESIDE_COMPILES: Duration = Duration::from_secs(2);
/// Bound on the gateway's peak resident memory.
const MAX_RSS: u64 = 1 << 30;

/// These tests time deliveries and measure memory on a small machine: they
/// take turns, so that one's hostile load does not count against another.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// A gateway delivering to local receivers, with `env` on top of a 2 s
/// plugin deadline.
fn gateway(env: &[(&str, &str)]) -> Gateway {
    let mut builder = Gateway::builder()
        .delivering("0s,1s")
        .env("HOOKGATE_PLUGIN_DEADLINE", "2s");
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    builder.start()
}

/// A tenant with an all-scopes key and the test's event type; its token.
async fn tenant(gw: &Gateway, name: &str) -> String {
    let (_, token) = gw.tenant_with_key(name).await;
    gw.add_event_types(&token, &[EVENT]).await;
    token
}

/// Uploads `wasm` under `name`, which must be accepted and compile;
/// returns its id.
async fn upload(gw: &Gateway, token: &str, name: &str, wasm: Vec<u8>) -> String {
    gw.ready_plugin(token, name, wasm).await
}

/// Uploads a JavaScript plugin, which must be accepted (and is ready at
/// once); returns its id.
async fn upload_script(gw: &Gateway, token: &str, name: &str, script: &str) -> String {
    let (status, body) = gw.upload_script(token, name, script).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let plugin = &body["data"]["plugin"];
    assert_eq!(plugin["language"], "javascript", "{body}");
    assert_eq!(plugin["state"], "ready", "{body}");
    plugin["id"].as_str().unwrap().to_string()
}

/// Uploads `wasm`, which must be refused: at once (a quota, a 422 or 409),
/// or by its compile (accepted with 202, then `failed`). The message.
async fn refused(gw: &Gateway, token: &str, name: &str, wasm: Vec<u8>) -> String {
    let (status, body) = gw.upload_plugin(token, name, wasm).await;
    if status == StatusCode::ACCEPTED {
        let id = body["data"]["plugin"]["id"].as_str().unwrap();
        let plugin = gw.compiled_plugin(token, id).await;
        assert_eq!(plugin["state"], "failed", "{plugin}");
        return plugin["error"].as_str().unwrap().to_string();
    }
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// A dry run of `plugin` with `config`: its `data`, and how long the answer
/// took.
async fn dry_run(gw: &Gateway, token: &str, plugin: &str, config: &Value) -> (Value, Duration) {
    let started = Instant::now();
    let (status, body) = gw
        .post(
            &format!("/v1/plugins/{plugin}/test"),
            token,
            json!({"event": {"type": EVENT, "data": {"n": 0}}, "config": config}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body["data"].clone(), started.elapsed())
}

/// A log entry's `error` (the failure or drop reason); empty when none.
fn error(log: &Value) -> &str {
    log["error"].as_str().unwrap_or_default()
}

/// Tenant B: publishes plain events to its own receiver at a steady rate
/// in the background, to check that another tenant's hostile plugin does
/// not lose or delay them.
struct Bystander {
    rx: Receiver,
    sent: Arc<Mutex<Vec<(String, Instant)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Bystander {
    /// One event every this long (20 a second).
    const EVERY: Duration = Duration::from_millis(50);
    /// Publishes at least this long, so the hostile work overlaps it.
    const AT_LEAST: Duration = Duration::from_secs(3);
    /// And at most this long (300 events).
    const AT_MOST: Duration = Duration::from_secs(15);

    async fn start(gw: &Gateway) -> Self {
        let rx = Receiver::start().await;
        let token = tenant(gw, "bystander").await;
        gw.create_webhook(&token, &rx.url(), &[EVENT]).await;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(Self::publish(
            gw.client.clone(),
            gw.url("/v1/events"),
            token,
            sent.clone(),
            stop.clone(),
        ));
        Self {
            rx,
            sent,
            stop,
            task,
        }
    }

    async fn publish(
        client: reqwest::Client,
        url: String,
        token: String,
        sent: Arc<Mutex<Vec<(String, Instant)>>>,
        stop: Arc<AtomicBool>,
    ) {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Self::EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0u32.. {
            let elapsed = started.elapsed();
            if elapsed >= Self::AT_MOST
                || (elapsed >= Self::AT_LEAST && stop.load(Ordering::Relaxed))
            {
                break;
            }
            tick.tick().await;
            let at = Instant::now();
            let resp = client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"type": EVENT, "data": {"bystander": n}}))
                .send()
                .await
                .expect("publish for the bystander");
            let status = resp.status();
            let body: Value = resp.json().await.expect("JSON answer");
            assert_eq!(status, StatusCode::ACCEPTED, "bystander publish: {body}");
            let id = body["data"]["event"]["id"].as_str().unwrap().to_string();
            sent.lock().unwrap().push((id, at));
        }
    }

    /// Stops publishing, then checks that every event arrived, each within
    /// `on_time` of its publish, and that the gateway's peak memory stayed
    /// under [`MAX_RSS`].
    async fn check(self, gw: &Gateway, on_time: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the bystander's publisher failed");
        let sent = self.sent.lock().unwrap().clone();
        assert!(!sent.is_empty(), "the bystander published nothing");
        let got = self.rx.wait_for(sent.len(), LONG).await;
        let arrived: HashMap<String, Instant> = got
            .iter()
            .map(|r| (r.json()["id"].as_str().unwrap().to_string(), r.at))
            .collect();
        let mut late = Vec::new();
        let mut slowest = Duration::ZERO;
        for (id, published) in &sent {
            let at = arrived
                .get(id)
                .unwrap_or_else(|| panic!("bystander event {id} was lost"));
            let took = at.saturating_duration_since(*published);
            slowest = slowest.max(took);
            if took > on_time {
                late.push((id, took));
            }
        }
        let (rss, peak) = gw.memory();
        eprintln!(
            "bystander: {} events, slowest {slowest:?}; gateway RSS {} MiB, peak {} MiB",
            sent.len(),
            rss >> 20,
            peak >> 20
        );
        assert!(
            late.is_empty(),
            "{} of {} bystander events took over {on_time:?}: {late:?}",
            late.len(),
            sent.len()
        );
        assert!(
            peak < MAX_RSS,
            "the gateway's peak RSS was {} MiB",
            peak >> 20
        );
    }
}

/// One plugin on many endpoints of one tenant, each endpoint with one of
/// `configs` in turn, every endpoint subscribed to [`EVENT`].
struct Endpoints {
    token: String,
    plugin: String,
    /// Each endpoint's plugin config and id.
    hooks: Vec<(Value, String)>,
    /// Where they deliver.
    rx: Receiver,
}

impl Endpoints {
    async fn create(gw: &Gateway, source: Source, configs: &[Value], endpoints: usize) -> Self {
        let rx = Receiver::start().await;
        let token = tenant(gw, "plugged").await;
        let plugin = match source {
            Source::Wasm(wasm) => upload(gw, &token, "plugin", wasm).await,
            Source::Js(script) => upload_script(gw, &token, "plugin", script).await,
        };
        let mut hooks = Vec::new();
        for i in 0..endpoints {
            let config = configs[i % configs.len()].clone();
            let body = gw
                .create_webhook_with(
                    &token,
                    json!({"url": rx.url(), "events": [EVENT],
                           "plugins": [{"plugin_id": plugin, "config": config}]}),
                )
                .await;
            hooks.push((config, body["id"].as_str().unwrap().to_string()));
        }
        Self {
            token,
            plugin,
            hooks,
            rx,
        }
    }

    async fn publish(&self, gw: &Gateway, events: usize) {
        for n in 0..events {
            gw.publish(&self.token, EVENT, json!({"n": n})).await;
        }
    }

    /// Waits until each endpoint has `events` settled log entries; returns
    /// each endpoint's config with its entries.
    async fn settled(&self, gw: &Gateway, events: usize) -> Vec<(Value, Vec<Value>)> {
        let mut all = Vec::new();
        for (config, hook) in &self.hooks {
            let logs = gw
                .wait_for_deliveries(&self.token, hook, LONG, |logs| {
                    logs.len() == events
                        && logs
                            .iter()
                            .all(|l| l["status"] != "pending" && l["next_retry"].is_null())
                })
                .await;
            all.push((config.clone(), logs));
        }
        all
    }

    async fn dry_run(&self, gw: &Gateway, config: &Value) -> (Value, Duration) {
        dry_run(gw, &self.token, &self.plugin, config).await
    }
}

/// What a plugin is uploaded as.
enum Source {
    Wasm(Vec<u8>),
    Js(&'static str),
}

impl From<Vec<u8>> for Source {
    fn from(wasm: Vec<u8>) -> Self {
        Source::Wasm(wasm)
    }
}

/// A hostile plugin run against a bystander tenant.
struct Hostile<'a> {
    wasm: Source,
    /// The endpoints' configs, in turn.
    configs: Vec<Value>,
    endpoints: usize,
    /// Events published to every endpoint.
    events: usize,
    /// Gateway settings on top of [`gateway`]'s.
    env: &'a [(&'a str, &'a str)],
}

/// What a hostile run left: the gateway, still running, the hostile
/// tenant's endpoints and their settled logs.
struct HostileRun {
    gw: Gateway,
    endpoints: Endpoints,
    logs: Vec<(Value, Vec<Value>)>,
}

impl HostileRun {
    /// Every log entry with its endpoint's config.
    fn entries(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.logs
            .iter()
            .flat_map(|(config, logs)| logs.iter().map(move |log| (config, log)))
    }

    /// Asserts every entry has `status` and an error (or drop reason) that
    /// holds `check`.
    #[track_caller]
    fn assert_all(&self, status: &str, check: impl Fn(&str) -> bool) {
        for (config, log) in self.entries() {
            assert_eq!(log["status"], status, "{config}: {log}");
            assert!(check(error(log)), "{config}: {log}");
        }
    }

    async fn dry_run(&self, config: &Value) -> (Value, Duration) {
        self.endpoints.dry_run(&self.gw, config).await
    }
}

/// Runs `hostile` on tenant A's endpoints while the bystander tenant B
/// publishes: starts the gateway, sets both tenants up, publishes A's
/// events, waits for all of A's deliveries to settle, then checks B's.
async fn run_hostile(hostile: Hostile<'_>) -> HostileRun {
    let gw = gateway(hostile.env);
    let endpoints = Endpoints::create(&gw, hostile.wasm, &hostile.configs, hostile.endpoints).await;
    let bystander = Bystander::start(&gw).await;
    endpoints.publish(&gw, hostile.events).await;
    let logs = endpoints.settled(&gw, hostile.events).await;
    bystander.check(&gw, ON_TIME).await;
    HostileRun {
        gw,
        endpoints,
        logs,
    }
}

/// Runs `action` (uploads, typically) while the bystander tenant publishes;
/// its deliveries must each arrive within [`ON_TIME_BESIDE_COMPILES`].
async fn beside_bystander<T>(gw: &Gateway, action: impl Future<Output = T>) -> T {
    let bystander = Bystander::start(gw).await;
    let out = action.await;
    bystander.check(gw, ON_TIME_BESIDE_COMPILES).await;
    out
}

fn modes(modes: &[&str]) -> Vec<Value> {
    modes.iter().map(|m| json!({ "mode": m })).collect()
}

// Deadlines

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_plugins_fail_at_their_deadline_and_others_keep_receiving() {
    let _turn = one_at_a_time().await;
    let configs = modes(&["sleep", "pollable"]);
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-sleep").into(),
        configs: configs.clone(),
        endpoints: 32,
        events: 8,
        env: &[("HOOKGATE_PLUGIN_DEADLINE", "500ms")],
    })
    .await;
    run.assert_all("plugin_failed", |e| e.contains("deadline"));
    for config in &configs {
        let (out, took) = run.dry_run(config).await;
        assert_eq!(out["outcome"], "error", "{config}: {out}");
        assert!(
            out["error"].as_str().unwrap().contains("deadline"),
            "{config}: {out}"
        );
        assert!(
            took < SHORT_DEADLINE + Duration::from_millis(750),
            "{config}: the dry run took {took:?}"
        );
    }
    assert!(run.endpoints.rx.received().is_empty());
}

/// Spinning plugins on many endpoints: each call yields every tick and is
/// at once ready to run again, so without a bound on the calls one tenant
/// runs at once they would share out the delivery threads among
/// themselves and the bystander's attempts would wait seconds per turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_plugins_time_out_and_others_keep_receiving() {
    let _turn = one_at_a_time().await;
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-spin").into(),
        configs: vec![json!({})],
        endpoints: 32,
        events: 8,
        // A tenant whose calls run out of time is down to one call at a
        // time, paused four times its CPU after each: 256 calls of 100 ms
        // would take two minutes.
        env: &[("HOOKGATE_PLUGIN_TIMEOUT", "10ms")],
    })
    .await;
    run.assert_all("plugin_failed", |e| e.contains("timed out"));
    assert!(run.endpoints.rx.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_covers_the_whole_chain() {
    let _turn = one_at_a_time().await;
    let gw = gateway(&[
        ("HOOKGATE_PLUGIN_DEADLINE", "500ms"),
        ("HOOKGATE_PLUGIN_TIMEOUT", "500ms"),
    ]);
    let rx = Receiver::start().await;
    let token = tenant(&gw, "acme").await;
    let busy = upload(&gw, &token, "busy", plugin("honest-busy")).await;
    let chain = |ms: u64| {
        let step = json!({"plugin_id": busy, "config": {"busy_ms": ms}});
        json!([step.clone(), step.clone(), step])
    };
    // Each step is within every limit; three of 300 ms are not.
    let mut hooks = Vec::new();
    for ms in [50, 300] {
        let body = gw
            .create_webhook_with(
                &token,
                json!({"url": rx.url(), "events": [EVENT], "plugins": chain(ms)}),
            )
            .await;
        hooks.push(body["id"].as_str().unwrap().to_string());
    }
    for n in 0..2 {
        gw.publish(&token, EVENT, json!({"n": n})).await;
    }
    for (hook, status) in hooks.iter().zip(["delivered", "plugin_failed"]) {
        let logs = gw
            .wait_for_deliveries(&token, hook, LONG, |l| {
                l.len() == 2 && l.iter().all(|x| x["status"] != "pending")
            })
            .await;
        for log in &logs {
            assert_eq!(log["status"], status, "{log}");
            if status == "plugin_failed" {
                assert!(error(log).contains("deadline"), "{log}");
            }
        }
    }
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_sleeping_plugin() {
    let _turn = one_at_a_time().await;
    let deadline = Duration::from_secs(2);
    let mut gw = gateway(&[("HOOKGATE_PLUGIN_DEADLINE", "2s")]);
    let endpoints =
        Endpoints::create(&gw, plugin("hostile-sleep").into(), &modes(&["sleep"]), 2).await;
    endpoints.publish(&gw, 4).await;
    // The calls are in flight once every delivery is logged (pending).
    for (_, hook) in &endpoints.hooks {
        gw.wait_for_deliveries(&endpoints.token, hook, LONG, |l| l.len() == 4)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let limit = deadline + Duration::from_secs(3);
    let took = tokio::task::block_in_place(|| gw.terminate_within(limit));
    assert!(
        took.is_some(),
        "the gateway still ran {limit:?} after SIGTERM, with sleeping plugins in flight"
    );
}

// Bounds on a component's shape and on compiling it

/// Uploads each of `cases` beside the bystander; each must be refused with
/// a message naming its bound.
async fn assert_refused_beside_bystander(env: &[(&str, &str)], cases: Vec<(Vec<u8>, &str)>) {
    let gw = gateway(env);
    let token = tenant(&gw, "acme").await;
    beside_bystander(&gw, async {
        for (wasm, bound) in cases {
            let message = refused(&gw, &token, "shaped", wasm).await;
            assert!(message.contains(bound), "{bound}: {message}");
        }
    })
    .await;
    let (status, _) = gw.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    // Refused at once, or stored and `failed` by their compile.
    let (_, list) = gw.get("/v1/plugins", &token).await;
    for plugin in list["data"]["plugins"].as_array().unwrap() {
        assert_eq!(plugin["state"], "failed", "{plugin}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_with_too_many_core_instances_are_refused() {
    let _turn = one_at_a_time().await;
    assert_refused_beside_bystander(
        &[],
        vec![
            (many_instances(40), "core instances"),
            (many_instances(510), "core instances"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_with_too_many_memories_are_refused() {
    let _turn = one_at_a_time().await;
    assert_refused_beside_bystander(&[], vec![(many_memories(24, 512), "memories")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_with_too_many_tables_are_refused() {
    let _turn = one_at_a_time().await;
    assert_refused_beside_bystander(&[], vec![(many_tables(24, 1), "tables")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_bomb_is_refused_and_honest_plugins_still_compile() {
    let _turn = one_at_a_time().await;
    let gw = gateway(&[("HOOKGATE_PLUGIN_COMPILE_CPU", "2s")]);
    let token = tenant(&gw, "acme").await;
    let message = beside_bystander(&gw, refused(&gw, &token, "bomb", compile_bomb())).await;
    assert!(message.contains("compil"), "{message}");
    assert!(
        ["memory", "CPU", "time"]
            .iter()
            .any(|b| message.contains(b)),
        "the message names no bound: {message}"
    );
    upload(&gw, &token, "crm", plugin("crm-booking")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_of_the_largest_allowed_shape_is_accepted_and_runs() {
    let _turn = one_at_a_time().await;
    let gw = gateway(&[]);
    let token = tenant(&gw, "acme").await;
    let id = upload(&gw, &token, "max-shape", max_shape_transformer()).await;
    let (out, _) = dry_run(&gw, &token, &id, &json!({})).await;
    assert_eq!(out["outcome"], "deliver", "{out}");
    assert_eq!(out["body"], out["input"]);
}

// What a plugin hands back

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_drop_reasons_and_errors_are_cut() {
    let _turn = one_at_a_time().await;
    let configs = modes(&["drop", "err"]);
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-strings").into(),
        configs: configs.clone(),
        endpoints: 32,
        events: 8,
        env: &[
            ("HOOKGATE_TENANT_CONCURRENCY", "8"),
            ("HOOKGATE_PLUGIN_TIMEOUT", "1s"),
        ],
    })
    .await;
    let is_cut = |e: &str| e.len() < SHORT && e.contains("cut");
    for (config, log) in run.entries() {
        let status = if config["mode"] == "drop" {
            "filtered"
        } else {
            "plugin_failed"
        };
        assert_eq!(log["status"], status, "{config}: {log}");
        assert!(is_cut(error(log)), "{config}: {log}");
    }
    let (out, _) = run.dry_run(&configs[0]).await;
    assert_eq!(out["outcome"], "drop", "{out}");
    assert!(is_cut(out["reason"].as_str().unwrap()), "{out}");
    let (out, _) = run.dry_run(&configs[1]).await;
    assert_eq!(out["outcome"], "error", "{out}");
    assert!(is_cut(out["error"].as_str().unwrap()), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_oversized_headers_fail_with_a_short_error() {
    let _turn = one_at_a_time().await;
    let configs = modes(&["header-name", "header-values", "content-type"]);
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-strings").into(),
        configs: configs.clone(),
        endpoints: 24,
        events: 8,
        env: &[
            ("HOOKGATE_TENANT_CONCURRENCY", "8"),
            ("HOOKGATE_PLUGIN_TIMEOUT", "1s"),
        ],
    })
    .await;
    run.assert_all("plugin_failed", |e| !e.is_empty() && e.len() < SHORT);
    for config in &configs {
        let (out, _) = run.dry_run(config).await;
        assert_eq!(out["outcome"], "error", "{config}: {out}");
        assert!(out["error"].as_str().unwrap().len() < SHORT, "{config}");
    }
    assert!(run.endpoints.rx.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_floods_are_truncated_and_the_delivery_is_made() {
    let _turn = one_at_a_time().await;
    let config = json!({"mode": "stdout"});
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-strings").into(),
        configs: vec![config.clone()],
        endpoints: 32,
        events: 8,
        // Few calls at a time: on a small machine, many floods at once
        // would run into the wall-clock deadline.
        env: &[
            ("HOOKGATE_TENANT_CONCURRENCY", "8"),
            ("HOOKGATE_PLUGIN_TIMEOUT", "1s"),
        ],
    })
    .await;
    run.assert_all("delivered", |_| true);
    assert_eq!(run.endpoints.rx.received().len(), 32 * 8);
    let (out, _) = run.dry_run(&config).await;
    assert_eq!(out["outcome"], "deliver", "{out}");
    assert_eq!(out["body"], out["input"]);
    assert_logs_bounded(&out);
}

/// Asserts a dry run kept at most [`MAX_LOG_LINES`] lines, each short and
/// free of control characters (newlines, carriage returns, escapes).
#[track_caller]
fn assert_logs_bounded(out: &Value) {
    let logs = out["logs"].as_array().unwrap();
    assert!(logs.len() <= MAX_LOG_LINES, "{} log lines", logs.len());
    for line in logs {
        let message = line["message"].as_str().unwrap();
        assert!(message.len() <= MAX_LOG_LINE, "{} bytes", message.len());
        assert!(
            !message.chars().any(char::is_control),
            "control characters in {message:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_carry_no_control_characters() {
    let _turn = one_at_a_time().await;
    let config = json!({"mode": "log-newlines"});
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-strings").into(),
        configs: vec![config.clone()],
        endpoints: 8,
        events: 4,
        env: &[],
    })
    .await;
    run.assert_all("delivered", |_| true);
    let (out, _) = run.dry_run(&config).await;
    assert_eq!(out["outcome"], "deliver", "{out}");
    let logs = out["logs"].as_array().unwrap();
    // Three `log` calls and a line each on stdout and stderr.
    assert!(logs.len() >= 3, "{out}");
    for forged in ["\n", "\r", "\x1b"] {
        assert!(
            logs.iter()
                .all(|l| !l["message"].as_str().unwrap().contains(forged)),
            "{forged:?} in {out}"
        );
    }
    assert_logs_bounded(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_capped_and_the_delivery_is_made() {
    let _turn = one_at_a_time().await;
    let config = json!({"mode": "log-flood"});
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-strings").into(),
        configs: vec![config.clone()],
        endpoints: 4,
        events: 4,
        env: &[("HOOKGATE_PLUGIN_TIMEOUT", "1s")],
    })
    .await;
    run.assert_all("delivered", |_| true);
    let (out, _) = run.dry_run(&config).await;
    assert_eq!(out["outcome"], "deliver", "{out}");
    assert!(!out["logs"].as_array().unwrap().is_empty(), "{out}");
    assert_logs_bounded(&out);
}

/// Hop-by-hop and proxy headers, which a plugin may not set.
const HOP_BY_HOP: [&str; 8] = [
    "Keep-Alive",
    "Upgrade",
    "Proxy-Connection",
    "Trailer",
    "Proxy-Authorization",
    "Expect",
    "Connection",
    "TE",
];

fn setting_header(name: &str) -> Value {
    json!({"mode": "hop-by-hop", "header": name})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_and_proxy_headers_are_refused() {
    let _turn = one_at_a_time().await;
    let configs: Vec<Value> = HOP_BY_HOP.iter().map(|h| setting_header(h)).collect();
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-strings").into(),
        configs: configs.clone(),
        endpoints: HOP_BY_HOP.len(),
        events: 2,
        env: &[],
    })
    .await;
    run.assert_all("plugin_failed", |e| !e.is_empty() && e.len() < SHORT);
    for config in &configs {
        let (out, _) = run.dry_run(config).await;
        assert_eq!(out["outcome"], "error", "{config}: {out}");
    }
    assert!(run.endpoints.rx.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_own_header_names_are_refused_in_dry_runs_too() {
    let _turn = one_at_a_time().await;
    let gw = gateway(&[]);
    let rx = Receiver::start().await;
    let renamed = gw.create_tenant("mogu").await;
    let (status, body) = gw
        .patch(
            &format!("/v1/tenants/{renamed}"),
            ADMIN_TOKEN,
            json!({"headers": {"event": "X-Mogu-Event", "delivery": "X-Mogu-Delivery", "signature": "X-Mogu-Signature-256"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let renamed = gw
        .create_key(&renamed, &["publish", "endpoints", "plugins"])
        .await;
    gw.add_event_types(&renamed, &[EVENT]).await;
    let plain = tenant(&gw, "plain").await;
    for (token, own) in [
        (
            &renamed,
            ["X-Mogu-Event", "x-mogu-delivery", "X-MOGU-SIGNATURE-256"],
        ),
        (
            &plain,
            [
                "X-Hookgate-Event",
                "x-hookgate-delivery",
                "X-HOOKGATE-SIGNATURE-256",
            ],
        ),
    ] {
        let id = upload(&gw, token, "strings", plugin("hostile-strings")).await;
        for name in own {
            let (out, _) = dry_run(&gw, token, &id, &setting_header(name)).await;
            assert_eq!(out["outcome"], "error", "{name}: {out}");
        }
        // A delivery fails the same way.
        let body = gw
            .create_webhook_with(
                token,
                json!({"url": rx.url(), "events": [EVENT],
                       "plugins": [{"plugin_id": id, "config": setting_header(own[0])}]}),
            )
            .await;
        let hook = body["id"].as_str().unwrap().to_string();
        gw.publish(token, EVENT, json!({})).await;
        let logs = gw
            .wait_for_deliveries(token, &hook, LONG, |l| {
                l.len() == 1 && l[0]["status"] != "pending"
            })
            .await;
        assert_eq!(logs[0]["status"], "plugin_failed", "{}", logs[0]);
    }
    assert!(rx.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_64_mib_of_random_bytes_fails_the_plugin() {
    let _turn = one_at_a_time().await;
    let config = json!({"mode": "random"});
    let run = run_hostile(Hostile {
        wasm: plugin("hostile-strings").into(),
        configs: vec![config.clone()],
        endpoints: 16,
        events: 4,
        env: &[
            ("HOOKGATE_TENANT_CONCURRENCY", "8"),
            ("HOOKGATE_PLUGIN_TIMEOUT", "1s"),
        ],
    })
    .await;
    run.assert_all("plugin_failed", |e| !e.is_empty() && e.len() < SHORT);
    let (out, _) = run.dry_run(&config).await;
    assert_eq!(out["outcome"], "error", "{out}");
}

// Per-tenant quotas

/// A distinct copy of a small guest (under 200 KiB), padded to about
/// `size` bytes when that is larger.
fn copy_of_busy(tag: &str, size: usize) -> Vec<u8> {
    let wasm = plugin("honest-busy");
    let pad = size.saturating_sub(wasm.len() + 64);
    with_custom_section(&wasm, &format!("copy-{tag}"), pad)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_keeps_at_most_the_configured_number_of_plugins() {
    let _turn = one_at_a_time().await;
    let gw = gateway(&[("HOOKGATE_PLUGIN_MAX_COUNT", "3")]);
    let token = tenant(&gw, "acme").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            upload(
                &gw,
                &token,
                &format!("p{n}"),
                copy_of_busy(&n.to_string(), 0),
            )
            .await,
        );
    }
    let message = refused(&gw, &token, "p3", copy_of_busy("3", 0)).await;
    assert!(message.contains('3'), "the limit is not named: {message}");
    // The same bytes again are the existing version, not a new one.
    let (status, body) = gw.upload_plugin(&token, "p0", copy_of_busy("0", 0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another tenant has its own room.
    let other = tenant(&gw, "other").await;
    upload(&gw, &other, "p3", copy_of_busy("3", 0)).await;
    // Deleting one makes room.
    let (status, body) = gw.delete(&format!("/v1/plugins/{}", ids[1]), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    upload(&gw, &token, "p3", copy_of_busy("3", 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_keeps_at_most_the_configured_total_of_plugin_bytes() {
    let _turn = one_at_a_time().await;
    let gw = gateway(&[("HOOKGATE_PLUGIN_MAX_TOTAL_MIB", "1")]);
    let token = tenant(&gw, "acme").await;
    // Two of 400 KiB fit in 1 MiB, three do not.
    let copy = |n: u32| copy_of_busy(&n.to_string(), 400 << 10);
    let first = upload(&gw, &token, "p0", copy(0)).await;
    upload(&gw, &token, "p1", copy(1)).await;
    let message = refused(&gw, &token, "p2", copy(2)).await;
    assert!(
        message.contains("1 MiB") || message.contains("1048576"),
        "the limit is not named: {message}"
    );
    let other = tenant(&gw, "other").await;
    upload(&gw, &other, "p2", copy(2)).await;
    let (status, body) = gw.delete(&format!("/v1/plugins/{first}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    upload(&gw, &token, "p2", copy(2)).await;
}

// Honest load

/// `plugin` on 40 endpoints of one tenant (configs in turn), 8 events
/// each, at full concurrency with room in every limit: every delivery is
/// made. What the receiver got.
async fn assert_honest_load_delivers(
    plugin: Source,
    configs: &[Value],
) -> Vec<hookgate_test_support::receiver::Received> {
    const ENDPOINTS: usize = 40;
    const EVENTS: usize = 8;
    let gw = gateway(&[
        ("HOOKGATE_TENANT_CONCURRENCY", "256"),
        ("HOOKGATE_PLUGIN_TIMEOUT", "1s"),
        ("HOOKGATE_PLUGIN_DEADLINE", "5s"),
    ]);
    let endpoints = Endpoints::create(&gw, plugin, configs, ENDPOINTS).await;
    endpoints.publish(&gw, EVENTS).await;
    let logs = endpoints.settled(&gw, EVENTS).await;
    let failed: Vec<&Value> = logs
        .iter()
        .flat_map(|(_, logs)| logs)
        .filter(|l| l["status"] != "delivered")
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} deliveries were not made: {:#?}",
        failed.len(),
        ENDPOINTS * EVENTS,
        &failed[..failed.len().min(5)]
    );
    let received = endpoints.rx.received();
    assert_eq!(received.len(), ENDPOINTS * EVENTS);
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_but_honest_plugins_all_deliver_at_full_concurrency() {
    let _turn = one_at_a_time().await;
    assert_honest_load_delivers(
        plugin("honest-busy").into(),
        &[json!({"busy_ms": 5}), json!({"busy_ms": 40})],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_of_the_largest_allowed_shape_all_deliver_at_full_concurrency() {
    let _turn = one_at_a_time().await;
    assert_honest_load_delivers(max_shape_transformer().into(), &[json!({})]).await;
}

// JavaScript

/// One hostile script, its misdeed chosen by the endpoint's config.
const HOSTILE_JS: &str = r#"
export function transform(event, config) {
  switch (config.mode) {
    case "spin": for (;;) {}
    case "memory": { const kept = []; for (;;) kept.push(new Uint8Array(16 << 20)); }
    case "recursion": { const down = (n) => down(n + 1) + 1; return { body: String(down(0)) }; }
    case "throw": throw new Error("refused by the script");
    case "huge": return { body: "x".repeat(1 << 10).repeat(4 << 10) };
    case "logs": for (let i = 0; ; i++) console.log("flood", i);
  }
  return { body: "unexpected mode" };
}
"#;

/// Each misdeed of a hostile script ends its deliveries `plugin_failed`,
/// with its own reason (in the dry run too), while the bystander tenant's
/// events all arrive on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_scripts_fail_with_their_reason_and_others_keep_receiving() {
    let _turn = one_at_a_time().await;
    let cases: [(&str, &[&str]); 6] = [
        ("spin", &["timed out"]),
        ("memory", &["memory limit"]),
        ("recursion", &["call stack exhausted", "RangeError"]),
        ("throw", &["Error: refused by the script"]),
        ("huge", &["over the", "byte limit"]),
        ("logs", &["timed out"]),
    ];
    let configs: Vec<Value> = cases.iter().map(|(m, _)| json!({ "mode": m })).collect();
    let run = run_hostile(Hostile {
        wasm: Source::Js(HOSTILE_JS),
        configs: configs.clone(),
        endpoints: 12,
        events: 4,
        // Room for the memory bomb and the huge output to meet their own
        // bounds first on a busy machine; the endless ones still time out.
        env: &[("HOOKGATE_PLUGIN_TIMEOUT", "200ms")],
    })
    .await;
    let reason = |mode: &str, text: &str| {
        let (_, wanted) = cases.iter().find(|(m, _)| *m == mode).unwrap();
        match mode {
            // Either bound may stop a runaway recursion first.
            "recursion" => wanted.iter().any(|w| text.contains(w)),
            _ => wanted.iter().all(|w| text.contains(w)),
        }
    };
    for (config, log) in run.entries() {
        let mode = config["mode"].as_str().unwrap();
        assert_eq!(log["status"], "plugin_failed", "{mode}: {log}");
        assert!(reason(mode, error(log)), "{mode}: {log}");
    }
    for config in &configs {
        let mode = config["mode"].as_str().unwrap();
        let (out, _) = run.dry_run(config).await;
        assert_eq!(out["outcome"], "error", "{mode}: {out}");
        assert!(
            reason(mode, out["error"].as_str().unwrap()),
            "{mode}: {out}"
        );
        if mode == "logs" {
            // The flood is cut at the per-call bound of log lines.
            let logs = out["logs"].as_array().unwrap();
            assert!(!logs.is_empty() && logs.len() <= 20, "{out}");
        }
    }
    assert!(run.endpoints.rx.received().is_empty());
}

/// Each misdeed of a hostile Python component (built with componentize-py
/// from `tests/support/cross/hostile.py`) ends its deliveries
/// `plugin_failed` with its own reason, while the bystander's events all
/// arrive on time: the interpreter runs in the same sandbox, with the
/// same limits, as any component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_python_fails_with_its_reason_and_others_keep_receiving() {
    let built = tempfile::tempdir().unwrap();
    let app = hookgate_test_support::repo_root().join("tests/support/cross/hostile.py");
    let hookgate = std::path::Path::new(env!("CARGO_BIN_EXE_hookgate"));
    let wasm = hookgate_test_support::cross::python_component(hookgate, built.path(), Some(&app))
        .expect("componentize-py (bash tests/run installs it)");
    let _turn = one_at_a_time().await;
    let cases: [(&str, &[&str]); 6] = [
        ("spin", &["timed out"]),
        ("memory", &["memory limit", "MemoryError"]),
        ("recursion", &["RecursionError", "recursion"]),
        ("throw", &["refused by the script"]),
        ("huge", &["over the", "byte limit"]),
        ("logs", &["timed out"]),
    ];
    let configs: Vec<Value> = cases.iter().map(|(m, _)| json!({ "mode": m })).collect();
    let run = run_hostile(Hostile {
        wasm: wasm.into(),
        configs: configs.clone(),
        endpoints: 12,
        events: 2,
        env: &[("HOOKGATE_PLUGIN_TIMEOUT", "200ms")],
    })
    .await;
    let reason = |mode: &str, text: &str| {
        let (_, wanted) = cases.iter().find(|(m, _)| *m == mode).unwrap();
        match mode {
            // The sandbox's bound or the interpreter's own, whichever comes first.
            "memory" | "recursion" => wanted.iter().any(|w| text.contains(w)),
            _ => wanted.iter().all(|w| text.contains(w)),
        }
    };
    for (config, log) in run.entries() {
        let mode = config["mode"].as_str().unwrap();
        assert_eq!(log["status"], "plugin_failed", "{mode}: {log}");
        assert!(reason(mode, error(log)), "{mode}: {log}");
    }
    assert!(run.endpoints.rx.received().is_empty());
}

/// A script whose top level never ends is refused at upload, beside a
/// bystander: the compile runs in the sandbox with the call's limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_spinning_at_its_top_level_is_refused_at_upload() {
    let _turn = one_at_a_time().await;
    let gw = gateway(&[("HOOKGATE_PLUGIN_TIMEOUT", "50ms")]);
    let token = tenant(&gw, "acme").await;
    let (status, body) = beside_bystander(
        &gw,
        gw.upload_script(
            &token,
            "spin",
            "for (;;) {}\nexport function transform() {}",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("timed out"), "{message}");
    let (_, list) = gw.get("/v1/plugins", &token).await;
    assert!(
        list["data"]["plugins"].as_array().unwrap().is_empty(),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_scripts_all_deliver_at_full_concurrency() {
    let _turn = one_at_a_time().await;
    let script = "export function transform(e, c) { console.log('n', e.data.n); return { body: { n: e.data.n, tag: c.tag }, headers: { 'X-Tag': c.tag } }; }";
    let configs = [json!({"tag": "a"}), json!({"tag": "b"})];
    let received = assert_honest_load_delivers(Source::Js(script), &configs).await;
    for r in &received {
        let body = r.json();
        assert!(body["n"].is_number(), "{body}");
        assert_eq!(r.header("x-tag"), body["tag"].as_str().unwrap());
    }
}
