//! What the API shows of the stored records, and the shapes it reads back.
//!
//! The records of [`crate::model`] are the store's encoding; these types are
//! the JSON API and its OpenAPI schema. Each view is built from its record
//! (`From<&Record>`), and each shape a request also carries converts back
//! (`From<View> for Record`), so renaming a record's field changes neither
//! the answers nor the document, and a change of the answers is made here.
//! The conversions are exhaustive: a variant or field added to a record does
//! not compile until this module says how the API shows it. Schema names
//! stay those of the records (`#[schema(as = ...)]`), as the document has
//! always named them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::model::delivery::{Attempt, DeliveryStatus};
use crate::model::endpoint::{DeliveryOrder, EndpointStatus, LastDelivery};
use crate::model::event::MAX_EXTERNAL_ID_LEN;
use crate::model::event_type::{self, EventType};
use crate::model::ids::{AttemptId, DeliveryId, EndpointId, EventId, KeyId, PluginId, TenantId};
use crate::model::plugin::{Language, Plugin, PluginRef};
use crate::model::tenant::{ApiKey, Scope, Tenant};
use crate::plugins::host::LogLine;
use crate::plugins::registry::CompileState;
use crate::signing::HeaderNames;

/// The ULID alphabet (Crockford base32: no I, L, O or U), as a regex class.
const ULID_CLASS: &str = "[0-9A-HJKMNP-TV-Z]";

/// An id's schema: its prefix and a 26-character ULID (docs/product.md,
/// "Identifiers").
fn id_schema(prefix: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^{prefix}{ULID_CLASS}{{26}}$")))
        .examples([format!("{prefix}01JD8Z5YV3B2C4D5E6F7G8H9JK")])
        .into()
}

macro_rules! id_schemas {
    ($($id:ident),* $(,)?) => {$(
        impl utoipa::PartialSchema for $id {
            fn schema() -> RefOr<Schema> {
                id_schema($id::PREFIX)
            }
        }

        impl ToSchema for $id {}
    )*};
}

id_schemas!(
    TenantId, KeyId, EndpointId, EventId, DeliveryId, AttemptId, PluginId
);

/// An event id in a path: the gateway's `evt_` id or the producer's own
/// (docs/product.md, "Events"). Only a schema, never a value.
pub enum EventRef {}

impl utoipa::PartialSchema for EventRef {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^[A-Za-z0-9_.:-]{{1,{MAX_EXTERNAL_ID_LEN}}}$"
            )))
            .examples(["evt_01JD8Z5YV3B2C4D5E6F7G8H9JK", "bk_1042"])
            .into()
    }
}

impl ToSchema for EventRef {}

/// An event type name in a path: dot-separated segments (docs/product.md,
/// "Event types"). Only a schema, never a value.
pub enum EventTypeName {}

impl utoipa::PartialSchema for EventTypeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$"))
            .max_length(Some(event_type::MAX_NAME_LEN))
            .examples(["booking.created"])
            .into()
    }
}

impl ToSchema for EventTypeName {}

/// What a tenant API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Scope)]
pub enum ScopeView {
    /// Publish events and read them back.
    Publish,
    /// Manage endpoints, the event catalog and delivery logs.
    Endpoints,
    /// Upload and manage plugins.
    Plugins,
}

impl From<Scope> for ScopeView {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Publish => ScopeView::Publish,
            Scope::Endpoints => ScopeView::Endpoints,
            Scope::Plugins => ScopeView::Plugins,
        }
    }
}

impl From<ScopeView> for Scope {
    fn from(s: ScopeView) -> Self {
        match s {
            ScopeView::Publish => Scope::Publish,
            ScopeView::Endpoints => Scope::Endpoints,
            ScopeView::Plugins => Scope::Plugins,
        }
    }
}

/// The names of the gateway's own headers, per tenant, so a tenant can play
/// either platform of docs/platforms.md (`X-Mogu-*`, `X-Menon-Signature`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HeaderNames)]
pub struct HeaderNamesView {
    /// Carries the event type. Default `X-Hookgate-Event`.
    #[serde(default = "default_event_header")]
    pub event: String,
    /// Carries the delivery id, stable across retries. Default `X-Hookgate-Delivery`.
    #[serde(default = "default_delivery_header")]
    pub delivery: String,
    /// Carries `sha256=<hex>`. Default `X-Hookgate-Signature-256`.
    #[serde(default = "default_signature_header")]
    pub signature: String,
}

fn default_event_header() -> String {
    HeaderNames::default().event
}
fn default_delivery_header() -> String {
    HeaderNames::default().delivery
}
fn default_signature_header() -> String {
    HeaderNames::default().signature
}

