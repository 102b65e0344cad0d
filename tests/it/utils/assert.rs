//! Assertions on the `{"success", "data"}` envelope shared by every test
//! module.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

/// Asserts a success answer with `status` and returns its `data`.
#[track_caller]
pub fn expect_ok(resp: (StatusCode, Value), status: StatusCode) -> Value {
    let (got, body) = resp;
    assert_eq!(got, status, "unexpected status; body: {body}");
    assert_eq!(body["success"], true, "{body}");
    assert!(body.get("error").is_none(), "{body}");
    body["data"].clone()
}

/// Asserts an error answer with `status` and `code`, in the error envelope,
/// and returns its `error` object.
#[track_caller]
pub fn expect_error(resp: (StatusCode, Value), status: StatusCode, code: &str) -> Value {
    let (got, body) = resp;
    assert_eq!(got, status, "unexpected status; body: {body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(body.get("data").is_none(), "{body}");
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error without a message: {body}");
    error.clone()
}

/// Asserts a 400 `validation_failed` naming `field`; returns the message.
#[track_caller]
pub fn expect_invalid(resp: (StatusCode, Value), field: &str) -> String {
    let error = expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(error["field"], field, "{error}");
    error["message"].as_str().unwrap().to_string()
}

/// Asserts a webhook view carries no signing secret of any form.
#[track_caller]
pub fn assert_no_secret(webhook: &Value) {
    assert!(webhook.is_object(), "not a webhook: {webhook}");
    assert!(webhook.get("secret").is_none(), "secret leaked: {webhook}");
    assert!(
        !webhook.to_string().contains("whsec_"),
        "secret leaked: {webhook}"
    );
}

/// The string values of `key` in every object of the array `items`.
#[track_caller]
pub fn strings(items: &Value, key: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|item| item[key].as_str().unwrap().to_string())
        .collect()
}

/// Whether what the gateway on `dir` stored contains `needle` (a byte
/// search, for checking what reached the disk): any file under its data
/// dir and, when the tests run on PostgreSQL, its database, dumped (where
/// binary columns show in hex, so `needle` is looked for in hex too).
pub fn stored_contains(dir: &Path, needle: &[u8]) -> bool {
    if dir_contains(dir, needle) {
        return true;
    }
    match hookgate_test_support::database::dump(dir) {
        Some(dump) => contains(&dump, needle) || contains(&dump, hex::encode(needle).as_bytes()),
        None => false,
    }
}

fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            dir_contains(&path, needle)
        } else {
            contains(&std::fs::read(&path).unwrap(), needle)
        }
    })
}

/// Waits up to `within` until `rx` has received every event in `accepted`
/// (at least once), or fails naming the ones never delivered.
pub async fn all_arrive_within(
    within: std::time::Duration,
    rx: &hookgate_test_support::receiver::Receiver,
    accepted: &std::collections::HashSet<String>,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let got: std::collections::HashSet<String> = rx
            .received()
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap().to_string())
            .collect();
        let lost: Vec<&String> = accepted.difference(&got).collect();
        if lost.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} accepted events never delivered, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
