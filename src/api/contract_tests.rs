//! The OpenAPI document against the router that serves it, in process:
//!
//! - every route registered in `src/api/` is documented with its method,
//!   and every documented operation is registered;
//! - no two resources document different schemas under one name;
//! - every path parameter has a pattern, which the real ids match;
//! - every documented request example follows its schema and is accepted
//!   by its route (a 2xx, never a 400 or 422);
//! - every answer the routes give, for every documented operation, has a
//!   documented status and follows the schema documented for it, closed:
//!   a member the schema does not name is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use regex::Regex;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, Parts};
use crate::config::Config;
use crate::delivery::sender::Sender;
use crate::delivery::{Engine, EngineSettings};
use crate::model::ids::TenantId;
use crate::model::tenant::hash_token;
use crate::plugins::compile::Compiler;
use crate::plugins::{Limits, PluginHost, Plugins};
use crate::service::Service;
use crate::store::test_support::temp_store;
use crate::store::{NewPlugin, PluginQuota, Store};
use crate::target_guard::TargetGuard;

const ADMIN_TOKEN: &str = "hgadm_contract_tests_admin_token";
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// A gateway on a temp store, without a socket. Endpoints may point at
/// loopback (the fixtures' receiver is a closed port there), and the
/// engine's sender refuses every private address, so nothing leaves the
/// machine.
struct Gateway {
    router: Router,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start() -> Gateway {
        let (store, dir) = temp_store();
        let config = Config::default();
        let sender =
            Sender::new(TargetGuard::default(), Duration::from_secs(1), None, None).unwrap();
        let host = PluginHost::new(Limits::default()).unwrap();
        let quota = PluginQuota {
            count: 10,
            bytes: 1 << 20,
        };
        let plugins = Plugins::new(host, Compiler::in_process(), store.clone(), quota);
        let settings = EngineSettings {
            schedule: config.retry_schedule.clone(),
            jitter: 0.0,
            workers: 2,
            endpoint_concurrency: 1,
            tenant_concurrency: 2,
            retention_days: 30,
        };
        let runtime = tokio::runtime::Handle::current();
        let engine = Engine::start(store.clone(), sender, plugins.clone(), settings, runtime)
            .await
            .unwrap();
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let loopback = vec!["127.0.0.0/8".parse().unwrap()];
        let state = AppState::new(Parts {
            service: Service::new(store.clone(), engine, config.retry_schedule.clone()),
            store: store.clone(),
            plugins,
            metrics: Some(metrics),
            guard: TargetGuard::new(loopback, true),
            config: std::sync::Arc::new(config),
            admin_token_hash: hash_token(ADMIN_TOKEN),
        });
        Gateway {
            router: super::router(state),
            store,
            _dir: dir,
        }
    }

    /// One request through the router: the status, the content type and
    /// the body.
    async fn send(&self, request: Request<Body>) -> (StatusCode, String, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, content_type, body.to_vec())
    }

    /// A JSON call that must answer 2xx; its `data`.
    async fn data(&self, method: Method, uri: &str, token: &str, body: Value) -> Value {
        let request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, _, body) = self.send(request).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(status.is_success(), "{method} {uri}: {status} {body}");
        body["data"].clone()
    }
}

/// The records every documented operation is sent against, by the path
/// parameter it fills.
struct Fixtures {
    /// A tenant-scoped key with every scope, of the tenant owning the rest.
    token: String,
    /// A second tenant and one of its keys, for the operator routes (which
    /// delete them).
    tenant: String,
    key: String,
    event_type: String,
    webhook: String,
    delivery: String,
    event: String,
    plugin: String,
}

