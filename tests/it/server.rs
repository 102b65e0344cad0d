//! The server as a whole: probes, OpenAPI, routing errors, limits, request
//! ids, persistence across restarts, the admin token and the CLI help.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::utils::*;

/// Every route of docs/product.md ("Routes") that the router serves now,
/// with its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/tenants", &["get", "post"]),
    ("/v1/tenants/{id}", &["get", "patch", "delete"]),
    ("/v1/tenants/{id}/keys", &["get", "post"]),
    ("/v1/tenants/{id}/keys/{key_id}", &["delete"]),
    ("/v1/event-types", &["get", "post"]),
    ("/v1/event-types/{name}", &["get", "patch", "delete"]),
    ("/v1/webhooks", &["get", "post"]),
    ("/v1/webhooks/{id}", &["get", "patch", "put", "delete"]),
    ("/v1/webhooks/{id}/pause", &["post"]),
    ("/v1/webhooks/{id}/resume", &["post"]),
    ("/v1/webhooks/{id}/rotate-secret", &["post"]),
    ("/v1/webhooks/{id}/test", &["post"]),
    ("/v1/webhooks/{id}/deliveries", &["get"]),
    ("/v1/webhooks/{id}/deliveries/{delivery_id}", &["get"]),
    (
        "/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
        &["post"],
    ),
    ("/v1/webhooks/{id}/logs", &["get"]),
    ("/v1/webhooks/{id}/logs/{log_id}", &["get"]),
    ("/v1/webhooks/{id}/logs/{log_id}/retry", &["post"]),
    ("/v1/events", &["post"]),
    ("/v1/events/{id}", &["get"]),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

const ENV_VARS: &[&str] = &[
    "HOOKGATE_LISTEN",
    "HOOKGATE_DATA_DIR",
    "HOOKGATE_ADMIN_TOKEN",
    "HOOKGATE_ALLOW_TARGETS",
    "HOOKGATE_CA_FILE",
    "HOOKGATE_RETRY_SCHEDULE",
    "HOOKGATE_LOG_FORMAT",
];

#[tokio::test]
async fn health_probes_answer_200_without_auth() {
    let gw = Gateway::start();
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let data = expect_ok(gw.call(Method::GET, path, None, None).await, StatusCode::OK);
        assert_eq!(data["status"], status, "{path}: {data}");
        assert!(data["version"].is_string(), "{path}: {data}");
    }
}

#[tokio::test]
async fn openapi_documents_every_route_with_its_methods() {
    let gw = Gateway::start();
    let resp = gw
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = serde_json::from_str(&resp.text().await.unwrap()).expect("valid JSON");

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "hookgate");
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "no bearer security scheme"
    );
    let paths = doc["paths"].as_object().expect("paths object");
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from /openapi.json"));
        let documented: Vec<&str> = HTTP_METHODS
            .iter()
            .copied()
            .filter(|m| item.get(*m).is_some())
            .collect();
        let mut expected = methods.to_vec();
        expected.sort_by_key(|m| HTTP_METHODS.iter().position(|x| x == m));
        assert_eq!(documented, expected, "methods of {path}");
        for method in methods.iter() {
            let op = &item[*method];
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            assert!(op["security"].is_array(), "{method} {path} has no security");
        }
    }
    for probe in ["/healthz", "/readyz"] {
        assert!(paths[probe]["get"].is_object(), "{probe} missing");
    }

    // What the document promises, the router serves: every documented
    // operation exists (an authenticated one answers 401 without a token,
    // never 404 or 405).
    let dummy = |path: &str| {
        path.replace("{id}", "x")
            .replace("{key_id}", "y")
            .replace("{name}", "z")
    };
    for (path, item) in paths {
        for method in HTTP_METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let url = dummy(path);
            let resp = gw.request(m, &url).send().await.unwrap();
            let status = resp.status();
            if item[*method]["security"].is_array() {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {url}");
            } else {
                assert_eq!(status, StatusCode::OK, "{method} {url}");
            }
        }
    }
}

#[tokio::test]
async fn unknown_routes_answer_404_in_the_envelope() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/v1/nope"),
        (Method::GET, "/v2/webhooks"),
        (Method::POST, "/v1/webhooks/wh_x/nope"),
        (Method::GET, "/v1/tenants/x/keys/y/z"),
    ] {
        for auth in [None, Some(token.as_str())] {
            expect_error(
                gw.call(method.clone(), path, auth, None).await,
                StatusCode::NOT_FOUND,
                "not_found",
            );
        }
    }
}

