//! Plugin call latency: each example plugin in the sandbox (a fresh instance
//! per call, as deliveries run it) against the same transform compiled
//! natively, on a 1 KiB and a 64 KiB event. Prints p50/p99 per call.
//!
//! `cargo bench --bench plugins` (builds the guest crates for wasm32-wasip2
//! first; adds the rustup target if missing). Target: p50 under 60 µs for a
//! 1 KiB event, instantiation included.
//!
//! `HOOKGATE_BENCH_PLUGINS=DIR cargo bench --bench plugins` measures the
//! components in DIR instead (`crm_booking.wasm`, ...), e.g. an older
//! build kept to compare with; the native column is always this tree's.
//!
//! `cargo test` runs it too (without `--bench`): a few calls of each case,
//! checking that sandbox and native both deliver, no timings worth reading.
//!
//! JavaScript plugins ([`javascript`]): scripts in the JavaScript engine
//! component, a fresh instance per call as deliveries run them. Target:
//! p50 under 0.5 ms for a 1 KiB event. `cargo bench --bench plugins --
//! javascript` runs only those.
//!
//! Languages ([`languages`], `-- languages`): crm-booking and field-filter
//! in Rust, JavaScript and Python side by side. Target for Python: p50
//! under 2 ms for a 1 KiB event.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hookgate::model::event::Event as GatewayEvent;
use hookgate::model::ids::TenantId;
use hookgate::plugins::Prepared;
use hookgate::plugins::host::{Compiled, Limits, Outcome, PluginHost, compile_artifact};
use hookgate::plugins::js::{ENGINE_WASM, prepared_engine};
use hookgate::signing::HeaderNames;
use hookgate_plugin::{Event, Outcome as PluginOutcome};
use serde_json::{Value, json};

use hookgate_test_support::wasm;

/// A booking event whose body is about `size` bytes.
fn event(size: usize) -> GatewayEvent {
    let mut data = json!({"booking": {
        "id": "bk_42", "status": "confirmed", "total": 1250.5, "currency": "EUR",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000"},
        "trip": {"name": "Lisbon weekend", "start_date": "2026-12-04"},
        "travelers": []
    }});
    let base = GatewayEvent::new(TenantId::generate(), None, "booking.created", data.clone())
        .body
        .len();
    let travelers = data["booking"]["travelers"].as_array_mut().unwrap();
    let mut grown = base;
    let mut i = 0;
    while grown < size {
        let t =
            json!({"name": format!("Traveler {i}"), "passport": format!("X{i:08}"), "seat": "12A"});
        grown += t.to_string().len() + 1;
        travelers.push(t);
        i += 1;
    }
    GatewayEvent::new(
        TenantId::generate(),
        Some("evt_bench".into()),
        "booking.created",
        data,
    )
}

struct Case {
    crate_name: &'static str,
    config: Value,
    native: fn(&str, &str) -> bool,
}

/// Whether a plugin function, run natively as the gateway runs it, delivers.
fn delivers<T, C>(
    transform: fn(Event<T>, C) -> Result<PluginOutcome, String>,
    envelope: &str,
    config: &str,
) -> bool
where
    T: serde::de::DeserializeOwned,
    C: serde::de::DeserializeOwned,
{
    matches!(
        hookgate_plugin::call(transform, envelope, config),
        Ok(PluginOutcome::Deliver { .. })
    )
}

/// The plugin's component: built from its crate, or, with
/// `HOOKGATE_BENCH_PLUGINS=DIR`, read from `DIR/<crate_name>.wasm` (to
/// compare other builds of the same plugins, such as an older version's).
fn component(crate_name: &str) -> Vec<u8> {
    match std::env::var_os("HOOKGATE_BENCH_PLUGINS") {
        Some(dir) => {
            let path =
                std::path::Path::new(&dir).join(format!("{}.wasm", crate_name.replace('-', "_")));
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }
        None => wasm::plugin(crate_name),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn measure(iterations: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.50), percentile(&times, 0.99))
}

