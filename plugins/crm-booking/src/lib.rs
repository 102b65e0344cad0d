//! `crm-booking`: reshapes `booking.*` events into a CRM contact + deal.
//!
//! [`transform`] is the whole plugin (see the README for the output and the
//! config); `export!` makes it the component's `transform` when built for
//! wasm32, and the crate stays a plain library everywhere else.

use std::collections::BTreeMap;

use hookgate_plugin::{Event, Outcome, export};
use serde_json::{Value, json};

/// The configuration; see the README.
struct Config {
    stage_map: BTreeMap<String, String>,
    pipeline: Option<String>,
}

fn read_config(config: Value) -> Result<Config, String> {
    let Value::Object(members) = config else {
        return Err("config must be a JSON object".to_owned());
    };
    let mut stage_map: BTreeMap<String, String> = [("confirmed", "won"), ("cancelled", "lost")]
        .map(|(status, stage)| (status.to_owned(), stage.to_owned()))
        .into();
    let mut pipeline = None;
    for (key, value) in members {
        match (key.as_str(), value) {
            ("stage_map", Value::Object(entries)) => {
                for (status, stage) in entries {
                    let Value::String(stage) = stage else {
                        return Err(format!(
                            "config key `stage_map` entry `{status}` must be a string"
                        ));
                    };
                    stage_map.insert(status, stage);
                }
            }
            ("stage_map", _) => {
                return Err(
                    "config key `stage_map` must be an object mapping statuses to stages".into(),
                );
            }
            ("pipeline", Value::String(name)) => pipeline = Some(name),
            ("pipeline", Value::Null) => pipeline = None,
            ("pipeline", _) => return Err("config key `pipeline` must be a string".into()),
            (other, _) => {
                return Err(format!(
                    "unknown config key `{other}` (expected `stage_map`, `pipeline`)"
                ));
            }
        }
    }
    Ok(Config {
        stage_map,
        pipeline,
    })
}

/// A string or a number as text, for the deal's title.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reshapes one `booking.*` event into a CRM contact + deal, with the header
/// `X-CRM-Object: deal`; drops other events; a booking event without a
/// `data.booking` object is an error.
pub fn transform(event: Event, config: Value) -> Result<Outcome, String> {
    let config = read_config(config)?;
    let (id, kind) = (&event.id, &event.event_type);
    if !kind.starts_with("booking.") {
        return Ok(Outcome::drop(format!("not a booking event: {kind}")));
    }
    let id = if id.is_empty() { "without id" } else { id };
    let booking = match event.data.get("booking") {
        Some(booking @ Value::Object(_)) => booking,
        Some(_) => {
            return Err(format!(
                "event {id} ({kind}): `data.booking` must be an object"
            ));
        }
        None => return Err(format!("event {id} ({kind}) has no `data.booking` object")),
    };
    let (customer, trip) = (&booking["customer"], &booking["trip"]);

    let title = [
        text(&trip["name"]),
        Some("booking".into()),
        text(&booking["id"]),
    ];
    let title = title.into_iter().flatten().collect::<Vec<_>>().join(" ");
    let stage = booking["status"]
        .as_str()
        .and_then(|status| config.stage_map.get(status))
        .map_or("open", String::as_str);

    let mut deal = json!({
        "external_id": booking["id"],
        "title": title,
        "amount": booking["total"],
        "currency": booking["currency"],
        "stage": stage,
    });
    if !trip["start_date"].is_null() {
        deal["close_date"] = trip["start_date"].clone();
    }
    if let Some(pipeline) = config.pipeline {
        deal["pipeline"] = pipeline.into();
    }
    let crm = json!({
        "contact": {"email": customer["email"], "name": customer["name"], "phone": customer["phone"]},
        "deal": deal,
        "source": {"event_id": event.id, "event_type": event.event_type, "occurred_at": event.created_at},
    });
    Ok(Outcome::json(&crm)?.header("X-CRM-Object", "deal"))
}

export!(transform);

#[cfg(test)]
mod tests {
    use hookgate_plugin::Outcome as Verdict;

