//! The receiving side: a loopback HTTPS (or HTTP) server that checks every
//! Standard Webhooks signature and counts and times each receipt.
//!
//! Paths: `/e/{k}` for the gateway's endpoint `k`, `/ceiling/{k}` for the
//! plain-reqwest baseline, `/black-hole/{k}` for the `--hostile` tenant's
//! endpoints (counted, not checked). Endpoints below `slow` answer late,
//! those below `failing` always answer 500; a share of all requests can fail
//! or hang.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::verify::verify_standard;

/// How the sink treats requests.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Endpoints `0..failing` always answer 500.
    pub failing: usize,
    /// Endpoints `failing..failing+slow` answer after `slow_delay`.
    pub slow: usize,
    pub slow_delay: Duration,
    /// Share of all requests answered 500.
    pub fail_share: f64,
    /// Share of all requests that hang for `hang_for` (longer than the
    /// gateway's delivery timeout) and do not count as received.
    pub hang_share: f64,
    pub hang_for: Duration,
}

/// How much later an event already received must have been published for
/// an earlier one to count as overtaken.
pub const OVERTAKEN_BY: Duration = Duration::from_millis(100);

/// Counters shared between the sink, the load generator and the report.
pub struct Tally {
    pub endpoints: usize,
    /// Receipts per (event, endpoint): index `event * endpoints + endpoint`.
    receipts: Vec<AtomicU32>,
    /// When each event's publish request started, in ns since `epoch`.
    pub published_at: Vec<AtomicU64>,
    pub epoch: Instant,
    pub unique: AtomicU64,
    pub duplicates: AtomicU64,
    pub ceiling: AtomicU64,
    pub bad_signatures: AtomicU64,
    /// Requests the sink answered 500 or left hanging on purpose.
    pub failed: AtomicU64,
    pub hung: AtomicU64,
    /// Requests to the black hole (`--hostile` endpoints).
    pub black_hole: AtomicU64,
    /// Publish-to-receipt latency of first receipts, µs.
    latencies: Mutex<Vec<u32>>,
    /// Time of the latest first receipt, ns since `epoch`.
    pub last_receipt: AtomicU64,
    /// Per endpoint, the latest publish time (`published_at`) among the
    /// events it has received.
    newest: Vec<AtomicU64>,
    /// First receipts of an event published over [`OVERTAKEN_BY`] before
    /// one its endpoint had already received: delivery order straying from
    /// publish order by more than concurrent publishes and attempts in
    /// flight explain.
    pub overtaken: AtomicU64,
}

