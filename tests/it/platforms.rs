//! The two platforms hookgate was built to serve, out of the box: tenants
//! created with a preset get the platform's header names and catalog, the
//! seller routes answer as Menon documents them, and a tenant reads and sets
//! its own header names.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::utils::verify::hex_signature;
use crate::utils::*;

const LONG: Duration = Duration::from_secs(15);

/// A tenant made with `preset`, and a key for it.
async fn tenant_with_preset(gw: &Gateway, preset: &str) -> String {
    let (status, body) = gw
        .post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": preset, "preset": preset}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tenant = body["data"]["tenant"]["id"].as_str().unwrap().to_string();
    gw.create_key(&tenant, &["publish", "endpoints"]).await
}

#[tokio::test]
async fn a_mogu_tenant_has_mogus_headers_and_catalog() {
    let gw = Gateway::builder().delivering("0ms").start();
    let rx = Receiver::start().await;
    let token = tenant_with_preset(&gw, "mogu").await;
    let (_, catalog) = gw.get("/v1/event-types?limit=100", &token).await;
    let names = strings(&catalog["data"]["event_types"], "name");
    for name in [
        "trip.created",
        "trip.updated",
        "booking.created",
        "booking.cancelled",
        "payment.succeeded",
        "payment.failed",
        "payment.refunded",
    ] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    for t in catalog["data"]["event_types"].as_array().unwrap() {
        assert!(t["example"].is_object(), "{t}");
    }
    let (id, secret) = gw.create_webhook(&token, &rx.url(), &["booking.*"]).await;
    // The tester sends the chosen type's example.
    let (status, body) = gw
        .post(
            &format!("/v1/webhooks/{id}/test"),
            &token,
            json!({"event_type": "booking.created"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let req = rx.wait_for(1, LONG).await[0].clone();
    assert_eq!(req.header("x-mogu-event"), "booking.created");
    assert!(req.header("x-mogu-delivery").starts_with("dlv_"));
    assert_eq!(
        req.header("x-mogu-signature-256"),
        hex_signature(&secret, &req.body)
    );
    assert_eq!(req.json()["data"]["booking"]["id"], "bk_5531");
    assert!(req.headers.get("x-hookgate-event").is_none());
}

#[tokio::test]
async fn menons_seller_routes_answer_as_documented() {
    let gw = Gateway::builder().delivering("0ms").start();
    let rx = Receiver::start().await;
    let token = tenant_with_preset(&gw, "menon").await;

    let (status, body) = gw
        .post(
            "/api/seller/webhooks",
            &token,
            json!({"url": rx.url(), "events": ["listing.created", "listing.updated", "message.received"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["success"], true);
    let webhook = &body["data"]["webhook"];
    let id = webhook["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("wh_"));
    assert_eq!(webhook["status"], "active");
    assert!(webhook["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(webhook["createdAt"], webhook["created_at"]);
    let secret = webhook["secret"].as_str().unwrap().to_string();

    let (status, body) = gw.get("/api/seller/webhooks", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = &body["data"]["webhooks"][0];
    assert_eq!(listed["id"], id.as_str());
    assert!(listed["createdAt"].is_string());
    assert!(listed.get("secret").is_none(), "{listed}");

    let (status, body) = gw
        .patch(
            &format!("/api/seller/webhooks/{id}"),
            &token,
            json!({"events": ["listing.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["webhook"]["events"],
        json!(["listing.created"])
    );
    assert!(body["data"]["webhook"]["createdAt"].is_string());

    // The tester with a chosen type, signed as Menon's snippet checks it:
    // HMAC-SHA256 of the re-serialised body, keyed with the secret string.
    let (status, body) = gw
        .post(
            &format!("/api/seller/webhooks/{id}/test"),
            &token,
            json!({"event_type": "listing.created"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"]["success"], true, "{body}");
    let req = rx.wait_for(1, LONG).await[0].clone();
    let reserialised = serde_json::to_string(&req.json()).unwrap();
    assert_eq!(
        req.header("x-menon-signature"),
        hex_signature(&secret, reserialised.as_bytes())
    );
    assert_eq!(req.json()["data"]["listing"]["title"], "2021 Volvo FH 500");

    let (status, body) = gw
        .delete(&format!("/api/seller/webhooks/{id}"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = gw.get("/api/seller/webhooks", &token).await;
    assert_eq!(body["data"]["webhooks"], json!([]));

    // Seller routes need the endpoints scope like the rest.
    let (status, _) = gw.get("/api/seller/webhooks", "hk_nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unknown_preset_is_refused_and_creates_nothing() {
    let gw = Gateway::start();
    let (status, body) = gw
        .post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "x", "preset": "stripe"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "preset");
    let (_, list) = gw.get("/v1/tenants", ADMIN_TOKEN).await;
    assert_eq!(list["data"]["tenants"], json!([]));
}

#[tokio::test]
async fn a_tenant_reads_and_sets_its_own_header_names() {
    let gw = Gateway::builder().delivering("0ms").start();
    let rx = Receiver::start().await;
    let (_, token) = gw.tenant_with_key("acme").await;
    let (status, body) = gw.get("/v1/tenant", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["tenant"]["headers"]["event"],
        "X-Hookgate-Event"
    );

    let (status, body) = gw
        .patch(
            "/v1/tenant",
            &token,
            json!({"headers": {"signature": "Content-Type"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "headers.signature");
    let (status, body) = gw
        .patch(
            "/v1/tenant",
            &token,
            json!({"headers": {"signature": "X-Menon-Signature"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["tenant"]["headers"]["signature"],
        "X-Menon-Signature"
    );
    gw.add_event_types(&token, &["listing.created"]).await;
    let (_, secret) = gw
        .create_webhook(&token, &rx.url(), &["listing.created"])
        .await;
    gw.publish(
        &token,
        "listing.created",
        json!({"listing": {"id": "lst_1"}}),
    )
    .await;
    let req = rx.wait_for(1, LONG).await[0].clone();
    assert_eq!(
        req.header("x-menon-signature"),
        hex_signature(&secret, &req.body)
    );
    // A key without the endpoints scope may not.
    let tenant = gw.create_tenant("other").await;
    let publish_only = gw.create_key(&tenant, &["publish"]).await;
    let (status, _) = gw.get("/v1/tenant", &publish_only).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