    /// The plugin run as the gateway runs it, on an envelope and a config.
    fn transform(envelope: &str, config: &str) -> Result<Verdict, String> {
        hookgate_plugin::call(super::transform, envelope, config)
    }

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
        let event = r#"{"id":"evt_2","type":"booking.created","created_at":"2026-11-23T10:31:00Z","data":{"booking":{"id":77}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":null,"name":null,"phone":null},"deal":{"external_id":77,"title":"booking 77","amount":null,"currency":null,"stage":"open"},"source":{"event_id":"evt_2","event_type":"booking.created","occurred_at":"2026-11-23T10:31:00Z"}}"#
        );
        let event =
            r#"{"type":"booking.created","data":{"booking":{"customer":"nope","trip":[1]}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":null,"name":null,"phone":null},"deal":{"external_id":null,"title":"booking","amount":null,"currency":null,"stage":"open"},"source":{"event_id":"","event_type":"booking.created","occurred_at":""}}"#
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
        // After another plugin of the chain the payload need not be an
        // envelope; the event is still the gateway's.
        let event = hookgate_plugin::Event::new(
            "evt_1".into(),
            "booking.created".into(),
            "2026-11-23T10:30:00.000Z".into(),
            "wh_1".into(),
            "[1,2]".into(),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(
            super::transform(event, serde_json::json!({})).unwrap_err(),
            "event evt_1 (booking.created) has no `data.booking` object"
        );
        // No type: not a booking event.
        assert_eq!(
            transform(r#"{"id":"x"}"#, "").unwrap(),
            Verdict::Drop("not a booking event: ".to_owned())
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

    // The envelope is read without building a `serde_json::Value`; these pin
    // down that the output is still exactly what a `Value` round trip gives.

    #[test]
    fn copied_strings_are_rewritten_with_standard_escapes() {
        let event = r#"{"id":"evt_\"5\"","type":"booking.created","data":{"booking":{"id":"bk_\u0031","customer":{"name":"Ana \"Nana\" Souza\u00e9","email":"a\/b@example.com","phone":"tab\there"},"trip":{"name":"Caf\u00e9 \ud83d\ude00 tour","start_date":"2027-05-14"}}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":"a/b@example.com","name":"Ana \"Nana\" Souzaé","phone":"tab\there"},"deal":{"external_id":"bk_1","title":"Café 😀 tour booking bk_1","amount":null,"currency":null,"stage":"open","close_date":"2027-05-14"},"source":{"event_id":"evt_\"5\"","event_type":"booking.created","occurred_at":""}}"#
        );
    }

    #[test]
    fn numbers_and_other_values_are_copied_as_json_numbers() {
        // (An `id` or `created_at` that is not a string is not the event's:
        // the gateway's envelopes always have strings there.)
        let event = r#"{"id":12,"type":"booking.created","created_at":1.50,"data":{"booking":{"id":4.0e1,"total":-0,"currency":12345678901234567890123,"status":"confirmed","trip":{"name":7,"start_date":false}}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":null,"name":null,"phone":null},"deal":{"external_id":40.0,"title":"7 booking 40.0","amount":-0.0,"currency":1.2345678901234568e+22,"stage":"won","close_date":false},"source":{"event_id":"","event_type":"booking.created","occurred_at":""}}"#
        );
    }

    #[test]
    fn copied_objects_keep_member_order_and_the_last_repeated_value() {
        let event = r#"{"type":"booking.created","data":{"booking":{"customer":{"email":{"b":1,"a":[true,{"y":null,"x":2}],"b":3}},"trip":{"start_date":[]}}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":{"b":3,"a":[true,{"y":null,"x":2}]},"name":null,"phone":null},"deal":{"external_id":null,"title":"booking","amount":null,"currency":null,"stage":"open","close_date":[]},"source":{"event_id":"","event_type":"booking.created","occurred_at":""}}"#
        );
    }

    #[test]
    fn a_repeated_member_takes_its_last_value() {
        let event = r#"{"type":"payment.x","type":"booking.created","data":{"booking":{"id":1}},"data":{}}"#;
        assert_eq!(
            transform(event, "").unwrap_err(),
            "event without id (booking.created) has no `data.booking` object"
        );
        let event = r#"{"type":"booking.created","data":{"booking":{"id":1,"id":2,"customer":{"name":"x"},"customer":"y"}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":null,"name":null,"phone":null},"deal":{"external_id":2,"title":"booking 2","amount":null,"currency":null,"stage":"open"},"source":{"event_id":"","event_type":"booking.created","occurred_at":""}}"#
        );
    }

    #[test]
    fn booking_errors_name_the_event() {
        for (event, error) in [
            (
                r#"{"id":"12","type":"booking.created","data":{}}"#,
                "event 12 (booking.created) has no `data.booking` object",
            ),
            (
                r#"{"id":"e","type":"booking.created","data":[{"booking":{}}]}"#,
                "event e (booking.created) has no `data.booking` object",
            ),
            (
                r#"{"type":"booking.created","data":{"booking":null}}"#,
                "event without id (booking.created): `data.booking` must be an object",
            ),
            (
                r#"{"id":"1.5","type":"booking.created","data":{"booking":[]}}"#,
                "event 1.5 (booking.created): `data.booking` must be an object",
            ),
        ] {
            assert_eq!(transform(event, "").unwrap_err(), error, "{event}");
        }
    }

    #[test]
    fn members_not_read_are_still_checked() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for (event, error) in [
            (
                r#"{"type":"booking.created","data":{"booking":{"travelers":[1e400]}}}"#.to_owned(),
                "payload is not valid JSON: number out of range at line 1 column 63",
            ),
            (
                format!(
                    r#"{{"type":"booking.created","data":{{"booking":{{"travelers":{deep}}}}}}}"#
                ),
                "payload is not valid JSON: recursion limit exceeded at line 1 column 182",
            ),
            (
                r#"{"type":"booking.created","data":{"booking":{}}} x"#.to_owned(),
                "payload is not valid JSON: trailing characters at line 1 column 50",
            ),
        ] {
            assert_eq!(transform(&event, "").unwrap_err(), error);
        }
    }

    #[test]
    fn config_members_are_taken_in_order_with_escapes_and_repeats() {
        let event = r#"{"type":"booking.created","data":{"booking":{"status":"confirmed"}}}"#;
        assert_eq!(
            transform(event, r#"{"zzz":1,"pipeline":3}"#).unwrap_err(),
            "unknown config key `zzz` (expected `stage_map`, `pipeline`)"
        );
        assert_eq!(
            transform(event, r#"{"stage_map":{"b":1,"a":2}}"#).unwrap_err(),
            "config key `stage_map` entry `b` must be a string"
        );
        let (body, _, _) = deliver(transform(event, r#"{"pipeline":3,"pipeline":"x"}"#).unwrap());
        assert!(body.contains(r#""stage":"won","pipeline":"x"}"#), "{body}");
        let config = r#"{"stage_map":{"confirm\u0065d":"w\u00f3n"}}"#;
        let (body, _, _) = deliver(transform(event, config).unwrap());
        assert!(body.contains(r#""stage":"wón"}"#), "{body}");
    }
}
