//! Endpoints: create, read, change, pause, resume, rotate and delete.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::utils::*;

/// A well-formed endpoint id that no endpoint has.
const UNKNOWN_WEBHOOK: &str = "wh_01ARZ3NDEKTSV4RRFFQ69G5FAV";

/// A gateway and a tenant key whose catalog holds two booking types.
async fn setup() -> (Gateway, String) {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["booking.created", "booking.cancelled"])
        .await;
    (gw, token)
}

fn booking_hook() -> Value {
    json!({
        "name": "CRM sync",
        "url": "https://hooks.example.com/bookings",
        "events": ["booking.created"]
    })
}

/// Asserts `secret` is `whsec_` followed by the standard base64 of 32 bytes.
#[track_caller]
fn assert_secret_shape(secret: &str) {
    let b64 = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("secret without whsec_: {secret}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("secret is not base64 ({e}): {secret}"));
    assert_eq!(raw.len(), 32, "{secret}");
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn create_shows_the_secret_once() {
    let (gw, token) = setup().await;
    let before = Utc::now();
    let (status, body) = gw.post("/v1/webhooks", &token, booking_hook()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["success"], true);
    let wh = &body["data"]["webhook"];
    let id = wh["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("wh_") && id.len() == 3 + 26, "{id}");
    assert_eq!(wh["name"], "CRM sync");
    assert_eq!(wh["url"], "https://hooks.example.com/bookings");
    assert_eq!(wh["events"], json!(["booking.created"]));
    assert_eq!(wh["status"], "active");
    assert!(wh["last_delivery"].is_null(), "{wh}");
    assert!(wh.get("previous_secret_expires_at").is_none(), "{wh}");
    assert_eq!(wh["created_at"], wh["updated_at"]);
    let created_at = time(&wh["created_at"]);
    assert!((created_at - before).num_seconds().abs() < 60, "{wh}");
    let secret = wh["secret"].as_str().unwrap().to_string();
    assert_secret_shape(&secret);

    // A second endpoint gets its own secret.
    let other = gw.create_webhook_with(&token, booking_hook()).await;
    assert_ne!(other["secret"].as_str().unwrap(), secret);

    // No other answer shows it.
    let path = format!("/v1/webhooks/{id}");
    let got = expect_ok(gw.get(&path, &token).await, StatusCode::OK);
    assert_no_secret(&got["webhook"]);
    let mut expected = wh.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(
        got["webhook"], expected,
        "GET differs from the create answer"
    );

    let list = expect_ok(gw.get("/v1/webhooks", &token).await, StatusCode::OK);
    for item in list["webhooks"].as_array().unwrap() {
        assert_no_secret(item);
    }
    let patched = expect_ok(
        gw.patch(&path, &token, json!({"name": "renamed"})).await,
        StatusCode::OK,
    );
    assert_no_secret(&patched["webhook"]);
    let put = expect_ok(
        gw.call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"name": "again"})),
        )
        .await,
        StatusCode::OK,
    );
    assert_no_secret(&put["webhook"]);
    for action in ["pause", "resume"] {
        let data = expect_ok(
            gw.post(&format!("{path}/{action}"), &token, json!({}))
                .await,
            StatusCode::OK,
        );
        assert_no_secret(&data["webhook"]);
    }
}

