//! `field-filter`: delivers an event unchanged only when the value at a JSON
//! pointer is (or, negated, is not) one of a list of JSON values.
//!
//! [`transform`] is the whole plugin (see the README); `export!` makes it
//! the component's `transform` when built for wasm32.

use hookgate_plugin::{Event, Ignored, Outcome, export};
use serde_json::Value;

/// The longest rendering of a found value quoted in a drop reason.
const MAX_SHOWN: usize = 200;

/// The configuration: `{"pointer": "/a/b", "values": [...], "negate": false}`.
struct Config {
    pointer: String,
    values: Vec<Value>,
    negate: bool,
}

fn read_config(config: Value) -> Result<Config, String> {
    let Value::Object(members) = config else {
        return Err("config must be a JSON object".to_owned());
    };
    let (mut pointer, mut values, mut negate) = (None, None, false);
    for (key, value) in members {
        match (key.as_str(), value) {
            ("pointer", Value::String(p)) => pointer = Some(check_pointer(p)?),
            ("pointer", _) => return Err("config key `pointer` must be a string".into()),
            ("values", Value::Array(v)) if !v.is_empty() => values = Some(v),
            ("values", _) => {
                return Err("config key `values` must be a non-empty array of JSON values".into());
            }
            ("negate", Value::Bool(n)) => negate = n,
            ("negate", Value::Null) => negate = false,
            ("negate", _) => return Err("config key `negate` must be a boolean".into()),
            (other, _) => {
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

/// An RFC 6901 JSON pointer: empty (the whole document) or `/`-prefixed,
/// with `~` only in the escapes `~0` and `~1`.
fn check_pointer(pointer: String) -> Result<String, String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "config key `pointer` must be a JSON pointer (RFC 6901) starting with `/`, got {pointer:?}"
        ));
    }
    if pointer
        .split('~')
        .skip(1)
        .any(|rest| !rest.starts_with(['0', '1']))
    {
        return Err(format!(
            "config key `pointer` has an invalid escape (`~` must be followed by 0 or 1): {pointer:?}"
        ));
    }
    Ok(pointer)
}

/// JSON equality: numbers compare by value (`42` equals `42.0`), objects
/// regardless of member order, arrays element by element.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i128(), y.as_i128()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, x)| y.get(k).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

/// `value` as compact JSON, cut to about [`MAX_SHOWN`] bytes.
fn shown(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > MAX_SHOWN {
        let end = (0..=MAX_SHOWN).rev().find(|&i| text.is_char_boundary(i));
        text.truncate(end.unwrap_or(0));
        text.push_str("...");
    }
    text
}

/// Delivers the payload byte for byte unchanged, with no headers, when the
/// value at `pointer` equals one of `values` (with `negate`: when it is
/// missing or equals none of them); otherwise drops it, naming the value.
pub fn transform(event: Event<Ignored>, config: Value) -> Result<Outcome, String> {
    let config = read_config(config)?;
    let payload: Value = event.payload_json()?;
    let found = payload.pointer(&config.pointer);
    let matched = found.is_some_and(|found| config.values.iter().any(|v| json_eq(v, found)));
    if matched != config.negate {
        return Ok(Outcome::text(event.payload));
    }
    let (pointer, found) = (&config.pointer, found.map_or("missing".into(), shown));
    Ok(Outcome::drop(if config.negate {
        format!("value at {pointer} is {found}, one of the excluded values")
    } else {
        format!("value at {pointer} is {found}, not one of the accepted values")
    }))
}

export!(transform);

#[cfg(test)]
mod tests {
    use hookgate_plugin::Outcome as Verdict;
    use serde_json::{Value, json};

    /// The plugin run as the gateway runs it, on an envelope and a config.
    fn transform(envelope: &str, config: &str) -> Result<Verdict, String> {
        hookgate_plugin::call(super::transform, envelope, config)
    }

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

    /// The value the plugin finds at `pointer` (read from its drop reason),
    /// which must be the one parsing the whole document and
    /// `Value::pointer` give.
    fn same_as_value(json: &str, pointer: &str) -> Option<Value> {
        let expected = serde_json::from_str::<Value>(json)
            .unwrap()
            .pointer(pointer)
            .cloned();
        let config = json!({"pointer": pointer, "values": [{"not": "in any test"}]});
        let Verdict::Drop(reason) = transform(json, &config.to_string()).unwrap() else {
            panic!("{json:?} at {pointer:?}: kept");
        };
        let shown = reason
            .strip_prefix(&format!("value at {pointer} is "))
            .and_then(|r| r.strip_suffix(", not one of the accepted values"))
            .unwrap();
        let found = (shown != "missing").then(|| serde_json::from_str(shown).unwrap());
        assert_eq!(found, expected, "{json:?} at {pointer:?}");
        found
    }

    #[test]
    fn the_walker_reads_escaped_keys() {
        let json = r#"{"a/b":{"m~n":"yes","~1":1,"":2},"a\/b\u0021":"esc"}"#;
        assert_eq!(same_as_value(json, "/a~1b/m~0n"), Some(json!("yes")));
        // `~01` is `~1`, not `~/`.
        assert_eq!(same_as_value(json, "/a~1b/~01"), Some(json!(1)));
        assert_eq!(same_as_value(json, "/a~1b/"), Some(json!(2)));
        // Escapes in the document's keys are decoded before comparing.
        assert_eq!(same_as_value(json, "/a~1b!"), Some(json!("esc")));
        assert_eq!(same_as_value(json, "/a/b"), None);
    }

