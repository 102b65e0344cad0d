//! Starts the real `hookgate` binary (through the shared launcher) and
//! talks to it over HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hookgate_test_support::process::{Launch, Process};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct GatewayBuilder {
    data_dir: Option<PathBuf>,
    /// The database to use instead of what the tests' backend switch says.
    database_url: Option<String>,
    env: Vec<(String, String)>,
    admin_token: Option<String>,
}

impl GatewayBuilder {
    /// Reuse a data dir (restart tests).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Keep the store in this PostgreSQL database (gateways sharing one).
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Settings for tests that deliver to a local HTTPS [`super::Receiver`]:
    /// trust the test CA, allow loopback targets, use `schedule`.
    pub fn delivering(self, schedule: &str) -> Self {
        let ca = super::test_ca().ca_file.to_str().unwrap().to_string();
        self.env("HOOKGATE_CA_FILE", &ca)
            .env("HOOKGATE_ALLOW_TARGETS", "127.0.0.0/8,::1/128")
            .env("HOOKGATE_RETRY_SCHEDULE", schedule)
    }

    /// Start without HOOKGATE_ADMIN_TOKEN, so the gateway generates one.
    pub fn generated_admin_token(mut self) -> Self {
        self.admin_token = None;
        self
    }

    pub fn start(self) -> Gateway {
        let (temp, data_dir) = match self.data_dir {
            Some(dir) => (None, dir),
            None => {
                let t = tempfile::tempdir().unwrap();
                let d = t.path().to_owned();
                (Some(t), d)
            }
        };
        let mut launch = Launch {
            admin_token: self.admin_token,
            log: "warn,hookgate=debug".into(),
            env: self.env,
            ..Launch::new(env!("CARGO_BIN_EXE_hookgate"), &data_dir)
        };
        if let Some(url) = self.database_url {
            launch.database_url = Some(url);
        }
        let process = launch.start();
        Gateway {
            base: process.base.clone(),
            stdout_before_listen: process.printed.clone(),
            process,
            data_dir,
            _temp: temp,
            client: reqwest::Client::new(),
        }
    }
}