#[tokio::test]
async fn rotate_secret_reveals_a_new_secret_with_a_day_of_overlap() {
    let (gw, token) = setup().await;
    let created = gw.create_webhook_with(&token, booking_hook()).await;
    let id = created["id"].as_str().unwrap();
    let first = created["secret"].as_str().unwrap().to_string();

    let before = Utc::now();
    let data = expect_ok(
        gw.call(
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            Some(&token),
            None,
        )
        .await,
        StatusCode::OK,
    );
    let wh = &data["webhook"];
    let second = wh["secret"].as_str().unwrap().to_string();
    assert_secret_shape(&second);
    assert_ne!(second, first);
    let expires = time(&wh["previous_secret_expires_at"]);
    let expected = before + Duration::hours(24);
    assert!(
        (expires - expected).num_seconds().abs() < 60,
        "previous_secret_expires_at {expires} is not ~24h after {before}"
    );
    assert!(time(&wh["updated_at"]) >= time(&created["updated_at"]));
    assert_eq!(wh["created_at"], created["created_at"]);
    assert_eq!(wh["events"], created["events"]);
    assert_eq!(wh["status"], "active");

    // GET shows the overlap but not the secret.
    let got = expect_ok(
        gw.get(&format!("/v1/webhooks/{id}"), &token).await,
        StatusCode::OK,
    );
    assert_no_secret(&got["webhook"]);
    assert_eq!(
        got["webhook"]["previous_secret_expires_at"],
        wh["previous_secret_expires_at"]
    );

    // Another rotation: yet another secret.
    let data = expect_ok(
        gw.post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    let third = data["webhook"]["secret"].as_str().unwrap();
    assert_secret_shape(third);
    assert!(third != first && third != second);
}

#[tokio::test]
async fn rotation_overlap_follows_the_configuration() {
    let gw = Gateway::builder()
        .env("HOOKGATE_ROTATION_OVERLAP", "2h")
        .start();
    let (_, token) = gw.tenant_with_key("acme").await;
    let created = gw
        .create_webhook_with(
            &token,
            json!({"url": "https://example.com/h", "events": ["webhook.test"]}),
        )
        .await;
    let before = Utc::now();
    let data = expect_ok(
        gw.post(
            &format!(
                "/v1/webhooks/{}/rotate-secret",
                created["id"].as_str().unwrap()
            ),
            &token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    let expires = time(&data["webhook"]["previous_secret_expires_at"]);
    assert!(
        (expires - (before + Duration::hours(2)))
            .num_seconds()
            .abs()
            < 60,
        "{expires}"
    );
}

#[tokio::test]
async fn patch_changes_fields_and_keeps_the_rest() {
    let (gw, token) = setup().await;
    let created = gw.create_webhook_with(&token, booking_hook()).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/webhooks/{id}");

    let data = expect_ok(
        gw.patch(
            &path,
            &token,
            json!({"url": "https://crm.example.org/in", "events": ["booking.*", "booking.created"]}),
        )
        .await,
        StatusCode::OK,
    );
    let wh = &data["webhook"];
    assert_eq!(wh["url"], "https://crm.example.org/in");
    assert_eq!(wh["events"], json!(["booking.*", "booking.created"]));
    assert_eq!(wh["name"], "CRM sync", "name kept");
    assert_eq!(wh["status"], "active");
    assert_eq!(wh["created_at"], created["created_at"]);
    assert!(time(&wh["updated_at"]) >= time(&created["updated_at"]));
    assert!(
        wh.get("previous_secret_expires_at").is_none(),
        "PATCH rotated: {wh}"
    );
    assert_no_secret(wh);

    let got = expect_ok(gw.get(&path, &token).await, StatusCode::OK);
    assert_eq!(got["webhook"], *wh);

    // An empty PATCH changes nothing but updated_at.
    let data = expect_ok(gw.patch(&path, &token, json!({})).await, StatusCode::OK);
    assert_eq!(data["webhook"]["url"], wh["url"]);
    assert_eq!(data["webhook"]["events"], wh["events"]);

    // The secret stayed what it was: the next rotation is the first one and
    // hands out a secret unlike the original.
    let rotated = expect_ok(
        gw.post(&format!("{path}/rotate-secret"), &token, json!({}))
            .await,
        StatusCode::OK,
    );
    let new_secret = rotated["webhook"]["secret"].as_str().unwrap();
    assert_secret_shape(new_secret);
    assert_ne!(new_secret, created["secret"].as_str().unwrap());

    // Refused changes leave the endpoint as it was.
    let before = expect_ok(gw.get(&path, &token).await, StatusCode::OK);
    expect_invalid(
        gw.patch(
            &path,
            &token,
            json!({"name": "ok", "url": "https://10.0.0.1/"}),
        )
        .await,
        "url",
    );
    expect_invalid(
        gw.patch(&path, &token, json!({"events": []})).await,
        "events",
    );
    expect_invalid(gw.patch(&path, &token, json!({"name": " "})).await, "name");
    let after = expect_ok(gw.get(&path, &token).await, StatusCode::OK);
    assert_eq!(after, before);
}

#[tokio::test]
async fn put_accepts_the_menon_body() {
    let (gw, token) = setup().await;
    let created = gw.create_webhook_with(&token, booking_hook()).await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());
    expect_ok(
        gw.post(&format!("{path}/pause"), &token, json!({})).await,
        StatusCode::OK,
    );

    let data = expect_ok(
        gw.call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"events": ["booking.created", "booking.cancelled"], "status": "active"})),
        )
        .await,
        StatusCode::OK,
    );
    let wh = &data["webhook"];
    assert_eq!(
        wh["events"],
        json!(["booking.created", "booking.cancelled"])
    );
    assert_eq!(wh["status"], "active");
    assert_eq!(wh["url"], created["url"]);
    assert_eq!(wh["name"], created["name"]);
    assert_no_secret(wh);
    let got = expect_ok(gw.get(&path, &token).await, StatusCode::OK);
    assert_eq!(got["webhook"], *wh);
}

