//! `field-filter`: delivers an event unchanged only when the value at a JSON
//! pointer is (or, negated, is not) one of a list of JSON values.
//!
//! The logic is the pure function [`transform`], usable natively (tests,
//! benchmarks); the `component` module (wasm32 only) wires it to the
//! `hookgate:plugin/transformer` world.
//!
//! The envelope is never built as a whole `Value`: [`find`] walks the pointer
//! while parsing, skips everything else without allocating, and builds only
//! the value at the pointer. The body is delivered as the input string, so
//! nothing needs to be serialised again.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de};
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

/// The value at `pointer` (RFC 6901, already checked by [`check_pointer`]) in
/// the JSON document `json`, or `None` when there is none; an error when
/// `json` is not one JSON value, exactly as `serde_json::from_str::<Value>`
/// would fail on it.
///
/// The result is the one `serde_json::from_str::<Value>(json)?.pointer(pointer)`
/// gives, without building the document: only the value at the pointer is.
/// So, as in serde_json's map, when an object repeats a key the **last** member
/// of that name counts, even when the pointer goes on into an earlier one.
fn find(json: &str, pointer: &str) -> Result<Option<Value>, serde_json::Error> {
    // Unescaped as `Value::pointer` does: `~1` first, then `~0`.
    let tokens: Vec<Cow<str>> = pointer
        .split('/')
        .skip(1)
        .map(|token| {
            if token.contains('~') {
                Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
            } else {
                Cow::Borrowed(token)
            }
        })
        .collect();
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let found = Walk(&tokens).deserialize(&mut deserializer)?;
    // As `from_str` does: only whitespace may follow the value.
    deserializer.end()?;
    Ok(found)
}

/// An array index in a pointer token, as `Value::pointer` reads it: decimal
/// digits without a sign or leading zeros (`-`, the end, is never found).
fn parse_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// Deserialises the value at the remaining (unescaped) pointer tokens: the
/// value itself when there are none, else `None` for a scalar or the member
/// or element named by the first token, walked on.
struct Walk<'a>(&'a [Cow<'a, str>]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        match self.0.split_first() {
            None => Value::deserialize(deserializer).map(Some),
            Some((token, rest)) => deserializer.deserialize_any(WalkVisitor { token, rest }),
        }
    }
}

struct WalkVisitor<'a> {
    token: &'a str,
    rest: &'a [Cow<'a, str>],
}

impl<'de> Visitor<'de> for WalkVisitor<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // A scalar has no members: the pointer finds nothing in it.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = parse_index(self.token);
        let mut found = None;
        for index in 0.. {
            if Some(index) == wanted {
                match seq.next_element_seed(Walk(self.rest))? {
                    Some(value) => found = value,
                    None => break,
                }
            } else if seq.next_element::<Skip>()?.is_none() {
                break;
            }
        }
        Ok(found)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.token))? {
            if matches {
                // Last one wins: a repeated key replaces what came before.
                found = map.next_value_seed(Walk(self.rest))?;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(found)
    }
}

/// Deserialises an object key to whether it equals the token, without
/// allocating for it (a key with escapes is compared from serde_json's scratch
/// buffer).
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// Parses and discards any JSON value, building nothing.
///
/// Not `serde::de::IgnoredAny`: serde_json skips that with a syntax-only scan
/// that lets through what parsing into a `Value` rejects (`1e999`, an unpaired
/// `\ud800`, nesting deeper than 128), and such a payload must stay an error.
/// Going through `deserialize_any`, as `Value` does, runs the same checks.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
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
    let found =
        find(envelope, &config.pointer).map_err(|e| format!("payload is not valid JSON: {e}"))?;
    let found = found.as_ref();
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
    use serde_json::json;

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

    /// `find` must answer exactly what parsing the whole document and
    /// `Value::pointer` answer, errors included.
    fn same_as_value(json: &str, pointer: &str) -> Option<Value> {
        let expected = serde_json::from_str::<Value>(json)
            .map(|document| document.pointer(pointer).cloned())
            .map_err(|e| e.to_string());
        let found = find(json, pointer).map_err(|e| e.to_string());
        assert_eq!(found, expected, "{json:?} at {pointer:?}");
        found.unwrap()
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
