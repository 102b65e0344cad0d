//! Delivery end to end: real HTTPS receivers, signatures checked by an
//! independent implementation, retries, pause/resume/delete, isolation.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::utils::verify::{hex_signature, standard_signature};
use crate::utils::*;

const LONG: Duration = Duration::from_secs(15);

/// A delivering gateway, a receiver, a tenant with `types`, and a webhook on
/// all of them. Returns (gateway, receiver, token, webhook id, secret).
async fn setup(schedule: &str, types: &[&str]) -> (Gateway, Receiver, String, String, String) {
    let gw = Gateway::builder().delivering(schedule).start();
    let rx = Receiver::start().await;
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, types).await;
    let (id, secret) = gw.create_webhook(&token, &rx.url(), types).await;
    (gw, rx, token, id, secret)
}

#[tokio::test]
async fn deliveries_are_signed_and_verify_independently() {
    let (gw, rx, token, wh, secret) = setup("0ms", &["booking.created"]).await;
    let data = json!({"zeta": 1.0, "alpha": {"price": 85000.5, "tags": ["a", "b"]}, "n": null});
    let event = gw.publish(&token, "booking.created", data).await;
    let got = rx.wait_for(1, LONG).await;
    let req = &got[0];

    // The body is the envelope, compact, and re-serialising it gives the
    // same bytes (what Menon's Node snippet does, docs/platforms.md).
    let parsed = req.json();
    assert_eq!(parsed["id"], event["id"]);
    assert_eq!(parsed["type"], "booking.created");
    assert_eq!(parsed["data"]["zeta"], 1);
    assert_eq!(
        serde_json::to_string(&parsed).unwrap().as_bytes(),
        &req.body[..]
    );
    let keys: Vec<&String> = parsed.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "type", "created_at", "data"]);

    assert_eq!(req.header("x-hookgate-event"), "booking.created");
    let delivery = req.header("x-hookgate-delivery").to_string();
    assert!(delivery.starts_with("dlv_"));
    assert_eq!(
        req.header("x-hookgate-signature-256"),
        hex_signature(&secret, &req.body)
    );
    assert_eq!(req.header("webhook-id"), delivery);
    let ts = req.header("webhook-timestamp");
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..30).contains(&age));
    assert_eq!(
        req.header("webhook-signature"),
        standard_signature(&secret, &delivery, ts, &req.body)
    );
    assert!(req.header("user-agent").starts_with("hookgate/"));
    assert_eq!(req.header("content-type"), "application/json");

    // The log and the endpoint say so too.
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| {
            l.first().is_some_and(|l| l["status"] == "delivered")
        })
        .await;
    assert_eq!(logs[0]["id"], delivery.as_str());
    assert_eq!(logs[0]["response_code"], 200);
    assert_eq!(logs[0]["event_id"], event["id"]);
    assert!(logs[0]["delivered_at"].is_string());
    let (_, body) = gw.get(&format!("/v1/webhooks/{wh}"), &token).await;
    assert_eq!(
        body["data"]["webhook"]["last_delivery"]["response_code"],
        200
    );
    assert_eq!(body["data"]["webhook"]["last_delivery"]["success"], true);
    let (_, body) = gw
        .get(
            &format!("/v1/events/{}", event["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(
        body["data"]["event"]["deliveries"][0]["status"],
        "delivered"
    );
    assert_eq!(body["data"]["event"]["data"]["alpha"]["price"], 85000.5);
}

#[tokio::test]
async fn tenant_header_names_play_either_platform() {
    let gw = Gateway::builder().delivering("0ms").start();
    let rx = Receiver::start().await;
    let tenant = gw.create_tenant("mogu").await;
    let (status, body) = gw
        .patch(
            &format!("/v1/tenants/{tenant}"),
            ADMIN_TOKEN,
            json!({"headers": {"event": "X-Mogu-Event", "delivery": "X-Mogu-Delivery", "signature": "X-Mogu-Signature-256"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = gw.create_key(&tenant, &["publish", "endpoints"]).await;
    gw.add_event_types(&token, &["trip.created"]).await;
    let (_, secret) = gw.create_webhook(&token, &rx.url(), &["trip.*"]).await;
    gw.publish(&token, "trip.created", json!({"trip": 1})).await;
    let req = rx.wait_for(1, LONG).await[0].clone();
    assert_eq!(req.header("x-mogu-event"), "trip.created");
    assert!(req.header("x-mogu-delivery").starts_with("dlv_"));
    assert_eq!(
        req.header("x-mogu-signature-256"),
        hex_signature(&secret, &req.body)
    );
    assert!(req.headers.get("x-hookgate-event").is_none());

    // Menon's single header.
    gw.patch(
        &format!("/v1/tenants/{tenant}"),
        ADMIN_TOKEN,
        json!({"headers": {"signature": "X-Menon-Signature"}}),
    )
    .await;
    gw.publish(&token, "trip.created", json!({"trip": 2})).await;
    let req = rx.wait_for(2, LONG).await[1].clone();
    assert_eq!(
        req.header("x-menon-signature"),
        hex_signature(&secret, &req.body)
    );
    assert_eq!(req.header("x-hookgate-event"), "trip.created");

    // Names that would clash with the gateway's own headers are refused.
    let (status, body) = gw
        .patch(
            &format!("/v1/tenants/{tenant}"),
            ADMIN_TOKEN,
            json!({"headers": {"signature": "webhook-signature"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "headers.signature");
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_until_the_overlap_ends() {
    let gw = Gateway::builder()
        .delivering("0ms")
        .env("HOOKGATE_ROTATION_OVERLAP", "2s")
        .start();
    let rx = Receiver::start().await;
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["a.b"]).await;
    let (wh, old) = gw.create_webhook(&token, &rx.url(), &["a.b"]).await;
    let (_, body) = gw
        .post(
            &format!("/v1/webhooks/{wh}/rotate-secret"),
            &token,
            json!({}),
        )
        .await;
    let new = body["data"]["webhook"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, old);

    gw.publish(&token, "a.b", json!({})).await;
    let req = rx.wait_for(1, LONG).await[0].clone();
    let expected = format!(
        "{} {}",
        hex_signature(&new, &req.body),
        hex_signature(&old, &req.body)
    );
    assert_eq!(req.header("x-hookgate-signature-256"), expected);
    let (id, ts) = (req.header("webhook-id"), req.header("webhook-timestamp"));
    assert_eq!(
        req.header("webhook-signature"),
        format!(
            "{} {}",
            standard_signature(&new, id, ts, &req.body),
            standard_signature(&old, id, ts, &req.body)
        )
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;
    gw.publish(&token, "a.b", json!({})).await;
    let req = rx.wait_for(2, LONG).await[1].clone();
    assert_eq!(
        req.header("x-hookgate-signature-256"),
        hex_signature(&new, &req.body)
    );
    let (_, body) = gw.get(&format!("/v1/webhooks/{wh}"), &token).await;
    assert!(
        body["data"]["webhook"]
            .get("previous_secret_expires_at")
            .is_none()
    );
}

#[tokio::test]
async fn full_retry_schedule_then_failed_and_endpoint_disabled() {
    let (gw, rx, token, wh, _) = setup("0ms,100ms,200ms,300ms", &["a.b"]).await;
    rx.respond_with(500);
    gw.publish(&token, "a.b", json!({"x": 1})).await;
    let got = rx.wait_for(4, LONG).await;
    // The delivery id is stable across retries, and the gaps follow the schedule.
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.header("x-hookgate-delivery"))
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    for (i, min) in [100u64, 200, 300].iter().enumerate() {
        let gap = got[i + 1].at - got[i].at;
        assert!(gap >= Duration::from_millis(min - 10), "gap {i}: {gap:?}");
    }
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| {
            l.first()
                .is_some_and(|l| l["status"] == "failed" && l["next_retry"].is_null())
        })
        .await;
    assert_eq!(logs[0]["retry_count"], 4);
    assert_eq!(logs[0]["response_code"], 500);
    assert_eq!(logs[0]["error"], "Internal Server Error");
    let (_, body) = gw
        .get(
            &format!(
                "/v1/webhooks/{wh}/deliveries/{}",
                logs[0]["id"].as_str().unwrap()
            ),
            &token,
        )
        .await;
    let attempts = body["data"]["delivery"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    assert!(
        attempts
            .iter()
            .all(|a| a["response_code"] == 500 && a["id"].as_str().unwrap().starts_with("att_"))
    );

    let (_, body) = gw.get(&format!("/v1/webhooks/{wh}"), &token).await;
    assert_eq!(body["data"]["webhook"]["status"], "disabled");
    assert!(
        body["data"]["webhook"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("4 times")
    );
    assert_eq!(
        rx.received().len(),
        4,
        "nothing more after the last attempt"
    );

    // Disabled: new events are logged as skipped, not sent.
    gw.publish(&token, "a.b", json!({"x": 2})).await;
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| l.len() == 2)
        .await;
    assert_eq!(logs[0]["status"], "skipped");

    // Resume re-enables it.
    rx.respond_with(200);
    let (_, body) = gw
        .post(&format!("/v1/webhooks/{wh}/resume"), &token, json!({}))
        .await;
    assert_eq!(body["data"]["webhook"]["status"], "active");
    assert!(body["data"]["webhook"].get("disabled_reason").is_none());
    gw.publish(&token, "a.b", json!({"x": 3})).await;
    let got = rx.wait_for(5, LONG).await;
    assert_eq!(got[4].json()["data"]["x"], 3);
}

#[tokio::test]
async fn a_failure_then_success_is_delivered_with_one_retry() {
    let (gw, rx, token, wh, _) = setup("0ms,200ms,200ms", &["a.b"]).await;
    rx.respond_with(503);
    gw.publish(&token, "a.b", json!({})).await;
    rx.wait_for(1, LONG).await;
    rx.respond_with(204);
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| {
            l.first().is_some_and(|l| l["status"] == "delivered")
        })
        .await;
    assert_eq!(logs[0]["retry_count"], 1);
    assert_eq!(logs[0]["response_code"], 204);
    let (_, body) = gw.get(&format!("/v1/webhooks/{wh}"), &token).await;
    assert_eq!(body["data"]["webhook"]["status"], "active");
}

#[tokio::test]
async fn pause_skips_events_for_good_test_still_goes_and_delete_stops_retries() {
    let (gw, rx, token, wh, _) = setup("0ms,300ms,300ms,300ms", &["a.b"]).await;
    let (_, body) = gw
        .post(&format!("/v1/webhooks/{wh}/pause"), &token, json!({}))
        .await;
    assert_eq!(body["data"]["webhook"]["status"], "paused");
    gw.publish(&token, "a.b", json!({"during": "pause"})).await;
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| l.len() == 1)
        .await;
    assert_eq!(logs[0]["status"], "skipped");

    // A test event goes out while paused, answered synchronously.
    let (status, body) = gw
        .post(&format!("/v1/webhooks/{wh}/test"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"]["success"], true);
    assert_eq!(body["data"]["result"]["response_code"], 200);
    assert_eq!(body["data"]["delivery"]["test"], true);
    assert_eq!(
        body["data"]["log"], body["data"]["delivery"],
        "the older name"
    );
    let got = rx.wait_for(1, LONG).await;
    assert_eq!(got[0].header("x-hookgate-event"), "webhook.test");

    // Resume: new events flow, the one from the pause never comes.
    gw.post(&format!("/v1/webhooks/{wh}/resume"), &token, json!({}))
        .await;
    gw.publish(&token, "a.b", json!({"during": "active"})).await;
    let got = rx.wait_for(2, LONG).await;
    assert_eq!(got[1].json()["data"]["during"], "active");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 2);

    // Delete drops pending retries at once.
    rx.respond_with(500);
    gw.publish(&token, "a.b", json!({"doomed": true})).await;
    rx.wait_for(3, LONG).await;
    let (status, _) = gw.delete(&format!("/v1/webhooks/{wh}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rx.received().len(), 3, "no retry after delete");
}

#[tokio::test]
async fn publishing_the_same_id_or_idempotency_key_twice_creates_nothing() {
    let (gw, rx, token, wh, _) = setup("0ms", &["a.b"]).await;
    let body = json!({"type": "a.b", "data": {"n": 1}, "id": "order-42"});
    let (s1, first) = gw.post("/v1/events", &token, body.clone()).await;
    let (s2, second) = gw.post("/v1/events", &token, body).await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    assert_eq!(s2, StatusCode::OK);
    assert_eq!(second["data"]["duplicate"], true);
    assert_eq!(first["data"]["event"]["id"], "order-42");
    assert_eq!(
        first["data"]["event"]["created_at"],
        second["data"]["event"]["created_at"]
    );

    let send = |n: i64| {
        gw.client
            .post(gw.url("/v1/events"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "key-7")
            .json(&json!({"type": "a.b", "data": {"n": n}}))
            .send()
    };
    let r1 = send(2).await.unwrap();
    assert_eq!(r1.status(), StatusCode::ACCEPTED);
    let e1: serde_json::Value = r1.json().await.unwrap();
    let r2 = send(3).await.unwrap();
    assert_eq!(r2.status(), StatusCode::OK);
    let e2: serde_json::Value = r2.json().await.unwrap();
    assert_eq!(e1["data"]["event"]["id"], e2["data"]["event"]["id"]);
    assert_eq!(
        e2["data"]["event"]["data"]["n"], 2,
        "the first event is returned"
    );

    rx.wait_for(2, LONG).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 2);
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| l.len() == 2)
        .await;
    assert_eq!(logs.len(), 2);

    // Bad producer ids are refused.
    let (status, body) = gw
        .post(
            "/v1/events",
            &token,
            json!({"type": "a.b", "data": {}, "id": "has space"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "id");
    let (status, body) = gw
        .post(
            "/v1/events",
            &token,
            json!({"type": "nope.nope", "data": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "type");
}

#[tokio::test]
async fn manual_retry_redelivers_now_with_the_same_delivery_id() {
    let (gw, rx, token, wh, _) = setup("0ms", &["a.b"]).await;
    rx.respond_with(502);
    gw.publish(&token, "a.b", json!({})).await;
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| {
            l.first().is_some_and(|l| l["status"] == "failed")
        })
        .await;
    let log_id = logs[0]["id"].as_str().unwrap().to_string();
    rx.respond_with(200);
    let (status, body) = gw
        .post(
            &format!("/v1/webhooks/{wh}/deliveries/{log_id}/retry"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = &body["data"]["delivery"];
    assert_eq!(log["status"], "delivered");
    assert_eq!(log["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(log["attempts"][1]["manual"], true);
    let got = rx.wait_for(2, LONG).await;
    assert_eq!(
        got[0].header("x-hookgate-delivery"),
        got[1].header("x-hookgate-delivery")
    );

    let (status, _) = gw
        .call(
            Method::POST,
            &format!("/v1/webhooks/{wh}/deliveries/dlv_nope/retry"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn test_send_reports_the_receivers_answer_and_uses_catalog_examples() {
    let (gw, rx, token, wh, _) = setup("0ms", &["a.b"]).await;
    gw.post(
        "/v1/event-types",
        &token,
        json!({"name": "listing.created", "example": {"listing": {"id": "lst_xyz"}}}),
    )
    .await;
    rx.respond_with(500);
    let (status, body) = gw
        .post(
            &format!("/v1/webhooks/{wh}/test"),
            &token,
            json!({"event_type": "listing.created"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"]["success"], false);
    assert_eq!(body["data"]["result"]["response_code"], 500);
    let req = rx.wait_for(1, LONG).await[0].clone();
    assert_eq!(req.json()["data"]["listing"]["id"], "lst_xyz");
    let (_, body) = gw.get(&format!("/v1/webhooks/{wh}"), &token).await;
    assert_eq!(
        body["data"]["webhook"]["last_delivery"]["response_code"],
        500
    );
    // A test never disables the endpoint.
    assert_eq!(body["data"]["webhook"]["status"], "active");
    let (status, body) = gw
        .post(
            &format!("/v1/webhooks/{wh}/test"),
            &token,
            json!({"event_type": "nope.x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "event_type");
}

#[tokio::test]
async fn a_slow_endpoint_does_not_delay_a_fast_one() {
    let gw = Gateway::builder()
        .delivering("0ms")
        .env("HOOKGATE_WORKERS", "8")
        .env("HOOKGATE_ENDPOINT_CONCURRENCY", "2")
        .start();
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    slow.delay(Duration::from_secs(5));
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["a.b"]).await;
    gw.create_webhook(&token, &slow.url(), &["a.b"]).await;
    gw.create_webhook(&token, &fast.url(), &["a.b"]).await;
    for i in 0..30 {
        gw.publish(&token, "a.b", json!({"i": i})).await;
    }
    // All 30 reach the fast receiver while the slow one holds its 2 workers.
    fast.wait_for(30, Duration::from_secs(4)).await;
    assert!(slow.received().is_empty());
}

#[tokio::test]
async fn private_addresses_are_refused_at_delivery_time() {
    // Saved while the operator allowed loopback...
    let gw = Gateway::builder().delivering("0ms").start();
    let rx = Receiver::start().await;
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["a.b"]).await;
    let (by_ip, _) = gw.create_webhook(&token, &rx.url(), &["a.b"]).await;
    let (by_name, _) = gw.create_webhook(&token, &rx.url_by_name(), &["a.b"]).await;
    let (dir, _guard) = gw.stop();
    // ...then the operator closes the hole: nothing reaches loopback, by
    // address or by a name resolving to it.
    let gw = Gateway::builder()
        .data_dir(&dir)
        .env("HOOKGATE_CA_FILE", test_ca().ca_file.to_str().unwrap())
        .env("HOOKGATE_RETRY_SCHEDULE", "0ms")
        .start();
    gw.publish(&token, "a.b", json!({})).await;
    for wh in [&by_ip, &by_name] {
        let logs = gw
            .wait_for_deliveries(&token, wh, LONG, |l| {
                l.first().is_some_and(|l| l["status"] == "failed")
            })
            .await;
        let error = logs[0]["error"].as_str().unwrap();
        assert!(
            error.contains("refused") && error.contains("127.0.0.1"),
            "{error}"
        );
    }
    assert!(rx.received().is_empty());
}

#[tokio::test]
async fn deliveries_filter_and_paginate() {
    let (gw, rx, token, wh, _) = setup("0ms", &["a.b", "c.d"]).await;
    for i in 0..3 {
        gw.publish(&token, "a.b", json!({"i": i})).await;
    }
    rx.wait_for(3, LONG).await;
    rx.respond_with(500);
    gw.publish(&token, "c.d", json!({})).await;
    gw.wait_for_deliveries(&token, &wh, LONG, |l| {
        l.len() == 4 && l.iter().all(|x| x["status"] != "pending")
    })
    .await;
    let (_, body) = gw
        .get(
            &format!("/v1/webhooks/{wh}/deliveries?status=failed"),
            &token,
        )
        .await;
    let logs = body["data"]["deliveries"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["event_type"], "c.d");
    let (_, body) = gw
        .get(
            &format!("/v1/webhooks/{wh}/deliveries?event_type=a.b"),
            &token,
        )
        .await;
    assert_eq!(body["data"]["deliveries"].as_array().unwrap().len(), 3);

    // Newest first, two per page.
    let (_, page1) = gw
        .get(&format!("/v1/webhooks/{wh}/deliveries?limit=2"), &token)
        .await;
    assert_eq!(page1["data"]["deliveries"][0]["event_type"], "c.d");
    let cursor = page1["data"]["next_cursor"].as_str().unwrap();
    let (_, page2) = gw
        .get(
            &format!("/v1/webhooks/{wh}/deliveries?limit=2&cursor={cursor}"),
            &token,
        )
        .await;
    assert_eq!(page2["data"]["deliveries"].as_array().unwrap().len(), 2);
    assert!(page2["data"]["next_cursor"].is_null());
    let ids: Vec<&str> = page1["data"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["data"]["deliveries"].as_array().unwrap())
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);

    let (status, _) = gw
        .get(
            &format!("/v1/webhooks/{wh}/deliveries?status=bogus"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = gw
        .get(&format!("/v1/webhooks/{wh}/deliveries?cursor=zzz"), &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "cursor");

    // Another tenant sees none of it.
    let (_, other) = gw.tenant_with_key("other").await;
    let (status, _) = gw
        .get(&format!("/v1/webhooks/{wh}/deliveries"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The older names of the deliveries' routes and fields (`.../logs`,
/// `log`, `log_id`, ids written `msg_`) answer as the new ones do.
#[tokio::test]
async fn the_older_logs_routes_and_fields_still_answer() {
    let (gw, rx, token, wh, _) = setup("0ms", &["a.b"]).await;
    rx.respond_with(500);
    let published = gw.publish(&token, "a.b", json!({})).await;
    let listed = &published["deliveries"][0];
    let id = listed["delivery_id"].as_str().unwrap().to_string();
    assert_eq!(listed["log_id"], listed["delivery_id"]);
    assert!(id.starts_with("dlv_"), "{id}");
    gw.wait_for_deliveries(&token, &wh, LONG, |l| {
        l.first().is_some_and(|l| l["status"] == "failed")
    })
    .await;

    let (_, new) = gw
        .get(&format!("/v1/webhooks/{wh}/deliveries"), &token)
        .await;
    let (status, old) = gw.get(&format!("/v1/webhooks/{wh}/logs"), &token).await;
    assert_eq!(status, StatusCode::OK, "{old}");
    assert_eq!(old["data"]["logs"], new["data"]["deliveries"]);

    let (_, new) = gw
        .get(&format!("/v1/webhooks/{wh}/deliveries/{id}"), &token)
        .await;
    let formerly = id.replacen("dlv_", "msg_", 1);
    for path in [
        format!("/logs/{id}"),
        format!("/logs/{formerly}"),
        format!("/deliveries/{formerly}"),
    ] {
        let (status, old) = gw.get(&format!("/v1/webhooks/{wh}{path}"), &token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {old}");
        let entry = if path.starts_with("/logs") {
            &old["data"]["log"]
        } else {
            &old["data"]["delivery"]
        };
        assert_eq!(entry, &new["data"]["delivery"], "{path}");
        assert_eq!(entry["id"], id.as_str(), "{path}");
    }

    rx.respond_with(200);
    let (status, retried) = gw
        .post(
            &format!("/v1/webhooks/{wh}/logs/{id}/retry"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["data"]["log"]["status"], "delivered");
    let (status, body) = gw
        .get(&format!("/v1/webhooks/{wh}/logs/log_nope"), &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "log_id");
}

#[tokio::test]
async fn metrics_count_publishes_and_attempts() {
    let (gw, rx, token, _, _) = setup("0ms", &["a.b"]).await;
    gw.publish(&token, "a.b", json!({})).await;
    rx.wait_for(1, LONG).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = gw
        .client
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hookgate_events_published_total 1"), "{text}");
    assert!(
        text.contains("hookgate_attempts_total{outcome=\"success\"} 1"),
        "{text}"
    );
    assert!(text.contains("hookgate_queue_depth"), "{text}");
    assert!(
        text.contains("hookgate_attempt_duration_seconds_bucket"),
        "{text}"
    );
}

// Multi-threaded: `stop()` blocks while the receiver must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_attempt_in_flight_finish() {
    let (gw, rx, token, wh, _) = setup("0ms,100ms", &["a.b"]).await;
    rx.delay(Duration::from_millis(1500));
    gw.publish(&token, "a.b", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The attempt is in flight: shutdown waits for it instead of cutting it off.
    let (dir, _guard) = gw.stop();
    assert_eq!(rx.received().len(), 1);
    let gw = Gateway::builder()
        .delivering("0ms,100ms")
        .data_dir(&dir)
        .start();
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| !l.is_empty())
        .await;
    assert_eq!(logs[0]["status"], "delivered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.received().len(),
        1,
        "a finished attempt is not made again"
    );
}

#[tokio::test]
async fn redirects_are_not_followed_and_slow_receivers_time_out() {
    let gw = Gateway::builder()
        .delivering("0ms")
        .env("HOOKGATE_DELIVERY_TIMEOUT", "300ms")
        .start();
    let redirecting = Receiver::start().await;
    let slow = Receiver::start().await;
    redirecting.respond_with(301);
    slow.delay(Duration::from_secs(2));
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["a.b"]).await;
    let (wh_redirect, _) = gw
        .create_webhook(&token, &redirecting.url(), &["a.b"])
        .await;
    let (wh_slow, _) = gw.create_webhook(&token, &slow.url(), &["a.b"]).await;
    gw.publish(&token, "a.b", json!({})).await;

    let failed = |l: &[serde_json::Value]| l.first().is_some_and(|l| l["status"] == "failed");
    let logs = gw
        .wait_for_deliveries(&token, &wh_redirect, LONG, failed)
        .await;
    assert_eq!(logs[0]["response_code"], 301);
    assert!(
        logs[0]["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed")
    );
    let logs = gw.wait_for_deliveries(&token, &wh_slow, LONG, failed).await;
    assert!(logs[0]["response_code"].is_null());
    assert!(
        logs[0]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        logs[0]
    );
    assert_eq!(redirecting.received().len(), 1);
}

/// The endpoint's in-flight limit adapts: a receiver answering 503 brings
/// it down to one request at a time (a dead receiver costs one request per
/// retry slot), and once it answers 2xx again the limit grows back to the
/// endpoint's maximum.
#[tokio::test]
async fn a_failing_receiver_gets_one_request_at_a_time_until_it_recovers() {
    let (gw, rx, token, wh, _) = setup("0ms,300ms,300ms,300ms,300ms,300ms,300ms", &["a.b"]).await;
    let (status, body) = gw
        .patch(
            &format!("/v1/webhooks/{wh}"),
            &token,
            json!({"max_in_flight": 8}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(in_flight_limit(&gw, &token, &wh).await, 8);
    rx.respond_with(503);
    for i in 0..40 {
        gw.publish(&token, "a.b", json!({"i": i})).await;
    }
    let deadline = std::time::Instant::now() + LONG;
    while in_flight_limit(&gw, &token, &wh).await > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the limit never fell to 1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    rx.respond_with(200);
    for i in 0..60 {
        gw.publish(&token, "a.b", json!({"recovered": i})).await;
    }
    let deadline = std::time::Instant::now() + LONG;
    while in_flight_limit(&gw, &token, &wh).await < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "the limit never grew back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An endpoint's `in_flight_limit` now (its maximum checked to be 8).
async fn in_flight_limit(gw: &Gateway, token: &str, wh: &str) -> u64 {
    let (status, body) = gw.get(&format!("/v1/webhooks/{wh}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let webhook = &body["data"]["webhook"];
    assert_eq!(webhook["max_in_flight"], 8);
    webhook["in_flight_limit"].as_u64().unwrap()
}