impl Fixtures {
    async fn make(gw: &Gateway) -> Fixtures {
        let admin = ADMIN_TOKEN;
        let owner = gw
            .data(Method::POST, "/v1/tenants", admin, json!({"name": "owner"}))
            .await;
        let owner_id = owner["tenant"]["id"].as_str().unwrap().to_string();
        let scopes = json!({"scopes": ["publish", "endpoints", "plugins"]});
        let key = gw
            .data(
                Method::POST,
                &format!("/v1/tenants/{owner_id}/keys"),
                admin,
                scopes,
            )
            .await;
        let token = key["key"]["token"].as_str().unwrap().to_string();

        let other = gw
            .data(Method::POST, "/v1/tenants", admin, json!({"name": "other"}))
            .await;
        let tenant = other["tenant"]["id"].as_str().unwrap().to_string();
        let other_key = gw
            .data(
                Method::POST,
                &format!("/v1/tenants/{tenant}/keys"),
                admin,
                json!({"scopes": ["publish"]}),
            )
            .await;

        let event_type = "booking.created";
        let body = json!({"name": event_type, "example": {"booking_id": "bk_1"}});
        gw.data(Method::POST, "/v1/event-types", &token, body).await;
        let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["booking.*"]});
        let webhook = gw.data(Method::POST, "/v1/webhooks", &token, body).await;
        let body = json!({"type": event_type, "data": {"booking_id": "bk_1"}});
        let event = gw.data(Method::POST, "/v1/events", &token, body).await;

        // Stored directly: a plugin upload needs a real component. A dry
        // run of these bytes answers 200 with the outcome `error`.
        let owner_id: TenantId = owner_id.parse().unwrap();
        let stored = gw
            .store
            .create_plugin(
                NewPlugin {
                    tenant_id: owner_id,
                    name: "fixture",
                    sha256: "00",
                    wasm: b"not a component",
                    language: crate::model::plugin::Language::Wasm,
                    engine: "none",
                    artifact: Some(b"".as_slice()),
                },
                PluginQuota {
                    count: 10,
                    bytes: 1 << 20,
                },
            )
            .await
            .unwrap();
        let plugin = match stored {
            crate::store::Stored::Created(p) | crate::store::Stored::Existing(p) => p,
        };

        let text = |v: &Value| v.as_str().unwrap().to_string();
        Fixtures {
            token,
            tenant,
            key: text(&other_key["key"]["id"]),
            event_type: event_type.into(),
            webhook: text(&webhook["webhook"]["id"]),
            delivery: text(&event["event"]["deliveries"][0]["delivery_id"]),
            event: text(&event["event"]["id"]),
            plugin: plugin.id.to_string(),
        }
    }

    /// The value of path parameter `name` in `path`.
    fn param(&self, path: &str, name: &str) -> &str {
        let resource = path.split('/').nth(2).unwrap_or_default();
        match (resource, name) {
            ("tenants", "id") => &self.tenant,
            ("tenants", "key_id") => &self.key,
            ("event-types", "name") => &self.event_type,
            ("webhooks" | "seller", "id") => &self.webhook,
            ("webhooks", "delivery_id" | "log_id") => &self.delivery,
            ("events", "id") => &self.event,
            ("plugins", "id") => &self.plugin,
            _ => panic!("no fixture for {{{name}}} in {path}: add one to Fixtures"),
        }
    }

    /// The token an operation is sent with.
    fn token(&self, path: &str, operation: &Value) -> Option<&str> {
        let secured = operation["security"].is_array();
        match secured {
            false => None,
            true if path.starts_with("/v1/tenants") || path == "/v1/stats" => Some(ADMIN_TOKEN),
            true => Some(&self.token),
        }
    }
}

/// Checks values against the schemas of one OpenAPI document.
struct Schemas<'a> {
    doc: &'a Value,
}

