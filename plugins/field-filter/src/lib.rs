//! `field-filter`: delivers an event unchanged only when the value at a JSON
//! pointer is (or, negated, is not) one of a list of JSON values.
//!
//! The logic is the pure function [`transform`], usable natively (tests,
//! benchmarks); the `component` module (wasm32 only) wires it to the
//! `hookgate:plugin/transformer` world.

use serde_json::Value;

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

/// The longest rendering of a found value quoted in a drop reason.
const MAX_SHOWN: usize = 200;

/// The configuration: `{"pointer": "/a/b", "values": [...], "negate": false}`.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    pointer: String,
    values: Vec<Value>,
    negate: bool,
}

/// Checks that `pointer` is an RFC 6901 JSON pointer: empty (the whole
/// document) or `/`-prefixed, with `~` only in the escapes `~0` and `~1`.
fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "config key `pointer` must be a JSON pointer (RFC 6901) starting with `/`, got {pointer:?}"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "config key `pointer` has an invalid escape (`~` must be followed by 0 or 1): {pointer:?}"
            ));
        }
    }
    Ok(())
}

fn parse_config(config: &str) -> Result<Config, String> {
    let config = config.trim();
    let value: Value = if config.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(config).map_err(|e| format!("config is not valid JSON: {e}"))?
    };
    let Value::Object(map) = value else {
        return Err("config must be a JSON object".to_owned());
    };
    let (mut pointer, mut values, mut negate) = (None, None, false);
    for (key, value) in map {
        match key.as_str() {
            "pointer" => match value {
                Value::String(p) => {
                    check_pointer(&p)?;
                    pointer = Some(p);
                }
                _ => return Err("config key `pointer` must be a string".to_owned()),
            },
            "values" => match value {
                Value::Array(v) if !v.is_empty() => values = Some(v),
                _ => {
                    return Err(
                        "config key `values` must be a non-empty array of JSON values".to_owned(),
                    );
                }
            },
            "negate" => match value {
                Value::Bool(n) => negate = n,
                Value::Null => negate = false,
                _ => return Err("config key `negate` must be a boolean".to_owned()),
            },
            other => {
                return Err(format!(
                    "unknown config key `{other}` (expected `pointer`, `values`, `negate`)"
                ));
            }
        }
    }
    Ok(Config {
        pointer: pointer.ok_or("config key `pointer` is missing")?,
        values: values.ok_or("config key `values` is missing")?,
        negate,
    })
}

/// JSON equality: numbers compare by value (`42` equals `42.0`), objects
/// regardless of member order, arrays element by element.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let as_int = |n: &serde_json::Number| {
                n.as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
            };
            match (as_int(x), as_int(y)) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

