//! A real HTTPS receiver on loopback, with a certificate from a test CA that
//! the gateway is told to trust (HOOKGATE_CA_FILE).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::sync::Notify;

/// The test CA, a leaf for 127.0.0.1/localhost signed by it, and a client
/// certificate it signed too (for receivers that require mutual TLS).
pub struct TestCa {
    pub ca_file: PathBuf,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// The temp dir of a test process's CA is this and its pid.
const CA_DIR_PREFIX: &str = "hookgate-test-ca-";

/// Removes the CA dirs of test processes that have exited. Each process
/// writes its own (its gateways read the file while it runs) and a static
/// is never dropped, so this is where the dirs of past runs go. Linux only:
/// a process is known to be gone by its /proc entry.
#[cfg(target_os = "linux")]
fn remove_stale_ca_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CA_DIR_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Another process may be removing it too.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn remove_stale_ca_dirs() {}

/// One CA per test process, written to a file the gateway can read.
pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hookgate test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params =
            CertificateParams::new(vec!["hookgate-client".to_string()]).unwrap();
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &issuer).unwrap();
        remove_stale_ca_dirs();
        let dir = std::env::temp_dir().join(format!("{CA_DIR_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        TestCa {
            ca_file,
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    })
}

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}: {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
    /// Headers of every answer.
    answer_headers: Arc<Mutex<Vec<(String, String)>>>,
    delay: Arc<Mutex<Duration>>,
    arrived: Arc<Notify>,
    /// Requests being answered now, and the most there ever were at once.
    concurrent: Arc<Mutex<(usize, usize)>>,
}

/// An HTTPS receiver; answers with the configured status after the
/// configured delay and records every request.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
    handle: axum_server::Handle<SocketAddr>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = test_ca();
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            ca.cert_pem.clone().into_bytes(),
            ca.key_pem.clone().into_bytes(),
        )
        .await
        .unwrap();
        Self::serve(config)
    }

    /// A receiver that accepts only connections presenting a client
    /// certificate of the test CA (`client_cert_pem`).
    pub async fn start_mtls() -> Receiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = test_ca();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(ca.key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::serve(axum_server::tls_rustls::RustlsConfig::from_config(
            Arc::new(config),
        ))
    }

    fn serve(config: axum_server::tls_rustls::RustlsConfig) -> Receiver {
        let shared = Shared {
            received: Arc::default(),
            status: Arc::new(Mutex::new(200)),
            answer_headers: Arc::default(),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
            arrived: Arc::new(Notify::new()),
            concurrent: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/{*path}", post(receive))
            .route("/", post(receive))
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)
            .unwrap()
            .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        Receiver {
            addr,
            shared,
            handle,
        }
    }

    /// The HTTPS URL of this receiver, by IP literal.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.addr.port())
    }

    /// The HTTPS URL of this receiver, by host name.
    pub fn url_by_name(&self) -> String {
        format!("https://localhost:{}/hook", self.addr.port())
    }

    pub fn respond_with(&self, status: u16) {
        *self.shared.status.lock().unwrap() = status;
    }

    /// Answers with `status` and these headers from now on.
    pub fn respond_with_headers(&self, status: u16, headers: &[(&str, &str)]) {
        *self.shared.answer_headers.lock().unwrap() = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.respond_with(status);
    }

    pub fn delay(&self, d: Duration) {
        *self.shared.delay.lock().unwrap() = d;
    }

    /// The most requests that were being answered at once.
    pub fn max_concurrent(&self) -> usize {
        self.shared.concurrent.lock().unwrap().1
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived, or panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.received();
                assert!(
                    got.len() >= n,
                    "expected {n} requests within {timeout:?}, got {}",
                    got.len()
                );
                return got;
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn receive(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    let at = Instant::now();
    {
        let mut concurrent = shared.concurrent.lock().unwrap();
        concurrent.0 += 1;
        concurrent.1 = concurrent.1.max(concurrent.0);
    }
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    shared.concurrent.lock().unwrap().0 -= 1;
    shared
        .received
        .lock()
        .unwrap()
        .push(Received { headers, body, at });
    shared.arrived.notify_waiters();
    let mut answer = HeaderMap::new();
    for (name, value) in shared.answer_headers.lock().unwrap().iter() {
        answer.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    (
        StatusCode::from_u16(*shared.status.lock().unwrap()).unwrap(),
        answer,
    )
}
