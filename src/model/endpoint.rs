//! Webhook endpoints: where a tenant's events go (docs/product.md,
//! "Endpoints").

use serde::{Deserialize, Serialize};

use super::event_type::EventFilter;
use super::ids::{EndpointId, TenantId};
use super::plugin::PluginRef;
use crate::time::Timestamp;
use crate::validation::FieldError;
use chrono::{DateTime, Utc};

/// Longest endpoint name.
pub const MAX_NAME_LEN: usize = 200;
/// Most subscriptions one endpoint may hold.
pub const MAX_EVENTS: usize = 256;
/// Most static headers one endpoint may add to its deliveries.
pub const MAX_HEADERS: usize = 32;
/// Longest static header name, and value.
pub const MAX_HEADER_NAME: usize = 256;
pub const MAX_HEADER_VALUE: usize = 4096;
/// Longest username, password or token of an endpoint's `auth`.
pub const MAX_CREDENTIAL: usize = 4096;
/// The highest `rate_limit`, deliveries per second.
pub const MAX_RATE_LIMIT: f64 = 100_000.0;
/// The lowest `rate_limit`: one delivery an hour.
pub const MIN_RATE_LIMIT: f64 = 1.0 / 3600.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    /// Receives deliveries.
    Active,
    /// Set by the integrator: nothing is delivered, and events published
    /// meanwhile are never sent, as on Mogu (docs/platforms.md).
    Paused,
    /// Set by the gateway after a delivery exhausted its retries.
    Disabled,
}

/// Whether an endpoint's deliveries keep their publish order
/// (docs/product.md, "Delivery controls": ordering).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOrder {
    /// Attempts run side by side, within the endpoint's window.
    #[default]
    Unordered,
    /// One delivery at a time, in publish order: the next starts when the
    /// one before it was delivered or failed for good, retries included.
    Fifo,
}

impl DeliveryOrder {
    pub fn is_fifo(self) -> bool {
        self == DeliveryOrder::Fifo
    }

    fn is_unordered(&self) -> bool {
        *self == DeliveryOrder::Unordered
    }
}

/// The outcome of the endpoint's most recent delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastDelivery {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
    /// What went wrong, when it was not a 2xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub success: bool,
}

impl LastDelivery {
    /// Whether this outcome only repeats `earlier`: the same success and
    /// status within a second. An endpoint's record is not written again
    /// for a repeat, so a busy endpoint costs one write a second.
    pub fn repeats(&self, earlier: &LastDelivery) -> bool {
        self.success == earlier.success
            && self.response_code == earlier.response_code
            && (self.at - earlier.at) < chrono::Duration::seconds(1)
    }
}

/// A secret that still signs for a while after a rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiredSecret {
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

/// An endpoint as stored, secrets included. The API never serialises this
/// type directly: its views decide when the secret may be shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub tenant_id: TenantId,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub status: EndpointStatus,
    /// Why the gateway disabled the endpoint; cleared on resume.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    pub secret: String,
    #[serde(default)]
    pub previous_secret: Option<RetiredSecret>,
    #[serde(default)]
    pub last_delivery: Option<LastDelivery>,
    /// The plugin chain run on every delivery before signing, in order.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    /// The most attempts in flight at once to this endpoint; its window
    /// adapts below it (`delivery/window.rs`). `None`: the gateway's
    /// `endpoint_concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Headers added to every delivery, in order (checked by
    /// [`validate_headers`]: none the gateway sets itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Credentials sent as `Authorization` on every delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ReceiverAuth>,
    /// Deliveries per second at most; the excess waits in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// A client certificate presented to the receiver (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client: Option<ClientTls>,
    /// Whether deliveries keep their publish order.
    #[serde(default, skip_serializing_if = "DeliveryOrder::is_unordered")]
    pub ordering: DeliveryOrder,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Endpoint {
    /// Secrets that sign requests at `now`: the current one first, then the
    /// previous one while its overlap lasts (docs/product.md, "Signing":
    /// rotation).
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some(old) = &self.previous_secret
            && old.expires_at > now
        {
            secrets.push(old.secret.as_str());
        }
        secrets
    }

    /// An active endpoint subscribed to `a.b`, for tests.
    #[cfg(test)]
    pub(crate) fn sample(tenant_id: TenantId, name: &str) -> Endpoint {
        let now = crate::time::now();
        Endpoint {
            id: EndpointId::generate(),
            tenant_id,
            name: name.into(),
            url: "https://example.com".into(),
            events: vec!["a.b".into()],
            status: EndpointStatus::Active,
            disabled_reason: None,
            secret: "whsec_old".into(),
            previous_secret: None,
            last_delivery: None,
            plugins: Vec::new(),
            max_in_flight: None,
            headers: Vec::new(),
            auth: None,
            rate_limit: None,
            tls_client: None,
            ordering: DeliveryOrder::Unordered,
            created_at: now,
            updated_at: now,
        }
    }

    /// Replaces the secret, keeping the old one valid until `expires_at`.
    pub fn rotate_secret(&mut self, new_secret: String, expires_at: Timestamp) {
        let old = std::mem::replace(&mut self.secret, new_secret);
        self.previous_secret = Some(RetiredSecret {
            secret: old,
            expires_at,
        });
    }
}