impl From<&HeaderNames> for HeaderNamesView {
    fn from(h: &HeaderNames) -> Self {
        let HeaderNames {
            event,
            delivery,
            signature,
        } = h.clone();
        Self {
            event,
            delivery,
            signature,
        }
    }
}

impl From<HeaderNamesView> for HeaderNames {
    fn from(h: HeaderNamesView) -> Self {
        Self {
            event: h.event,
            delivery: h.delivery,
            signature: h.signature,
        }
    }
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tenant)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    /// Names of the event, delivery and signature headers on its deliveries.
    pub headers: HeaderNamesView,
    pub created_at: DateTime<Utc>,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        let Tenant {
            id,
            name,
            headers,
            created_at,
        } = t;
        Self {
            id: *id,
            name: name.clone(),
            headers: headers.into(),
            created_at: *created_at,
        }
    }
}

/// An API key: never its token, of which only a hash is stored.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyView {
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub scopes: Vec<ScopeView>,
    /// The token's first characters, so a person can tell keys apart.
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        let ApiKey {
            id,
            tenant_id,
            name,
            scopes,
            token_prefix,
            created_at,
        } = k;
        Self {
            id: *id,
            tenant_id: *tenant_id,
            name: name.clone(),
            scopes: scopes.iter().copied().map(ScopeView::from).collect(),
            token_prefix: token_prefix.clone(),
            created_at: *created_at,
        }
    }
}

/// An event type of the tenant's catalog.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventType)]
pub struct EventTypeView {
    pub name: String,
    pub description: String,
    /// An example `data` payload, used by test sends and the dashboard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Value>,
    /// Built-in types cannot be changed or deleted.
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&EventType> for EventTypeView {
    fn from(e: &EventType) -> Self {
        let EventType {
            name,
            description,
            example,
            builtin,
            created_at,
            updated_at,
        } = e;
        Self {
            name: name.clone(),
            description: description.clone(),
            example: example.clone(),
            builtin: *builtin,
            created_at: *created_at,
            updated_at: *updated_at,
        }
    }
}

/// One uploaded plugin version. Uploading new bytes under the same name makes
/// the next version; the bytes are stored once per SHA-256.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Plugin)]
pub struct PluginView {
    pub id: PluginId,
    pub tenant_id: TenantId,
    pub name: String,
    pub version: u32,
    /// SHA-256 of the uploaded bytes (component or script), hex.
    pub sha256: String,
    pub size: usize,
    pub created_at: DateTime<Utc>,
    /// `wasm` (a component) or `javascript` (a script).
    #[schema(value_type = String, example = "javascript")]
    pub language: Language,
    /// `compiling`, `ready` or `failed`: a component compiles after its
    /// upload; a script is ready at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "ready")]
    pub state: Option<&'static str>,
    /// Why it did not compile, when `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Median time of its recent calls on this gateway process, in
    /// microseconds; absent before its first call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<u64>,
}

impl PluginView {
    /// The view with where its compile stands and its recent call time.
    pub fn with_status(mut self, state: &CompileState, p50: Option<std::time::Duration>) -> Self {
        self.state = Some(state.name());
        if let CompileState::Failed(message) = state {
            self.error = Some(message.clone());
        }
        self.p50_us = p50.map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64);
        self
    }
}

impl From<&Plugin> for PluginView {
    fn from(p: &Plugin) -> Self {
        let Plugin {
            id,
            tenant_id,
            name,
            version,
            sha256,
            size,
            created_at,
            language,
        } = p;
        Self {
            id: *id,
            tenant_id: *tenant_id,
            name: name.clone(),
            version: *version,
            sha256: sha256.clone(),
            size: *size,
            created_at: *created_at,
            language: *language,
            state: None,
            error: None,
            p50_us: None,
        }
    }
}

