//! The harness's three modes and what they share: the command line, the rig
//! (gateway, sink, tenant) and one report per mode.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use super::gateway::{self, ADMIN_TOKEN};
use super::load::{self, Publisher};
use super::sink::{Behaviour, Sink, Tally};
use crate::process::{self, Launch, Process, Usage};
use crate::verify::standard_key;
use crate::{receiver, wasm};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Throughput,
    Fault,
    Backlog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PluginChoice {
    None,
    FieldFilter,
    CrmBooking,
    /// [`JS_CRM`], a JavaScript plugin uploaded as source.
    Javascript,
}

/// The JavaScript plugin of `--plugin javascript`: the gist of
/// `crm-booking` (a contact and a deal from a booking), in a script.
pub const JS_CRM: &str = r#"
export function transform(event, config) {
  const b = event.data.booking;
  return {
    body: {
      contact: { name: b.customer.name, email: b.customer.email },
      deal: { id: b.id, amount: b.total, currency: b.currency, pipeline: config.pipeline },
      source: { event_id: event.id, type: event.type },
    },
  };
}
"#;

/// A hostile guest plugin for `--hostile` (a crate of `tests/plugins/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostileChoice {
    None,
    /// `hostile-sleep`: waits on a WASI clock until the chain's deadline.
    Sleep,
    /// `hostile-spin`: loops until its CPU-time limit.
    Spin,
}