/// How a receiver wants deliveries to prove who sends them, besides the
/// signature (docs/product.md, "Delivery controls").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ReceiverAuth {
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
}

impl ReceiverAuth {
    /// The `Authorization` header's value.
    pub fn header_value(&self) -> String {
        use base64::Engine as _;
        match self {
            ReceiverAuth::Basic { username, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            ),
            ReceiverAuth::Bearer { token } => format!("Bearer {token}"),
        }
    }

    /// Checks the credentials can be sent: not empty, bounded, no control
    /// characters; a Basic username has no `:`, a bearer token no spaces.
    pub fn validate(&self) -> Result<(), FieldError> {
        let check = |field: &str, value: &str| {
            if value.is_empty() {
                return Err(FieldError::new(field, "must not be empty"));
            }
            if value.len() > MAX_CREDENTIAL {
                return Err(FieldError::new(
                    field,
                    format!("must be at most {MAX_CREDENTIAL} bytes"),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(FieldError::new(
                    field,
                    "must not contain control characters (CR, LF, ...)",
                ));
            }
            Ok(())
        };
        match self {
            ReceiverAuth::Basic { username, password } => {
                check("auth.username", username)?;
                if username.contains(':') {
                    return Err(FieldError::new(
                        "auth.username",
                        "must not contain ':' (Basic authentication)",
                    ));
                }
                check("auth.password", password)
            }
            ReceiverAuth::Bearer { token } => {
                check("auth.token", token)?;
                if token.contains(' ') {
                    return Err(FieldError::new("auth.token", "must not contain spaces"));
                }
                Ok(())
            }
        }
    }
}

/// Largest PEM of a client certificate chain, or of its key.
pub const MAX_PEM: usize = 64 << 10;

/// A client certificate and its private key, PEM, for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTls {
    /// The certificate, then any intermediates.
    pub cert: String,
    pub key: String,
}

impl ClientTls {
    /// The certificate and key in one PEM text, as TLS clients read them.
    pub fn pem(&self) -> String {
        format!("{}\n{}\n", self.cert.trim_end(), self.key.trim_end())
    }

