//! Every refusal answers the JSON error envelope, whichever layer refuses:
//! query and path extraction, body reading, content type, size limit,
//! routing, method and authentication. Also: deliveries ignore proxy
//! settings in the gateway's environment.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::utils::*;

/// Sends `req` and returns the status and the body, which must be JSON
/// labelled as such.
async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{status} answered with content-type {content_type:?}: {text:?}"
    );
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status} body is not JSON: {text:?}"));
    (status, body)
}

/// Asserts an error envelope with `status`, `code` and `field` (`None`: no
/// field); returns the error object.
#[track_caller]
fn refused(
    resp: (StatusCode, Value),
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) -> Value {
    let error = expect_error(resp, status, code);
    match field {
        Some(f) => assert_eq!(error["field"], f, "{error}"),
        None => assert!(error.get("field").is_none(), "{error}"),
    }
    error
}

#[tokio::test]
async fn bad_query_parameters_name_the_parameter() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;

    for (path, field) in [
        ("/v1/tenants?limit=many", "limit"),
        ("/v1/tenants?limit=-1", "limit"),
        ("/v1/tenants?limit=10&colour=red", "colour"),
    ] {
        let error = refused(
            send(gw.request(Method::GET, path).bearer_auth(ADMIN_TOKEN)).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some(field),
        );
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(field), "{path}: {message}");
    }
    for path in [
        "/v1/webhooks?limit=x",
        "/v1/event-types?limit=1.5",
        "/v1/plugins?limit=",
    ] {
        refused(
            send(gw.request(Method::GET, path).bearer_auth(&token)).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("limit"),
        );
    }

    // The upload's `name` is required, and no other parameter is known.
    for (path, field) in [("/v1/plugins", "name"), ("/v1/plugins?nmae=redact", "nmae")] {
        let error = refused(
            send(
                gw.request(Method::POST, path)
                    .bearer_auth(&token)
                    .header(CONTENT_TYPE, "application/wasm")
                    .body(b"\0asm\x0d\0\x01\0".to_vec()),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some(field),
        );
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(field), "{path}: {message}");
    }
}

