//! A minimal webhook receiver an integrator can copy.
//!
//! It verifies both signature styles hookgate sends, accepts either secret
//! during a rotation overlap, and ignores repeats of a delivery id (hookgate
//! delivers at least once). Run it next to a development gateway:
//!
//! ```sh
//! WEBHOOK_SECRET=whsec_... cargo run --example receiver -- 127.0.0.1:9000
//! # gateway side: HOOKGATE_ALLOW_HTTP=true HOOKGATE_ALLOW_TARGETS=127.0.0.0/8
//! # and an endpoint with "url": "http://127.0.0.1:9000/webhooks"
//! ```
//!
//! `WEBHOOK_SECRET` may list several secrets separated by commas (the old and
//! the new one while you roll a rotation out).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How many recent delivery ids are remembered for de-duplication.
const REMEMBERED: usize = 10_000;

#[derive(Clone)]
struct Receiver {
    secrets: Arc<Vec<String>>,
    seen: Arc<Mutex<(HashSet<String>, VecDeque<String>)>>,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// `X-Hookgate-Signature-256: sha256=<hex> [sha256=<hex>]`, keyed with the
/// secret string as shown.
fn hex_signature_ok(header: &str, secret: &str, body: &[u8]) -> bool {
    header.split(' ').any(|sig| {
        sig.strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|expected| {
                hmac(secret.as_bytes(), &[body])
                    .verify_slice(&expected)
                    .is_ok()
            })
    })
}

/// Standard Webhooks: `webhook-signature: v1,<base64> [v1,<base64>]` over
/// `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the decoded secret.
fn standard_signature_ok(headers: &HeaderMap, secret: &str, body: &[u8]) -> bool {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sigs)) = (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    ) else {
        return false;
    };
    // Refuse replays of old requests (5 minutes either way).
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= 300);
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|s| B64.decode(s).ok())
    else {
        return false;
    };
    fresh
        && sigs.split(' ').any(|sig| {
            sig.strip_prefix("v1,")
                .and_then(|b| B64.decode(b).ok())
                .is_some_and(|expected| {
                    hmac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])
                        .verify_slice(&expected)
                        .is_ok()
                })
        })
}

async fn webhook(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let hex_header = headers
        .get("x-hookgate-signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let valid = rx.secrets.iter().any(|s| {
        hex_signature_ok(hex_header, s, &body) && standard_signature_ok(&headers, s, &body)
    });
    if !valid {
        return StatusCode::UNAUTHORIZED;
    }
    let delivery = headers
        .get("x-hookgate-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    {
        let mut seen = rx.seen.lock().unwrap();
        if !seen.0.insert(delivery.clone()) {
            println!("duplicate delivery {delivery}: already handled");
            return StatusCode::OK;
        }
        seen.1.push_back(delivery.clone());
        if seen.1.len() > REMEMBERED {
            let oldest = seen.1.pop_front().unwrap();
            seen.0.remove(&oldest);
        }
    }
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    println!("{delivery}: {} {}", event["type"], event["data"]);
    // Answer fast; do slow work asynchronously.
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let secrets: Vec<String> = std::env::var("WEBHOOK_SECRET")
        .expect("set WEBHOOK_SECRET to the endpoint's whsec_ secret")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let app = axum::Router::new()
        .route("/webhooks", post(webhook))
        .with_state(Receiver {
            secrets: Arc::new(secrets),
            seen: Arc::default(),
        });
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    println!("receiver listening on http://{addr}/webhooks");
    axum::serve(listener, app).await.unwrap();
}