    /// Checks the PEM's shape: `cert` holds certificates only, `key` one
    /// private key (PKCS #8, PKCS #1 or SEC1), each within [`MAX_PEM`].
    /// Whether they parse is the sender's to check.
    pub fn validate(&self) -> Result<(), FieldError> {
        let sections = |field: &str, text: &str| -> Result<Vec<String>, FieldError> {
            if text.len() > MAX_PEM {
                return Err(FieldError::new(
                    field,
                    format!("must be at most {MAX_PEM} bytes"),
                ));
            }
            let labels: Vec<String> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
                .filter_map(|l| l.strip_suffix("-----"))
                .map(String::from)
                .collect();
            let ends = text
                .lines()
                .filter(|l| l.trim().starts_with("-----END "))
                .count();
            if labels.is_empty() || ends != labels.len() {
                return Err(FieldError::new(
                    field,
                    "is not PEM (-----BEGIN ...----- blocks)",
                ));
            }
            Ok(labels)
        };
        let certs = sections("tls_client.cert", &self.cert)?;
        if certs.iter().any(|l| l != "CERTIFICATE") {
            return Err(FieldError::new(
                "tls_client.cert",
                "must hold CERTIFICATE blocks only (the key goes in tls_client.key)",
            ));
        }
        let keys = sections("tls_client.key", &self.key)?;
        let is_key = |l: &String| {
            matches!(
                l.as_str(),
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"
            )
        };
        if keys.len() != 1 || !is_key(&keys[0]) {
            return Err(FieldError::new(
                "tls_client.key",
                "must hold one unencrypted PRIVATE KEY (PKCS #8), RSA PRIVATE KEY or EC PRIVATE KEY block",
            ));
        }
        Ok(())
    }
}

/// Checks an endpoint's static headers: at most [`MAX_HEADERS`], each a
/// valid HTTP name and value (no CR, LF or other control characters),
/// none the gateway or the connection sets (`signing::RESERVED_HEADERS`,
/// the tenant's own header names, and `Authorization`, which `auth` sets),
/// no name twice. Returns them in the order given.
pub fn validate_headers(
    headers: Vec<(String, String)>,
    tenant: &crate::signing::HeaderNames,
) -> Result<Vec<(String, String)>, FieldError> {
    if headers.len() > MAX_HEADERS {
        return Err(FieldError::new(
            "headers",
            format!("at most {MAX_HEADERS} headers are allowed"),
        ));
    }
    let mut seen: Vec<String> = Vec::with_capacity(headers.len());
    for (name, value) in &headers {
        let field = format!("headers.{name}");
        let bad = |m: &str| FieldError::new(field.clone(), m);
        if name.len() > MAX_HEADER_NAME
            || reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            return Err(bad("is not a valid HTTP header name"));
        }
        let own = [&tenant.event, &tenant.delivery, &tenant.signature];
        if crate::signing::is_reserved_header(name)
            || own.iter().any(|n| n.eq_ignore_ascii_case(name))
        {
            return Err(bad(
                "is a header the gateway or the HTTP connection sets itself",
            ));
        }
        if name.eq_ignore_ascii_case("authorization") {
            return Err(bad("is set by the endpoint's auth; use that instead"));
        }
        let lower = name.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(bad("repeats another header name"));
        }
        seen.push(lower);
        if value.len() > MAX_HEADER_VALUE {
            return Err(bad(&format!(
                "value must be at most {MAX_HEADER_VALUE} bytes"
            )));
        }
        if value.chars().any(|c| c.is_control() && c != '\t')
            || reqwest::header::HeaderValue::from_str(value).is_err()
        {
            return Err(bad(
                "value must be visible text, without CR, LF or other control characters",
            ));
        }
    }
    Ok(headers)
}