/// p50/p99 of `iterations` sandboxed calls of `compiled` on `event`,
/// after one that must deliver (or the numbers mean nothing).
fn call_times(
    host: &PluginHost,
    runtime: &tokio::runtime::Runtime,
    compiled: &Compiled,
    event: &GatewayEvent,
    config: &str,
    iterations: usize,
) -> (Duration, Duration) {
    let (names, deadline) = (HeaderNames::default(), host.limits().deadline);
    let input = Prepared::of(event).to_wit(event, "wh_bench");
    let report = runtime.block_on(host.call(compiled, &input, config, &names, deadline));
    assert!(
        matches!(report.result, Ok(Outcome::Deliver(_))),
        "{:?}",
        report.result
    );
    measure(iterations, || {
        black_box(runtime.block_on(host.call(
            compiled,
            black_box(&input),
            config,
            &names,
            deadline,
        )));
    })
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    // A test runner that lists tests first (nextest) finds none here;
    // `cargo test` runs it as a whole.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cases = [
        Case {
            crate_name: "crm-booking",
            config: json!({"pipeline": "b2c"}),
            native: |e, c| delivers(crm_booking::transform, e, c),
        },
        Case {
            crate_name: "field-filter",
            config: json!({"pointer": "/data/booking/status", "values": ["confirmed"]}),
            native: |e, c| delivers(field_filter::transform, e, c),
        },
        Case {
            crate_name: "redact",
            config: json!({"remove": ["/data/booking/customer/phone"], "mask": ["/data/booking/travelers/*/passport"]}),
            native: |e, c| delivers(redact::transform, e, c),
        },
    ];
    let host = PluginHost::new(Limits::default()).expect("plugin host");
    let (names, deadline) = (HeaderNames::default(), Limits::default().deadline);
    // Calls yield to an executor at each epoch tick; a current-thread runtime
    // is the cheapest one to enter per call.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    println!(
        "| plugin | event | wasm p50 µs | wasm p99 µs | native p50 µs | native p99 µs | wasm/native p50 |"
    );
    println!("|---|---|---|---|---|---|---|");
    // `cargo bench --bench plugins -- redact` runs only the named plugins.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // `cargo bench` passes `--bench`; `cargo test` does not.
    let measuring = std::env::args().any(|a| a == "--bench");
    for case in cases
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| o == c.crate_name))
    {
        let (compiled, _) = host
            .compile(&component(case.crate_name))
            .expect("the example plugin compiles");
        let config = case.config.to_string();
        for (label, size, iterations) in [("1 KiB", 1024, 5000), ("64 KiB", 64 * 1024, 500)] {
            let iterations = if measuring { iterations } else { 10 };
            let event = event(size);
            let input = Prepared::of(&event).to_wit(&event, "wh_bench");
            // Both sides must really deliver, or the numbers mean nothing.
            let report = runtime.block_on(host.call(&compiled, &input, &config, &names, deadline));
            assert!(
                matches!(report.result, Ok(Outcome::Deliver(_))),
                "{}: {:?}",
                case.crate_name,
                report.result
            );
            assert!((case.native)(&event.body, &config));
            let (w50, w99) = measure(iterations, || {
                black_box(runtime.block_on(host.call(
                    &compiled,
                    black_box(&input),
                    &config,
                    &names,
                    deadline,
                )));
            });
            let (n50, n99) = measure(iterations, || {
                black_box((case.native)(black_box(&event.body), &config));
            });
            println!(
                "| {} | {label} ({} B) | {} | {} | {} | {} | {:.1}x |",
                case.crate_name,
                event.body.len(),
                us(w50),
                us(w99),
                us(n50),
                us(n99),
                w50.as_secs_f64() / n50.as_secs_f64().max(1e-9)
            );
        }
    }
    println!();
    if only.is_empty() || only.iter().any(|o| o == "javascript") {
        javascript(&host, &runtime, measuring);
    }
    if only.is_empty() || only.iter().any(|o| o == "languages") {
        languages(&host, &runtime, measuring);
    }
}

