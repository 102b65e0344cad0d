//! Authentication, scopes and tenant isolation (docs/product.md,
//! "Authentication").

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::utils::*;

/// Routes of each kind, as (method, path, body).
fn admin_routes(tenant: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/tenants".into(), None),
        (
            Method::POST,
            "/v1/tenants".into(),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/v1/tenants/{tenant}"), None),
        (Method::DELETE, format!("/v1/tenants/{tenant}"), None),
        (Method::GET, format!("/v1/tenants/{tenant}/keys"), None),
        (
            Method::POST,
            format!("/v1/tenants/{tenant}/keys"),
            Some(json!({"scopes": ["publish"]})),
        ),
    ]
}

fn endpoints_routes() -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/webhooks".into(), None),
        (
            Method::POST,
            "/v1/webhooks".into(),
            Some(json!({"url": "https://example.com/h", "events": ["webhook.test"]})),
        ),
        (Method::GET, "/v1/event-types".into(), None),
        (
            Method::POST,
            "/v1/event-types".into(),
            Some(json!({"name": "booking.created"})),
        ),
        (Method::GET, "/v1/event-types/webhook.test".into(), None),
    ]
}

#[tokio::test]
async fn requests_without_a_valid_bearer_token_answer_401() {
    let gw = Gateway::start();
    let (tenant, _token) = gw.tenant_with_key("acme").await;
    let mut routes = admin_routes(&tenant);
    routes.extend(endpoints_routes());

    for (method, path, body) in routes {
        // No header at all.
        let error = expect_error(
            gw.call(method.clone(), &path, None, body.clone()).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        assert!(
            error["message"].as_str().unwrap().contains("Bearer"),
            "{method} {path}: {error}"
        );
        // Well-formed, but not a token the gateway knows.
        expect_error(
            gw.call(
                method.clone(),
                &path,
                Some("hgk_not-a-real-key-0000000000"),
                body.clone(),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        // Malformed headers.
        for header in ["Basic x", "Bearer", "Bearer   ", ADMIN_TOKEN, "Token abc"] {
            let mut req = gw
                .request(method.clone(), &path)
                .header("authorization", header);
            if let Some(body) = &body {
                req = req.json(body);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            assert_eq!(
                resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{method} {path}: a 401 names its scheme"
            );
            let body: Value = resp.json().await.unwrap();
            expect_error((status, body), StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }

    // Nothing was changed by the refused requests.
    let tenants = expect_ok(gw.get("/v1/tenants", ADMIN_TOKEN).await, StatusCode::OK);
    assert_eq!(strings(&tenants["tenants"], "id"), vec![tenant]);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let gw = Gateway::start();
    let resp = gw
        .request(Method::GET, "/v1/tenants")
        .header("authorization", format!("bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn tenant_keys_are_refused_on_admin_routes() {
    let gw = Gateway::start();
    let (tenant, token) = gw.tenant_with_key("acme").await;
    for (method, path, body) in admin_routes(&tenant) {
        let error = expect_error(
            gw.call(method.clone(), &path, Some(&token), body).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert!(
            error["message"].as_str().unwrap().contains("admin"),
            "{method} {path}: {error}"
        );
    }
    // The tenant survived the DELETE attempt.
    expect_ok(
        gw.get(&format!("/v1/tenants/{tenant}"), ADMIN_TOKEN).await,
        StatusCode::OK,
    );
    let keys = expect_ok(
        gw.get(&format!("/v1/tenants/{tenant}/keys"), ADMIN_TOKEN)
            .await,
        StatusCode::OK,
    );
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_admin_token_is_refused_on_tenant_routes() {
    let gw = Gateway::start();
    gw.create_tenant("acme").await;
    for (method, path, body) in endpoints_routes() {
        let error = expect_error(
            gw.call(method.clone(), &path, Some(ADMIN_TOKEN), body)
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert!(
            error["message"].as_str().unwrap().contains("tenant"),
            "{method} {path}: {error}"
        );
    }
}

#[tokio::test]
async fn keys_need_the_endpoints_scope() {
    let gw = Gateway::start();
    let tenant = gw.create_tenant("acme").await;
    let publish = gw.create_key(&tenant, &["publish"]).await;
    let plugins = gw.create_key(&tenant, &["plugins"]).await;
    let both = gw.create_key(&tenant, &["publish", "plugins"]).await;
    let endpoints = gw.create_key(&tenant, &["endpoints"]).await;

    for token in [&publish, &plugins, &both] {
        for (method, path, body) in endpoints_routes() {
            let error = expect_error(
                gw.call(method.clone(), &path, Some(token), body).await,
                StatusCode::FORBIDDEN,
                "forbidden",
            );
            assert!(
                error["message"].as_str().unwrap().contains("endpoints"),
                "{method} {path}: {error}"
            );
        }
    }

    // The refused POSTs created nothing; the endpoints key may do it all.
    let types = expect_ok(gw.get("/v1/event-types", &endpoints).await, StatusCode::OK);
    assert_eq!(strings(&types["event_types"], "name"), catalog_with(&[]));
    let list = expect_ok(gw.get("/v1/webhooks", &endpoints).await, StatusCode::OK);
    assert_eq!(list["webhooks"], json!([]));
    for (method, path, body) in endpoints_routes() {
        let (status, resp) = gw.call(method.clone(), &path, Some(&endpoints), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {resp}");
    }
}

#[tokio::test]
async fn another_tenants_webhook_answers_404_and_stays_unchanged() {
    let gw = Gateway::start();
    let (_a, a_token) = gw.tenant_with_key("a").await;
    let (_b, b_token) = gw.tenant_with_key("b").await;
    gw.add_event_types(&a_token, &["booking.created"]).await;
    gw.add_event_types(&b_token, &["booking.created"]).await;
    let created = gw
        .create_webhook_with(
            &a_token,
            json!({"name": "A's hook", "url": "https://a.example.com/h", "events": ["booking.created"]}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let before = expect_ok(
        gw.get(&format!("/v1/webhooks/{id}"), &a_token).await,
        StatusCode::OK,
    );

    let path = format!("/v1/webhooks/{id}");
    let change = json!({"name": "stolen", "url": "https://b.example.com/h", "status": "paused"});
    let attempts = [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(change.clone())),
        (Method::PUT, path.clone(), Some(change)),
        (Method::POST, format!("{path}/pause"), None),
        (Method::POST, format!("{path}/resume"), None),
        (Method::POST, format!("{path}/rotate-secret"), None),
        (Method::DELETE, path.clone(), None),
    ];
    for (method, p, body) in attempts {
        let error = expect_error(
            gw.call(method.clone(), &p, Some(&b_token), body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert!(!error.to_string().contains("whsec_"), "{error}");
    }

    let after = expect_ok(
        gw.get(&format!("/v1/webhooks/{id}"), &a_token).await,
        StatusCode::OK,
    );
    assert_eq!(after, before, "B's requests changed A's webhook");
    assert_eq!(after["webhook"]["status"], "active");
    assert!(
        after["webhook"].get("previous_secret_expires_at").is_none(),
        "the secret was rotated: {after}"
    );
}

#[tokio::test]
async fn lists_show_only_the_callers_tenant() {
    let gw = Gateway::start();
    let (_a, a_token) = gw.tenant_with_key("a").await;
    let (_b, b_token) = gw.tenant_with_key("b").await;
    let mut a_ids = Vec::new();
    for i in 0..3 {
        let wh = gw
            .create_webhook_with(
                &a_token,
                json!({"url": format!("https://a{i}.example.com/"), "events": ["webhook.test"]}),
            )
            .await;
        a_ids.push(wh["id"].as_str().unwrap().to_string());
    }
    let b_hook = gw
        .create_webhook_with(
            &b_token,
            json!({"url": "https://b.example.com/", "events": ["webhook.test"]}),
        )
        .await;

    let b_list = expect_ok(gw.get("/v1/webhooks", &b_token).await, StatusCode::OK);
    assert_eq!(
        strings(&b_list["webhooks"], "id"),
        vec![b_hook["id"].as_str().unwrap().to_string()]
    );
    let a_list = expect_ok(gw.get("/v1/webhooks", &a_token).await, StatusCode::OK);
    assert_eq!(strings(&a_list["webhooks"], "id"), a_ids);

    // A cursor taken from A's list does not lead B into A's data.
    let cursor = &a_ids[0];
    let b_page = expect_ok(
        gw.get(&format!("/v1/webhooks?cursor={cursor}&limit=10"), &b_token)
            .await,
        StatusCode::OK,
    );
    for id in strings(&b_page["webhooks"], "id") {
        assert!(!a_ids.contains(&id), "B listed A's webhook {id}");
    }
}

#[tokio::test]
async fn event_type_catalogs_are_per_tenant() {
    let gw = Gateway::start();
    let (_a, a_token) = gw.tenant_with_key("a").await;
    let (_b, b_token) = gw.tenant_with_key("b").await;
    let (status, body) = gw
        .post(
            "/v1/event-types",
            &a_token,
            json!({"name": "booking.created", "description": "A's secret type"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let b_types = expect_ok(gw.get("/v1/event-types", &b_token).await, StatusCode::OK);
    assert_eq!(strings(&b_types["event_types"], "name"), catalog_with(&[]),);
    assert!(!b_types.to_string().contains("A's secret type"));
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"description": "mine now"}))),
        (Method::DELETE, None),
    ] {
        expect_error(
            gw.call(
                method,
                "/v1/event-types/booking.created",
                Some(&b_token),
                body,
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // B cannot subscribe to A's type...
    expect_invalid(
        gw.post(
            "/v1/webhooks",
            &b_token,
            json!({"url": "https://b.example.com/", "events": ["booking.created"]}),
        )
        .await,
        "events[0]",
    );
    expect_invalid(
        gw.post(
            "/v1/webhooks",
            &b_token,
            json!({"url": "https://b.example.com/", "events": ["booking.*"]}),
        )
        .await,
        "events[0]",
    );
    // ...but may define the same name in its own catalog.
    let (status, body) = gw
        .post(
            "/v1/event-types",
            &b_token,
            json!({"name": "booking.created"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let a_type = expect_ok(
        gw.get("/v1/event-types/booking.created", &a_token).await,
        StatusCode::OK,
    );
    assert_eq!(a_type["event_type"]["description"], "A's secret type");
}
