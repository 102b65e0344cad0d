//! Several gateways on one PostgreSQL database (docs/cluster.md): a change
//! through one is obeyed by the other at once, an endpoint's in-flight limit
//! holds over both together, and one killed under load loses nothing. Each
//! test makes a database of its own on the server
//! `HOOKGATE_TEST_DATABASE_URL` names, whatever the backend switch says.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::utils::assert::all_arrive_within;
use crate::utils::verify::verify_hex;
use crate::utils::*;

const LONG: Duration = Duration::from_secs(30);
/// How soon a change through one gateway is obeyed by the others.
const WITHIN: Duration = Duration::from_secs(1);

/// A gateway on `database`, delivering to the test receiver.
fn gateway_on(database: &str, delivery_timeout: &str) -> Gateway {
    Gateway::builder()
        .delivering("0ms,200ms,400ms,800ms,1s,1s,1s,1s")
        .database_url(database)
        .env("HOOKGATE_DELIVERY_TIMEOUT", delivery_timeout)
        .start()
}

/// A change made through gateway A (secret rotated, plugin detached,
/// endpoint paused, endpoint deleted) is obeyed by gateway B in every
/// delivery B makes from one second after it on (B keeps what its
/// deliveries read for at most `hookgate::store::RECENT`). B started
/// first; A joins and, by its settings, claims no work for minutes, so B
/// makes every delivery.
#[tokio::test]
async fn a_change_through_one_gateway_is_obeyed_by_the_other() {
    let database = hookgate_test_support::database::fresh();
    let b = gateway_on(&database, "15s");
    let rx = Receiver::start().await;
    let (_, token) = b.tenant_with_key("acme").await;
    b.add_event_types(&token, &["booking.created"]).await;
    let plugin = b.plugin_id(&token, "redact").await;
    let hook = b
        .create_webhook_with(
            &token,
            json!({
                "url": rx.url(),
                "events": ["booking.created"],
                "plugins": [{"plugin_id": plugin, "config": {"remove": ["/data/card"]}}],
            }),
        )
        .await;
    let id = hook["id"].as_str().unwrap().to_string();
    let first_secret = hook["secret"].as_str().unwrap().to_string();
    // A joins: it waits the longest attempt (its delivery timeout, 10 min)
    // before its first claim.
    let a = gateway_on(&database, "600s");

    let data = json!({"booking": {"id": "bk_1"}, "card": "4111"});
    b.publish(&token, "booking.created", data.clone()).await;
    let req = rx.wait_for(1, LONG).await[0].clone();
    assert_eq!(
        req.json()["data"],
        json!({"booking": {"id": "bk_1"}}),
        "redacted by B's plugin"
    );

    // Secret rotated through A: B signs the next delivery with the new one.
    let (status, rotated) = a
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["data"]["webhook"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_secret, first_secret);
    tokio::time::sleep(WITHIN).await;
    b.publish(&token, "booking.created", data.clone()).await;
    let req = rx.wait_for(2, LONG).await[1].clone();
    assert!(
        verify_hex(
            req.header("x-hookgate-signature-256"),
            &new_secret,
            &req.body
        ),
        "B signed with the secret rotated through A"
    );

    // Plugin detached through A: B sends the event whole.
    let (status, body) = a
        .patch(
            &format!("/v1/webhooks/{id}"),
            &token,
            json!({"plugins": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(WITHIN).await;
    b.publish(&token, "booking.created", data.clone()).await;
    let req = rx.wait_for(3, LONG).await[2].clone();
    assert_eq!(req.json()["data"], data, "no plugin on B's delivery");

    // Paused through A: B skips the next one.
    let (status, body) = a
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/pause"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(WITHIN).await;
    let paused = b.publish(&token, "booking.created", data.clone()).await;
    let paused_id = paused["id"].as_str().unwrap().to_string();
    b.wait_for_deliveries(&token, &id, LONG, |logs| {
        logs.iter()
            .any(|d| d["event_id"] == paused_id.as_str() && d["status"] == "skipped")
    })
    .await;

    // Deleted through A: B's next publish fans out to nothing.
    let (status, body) = a.delete(&format!("/v1/webhooks/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let gone = b.publish(&token, "booking.created", data.clone()).await;
    assert_eq!(
        gone["deliveries"].as_array().map(Vec::len),
        Some(0),
        "{gone}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 3, "nothing sent after the pause");
}

/// An endpoint's `max_in_flight` holds over both gateways together: with
/// a slow receiver and a backlog, never more requests at once than it.
#[tokio::test]
async fn an_endpoints_in_flight_limit_holds_over_both_gateways() {
    let database = hookgate_test_support::database::fresh();
    let a = gateway_on(&database, "2s");
    let b = gateway_on(&database, "2s");
    let rx = Receiver::start().await;
    rx.delay(Duration::from_millis(100));
    let (_, token) = a.tenant_with_key("acme").await;
    a.add_event_types(&token, &["a.b"]).await;
    let hook = a
        .create_webhook_with(
            &token,
            json!({"url": rx.url(), "events": ["a.b"], "max_in_flight": 3}),
        )
        .await;
    let id = hook["id"].as_str().unwrap().to_string();
    // B joined A: it claims work once an attempt of A's could have ended
    // (2 s delivery timeout and 1 s plugin deadline).
    tokio::time::sleep(Duration::from_secs(4)).await;
    for i in 0..40 {
        let gw = if i % 2 == 0 { &a } else { &b };
        gw.publish(&token, "a.b", json!({ "i": i })).await;
    }
    rx.wait_for(40, Duration::from_secs(60)).await;
    a.wait_for_deliveries(&token, &id, LONG, |logs| {
        logs.len() == 40 && logs.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let most = rx.max_concurrent();
    assert!(most <= 3, "{most} requests at once, past the endpoint's 3");
}

/// Two gateways share a stream of publishes; one is SIGKILLed mid-way, and
/// the other delivers every event either accepted, the dead one's claimed
/// deliveries once their leases ran out.
#[tokio::test]
async fn one_of_two_gateways_killed_under_load_loses_nothing() {
    let database = hookgate_test_support::database::fresh();
    let a = gateway_on(&database, "2s");
    let b = gateway_on(&database, "2s");
    let rx = Receiver::start().await;
    rx.delay(Duration::from_millis(10));
    let (_, token) = a.tenant_with_key("acme").await;
    a.add_event_types(&token, &["a.b"]).await;
    a.create_webhook(&token, &rx.url(), &["a.b"]).await;

    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let producers: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .enumerate()
        .map(|(p, gw)| gw.spawn_producer(&token, &format!("p{p}"), 150, accepted.clone()))
        .collect();
    while accepted.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = a.kill();
    for p in producers {
        p.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() >= 300,
        "B kept accepting: {}",
        accepted.len()
    );
    all_arrive_within(Duration::from_secs(90), &rx, &accepted).await;
}

/// `examples/cluster.sh`, the README's example of two gateways on one
/// database, runs to its end with this build's binaries.
#[test]
fn the_cluster_example_runs() {
    let gateway = std::path::Path::new(env!("CARGO_BIN_EXE_hookgate"));
    let receiver = gateway.with_file_name("examples").join("receiver");
    if !receiver.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = std::process::Command::new(cargo)
            .current_dir(hookgate_test_support::repo_root())
            .args(["build", "--quiet", "--example", "receiver"])
            .status()
            .expect("run cargo");
        assert!(built.success(), "building the example receiver failed");
    }
    let out = std::process::Command::new("bash")
        .arg(hookgate_test_support::repo_root().join("examples/cluster.sh"))
        .env("HOOKGATE_BIN", gateway)
        .env("RECEIVER_BIN", &receiver)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "examples/cluster.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("B delivered alone after A stopped"),
        "{stdout}"
    );
    for id in ["bk_1", "bk_2", "bk_3"] {
        assert!(
            stdout.contains(&format!("\"id\":\"{id}\"")),
            "{id} not delivered:\n{stdout}"
        );
    }
}
