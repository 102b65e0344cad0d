//! Sending one signed request to a receiver (docs/product.md, "Delivery").
//!
//! One shared reqwest client (connection pooling, HTTP/1.1 and HTTP/2) with
//! the delivery timeout, no redirects, no proxy but the operator's own
//! (never one named by the environment), `User-Agent: hookgate/<version>`,
//! and TLS trusting the system roots plus the operator's CA file. Every
//! address a hostname resolves to passes the private-address guard first,
//! so DNS that changes after the endpoint was saved (rebinding) cannot
//! reach a private network. Through a proxy the proxy connects, so the
//! target's addresses are resolved and checked before each request: every
//! one must pass, since the proxy may pick any of them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use bytes::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Digest;
use url::{Host, Url};

use crate::model::delivery::{MAX_RESPONSE_BODY, truncate_body};
use crate::model::endpoint::ClientTls;
use crate::target_guard::{TargetError, TargetGuard};

pub const USER_AGENT: &str = concat!("hookgate/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("cannot read CA file {path}: {source}")]
    ReadCa {
        path: String,
        source: std::io::Error,
    },
    #[error("CA file {path} holds no valid PEM certificate: {source}")]
    BadCa {
        path: String,
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("the proxy {url} cannot be used: {source}")]
    Proxy { url: String, source: reqwest::Error },
}

/// The operator's HTTP(S) proxy: every delivery goes through it, but those
/// to the hosts of `no_proxy` (names, `.domain` suffixes, IPs or CIDRs).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub url: String,
    pub no_proxy: Vec<String>,
}

/// What one request came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub success: bool,
    pub response_code: Option<u16>,
    pub response_time_ms: u64,
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// How long the receiver asked to be left alone (`Retry-After` on a 429
    /// or 503), as it said it.
    pub retry_after: Option<Duration>,
}

#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    guard: TargetGuard,
    timeout: Duration,
    /// Requests may go through a proxy, which resolves the target itself.
    proxied: bool,
    /// What every client is built with, for those with a client
    /// certificate.
    settings: Arc<ClientSettings>,
    /// One client per client certificate in use (mutual TLS), by the
    /// SHA-256 of its PEM: a connection pool cannot mix identities.
    with_identity: Arc<std::sync::Mutex<HashMap<[u8; 32], reqwest::Client>>>,
}

/// Most clients kept for client certificates; past it they are all
/// dropped and built again as used.
const IDENTITY_CLIENTS: usize = 256;

struct ClientSettings {
    guard: TargetGuard,
    timeout: Duration,
    proxy: Option<ProxySettings>,
    roots: Vec<reqwest::Certificate>,
}

impl ClientSettings {
    fn build(&self, identity: Option<reqwest::Identity>) -> Result<reqwest::Client, SenderError> {
        let (guard, timeout) = (&self.guard, self.timeout);
        // The proxy's own address is the operator's choice, not a target's.
        let proxy_host = self
            .proxy
            .as_ref()
            .and_then(|p| Url::parse(&p.url).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(GuardedResolver {
                guard: guard.clone(),
                proxy_host,
            }));
        builder = match &self.proxy {
            // Proxy variables from the environment would bypass the guard's
            // check of resolved addresses.
            None => builder.no_proxy(),
            Some(settings) => {
                let bad = |source| SenderError::Proxy {
                    url: settings.url.clone(),
                    source,
                };
                let mut proxy = reqwest::Proxy::all(&settings.url).map_err(bad)?;
                if !settings.no_proxy.is_empty() {
                    proxy =
                        proxy.no_proxy(reqwest::NoProxy::from_string(&settings.no_proxy.join(",")));
                }
                builder.proxy(proxy)
            }
        };
        for cert in &self.roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        Ok(builder.build()?)
    }
}