/// Checks a `rate_limit`: a number of deliveries per second from
/// [`MIN_RATE_LIMIT`] (one an hour) to [`MAX_RATE_LIMIT`].
pub fn validate_rate_limit(rate: f64) -> Result<f64, FieldError> {
    if !rate.is_finite() || !(MIN_RATE_LIMIT..=MAX_RATE_LIMIT).contains(&rate) {
        return Err(FieldError::new(
            "rate_limit",
            format!(
                "must be a number of deliveries per second above 0, from one an hour \
                 ({MIN_RATE_LIMIT:.6}) to {MAX_RATE_LIMIT}"
            ),
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn an_outcome_repeats_the_same_success_and_status_within_a_second() {
        let at = Utc::now();
        let ok = |ms: i64, code: u16, success: bool| LastDelivery {
            at: at + Duration::milliseconds(ms),
            response_code: Some(code),
            error: None,
            success,
        };
        assert!(ok(999, 200, true).repeats(&ok(0, 200, true)));
        assert!(
            !ok(1000, 200, true).repeats(&ok(0, 200, true)),
            "a second on"
        );
        assert!(
            !ok(10, 201, true).repeats(&ok(0, 200, true)),
            "another status"
        );
        assert!(!ok(10, 500, false).repeats(&ok(0, 200, true)), "a failure");
    }

    #[test]
    fn static_headers_are_checked() {
        let names = crate::signing::HeaderNames::default();
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let ok = validate_headers(h(&[("X-Env", "prod"), ("X-Team", "a b\tc")]), &names).unwrap();
        assert_eq!(ok.len(), 2);
        for (pairs, field) in [
            (h(&[("X Env", "a")]), "headers.X Env"),
            (h(&[("X-A", "a\r\nX-Evil: 1")]), "headers.X-A"),
            (h(&[("X-A", "a\n")]), "headers.X-A"),
            (h(&[("Content-Type", "a")]), "headers.Content-Type"),
            (
                h(&[("x-hookgate-signature-256", "a")]),
                "headers.x-hookgate-signature-256",
            ),
            (h(&[("webhook-id", "a")]), "headers.webhook-id"),
            (h(&[("Authorization", "a")]), "headers.Authorization"),
            (h(&[("X-A", "1"), ("x-a", "2")]), "headers.x-a"),
        ] {
            let err = validate_headers(pairs.clone(), &names).unwrap_err();
            assert_eq!(err.field, field, "{pairs:?}: {err}");
        }
        let many: Vec<(String, String)> = (0..=MAX_HEADERS)
            .map(|i| (format!("X-{i}"), "v".into()))
            .collect();
        assert_eq!(validate_headers(many, &names).unwrap_err().field, "headers");
    }

    #[test]
    fn credentials_are_checked_and_encoded() {
        let basic = ReceiverAuth::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        basic.validate().unwrap();
        assert_eq!(basic.header_value(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        let bearer = ReceiverAuth::Bearer {
            token: "t0k".into(),
        };
        assert_eq!(bearer.header_value(), "Bearer t0k");
        for (auth, field) in [
            (
                ReceiverAuth::Basic {
                    username: "a:b".into(),
                    password: "p".into(),
                },
                "auth.username",
            ),
            (
                ReceiverAuth::Basic {
                    username: "a".into(),
                    password: "p\r\n".into(),
                },
                "auth.password",
            ),
            (ReceiverAuth::Bearer { token: "".into() }, "auth.token"),
            (
                ReceiverAuth::Bearer {
                    token: "a b".into(),
                },
                "auth.token",
            ),
        ] {
            assert_eq!(auth.validate().unwrap_err().field, field, "{auth:?}");
        }
    }

    #[test]
    fn rates_must_be_positive_and_bounded() {
        assert_eq!(validate_rate_limit(10.0).unwrap(), 10.0);
        assert_eq!(validate_rate_limit(0.5).unwrap(), 0.5);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_RATE_LIMIT * 2.0] {
            assert_eq!(validate_rate_limit(bad).unwrap_err().field, "rate_limit");
        }
    }

    #[test]
    fn rotation_signs_with_both_until_expiry() {
        let now = crate::time::now();
        let mut ep = Endpoint::sample(TenantId::generate(), "n");
        assert_eq!(ep.signing_secrets(now), vec!["whsec_old"]);
        ep.rotate_secret("whsec_new".into(), now + Duration::hours(24));
        assert_eq!(ep.signing_secrets(now), vec!["whsec_new", "whsec_old"]);
        assert_eq!(
            ep.signing_secrets(now + Duration::hours(25)),
            vec!["whsec_new"]
        );
    }
}

/// Checks an endpoint's subscriptions against the tenant's catalog: at least
/// one; each a known type or a pattern matching at least one known type (so a
/// typo cannot silently subscribe to nothing). Returns them without duplicates,
/// in the order given.
pub fn validate_events(events: &[String], catalog: &[String]) -> Result<Vec<String>, FieldError> {
    if events.is_empty() {
        return Err(FieldError::new(
            "events",
            "subscribe to at least one event type",
        ));
    }
    if events.len() > MAX_EVENTS {
        return Err(FieldError::new(
            "events",
            format!("at most {MAX_EVENTS} entries are allowed"),
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(events.len());
    for (i, raw) in events.iter().enumerate() {
        let field = || format!("events[{i}]");
        let filter = EventFilter::parse(raw).map_err(|e| FieldError::new(field(), e))?;
        let known = match filter {
            EventFilter::Exact(name) => catalog.iter().any(|c| c == name),
            EventFilter::Prefix(_) => catalog.iter().any(|c| filter.matches(c)),
        };
        if !known {
            let what = match filter {
                EventFilter::Exact(_) => "is not in the event type catalog",
                EventFilter::Prefix(_) => "matches no event type in the catalog",
            };
            return Err(FieldError::new(field(), format!("'{raw}' {what}")));
        }
        if !kept.contains(raw) {
            kept.push(raw.clone());
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    #[test]
    fn subscriptions_must_be_known() {
        let catalog: Vec<String> = ["booking.created", "booking.cancelled", "webhook.test"]
            .map(String::from)
            .to_vec();
        let ok = validate_events(
            &[
                "booking.*".into(),
                "booking.created".into(),
                "booking.*".into(),
            ],
            &catalog,
        )
        .unwrap();
        assert_eq!(ok, vec!["booking.*", "booking.created"]);
        assert_eq!(validate_events(&[], &catalog).unwrap_err().field, "events");
        let err = validate_events(&["booking.created".into(), "trip.created".into()], &catalog)
            .unwrap_err();
        assert_eq!(err.field, "events[1]");
        assert!(err.message.contains("not in the event type catalog"));
        let err = validate_events(&["payment.*".into()], &catalog).unwrap_err();
        assert!(err.message.contains("matches no event type"));
        let err = validate_events(&["booking.*.x".into()], &catalog).unwrap_err();
        assert!(err.message.contains("not a valid pattern"));
    }
}