/// A plugin in an endpoint's chain, with that endpoint's configuration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PluginRef)]
pub struct PluginRefView {
    pub plugin_id: PluginId,
    /// Passed to the plugin as JSON text; `{}` when left out.
    #[serde(default = "empty_config")]
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

fn empty_config() -> serde_json::Value {
    serde_json::json!({})
}

impl From<&PluginRef> for PluginRefView {
    fn from(p: &PluginRef) -> Self {
        let PluginRef { plugin_id, config } = p;
        Self {
            plugin_id: *plugin_id,
            config: config.clone(),
        }
    }
}

impl From<PluginRefView> for PluginRef {
    fn from(p: PluginRefView) -> Self {
        Self {
            plugin_id: p.plugin_id,
            config: p.config,
        }
    }
}

/// An endpoint's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = EndpointStatus)]
pub enum EndpointStatusView {
    /// Receives deliveries.
    Active,
    /// Set by the integrator: nothing is delivered, and events published
    /// meanwhile are never sent.
    Paused,
    /// Set by the gateway after a delivery exhausted its retries.
    Disabled,
}

impl From<EndpointStatus> for EndpointStatusView {
    fn from(s: EndpointStatus) -> Self {
        match s {
            EndpointStatus::Active => EndpointStatusView::Active,
            EndpointStatus::Paused => EndpointStatusView::Paused,
            EndpointStatus::Disabled => EndpointStatusView::Disabled,
        }
    }
}

impl From<EndpointStatusView> for EndpointStatus {
    fn from(s: EndpointStatusView) -> Self {
        match s {
            EndpointStatusView::Active => EndpointStatus::Active,
            EndpointStatusView::Paused => EndpointStatus::Paused,
            EndpointStatusView::Disabled => EndpointStatus::Disabled,
        }
    }
}

/// Whether an endpoint's deliveries keep their publish order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = DeliveryOrder)]
pub enum DeliveryOrderView {
    /// Attempts run side by side (the default).
    Unordered,
    /// One delivery at a time, in publish order: the next starts when the
    /// one before was delivered or failed for good, retries included.
    Fifo,
}

impl From<DeliveryOrder> for DeliveryOrderView {
    fn from(o: DeliveryOrder) -> Self {
        match o {
            DeliveryOrder::Unordered => DeliveryOrderView::Unordered,
            DeliveryOrder::Fifo => DeliveryOrderView::Fifo,
        }
    }
}

impl From<DeliveryOrderView> for DeliveryOrder {
    fn from(o: DeliveryOrderView) -> Self {
        match o {
            DeliveryOrderView::Unordered => DeliveryOrder::Unordered,
            DeliveryOrderView::Fifo => DeliveryOrder::Fifo,
        }
    }
}

/// The outcome of the endpoint's most recent delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LastDelivery)]
pub struct LastDeliveryView {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
    /// What went wrong, when it was not a 2xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub success: bool,
}

impl From<&LastDelivery> for LastDeliveryView {
    fn from(l: &LastDelivery) -> Self {
        let LastDelivery {
            at,
            response_code,
            error,
            success,
        } = l;
        Self {
            at: *at,
            response_code: *response_code,
            error: error.clone(),
            success: *success,
        }
    }
}

/// Where a delivery log entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DeliveryStatus)]
pub enum DeliveryStatusView {
    /// Not attempted yet.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// The last attempt failed; `next_retry` says whether another is scheduled.
    Failed,
    /// A plugin dropped the event.
    Filtered,
    /// A plugin failed; the receiver was not called.
    PluginFailed,
    /// Not sent: the endpoint was paused or disabled when it came due.
    Skipped,
}

impl From<DeliveryStatus> for DeliveryStatusView {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => DeliveryStatusView::Pending,
            DeliveryStatus::Delivered => DeliveryStatusView::Delivered,
            DeliveryStatus::Failed => DeliveryStatusView::Failed,
            DeliveryStatus::Filtered => DeliveryStatusView::Filtered,
            DeliveryStatus::PluginFailed => DeliveryStatusView::PluginFailed,
            DeliveryStatus::Skipped => DeliveryStatusView::Skipped,
        }
    }
}

impl From<DeliveryStatusView> for DeliveryStatus {
    fn from(s: DeliveryStatusView) -> Self {
        match s {
            DeliveryStatusView::Pending => DeliveryStatus::Pending,
            DeliveryStatusView::Delivered => DeliveryStatus::Delivered,
            DeliveryStatusView::Failed => DeliveryStatus::Failed,
            DeliveryStatusView::Filtered => DeliveryStatus::Filtered,
            DeliveryStatusView::PluginFailed => DeliveryStatus::PluginFailed,
            DeliveryStatusView::Skipped => DeliveryStatus::Skipped,
        }
    }
}

/// What the receiver answered to one request: the one shape the API gives
/// it, in each attempt of a delivery log as in a test send's result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponseSummary {
    /// The receiver answered 2xx.
    pub success: bool,
    /// The receiver's HTTP status, when it answered.
    pub response_code: Option<u16>,
    pub response_time_ms: u64,
    /// The first 4 KiB of the receiver's answer.
    pub response_body: Option<String>,
    /// What went wrong, when it was not a 2xx.
    pub error: Option<String>,
}