/// JavaScript plugins: each script in the engine, p50/p99 per call
/// (instantiating the engine, parsing the script, the transform), on a
/// 1 KiB and a 64 KiB event; in the engine as built (it starts itself in
/// every call) and prepared (started once, before the snapshot, as the
/// gateway runs it), measured in turns so drift hits both alike.
fn javascript(host: &PluginHost, runtime: &tokio::runtime::Runtime, measuring: bool) {
    let started = Instant::now();
    let built = compile_artifact(ENGINE_WASM).expect("the engine compiles");
    let compile_time = started.elapsed();
    let started = Instant::now();
    let prepared = compile_artifact(&prepared_engine().expect("the engine prepares"))
        .expect("the prepared engine compiles");
    let prepare_time = started.elapsed();
    println!(
        "JavaScript engine: {} KiB component, {} KiB machine code, compiled in {compile_time:.2?}; \
         prepared and compiled in {prepare_time:.2?} ({} KiB machine code)",
        ENGINE_WASM.len() >> 10,
        built.len() >> 10,
        prepared.len() >> 10,
    );
    let built = host.load_js_engine(&built).expect("the engine links");
    let prepared = host.load_js_engine(&prepared).expect("the engine links");
    println!();
    println!("| script | event | as built p50 µs | p99 µs | prepared p50 µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    let scripts = [
        (
            "empty (returns a fixed body)",
            "export function transform() { return { body: '' }; }",
        ),
        (
            "passthrough (returns event.payload)",
            "export function transform(event) { return { body: event.payload }; }",
        ),
        (
            "crm (the bench harness's)",
            hookgate_test_support::bench::modes::JS_CRM,
        ),
    ];
    let config = json!({"pipeline": "b2c"}).to_string();
    for (label, script) in scripts {
        let engines = [&built, &prepared].map(|engine| {
            runtime
                .block_on(host.compile_script(engine, script))
                .expect("the script compiles")
        });
        for (size_label, size, iterations) in [("1 KiB", 1024, 2000), ("64 KiB", 64 * 1024, 300)] {
            let iterations = if measuring { iterations } else { 5 };
            let event = event(size);
            let mut times = [Vec::new(), Vec::new()];
            for _ in 0..4 {
                for (compiled, times) in engines.iter().zip(&mut times) {
                    let (p50, p99) =
                        call_times(host, runtime, compiled, &event, &config, iterations / 4 + 1);
                    times.push((p50, p99));
                }
            }
            let [(b50, b99), (p50, p99)] = times.map(|t| {
                let median = |pick: fn(&(Duration, Duration)) -> Duration| {
                    let mut v: Vec<Duration> = t.iter().map(pick).collect();
                    v.sort();
                    v[v.len() / 2]
                };
                (median(|t| t.0), median(|t| t.1))
            });
            println!(
                "| {label} | {size_label} ({} B) | {} | {} | {} | {} |",
                event.body.len(),
                us(b50),
                us(b99),
                us(p50),
                us(p99)
            );
        }
    }
    println!();
}

/// crm-booking and field-filter in each language they are written in: the
/// Rust component, the JavaScript version in the engine, and the Python
/// version built with componentize-py (when measuring, and when it can be
/// had: `tests/run` installs it), p50/p99 per call. Python's interpreter
/// needs more room than the default limits give.
fn languages(host: &PluginHost, runtime: &tokio::runtime::Runtime, measuring: bool) {
    let python_host = PluginHost::new(Limits {
        time: Duration::from_secs(2),
        deadline: Duration::from_secs(10),
        memory: 128 << 20,
        ..Limits::default()
    })
    .expect("plugin host");
    let engine = host
        .load_js_engine(
            &compile_artifact(&prepared_engine().unwrap()).expect("the engine compiles"),
        )
        .expect("the engine links");
    let root = hookgate_test_support::repo_root();
    println!("| plugin | language | event | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    let plugins = [
        ("crm-booking", json!({"pipeline": "b2c"})),
        (
            "field-filter",
            json!({"pointer": "/data/booking/status", "values": ["confirmed"]}),
        ),
    ];
    for (plugin, config) in plugins {
        let config = config.to_string();
        let dir = root.join("plugins").join(plugin);
        let mut builds = vec![
            (
                "Rust",
                host,
                host.compile(&component(plugin)).expect("compiles").0,
            ),
            (
                "JavaScript",
                host,
                runtime
                    .block_on(host.compile_script(
                        &engine,
                        &std::fs::read_to_string(dir.join("plugin.js")).unwrap(),
                    ))
                    .expect("the script compiles"),
            ),
        ];
        let built = tempfile::tempdir().unwrap();
        let python = measuring
            .then(|| {
                let hookgate = std::path::Path::new(env!("CARGO_BIN_EXE_hookgate"));
                let app = dir.join("plugin.py");
                hookgate_test_support::cross::python_component(hookgate, built.path(), Some(&app))
            })
            .flatten();
        if let Some(wasm) = python {
            let compiled = python_host.compile(&wasm).expect("compiles").0;
            builds.push(("Python", &python_host, compiled));
        }
        for (language, host, compiled) in &builds {
            for (label, size, iterations) in [("1 KiB", 1024, 1000), ("64 KiB", 64 * 1024, 200)] {
                let iterations = if measuring { iterations } else { 5 };
                let event = event(size);
                let (p50, p99) = call_times(host, runtime, compiled, &event, &config, iterations);
                println!(
                    "| {plugin} | {language} | {label} ({} B) | {} | {} |",
                    event.body.len(),
                    us(p50),
                    us(p99)
                );
            }
        }
    }
    println!();
}