/// A running gateway process with an API client; killed on drop.
pub struct Gateway {
    process: Process,
    pub base: String,
    pub data_dir: PathBuf,
    _temp: Option<TempDir>,
    /// What the gateway printed before it listened (the generated token).
    pub stdout_before_listen: Vec<String>,
    pub client: reqwest::Client,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            data_dir: None,
            database_url: None,
            env: Vec::new(),
            admin_token: Some(ADMIN_TOKEN.into()),
        }
    }

    pub fn start() -> Gateway {
        Self::builder().start()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request and returns the status and the parsed JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{status} body is not JSON: {text:?}"));
        (status, json)
    }

    /// Sends a raw body (for malformed-JSON and size tests).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let resp = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{status} body is not JSON: {text:?}"));
        (status, json)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Creates a tenant and returns its id.
    pub async fn create_tenant(&self, name: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/tenants",
                ADMIN_TOKEN,
                serde_json::json!({ "name": name }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["data"]["tenant"]["id"].as_str().unwrap().to_string()
    }

    /// Creates an API key with the given scopes and returns its token.
    pub async fn create_key(&self, tenant: &str, scopes: &[&str]) -> String {
        let (status, body) = self
            .post(
                &format!("/v1/tenants/{tenant}/keys"),
                ADMIN_TOKEN,
                serde_json::json!({ "scopes": scopes }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["data"]["key"]["token"].as_str().unwrap().to_string()
    }

    /// A tenant with one all-scopes key; returns (tenant id, token).
    pub async fn tenant_with_key(&self, name: &str) -> (String, String) {
        let tenant = self.create_tenant(name).await;
        let token = self
            .create_key(&tenant, &["publish", "endpoints", "plugins"])
            .await;
        (tenant, token)
    }

    /// Adds event types to the tenant's catalog.
    pub async fn add_event_types(&self, token: &str, names: &[&str]) {
        for name in names {
            let (status, body) = self
                .post(
                    "/v1/event-types",
                    token,
                    serde_json::json!({ "name": name }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }

    /// Creates a webhook; returns (id, secret).
    pub async fn create_webhook(
        &self,
        token: &str,
        url: &str,
        events: &[&str],
    ) -> (String, String) {
        let (status, body) = self
            .post(
                "/v1/webhooks",
                token,
                serde_json::json!({ "name": "test", "url": url, "events": events }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let w = &body["data"]["webhook"];
        (
            w["id"].as_str().unwrap().to_string(),
            w["secret"].as_str().unwrap().to_string(),
        )
    }

    /// Publishes an event and returns the answer's `data.event`.
    pub async fn publish(&self, token: &str, event_type: &str, data: Value) -> Value {
        let (status, body) = self
            .post(
                "/v1/events",
                token,
                serde_json::json!({ "type": event_type, "data": data }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["data"]["event"].clone()
    }

    /// Polls an endpoint's deliveries until `done` holds for the list, or
    /// panics.
    pub async fn wait_for_deliveries(
        &self,
        token: &str,
        webhook: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (status, body) = self
                .get(
                    &format!("/v1/webhooks/{webhook}/deliveries?limit=250"),
                    token,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let logs = body["data"]["deliveries"].as_array().unwrap().clone();
            if done(&logs) {
                return logs;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "deliveries did not reach the expected state in {timeout:?}: {logs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Uploads a component under `name`; returns (status, body).
    pub async fn upload_plugin(
        &self,
        token: &str,
        name: &str,
        wasm: Vec<u8>,
    ) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(self.url(&format!("/v1/plugins?name={name}")))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(wasm)
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        (status, resp.json().await.expect("JSON answer"))
    }

    /// Uploads a JavaScript plugin's source (`text/javascript`).
    pub async fn upload_script(
        &self,
        token: &str,
        name: &str,
        source: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(self.url(&format!("/v1/plugins?name={name}")))
            .bearer_auth(token)
            .header("content-type", "text/javascript")
            .body(source.to_string())
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        (status, resp.json().await.expect("JSON answer"))
    }

    /// Polls a plugin until its compile has ended (`ready` or `failed`);
    /// its `data.plugin`.
    pub async fn compiled_plugin(&self, token: &str, id: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let (status, body) = self.get(&format!("/v1/plugins/{id}"), token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let plugin = body["data"]["plugin"].clone();
            if plugin["state"] != "compiling" {
                return plugin;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "plugin {id} still compiling"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Uploads a plugin that must be accepted and waits for it to be
    /// ready; returns its id.
    pub async fn ready_plugin(&self, token: &str, name: &str, wasm: Vec<u8>) -> String {
        let (status, body) = self.upload_plugin(token, name, wasm).await;
        assert!(status.is_success(), "{status}: {body}");
        let id = body["data"]["plugin"]["id"].as_str().unwrap().to_string();
        let plugin = self.compiled_plugin(token, &id).await;
        assert_eq!(plugin["state"], "ready", "{plugin}");
        id
    }

    /// Uploads a guest plugin built from this repository and waits for it
    /// to be ready; returns its id.
    pub async fn plugin_id(&self, token: &str, crate_name: &str) -> String {
        self.ready_plugin(token, crate_name, super::wasm::plugin(crate_name))
            .await
    }

    /// Publishes `count` events of type `a.b`, ids `{producer}-{i}`, one
    /// after another from a task of their own, noting each id the gateway
    /// accepted (202) in `accepted`; stops when the gateway is gone.
    pub fn spawn_producer(
        &self,
        token: &str,
        producer: &str,
        count: usize,
        accepted: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    ) -> tokio::task::JoinHandle<()> {
        let (client, url, token, producer) = (
            self.client.clone(),
            self.url("/v1/events"),
            token.to_string(),
            producer.to_string(),
        );
        tokio::spawn(async move {
            for i in 0..count {
                let id = format!("{producer}-{i}");
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"type": "a.b", "id": id, "data": {"i": i}}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        accepted.lock().unwrap().insert(id);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return, // the gateway is gone
                }
            }
        })
    }

    /// Kills the process with SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) -> (PathBuf, Option<TempDir>) {
        self.process.kill();
        (self.data_dir.clone(), self._temp.take())
    }

    /// Creates a webhook from `body` and returns `data.webhook` (with its secret).
    pub async fn create_webhook_with(&self, token: &str, body: Value) -> Value {
        let (status, resp) = self.post("/v1/webhooks", token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{resp}");
        resp["data"]["webhook"].clone()
    }

    /// A request builder for checks on headers or odd requests.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Walks a cursor-paginated list, `limit` items a page, and returns every
    /// page's items (from `data[items_key]`), checking that each page but the
    /// last is full and carries a `next_cursor`.
    pub async fn pages(
        &self,
        path: &str,
        token: &str,
        items_key: &str,
        limit: usize,
    ) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.get(&url, token).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            let items = body["data"][items_key]
                .as_array()
                .unwrap_or_else(|| panic!("{url}: no {items_key} array in {body}"))
                .clone();
            assert!(items.len() <= limit, "{url}: page over the limit: {body}");
            let next = &body["data"]["next_cursor"];
            assert!(
                next.is_null() || next.is_string(),
                "{url}: next_cursor must be a string or null: {body}"
            );
            pages.push(items);
            match next.as_str() {
                Some(c) => {
                    assert_eq!(
                        pages.last().unwrap().len(),
                        limit,
                        "{url}: short page with a cursor"
                    );
                    cursor = Some(c.to_string());
                }
                None => break,
            }
            assert!(pages.len() < 1000, "{path}: pagination does not end");
        }
        pages
    }

    /// Stops the process with SIGTERM (graceful shutdown) and hands over the
    /// data dir, so a test can start a new gateway on it.
    pub fn stop(mut self) -> (PathBuf, Option<TempDir>) {
        self.process.stop();
        (self.data_dir.clone(), self._temp.take())
    }

    /// The gateway's resident memory now and at its peak, in bytes.
    pub fn memory(&self) -> (u64, u64) {
        self.process.memory()
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit by
    /// itself; returns how long it took, or `None` if it still runs then
    /// (it is killed on drop).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<Duration> {
        self.process.terminate_within(limit)
    }
}
