//! Plugins end to end (docs/product.md, "Plugins"): upload validation, dry
//! runs, every example plugin through a real delivery, hostile plugins
//! contained, isolation.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::utils::verify::hex_signature;
use crate::utils::wasm::{plugin, plugin_path};
use crate::utils::*;

const LONG: Duration = Duration::from_secs(20);

fn booking(status: &str) -> Value {
    json!({"booking": {
        "id": "bk_42", "status": status, "total": 1250.5, "currency": "EUR",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000"},
        "trip": {"name": "Lisbon weekend", "start_date": "2026-12-04"}
    }})
}

async fn gateway() -> (Gateway, Receiver, String) {
    let gw = Gateway::builder().delivering("0ms,100ms").start();
    let rx = Receiver::start().await;
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(
        &token,
        &["booking.created", "booking.cancelled", "trip.created"],
    )
    .await;
    (gw, rx, token)
}

async fn attach(gw: &Gateway, token: &str, url: &str, chain: Value) -> String {
    let body = gw
        .create_webhook_with(
            token,
            json!({"url": url, "events": ["booking.*", "trip.created"], "plugins": chain}),
        )
        .await;
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn uploads_are_validated_versioned_and_content_addressed() {
    let (gw, rx, token) = gateway().await;
    let wasm = plugin("crm-booking");
    let (status, first) = gw.upload_plugin(&token, "crm", wasm.clone()).await;
    // Stored at once, compiled off the request path.
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let p = &first["data"]["plugin"];
    assert!(p["id"].as_str().unwrap().starts_with("plg_"));
    assert_eq!(p["version"], 1);
    assert_eq!(p["size"], wasm.len());
    assert_eq!(p["language"], "wasm");
    assert_eq!(p["state"], "compiling");
    let compiled = gw.compiled_plugin(&token, p["id"].as_str().unwrap()).await;
    assert_eq!(compiled["state"], "ready", "{compiled}");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wasm))
    };
    assert_eq!(p["sha256"], sha);

    // Same bytes, same name: the existing version.
    let (status, again) = gw.upload_plugin(&token, "crm", wasm).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["data"]["plugin"]["id"], p["id"]);
    // New bytes under the name: the next version.
    let (status, v2) = gw.upload_plugin(&token, "crm", plugin("redact")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(v2["data"]["plugin"]["version"], 2);

    // Refusals at once, each with the reason in words.
    let refusals = [
        (b"not wasm at all".to_vec(), "not a WebAssembly component"),
        (b"\0asm\x01\0\0\0".to_vec(), "not a WebAssembly component"),
    ];
    for (bytes, reason) in refusals {
        let (status, body) = gw.upload_plugin(&token, "bad", bytes).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], "body");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message}");
    }
    // A component of another world is found out by its compile: stored,
    // then `failed` with the reason, and it cannot be attached.
    let (status, body) = gw
        .upload_plugin(&token, "wrong", plugin("hostile-wrong-world"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let wrong = body["data"]["plugin"]["id"].as_str().unwrap().to_string();
    let failed = gw.compiled_plugin(&token, &wrong).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let message = failed["error"].as_str().unwrap();
    assert!(
        message.contains("does not implement hookgate:plugin/transformer"),
        "{message}"
    );
    let (status, body) = gw
        .post(
            "/v1/webhooks",
            &token,
            json!({"url": rx.url(), "events": ["booking.*"],
                   "plugins": [{"plugin_id": wrong}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "plugins[0].plugin_id");
    let (status, _) = gw.delete(&format!("/v1/plugins/{wrong}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = gw.upload_plugin(&token, "Bad Name", plugin("redact")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "name");
    let (status, _) = gw.upload_plugin(&token, "empty", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, list) = gw.get("/v1/plugins", &token).await;
    assert_eq!(list["data"]["plugins"].as_array().unwrap().len(), 2);

    // The plugins scope is required.
    let tenant = gw.create_tenant("other").await;
    let publisher = gw.create_key(&tenant, &["publish", "endpoints"]).await;
    let (status, _) = gw.upload_plugin(&publisher, "crm", plugin("redact")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn uploads_over_the_limit_answer_413() {
    let gw = Gateway::builder()
        .env("HOOKGATE_MAX_PLUGIN_BYTES", "4096")
        .start();
    let (_, token) = gw.tenant_with_key("acme").await;
    let (status, body) = gw.upload_plugin(&token, "crm", plugin("crm-booking")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("4096"));
}

#[tokio::test]
async fn dry_run_returns_output_logs_and_time() {
    let (gw, _rx, token) = gateway().await;
    let id = gw.plugin_id(&token, "crm-booking").await;
    let (status, body) = gw
        .post(
            &format!("/v1/plugins/{id}/test"),
            &token,
            json!({"event": {"type": "booking.created", "id": "evt_dry", "data": booking("confirmed")},
                   "config": {"pipeline": "b2c"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = &body["data"];
    assert_eq!(out["outcome"], "deliver");
    let crm: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(crm["contact"]["email"], "ada@example.com");
    assert_eq!(crm["deal"]["stage"], "won");
    assert_eq!(crm["deal"]["pipeline"], "b2c");
    assert_eq!(crm["source"]["event_id"], "evt_dry");
    assert!(out["input"].as_str().unwrap().contains("\"bk_42\""));
    assert!(out["duration_us"].as_u64().unwrap() > 0);
    assert!(out["logs"].is_array());

    let (_, body) = gw
        .post(
            &format!("/v1/plugins/{id}/test"),
            &token,
            json!({"event": {"type": "trip.created", "data": {}}}),
        )
        .await;
    assert_eq!(body["data"]["outcome"], "drop");
    assert!(
        body["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("not a booking event")
    );
}

#[tokio::test]
async fn crm_booking_reshapes_deliveries_and_the_signature_covers_the_new_body() {
    let (gw, rx, token) = gateway().await;
    let id = gw.plugin_id(&token, "crm-booking").await;
    let body = gw
        .create_webhook_with(
            &token,
            json!({"url": rx.url(), "events": ["booking.*"], "plugins": [{"plugin_id": id}]}),
        )
        .await;
    let secret = body["secret"].as_str().unwrap().to_string();
    assert_eq!(body["plugins"][0]["plugin_id"], id.as_str());
    gw.publish(&token, "booking.created", booking("cancelled"))
        .await;
    let req = rx.wait_for(1, LONG).await[0].clone();
    let crm = req.json();
    assert_eq!(crm["deal"]["external_id"], "bk_42");
    assert_eq!(crm["deal"]["stage"], "lost");
    assert_eq!(crm["deal"]["amount"], 1250.5);
    assert!(crm.get("booking").is_none());
    assert_eq!(req.header("x-crm-object"), "deal");
    assert_eq!(
        req.header("x-hookgate-signature-256"),
        hex_signature(&secret, &req.body)
    );
}

#[tokio::test]
async fn field_filter_drops_what_does_not_match_and_logs_it_as_filtered() {
    let (gw, rx, token) = gateway().await;
    let id = gw.plugin_id(&token, "field-filter").await;
    let wh = attach(
        &gw,
        &token,
        &rx.url(),
        json!([{"plugin_id": id, "config": {"pointer": "/data/booking/status", "values": ["confirmed"]}}]),
    )
    .await;
    gw.publish(&token, "booking.created", booking("pending"))
        .await;
    gw.publish(&token, "booking.created", booking("confirmed"))
        .await;
    let got = rx.wait_for(1, LONG).await;
    assert_eq!(got[0].json()["data"]["booking"]["status"], "confirmed");
    let logs = gw
        .wait_for_deliveries(&token, &wh, LONG, |l| {
            l.len() == 2 && l.iter().all(|x| x["status"] != "pending")
        })
        .await;
    let filtered: Vec<&Value> = logs.iter().filter(|l| l["status"] == "filtered").collect();
    assert_eq!(filtered.len(), 1);
    let reason = filtered[0]["error"].as_str().unwrap();
    assert!(
        reason.contains("field-filter v1") && reason.contains("/data/booking/status"),
        "{reason}"
    );
    assert!(filtered[0]["next_retry"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn a_chain_runs_in_order_redact_then_crm() {
    let (gw, rx, token) = gateway().await;
    let redact = gw.plugin_id(&token, "redact").await;
    let crm = gw.plugin_id(&token, "crm-booking").await;
    attach(
        &gw,
        &token,
        &rx.url(),
        json!([
            {"plugin_id": redact, "config": {"remove": ["/data/booking/customer/phone"], "mask": ["/data/booking/customer/email"]}},
            {"plugin_id": crm}
        ]),
    )
    .await;
    gw.publish(&token, "booking.created", booking("confirmed"))
        .await;
    let req = rx.wait_for(1, LONG).await[0].clone();
    let body = req.json();
    assert_eq!(body["contact"]["email"], "[REDACTED]");
    assert!(body["contact"]["phone"].is_null());
    assert_eq!(body["contact"]["name"], "Ada Lovelace");
}

#[tokio::test]
async fn redact_alone_removes_and_masks_fields() {
    let (gw, rx, token) = gateway().await;
    let id = gw.plugin_id(&token, "redact").await;
    attach(
        &gw,
        &token,
        &rx.url(),
        json!([{"plugin_id": id, "config": {"remove": ["/data/booking/customer/phone"], "mask": ["/data/booking/customer/email"], "keep_last": 4}}]),
    )
    .await;
    gw.publish(&token, "booking.created", booking("confirmed"))
        .await;
    let req = rx.wait_for(1, LONG).await[0].clone();
    let customer = &req.json()["data"]["booking"]["customer"];
    assert!(customer.get("phone").is_none());
    assert_eq!(customer["email"], "***.com");
    assert_eq!(customer["name"], "Ada Lovelace");
}

#[tokio::test]
async fn hostile_plugins_are_contained_and_others_keep_receiving() {
    let gw = Gateway::builder()
        .delivering("0ms,100ms,100ms")
        .env("HOOKGATE_PLUGIN_OUTPUT_BYTES", "1048576")
        // Epochs measure wall time: room enough that, on a loaded test
        // machine, each hostile plugin fails for its own reason.
        .env("HOOKGATE_PLUGIN_TIMEOUT", "400ms")
        .start();
    let (_, token) = gw.tenant_with_key("acme").await;
    gw.add_event_types(&token, &["booking.created"]).await;
    let healthy = Receiver::start().await;
    let victim = Receiver::start().await;
    let (healthy_wh, _) = gw
        .create_webhook(&token, &healthy.url(), &["booking.created"])
        .await;
    let cases = [
        ("hostile-spin", "timed out after 400ms"),
        ("hostile-memory-bomb", "memory limit"),
        ("hostile-trap", "trapped"),
        ("hostile-huge-output", "over the 1048576-byte limit"),
    ];
    let mut hooks = Vec::new();
    for (name, _) in cases {
        let id = gw.plugin_id(&token, name).await;
        let body = gw
            .create_webhook_with(
                &token,
                json!({"url": victim.url(), "events": ["booking.created"], "plugins": [{"plugin_id": id}]}),
            )
            .await;
        hooks.push(body["id"].as_str().unwrap().to_string());
    }
    for i in 0..3 {
        gw.publish(&token, "booking.created", json!({"i": i})).await;
    }
    healthy.wait_for(3, LONG).await;
    for (wh, (name, reason)) in hooks.iter().zip(cases) {
        let logs = gw
            .wait_for_deliveries(&token, wh, LONG, |l| {
                l.len() == 3 && l.iter().all(|x| x["status"] == "plugin_failed")
            })
            .await;
        for log in &logs {
            let error = log["error"].as_str().unwrap();
            assert!(error.contains(reason), "{name}: {error}");
            assert_eq!(log["retry_count"], 0, "{name}: no retry storm");
            assert!(log["next_retry"].is_null());
        }
        let (_, body) = gw.get(&format!("/v1/webhooks/{wh}"), &token).await;
        assert_eq!(
            body["data"]["webhook"]["status"], "active",
            "{name}: not the receiver's fault"
        );
    }
    assert!(victim.received().is_empty());
    let logs = gw
        .wait_for_deliveries(&token, &healthy_wh, LONG, |l| l.len() == 3)
        .await;
    assert!(logs.iter().all(|l| l["status"] == "delivered"));
    // The gateway is still fine.
    let (status, _) = gw.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn plugins_of_other_tenants_are_invisible_and_in_use_ones_cannot_be_deleted() {
    let (gw, rx, token) = gateway().await;
    let id = gw.plugin_id(&token, "redact").await;
    let (_, other) = gw.tenant_with_key("other").await;
    for (method, path) in [
        (Method::GET, format!("/v1/plugins/{id}")),
        (Method::DELETE, format!("/v1/plugins/{id}")),
    ] {
        let (status, _) = gw.call(method, &path, Some(&other), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = gw
        .post(
            &format!("/v1/plugins/{id}/test"),
            &other,
            json!({"event": {"type": "a.b", "data": {}}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    gw.add_event_types(&other, &["booking.created"]).await;
    let (status, body) = gw
        .post(
            "/v1/webhooks",
            &other,
            json!({"url": rx.url(), "events": ["booking.created"], "plugins": [{"plugin_id": id}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "plugins[0].plugin_id");

    let wh = attach(&gw, &token, &rx.url(), json!([{"plugin_id": id}])).await;
    let (status, body) = gw.delete(&format!("/v1/plugins/{id}"), &token).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"].as_str().unwrap().contains(&wh));
    let (_, body) = gw.get(&format!("/v1/plugins/{id}"), &token).await;
    assert_eq!(body["data"]["used_by"][0], wh.as_str());
    let (status, _) = gw
        .patch(
            &format!("/v1/webhooks/{wh}"),
            &token,
            json!({"plugins": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = gw.delete(&format!("/v1/plugins/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn plugins_survive_a_restart() {
    let (gw, rx, token) = gateway().await;
    let id = gw.plugin_id(&token, "crm-booking").await;
    attach(&gw, &token, &rx.url(), json!([{"plugin_id": id}])).await;
    // A script is compiled to the engine's bytecode again by the new
    // process, which keeps none.
    let js_rx = Receiver::start().await;
    let (status, body) = gw.upload_script(&token, "crm-js", CRM_JS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let js = body["data"]["plugin"]["id"].as_str().unwrap().to_string();
    attach(&gw, &token, &js_rx.url(), json!([{"plugin_id": js}])).await;
    let (dir, _guard) = gw.stop();
    let gw = Gateway::builder().delivering("0ms").data_dir(&dir).start();
    gw.publish(&token, "booking.created", booking("confirmed"))
        .await;
    let req = rx.wait_for(1, LONG).await[0].clone();
    assert_eq!(req.json()["deal"]["stage"], "won");
    let req = js_rx.wait_for(1, LONG).await[0].clone();
    assert_eq!(
        req.json(),
        json!({"deal": "bk_42", "pipeline": "default", "type": "booking.created"})
    );
}

#[test]
fn cli_plugin_run_works_offline() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        json!({"id": "evt_1", "type": "booking.created", "created_at": "2026-11-23T10:00:00Z", "data": booking("confirmed")}).to_string(),
    )
    .unwrap();
    let run = |plugin: &str, config: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["plugin", "run"])
            .arg(plugin_path(plugin))
            .arg("--event")
            .arg(&event)
            .args(["--config", config])
            .output()
            .unwrap()
    };
    let out = run("crm-booking", r#"{"pipeline": "b2b"}"#);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "deliver");
    let crm: Value = serde_json::from_str(report["body"].as_str().unwrap()).unwrap();
    assert_eq!(crm["deal"]["pipeline"], "b2b");
    assert_eq!(crm["source"]["occurred_at"], "2026-11-23T10:00:00.000Z");

    let out = run("hostile-trap", "{}");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "error");
    assert!(report["error"].as_str().unwrap().contains("trapped"));

    let out = run("crm-booking", "not json");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

/// The sandbox run directly on a one-thread executor, with the `spin` plugin.
mod on_the_executor {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use hookgate::model::event::Event;
    use hookgate::model::ids::TenantId;
    use hookgate::plugins::PluginError;
    use hookgate::plugins::Prepared;
    use hookgate::plugins::host::{Limits, PluginHost};
    use hookgate::signing::HeaderNames;

    use crate::utils::wasm::plugin;

    const BUDGET: Duration = Duration::from_millis(100);
    /// Far past the CPU budget: these tests are about CPU time alone.
    const WALL: Duration = Duration::from_secs(30);

    fn spin_call() -> (
        Arc<PluginHost>,
        hookgate::plugins::host::Compiled,
        hookgate::plugins::host::WitEvent,
    ) {
        let host = PluginHost::new(Limits {
            time: BUDGET,
            ..Limits::default()
        })
        .unwrap();
        let (compiled, _) = host.compile(&plugin("hostile-spin")).unwrap();
        let event = Event::new(
            TenantId::generate(),
            None,
            "probe.ping",
            serde_json::json!({}),
        );
        let input = Prepared::of(&event).to_wit(&event, "wh_test");
        (host, compiled, input)
    }

    fn one_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// A plugin that never returns does not hold the thread: a task beside
    /// it keeps running, and the call still ends at its time budget.
    #[test]
    fn a_spinning_plugin_yields_and_still_times_out() {
        let (host, compiled, input) = spin_call();
        one_thread().block_on(async {
            let beats = Arc::new(AtomicU32::new(0));
            let counter = beats.clone();
            let beside = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            let report = host
                .call(&compiled, &input, "{}", &HeaderNames::default(), WALL)
                .await;
            beside.abort();
            assert!(
                matches!(report.result, Err(PluginError::Timeout(BUDGET))),
                "{:?}",
                report.result
            );
            // About 50 at 2 ms over 100 ms on an idle machine, fewer when
            // other tests load it; none if the call held the thread.
            let beats = beats.load(Ordering::Relaxed);
            assert!(beats >= 3, "the task beside ran {beats} times");
        });
    }

    /// Time spent waiting for a busy executor is not charged to the plugin:
    /// with a task hogging the thread 5 ms at a time, the spin gets its full
    /// 100 ms of running, so its call lasts a few times the budget.
    #[test]
    fn waiting_for_the_executor_is_not_charged() {
        let (host, compiled, input) = spin_call();
        one_thread().block_on(async {
            let hog = tokio::spawn(async {
                loop {
                    std::thread::sleep(Duration::from_millis(5));
                    tokio::task::yield_now().await;
                }
            });
            let started = Instant::now();
            let report = host
                .call(&compiled, &input, "{}", &HeaderNames::default(), WALL)
                .await;
            let took = started.elapsed();
            hog.abort();
            assert!(
                matches!(report.result, Err(PluginError::Timeout(BUDGET))),
                "{:?}",
                report.result
            );
            // Charged for the waits, it would end at about the budget; the
            // hog takes about half the thread, less when the machine is
            // busy with other work.
            assert!(took >= BUDGET * 2, "timed out after {took:?} of wall time");
        });
    }

    /// A call that cannot get a slot in time is the gateway's shortage, not
    /// the plugin's: the delivery is retried, never `plugin_failed`.
    #[test]
    fn a_call_without_a_free_slot_is_the_gateways_trouble() {
        let limits = Limits {
            time: Duration::from_secs(5),
            deadline: Duration::from_secs(10),
            ..Limits::default()
        };
        let host = PluginHost::with_slots(limits, 1, Duration::from_millis(100)).unwrap();
        let (compiled, _) = host.compile(&plugin("hostile-spin")).unwrap();
        let (_, _, input) = spin_call();
        one_thread().block_on(async {
            let busy = {
                let (host, compiled, input) = (host.clone(), compiled.clone(), input.clone());
                tokio::spawn(async move {
                    host.call(&compiled, &input, "{}", &HeaderNames::default(), WALL)
                        .await
                })
            };
            // Let the spinning call take the only slot.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let report = host
                .call(&compiled, &input, "{}", &HeaderNames::default(), WALL)
                .await;
            busy.abort();
            match report.result {
                Err(e @ PluginError::Unavailable(_)) => assert!(e.is_gateway_trouble()),
                other => panic!("{other:?}"),
            }
        });
    }
}

// JavaScript plugins

const CRM_JS: &str = r#"// Maps a booking to a CRM deal.
export function transform(event, config) {
  if (event.data.booking.status === "cancelled") {
    return { drop: "cancelled bookings are not deals" };
  }
  console.log("deal for", event.data.booking.id);
  return {
    body: { deal: event.data.booking.id, pipeline: config.pipeline ?? "default", type: event.type },
    headers: { "X-Crm-Source": "hookgate" },
  };
}
"#;

#[tokio::test]
async fn scripts_are_uploaded_as_source_checked_and_delivered() {
    let (gw, rx, token) = gateway().await;
    let (status, body) = gw.upload_script(&token, "crm-js", CRM_JS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let p = &body["data"]["plugin"];
    assert_eq!(p["language"], "javascript");
    assert_eq!(p["state"], "ready");
    assert_eq!(p["size"], CRM_JS.len());
    let id = p["id"].as_str().unwrap().to_string();
    // The same source again is the same version.
    let (status, again) = gw.upload_script(&token, "crm-js", CRM_JS).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["plugin"]["id"], id.as_str());

    // A syntax error is refused with its line; nothing is stored.
    let broken = "export function transform(event) {\n  return { body: event.id ) };\n}\n";
    let (status, body) = gw.upload_script(&token, "broken", broken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "body");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("SyntaxError"), "{message}");
    assert!(message.contains("line 2"), "{message}");
    let (status, body) = gw
        .upload_script(&token, "no-transform", "export const x = 1;")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("transform"),
        "{body}"
    );
    let resp = gw
        .request(Method::POST, "/v1/plugins?name=odd")
        .bearer_auth(&token)
        .header("content-type", "text/x-python")
        .body("def transform(): pass")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (_, list) = gw.get("/v1/plugins", &token).await;
    assert_eq!(
        list["data"]["plugins"].as_array().unwrap().len(),
        1,
        "{list}"
    );

    // A dry run shows its output and its console lines.
    let (status, body) = gw
        .post(
            &format!("/v1/plugins/{id}/test"),
            &token,
            json!({"event": {"type": "booking.created", "data": booking("confirmed")},
                   "config": {"pipeline": "b2c"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = &body["data"];
    assert_eq!(out["outcome"], "deliver", "{out}");
    assert_eq!(
        out["body"],
        r#"{"deal":"bk_42","pipeline":"b2c","type":"booking.created"}"#
    );
    assert_eq!(out["logs"][0]["message"], "deal for bk_42", "{out}");

    // Through real deliveries: transformed, or dropped as `filtered`.
    let hook = attach(&gw, &token, &rx.url(), json!([{"plugin_id": id}])).await;
    gw.publish(&token, "booking.created", booking("confirmed"))
        .await;
    gw.publish(&token, "booking.cancelled", booking("cancelled"))
        .await;
    let got = rx.wait_for(1, LONG).await;
    assert_eq!(
        got[0].json(),
        json!({"deal": "bk_42", "pipeline": "default", "type": "booking.created"})
    );
    assert_eq!(got[0].header("x-crm-source"), "hookgate");
    let logs = gw
        .wait_for_deliveries(&token, &hook, LONG, |logs| {
            logs.len() == 2 && logs.iter().all(|l| l["status"] != "pending")
        })
        .await;
    let filtered = logs.iter().find(|l| l["status"] == "filtered").unwrap();
    assert!(
        filtered["error"]
            .as_str()
            .unwrap()
            .contains("cancelled bookings are not deals"),
        "{filtered}"
    );
    // The plugin page's figure: its recent calls' median.
    let (_, body) = gw.get(&format!("/v1/plugins/{id}"), &token).await;
    assert!(
        body["data"]["plugin"]["p50_us"].as_u64().unwrap() > 0,
        "{body}"
    );
    assert_eq!(body["data"]["used_by"][0], hook.as_str());
}

/// Compiled artifacts are cached on disk by content and engine: after a
/// restart a plugin is ready at once, with no compile.
#[tokio::test]
async fn compiled_plugins_are_ready_after_a_restart_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::builder().data_dir(dir.path()).start();
    let (_, token) = gw.tenant_with_key("acme").await;
    let id = gw.plugin_id(&token, "redact").await;
    let (status, body) = gw.upload_script(&token, "js", CRM_JS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    gw.stop();
    let cached: Vec<String> = std::fs::read_dir(dir.path().join("plugin-artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The component's and the JavaScript engine's.
    assert_eq!(
        cached.iter().filter(|n| n.ends_with(".cwasm")).count(),
        2,
        "{cached:?}"
    );

    let gw = Gateway::builder().data_dir(dir.path()).start();
    let (status, body) = gw.get(&format!("/v1/plugins/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["plugin"]["state"], "ready", "{body}");
}
