//! The sending side: producers publishing to the gateway, and the plain
//! reqwest baseline that drives the sink directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::sink::Tally;
use crate::verify::sign_standard;

/// The `data` of every bench event: a booking padded to about `size` bytes
/// of envelope.
pub fn event_data(size: usize) -> String {
    let base = r#"{"booking":{"id":"bk_42","status":"confirmed","total":1250.5,"currency":"EUR","customer":{"name":"Ada Lovelace","email":"ada@example.com","phone":"+44 20 7946 0000"},"trip":{"name":"Lisbon weekend","start_date":"2026-12-04"},"notes":""}}"#;
    // The envelope adds id, type and created_at: about 90 bytes.
    let pad = size.saturating_sub(base.len() + 90);
    base.replacen(
        r#""notes":"""#,
        &format!(r#""notes":"{}""#, "x".repeat(pad)),
        1,
    )
}

pub fn publish_body(index: usize, data: &str) -> String {
    format!(r#"{{"id":"evt_b{index}","type":"booking.created","data":{data}}}"#)
}

/// What a publishing run measured.
pub struct Published {
    pub accepted: usize,
    pub elapsed: Duration,
    /// Accept latency of each successful publish, µs, sorted.
    pub latencies: Vec<u32>,
    /// Publish attempts that failed (connection refused, 5xx) and were retried.
    pub retried: usize,
}

pub struct Publisher {
    /// The gateways to publish to: each client starts at its own and moves
    /// to the next when a publish fails.
    pub bases: Vec<Arc<std::sync::RwLock<String>>>,
    pub token: String,
    pub clients: usize,
    /// Events per second in all; `None`: as fast as the gateway accepts.
    pub rate: Option<f64>,
}

impl Publisher {
    /// Publishes events `range` with the producer's own ids, retrying each
    /// (same id, so never twice) until the gateway accepts it.
    pub async fn run(
        &self,
        events: std::ops::Range<usize>,
        data: &str,
        tally: &Arc<Tally>,
    ) -> Published {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.clients)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let next = Arc::new(AtomicUsize::new(events.start));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..self.clients {
            let (client, next, tally) = (client.clone(), next.clone(), tally.clone());
            let (bases, token, rate, data) = (
                self.bases.clone(),
                self.token.clone(),
                self.rate,
                data.to_string(),
            );
            let end = events.end;
            let first = events.start;
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut retried = 0;
                let mut at = c % bases.len();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    if let Some(rate) = rate {
                        let due = start + Duration::from_secs_f64((i - first) as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let body = publish_body(i, &data);
                    loop {
                        let url = format!("{}/v1/events", bases[at].read().unwrap());
                        let sent = Instant::now();
                        tally.published_at[i].store(tally.now_ns().max(1), Ordering::Relaxed);
                        let resp = client
                            .post(url)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        match resp {
                            Ok(r) if r.status().is_success() => {
                                latencies.push(sent.elapsed().as_micros() as u32);
                                break;
                            }
                            Ok(r) if r.status().is_client_error() => {
                                panic!(
                                    "publish refused: {} {}",
                                    r.status(),
                                    r.text().await.unwrap_or_default()
                                )
                            }
                            _ => {
                                retried += 1;
                                at = (at + 1) % bases.len();
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                }
                (latencies, retried)
            }));
        }
        let mut latencies = Vec::new();
        let mut retried = 0;
        for t in tasks {
            let (l, r) = t.await.unwrap();
            latencies.extend(l);
            retried += r;
        }
        latencies.sort_unstable();
        Published {
            accepted: latencies.len(),
            elapsed: start.elapsed(),
            latencies,
            retried,
        }
    }
}

/// Sends `count` signed envelopes straight to the sink's `/ceiling/{k}`
/// paths of endpoints `targets` (signed with `keys[k]`, as the sink checks)
/// with `concurrency` requests in flight: what the same transport can do
/// with no gateway in between. Returns the time taken.
pub async fn ceiling(
    client: reqwest::Client,
    sink_url: impl Fn(&str) -> String,
    keys: &[Vec<u8>],
    targets: std::ops::Range<usize>,
    count: usize,
    concurrency: usize,
    data: &str,
) -> Duration {
    let endpoints = targets.len();
    let urls: Arc<Vec<String>> = Arc::new(
        targets
            .clone()
            .map(|k| sink_url(&format!("/ceiling/{k}")))
            .collect(),
    );
    let keys = Arc::new(keys[targets].to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, urls, keys, next) = (client.clone(), urls.clone(), keys.clone(), next.clone());
            let data = data.to_string();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let (event, k) = (n / endpoints, n % endpoints);
                    // Built per request, as the gateway builds each delivery.
                    let body = format!(
                        r#"{{"id":"evt_b{event}","type":"booking.created","created_at":"2026-11-23T18:00:00.000Z","data":{data}}}"#
                    );
                    let id = format!("dlv_{n}");
                    let ts = chrono::Utc::now().timestamp().to_string();
                    let signature = sign_standard(&keys[k], &id, &ts, body.as_bytes());
                    let resp = client
                        .post(&urls[k])
                        .header("content-type", "application/json")
                        .header("webhook-id", id)
                        .header("webhook-timestamp", ts)
                        .header("webhook-signature", signature)
                        .body(body)
                        .send()
                        .await
                        .expect("ceiling request");
                    assert!(resp.status().is_success(), "ceiling: {}", resp.status());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}