impl<'a> Schemas<'a> {
    /// `schema` with its `$ref`s followed.
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        while let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {target}"));
            schema = self.doc["components"]["schemas"]
                .get(name)
                .unwrap_or_else(|| panic!("$ref to a missing schema: {name}"));
        }
        schema
    }

    fn errors(&self, value: &Value, schema: &'a Value) -> Vec<String> {
        let mut problems = Vec::new();
        self.check(value, schema, "$", &mut problems);
        problems
    }

    fn check(&self, value: &Value, schema: &'a Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        for keyword in ["oneOf", "anyOf"] {
            if let Some(branches) = schema.get(keyword).and_then(Value::as_array) {
                let matching = branches
                    .iter()
                    .filter(|b| self.errors(value, b).is_empty())
                    .count();
                if matching == 0 || (keyword == "oneOf" && matching > 1) {
                    problems.push(format!(
                        "{at}: {value} matches {matching} of the {keyword} branches"
                    ));
                }
                return;
            }
        }
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                other => panic!("{at}: unexpected type {other}"),
            };
            if !allowed.iter().any(|t| has_type(value, t)) {
                problems.push(format!("{at}: {value} is not of type {types}"));
                return;
            }
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {options:?}"));
        }
        match value {
            Value::String(s) => check_string(s, schema, at, problems),
            Value::Number(n) => {
                let below = schema
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .is_some_and(|min| n.as_f64().unwrap_or_default() < min);
                if below {
                    problems.push(format!("{at}: {n} is below its minimum"));
                }
            }
            Value::Array(items) => {
                if let Some(prefix) = schema.get("prefixItems").and_then(Value::as_array) {
                    if items.len() != prefix.len() {
                        problems.push(format!("{at}: {} items, not {}", items.len(), prefix.len()));
                    }
                    for (i, (item, s)) in items.iter().zip(prefix).enumerate() {
                        self.check(item, s, &format!("{at}[{i}]"), problems);
                    }
                } else if let Some(s) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, s, &format!("{at}[{i}]"), problems);
                    }
                }
            }
            Value::Object(members) => self.check_object(members, schema, at, problems),
            Value::Null | Value::Bool(_) => {}
        }
    }

    /// An object against the members its schema names (with those of its
    /// `allOf` parts). A schema naming members is closed: others are errors.
    fn check_object(
        &self,
        members: &serde_json::Map<String, Value>,
        schema: &'a Value,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        let mut properties = BTreeMap::new();
        let mut required = BTreeSet::new();
        self.collect(schema, &mut properties, &mut required);
        for name in &required {
            if !members.contains_key(name) {
                problems.push(format!("{at}: the required member '{name}' is missing"));
            }
        }
        let closed = !properties.is_empty();
        for (name, value) in members {
            let here = format!("{at}.{name}");
            match properties.get(name.as_str()) {
                Some(s) => self.check(value, s, &here, problems),
                None if closed => problems.push(format!("{here} is not in the schema")),
                None => {}
            }
        }
    }

    fn collect(
        &self,
        schema: &'a Value,
        properties: &mut BTreeMap<&'a str, &'a Value>,
        required: &mut BTreeSet<String>,
    ) {
        let schema = self.resolve(schema);
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.collect(part, properties, required);
        }
        for (name, s) in schema["properties"].as_object().into_iter().flatten() {
            properties.insert(name, s);
        }
        for name in schema["required"].as_array().into_iter().flatten() {
            required.insert(name.as_str().unwrap().to_string());
        }
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown type {other}"),
    }
}

fn check_string(s: &str, schema: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !Regex::new(pattern).unwrap().is_match(s)
    {
        problems.push(format!("{at}: '{s}' does not match {pattern}"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && s.chars().count() as u64 > max
    {
        problems.push(format!("{at}: '{s}' is longer than {max}"));
    }
    if schema.get("format") == Some(&json!("date-time"))
        && chrono::DateTime::parse_from_rfc3339(s).is_err()
    {
        problems.push(format!("{at}: '{s}' is not a date-time"));
    }
}

/// The document as the router serves it.
async fn served_document(gw: &Gateway) -> Value {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (status, content_type, body) = gw.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    serde_json::from_slice(&body).unwrap()
}

/// Every documented operation, as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in HTTP_METHODS {
            if let Some(op) = item.get(method) {
                all.push((method.to_string(), path.clone(), op.clone()));
            }
        }
    }
    all
}