impl Sender {
    pub fn new(
        guard: TargetGuard,
        timeout: Duration,
        ca_file: Option<&Path>,
        proxy: Option<&ProxySettings>,
    ) -> Result<Self, SenderError> {
        let mut roots = Vec::new();
        if let Some(path) = ca_file {
            let display = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| SenderError::ReadCa {
                path: display.clone(),
                source,
            })?;
            roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                SenderError::BadCa {
                    path: display,
                    source,
                }
            })?;
        }
        let settings = ClientSettings {
            guard: guard.clone(),
            timeout,
            proxy: proxy.cloned(),
            roots,
        };
        Ok(Self {
            client: settings.build(None)?,
            guard,
            timeout,
            proxied: proxy.is_some(),
            settings: Arc::new(settings),
            with_identity: Arc::default(),
        })
    }

    /// Checks that a client certificate and key can be used for mutual TLS
    /// (both parse, and the key suits the certificate's kind); the reason
    /// when not.
    pub fn check_identity(&self, tls: &ClientTls) -> Result<(), String> {
        let identity =
            reqwest::Identity::from_pem(tls.pem().as_bytes()).map_err(|e| describe_chain(&e))?;
        self.settings
            .build(Some(identity))
            .map(|_| ())
            .map_err(|e| match e {
                SenderError::Client(e) => describe_chain(&e),
                other => other.to_string(),
            })
    }

    /// The client for requests presenting `tls`, built on first use.
    fn client_for(&self, tls: Option<&ClientTls>) -> Result<reqwest::Client, String> {
        let Some(tls) = tls else {
            return Ok(self.client.clone());
        };
        let digest: [u8; 32] = sha2::Sha256::new()
            .chain_update(tls.cert.as_bytes())
            .chain_update([0])
            .chain_update(tls.key.as_bytes())
            .finalize()
            .into();
        let mut clients = self
            .with_identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&digest) {
            return Ok(client.clone());
        }
        let identity =
            reqwest::Identity::from_pem(tls.pem().as_bytes()).map_err(|e| describe_chain(&e))?;
        let client = self
            .settings
            .build(Some(identity))
            .map_err(|e| e.to_string())?;
        if clients.len() >= IDENTITY_CLIENTS {
            clients.clear();
        }
        clients.insert(digest, client.clone());
        Ok(client)
    }

    /// POSTs `body` (of `content_type`) with `headers` to `url` and reports
    /// what happened.
    pub async fn send(
        &self,
        url: &str,
        headers: &[(String, String)],
        content_type: &str,
        body: Bytes,
        tls: Option<&ClientTls>,
    ) -> Outcome {
        let started = Instant::now();
        let failed = |error: String| Outcome {
            success: false,
            response_code: None,
            response_time_ms: started.elapsed().as_millis() as u64,
            response_body: None,
            error: Some(error),
            retry_after: None,
        };
        // Literal addresses never reach the resolver: check them here.
        if let Err(e) = self.check_literal(url) {
            return failed(format!("refused: the URL {e}"));
        }
        if self.proxied
            && let Err(refused) = self.check_through_proxy(url).await
        {
            return failed(refused);
        }
        let client = match self.client_for(tls) {
            Ok(client) => client,
            Err(e) => return failed(format!("the client certificate cannot be used: {e}")),
        };
        let mut request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return failed(self.describe(&e)),
        };
        let status = response.status();
        let retry_after = match status.as_u16() {
            429 | 503 => response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, chrono::Utc::now())),
            _ => None,
        };
        let mut kept = Vec::new();
        while kept.len() < MAX_RESPONSE_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) => break,
                // The status is what counts; a broken body is noted only.
                Err(_) => break,
            }
        }
        let success = status.is_success();
        let error = (!success).then(|| {
            let reason = status.canonical_reason().unwrap_or("Unknown status");
            if status.is_redirection() {
                format!("{reason} (redirects are not followed)")
            } else {
                reason.to_string()
            }
        });
        Outcome {
            success,
            response_code: Some(status.as_u16()),
            response_time_ms: started.elapsed().as_millis() as u64,
            response_body: Some(truncate_body(&kept)),
            error,
            retry_after,
        }
    }

    fn check_literal(&self, url: &str) -> Result<(), TargetError> {
        let url = Url::parse(url).map_err(|e| TargetError::Malformed(e.to_string()))?;
        match url.host() {
            Some(Host::Ipv4(ip)) => self.guard.check_ip(ip.into()),
            Some(Host::Ipv6(ip)) => self.guard.check_ip(ip.into()),
            _ => Ok(()),
        }
    }

    /// Resolves the target's host as the guard would, for a request the
    /// proxy will connect: every address must be allowed.
    async fn check_through_proxy(&self, url: &str) -> Result<(), String> {
        let parsed = Url::parse(url).map_err(|e| format!("refused: the URL {e}"))?;
        let Some(Host::Domain(host)) = parsed.host() else {
            return Ok(());
        };
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| format!("connection failed: cannot resolve {host}: {e}"))?
            .collect();
        match found.iter().find(|a| self.guard.check_ip(a.ip()).is_err()) {
            Some(refused) => Err(format!(
                "refused: {host} resolves to {}, a non-public address",
                refused.ip()
            )),
            None if found.is_empty() => Err(format!("connection failed: {host} has no address")),
            None => Ok(()),
        }
    }

    /// A person-readable reason for a request that got no HTTP answer.
    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!(
                "timed out after {}",
                humantime::format_duration(self.timeout)
            );
        }
        // The innermost cause says the most ("Connection refused").
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let kind = if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        format!("{kind}: {cause}")
    }
}

/// An error and its causes, innermost last.
fn describe_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110), as a
/// delay from `now` (zero for a date already past).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Resolves with the system resolver, keeping only addresses the guard
/// allows (all of them for the operator's proxy).
struct GuardedResolver {
    guard: TargetGuard,
    proxy_host: Option<String>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let is_proxy = self
            .proxy_host
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(name.as_str()));
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if is_proxy {
                let addrs: Addrs = Box::new(found.into_iter());
                return Ok(addrs);
            }
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| guard.check_ip(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                let refused = found
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(
                    format!("refused: {host} resolves to {refused}, a non-public address").into(),
                );
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[tokio::test]
    async fn through_a_proxy_the_target_is_still_guarded() {
        // The proxy would resolve the name itself, so the sender resolves and
        // checks it first; nothing is sent (the proxy's port is closed, and
        // a connection attempt would say so instead).
        let proxy = ProxySettings {
            url: "http://127.0.0.1:9".into(),
            no_proxy: Vec::new(),
        };
        let sender = Sender::new(
            TargetGuard::default(),
            Duration::from_secs(1),
            None,
            Some(&proxy),
        )
        .unwrap();
        for url in ["https://localhost:8443/hook", "https://127.0.0.1:8443/hook"] {
            let outcome = sender
                .send(
                    url,
                    &[],
                    "application/json",
                    Bytes::from_static(b"{}"),
                    None,
                )
                .await;
            let error = outcome.error.unwrap();
            assert!(error.starts_with("refused: "), "{url}: {error}");
            assert!(error.contains("127.0.0.1"), "{url}: {error}");
        }
    }
}