impl Tally {
    pub fn new(events: usize, endpoints: usize) -> Arc<Self> {
        Arc::new(Self {
            endpoints,
            receipts: (0..events * endpoints).map(|_| AtomicU32::new(0)).collect(),
            published_at: (0..events).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            unique: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            ceiling: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            hung: AtomicU64::new(0),
            black_hole: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            last_receipt: AtomicU64::new(0),
            newest: (0..endpoints).map(|_| AtomicU64::new(0)).collect(),
            overtaken: AtomicU64::new(0),
        })
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn record(&self, event: usize, endpoint: usize) {
        let Some(slot) = self.receipts.get(event * self.endpoints + endpoint) else {
            return;
        };
        if slot.fetch_add(1, Ordering::Relaxed) > 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.unique.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ns();
        self.last_receipt.fetch_max(now, Ordering::Relaxed);
        let sent = self.published_at[event].load(Ordering::Relaxed);
        if let Some(newest) = self.newest.get(endpoint)
            && sent > 0
            && newest.fetch_max(sent, Ordering::Relaxed) > sent + OVERTAKEN_BY.as_nanos() as u64
        {
            self.overtaken.fetch_add(1, Ordering::Relaxed);
        }
        if sent > 0 && now > sent {
            self.latencies
                .lock()
                .unwrap()
                .push(((now - sent) / 1000) as u32);
        }
    }

    /// Publish-to-receipt latencies so far, µs, sorted.
    pub fn latencies(&self) -> Vec<u32> {
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort_unstable();
        l
    }
}

struct Shared {
    tally: Arc<Tally>,
    behaviour: Behaviour,
    /// Standard Webhooks keys (decoded `whsec_` secrets), by endpoint.
    keys: Arc<OnceLock<Vec<Vec<u8>>>>,
    stopped: AtomicBool,
}

pub struct Sink {
    pub addr: SocketAddr,
    pub https: bool,
    handle: axum_server::Handle<SocketAddr>,
    shared: Arc<Shared>,
}

impl Sink {
    /// Listens on `port` (0: any). The signing keys come later, through
    /// `keys`, once the endpoints exist.
    pub async fn start(
        port: u16,
        https: bool,
        behaviour: Behaviour,
        tally: Arc<Tally>,
        keys: Arc<OnceLock<Vec<Vec<u8>>>>,
    ) -> Sink {
        let shared = Arc::new(Shared {
            tally,
            behaviour,
            keys,
            stopped: AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .route("/e/{k}", post(receive))
            .route("/ceiling/{k}", post(ceiling))
            .route("/black-hole/{k}", post(black_hole))
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the sink");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = axum_server::Handle::new();
        let service = app.into_make_service();
        if https {
            let ca = crate::receiver::test_ca();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
                ca.cert_pem.clone().into_bytes(),
                ca.key_pem.clone().into_bytes(),
            )
            .await
            .unwrap();
            let server = axum_server::from_tcp_rustls(listener, tls)
                .unwrap()
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(service).await });
        } else {
            let server = axum_server::from_tcp(listener)
                .unwrap()
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(service).await });
        }
        Sink {
            addr,
            https,
            handle,
            shared,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Stops listening and drops open connections.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.handle.shutdown();
    }
}

/// The event index in a bench event id (`evt_b{index}`): the envelope's
/// `id`, or `source.event_id` in what the `crm-booking` plugin makes of it.
fn event_index(body: &[u8]) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Source<'a> {
        #[serde(borrow)]
        event_id: &'a str,
    }
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        id: Option<&'a str>,
        #[serde(borrow)]
        source: Option<Source<'a>>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let id = envelope.id.or(envelope.source.map(|s| s.event_id))?;
    id.strip_prefix("evt_b")?.parse().ok()
}

fn key_of(shared: &Shared, endpoint: usize) -> Option<&[u8]> {
    shared.keys.get()?.get(endpoint).map(Vec::as_slice)
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(k): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let b = &shared.behaviour;
    if k < b.failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if k < b.failing + b.slow {
        tokio::time::sleep(b.slow_delay).await;
    }
    let tally = &shared.tally;
    if b.fail_share > 0.0 && rand::random::<f64>() < b.fail_share {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if b.hang_share > 0.0 && rand::random::<f64>() < b.hang_share {
        tally.hung.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(b.hang_for).await;
        return StatusCode::OK;
    }
    match key_of(&shared, k) {
        Some(key) if verify_standard(key, &headers, &body) => {}
        _ => {
            tally.bad_signatures.fetch_add(1, Ordering::Relaxed);
            return StatusCode::UNAUTHORIZED;
        }
    }
    if shared.stopped.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match event_index(&body) {
        Some(event) => tally.record(event, k),
        None => {
            tally.bad_signatures.fetch_add(1, Ordering::Relaxed);
            return StatusCode::BAD_REQUEST;
        }
    }
    StatusCode::NO_CONTENT
}

async fn ceiling(
    State(shared): State<Arc<Shared>>,
    Path(k): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    match key_of(&shared, k) {
        Some(key) if verify_standard(key, &headers, &body) && event_index(&body).is_some() => {
            shared.tally.ceiling.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT
        }
        _ => {
            shared.tally.bad_signatures.fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED
        }
    }
}

async fn black_hole(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.tally.black_hole.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}