/// The routes registered in `src/api/` (method, path), read from the
/// sources: each handler named in a `routes!` registration, with the
/// method and path of its `#[utoipa::path]`. Also returns the paths of
/// plain `.route(...)` calls, which axum would serve undocumented.
fn registered_routes() -> (BTreeSet<(String, String)>, Vec<String>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
    let sources: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs") && !p.ends_with(file!()))
        .map(|p| {
            let mut text = std::fs::read_to_string(&p).unwrap();
            // Unit tests build routers of their own.
            if let Some(tests) = text.find("#[cfg(test)]\nmod tests {") {
                text.truncate(tests);
            }
            (p.display().to_string(), text)
        })
        .collect();
    let attribute =
        Regex::new(r#"(?s)#\[utoipa::path\(\s*(\w+)\s*,\s*path\s*=\s*"([^"]+)".*?\bfn\s+(\w+)"#)
            .unwrap();
    let registration = Regex::new(r"routes!\(([^)]*)\)").unwrap();
    let plain = Regex::new(r#"\.(?:route|route_service|nest|nest_service)\(\s*"([^"]+)""#).unwrap();

    let mut documented: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (file, text) in &sources {
        for c in attribute.captures_iter(text) {
            let handler = c[3].to_string();
            let route = (c[1].to_lowercase(), c[2].to_string());
            let earlier = documented.insert(handler.clone(), route);
            assert!(earlier.is_none(), "two handlers named {handler} ({file})");
        }
    }
    let mut registered = BTreeSet::new();
    let mut undocumented = Vec::new();
    for (file, text) in &sources {
        for c in registration.captures_iter(text) {
            for handler in c[1].split(',').map(str::trim).filter(|h| !h.is_empty()) {
                let name = handler.rsplit("::").next().unwrap();
                let route = documented.get(name).unwrap_or_else(|| {
                    panic!("{file}: {name} is registered without #[utoipa::path]")
                });
                registered.insert(route.clone());
            }
        }
        for c in plain.captures_iter(text) {
            undocumented.push(format!("{file}: {}", &c[1]));
        }
    }
    (registered, undocumented)
}

#[tokio::test]
async fn every_registered_route_is_documented_and_every_documented_one_registered() {
    let gw = Gateway::start().await;
    let doc = served_document(&gw).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let (registered, undocumented) = registered_routes();
    assert!(
        registered.len() > 20,
        "the sources were not read: {registered:?}"
    );
    assert_eq!(
        registered.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&registered).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not registered"
    );
    assert!(
        undocumented.is_empty(),
        "routes added outside routes!, so not documented: {undocumented:?}"
    );
    // The dashboard's files are the one part of the router outside the
    // document (docs/product.md): all of them under /ui, none documented.
    for path in documented.iter().map(|(_, p)| p) {
        assert!(!path.starts_with("/ui"), "{path}");
    }
}

#[test]
fn no_two_resources_document_different_schemas_under_one_name() {
    let mut seen: BTreeMap<String, (usize, Value)> = BTreeMap::new();
    let mut clashes = Vec::new();
    for (i, resource) in super::resources(1 << 20).iter().enumerate() {
        let components = resource
            .get_openapi()
            .components
            .clone()
            .unwrap_or_default();
        for (name, schema) in components.schemas {
            let schema = serde_json::to_value(schema).unwrap();
            match seen.get(&name) {
                Some((j, earlier)) if *earlier != schema => {
                    clashes.push(format!("{name}: resource {j} and resource {i} differ"));
                }
                Some(_) => {}
                None => {
                    seen.insert(name, (i, schema));
                }
            }
        }
    }
    assert!(clashes.is_empty(), "{clashes:#?}");
    assert!(seen.contains_key("WebhookTestRequest") && seen.contains_key("PluginTestRequest"));
}

/// Every operation, sent against the fixtures: examples are accepted, and
/// every answer is documented and follows its schema.
#[tokio::test]
async fn every_operation_answers_as_documented_and_accepts_its_example() {
    let gw = Gateway::start().await;
    let doc = served_document(&gw).await;
    let schemas = Schemas { doc: &doc };
    let fixtures = Fixtures::make(&gw).await;

    let mut ops = operations(&doc);
    // Deletions last: deeper paths first (a key before its tenant), then
    // endpoints before the event types they may subscribe to by name.
    ops.sort_by_key(|(method, path, _)| {
        let deletion = method == "delete";
        let depth = path.matches('/').count();
        (
            deletion,
            std::cmp::Reverse(deletion.then_some((depth, path.clone()))),
            path.clone(),
        )
    });
    let mut problems = Vec::new();
    let mut examples = 0;
    for (method, path, op) in &ops {
        let what = format!("{} {path}", method.to_uppercase());

        // Path parameters: each has a pattern, which its fixture matches.
        let mut uri = path.clone();
        let mut query = Vec::new();
        for param in op["parameters"].as_array().into_iter().flatten() {
            let name = param["name"].as_str().unwrap();
            let schema = schemas.resolve(&param["schema"]);
            match param["in"].as_str().unwrap() {
                "path" => {
                    let value = fixtures.param(path, name);
                    match schema["pattern"].as_str() {
                        None => problems.push(format!("{what}: {{{name}}} has no pattern")),
                        Some(_) => {
                            for p in schemas.errors(&json!(value), &param["schema"]) {
                                problems.push(format!("{what}: {{{name}}}: {p}"));
                            }
                        }
                    }
                    uri = uri.replace(&format!("{{{name}}}"), value);
                }
                "query" if param["required"] == json!(true) => {
                    let example = param
                        .get("example")
                        .or_else(|| schema.get("examples").and_then(|e| e.get(0)))
                        .and_then(Value::as_str)
                        .unwrap_or_else(|| panic!("{what}: required ?{name} has no example"));
                    query.push(format!("{name}={example}"));
                }
                _ => {}
            }
        }
        if !query.is_empty() {
            uri = format!("{uri}?{}", query.join("&"));
        }

        let mut request = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(&uri);
        if let Some(token) = fixtures.token(path, op) {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let content = &op["requestBody"]["content"];
        let mut example = None;
        let body = if let Some(json_body) = content.get("application/json") {
            let value = json_body
                .get("example")
                .unwrap_or_else(|| panic!("{what}: the request body has no example"));
            for p in schemas.errors(value, &json_body["schema"]) {
                problems.push(format!(
                    "{what}: the example does not follow its schema: {p}"
                ));
            }
            example = Some(value.clone());
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(value.to_string())
        } else if let Some((content_type, _)) = content.as_object().and_then(|c| c.iter().next()) {
            // A binary upload: bytes that are not what it wants, answered
            // with a documented error.
            request = request.header(header::CONTENT_TYPE, content_type.as_str());
            Body::from("not a component")
        } else {
            Body::empty()
        };

        let (status, content_type, answer) = gw.send(request.body(body).unwrap()).await;
        let parsed: Option<Value> = serde_json::from_slice(&answer).ok();
        let not_routed = matches!(
            parsed
                .as_ref()
                .map(|a| (a["error"]["code"].as_str(), a["error"]["message"].as_str())),
            Some((Some("not_found"), Some("no such route")) | (Some("method_not_allowed"), _))
        );
        if not_routed {
            problems.push(format!("{what}: documented but not served ({status})"));
            continue;
        }
        if let Some(example) = &example {
            examples += 1;
            if !status.is_success() {
                problems.push(format!(
                    "{what}: the documented example was refused with {status}: {example} -> {}",
                    String::from_utf8_lossy(&answer)
                ));
            }
        }
        let Some(documented) = op["responses"].get(status.as_str()) else {
            problems.push(format!(
                "{what}: answered {status}, which is not documented: {}",
                String::from_utf8_lossy(&answer)
            ));
            continue;
        };
        match documented["content"]
            .as_object()
            .and_then(|c| c.iter().next())
        {
            None => {}
            Some((documented_type, media)) => {
                if !content_type.starts_with(documented_type.as_str()) {
                    problems.push(format!(
                        "{what}: {status} answered {content_type}, documented {documented_type}"
                    ));
                }
                if let Some(schema) = media.get("schema") {
                    match &parsed {
                        None => problems.push(format!("{what}: {status} is not JSON")),
                        Some(value) => {
                            for p in schemas.errors(value, schema) {
                                problems.push(format!("{what}: the {status} answer: {p}"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(examples >= 10, "only {examples} request examples were sent");
    assert!(problems.is_empty(), "{problems:#?}");
}