impl From<&Attempt> for ResponseSummary {
    fn from(a: &Attempt) -> Self {
        Self {
            success: a.success,
            response_code: a.response_code,
            response_time_ms: a.response_time_ms,
            response_body: a.response_body.clone(),
            error: a.error.clone(),
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptView {
    pub id: AttemptId,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub response: ResponseSummary,
    /// Whether a person asked for it (retry button) rather than the schedule.
    pub manual: bool,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        let Attempt {
            id,
            at,
            success: _,
            response_code: _,
            response_time_ms: _,
            response_body: _,
            error: _,
            manual,
        } = a;
        Self {
            id: *id,
            at: *at,
            response: a.into(),
            manual: *manual,
        }
    }
}

/// One line a plugin logged.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LogLine)]
pub struct LogLineView {
    /// `debug`, `info`, `warn`, `error`, or `stdout`/`stderr`.
    pub level: String,
    pub message: String,
}

impl From<LogLine> for LogLineView {
    fn from(l: LogLine) -> Self {
        Self {
            level: l.level,
            message: l.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tenant::KEY_TOKEN_PREFIX;

    /// The views answer what the records used to: the same members, in
    /// the same order, with the same values.
    #[test]
    fn views_serialise_as_the_records_did() {
        let now = crate::time::now();
        let tenant = Tenant {
            id: TenantId::generate(),
            name: "acme".into(),
            headers: HeaderNames::default(),
            created_at: now,
        };
        let key = ApiKey {
            id: KeyId::generate(),
            tenant_id: tenant.id,
            name: "k".into(),
            scopes: vec![Scope::Publish, Scope::Plugins],
            token_prefix: format!("{KEY_TOKEN_PREFIX}abcdef"),
            created_at: now,
        };
        let mut event_type = crate::model::event_type::EventType::test_type(now);
        let plugin = Plugin {
            id: PluginId::generate(),
            tenant_id: tenant.id,
            name: "p".into(),
            version: 2,
            sha256: "ab".into(),
            size: 9,
            created_at: now,
            language: crate::model::plugin::Language::Javascript,
        };
        let attempt = Attempt {
            id: AttemptId::generate(),
            at: now,
            success: false,
            response_code: Some(500),
            response_time_ms: 12,
            response_body: Some("no".into()),
            error: Some("HTTP 500".into()),
            manual: true,
        };
        let step = PluginRef {
            plugin_id: plugin.id,
            config: serde_json::json!({"a": 1}),
        };
        let last = LastDelivery {
            at: now,
            response_code: None,
            error: Some("refused".into()),
            success: false,
        };
        let same = |record: serde_json::Value, view: serde_json::Value| {
            assert_eq!(record.to_string(), view.to_string());
        };
        same(json(&tenant), json(&TenantView::from(&tenant)));
        same(json(&key), json(&ApiKeyView::from(&key)));
        same(json(&event_type), json(&EventTypeView::from(&event_type)));
        event_type.example = None;
        same(json(&event_type), json(&EventTypeView::from(&event_type)));
        same(json(&plugin), json(&PluginView::from(&plugin)));
        same(json(&attempt), json(&AttemptView::from(&attempt)));
        same(json(&step), json(&PluginRefView::from(&step)));
        same(json(&last), json(&LastDeliveryView::from(&last)));
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Filtered,
            DeliveryStatus::PluginFailed,
            DeliveryStatus::Skipped,
        ] {
            same(json(&status), json(&DeliveryStatusView::from(status)));
            assert_eq!(
                DeliveryStatus::from(DeliveryStatusView::from(status)),
                status
            );
        }
        for status in [
            EndpointStatus::Active,
            EndpointStatus::Paused,
            EndpointStatus::Disabled,
        ] {
            same(json(&status), json(&EndpointStatusView::from(status)));
            assert_eq!(
                EndpointStatus::from(EndpointStatusView::from(status)),
                status
            );
        }
        for scope in Scope::ALL {
            same(json(&scope), json(&ScopeView::from(scope)));
            assert_eq!(Scope::from(ScopeView::from(scope)), scope);
        }
    }

    fn json<T: Serialize>(value: &T) -> serde_json::Value {
        serde_json::to_value(value).unwrap()
    }

    /// What a request carries converts back to the record it stands for.
    #[test]
    fn request_shapes_convert_back() {
        let headers: HeaderNamesView =
            serde_json::from_value(serde_json::json!({"event": "X-Mogu-Event"})).unwrap();
        let headers = HeaderNames::from(headers);
        assert_eq!(headers.event, "X-Mogu-Event");
        assert_eq!(headers.delivery, HeaderNames::default().delivery);
        let step: PluginRefView = serde_json::from_value(
            serde_json::json!({"plugin_id": PluginId::generate().to_string()}),
        )
        .unwrap();
        assert_eq!(PluginRef::from(step).config, serde_json::json!({}));
        let unknown = serde_json::json!({"plugin_id": PluginId::generate().to_string(), "x": 1});
        assert!(serde_json::from_value::<PluginRefView>(unknown).is_err());
    }
}
