//! The tenant's event type catalog (endpoints scope).

use reqwest::StatusCode;
use serde_json::json;

use crate::utils::*;

#[tokio::test]
async fn a_new_catalog_holds_only_the_builtin_types_which_are_read_only() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;

    let list = expect_ok(gw.get("/v1/event-types", &token).await, StatusCode::OK);
    let types = list["event_types"].as_array().unwrap();
    assert_eq!(
        strings(&list["event_types"], "name"),
        BUILTIN_TYPES,
        "{list}"
    );
    for t in types {
        assert_eq!(t["builtin"], true);
        assert!(t["example"].is_object(), "{list}");
    }
    assert!(list["next_cursor"].is_null());
    let test_type = &types[3];

    let got = expect_ok(
        gw.get("/v1/event-types/webhook.test", &token).await,
        StatusCode::OK,
    );
    assert_eq!(&got["event_type"], test_type);
    expect_error(
        gw.patch(
            "/v1/event-types/hookgate.endpoint.disabled",
            &token,
            json!({"description": "mine"}),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );

    for body in [
        json!({"description": "mine"}),
        json!({"example": null}),
        json!({}),
    ] {
        expect_error(
            gw.patch("/v1/event-types/webhook.test", &token, body).await,
            StatusCode::CONFLICT,
            "conflict",
        );
    }
    expect_error(
        gw.delete("/v1/event-types/webhook.test", &token).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    expect_error(
        gw.post("/v1/event-types", &token, json!({"name": "webhook.test"}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let after = expect_ok(
        gw.get("/v1/event-types/webhook.test", &token).await,
        StatusCode::OK,
    );
    assert_eq!(after, got, "webhook.test changed");
}

#[tokio::test]
async fn event_type_crud() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    let example = json!({"booking_id": "bk_123", "seats": [1, 2]});

    let data = expect_ok(
        gw.post(
            "/v1/event-types",
            &token,
            json!({"name": "booking.created", "description": "  A booking was made.  ", "example": example}),
        )
        .await,
        StatusCode::CREATED,
    );
    let created = data["event_type"].clone();
    assert_eq!(created["name"], "booking.created");
    assert_eq!(created["description"], "A booking was made.");
    assert_eq!(created["example"], example);
    assert_eq!(created["builtin"], false);
    assert_eq!(created["created_at"], created["updated_at"]);

    // Without description or example.
    let bare = expect_ok(
        gw.post(
            "/v1/event-types",
            &token,
            json!({"name": "user_v2.sign-up"}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(bare["event_type"]["description"], "");
    assert!(bare["event_type"].get("example").is_none(), "{bare}");
    gw.add_event_types(&token, &["zeta", "alpha.beta.gamma"])
        .await;

    let got = expect_ok(
        gw.get("/v1/event-types/booking.created", &token).await,
        StatusCode::OK,
    );
    assert_eq!(got["event_type"], created);

    // The list is in name order.
    let list = expect_ok(gw.get("/v1/event-types", &token).await, StatusCode::OK);
    assert_eq!(
        strings(&list["event_types"], "name"),
        vec![
            "alpha.beta.gamma",
            "booking.created",
            "hookgate.delivery.failed",
            "hookgate.endpoint.disabled",
            "hookgate.endpoint.recovered",
            "user_v2.sign-up",
            "webhook.test",
            "zeta"
        ]
    );

    // PATCH the description only: the example stays.
    let patched = expect_ok(
        gw.patch(
            "/v1/event-types/booking.created",
            &token,
            json!({"description": "Someone booked."}),
        )
        .await,
        StatusCode::OK,
    );
    let et = &patched["event_type"];
    assert_eq!(et["description"], "Someone booked.");
    assert_eq!(et["example"], example);
    assert_eq!(et["created_at"], created["created_at"]);
    assert!(
        et["updated_at"].as_str().unwrap() >= created["updated_at"].as_str().unwrap(),
        "{et}"
    );

    // PATCH the example only: the description stays.
    let new_example = json!({"booking_id": "bk_999"});
    let patched = expect_ok(
        gw.patch(
            "/v1/event-types/booking.created",
            &token,
            json!({"example": new_example}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(patched["event_type"]["example"], new_example);
    assert_eq!(patched["event_type"]["description"], "Someone booked.");

    // `"example": null` removes it; GET agrees.
    let patched = expect_ok(
        gw.patch(
            "/v1/event-types/booking.created",
            &token,
            json!({"example": null}),
        )
        .await,
        StatusCode::OK,
    );
    assert!(
        patched["event_type"]["example"].is_null(),
        "example not removed: {patched}"
    );
    assert_eq!(patched["event_type"]["description"], "Someone booked.");
    let got = expect_ok(
        gw.get("/v1/event-types/booking.created", &token).await,
        StatusCode::OK,
    );
    assert!(got["event_type"]["example"].is_null(), "{got}");
    assert_eq!(got["event_type"]["description"], "Someone booked.");

    // The name cannot be changed, and unknown fields are refused.
    expect_error(
        gw.patch(
            "/v1/event-types/booking.created",
            &token,
            json!({"name": "booking.made"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    expect_invalid(
        gw.patch(
            "/v1/event-types/booking.created",
            &token,
            json!({"description": "x".repeat(1001)}),
        )
        .await,
        "description",
    );

    // DELETE.
    let deleted = expect_ok(
        gw.delete("/v1/event-types/booking.created", &token).await,
        StatusCode::OK,
    );
    assert_eq!(deleted, json!({"id": "booking.created", "deleted": true}));
    expect_error(
        gw.get("/v1/event-types/booking.created", &token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let list = expect_ok(gw.get("/v1/event-types", &token).await, StatusCode::OK);
    assert!(!strings(&list["event_types"], "name").contains(&"booking.created".to_string()));

    // The name is free again.
    let (status, body) = gw
        .post(
            "/v1/event-types",
            &token,
            json!({"name": "booking.created"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn duplicate_names_conflict() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    expect_ok(
        gw.post(
            "/v1/event-types",
            &token,
            json!({"name": "booking.created", "description": "first"}),
        )
        .await,
        StatusCode::CREATED,
    );
    let error = expect_error(
        gw.post(
            "/v1/event-types",
            &token,
            json!({"name": "booking.created", "description": "second"}),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("booking.created"),
        "{error}"
    );
    let got = expect_ok(
        gw.get("/v1/event-types/booking.created", &token).await,
        StatusCode::OK,
    );
    assert_eq!(got["event_type"]["description"], "first");
}

#[tokio::test]
async fn invalid_names_are_refused() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    let too_long = "a".repeat(129);
    for name in [
        "",
        "booking.",
        ".created",
        "booking..created",
        "booking created",
        "booking/created",
        "booking.*",
        "*",
        "bøoking",
        too_long.as_str(),
    ] {
        expect_invalid(
            gw.post("/v1/event-types", &token, json!({"name": name}))
                .await,
            "name",
        );
    }
    // The longest allowed name is fine.
    let (status, body) = gw
        .post("/v1/event-types", &token, json!({"name": "a".repeat(128)}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Wrong shapes are 422.
    for body in [
        json!({}),
        json!({"name": 5}),
        json!({"name": "a.b", "colour": "red"}),
    ] {
        expect_error(
            gw.post("/v1/event-types", &token, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        );
    }
    let list = expect_ok(gw.get("/v1/event-types", &token).await, StatusCode::OK);
    assert_eq!(
        list["event_types"].as_array().unwrap().len(),
        1 + BUILTIN_TYPES.len(),
        "{list}"
    );
}

#[tokio::test]
async fn delete_is_refused_while_an_endpoint_subscribes_by_name() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["booking.created", "booking.cancelled"])
        .await;
    let exact = gw
        .create_webhook_with(
            &token,
            json!({"url": "https://a.example.com/", "events": ["booking.created"]}),
        )
        .await;
    let exact_id = exact["id"].as_str().unwrap();
    gw.create_webhook_with(
        &token,
        json!({"url": "https://b.example.com/", "events": ["booking.*"]}),
    )
    .await;

    let error = expect_error(
        gw.delete("/v1/event-types/booking.created", &token).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert!(
        error["message"].as_str().unwrap().contains(exact_id),
        "the message names the subscriber: {error}"
    );
    expect_ok(
        gw.get("/v1/event-types/booking.created", &token).await,
        StatusCode::OK,
    );

    // A pattern subscription does not hold a type.
    expect_ok(
        gw.delete("/v1/event-types/booking.cancelled", &token).await,
        StatusCode::OK,
    );

    // Once the endpoint no longer names it, the type can go.
    expect_ok(
        gw.patch(
            &format!("/v1/webhooks/{exact_id}"),
            &token,
            json!({"events": ["webhook.test"]}),
        )
        .await,
        StatusCode::OK,
    );
    expect_ok(
        gw.delete("/v1/event-types/booking.created", &token).await,
        StatusCode::OK,
    );
    expect_error(
        gw.get("/v1/event-types/booking.created", &token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn deleting_the_subscriber_frees_the_type() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["order.paid"]).await;
    let hook = gw
        .create_webhook_with(
            &token,
            json!({"url": "https://a.example.com/", "events": ["order.paid"]}),
        )
        .await;
    expect_error(
        gw.delete("/v1/event-types/order.paid", &token).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    expect_ok(
        gw.delete(
            &format!("/v1/webhooks/{}", hook["id"].as_str().unwrap()),
            &token,
        )
        .await,
        StatusCode::OK,
    );
    expect_ok(
        gw.delete("/v1/event-types/order.paid", &token).await,
        StatusCode::OK,
    );
}

#[tokio::test]
async fn unknown_names_answer_404() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["booking.created"]).await;
    for name in ["booking.updated", "booking", "nope"] {
        let path = format!("/v1/event-types/{name}");
        let error = expect_error(
            gw.get(&path, &token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert!(error["message"].as_str().unwrap().contains(name), "{error}");
        expect_error(
            gw.patch(&path, &token, json!({"description": "x"})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        expect_error(
            gw.delete(&path, &token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // PATCH on a missing type did not create it.
    let list = expect_ok(gw.get("/v1/event-types", &token).await, StatusCode::OK);
    let mut expected = vec!["booking.created"];
    expected.extend(BUILTIN_TYPES);
    assert_eq!(strings(&list["event_types"], "name"), expected);
}

#[tokio::test]
async fn event_type_list_paginates_in_name_order() {
    let gw = Gateway::start();
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["c.one", "a.one", "b.one", "a.two"])
        .await;
    let pages = gw.pages("/v1/event-types", &token, "event_types", 2).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 2, 2]);
    let names: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut expected = vec!["a.one", "a.two", "b.one", "c.one"];
    expected.extend(BUILTIN_TYPES);
    assert_eq!(names, expected);
}