#[tokio::test]
async fn wrong_methods_answer_405_in_the_envelope() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    for (method, path) in [
        (Method::PUT, "/v1/tenants"),
        (Method::PUT, "/v1/tenants/ten_x"),
        (Method::PUT, "/v1/tenants/ten_x/keys"),
        (Method::GET, "/v1/tenants/ten_x/keys/key_y"),
        (Method::DELETE, "/v1/webhooks"),
        (Method::PUT, "/v1/event-types/booking.created"),
        (Method::GET, "/v1/webhooks/wh_x/pause"),
        (Method::DELETE, "/v1/webhooks/wh_x/rotate-secret"),
        (Method::POST, "/healthz"),
        (Method::POST, "/openapi.json"),
    ] {
        for auth in [None, Some(token.as_str())] {
            expect_error(
                gw.call(method.clone(), path, auth, None).await,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            );
        }
    }

    // The answer names the methods the route has (RFC 9110 requires `Allow`).
    for (path, methods) in [
        ("/v1/tenants", &["GET", "POST"][..]),
        ("/v1/webhooks/wh_x", &["GET", "PATCH", "PUT", "DELETE"][..]),
        ("/v1/webhooks/wh_x/pause", &["POST"][..]),
    ] {
        let resp = gw.request(Method::TRACE, path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allow = resp
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("405 on {path} without Allow"))
            .to_str()
            .unwrap()
            .to_string();
        let allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
        for method in methods {
            assert!(allowed.contains(method), "{path}: Allow is {allow:?}");
        }
        assert!(!allowed.contains(&"TRACE"), "{path}: Allow is {allow:?}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_answer_413() {
    let gw = Gateway::builder()
        .env("HOOKGATE_MAX_BODY_BYTES", "2048")
        .start();
    let (tenant, token) = gw.tenant_with_key("acme").await;

    let big = json!({"name": "big.one", "example": {"blob": "x".repeat(4096)}});
    let body = serde_json::to_vec(&big).unwrap();
    assert!(body.len() > 4096);
    let error = expect_error(
        gw.call_raw(Method::POST, "/v1/event-types", &token, body)
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(
        error["message"].as_str().unwrap().contains("2048"),
        "{error}"
    );
    expect_error(
        gw.post("/v1/event-types", &token, big.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    expect_error(
        gw.post(
            &format!("/v1/tenants/{tenant}/keys"),
            ADMIN_TOKEN,
            json!({"name": "k".repeat(4096), "scopes": ["publish"]}),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    expect_error(
        gw.get("/v1/event-types/big.one", &token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Under the limit, the same request works.
    let small = json!({"name": "big.one", "example": {"blob": "x".repeat(1500)}});
    let (status, resp) = gw.post("/v1/event-types", &token, small).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let gw = Gateway::start();
    let mut seen = Vec::new();
    for (method, path, auth) in [
        (Method::GET, "/healthz", None),
        (Method::GET, "/healthz", None),
        (Method::GET, "/v1/tenants", Some(ADMIN_TOKEN)),
        (Method::GET, "/v1/tenants", None),
        (Method::GET, "/v1/nope", None),
        (Method::DELETE, "/v1/tenants", Some(ADMIN_TOKEN)),
    ] {
        let mut req = gw.request(method.clone(), path);
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        let id = resp
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{method} {path}: no x-request-id"))
            .to_str()
            .unwrap()
            .to_string();
        assert!(!id.is_empty(), "{method} {path}");
        assert!(!seen.contains(&id), "request id {id} reused");
        seen.push(id);
    }

    // A caller's own request id is kept.
    let resp = gw
        .request(Method::GET, "/healthz")
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
}

/// What the API shows of a tenant, for comparing before and after a restart.
async fn snapshot(gw: &Gateway, tenant: &str, token: &str, webhook: &str) -> Vec<Value> {
    let reads = [
        (format!("/v1/tenants/{tenant}"), ADMIN_TOKEN),
        (format!("/v1/tenants/{tenant}/keys"), ADMIN_TOKEN),
        ("/v1/tenants".to_string(), ADMIN_TOKEN),
        ("/v1/event-types".to_string(), token),
        ("/v1/webhooks".to_string(), token),
        (format!("/v1/webhooks/{webhook}"), token),
    ];
    let mut out = Vec::new();
    for (path, tok) in reads {
        out.push(expect_ok(gw.get(&path, tok).await, StatusCode::OK));
    }
    out
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let gw = Gateway::start();
    let (tenant, token) = gw.tenant_with_key("persistent").await;
    let publish = gw.create_key(&tenant, &["publish"]).await;
    let (status, _) = gw
        .post(
            "/v1/event-types",
            &token,
            json!({"name": "booking.created", "description": "made", "example": {"id": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    gw.add_event_types(&token, &["booking.cancelled"]).await;
    let created = gw
        .create_webhook_with(
            &token,
            json!({"name": "crm", "url": "https://crm.example.com/in", "events": ["booking.*"]}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let paused = gw
        .create_webhook_with(
            &token,
            json!({"url": "https://paused.example.com/", "events": ["booking.cancelled"]}),
        )
        .await;
    let paused_id = paused["id"].as_str().unwrap().to_string();
    expect_ok(
        gw.post(
            &format!("/v1/webhooks/{paused_id}/pause"),
            &token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    let rotated = expect_ok(
        gw.post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    let rotated_secret = rotated["webhook"]["secret"].as_str().unwrap().to_string();

    let before = snapshot(&gw, &tenant, &token, &id).await;
    assert_eq!(before[1]["keys"].as_array().unwrap().len(), 2);
    assert_eq!(before[4]["webhooks"].as_array().unwrap().len(), 2);

    let (dir, _guard) = gw.stop();
    let gw = Gateway::builder().data_dir(&dir).start();

    let after = snapshot(&gw, &tenant, &token, &id).await;
    assert_eq!(after, before, "state changed across the restart");
    let wh = &after[5]["webhook"];
    assert!(wh["previous_secret_expires_at"].is_string(), "{wh}");
    assert_eq!(after[4]["webhooks"][1]["status"], "paused");
    let et = expect_ok(
        gw.get("/v1/event-types/booking.created", &token).await,
        StatusCode::OK,
    );
    assert_eq!(et["event_type"]["example"], json!({"id": 1}));

    // Keys still authenticate with their scopes.
    let (status, _) = gw.get("/v1/webhooks", &publish).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the publish key is known but lacks the scope"
    );
    // The rotated secret is not shown again, and rotation still works.
    assert_no_secret(wh);
    let again = expect_ok(
        gw.post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_ne!(again["webhook"]["secret"].as_str().unwrap(), rotated_secret);
    // New writes work after a restart.
    gw.add_event_types(&token, &["trip.created"]).await;
}

#[tokio::test]
async fn a_generated_admin_token_is_printed_once_and_kept() {
    let gw = Gateway::builder().generated_admin_token().start();
    let printed: Vec<&str> = gw
        .stdout_before_listen
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("hgadm_"))
        .collect();
    assert_eq!(printed.len(), 1, "stdout: {:?}", gw.stdout_before_listen);
    let admin = printed[0].to_string();
    assert!(admin.len() > 40, "{admin}");

    let data = expect_ok(
        gw.post("/v1/tenants", &admin, json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    );
    let tenant = data["tenant"]["id"].as_str().unwrap().to_string();
    expect_error(
        gw.get("/v1/tenants", ADMIN_TOKEN).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    let (dir, _guard) = gw.stop();
    assert!(
        !stored_contains(&dir, admin.as_bytes()),
        "admin token stored in clear"
    );

    let gw = Gateway::builder()
        .data_dir(&dir)
        .generated_admin_token()
        .start();
    assert!(
        gw.stdout_before_listen.is_empty(),
        "printed again on restart: {:?}",
        gw.stdout_before_listen
    );
    let list = expect_ok(gw.get("/v1/tenants", &admin).await, StatusCode::OK);
    assert_eq!(strings(&list["tenants"], "id"), vec![tenant]);
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env_clear()
        .output()
        .expect("run hookgate");
    assert!(out.status.success(), "hookgate {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn serve_help_names_every_environment_variable() {
    let text = help(&["serve", "--help"]);
    for var in ENV_VARS {
        assert!(
            text.contains(var),
            "`hookgate serve --help` does not mention {var}:\n{text}"
        );
    }
}

#[test]
fn top_level_help_names_every_environment_variable() {
    let text = help(&["--help"]);
    assert!(text.contains("serve"), "{text}");
    for var in ENV_VARS {
        assert!(
            text.contains(var),
            "`hookgate --help` does not mention {var}:\n{text}"
        );
    }
}