impl HostileChoice {
    /// The guest crate.
    fn name(self) -> &'static str {
        match self {
            HostileChoice::None => "none",
            HostileChoice::Sleep => "hostile-sleep",
            HostileChoice::Spin => "hostile-spin",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Load, fault and backlog harness for hookgate")]
pub struct Args {
    #[arg(long, value_enum, default_value = "throughput")]
    mode: Mode,
    /// Events to publish (backlog mode: per endpoint).
    #[arg(short = 'n', long, default_value_t = 20_000)]
    events: usize,
    /// Concurrent publishing clients.
    #[arg(short = 'c', long, default_value_t = 64)]
    clients: usize,
    /// Endpoints, each subscribed to every event (backlog mode: 10,000 unless set).
    #[arg(short = 'e', long)]
    endpoints: Option<usize>,
    /// Size of each event's envelope in bytes.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// A plugin on every endpoint.
    #[arg(long, value_enum, default_value = "none")]
    plugin: PluginChoice,
    /// Throughput mode: a second tenant whose endpoints all run this hostile
    /// plugin, kept saturated while the main tenant publishes.
    #[arg(long, value_enum, default_value = "none")]
    hostile: HostileChoice,
    /// Endpoints of the `--hostile` tenant.
    #[arg(long, default_value_t = 32)]
    hostile_endpoints: usize,
    /// Plain HTTP to the sink (the gateway runs with HOOKGATE_ALLOW_HTTP).
    #[arg(long)]
    http: bool,
    /// Publish at this many events per second instead of as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Each endpoint's `rate_limit` (deliveries per second); none by default.
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Every endpoint delivers one at a time in publish order
    /// (`ordering: fifo`).
    #[arg(long)]
    fifo: bool,
    /// Share of endpoints whose receiver answers late.
    #[arg(long, default_value_t = 0.0)]
    slow_share: f64,
    /// How late slow endpoints answer.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    slow_delay: Duration,
    /// Share of endpoints whose receiver always answers 500 (their events are
    /// not waited for).
    #[arg(long, default_value_t = 0.0)]
    failing_share: f64,
    /// The gateway's delivery workers (HOOKGATE_WORKERS); default: its own.
    #[arg(long)]
    workers: Option<usize>,
    /// Fault mode: share of requests the sink answers 500.
    #[arg(long, default_value_t = 0.1)]
    fail_share: f64,
    /// Fault mode: share of requests the sink leaves hanging past the
    /// gateway's 1 s delivery timeout.
    #[arg(long, default_value_t = 0.02)]
    hang_share: f64,
    /// Fault mode: SIGKILL and restart the gateway this many times.
    #[arg(long, default_value_t = 3)]
    kills: usize,
    /// Fault mode: time between kills.
    #[arg(long, default_value = "800ms", value_parser = humantime::parse_duration)]
    kill_every: Duration,
    /// Backlog mode: how long the sink stays down once everything is queued.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    down_for: Duration,
    /// Skip the plain-reqwest ceiling run.
    #[arg(long)]
    no_ceiling: bool,
    /// Keep the store in this PostgreSQL database (HOOKGATE_DATABASE_URL)
    /// instead of sled in a temp dir; the bench's tenant is new every run,
    /// so a database used before does not mix into the figures.
    #[arg(long)]
    database_url: Option<String>,
    /// Gateway processes on the one `--database-url`, each on its own port;
    /// publishers spread over them. Fault mode: each kill SIGKILLs one of
    /// them but the first, for good, and the others take its work over.
    #[arg(long, default_value_t = 1)]
    gateways: usize,
    /// Run this gateway binary instead of building `target/release/hookgate`
    /// (another build to compare, or the tests' debug build).
    #[arg(long)]
    gateway_binary: Option<std::path::PathBuf>,
    /// Only write the tests' compile bomb (a component the gateway must
    /// refuse to compile within its bounds) to this file, then exit.
    #[arg(long, value_name = "FILE")]
    pub write_compile_bomb: Option<std::path::PathBuf>,
}

/// A running scenario: the gateway, the sink, and the tenant's setup.
struct Rig {
    launch: Launch,
    gateway: Option<Process>,
    base: Arc<RwLock<String>>,
    /// The other gateways on the same database (`--gateways`), with their
    /// URLs; a killed one is `None`.
    others: Vec<(Option<Process>, Arc<RwLock<String>>)>,
    /// The other gateways' data dirs.
    other_dirs: Vec<std::path::PathBuf>,
    /// The database server's CPU and commits when the rig started.
    database_start: Option<DatabaseUsage>,
    sink: Sink,
    tally: Arc<Tally>,
    token: String,
    keys: Vec<Vec<u8>>,
    api: reqwest::Client,
    /// CPU and RSS of gateway processes already killed.
    past: Vec<Usage>,
}

impl Drop for Rig {
    /// Stops the gateway, then removes its data dir: kept across the fault
    /// mode's restarts, a backlog run leaves gigabytes in it.
    fn drop(&mut self) {
        drop(self.gateway.take());
        self.others.clear();
        for dir in &self.other_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.launch.data_dir) {
            eprintln!(
                "could not remove the gateway's data dir {}: {e}",
                self.launch.data_dir.display()
            );
        }
    }
}

impl Rig {
    async fn start(
        args: &Args,
        events: usize,
        endpoints: usize,
        behaviour: Behaviour,
        extra_env: &[(&str, &str)],
        sink_up: bool,
    ) -> Rig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let binary = args
            .gateway_binary
            .clone()
            .unwrap_or_else(gateway::build_release_binary);
        let tally = Tally::new(events, endpoints);
        let keys_cell = Arc::new(OnceLock::new());
        let sink_port = process::free_port();
        let https = !args.http;
        let sink = Sink::start(
            sink_port,
            https,
            behaviour,
            tally.clone(),
            keys_cell.clone(),
        )
        .await;
        if !sink_up {
            sink.stop();
        }
        let data_dir = tempfile::tempdir().unwrap().keep();
        let ca = receiver::test_ca().ca_file.to_str().unwrap().to_string();
        let mut env: Vec<(String, String)> = vec![
            ("HOOKGATE_CA_FILE".into(), ca),
            ("HOOKGATE_ALLOW_TARGETS".into(), "127.0.0.0/8".into()),
            ("HOOKGATE_ALLOW_HTTP".into(), args.http.to_string()),
            ("HOOKGATE_MAX_BODY_BYTES".into(), (4 << 20).to_string()),
            // The gateway's own default, not the launcher's short lease for
            // tests (a mode may set its own).
            ("HOOKGATE_QUEUE_LEASE".into(), "30s".into()),
        ];
        if let Some(w) = args.workers {
            env.push(("HOOKGATE_WORKERS".into(), w.to_string()));
        }
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert!(
            args.gateways == 1 || args.database_url.is_some(),
            "--gateways {} needs --database-url: gateways share the work through one database",
            args.gateways
        );
        let mut launch = Launch {
            port: process::free_port(),
            admin_token: Some(ADMIN_TOKEN.into()),
            env,
            pass_settings: true,
            // HOOKGATE_BENCH_WRAP runs the gateway under a profiler, e.g.
            // "heaptrack -o /tmp/gw" (the figures are then the wrapper's).
            wrap: std::env::var("HOOKGATE_BENCH_WRAP")
                .ok()
                .filter(|w| !w.trim().is_empty()),
            ..Launch::new(binary, data_dir)
        };
        if let Some(url) = &args.database_url {
            launch.database_url = Some(url.clone());
        }
        let database_start = args.database_url.as_deref().map(DatabaseUsage::now);
        let gw = launch.start();
        let base = Arc::new(RwLock::new(gw.base.clone()));
        let (mut others, mut other_dirs) = (Vec::new(), Vec::new());
        for _ in 1..args.gateways {
            let dir = tempfile::tempdir().unwrap().keep();
            let other = Launch {
                port: process::free_port(),
                data_dir: dir.clone(),
                ..launch.clone()
            }
            .start();
            let url = Arc::new(RwLock::new(other.base.clone()));
            others.push((Some(other), url));
            other_dirs.push(dir);
        }
        let api = reqwest::Client::new();
        let mut rig = Rig {
            launch,
            gateway: Some(gw),
            base,
            others,
            other_dirs,
            database_start,
            sink,
            tally,
            token: String::new(),
            keys: Vec::new(),
            api,
            past: Vec::new(),
        };
        rig.setup(args, endpoints).await;
        keys_cell.set(rig.keys.clone()).unwrap();
        rig
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.read().unwrap())
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let resp = self
            .api
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("API request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A tenant, its key, the event type, the endpoints and their plugin.
    async fn setup(&mut self, args: &Args, endpoints: usize) {
        self.token = self.tenant("bench").await;
        let chain = match args.plugin {
            PluginChoice::None => json!([]),
            choice => {
                let (name, config) = match choice {
                    PluginChoice::FieldFilter => (
                        "field-filter",
                        json!({"pointer": "/data/booking/status", "values": ["confirmed"]}),
                    ),
                    PluginChoice::Javascript => ("javascript", json!({"pipeline": "b2c"})),
                    _ => ("crm-booking", json!({"pipeline": "b2c"})),
                };
                let id = self.upload(&self.token, name).await;
                json!([{"plugin_id": id, "config": config}])
            }
        };
        let mut extra = json!({ "plugins": chain });
        if let Some(rate) = args.rate_limit {
            extra["rate_limit"] = json!(rate);
        }
        if args.fifo {
            extra["ordering"] = json!("fifo");
        }
        let created = self.endpoints(&self.token, endpoints, "/e", &extra).await;
        self.keys = created
            .iter()
            .map(|(_, secret)| standard_key(secret).expect("a whsec_ secret"))
            .collect();
    }

    /// A tenant with the bench's event types; an API key for it.
    async fn tenant(&self, name: &str) -> String {
        let post = reqwest::Method::POST;
        let tenant = self
            .call(
                post.clone(),
                "/v1/tenants",
                ADMIN_TOKEN,
                json!({"name": name}),
            )
            .await["data"]["tenant"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let token = self
            .call(
                post.clone(),
                &format!("/v1/tenants/{tenant}/keys"),
                ADMIN_TOKEN,
                json!({"scopes": ["publish", "endpoints", "plugins"]}),
            )
            .await["data"]["key"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        for name in ["booking.created", "probe.ping"] {
            self.call(
                post.clone(),
                "/v1/event-types",
                &token,
                json!({"name": name}),
            )
            .await;
        }
        token
    }

    /// Uploads the guest crate `name` (or, for `javascript`, [`JS_CRM`])
    /// for the tenant of `token` and waits until it is compiled; its id.
    async fn upload(&self, token: &str, name: &str) -> String {
        let request = self
            .api
            .post(self.url(&format!("/v1/plugins?name={name}")))
            .bearer_auth(token);
        let request = match name {
            "javascript" => request
                .header("content-type", "text/javascript")
                .body(JS_CRM),
            _ => request
                .header("content-type", "application/wasm")
                .body(wasm::plugin(name)),
        };
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        let id = body["data"]["plugin"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("plugin not uploaded: {body}"))
            .to_string();
        // Components compile after the upload; endpoints made before they
        // are ready would retry their first deliveries.
        let mut state = body["data"]["plugin"]["state"].clone();
        while state == "compiling" {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let plugin = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/plugins/{id}"),
                    token,
                    Value::Null,
                )
                .await;
            state = plugin["data"]["plugin"]["state"].clone();
        }
        assert_eq!(state, "ready", "plugin {name} did not compile");
        id
    }

    /// `count` endpoints of the tenant of `token`, endpoint `k` at the
    /// sink's `{path}/{k}`, subscribed to `booking.created`, with the fields
    /// of `extra` (a plugin chain, a rate limit). Their ids and secrets, in
    /// order.
    async fn endpoints(
        &self,
        token: &str,
        count: usize,
        path: &str,
        extra: &Value,
    ) -> Vec<(String, String)> {
        // Created concurrently: the backlog mode makes 10,000.
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let created = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..32.min(count))
            .map(|_| {
                let (api, next, created) = (self.api.clone(), next.clone(), created.clone());
                let (token, extra) = (token.to_string(), extra.clone());
                let sink_base = self.sink.url(path);
                let gw = self.url("/v1/webhooks");
                tokio::spawn(async move {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= count {
                            break;
                        }
                        let mut body = json!({
                            "name": format!("bench {k}"),
                            "url": format!("{sink_base}/{k}"),
                            "events": ["booking.created"],
                        });
                        for (field, value) in extra.as_object().into_iter().flatten() {
                            body[field] = value.clone();
                        }
                        let resp = api
                            .post(&gw)
                            .bearer_auth(&token)
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        let status = resp.status();
                        let body: Value = resp.json().await.unwrap();
                        assert!(status.is_success(), "create endpoint: {status} {body}");
                        let webhook = &body["data"]["webhook"];
                        let field = |name: &str| webhook[name].as_str().unwrap().to_string();
                        created
                            .lock()
                            .unwrap()
                            .push((k, field("id"), field("secret")));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let mut created = std::mem::take(&mut *created.lock().unwrap());
        created.sort_unstable_by_key(|(k, ..)| *k);
        created
            .into_iter()
            .map(|(_, id, secret)| (id, secret))
            .collect()
    }

    fn publisher(&self, clients: usize, rate: Option<f64>) -> Publisher {
        let mut bases = vec![self.base.clone()];
        bases.extend(self.others.iter().map(|(_, url)| url.clone()));
        Publisher {
            bases,
            token: self.token.clone(),
            clients,
            rate,
        }
    }

    fn gateway_pid(&self) -> u32 {
        self.gateway.as_ref().unwrap().pid()
    }

    /// SIGKILL the gateway and start it again on the same port and data.
    fn restart(&mut self) {
        let usage = self.gateway.take().unwrap().kill();
        self.past.push(usage);
        let gw = self.launch.start();
        *self.base.write().unwrap() = gw.base.clone();
        self.gateway = Some(gw);
    }

    /// SIGKILL one of the other gateways for good (the last one alive);
    /// `false` when none is left.
    fn kill_other(&mut self) -> bool {
        let Some((process, _)) = self.others.iter_mut().rev().find(|(p, _)| p.is_some()) else {
            return false;
        };
        let usage = process.take().unwrap().kill();
        self.past.push(usage);
        true
    }

    /// The database server's CPU and commits since the rig started.
    fn database_usage(&self) -> Option<DatabaseUsage> {
        let start = self.database_start.as_ref()?;
        let now = DatabaseUsage::now(self.launch.database_url.as_deref()?);
        Some(DatabaseUsage {
            cpu_seconds: now.cpu_seconds - start.cpu_seconds,
            commits: now.commits.saturating_sub(start.commits),
        })
    }

    /// CPU seconds of every gateway process so far, and the highest peak RSS.
    fn usage(&self) -> Usage {
        let running = std::iter::once(&self.gateway)
            .chain(self.others.iter().map(|(p, _)| p))
            .flatten()
            .map(Process::usage);
        let now = running.fold(Usage::default(), |acc, u| Usage {
            cpu_seconds: acc.cpu_seconds + u.cpu_seconds,
            peak_rss_mib: acc.peak_rss_mib.max(u.peak_rss_mib),
        });
        self.past.iter().fold(now, |acc, u| Usage {
            cpu_seconds: acc.cpu_seconds + u.cpu_seconds,
            peak_rss_mib: acc.peak_rss_mib.max(u.peak_rss_mib),
        })
    }

    /// Waits until `expected` first receipts arrived, or nothing arrived for
    /// `stall`. Returns the unique receipts.
    async fn wait_for(&self, expected: u64, stall: Duration) -> u64 {
        let mut last = (0, Instant::now());
        loop {
            let got = self.tally.unique.load(Ordering::Relaxed);
            if got >= expected {
                return got;
            }
            if got != last.0 {
                last = (got, Instant::now());
            } else if last.1.elapsed() > stall {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Events per endpoint the `--hostile` tenant keeps outstanding.
const HOSTILE_IN_FLIGHT: usize = 8;

/// The `--hostile` tenant while it runs: its key, its endpoints and the
/// task that keeps them busy.
struct Hostile {
    plugin: HostileChoice,
    token: String,
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    started: Instant,
    publishing: tokio::task::JoinHandle<usize>,
}

/// What the `--hostile` tenant's deliveries came to.
pub struct HostileReport {
    pub plugin: HostileChoice,
    pub endpoints: usize,
    pub published: usize,
    /// Its deliveries by log status (`pending`: not ended when the run
    /// did), each with the first error seen.
    pub statuses: BTreeMap<String, (u64, String)>,
    /// How long it was kept busy.
    pub elapsed: Duration,
    /// Requests of it that reached the sink (its plugin never returns, so
    /// none should).
    pub received: u64,
}

impl Hostile {
    /// A second tenant with the hostile plugin on all its endpoints (the
    /// sink's black hole), publishing; returns once the first of its
    /// deliveries ended, so the measured run starts against a saturated
    /// tenant.
    async fn start(rig: &Rig, plugin: HostileChoice, endpoints: usize) -> Hostile {
        let token = rig.tenant("hostile").await;
        let id = rig.upload(&token, plugin.name()).await;
        let chain = json!([{"plugin_id": id, "config": {}}]);
        let created = rig
            .endpoints(
                &token,
                endpoints,
                "/black-hole",
                &json!({ "plugins": chain }),
            )
            .await;
        let stop = Arc::new(AtomicBool::new(false));
        let publishing = tokio::spawn(saturate(
            rig.api.clone(),
            rig.base.clone(),
            token.clone(),
            endpoints,
            stop.clone(),
        ));
        let started = Instant::now();
        while failed_attempts(&rig.api, &rig.url("")).await == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no delivery of the hostile tenant ended within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Hostile {
            plugin,
            token,
            endpoints: created.into_iter().map(|(id, _)| id).collect(),
            stop,
            started,
            publishing,
        }
    }

    /// Stops publishing and counts the tenant's deliveries by status.
    async fn finish(self, rig: &Rig) -> HostileReport {
        self.stop.store(true, Ordering::Relaxed);
        let published = self.publishing.await.unwrap();
        let elapsed = self.started.elapsed();
        let mut statuses = BTreeMap::new();
        for id in &self.endpoints {
            let mut cursor = String::new();
            loop {
                let page: Value = rig
                    .api
                    .get(rig.url(&format!("/v1/webhooks/{id}/deliveries?limit=250{cursor}")))
                    .bearer_auth(&self.token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for log in page["data"]["deliveries"]
                    .as_array()
                    .expect("a page of deliveries")
                {
                    let status = log["status"].as_str().unwrap_or("?").to_string();
                    let (count, error) = statuses.entry(status).or_insert((0, String::new()));
                    *count += 1;
                    if error.is_empty() {
                        *error = log["error"].as_str().unwrap_or("").to_string();
                    }
                }
                match page["data"]["next_cursor"].as_str() {
                    Some(c) => cursor = format!("&cursor={c}"),
                    None => break,
                }
            }
        }
        HostileReport {
            plugin: self.plugin,
            endpoints: self.endpoints.len(),
            published,
            statuses,
            elapsed,
            received: rig.tally.black_hole.load(Ordering::Relaxed),
        }
    }
}

/// Delivery attempts that did not succeed, from the gateway's `/metrics`:
/// the hostile tenant's, as the main tenant's all succeed (unless
/// `--failing-share` is set, whose failures count too).
async fn failed_attempts(api: &reqwest::Client, base: &str) -> u64 {
    let text = match api.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    text.lines()
        .filter(|l| l.starts_with("hookgate_attempts_total{") && !l.contains("\"success\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Publishes to the hostile tenant until `stop`, keeping
/// [`HOSTILE_IN_FLIGHT`] events per endpoint outstanding: one more for
/// every `endpoints` deliveries that ended. Returns the events published.
async fn saturate(
    api: reqwest::Client,
    base: Arc<RwLock<String>>,
    token: String,
    endpoints: usize,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut published = 0;
    while !stop.load(Ordering::Relaxed) {
        let base = base.read().unwrap().clone();
        let ended = failed_attempts(&api, &base).await as usize / endpoints.max(1);
        while published < ended + HOSTILE_IN_FLIGHT && !stop.load(Ordering::Relaxed) {
            let body =
                format!(r#"{{"id":"evt_h{published}","type":"booking.created","data":{{}}}}"#);
            let resp = api
                .post(format!("{base}/v1/events"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => published += 1,
                // Retried with the same id on the next round.
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    published
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

fn row(name: &str, value: String) {
    println!("| {name} | {value} |");
}

fn header(args: &Args) {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    println!();
    println!(
        "`cargo run --release --example bench -- {}`",
        argv.join(" ")
    );
    println!();
    println!(
        "mode {:?}, {} events, {} clients, {} B payload, plugin {:?}, {}",
        args.mode,
        args.events,
        args.clients,
        args.payload,
        args.plugin,
        if args.http { "HTTP" } else { "HTTPS" }
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
}

pub async fn run(args: Args) -> u64 {
    match args.mode {
        Mode::Throughput => {
            let report = throughput(&args).await;
            report.print(&args);
            report.expected.saturating_sub(report.delivered)
        }
        Mode::Fault => {
            let report = fault(&args).await;
            report.print(&args);
            report.lost
        }
        Mode::Backlog => {
            let report = backlog(&args).await;
            report.print(&args);
            report.lost
        }
    }
}

/// What the throughput mode measured.
pub struct ThroughputReport {
    pub endpoints: usize,
    pub failing: usize,
    pub slow: usize,
    pub accepted: usize,
    pub publish_elapsed: Duration,
    /// Accept latency of each publish, µs, sorted.
    pub accept: Vec<u32>,
    pub expected: u64,
    pub delivered: u64,
    pub delivery_rate: f64,
    /// Publish-to-receipt latency of first receipts, µs, sorted.
    pub receipt: Vec<u32>,
    /// The plain reqwest client's rate against the same sink, and its
    /// concurrency: at the gateway's own (endpoints × its per-endpoint
    /// maximum, within its workers), then at the harness's clients (`-c`)
    /// when that differs; empty with `--no-ceiling`.
    pub ceiling: Vec<(f64, usize)>,
    pub bad_signatures: u64,
    pub duplicates: u64,
    /// Deliveries that arrived after the delivery to the same endpoint of an
    /// event published over 100 ms later.
    pub overtaken: u64,
    pub usage: Usage,
    /// The database server's share, when the gateways run on PostgreSQL.
    pub database: Option<DatabaseUsage>,
    pub gateways: usize,
    pub hostile: Option<HostileReport>,
}

pub async fn throughput(args: &Args) -> ThroughputReport {
    let endpoints = args.endpoints.unwrap_or(4);
    let failing = (endpoints as f64 * args.failing_share).round() as usize;
    let slow = (endpoints as f64 * args.slow_share).round() as usize;
    let behaviour = Behaviour {
        failing,
        slow,
        slow_delay: args.slow_delay,
        ..Behaviour::default()
    };
    let rig = Rig::start(
        args,
        args.events,
        endpoints,
        behaviour,
        &[("HOOKGATE_RETRY_SCHEDULE", "0s,1s,5s,30s,5m")],
        true,
    )
    .await;
    let hostile = match args.hostile {
        HostileChoice::None => None,
        plugin => Some(Hostile::start(&rig, plugin, args.hostile_endpoints).await),
    };
    let data = load::event_data(args.payload);
    let published = rig
        .publisher(args.clients, args.rate)
        .run(0..args.events, &data, &rig.tally)
        .await;
    let expected = (published.accepted * (endpoints - failing)) as u64;
    let delivered = rig.wait_for(expected, Duration::from_secs(30)).await;
    let usage = rig.usage();
    // The server's statistics reach pg_stat_database within a second.
    if args.database_url.is_some() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let database = rig.database_usage();
    let hostile = match hostile {
        Some(h) => Some(h.finish(&rig).await),
        None => None,
    };
    let tally = &rig.tally;
    let first_publish = tally
        .published_at
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .filter(|&t| t > 0)
        .min()
        .unwrap_or(0);
    let span = Duration::from_nanos(tally.last_receipt.load(Ordering::Relaxed) - first_publish);
    let delivery_rate = delivered as f64 / span.as_secs_f64();
    let receipt = tally.latencies();

    let mut ceiling = Vec::new();
    let mut concurrencies = Vec::new();
    if !args.no_ceiling {
        // The gateway's own delivery concurrency, as it reports it.
        let settings: Value = rig
            .api
            .get(rig.url("/ui/settings.json"))
            .send()
            .await
            .expect("read the gateway's page settings")
            .json()
            .await
            .expect("page settings are JSON");
        let per_endpoint = settings["endpoint_concurrency"]
            .as_u64()
            .expect("endpoint_concurrency in the page settings")
            as usize;
        let workers = args.workers.unwrap_or(256);
        concurrencies.push(workers.min((endpoints - failing) * per_endpoint).max(1));
        if !concurrencies.contains(&args.clients) {
            concurrencies.push(args.clients);
        }
    }
    for concurrency in concurrencies {
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if !args.http {
            let pem = std::fs::read(&receiver::test_ca().ca_file).unwrap();
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        let count = delivered as usize;
        let sink = &rig.sink;
        // The endpoints the gateway delivered to: all but the failing ones.
        let took = load::ceiling(
            client.build().unwrap(),
            |p| sink.url(p),
            &rig.keys,
            failing..endpoints,
            count,
            concurrency,
            &data,
        )
        .await;
        ceiling.push((count as f64 / took.as_secs_f64(), concurrency));
    }
    ThroughputReport {
        endpoints,
        failing,
        slow,
        accepted: published.accepted,
        publish_elapsed: published.elapsed,
        accept: published.latencies,
        expected,
        delivered,
        delivery_rate,
        receipt,
        ceiling,
        bad_signatures: tally.bad_signatures.load(Ordering::Relaxed),
        duplicates: tally.duplicates.load(Ordering::Relaxed),
        overtaken: tally.overtaken.load(Ordering::Relaxed),
        usage,
        database,
        gateways: args.gateways,
        hostile,
    }
}

impl ThroughputReport {
    fn print(&self, args: &Args) {
        header(args);
        row(
            "endpoints (failing, slow)",
            format!("{} ({}, {})", self.endpoints, self.failing, self.slow),
        );
        row("events accepted", self.accepted.to_string());
        row(
            "publish throughput",
            format!(
                "{:.0} events/s",
                self.accepted as f64 / self.publish_elapsed.as_secs_f64()
            ),
        );
        row(
            "accept latency p50 / p99",
            format!(
                "{:.2} ms / {:.2} ms",
                pct(&self.accept, 0.5),
                pct(&self.accept, 0.99)
            ),
        );
        row(
            "deliveries received / expected",
            format!("{} / {}", self.delivered, self.expected),
        );
        row(
            "end-to-end delivery rate",
            format!("{:.0} deliveries/s", self.delivery_rate),
        );
        row(
            "publish->receipt p50 / p99 / max",
            format!(
                "{:.2} ms / {:.2} ms / {:.2} ms",
                pct(&self.receipt, 0.5),
                pct(&self.receipt, 0.99),
                pct(&self.receipt, 1.0)
            ),
        );
        if let Some(h) = &self.hostile {
            row(
                "hostile tenant",
                format!(
                    "{} on {} endpoints, {} events published over {:.1} s",
                    h.plugin.name(),
                    h.endpoints,
                    h.published,
                    h.elapsed.as_secs_f64()
                ),
            );
            let ended: u64 = (h.statuses.iter())
                .filter(|(status, _)| *status != "pending")
                .map(|(_, (count, _))| count)
                .sum();
            let statuses: Vec<String> = (h.statuses.iter())
                .map(|(status, (count, error))| match error.as_str() {
                    "" => format!("{status} {count}"),
                    error => format!("{status} {count} ({error})"),
                })
                .collect();
            row(
                "hostile deliveries ended",
                format!(
                    "{ended} ({:.0}/s); by status: {}",
                    ended as f64 / h.elapsed.as_secs_f64(),
                    statuses.join(", ")
                ),
            );
            row("hostile requests reaching the sink", h.received.to_string());
        }
        row(
            "gateway peak RSS",
            format!("{:.0} MiB", self.usage.peak_rss_mib),
        );
        row(
            "gateway CPU",
            format!(
                "{:.1} s ({} process{}; {:.3} ms a delivery)",
                self.usage.cpu_seconds,
                self.gateways,
                if self.gateways == 1 { "" } else { "es" },
                1000.0 * self.usage.cpu_seconds / self.delivered.max(1) as f64
            ),
        );
        if let Some(db) = &self.database {
            row(
                "database CPU",
                format!(
                    "{:.1} s ({:.3} ms a delivery)",
                    db.cpu_seconds,
                    1000.0 * db.cpu_seconds / self.delivered.max(1) as f64
                ),
            );
            let span = self.delivered as f64 / self.delivery_rate.max(f64::MIN_POSITIVE);
            row(
                "database commits",
                format!(
                    "{} ({:.0}/s over the run, {:.2} a delivery)",
                    db.commits,
                    db.commits as f64 / span,
                    db.commits as f64 / self.delivered.max(1) as f64
                ),
            );
        }
        for &(rate, concurrency) in &self.ceiling {
            row(
                &format!("ceiling: reqwest -> sink, {concurrency} in flight"),
                format!("{rate:.0} requests/s"),
            );
            row(
                &format!("gateway / ceiling at {concurrency}"),
                format!("{:.0}%", 100.0 * self.delivery_rate / rate),
            );
        }
        row(
            "bad signatures / duplicates",
            format!("{} / {}", self.bad_signatures, self.duplicates),
        );
        row(
            "delivered after one published 100 ms later",
            format!(
                "{:.1}%",
                100.0 * self.overtaken as f64 / (self.delivered.max(1)) as f64
            ),
        );
        assert_eq!(self.bad_signatures, 0, "bad signatures");
    }
}

/// The CPU time of the PostgreSQL server's processes (all processes named
/// `postgres` on this machine) and the commits of every database.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatabaseUsage {
    pub cpu_seconds: f64,
    pub commits: u64,
}

impl DatabaseUsage {
    fn now(database_url: &str) -> Self {
        let mut cpu_seconds = 0.0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "postgres" {
                cpu_seconds += process::usage_of(pid).cpu_seconds;
            }
        }
        let out = std::process::Command::new("psql")
            .args(["-X", "-A", "-t", "-d", database_url, "-c"])
            .arg("SELECT sum(xact_commit) FROM pg_stat_database")
            .output()
            .expect("run psql (Debian's postgresql-client)");
        let commits = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        Self {
            cpu_seconds,
            commits,
        }
    }
}

/// What the fault mode counted.
pub struct FaultReport {
    pub endpoints: usize,
    /// Gateway SIGKILLs, and how many of them came while events were still
    /// being published.
    pub kills: usize,
    pub kills_while_publishing: usize,
    /// Kills that came before every delivery had arrived.
    pub kills_while_delivering: usize,
    pub accepted: usize,
    pub publish_retries: usize,
    pub expected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub lost: u64,
    /// Requests the sink answered 500, and requests it left hanging.
    pub sink_failed: u64,
    pub sink_hung: u64,
    pub bad_signatures: u64,
    pub usage: Usage,
}

pub async fn fault(args: &Args) -> FaultReport {
    let endpoints = args.endpoints.unwrap_or(4);
    let behaviour = Behaviour {
        fail_share: args.fail_share,
        hang_share: args.hang_share,
        hang_for: Duration::from_secs(2),
        ..Behaviour::default()
    };
    let mut rig = Rig::start(
        args,
        args.events,
        endpoints,
        behaviour,
        &[
            (
                "HOOKGATE_RETRY_SCHEDULE",
                "0s,100ms,250ms,500ms,1s,1s,2s,2s,3s,3s,5s,5s,5s,5s",
            ),
            ("HOOKGATE_DELIVERY_TIMEOUT", "1s"),
            // With several gateways, a killed one's work is taken over
            // when its leases run out.
            ("HOOKGATE_QUEUE_LEASE", "5s"),
        ],
        true,
    )
    .await;
    let data = load::event_data(args.payload);
    let publisher = rig.publisher(args.clients, args.rate);
    let tally = rig.tally.clone();
    let events = args.events;
    let publishing = tokio::spawn(async move { publisher.run(0..events, &data, &tally).await });
    let mut kills_while_publishing = 0;
    // Unique receipts at each kill, to tell after the run which kills came
    // while deliveries were still outstanding.
    let mut received_at_kill = Vec::new();
    for _ in 0..args.kills {
        tokio::time::sleep(args.kill_every).await;
        if !publishing.is_finished() {
            kills_while_publishing += 1;
        }
        received_at_kill.push(rig.tally.unique.load(Ordering::Relaxed));
        if args.gateways == 1 {
            rig.restart();
        } else if !rig.kill_other() {
            break;
        }
    }
    let published = publishing.await.unwrap();
    let expected = (published.accepted * endpoints) as u64;
    let delivered = rig.wait_for(expected, Duration::from_secs(60)).await;
    let tally = &rig.tally;
    FaultReport {
        endpoints,
        kills: rig.past.len(),
        kills_while_publishing,
        kills_while_delivering: received_at_kill.iter().filter(|&&r| r < expected).count(),
        accepted: published.accepted,
        publish_retries: published.retried,
        expected,
        delivered,
        duplicates: tally.duplicates.load(Ordering::Relaxed),
        lost: expected.saturating_sub(delivered),
        sink_failed: tally.failed.load(Ordering::Relaxed),
        sink_hung: tally.hung.load(Ordering::Relaxed),
        bad_signatures: tally.bad_signatures.load(Ordering::Relaxed),
        usage: rig.usage(),
    }
}

impl FaultReport {
    fn print(&self, args: &Args) {
        header(args);
        row("endpoints", self.endpoints.to_string());
        row(
            "sink failures / hangs",
            format!(
                "{} / {} requests ({:.0}% / {:.0}% asked)",
                self.sink_failed,
                self.sink_hung,
                args.fail_share * 100.0,
                args.hang_share * 100.0
            ),
        );
        row(
            "gateway SIGKILLs (while publishing, while delivering)",
            format!(
                "{} ({}, {})",
                self.kills, self.kills_while_publishing, self.kills_while_delivering
            ),
        );
        row("events accepted", self.accepted.to_string());
        row("publish attempts retried", self.publish_retries.to_string());
        row("deliveries expected", self.expected.to_string());
        row("delivered (unique)", self.delivered.to_string());
        row("duplicates", self.duplicates.to_string());
        row("lost", self.lost.to_string());
        row(
            "gateway CPU (all processes)",
            format!("{:.1} s", self.usage.cpu_seconds),
        );
        row("bad signatures", self.bad_signatures.to_string());
        assert_eq!(self.bad_signatures, 0, "bad signatures");
    }
}

/// What the backlog mode measured.
pub struct BacklogReport {
    pub endpoints: usize,
    pub accepted: usize,
    pub expected: u64,
    pub fill: Duration,
    pub drain: Duration,
    pub delivered: u64,
    pub lost: u64,
    /// Probe latencies while the backlog built and drained, µs, sorted.
    pub probe_publish: Vec<u32>,
    pub probe_read: Vec<u32>,
    /// The publish probes sent while the backlog drained (deliveries at
    /// full rate, no other publisher), µs, sorted.
    pub probe_publish_draining: Vec<u32>,
    /// Probe requests that failed or got an error status.
    pub probe_failures: u64,
    /// The highest RSS sampled by the probe, MiB.
    pub sampled_rss_mib: f64,
    pub bad_signatures: u64,
    pub usage: Usage,
}

/// Latencies of the backlog mode's probes, µs, and how many failed.
#[derive(Default)]
struct Probes {
    publish: Vec<u32>,
    read: Vec<u32>,
    publish_draining: Vec<u32>,
    failures: u64,
    rss_mib: f64,
}

/// Sends one probe request: its latency in µs if it got a 2xx.
async fn probe(request: reqwest::RequestBuilder) -> Option<u32> {
    let started = Instant::now();
    match request.send().await {
        Ok(r) if r.status().is_success() => Some(started.elapsed().as_micros() as u32),
        _ => None,
    }
}

pub async fn backlog(args: &Args) -> BacklogReport {
    let endpoints = args.endpoints.unwrap_or(10_000);
    let events = args.events.min(100_000);
    let mut rig = Rig::start(
        args,
        events,
        endpoints,
        Behaviour::default(),
        &[(
            "HOOKGATE_RETRY_SCHEDULE",
            "0s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s",
        )],
        false,
    )
    .await;
    let expected = (events * endpoints) as u64;
    let data = load::event_data(args.payload);
    let pid = rig.gateway_pid();

    // Probes: a publish nobody subscribes to and an API read, every 100 ms,
    // plus the gateway's RSS, while the backlog builds and drains.
    let probing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let (api, token, base, probing, draining) = (
            rig.api.clone(),
            rig.token.clone(),
            rig.base.clone(),
            probing.clone(),
            draining.clone(),
        );
        tokio::spawn(async move {
            let mut probes = Probes::default();
            let mut i = 0u64;
            while probing.load(Ordering::Relaxed) {
                let base = base.read().unwrap().clone();
                let publish = probe(
                    api.post(format!("{base}/v1/events"))
                        .bearer_auth(&token)
                        .json(
                            &json!({"type": "probe.ping", "id": format!("probe_{i}"), "data": {}}),
                        ),
                )
                .await;
                if let (Some(us), true) = (publish, draining.load(Ordering::Relaxed)) {
                    probes.publish_draining.push(us);
                }
                let read = probe(
                    api.get(format!("{base}/v1/webhooks?limit=20"))
                        .bearer_auth(&token),
                )
                .await;
                for (latencies, result) in
                    [(&mut probes.publish, publish), (&mut probes.read, read)]
                {
                    match result {
                        Some(us) => latencies.push(us),
                        None => probes.failures += 1,
                    }
                }
                probes.rss_mib = probes.rss_mib.max(process::rss_mib(pid));
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            probes.publish.sort_unstable();
            probes.read.sort_unstable();
            probes.publish_draining.sort_unstable();
            probes
        })
    };

    let fill_start = Instant::now();
    let published = rig
        .publisher(args.clients.min(8), None)
        .run(0..events, &data, &rig.tally)
        .await;
    let fill = fill_start.elapsed();
    tokio::time::sleep(args.down_for).await;
    // The sink comes back on the same port.
    let behaviour = Behaviour::default();
    let keys = Arc::new(OnceLock::new());
    keys.set(rig.keys.clone()).unwrap();
    let port = rig.sink.addr.port();
    rig.sink = Sink::start(port, !args.http, behaviour, rig.tally.clone(), keys).await;
    let up = Instant::now();
    draining.store(true, Ordering::Relaxed);
    let delivered = rig.wait_for(expected, Duration::from_secs(120)).await;
    let drain = up.elapsed();
    probing.store(false, Ordering::Relaxed);
    let probes = probe.await.unwrap();
    BacklogReport {
        endpoints,
        accepted: published.accepted,
        expected,
        fill,
        drain,
        delivered,
        lost: expected.saturating_sub(delivered),
        probe_publish: probes.publish,
        probe_read: probes.read,
        probe_publish_draining: probes.publish_draining,
        probe_failures: probes.failures,
        sampled_rss_mib: probes.rss_mib,
        bad_signatures: rig.tally.bad_signatures.load(Ordering::Relaxed),
        usage: rig.usage(),
    }
}

impl BacklogReport {
    fn print(&self, args: &Args) {
        let (publish, read) = (&self.probe_publish, &self.probe_read);
        header(args);
        row(
            "endpoints x events",
            format!("{} x {}", self.endpoints, self.accepted),
        );
        row("deliveries queued", self.expected.to_string());
        row(
            "fill (publish + fan-out) time",
            format!("{:.1} s", self.fill.as_secs_f64()),
        );
        row(
            "sink down for",
            format!("{:?} after the fill", args.down_for),
        );
        row(
            "drain time after the sink came up",
            format!("{:.1} s", self.drain.as_secs_f64()),
        );
        row(
            "drain rate",
            format!(
                "{:.0} deliveries/s",
                self.delivered as f64 / self.drain.as_secs_f64()
            ),
        );
        row(
            "delivered / expected",
            format!("{} / {}", self.delivered, self.expected),
        );
        row(
            "probe publish p50 / p99 / max",
            format!(
                "{:.1} / {:.1} / {:.1} ms",
                pct(publish, 0.5),
                pct(publish, 0.99),
                pct(publish, 1.0)
            ),
        );
        let draining = &self.probe_publish_draining;
        row(
            "probe publish while draining p50 / p99 / max",
            format!(
                "{:.1} / {:.1} / {:.1} ms",
                pct(draining, 0.5),
                pct(draining, 0.99),
                pct(draining, 1.0)
            ),
        );
        row(
            "probe API read p50 / p99 / max",
            format!(
                "{:.1} / {:.1} / {:.1} ms",
                pct(read, 0.5),
                pct(read, 0.99),
                pct(read, 1.0)
            ),
        );
        row("probes failed", self.probe_failures.to_string());
        row(
            "gateway RSS max (sampled) / peak",
            format!(
                "{:.0} MiB / {:.0} MiB",
                self.sampled_rss_mib, self.usage.peak_rss_mib
            ),
        );
        row("gateway CPU", format!("{:.1} s", self.usage.cpu_seconds));
        row("bad signatures", self.bad_signatures.to_string());
        assert_eq!(self.bad_signatures, 0, "bad signatures");
    }
}
