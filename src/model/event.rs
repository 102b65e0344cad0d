//! Published events (docs/product.md, "Events" and "Delivery").
//!
//! The body every receiver gets is the envelope `{"id","type","created_at",
//! "data"}` serialised compactly, built once at publish time and stored as
//! bytes: every delivery and retry of an event sends the same bytes. Key
//! order is the producer's, and whole-valued floats (`1.0`) are written as
//! integers, so a receiver that parses and re-serialises the body
//! (`JSON.stringify(req.body)`, as Menon's Node snippet does) gets the very
//! bytes that were signed.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::ids::{EventId, TenantId};
use crate::validation::FieldError;

/// Longest producer-supplied event id or idempotency key.
pub const MAX_EXTERNAL_ID_LEN: usize = 128;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// `evt_<ulid>`, or the producer's own id.
    pub id: String,
    pub tenant_id: TenantId,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    /// The envelope as sent, compact JSON.
    pub body: String,
}

impl Event {
    /// Builds an event and its body. `id` is the producer's, if given.
    pub fn new(tenant_id: TenantId, id: Option<String>, event_type: &str, data: Value) -> Event {
        Self::at(tenant_id, id, event_type, data, crate::time::now())
    }

    /// Like [`Event::new`], published at a given time (offline runs that
    /// replay an envelope from a file).
    pub fn at(
        tenant_id: TenantId,
        id: Option<String>,
        event_type: &str,
        data: Value,
        created_at: DateTime<Utc>,
    ) -> Event {
        let id = id.unwrap_or_else(|| EventId::generate().to_string());
        let mut data = data;
        normalise_numbers(&mut data);
        /// The envelope's members, in the order receivers get them.
        #[derive(Serialize)]
        struct Envelope<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            event_type: &'a str,
            created_at: String,
            data: &'a Value,
        }
        let body = serde_json::to_string(&Envelope {
            id: &id,
            event_type,
            created_at: created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            data: &data,
        })
        .expect("a JSON value always serialises");
        Event {
            id,
            tenant_id,
            event_type: event_type.into(),
            created_at,
            body,
        }
    }

    /// The `data` member of the envelope, as the body has it: the API shows
    /// it without parsing it into a tree and printing it again.
    pub fn data(&self) -> Box<RawValue> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            data: Option<&'a RawValue>,
        }
        serde_json::from_str::<Envelope>(&self.body)
            .ok()
            .and_then(|e| e.data)
            .map(RawValue::to_owned)
            .unwrap_or_else(|| RawValue::NULL.to_owned())
    }
}

/// Whole-valued floats become integers, as JavaScript prints them.
fn normalise_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_numbers),
        Value::Object(map) => map.values_mut().for_each(normalise_numbers),
        _ => {}
    }
}

/// Checks a producer-supplied event id or idempotency key.
pub fn validate_external_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() || id.len() > MAX_EXTERNAL_ID_LEN {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {MAX_EXTERNAL_ID_LEN} characters"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    {
        return Err(FieldError::new(
            field,
            "may hold only letters, digits and _ - . :",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_compact_ordered_and_stable_under_reserialisation() {
        let data: Value =
            serde_json::from_str(r#"{"zeta": 1.0, "alpha": {"b": 2.5, "a": [1e3, "x"]}}"#).unwrap();
        let e = Event::new(TenantId::generate(), None, "booking.created", data);
        assert!(e.id.starts_with("evt_"));
        assert!(e.body.starts_with(&format!(
            r#"{{"id":"{}","type":"booking.created","created_at":""#,
            e.id
        )));
        assert!(
            e.body
                .ends_with(r#","data":{"zeta":1,"alpha":{"b":2.5,"a":[1000,"x"]}}}"#),
            "{}",
            e.body
        );
        // Parse and print again, as a receiver would: same bytes.
        let again = serde_json::from_str::<Value>(&e.body).unwrap().to_string();
        assert_eq!(again, e.body);
        let data: Value = serde_json::from_str(e.data().get()).unwrap();
        assert_eq!(data["alpha"]["b"], 2.5);
    }

    #[test]
    fn producer_ids_are_checked() {
        assert!(validate_external_id("id", "evt_abc123").is_ok());
        assert!(validate_external_id("id", "order:42.v1").is_ok());
        assert!(validate_external_id("id", "").is_err());
        assert!(validate_external_id("id", "a b").is_err());
        assert!(validate_external_id("id", &"x".repeat(129)).is_err());
    }
}
