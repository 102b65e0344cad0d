//! The per-tenant event type catalog (docs/product.md, "Event types") and event
//! filters.
//!
//! Event type names are dot-separated segments (`booking.created`). Endpoints
//! subscribe to names or to patterns: `booking.*` matches every type under
//! `booking.`, and `*` matches every type.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use chrono::{DateTime, Utc};

/// The event type that always exists, used by "Send test".
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// Names under this prefix are the gateway's own operational events
/// (docs/product.md, "Operational events"): in every catalog, published
/// only by the gateway, and matched by no `*` subscription, only by their
/// names or a `hookgate.` pattern.
pub const OPERATIONAL_PREFIX: &str = "hookgate.";
/// An endpoint was disabled: its receiver answered 410, or a delivery ran
/// out of attempts.
pub const ENDPOINT_DISABLED: &str = "hookgate.endpoint.disabled";
/// A delivery ran out of attempts and ended `failed`.
pub const DELIVERY_FAILED: &str = "hookgate.delivery.failed";
/// A disabled endpoint is active again (resumed, or recovered).
pub const ENDPOINT_RECOVERED: &str = "hookgate.endpoint.recovered";

/// Whether `name` is one of the gateway's own operational event types.
pub fn is_operational(name: &str) -> bool {
    name.starts_with(OPERATIONAL_PREFIX)
}

/// Longest event type name.
pub const MAX_NAME_LEN: usize = 128;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventType {
    pub name: String,
    pub description: String,
    /// An example `data` payload, used by test sends and the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Value>,
    /// Built-in types cannot be changed or deleted.
    #[serde(default)]
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EventType {
    /// The built-in types of every catalog: `webhook.test` and the
    /// operational events.
    pub fn builtins(created_at: Timestamp) -> Vec<Self> {
        let operational = |name: &str, description: &str, example: serde_json::Value| Self {
            name: name.into(),
            description: description.into(),
            example: Some(example),
            builtin: true,
            created_at,
            updated_at: created_at,
        };
        vec![
            Self::test_type(created_at),
            operational(
                ENDPOINT_DISABLED,
                "The gateway disabled an endpoint: its receiver answered 410 Gone, or a delivery ran out of attempts.",
                serde_json::json!({
                    "webhook_id": "wh_01J9Z8Q2V5X7ZK3M4N6P8R0S2T",
                    "webhook_name": "Bookings CRM",
                    "delivery_id": "dlv_01J9Z8Q2V5X7ZK3M4N6P8R0S2V",
                    "event_id": "evt_01J9Z8Q2V5X7ZK3M4N6P8R0S2W",
                    "reason": "a delivery failed 6 times in a row (last error: Internal Server Error); resume the endpoint to re-enable it"
                }),
            ),
            operational(
                DELIVERY_FAILED,
                "A delivery ran out of attempts and ended failed.",
                serde_json::json!({
                    "webhook_id": "wh_01J9Z8Q2V5X7ZK3M4N6P8R0S2T",
                    "webhook_name": "Bookings CRM",
                    "delivery_id": "dlv_01J9Z8Q2V5X7ZK3M4N6P8R0S2V",
                    "event_id": "evt_01J9Z8Q2V5X7ZK3M4N6P8R0S2W",
                    "event_type": "booking.created",
                    "attempts": 6,
                    "reason": "Internal Server Error"
                }),
            ),
            operational(
                ENDPOINT_RECOVERED,
                "A disabled endpoint is active again: resumed, or its failed deliveries recovered.",
                serde_json::json!({
                    "webhook_id": "wh_01J9Z8Q2V5X7ZK3M4N6P8R0S2T",
                    "webhook_name": "Bookings CRM",
                    "delivery_id": null,
                    "reason": "resumed"
                }),
            ),
        ]
    }

    /// The built-in `webhook.test` type, present in every catalog.
    pub fn test_type(created_at: Timestamp) -> Self {
        Self {
            name: TEST_EVENT_TYPE.into(),
            description: "Synthetic event sent by \"Send test\".".into(),
            example: Some(serde_json::json!({"message": "This is a test event from hookgate."})),
            builtin: true,
            created_at,
            updated_at: created_at,
        }
    }
}

/// Why a string is not a valid event type name or filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_NAME_LEN} characters")]
    TooLong,
    #[error(
        "'{0}' is not a valid event type: use dot-separated segments of letters, digits, '_' and '-' (like booking.created)"
    )]
    Invalid(String),
    #[error("'{0}' is not a valid pattern: only a final '*' segment is allowed (like booking.*)")]
    BadPattern(String),
}