#[tokio::test]
async fn malformed_path_parameters_name_the_parameter() {
    let gw = Gateway::start();
    let (tenant, token) = gw.tenant_with_key("acme").await;

    // Not an id at all, and bytes that are not UTF-8 once decoded.
    for (path, field) in [
        ("/v1/plugins/not-an-id", "id"),
        ("/v1/plugins/%FF", "id"),
        ("/v1/plugins/plg_%C3%28/test", "id"),
        ("/v1/webhooks/%FE%FF", "id"),
        ("/v1/webhooks/%FF/logs", "id"),
        ("/v1/events/%FF", "id"),
        ("/v1/event-types/%FF", "name"),
    ] {
        let method = if path.ends_with("/test") {
            Method::POST
        } else {
            Method::GET
        };
        refused(
            send(
                gw.request(method, path)
                    .bearer_auth(&token)
                    .json(&json!({"event": {"type": "a.b", "data": {}}})),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some(field),
        );
    }
    let (status, body) = gw.get("/v1/webhooks", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let error = refused(
        send(
            gw.request(Method::GET, "/v1/tenants/%80")
                .bearer_auth(ADMIN_TOKEN),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        Some("id"),
    );
    assert!(
        error["message"].as_str().unwrap().contains("UTF-8"),
        "{error}"
    );
    refused(
        send(
            gw.request(Method::DELETE, &format!("/v1/tenants/{tenant}/keys/%FF"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        Some("key_id"),
    );
}

#[tokio::test]
async fn malformed_and_mistyped_json_bodies() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;

    for body in [
        &b"{\"name\": "[..],
        b"not json",
        b"{\"name\": \"a.b\"} trailing",
    ] {
        let error = refused(
            gw.call_raw(Method::POST, "/v1/event-types", &token, body.to_vec())
                .await,
            StatusCode::BAD_REQUEST,
            "bad_request",
            None,
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON"),
            "{error}"
        );
    }
    refused(
        gw.call_raw(Method::POST, "/v1/event-types", &token, b"  ".to_vec())
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        None,
    );

    // Well-formed JSON of the wrong shape names the field, missing ones too.
    for (body, field) in [
        (json!({"name": 5}), "name"),
        (json!({}), "name"),
        (json!({"name": "a.b", "colour": "red"}), "colour"),
    ] {
        refused(
            gw.post("/v1/event-types", &token, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            Some(field),
        );
    }
    refused(
        gw.post("/v1/events", &token, json!({"data": {}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        Some("type"),
    );
}

#[tokio::test]
async fn json_bodies_labelled_otherwise_answer_415() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    let body = br#"{"name": "booking.created"}"#.to_vec();

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "multipart/form-data; boundary=x",
    ] {
        let error = refused(
            send(
                gw.request(Method::POST, "/v1/event-types")
                    .bearer_auth(&token)
                    .header(CONTENT_TYPE, content_type)
                    .body(body.clone()),
            )
            .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{error}"
        );
    }
    let (status, _) = gw.get("/v1/event-types/booking.created", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // JSON by any of its names, or unlabelled, is read.
    for (content_type, name) in [
        (Some("application/json; charset=utf-8"), "a.one"),
        (Some("Application/JSON"), "a.two"),
        (Some("application/merge-patch+json"), "a.three"),
        (None, "a.four"),
    ] {
        let mut req = gw
            .request(Method::POST, "/v1/event-types")
            .bearer_auth(&token)
            .body(json!({"name": name}).to_string());
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::CREATED, "{content_type:?}: {body}");
    }
}

#[tokio::test]
async fn oversize_bodies_answer_413_in_the_envelope() {
    let gw = Gateway::builder()
        .env("HOOKGATE_MAX_BODY_BYTES", "1024")
        .env("HOOKGATE_MAX_PLUGIN_BYTES", "4096")
        .start();
    let (_, token) = gw.tenant_with_key("acme").await;

    let big = json!({"name": "x".repeat(2000)}).to_string().into_bytes();
    let error = refused(
        gw.call_raw(Method::POST, "/v1/event-types", &token, big)
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
    assert!(
        error["message"].as_str().unwrap().contains("1024"),
        "{error}"
    );

    // Uploads have their own limit.
    let error = refused(
        gw.upload_plugin(&token, "big", vec![0; 8192]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
    assert!(
        error["message"].as_str().unwrap().contains("4096"),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_answer_in_the_envelope() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;

    for (method, path) in [
        (Method::PUT, "/v1/plugins"),
        (Method::PATCH, "/v1/plugins/plg_01hzzzzzzzzzzzzzzzzzzzzzzz"),
        (
            Method::GET,
            "/v1/plugins/plg_01hzzzzzzzzzzzzzzzzzzzzzzz/test",
        ),
        (Method::DELETE, "/v1/events"),
        (Method::POST, "/v1/webhooks/wh_x/logs"),
        (Method::OPTIONS, "/v1/tenants"),
    ] {
        let error = refused(
            send(gw.request(method.clone(), path).bearer_auth(&token)).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        );
        assert!(!error["message"].as_str().unwrap().is_empty());
    }

    for (method, path) in [
        (Method::GET, "/v1"),
        (Method::GET, "/v1/"),
        (Method::GET, "/v1/plugin"),
        (Method::POST, "/v1/plugins/plg_x/test/again"),
        (Method::DELETE, "/v1/tenants/ten_x/keys"),
        (Method::GET, "/v1/webhooks/"),
        (Method::GET, "/ui/no-such-file.js"),
    ] {
        let (status, body) = send(gw.request(method.clone(), path).bearer_auth(&token)).await;
        // A route that exists for other methods may answer 405 instead.
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status} {body}"
        );
        assert_eq!(body["success"], false, "{method} {path}: {body}");
        assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
    }
    refused(
        send(gw.request(Method::GET, "/v1/nope/at/all")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn bad_authorization_headers_answer_401_in_the_envelope() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;

    let values: Vec<HeaderValue> = vec![
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        HeaderValue::from_static("Bearer"),
        HeaderValue::from_static("Bearer "),
        HeaderValue::from_static("Token abc"),
        HeaderValue::from_static("Bearer not-a-key"),
        HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        HeaderValue::from_str(&format!("Bearer {token}x")).unwrap(),
    ];
    for value in values {
        for (method, path) in [
            (Method::GET, "/v1/webhooks"),
            (Method::GET, "/v1/tenants"),
            (Method::POST, "/v1/events"),
        ] {
            let (status, body) = send(
                gw.request(method.clone(), path)
                    .header(AUTHORIZATION, value.clone())
                    .json(&json!({"type": "a.b", "data": {}})),
            )
            .await;
            refused(
                (status, body),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                None,
            );
        }
    }
    refused(
        send(gw.request(Method::GET, "/v1/webhooks")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
}

/// A TCP listener standing in for a proxy: counts connections and drops them.
async fn fake_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (url, seen)
}

#[tokio::test]
async fn deliveries_ignore_proxy_settings_in_the_environment() {
    let (proxy, seen) = fake_proxy().await;
    let mut builder = Gateway::builder().delivering("0ms,100ms");
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        builder = builder.env(var, &proxy);
    }
    let gw = builder.start();
    let rx = Receiver::start().await;
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["booking.created"]).await;
    let (by_ip, _) = gw
        .create_webhook(&token, &rx.url(), &["booking.created"])
        .await;
    let (by_name, _) = gw
        .create_webhook(&token, &rx.url_by_name(), &["booking.created"])
        .await;
    gw.publish(&token, "booking.created", json!({"n": 1})).await;

    rx.wait_for(2, Duration::from_secs(15)).await;
    for wh in [by_ip, by_name] {
        let logs = gw
            .wait_for_deliveries(&token, &wh, Duration::from_secs(15), |l| {
                l.first().is_some_and(|l| l["status"] == "delivered")
            })
            .await;
        assert_eq!(logs[0]["response_code"], 200, "{logs:?}");
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a delivery went through the proxy"
    );
}
