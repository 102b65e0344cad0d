//! Operator routes: tenants and their API keys (admin token).

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::utils::*;

/// A well-formed tenant id that no tenant has.
const UNKNOWN_TENANT: &str = "ten_01ARZ3NDEKTSV4RRFFQ69G5FAV";
/// A well-formed key id that no key has.
const UNKNOWN_KEY: &str = "key_01ARZ3NDEKTSV4RRFFQ69G5FAV";

#[tokio::test]
async fn tenant_create_get_list_delete() {
    let gw = Gateway::start();

    let data = expect_ok(
        gw.post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "  Acme Travel  "}),
        )
        .await,
        StatusCode::CREATED,
    );
    let tenant = &data["tenant"];
    let id = tenant["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ten_") && id.len() == 4 + 26, "{id}");
    assert_eq!(tenant["name"], "Acme Travel", "names are trimmed");
    assert!(tenant["created_at"].is_string());

    let got = expect_ok(
        gw.get(&format!("/v1/tenants/{id}"), ADMIN_TOKEN).await,
        StatusCode::OK,
    );
    assert_eq!(got["tenant"], *tenant);

    let list = expect_ok(gw.get("/v1/tenants", ADMIN_TOKEN).await, StatusCode::OK);
    assert_eq!(strings(&list["tenants"], "id"), vec![id.clone()]);
    assert!(list["next_cursor"].is_null(), "{list}");

    let deleted = expect_ok(
        gw.delete(&format!("/v1/tenants/{id}"), ADMIN_TOKEN).await,
        StatusCode::OK,
    );
    assert_eq!(deleted, json!({"id": id, "deleted": true}));

    expect_error(
        gw.get(&format!("/v1/tenants/{id}"), ADMIN_TOKEN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.delete(&format!("/v1/tenants/{id}"), ADMIN_TOKEN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let list = expect_ok(gw.get("/v1/tenants", ADMIN_TOKEN).await, StatusCode::OK);
    assert_eq!(list["tenants"], json!([]));
}

#[tokio::test]
async fn tenant_body_validation() {
    let gw = Gateway::start();
    expect_invalid(
        gw.post("/v1/tenants", ADMIN_TOKEN, json!({"name": "   "}))
            .await,
        "name",
    );
    expect_invalid(
        gw.post("/v1/tenants", ADMIN_TOKEN, json!({"name": "x".repeat(201)}))
            .await,
        "name",
    );
    expect_error(
        gw.post("/v1/tenants", ADMIN_TOKEN, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let error = expect_error(
        gw.post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "a", "plan": "gold"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert!(
        error["message"].as_str().unwrap().contains("plan"),
        "{error}"
    );
    let list = expect_ok(gw.get("/v1/tenants", ADMIN_TOKEN).await, StatusCode::OK);
    assert_eq!(list["tenants"], json!([]), "refused creates stored nothing");
}

#[tokio::test]
async fn tenant_list_paginates_with_cursor() {
    let gw = Gateway::start();
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(gw.create_tenant(&format!("tenant {i}")).await);
    }

    let pages = gw.pages("/v1/tenants", ADMIN_TOKEN, "tenants", 2).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    let listed: Vec<String> = pages
        .iter()
        .flatten()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, created, "every tenant once, oldest first");

    // An exact fit: the page is full, and the last one says so by a null cursor.
    let pages = gw.pages("/v1/tenants", ADMIN_TOKEN, "tenants", 5).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].len(), 5);

    // The cursor of the first page of 2 starts the second page at the third tenant.
    let (_, first) = gw.get("/v1/tenants?limit=2", ADMIN_TOKEN).await;
    let cursor = first["data"]["next_cursor"].as_str().unwrap();
    let (_, second) = gw
        .get(&format!("/v1/tenants?limit=1&cursor={cursor}"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        strings(&second["data"]["tenants"], "id"),
        vec![created[2].clone()]
    );

    for bad in ["limit=0", "limit=251"] {
        expect_invalid(
            gw.get(&format!("/v1/tenants?{bad}"), ADMIN_TOKEN).await,
            "limit",
        );
    }
    expect_error(
        gw.get("/v1/tenants?limit=many", ADMIN_TOKEN).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}

#[tokio::test]
async fn keys_create_list_revoke() {
    let gw = Gateway::start();
    let tenant = gw.create_tenant("acme").await;
    let keys_path = format!("/v1/tenants/{tenant}/keys");

    let data = expect_ok(
        gw.post(
            &keys_path,
            ADMIN_TOKEN,
            json!({"name": "billing service", "scopes": ["endpoints", "publish"]}),
        )
        .await,
        StatusCode::CREATED,
    );
    let key = &data["key"];
    let key_id = key["id"].as_str().unwrap().to_string();
    let token = key["token"].as_str().unwrap().to_string();
    assert!(key_id.starts_with("key_"), "{key}");
    assert!(token.starts_with("hgk_") && token.len() > 40, "{key}");
    assert_eq!(key["tenant_id"], tenant);
    assert_eq!(key["name"], "billing service");
    assert_eq!(key["scopes"], json!(["publish", "endpoints"]));
    let prefix = key["token_prefix"].as_str().unwrap();
    assert!(
        token.starts_with(prefix) && prefix.len() < token.len() / 2,
        "{key}"
    );

    // Without a name, the key is named after its scopes; duplicates collapse.
    let other = expect_ok(
        gw.post(
            &keys_path,
            ADMIN_TOKEN,
            json!({"scopes": ["plugins", "publish", "plugins"]}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(other["key"]["scopes"], json!(["publish", "plugins"]));
    assert_eq!(other["key"]["name"], "publish+plugins");
    let other_token = other["key"]["token"].as_str().unwrap().to_string();
    assert_ne!(other_token, token);

    // The list shows both keys, never a token.
    let (status, list) = gw.get(&keys_path, ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let keys = list["data"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"], key_id);
    assert_eq!(keys[0]["scopes"], json!(["publish", "endpoints"]));
    for k in keys {
        assert!(k.get("token").is_none(), "token in list: {k}");
    }
    let text = list.to_string();
    assert!(!text.contains(&token) && !text.contains(&other_token));

    // The key works with its scopes.
    let (status, body) = gw.get("/v1/webhooks", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Revoke: it stops working at once, and is gone from the list.
    let revoked = expect_ok(
        gw.delete(&format!("{keys_path}/{key_id}"), ADMIN_TOKEN)
            .await,
        StatusCode::OK,
    );
    assert_eq!(revoked, json!({"id": key_id, "deleted": true}));
    expect_error(
        gw.get("/v1/webhooks", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let list = expect_ok(gw.get(&keys_path, ADMIN_TOKEN).await, StatusCode::OK);
    assert_eq!(
        strings(&list["keys"], "id"),
        vec![other["key"]["id"].as_str().unwrap().to_string()]
    );
    expect_error(
        gw.delete(&format!("{keys_path}/{key_id}"), ADMIN_TOKEN)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // The other key is untouched.
    let (status, body) = gw.get("/v1/tenants", &other_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "still a valid key: {body}");
}

#[tokio::test]
async fn key_list_paginates() {
    let gw = Gateway::start();
    let tenant = gw.create_tenant("acme").await;
    for _ in 0..3 {
        gw.create_key(&tenant, &["publish"]).await;
    }
    let pages = gw
        .pages(
            &format!("/v1/tenants/{tenant}/keys"),
            ADMIN_TOKEN,
            "keys",
            2,
        )
        .await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 1]);
    let ids: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "keys list once each, oldest first");
}

#[tokio::test]
async fn a_key_cannot_be_revoked_through_another_tenant() {
    let gw = Gateway::start();
    let (a, a_token) = gw.tenant_with_key("a").await;
    let b = gw.create_tenant("b").await;
    let list = expect_ok(
        gw.get(&format!("/v1/tenants/{a}/keys"), ADMIN_TOKEN).await,
        StatusCode::OK,
    );
    let a_key = list["keys"][0]["id"].as_str().unwrap().to_string();

    expect_error(
        gw.delete(&format!("/v1/tenants/{b}/keys/{a_key}"), ADMIN_TOKEN)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, body) = gw.get("/v1/webhooks", &a_token).await;
    assert_eq!(status, StatusCode::OK, "A's key must still work: {body}");
}

#[tokio::test]
async fn key_scopes_are_validated() {
    let gw = Gateway::start();
    let tenant = gw.create_tenant("acme").await;
    let path = format!("/v1/tenants/{tenant}/keys");

    let message = expect_invalid(
        gw.post(&path, ADMIN_TOKEN, json!({"scopes": []})).await,
        "scopes",
    );
    assert!(message.contains("publish"), "{message}");

    let error = expect_error(
        gw.post(&path, ADMIN_TOKEN, json!({"scopes": ["admin"]}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_eq!(error["field"], "scopes[0]", "{error}");

    let error = expect_error(
        gw.post(&path, ADMIN_TOKEN, json!({"scopes": ["publish", "write"]}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_eq!(error["field"], "scopes[1]", "{error}");

    expect_error(
        gw.post(&path, ADMIN_TOKEN, json!({"name": "no scopes"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    expect_error(
        gw.post(&path, ADMIN_TOKEN, json!({"scopes": "publish"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );

    let list = expect_ok(gw.get(&path, ADMIN_TOKEN).await, StatusCode::OK);
    assert_eq!(list["keys"], json!([]), "refused creates stored nothing");
}

#[tokio::test]
async fn only_the_token_hash_reaches_the_disk() {
    let gw = Gateway::start();
    let tenant = gw.create_tenant("hash check").await;
    let data = expect_ok(
        gw.post(
            &format!("/v1/tenants/{tenant}/keys"),
            ADMIN_TOKEN,
            json!({"scopes": ["publish", "endpoints"]}),
        )
        .await,
        StatusCode::CREATED,
    );
    let token = data["key"]["token"].as_str().unwrap().to_string();
    let key_id = data["key"]["id"].as_str().unwrap().to_string();
    // Use the key, so any lookup path has run too.
    let (status, _) = gw.get("/v1/event-types", &token).await;
    assert_eq!(status, StatusCode::OK);

    let (dir, _guard) = gw.stop();
    // The search works: the key's record is on disk, with the token's hash...
    assert!(
        stored_contains(&dir, key_id.as_bytes()),
        "key record not found on disk"
    );
    let hash_hex = hex::encode(Sha256::digest(token.as_bytes()));
    assert!(
        stored_contains(&dir, hash_hex.as_bytes()),
        "the token's SHA-256 is not stored"
    );
    // ...but never the token itself, nor its secret part alone.
    assert!(
        !stored_contains(&dir, token.as_bytes()),
        "token stored in clear"
    );
    let secret_part = &token["hgk_".len()..];
    assert!(
        !stored_contains(&dir, secret_part.as_bytes()),
        "token body stored in clear"
    );
}

#[tokio::test]
async fn deleting_a_tenant_revokes_its_keys_and_removes_its_data() {
    let gw = Gateway::start();
    let (a, a_token) = gw.tenant_with_key("doomed").await;
    let a_publish = gw.create_key(&a, &["publish"]).await;
    let (_b, b_token) = gw.tenant_with_key("survivor").await;
    for token in [&a_token, &b_token] {
        gw.add_event_types(token, &["booking.created"]).await;
        gw.create_webhook_with(
            token,
            json!({"url": "https://hooks.example.com/x", "events": ["booking.created"]}),
        )
        .await;
    }

    expect_ok(
        gw.delete(&format!("/v1/tenants/{a}"), ADMIN_TOKEN).await,
        StatusCode::OK,
    );

    for (path, token) in [
        ("/v1/webhooks", &a_token),
        ("/v1/event-types", &a_token),
        ("/v1/event-types/booking.created", &a_token),
        ("/v1/webhooks", &a_publish),
    ] {
        expect_error(
            gw.get(path, token).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    for path in [format!("/v1/tenants/{a}"), format!("/v1/tenants/{a}/keys")] {
        expect_error(
            gw.get(&path, ADMIN_TOKEN).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    expect_error(
        gw.post(
            &format!("/v1/tenants/{a}/keys"),
            ADMIN_TOKEN,
            json!({"scopes": ["endpoints"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // The other tenant keeps everything.
    let list = expect_ok(gw.get("/v1/webhooks", &b_token).await, StatusCode::OK);
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    let types = expect_ok(gw.get("/v1/event-types", &b_token).await, StatusCode::OK);
    assert_eq!(
        strings(&types["event_types"], "name"),
        catalog_with(&["booking.created"])
    );
    let tenants = expect_ok(gw.get("/v1/tenants", ADMIN_TOKEN).await, StatusCode::OK);
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 1);

    // After a restart nothing of the tenant comes back either.
    let (dir, _guard) = gw.stop();
    let gw = Gateway::builder().data_dir(&dir).start();
    expect_error(
        gw.get(&format!("/v1/tenants/{a}"), ADMIN_TOKEN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.get("/v1/webhooks", &a_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn malformed_and_unknown_ids() {
    let gw = Gateway::start();
    let tenant = gw.create_tenant("acme").await;

    // A malformed tenant id answers 400 naming the path parameter.
    for (method, path) in [
        ("GET", "/v1/tenants/nope".to_string()),
        ("DELETE", "/v1/tenants/nope".to_string()),
        (
            "GET",
            "/v1/tenants/wh_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_string(),
        ),
        ("GET", "/v1/tenants/ten_short/keys".to_string()),
        ("DELETE", format!("/v1/tenants/ten_x/keys/{UNKNOWN_KEY}")),
    ] {
        let resp = match method {
            "GET" => gw.get(&path, ADMIN_TOKEN).await,
            _ => gw.delete(&path, ADMIN_TOKEN).await,
        };
        let message = expect_invalid(resp, "id");
        assert!(message.contains("ten_"), "{method} {path}: {message}");
    }
    let message = expect_invalid(
        gw.post(
            "/v1/tenants/bogus/keys",
            ADMIN_TOKEN,
            json!({"scopes": ["publish"]}),
        )
        .await,
        "id",
    );
    assert!(message.contains("bogus"), "{message}");
    expect_invalid(
        gw.delete(&format!("/v1/tenants/{tenant}/keys/nope"), ADMIN_TOKEN)
            .await,
        "key_id",
    );

    // A well-formed id of nothing answers 404.
    for path in [
        format!("/v1/tenants/{UNKNOWN_TENANT}"),
        format!("/v1/tenants/{UNKNOWN_TENANT}/keys"),
    ] {
        expect_error(
            gw.get(&path, ADMIN_TOKEN).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    expect_error(
        gw.delete(&format!("/v1/tenants/{UNKNOWN_TENANT}"), ADMIN_TOKEN)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.post(
            &format!("/v1/tenants/{UNKNOWN_TENANT}/keys"),
            ADMIN_TOKEN,
            json!({"scopes": ["publish"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.delete(
            &format!("/v1/tenants/{UNKNOWN_TENANT}/keys/{UNKNOWN_KEY}"),
            ADMIN_TOKEN,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        gw.delete(
            &format!("/v1/tenants/{tenant}/keys/{UNKNOWN_KEY}"),
            ADMIN_TOKEN,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