fn valid_segment(seg: &str) -> bool {
    !seg.is_empty()
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks an event type name (no wildcards).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if name.split('.').all(valid_segment) {
        Ok(())
    } else {
        Err(NameError::Invalid(name.into()))
    }
}

/// A subscription entry: an exact event type or a trailing-wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter<'a> {
    Exact(&'a str),
    /// Matches names starting with this prefix (which ends in '.'), or
    /// everything when empty.
    Prefix(&'a str),
}

impl<'a> EventFilter<'a> {
    pub fn parse(s: &'a str) -> Result<Self, NameError> {
        if s == "*" {
            return Ok(EventFilter::Prefix(""));
        }
        match s.strip_suffix('*') {
            Some(prefix) => {
                let stem = prefix
                    .strip_suffix('.')
                    .ok_or_else(|| NameError::BadPattern(s.into()))?;
                validate_name(stem).map_err(|_| NameError::BadPattern(s.into()))?;
                Ok(EventFilter::Prefix(prefix))
            }
            None if s.contains('*') => Err(NameError::BadPattern(s.into())),
            None => validate_name(s).map(|_| EventFilter::Exact(s)),
        }
    }

    /// A filter [`EventFilter::parse`] accepted when it was stored: read
    /// without validating it again.
    fn of_valid(s: &'a str) -> Self {
        match s.strip_suffix('*') {
            Some(prefix) => EventFilter::Prefix(prefix),
            None => EventFilter::Exact(s),
        }
    }

    /// Whether the filter takes `event_type`; `*` takes every type but the
    /// gateway's operational ones, which are asked for by name or pattern.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            EventFilter::Exact(name) => *name == event_type,
            EventFilter::Prefix("") => !is_operational(event_type),
            EventFilter::Prefix(prefix) => event_type.starts_with(prefix),
        }
    }
}

/// Whether any of an endpoint's subscriptions matches `event_type`. The
/// filters are a stored endpoint's, validated when it was written; a publish
/// to 10,000 endpoints runs this for each, so they are not validated again.
pub fn subscribed(filters: &[String], event_type: &str) -> bool {
    filters
        .iter()
        .any(|f| EventFilter::of_valid(f).matches(event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("booking.created").is_ok());
        assert!(validate_name("ping").is_ok());
        assert!(validate_name("user_v2.sign-up").is_ok());
        assert_eq!(validate_name(""), Err(NameError::Empty));
        for bad in ["booking.", ".x", "a..b", "a b", "a/b", "booking.*"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(validate_name(&"a".repeat(129)), Err(NameError::TooLong));
    }

    #[test]
    fn filters() {
        let p = EventFilter::parse("booking.*").unwrap();
        assert!(p.matches("booking.created"));
        assert!(p.matches("booking.traveler.changed"));
        assert!(!p.matches("booking"));
        assert!(!p.matches("bookings.created"));
        assert!(EventFilter::parse("*").unwrap().matches("anything"));
        assert!(
            EventFilter::parse("booking.created")
                .unwrap()
                .matches("booking.created")
        );
        for bad in ["booking*", "*.created", "a.*.b", "**", ".*"] {
            assert!(EventFilter::parse(bad).is_err(), "{bad}");
        }
        for good in ["*", "booking.*", "booking.created"] {
            assert_eq!(
                EventFilter::of_valid(good),
                EventFilter::parse(good).unwrap()
            );
        }
        assert!(!EventFilter::parse("*").unwrap().matches(ENDPOINT_DISABLED));
        assert!(
            EventFilter::parse("hookgate.*")
                .unwrap()
                .matches(ENDPOINT_DISABLED)
        );
        assert!(
            EventFilter::parse(DELIVERY_FAILED)
                .unwrap()
                .matches(DELIVERY_FAILED)
        );
        let subs = vec!["payment.succeeded".to_string(), "booking.*".to_string()];
        assert!(subscribed(&subs, "booking.cancelled"));
        assert!(subscribed(&subs, "payment.succeeded"));
        assert!(!subscribed(&subs, "payment.failed"));
    }
}
