//! Crash safety (docs/product.md, "Delivery": at-least-once): SIGKILL under
//! load loses nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::utils::assert::all_arrive_within;
use crate::utils::*;

#[tokio::test]
async fn every_accepted_event_is_delivered_after_sigkill() {
    let gw = Gateway::builder()
        .delivering("0ms,100ms,200ms,400ms")
        .start();
    let rx = Receiver::start().await;
    rx.delay(Duration::from_millis(20));
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["a.b"]).await;
    gw.create_webhook(&token, &rx.url(), &["a.b"]).await;

    // Eight producers publish as fast as they can; only 202s count as accepted.
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let producers: Vec<_> = (0..8)
        .map(|p| gw.spawn_producer(&token, &format!("p{p}"), 200, accepted.clone()))
        .collect();
    // Kill mid-stream, with publishes and deliveries in flight.
    while accepted.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (dir, _guard) = gw.kill();
    for p in producers {
        p.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 300);

    let gw = Gateway::builder()
        .delivering("0ms,100ms,200ms,400ms")
        .data_dir(&dir)
        .start();
    all_arrive_within(Duration::from_secs(60), &rx, &accepted).await;
    drop(gw);
}

/// An attempt's endpoint slot is freed when the receiver answers, and its
/// result is made durable after: a gateway killed in between (here, just
/// after its receiver answered the tenth request) still has those entries
/// queued, and sends them again when it comes back. Nothing is lost; the
/// ones whose result was not yet durable arrive twice.
#[tokio::test]
async fn a_kill_between_an_answer_and_its_record_loses_nothing() {
    let gw = Gateway::builder().delivering("0ms,100ms,200ms").start();
    let rx = Receiver::start().await;
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["a.b"]).await;
    let (wh, _) = gw.create_webhook(&token, &rx.url(), &["a.b"]).await;
    // Four at a time, each answered 50 ms after it arrives: the 40 take
    // ten rounds, and the kill lands just after a round of answers reached
    // the gateway, while their results are being written.
    let (status, body) = gw
        .patch(
            &format!("/v1/webhooks/{wh}"),
            &token,
            json!({"max_in_flight": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    rx.delay(Duration::from_millis(50));
    let mut accepted = HashSet::new();
    for i in 0..40 {
        let event = gw.publish(&token, "a.b", json!({"i": i})).await;
        accepted.insert(event["id"].as_str().unwrap().to_string());
    }
    rx.wait_for(10, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(51)).await;
    let (dir, _guard) = gw.kill();
    let before = rx.received().len();
    assert!(before < 40, "everything arrived before the kill");

    let gw = Gateway::builder()
        .delivering("0ms,100ms,200ms")
        .data_dir(&dir)
        .start();
    all_arrive_within(Duration::from_secs(60), &rx, &accepted).await;
    drop(gw);
}
