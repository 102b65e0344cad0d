//! `crm-booking`: reshapes `booking.*` events into a CRM contact + deal.
//!
//! The logic is the pure function [`transform`], usable natively (tests,
//! benchmarks); the `component` module (wasm32 only) wires it to the
//! `hookgate:plugin/transformer` world.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// What the plugin decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver this body, with these extra headers and media type
    /// (`None`: `application/json`).
    Deliver {
        body: String,
        headers: Vec<(String, String)>,
        content_type: Option<String>,
    },
    /// Do not deliver; the reason ends up in the delivery log.
    Drop(String),
}

/// The header added to every delivered deal.
pub const OBJECT_HEADER: (&str, &str) = ("X-CRM-Object", "deal");

/// The configuration: `{"stage_map": {status: stage}, "pipeline": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    stage_map: BTreeMap<String, String>,
    pipeline: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let stage_map = [("confirmed", "won"), ("cancelled", "lost")]
            .into_iter()
            .map(|(status, stage)| (status.to_owned(), stage.to_owned()))
            .collect();
        Config {
            stage_map,
            pipeline: None,
        }
    }
}

/// The stage of a booking whose status is in no map entry.
const DEFAULT_STAGE: &str = "open";

fn parse_config(config: &str) -> Result<Config, String> {
    let mut parsed = Config::default();
    let config = config.trim();
    if config.is_empty() {
        return Ok(parsed);
    }
    let value: Value =
        serde_json::from_str(config).map_err(|e| format!("config is not valid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("config must be a JSON object".to_owned());
    };
    for (key, value) in map {
        match key.as_str() {
            "stage_map" => {
                let Value::Object(entries) = value else {
                    return Err(
                        "config key `stage_map` must be an object mapping statuses to stages"
                            .to_owned(),
                    );
                };
                for (status, stage) in entries {
                    let Value::String(stage) = stage else {
                        return Err(format!(
                            "config key `stage_map` entry `{status}` must be a string"
                        ));
                    };
                    parsed.stage_map.insert(status, stage);
                }
            }
            "pipeline" => {
                parsed.pipeline = match value {
                    Value::String(pipeline) => Some(pipeline),
                    Value::Null => None,
                    _ => return Err("config key `pipeline` must be a string".to_owned()),
                }
            }
            other => {
                return Err(format!(
                    "unknown config key `{other}` (expected `stage_map`, `pipeline`)"
                ));
            }
        }
    }
    Ok(parsed)
}

/// The member `key` of `value` when it is an object, `null` otherwise.
fn field(value: Option<&Value>, key: &str) -> Value {
    value
        .and_then(|v| v.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

/// A string or a number as text; `None` for anything else.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reshapes one `booking.*` envelope into a CRM contact + deal.
///
/// `envelope` is the JSON body about to be sent (`{"id","type","created_at",
/// "data"}`); `config` is the endpoint's JSON configuration (`""` or `"{}"`:
/// the defaults). Events whose type does not start with `booking.` are
/// dropped; a booking event without a `data.booking` object is an error.
pub fn transform(envelope: &str, config: &str) -> Result<Verdict, String> {
    let config = parse_config(config)?;
    let envelope: Value =
        serde_json::from_str(envelope).map_err(|e| format!("payload is not valid JSON: {e}"))?;
    let Value::Object(envelope) = envelope else {
        return Err("payload must be a JSON object".to_owned());
    };
    let event_type = match envelope.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err("payload has no string `type`".to_owned()),
    };
    if !event_type.starts_with("booking.") {
        return Ok(Verdict::Drop(format!("not a booking event: {event_type}")));
    }
    let event_id = envelope.get("id").cloned().unwrap_or(Value::Null);
    let event_name = as_text(&event_id).unwrap_or_else(|| "without id".to_owned());
    let booking = match envelope.get("data").and_then(|d| d.get("booking")) {
        Some(Value::Object(booking)) => booking,
        Some(_) => {
            return Err(format!(
                "event {event_name} ({event_type}): `data.booking` must be an object"
            ));
        }
        None => {
            return Err(format!(
                "event {event_name} ({event_type}) has no `data.booking` object"
            ));
        }
    };
    let customer = booking.get("customer");
    let trip = booking.get("trip");

    let booking_id = booking.get("id").cloned().unwrap_or(Value::Null);
    let title = [
        trip.and_then(|t| t.get("name")).and_then(as_text),
        Some("booking".to_owned()),
        as_text(&booking_id),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let stage = booking
        .get("status")
        .and_then(Value::as_str)
        .and_then(|status| config.stage_map.get(status))
        .map_or(DEFAULT_STAGE, String::as_str);

    let mut contact = Map::new();
    for key in ["email", "name", "phone"] {
        contact.insert(key.to_owned(), field(customer, key));
    }

    let mut deal = Map::new();
    deal.insert("external_id".to_owned(), booking_id);
    deal.insert("title".to_owned(), Value::String(title));
    deal.insert(
        "amount".to_owned(),
        booking.get("total").cloned().unwrap_or(Value::Null),
    );
    deal.insert(
        "currency".to_owned(),
        booking.get("currency").cloned().unwrap_or(Value::Null),
    );
    deal.insert("stage".to_owned(), Value::String(stage.to_owned()));
    match field(trip, "start_date") {
        Value::Null => {}
        start_date => {
            deal.insert("close_date".to_owned(), start_date);
        }
    }
    if let Some(pipeline) = config.pipeline {
        deal.insert("pipeline".to_owned(), Value::String(pipeline));
    }

    let mut source = Map::new();
    source.insert("event_id".to_owned(), event_id);
    source.insert(
        "event_type".to_owned(),
        Value::String(event_type.to_owned()),
    );
    source.insert(
        "occurred_at".to_owned(),
        envelope.get("created_at").cloned().unwrap_or(Value::Null),
    );

    let mut body = Map::new();
    body.insert("contact".to_owned(), Value::Object(contact));
    body.insert("deal".to_owned(), Value::Object(deal));
    body.insert("source".to_owned(), Value::Object(source));

    Ok(Verdict::Deliver {
        body: Value::Object(body).to_string(),
        headers: vec![(OBJECT_HEADER.0.to_owned(), OBJECT_HEADER.1.to_owned())],
        content_type: None,
    })
}

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../wit" });

    use hookgate::plugin::log::{Level, log};
    use hookgate::plugin::types::{Delivery, Header};

    struct CrmBooking;

    impl Guest for CrmBooking {
        fn transform(event: Event, config: String) -> Result<Outcome, String> {
            let verdict = super::transform(&event.payload, &config);
            let summary = match &verdict {
                Ok(super::Verdict::Deliver { body, .. }) => {
                    format!("event {}: deal of {} bytes", event.id, body.len())
                }
                Ok(super::Verdict::Drop(reason)) => {
                    format!("event {}: dropped: {reason}", event.id)
                }
                Err(error) => format!("event {}: error: {error}", event.id),
            };
            log(Level::Debug, &format!("crm-booking: {summary}"));
            verdict.map(|verdict| match verdict {
                super::Verdict::Deliver {
                    body,
                    headers,
                    content_type,
                } => Outcome::Deliver(Delivery {
                    body,
                    headers: headers
                        .into_iter()
                        .map(|(name, value)| Header { name, value })
                        .collect(),
                    content_type,
                }),
                super::Verdict::Drop(reason) => Outcome::Drop(reason),
            })
        }
    }

    export!(CrmBooking);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIRMED: &str = r#"{
  "id": "evt_01JD8Z3V4T",
  "type": "booking.confirmed",
  "created_at": "2026-11-23T10:30:00Z",
  "data": {
    "booking": {
      "id": "bk_4821",
      "status": "confirmed",
      "total": 1290.5,
      "currency": "EUR",
      "customer": {"name": "Ana Souza", "email": "ana.souza@example.com", "phone": "+351 912 345 678"},
      "trip": {"name": "Douro Valley Wine Tour", "start_date": "2027-05-14"}
    }
  }
}"#;

    /// [`CONFIRMED`] with another `status` (given as JSON).
    fn with_status(status: &str) -> String {
        let needle = r#""status": "confirmed""#;
        assert!(CONFIRMED.contains(needle));
        CONFIRMED.replace(needle, &format!(r#""status": {status}"#))
    }

    fn deliver(verdict: Verdict) -> (String, Vec<(String, String)>, Option<String>) {
        match verdict {
            Verdict::Deliver {
                body,
                headers,
                content_type,
            } => (body, headers, content_type),
            Verdict::Drop(reason) => panic!("unexpected drop: {reason}"),
        }
    }

    #[test]
    fn reshapes_a_confirmed_booking_readme_example() {
        let (body, headers, content_type) = deliver(transform(CONFIRMED, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":"ana.souza@example.com","name":"Ana Souza","phone":"+351 912 345 678"},"deal":{"external_id":"bk_4821","title":"Douro Valley Wine Tour booking bk_4821","amount":1290.5,"currency":"EUR","stage":"won","close_date":"2027-05-14"},"source":{"event_id":"evt_01JD8Z3V4T","event_type":"booking.confirmed","occurred_at":"2026-11-23T10:30:00Z"}}"#
        );
        assert_eq!(
            headers,
            vec![("X-CRM-Object".to_owned(), "deal".to_owned())]
        );
        assert_eq!(content_type, None);
    }

    #[test]
    fn empty_object_config_means_defaults() {
        assert_eq!(
            transform(CONFIRMED, "{}").unwrap(),
            transform(CONFIRMED, "").unwrap()
        );
        assert_eq!(
            transform(CONFIRMED, "  \n").unwrap(),
            transform(CONFIRMED, "").unwrap()
        );
    }

    #[test]
    fn stage_map_overrides_and_pipeline_readme_example() {
        let pending = with_status(r#""pending""#);
        let config = r#"{"stage_map":{"pending":"negotiation","confirmed":"closed_won"},"pipeline":"tours"}"#;
        let (body, _, _) = deliver(transform(&pending, config).unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":"ana.souza@example.com","name":"Ana Souza","phone":"+351 912 345 678"},"deal":{"external_id":"bk_4821","title":"Douro Valley Wine Tour booking bk_4821","amount":1290.5,"currency":"EUR","stage":"negotiation","close_date":"2027-05-14","pipeline":"tours"},"source":{"event_id":"evt_01JD8Z3V4T","event_type":"booking.confirmed","occurred_at":"2026-11-23T10:30:00Z"}}"#
        );
        let (body, _, _) = deliver(transform(CONFIRMED, config).unwrap());
        assert!(body.contains(r#""stage":"closed_won""#), "{body}");
    }

    #[test]
    fn default_stages() {
        for (status, stage) in [
            (r#""confirmed""#, "won"),
            (r#""cancelled""#, "lost"),
            (r#""pending""#, "open"),
            (r#""refunded""#, "open"),
            ("null", "open"),
            ("7", "open"),
        ] {
            let event = with_status(status);
            let (body, _, _) = deliver(transform(&event, "").unwrap());
            assert!(
                body.contains(&format!(r#""stage":"{stage}""#)),
                "{status}: {body}"
            );
        }
    }

    #[test]
    fn stage_map_keeps_the_other_default_entries() {
        let cancelled = with_status(r#""cancelled""#);
        let (body, _, _) =
            deliver(transform(&cancelled, r#"{"stage_map":{"confirmed":"x"}}"#).unwrap());
        assert!(body.contains(r#""stage":"lost""#), "{body}");
    }

    #[test]
    fn missing_optional_fields_become_null() {
        let event = r#"{"id":"evt_2","type":"booking.created","data":{"booking":{"id":77}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":null,"name":null,"phone":null},"deal":{"external_id":77,"title":"booking 77","amount":null,"currency":null,"stage":"open"},"source":{"event_id":"evt_2","event_type":"booking.created","occurred_at":null}}"#
        );
        let event =
            r#"{"type":"booking.created","data":{"booking":{"customer":"nope","trip":[1]}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":null,"name":null,"phone":null},"deal":{"external_id":null,"title":"booking","amount":null,"currency":null,"stage":"open"},"source":{"event_id":null,"event_type":"booking.created","occurred_at":null}}"#
        );
    }

    #[test]
    fn drops_other_event_types() {
        let event = r#"{"id":"evt_3","type":"payment.succeeded","data":{}}"#;
        assert_eq!(
            transform(event, "").unwrap(),
            Verdict::Drop("not a booking event: payment.succeeded".to_owned())
        );
        let event = r#"{"id":"evt_3","type":"booking","data":{}}"#;
        assert_eq!(
            transform(event, "").unwrap(),
            Verdict::Drop("not a booking event: booking".to_owned())
        );
    }

    #[test]
    fn missing_booking_is_an_error() {
        let error =
            transform(r#"{"id":"evt_4","type":"booking.created","data":{}}"#, "").unwrap_err();
        assert_eq!(
            error,
            "event evt_4 (booking.created) has no `data.booking` object"
        );
        let error = transform(r#"{"id":"evt_4","type":"booking.created"}"#, "").unwrap_err();
        assert!(error.contains("no `data.booking`"), "{error}");
        let error = transform(
            r#"{"id":"evt_4","type":"booking.created","data":{"booking":"bk_1"}}"#,
            "",
        )
        .unwrap_err();
        assert!(error.contains("must be an object"), "{error}");
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(
            transform("not json", "")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(transform("[1,2]", "").unwrap_err().contains("JSON object"));
        assert!(
            transform(r#"{"id":"x"}"#, "")
                .unwrap_err()
                .contains("`type`")
        );
    }

    #[test]
    fn bad_configs_are_errors() {
        for (config, needle) in [
            ("{", "config is not valid JSON"),
            ("[]", "config must be a JSON object"),
            (r#"{"stage_map":[]}"#, "`stage_map`"),
            (
                r#"{"stage_map":{"confirmed":1}}"#,
                "`stage_map` entry `confirmed`",
            ),
            (r#"{"pipeline":3}"#, "`pipeline`"),
            (r#"{"pipline":"x"}"#, "unknown config key `pipline`"),
        ] {
            let error = transform(CONFIRMED, config).unwrap_err();
            assert!(error.contains(needle), "{config}: {error}");
        }
    }
}
