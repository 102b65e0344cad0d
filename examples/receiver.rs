//! A minimal webhook receiver an integrator can copy.
//!
//! It verifies both signature styles hookgate sends (with the checks of
//! `tests/support/src/verify.rs`, which the tests use too), accepts either secret
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
use hookgate_test_support::verify;

/// How many recent delivery ids are remembered for de-duplication.
const REMEMBERED: usize = 10_000;

#[derive(Clone)]
struct Receiver {
    secrets: Arc<Vec<String>>,
    seen: Arc<Mutex<(HashSet<String>, VecDeque<String>)>>,
}

/// Standard Webhooks' timestamp must be recent: refuse replays of old
/// requests (5 minutes either way).
fn fresh(headers: &HeaderMap) -> bool {
    headers
        .get("webhook-timestamp")
        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
        .is_some_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= 300)
}

/// Both signatures must be the secret's: `X-Hookgate-Signature-256` (hex,
/// keyed with the secret string) and Standard Webhooks' `webhook-signature`
/// (keyed with the decoded `whsec_` secret).
fn signed_with(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let hex_header = headers
        .get("x-hookgate-signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(key) = verify::standard_key(secret) else {
        return false;
    };
    verify::verify_hex(hex_header, secret, body) && verify::verify_standard(&key, headers, body)
}

async fn webhook(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let valid = rx.secrets.iter().any(|s| signed_with(s, &headers, &body));
    if !valid || !fresh(&headers) {
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
