//! The /ui dashboard: its files and headers, then the whole Mogu flow
//! (docs/platforms.md) and the other screens driven in a real headless
//! Chromium (tests/ui/flow.mjs, playwright-core) against the real gateway and
//! a real HTTPS receiver.
//!
//! A missing browser, node or playwright-core fails the test with what to
//! install; it is never skipped. `node_modules` is installed with `npm ci`
//! when missing, so a machine with chromium and node needs nothing more.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::utils::*;

const CHROMIUM: &str = "/usr/bin/chromium";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn dashboard_is_served_embedded_with_a_strict_policy() {
    let gw = Gateway::start();
    for (path, content_type) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let resp = gw.request(Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {h:?}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = resp.text().await.unwrap();
        // Nothing is fetched from another origin.
        for external in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "@import",
            "from 'http",
        ] {
            assert!(
                !body.contains(external),
                "{path} loads something: {external}"
            );
        }
        if content_type == "text/html" {
            assert!(body.contains("/ui/app.js"));
            assert!(!body.contains("<script>"), "no inline script");
        }
    }
    let resp = gw
        .request(Method::GET, "/ui/../Cargo.toml")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = gw
        .request(Method::GET, "/ui/secret.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ui_dir_serves_files_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>from disk</p>").unwrap();
    let gw = Gateway::builder()
        .env("HOOKGATE_UI_DIR", dir.path().to_str().unwrap())
        .start();
    let resp = gw.request(Method::GET, "/ui/").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "<p>from disk</p>");
    // A file missing from the folder is a 404 that says why.
    let resp = gw.request(Method::GET, "/ui/app.js").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// The page learns whether plain http:// endpoint URLs are allowed, so its
/// form checks what the API will.
#[tokio::test]
async fn page_settings_follow_the_gateway() {
    for (env, allowed, concurrency) in [(None, false, 64), (Some("true"), true, 5)] {
        let mut builder = Gateway::builder();
        if let Some(v) = env {
            builder = builder
                .env("HOOKGATE_ALLOW_HTTP", v)
                .env("HOOKGATE_ENDPOINT_CONCURRENCY", &concurrency.to_string());
        }
        let gw = builder.start();
        let resp = gw
            .request(Method::GET, "/ui/settings.json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({"allow_http": allowed, "endpoint_concurrency": concurrency}),
            "{env:?}"
        );
    }
}

