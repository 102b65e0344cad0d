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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

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