/// `value` as compact JSON, cut to about [`MAX_SHOWN`] bytes.
fn shown(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > MAX_SHOWN {
        let mut end = MAX_SHOWN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// Filters one event.
///
/// `envelope` is the JSON body about to be sent; `config` is the endpoint's
/// JSON configuration, which must name `pointer` and `values`. The event is
/// delivered byte for byte unchanged, with no headers, when the value at
/// `pointer` equals one of `values` (when `negate` is true: when it is
/// missing or equals none of them); otherwise it is dropped.
pub fn transform(envelope: &str, config: &str) -> Result<Verdict, String> {
    let config = parse_config(config)?;
    let document: Value =
        serde_json::from_str(envelope).map_err(|e| format!("payload is not valid JSON: {e}"))?;
    let found = document.pointer(&config.pointer);
    let matched = found.is_some_and(|found| config.values.iter().any(|v| json_eq(v, found)));
    if matched != config.negate {
        return Ok(Verdict::Deliver {
            body: envelope.to_owned(),
            headers: Vec::new(),
            content_type: None,
        });
    }
    let found = found.map_or_else(|| "missing".to_owned(), shown);
    let reason = if config.negate {
        format!(
            "value at {} is {found}, one of the excluded values",
            config.pointer
        )
    } else {
        format!(
            "value at {} is {found}, not one of the accepted values",
            config.pointer
        )
    };
    Ok(Verdict::Drop(reason))
}

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../wit" });

    use hookgate::plugin::log::{Level, log};
    use hookgate::plugin::types::{Delivery, Header};

    struct FieldFilter;

    impl Guest for FieldFilter {
        fn transform(event: Event, config: String) -> Result<Outcome, String> {
            let verdict = super::transform(&event.payload, &config);
            let summary = match &verdict {
                Ok(super::Verdict::Deliver { .. }) => format!("event {}: kept", event.id),
                Ok(super::Verdict::Drop(reason)) => {
                    format!("event {}: dropped: {reason}", event.id)
                }
                Err(error) => format!("event {}: error: {error}", event.id),
            };
            log(Level::Debug, &format!("field-filter: {summary}"));
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

    export!(FieldFilter);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Deliberately not compact: a delivered body must be these exact bytes.
    const PENDING: &str = r#"{"id":"evt_01JD8Z3V4T", "type":"booking.updated", "created_at":"2026-11-23T10:30:00Z",
 "data":{"booking":{"id":"bk_4821","status":"pending","seats":2,"paid":false}}}"#;

    const STATUS_CONFIG: &str =
        r#"{"pointer":"/data/booking/status","values":["confirmed","pending"]}"#;

    fn kept(envelope: &str, config: &str) -> bool {
        match transform(envelope, config).unwrap() {
            Verdict::Deliver {
                body,
                headers,
                content_type,
            } => {
                assert_eq!(body, envelope);
                assert!(headers.is_empty());
                assert_eq!(content_type, None);
                true
            }
            Verdict::Drop(_) => false,
        }
    }

    #[test]
    fn keeps_matching_events_byte_for_byte_readme_example() {
        assert_eq!(
            transform(PENDING, STATUS_CONFIG).unwrap(),
            Verdict::Deliver {
                body: PENDING.to_owned(),
                headers: vec![],
                content_type: None,
            }
        );
    }

    #[test]
    fn drops_other_values_readme_example() {
        let cancelled = PENDING.replace("pending", "cancelled");
        assert_eq!(
            transform(&cancelled, STATUS_CONFIG).unwrap(),
            Verdict::Drop(
                r#"value at /data/booking/status is "cancelled", not one of the accepted values"#
                    .to_owned()
            )
        );
    }

    #[test]
    fn missing_values_are_dropped_and_named() {
        let config = r#"{"pointer":"/data/booking/customer/email","values":["x"]}"#;
        assert_eq!(
            transform(PENDING, config).unwrap(),
            Verdict::Drop(
                "value at /data/booking/customer/email is missing, not one of the accepted values"
                    .to_owned()
            )
        );
    }

    #[test]
    fn negate_inverts_the_decision() {
        let config = r#"{"pointer":"/data/booking/status","values":["cancelled"],"negate":true}"#;
        assert!(kept(PENDING, config));
        let cancelled = PENDING.replace("pending", "cancelled");
        assert_eq!(
            transform(&cancelled, config).unwrap(),
            Verdict::Drop(
                r#"value at /data/booking/status is "cancelled", one of the excluded values"#
                    .to_owned()
            )
        );
        // A missing value is "not one of the excluded values".
        let config = r#"{"pointer":"/data/nope","values":[1],"negate":true}"#;
        assert!(kept(PENDING, config));
    }

    #[test]
    fn compares_json_values_not_text() {
        assert!(kept(
            PENDING,
            r#"{"pointer":"/data/booking/seats","values":["x",2]}"#
        ));
        assert!(kept(
            PENDING,
            r#"{"pointer":"/data/booking/seats","values":[2.0]}"#
        ));
        assert!(!kept(
            PENDING,
            r#"{"pointer":"/data/booking/seats","values":["2"]}"#
        ));
        assert!(kept(
            PENDING,
            r#"{"pointer":"/data/booking/paid","values":[false]}"#
        ));
        assert!(!kept(
            PENDING,
            r#"{"pointer":"/data/booking/paid","values":[0,null,"false"]}"#
        ));
        let event = r#"{"data":{"tags":["a","b"],"meta":{"x":1,"y":[true]},"n":null}}"#;
        assert!(kept(
            event,
            r#"{"pointer":"/data/tags","values":[["a","b"]]}"#
        ));
        assert!(!kept(
            event,
            r#"{"pointer":"/data/tags","values":[["b","a"]]}"#
        ));
        assert!(kept(
            event,
            r#"{"pointer":"/data/meta","values":[{"y":[true],"x":1.0}]}"#
        ));
        assert!(kept(event, r#"{"pointer":"/data/n","values":[null]}"#));
        assert!(kept(event, r#"{"pointer":"/data/tags/1","values":["b"]}"#));
    }

    #[test]
    fn pointer_escapes_follow_rfc_6901() {
        let event = r#"{"a/b":{"m~n":"yes"}}"#;
        assert!(kept(event, r#"{"pointer":"/a~1b/m~0n","values":["yes"]}"#));
        assert!(kept(
            event,
            r#"{"pointer":"","values":[{"a/b":{"m~n":"yes"}}]}"#
        ));
    }

    #[test]
    fn long_values_are_cut_in_reasons() {
        let event = format!(r#"{{"v":"{}"}}"#, "é".repeat(300));
        let Verdict::Drop(reason) = transform(&event, r#"{"pointer":"/v","values":[1]}"#).unwrap()
        else {
            panic!("expected a drop");
        };
        assert!(reason.contains("..."), "{reason}");
        assert!(reason.len() < 300, "{reason}");
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (config, needle) in [
            ("", "`pointer` is missing"),
            ("{}", "`pointer` is missing"),
            (r#"{"values":[1]}"#, "`pointer` is missing"),
            (r#"{"pointer":"/a"}"#, "`values` is missing"),
            (
                r#"{"pointer":3,"values":[1]}"#,
                "`pointer` must be a string",
            ),
            (
                r#"{"pointer":"a/b","values":[1]}"#,
                "`pointer` must be a JSON pointer",
            ),
            (
                r#"{"pointer":"/a~2","values":[1]}"#,
                "`pointer` has an invalid escape",
            ),
            (r#"{"pointer":"/a","values":"x"}"#, "`values` must be"),
            (r#"{"pointer":"/a","values":[]}"#, "`values` must be"),
            (
                r#"{"pointer":"/a","values":[1],"negate":"yes"}"#,
                "`negate`",
            ),
            (
                r#"{"pointer":"/a","values":[1],"value":1}"#,
                "unknown config key `value`",
            ),
            ("[1]", "config must be a JSON object"),
            ("{", "config is not valid JSON"),
        ] {
            let error = transform(PENDING, config).unwrap_err();
            assert!(error.contains(needle), "{config}: {error}");
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let error = transform("nope", STATUS_CONFIG).unwrap_err();
        assert!(error.contains("payload is not valid JSON"), "{error}");
    }
}