/// Fails with what to install when the browser or node is missing.
fn browser_tooling() -> PathBuf {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the dashboard test needs a real browser. Install it with \
         `apt-get install -y --no-install-recommends chromium chromium-driver` (.ci/run does)."
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: the dashboard test runs tests/ui/flow.mjs with node (install nodejs and npm)"
    );
    let dir = root().join("tests/ui");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .expect("run npm (is npm installed?)");
        assert!(
            status.success(),
            "`npm ci --prefix tests/ui` failed: the dashboard test needs playwright-core"
        );
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_flow_in_a_real_browser() {
    let ui_dir = browser_tooling();
    let field_filter = wasm::plugin_path("field-filter");

    // One attempt only: a failing delivery is `failed` at once and its
    // endpoint disabled, which the browser then sees and retries.
    let gw = Gateway::builder().delivering("0ms").start();
    let rx = Receiver::start().await;
    let flaky = Receiver::start().await;
    flaky.respond_with(500);

    let (_, token) = gw.tenant_with_key("MOGU Travel").await;
    for (name, description, example) in [
        (
            "booking.created",
            "A new booking",
            json!({"booking": {"id": "bk_1", "status": "confirmed", "total": 120.5}}),
        ),
        (
            "booking.cancelled",
            "A booking was cancelled",
            json!({"booking": {"id": "bk_1", "status": "cancelled"}}),
        ),
        (
            "payment.succeeded",
            "A payment went through",
            json!({"payment": {"id": "pay_1", "amount": 120.5}}),
        ),
        (
            "trip.created",
            "A trip was created",
            json!({"trip": {"id": "trp_1"}}),
        ),
    ] {
        let (status, body) = gw
            .post(
                "/v1/event-types",
                &token,
                json!({"name": name, "description": description, "example": example}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let flaky_wh = gw
        .create_webhook_with(
            &token,
            json!({"name": "ERP sync", "url": flaky.url(), "events": ["payment.*"]}),
        )
        .await;
    let flaky_id = flaky_wh["id"].as_str().unwrap().to_string();
    gw.publish(
        &token,
        "payment.succeeded",
        json!({"payment": {"id": "pay_1"}}),
    )
    .await;
    gw.wait_for_deliveries(&token, &flaky_id, Duration::from_secs(15), |logs| {
        logs.iter().any(|l| l["status"] == "failed")
    })
    .await;
    // The receiver is fixed: the browser's Retry must now succeed.
    flaky.respond_with(200);

    // More log entries than a page holds, for the pager.
    let feed = gw
        .create_webhook_with(
            &token,
            json!({"name": "Analytics feed", "url": rx.url(), "events": ["trip.*"]}),
        )
        .await;
    let feed_id = feed["id"].as_str().unwrap().to_string();
    for i in 0..23 {
        gw.publish(
            &token,
            "trip.created",
            json!({"trip": {"id": format!("trp_{i}")}}),
        )
        .await;
    }
    gw.wait_for_deliveries(&token, &feed_id, Duration::from_secs(30), |logs| {
        logs.iter().filter(|l| l["status"] == "delivered").count() == 23
    })
    .await;

    let garbage = tempfile::NamedTempFile::with_suffix(".wasm").unwrap();
    std::fs::write(garbage.path(), b"this is not a webassembly component").unwrap();
    let profile = tempfile::tempdir().unwrap();
    let shots = root().join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let output = tokio::process::Command::new("node")
        .arg(ui_dir.join("flow.mjs"))
        .current_dir(&ui_dir)
        .env("HOOKGATE_URL", &gw.base)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TENANT_KEY", &token)
        .env("RECEIVER_URL", rx.url())
        .env("FLAKY_ENDPOINT", "ERP sync")
        .env("PAGED_ENDPOINT", "Analytics feed")
        .env("PLUGIN_WASM", &field_filter)
        .env("GARBAGE_WASM", garbage.path())
        .env("CHROMIUM", CHROMIUM)
        .env("USER_DATA_DIR", profile.path())
        .env("SCREENSHOT_DIR", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), output)
        .await
        .expect("the browser flow took more than 5 minutes")
        .expect("run node tests/ui/flow.mjs");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the browser flow failed ({}); see its output above and the screenshots in {}",
        output.status,
        shots.display()
    );

    // What the browser did is what the gateway holds.
    let tests = rx.received();
    assert!(
        tests
            .iter()
            .any(|r| r.header("x-hookgate-event") == "webhook.test"),
        "Send test reached the receiver"
    );
    assert!(
        flaky.received().len() >= 2,
        "the failed delivery, then the browser's retry"
    );
    let (_, body) = gw.get("/v1/webhooks?limit=100", &token).await;
    let hooks = body["data"]["webhooks"].as_array().unwrap();
    assert!(
        hooks.iter().all(|w| w["id"] != flaky_id.as_str()),
        "ERP sync was deleted in the browser: {hooks:?}"
    );
    let mine = hooks
        .iter()
        .find(|w| w["name"] == "My integration (renamed)")
        .expect("the endpoint created in the browser, renamed");
    assert_eq!(mine["url"], rx.url());
    assert_eq!(
        mine["events"],
        json!(["booking.created", "trip.created"]),
        "{mine}"
    );
    assert_eq!(mine["status"], "active", "paused then reactivated");
    assert_eq!(mine["plugins"].as_array().unwrap().len(), 1, "{mine}");
}