    #[test]
    fn the_walker_indexes_arrays() {
        let json = r#"{"items":[{"name":"a"},{"name":"b","tags":[[1,2],[3]]},7]}"#;
        assert_eq!(same_as_value(json, "/items/0/name"), Some(json!("a")));
        assert_eq!(same_as_value(json, "/items/1/tags/1/0"), Some(json!(3)));
        assert_eq!(same_as_value(json, "/items/2"), Some(json!(7)));
        for missing in [
            "/items/3",
            "/items/01",
            "/items/-",
            "/items/+1",
            "/items/x",
            "/items/",
            "/items/1/name/0",
            "/items/18446744073709551616",
        ] {
            assert_eq!(same_as_value(json, missing), None, "{missing}");
        }
        assert_eq!(same_as_value("[10,11]", "/1"), Some(json!(11)));
        assert_eq!(same_as_value("[]", "/0"), None);
        assert!(kept(
            json,
            r#"{"pointer":"/items/1/tags/0","values":[[1,2]]}"#
        ));
    }

    #[test]
    fn the_walker_finds_nothing_inside_scalars() {
        for json in [r#""abc""#, "1", "-2.5", "true", "null"] {
            for pointer in ["/0", "/s", "/s/0", "/"] {
                assert_eq!(same_as_value(json, pointer), None, "{json} at {pointer}");
            }
        }
        let json = r#"{"s":"abc","n":null}"#;
        for pointer in ["/s/0", "/s/x/y", "/n/0"] {
            assert_eq!(same_as_value(json, pointer), None, "{pointer}");
        }
        assert_eq!(
            transform(
                PENDING,
                r#"{"pointer":"/data/booking/status/x","values":[1]}"#
            )
            .unwrap(),
            Verdict::Drop(
                "value at /data/booking/status/x is missing, not one of the accepted values"
                    .to_owned()
            )
        );
    }

    #[test]
    fn the_empty_pointer_is_the_whole_document() {
        for json in [PENDING, r#""abc""#, "[1,{}]", " 3 ", "{}"] {
            assert!(same_as_value(json, "").is_some(), "{json}");
        }
        assert!(kept(" 3 ", r#"{"pointer":"","values":[3]}"#));
    }

    #[test]
    fn the_last_of_repeated_keys_wins() {
        let json = r#"{"a":1,"b":{"c":1},"a":2,"b":{"d":2}}"#;
        assert_eq!(same_as_value(json, "/a"), Some(json!(2)));
        // Also on the way: `/b/c` is only in the first `b`, which the second hides.
        assert_eq!(same_as_value(json, "/b/c"), None);
        assert_eq!(same_as_value(json, "/b/d"), Some(json!(2)));
        assert_eq!(
            same_as_value(r#"{"a":{"x":1,"y":2,"x":3}}"#, "/a"),
            Some(json!({"x":3,"y":2}))
        );
        assert!(kept(json, r#"{"pointer":"/a","values":[2]}"#));
        assert!(!kept(json, r#"{"pointer":"/a","values":[1]}"#));
    }

    #[test]
    fn found_objects_are_shown_in_document_order() {
        let event = r#"{"data":{"meta":{"y":[true],"x":1,"y":"last"}}}"#;
        assert_eq!(
            transform(event, r#"{"pointer":"/data/meta","values":[1]}"#).unwrap(),
            Verdict::Drop(
                r#"value at /data/meta is {"y":"last","x":1}, not one of the accepted values"#
                    .to_owned()
            )
        );
    }

    #[test]
    fn the_whole_payload_is_still_validated() {
        let big_nesting = format!(r#"{{"a":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        for json in [
            "",
            " ",
            "nope",
            r#"{"data":{"booking":{"status":"pending"}}"#,
            r#"{"data":{"booking":{"status":"pending"}}} x"#,
            r#"{"data":{"booking":{"status":"pending"}}}}"#,
            r#"{"data":{"booking":{"status":"pending",}}}"#,
            // Invalid in the parts the walker skips, before and after the value.
            r#"{"id":01,"data":{"booking":{"status":"pending"}}}"#,
            r#"{"data":{"booking":{"status":"pending"},"x":[1,]}}"#,
            r#"{"data":{"booking":{"status":"pending"},"x":"\q"}}"#,
            // Numbers out of range, unpaired surrogates and nesting deeper than
            // 128 fail a `Value`; a syntax-only skip would let them through.
            r#"{"data":{"booking":{"status":"pending"}},"n":1e400}"#,
            r#"{"s":"\ud800","data":{"booking":{"status":"pending"}}}"#,
            big_nesting.as_str(),
        ] {
            assert_eq!(
                transform(json, STATUS_CONFIG),
                Err(format!(
                    "payload is not valid JSON: {}",
                    serde_json::from_str::<Value>(json).unwrap_err()
                )),
                "{json}"
            );
        }
        // Leading and trailing whitespace is fine, as before.
        let padded = format!("\n {PENDING} \n");
        assert!(kept(&padded, STATUS_CONFIG));
        // Up to 128 levels deep is fine, as before.
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(126), "]".repeat(126));
        let pointer = format!("/a{}", "/0".repeat(126));
        assert_eq!(same_as_value(&deep, &pointer), Some(json!(1)));
    }
}