#[tokio::test]
async fn pause_and_resume() {
    let (gw, token) = setup().await;
    let created = gw.create_webhook_with(&token, booking_hook()).await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());

    for _ in 0..2 {
        let data = expect_ok(
            gw.call(Method::POST, &format!("{path}/pause"), Some(&token), None)
                .await,
            StatusCode::OK,
        );
        assert_eq!(data["webhook"]["status"], "paused");
        let got = expect_ok(gw.get(&path, &token).await, StatusCode::OK);
        assert_eq!(got["webhook"]["status"], "paused");
    }
    let data = expect_ok(
        gw.call(Method::POST, &format!("{path}/resume"), Some(&token), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!(data["webhook"]["status"], "active");
    assert_eq!(data["webhook"]["events"], created["events"]);
    let got = expect_ok(gw.get(&path, &token).await, StatusCode::OK);
    assert_eq!(got["webhook"]["status"], "active");

    // The same through PATCH.
    let data = expect_ok(
        gw.patch(&path, &token, json!({"status": "paused"})).await,
        StatusCode::OK,
    );
    assert_eq!(data["webhook"]["status"], "paused");
    let data = expect_ok(
        gw.patch(&path, &token, json!({"status": "active"})).await,
        StatusCode::OK,
    );
    assert_eq!(data["webhook"]["status"], "active");

    // Only the gateway disables endpoints.
    let message = expect_invalid(
        gw.patch(&path, &token, json!({"status": "disabled"})).await,
        "status",
    );
    assert!(message.contains("paused"), "{message}");
    expect_error(
        gw.patch(&path, &token, json!({"status": "sleeping"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let got = expect_ok(gw.get(&path, &token).await, StatusCode::OK);
    assert_eq!(got["webhook"]["status"], "active");
}

#[tokio::test]
async fn urls_must_be_public_https() {
    let (gw, token) = setup().await;
    let create = |url: &str| {
        let body = json!({"url": url, "events": ["booking.created"]});
        gw.post("/v1/webhooks", &token, body)
    };

    let message = expect_invalid(create("http://hooks.example.com/x").await, "url");
    assert!(message.contains("https"), "{message}");

    for url in [
        "https://127.0.0.1/",
        "https://127.0.0.1:8443/hook",
        "https://10.1.2.3/",
        "https://192.168.0.10/",
        "https://172.16.0.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[fe80::1]/",
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/",
        "https://localhost/",
        "https://localhost:9000/x",
        "https://api.localhost/",
        "https://intranet/",
        "ftp://hooks.example.com/",
        "not a url",
        "",
        "https://hooks.example.com/#fragment",
    ] {
        let resp = create(url).await;
        let error = expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(error["field"], "url", "{url}: {error}");
    }

    let list = expect_ok(gw.get("/v1/webhooks", &token).await, StatusCode::OK);
    assert_eq!(list["webhooks"], json!([]), "a refused URL was stored");

    // Public HTTPS URLs, by name or address, pass.
    for url in [
        "https://hooks.example.com/x?tenant=1",
        "https://93.184.216.34:8443/in",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/",
    ] {
        let (status, body) = create(url).await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
    }
}

#[tokio::test]
async fn allow_targets_opens_the_private_address_guard() {
    let gw = Gateway::builder()
        .env("HOOKGATE_ALLOW_TARGETS", "127.0.0.0/8")
        .start();
    let (_, token) = gw.tenant_with_key("acme").await;
    for url in ["https://127.0.0.1/", "https://127.0.0.1:9443/hook"] {
        let wh = gw
            .create_webhook_with(&token, json!({"url": url, "events": ["webhook.test"]}))
            .await;
        assert_eq!(wh["url"], url);
        assert_eq!(wh["name"], "127.0.0.1");
    }
    // Only that range: other private targets stay refused.
    for url in [
        "https://10.1.2.3/",
        "https://169.254.169.254/",
        "https://[::1]/",
    ] {
        expect_invalid(
            gw.post(
                "/v1/webhooks",
                &token,
                json!({"url": url, "events": ["webhook.test"]}),
            )
            .await,
            "url",
        );
    }
}

#[tokio::test]
async fn events_must_match_the_catalog() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    let create = |events: Value| {
        gw.post(
            "/v1/webhooks",
            &token,
            json!({"url": "https://hooks.example.com/", "events": events}),
        )
    };

    expect_invalid(create(json!([])).await, "events");
    // No booking.* type yet: the pattern matches nothing.
    let message = expect_invalid(create(json!(["booking.*"])).await, "events[0]");
    assert!(message.contains("booking.*"), "{message}");

    gw.add_event_types(&token, &["booking.created", "booking.cancelled"])
        .await;
    let message = expect_invalid(
        create(json!(["booking.created", "booking.updated"])).await,
        "events[1]",
    );
    assert!(message.contains("booking.updated"), "{message}");
    expect_invalid(
        create(json!(["webhook.test", "booking.created", "payment.*"])).await,
        "events[2]",
    );
    for bad in [
        "booking*",
        "*.created",
        "booking.*.x",
        "",
        "Booking Created",
    ] {
        expect_invalid(create(json!([bad])).await, "events[0]");
    }

    // Now the pattern has something to match; duplicates collapse, order kept.
    let (status, body) = create(json!(["booking.*", "webhook.test", "booking.*"])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["data"]["webhook"]["events"],
        json!(["booking.*", "webhook.test"])
    );
    let (status, body) = create(json!(["*"])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let list = expect_ok(gw.get("/v1/webhooks", &token).await, StatusCode::OK);
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn malformed_bodies() {
    let (gw, token) = setup().await;

    // Missing url: 422.
    let error = expect_error(
        gw.post(
            "/v1/webhooks",
            &token,
            json!({"events": ["booking.created"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert!(
        error["message"].as_str().unwrap().contains("url"),
        "{error}"
    );
    // Missing events: 422.
    expect_error(
        gw.post(
            "/v1/webhooks",
            &token,
            json!({"url": "https://example.com/"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    // Unknown field: 422 naming it.
    let mut body = booking_hook();
    body["secret"] = json!("whsec_mine");
    let error = expect_error(
        gw.post("/v1/webhooks", &token, body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert!(
        error["message"].as_str().unwrap().contains("secret"),
        "{error}"
    );
    // Wrong type: 422 naming the field.
    let error = expect_error(
        gw.post(
            "/v1/webhooks",
            &token,
            json!({"url": "https://example.com/", "events": "booking.created"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_eq!(error["field"], "events", "{error}");
    let error = expect_error(
        gw.post(
            "/v1/webhooks",
            &token,
            json!({"url": "https://example.com/", "events": ["booking.created", 7]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_eq!(error["field"], "events[1]", "{error}");
    // Not JSON at all, truncated JSON, or no body: 400.
    let raws: [&[u8]; 4] = [
        b"{\"url\": ",
        b"url=https://example.com",
        b"{\"url\":\"https://x.example.com\",}",
        b"",
    ];
    for raw in raws {
        expect_error(
            gw.call_raw(Method::POST, "/v1/webhooks", &token, raw.to_vec())
                .await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    // Also on PATCH.
    let created = gw.create_webhook_with(&token, booking_hook()).await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());
    expect_error(
        gw.call_raw(Method::PATCH, &path, &token, b"{nope".to_vec())
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    expect_error(
        gw.patch(&path, &token, json!({"colour": "blue"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );

    let list = expect_ok(gw.get("/v1/webhooks", &token).await, StatusCode::OK);
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn name_defaults_to_the_url_host() {
    let (gw, token) = setup().await;
    let wh = gw
        .create_webhook_with(
            &token,
            json!({"url": "https://Hooks.Example.COM:8443/in?x=1", "events": ["booking.created"]}),
        )
        .await;
    assert_eq!(wh["name"], "hooks.example.com");

    let wh = gw
        .create_webhook_with(
            &token,
            json!({"name": "  Billing  ", "url": "https://billing.example.com/", "events": ["booking.created"]}),
        )
        .await;
    assert_eq!(wh["name"], "Billing");

    expect_invalid(
        gw.post(
            "/v1/webhooks",
            &token,
            json!({"name": "", "url": "https://billing.example.com/", "events": ["booking.created"]}),
        )
        .await,
        "name",
    );
    expect_invalid(
        gw.post(
            "/v1/webhooks",
            &token,
            json!({"name": "x".repeat(201), "url": "https://billing.example.com/", "events": ["booking.created"]}),
        )
        .await,
        "name",
    );
}

#[tokio::test]
async fn list_paginates_with_cursor() {
    let (gw, token) = setup().await;
    let mut created = Vec::new();
    for i in 0..5 {
        let wh = gw
            .create_webhook_with(
                &token,
                json!({"url": format!("https://h{i}.example.com/"), "events": ["booking.created"]}),
            )
            .await;
        created.push(wh["id"].as_str().unwrap().to_string());
    }
    let pages = gw.pages("/v1/webhooks", &token, "webhooks", 2).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    let listed: Vec<String> = pages
        .iter()
        .flatten()
        .map(|w| {
            assert_no_secret(w);
            w["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(listed, created, "every endpoint once, oldest first");

    let all = expect_ok(gw.get("/v1/webhooks", &token).await, StatusCode::OK);
    assert_eq!(strings(&all["webhooks"], "id"), created);
    assert!(all["next_cursor"].is_null());

    expect_invalid(gw.get("/v1/webhooks?limit=0", &token).await, "limit");
    expect_error(
        gw.get("/v1/webhooks?page=2", &token).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}

#[tokio::test]
async fn deleted_webhooks_are_gone() {
    let (gw, token) = setup().await;
    let keep = gw.create_webhook_with(&token, booking_hook()).await;
    let gone = gw.create_webhook_with(&token, booking_hook()).await;
    let id = gone["id"].as_str().unwrap();
    let path = format!("/v1/webhooks/{id}");

    let deleted = expect_ok(gw.delete(&path, &token).await, StatusCode::OK);
    assert_eq!(deleted, json!({"id": id, "deleted": true}));

    expect_error(
        gw.get(&path, &token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.delete(&path, &token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.patch(&path, &token, json!({"name": "back"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for action in ["pause", "resume", "rotate-secret"] {
        expect_error(
            gw.post(&format!("{path}/{action}"), &token, json!({}))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let list = expect_ok(gw.get("/v1/webhooks", &token).await, StatusCode::OK);
    assert_eq!(
        strings(&list["webhooks"], "id"),
        vec![keep["id"].as_str().unwrap().to_string()]
    );
}

#[tokio::test]
async fn malformed_and_unknown_webhook_ids() {
    let (gw, token) = setup().await;
    gw.create_webhook_with(&token, booking_hook()).await;

    for bad in [
        "wh_nope",
        "ten_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    ] {
        let path = format!("/v1/webhooks/{bad}");
        let message = expect_invalid(gw.get(&path, &token).await, "id");
        assert!(message.contains("wh_"), "{message}");
        expect_invalid(gw.delete(&path, &token).await, "id");
        expect_invalid(gw.patch(&path, &token, json!({"name": "x"})).await, "id");
        expect_invalid(
            gw.call(Method::PUT, &path, Some(&token), Some(json!({"name": "x"})))
                .await,
            "id",
        );
        for action in ["pause", "resume", "rotate-secret"] {
            expect_invalid(
                gw.post(&format!("{path}/{action}"), &token, json!({}))
                    .await,
                "id",
            );
        }
    }

    let path = format!("/v1/webhooks/{UNKNOWN_WEBHOOK}");
    expect_error(
        gw.get(&path, &token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.delete(&path, &token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.patch(&path, &token, json!({"name": "x"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for action in ["pause", "resume", "rotate-secret"] {
        expect_error(
            gw.post(&format!("{path}/{action}"), &token, json!({}))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // None of this created an endpoint.
    let list = expect_ok(gw.get("/v1/webhooks", &token).await, StatusCode::OK);
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
}

/// `max_in_flight`: validated on create and PATCH, shown with the limit in
/// force now, and `null` goes back to the gateway's default.
#[tokio::test]
async fn max_in_flight_is_set_checked_and_reset() {
    let (gw, token) = setup().await;
    let mut hook = booking_hook();
    hook["max_in_flight"] = json!(3);
    let created = gw.create_webhook_with(&token, hook.clone()).await;
    assert_eq!(created["max_in_flight"], 3);
    assert_eq!(created["in_flight_limit"], 3);
    let id = created["id"].as_str().unwrap();

    let patch = |bad: &Value| json!({ "max_in_flight": bad });
    for bad in [json!(0), json!(1025)] {
        hook["max_in_flight"] = bad.clone();
        expect_invalid(
            gw.post("/v1/webhooks", &token, hook.clone()).await,
            "max_in_flight",
        );
        expect_invalid(
            gw.patch(&format!("/v1/webhooks/{id}"), &token, patch(&bad))
                .await,
            "max_in_flight",
        );
    }
    // Not a whole number at all: the body does not parse (422), and the
    // error names the field.
    for bad in [json!(-1), json!("8")] {
        hook["max_in_flight"] = bad.clone();
        for resp in [
            gw.post("/v1/webhooks", &token, hook.clone()).await,
            gw.patch(&format!("/v1/webhooks/{id}"), &token, patch(&bad))
                .await,
        ] {
            let error = expect_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
            assert_eq!(error["field"], "max_in_flight", "{error}");
        }
    }
    let changed = expect_ok(
        gw.patch(
            &format!("/v1/webhooks/{id}"),
            &token,
            json!({"max_in_flight": 40}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(changed["webhook"]["max_in_flight"], 40);
    let other = expect_ok(
        gw.patch(
            &format!("/v1/webhooks/{id}"),
            &token,
            json!({"name": "renamed"}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(other["webhook"]["max_in_flight"], 40, "kept when left out");
    let reset = expect_ok(
        gw.patch(
            &format!("/v1/webhooks/{id}"),
            &token,
            json!({"max_in_flight": null}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(reset["webhook"]["max_in_flight"], 64, "the default");
    assert_eq!(reset["webhook"]["in_flight_limit"], 64);
}
