//! `redact`: removes or masks personal data at JSON pointers (with `*`
//! wildcards) before an event leaves the gateway.
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

/// The default replacement of a masked value.
pub const DEFAULT_MASK: &str = "[REDACTED]";

/// What a masked string keeps in front of its last `keep_last` characters.
const PARTIAL_MASK: &str = "***";

/// One reference token of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `*`: every element of an array, every member of an object.
    Any,
    /// A member name, or an array index when it is one.
    Key(String),
}

/// The configuration; see the README.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    remove: Vec<Vec<Segment>>,
    mask: Vec<Vec<Segment>>,
    mask_with: String,
    keep_last: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            remove: Vec::new(),
            mask: Vec::new(),
            mask_with: DEFAULT_MASK.to_owned(),
            keep_last: 0,
        }
    }
}

/// Parses an RFC 6901 pointer in which a `*` token is a wildcard. The empty
/// pointer (the whole document) is refused: `key` names the config key.
fn parse_pointer(key: &str, pointer: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "config key `{key}`: {pointer:?} is not a JSON pointer to a member (it must start with `/`)"
        ));
    };
    rest.split('/')
        .map(|token| {
            if token == "*" {
                return Ok(Segment::Any);
            }
            let mut name = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    name.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => name.push('~'),
                    Some('1') => name.push('/'),
                    _ => {
                        return Err(format!(
                            "config key `{key}`: {pointer:?} has an invalid escape (`~` must be followed by 0 or 1)"
                        ));
                    }
                }
            }
            Ok(Segment::Key(name))
        })
        .collect()
}

fn parse_pointers(key: &str, value: Value) -> Result<Vec<Vec<Segment>>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "config key `{key}` must be an array of JSON pointer strings"
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(pointer) => parse_pointer(key, &pointer),
            other => Err(format!(
                "config key `{key}` must be an array of JSON pointer strings, found {other}"
            )),
        })
        .collect()
}

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
            "remove" => parsed.remove = parse_pointers("remove", value)?,
            "mask" => parsed.mask = parse_pointers("mask", value)?,
            "mask_with" => match value {
                Value::String(mask) => parsed.mask_with = mask,
                _ => return Err("config key `mask_with` must be a string".to_owned()),
            },
            "keep_last" => {
                parsed.keep_last = value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("config key `keep_last` must be a non-negative integer")?
            }
            other => {
                return Err(format!(
                    "unknown config key `{other}` (expected `remove`, `mask`, `mask_with`, `keep_last`)"
                ));
            }
        }
    }
    Ok(parsed)
}

/// An RFC 6901 array index: `0`, or digits without a leading zero.
fn array_index(token: &str) -> Option<usize> {
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    if token.is_empty() || !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// The children of `value` a segment selects.
fn children<'a>(value: &'a mut Value, segment: &Segment) -> Vec<&'a mut Value> {
    match (value, segment) {
        (Value::Object(map), Segment::Any) => map.values_mut().collect(),
        (Value::Array(items), Segment::Any) => items.iter_mut().collect(),
        (Value::Object(map), Segment::Key(name)) => map.get_mut(name).into_iter().collect(),
        (Value::Array(items), Segment::Key(token)) => array_index(token)
            .and_then(|i| items.get_mut(i))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// Removes what `path` points to inside `value`; returns how many values.
fn remove(value: &mut Value, path: &[Segment]) -> usize {
    match path {
        [] => 0,
        [last] => match (value, last) {
            (Value::Object(map), Segment::Any) => std::mem::take(map).len(),
            (Value::Array(items), Segment::Any) => std::mem::take(items).len(),
            (Value::Object(map), Segment::Key(name)) => {
                usize::from(map.shift_remove(name).is_some())
            }
            (Value::Array(items), Segment::Key(token)) => match array_index(token) {
                Some(i) if i < items.len() => {
                    items.remove(i);
                    1
                }
                _ => 0,
            },
            _ => 0,
        },
        [first, rest @ ..] => children(value, first)
            .into_iter()
            .map(|child| remove(child, rest))
            .sum(),
    }
}

/// Masks what `path` points to inside `value`; returns how many values.
fn mask(value: &mut Value, path: &[Segment], config: &Config) -> usize {
    match path {
        [] => {
            *value = Value::String(masked(value, config));
            1
        }
        [first, rest @ ..] => children(value, first)
            .into_iter()
            .map(|child| mask(child, rest, config))
            .sum(),
    }
}

/// The replacement of one masked value.
fn masked(value: &Value, config: &Config) -> String {
    match value {
        Value::String(text) if config.keep_last > 0 => {
            let count = text.chars().count();
            if count <= config.keep_last {
                // Keeping every character would mask nothing.
                PARTIAL_MASK.to_owned()
            } else {
                let tail: String = text.chars().skip(count - config.keep_last).collect();
                format!("{PARTIAL_MASK}{tail}")
            }
        }
        _ => config.mask_with.clone(),
    }
}

/// The redacted body and how many values were removed and masked.
fn redact(envelope: &str, config: &str) -> Result<(String, usize, usize), String> {
    let config = parse_config(config)?;
    let mut document: Value =
        serde_json::from_str(envelope).map_err(|e| format!("payload is not valid JSON: {e}"))?;
    let removed = config
        .remove
        .iter()
        .map(|path| remove(&mut document, path))
        .sum();
    let masked = config
        .mask
        .iter()
        .map(|path| mask(&mut document, path, &config))
        .sum();
    Ok((document.to_string(), removed, masked))
}

/// Redacts one event.
///
/// `envelope` is the JSON body about to be sent; `config` is the endpoint's
/// JSON configuration (`""` or `"{}"`: nothing to redact). Every `remove`
/// pointer is applied in order, then every `mask` pointer; paths that match
/// nothing are ignored. The result is always delivered, as compact JSON
/// with the member order kept, with no headers.
pub fn transform(envelope: &str, config: &str) -> Result<Verdict, String> {
    let (body, _, _) = redact(envelope, config)?;
    Ok(Verdict::Deliver {
        body,
        headers: Vec::new(),
        content_type: None,
    })
}

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../wit" });

    use hookgate::plugin::log::{Level, log};
    use hookgate::plugin::types::Delivery;

    struct Redact;

    impl Guest for Redact {
        fn transform(event: Event, config: String) -> Result<Outcome, String> {
            match super::redact(&event.payload, &config) {
                Ok((body, removed, masked)) => {
                    log(
                        Level::Debug,
                        &format!(
                            "redact: event {}: {removed} value(s) removed, {masked} masked",
                            event.id
                        ),
                    );
                    Ok(Outcome::Deliver(Delivery {
                        body,
                        headers: Vec::new(),
                        content_type: None,
                    }))
                }
                Err(error) => {
                    log(
                        Level::Debug,
                        &format!("redact: event {}: error: {error}", event.id),
                    );
                    Err(error)
                }
            }
        }
    }

    export!(Redact);
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKING: &str = r#"{
  "id": "evt_01JD8Z3V4T",
  "type": "booking.created",
  "created_at": "2026-11-23T10:30:00Z",
  "data": {
    "booking_id": "bk_4821",
    "customer": {"name": "Ana Souza", "email": "ana.souza@example.com", "phone": "+351 912 345 678"},
    "travelers": [
      {"name": "Ana Souza", "passport": "P1234567"},
      {"name": "Rui Souza", "passport": "P7654321"}
    ],
    "card": {"last4": "4242", "number": 4242424242424242}
  }
}"#;

    fn body(envelope: &str, config: &str) -> String {
        match transform(envelope, config).unwrap() {
            Verdict::Deliver {
                body,
                headers,
                content_type,
            } => {
                assert!(headers.is_empty());
                assert_eq!(content_type, None);
                body
            }
            Verdict::Drop(reason) => panic!("unexpected drop: {reason}"),
        }
    }

    #[test]
    fn removes_and_masks_readme_example() {
        let config = r#"{"remove":["/data/customer/phone"],"mask":["/data/customer/email","/data/travelers/*/passport"]}"#;
        assert_eq!(
            body(BOOKING, config),
            r#"{"id":"evt_01JD8Z3V4T","type":"booking.created","created_at":"2026-11-23T10:30:00Z","data":{"booking_id":"bk_4821","customer":{"name":"Ana Souza","email":"[REDACTED]"},"travelers":[{"name":"Ana Souza","passport":"[REDACTED]"},{"name":"Rui Souza","passport":"[REDACTED]"}],"card":{"last4":"4242","number":4242424242424242}}}"#
        );
    }

    #[test]
    fn keep_last_and_mask_with_readme_example() {
        let config = r#"{"mask":["/data/travelers/*/passport","/data/card/number","/data/card/last4"],"mask_with":"<hidden>","keep_last":3}"#;
        assert_eq!(
            body(BOOKING, config),
            r#"{"id":"evt_01JD8Z3V4T","type":"booking.created","created_at":"2026-11-23T10:30:00Z","data":{"booking_id":"bk_4821","customer":{"name":"Ana Souza","email":"ana.souza@example.com","phone":"+351 912 345 678"},"travelers":[{"name":"Ana Souza","passport":"***567"},{"name":"Rui Souza","passport":"***321"}],"card":{"last4":"***242","number":"<hidden>"}}}"#
        );
    }

    #[test]
    fn default_config_only_compacts() {
        let compact = r#"{"id":"evt_01JD8Z3V4T","type":"booking.created","created_at":"2026-11-23T10:30:00Z","data":{"booking_id":"bk_4821","customer":{"name":"Ana Souza","email":"ana.souza@example.com","phone":"+351 912 345 678"},"travelers":[{"name":"Ana Souza","passport":"P1234567"},{"name":"Rui Souza","passport":"P7654321"}],"card":{"last4":"4242","number":4242424242424242}}}"#;
        assert_eq!(body(BOOKING, ""), compact);
        assert_eq!(body(BOOKING, "{}"), compact);
    }

    #[test]
    fn masks_any_json_type() {
        let event = r#"{"a":{"s":"x","n":1.5,"b":true,"z":null,"o":{"k":1},"l":[1,2]}}"#;
        let config = r##"{"mask":["/a/*"],"mask_with":"#"}"##;
        assert_eq!(
            body(event, config),
            r##"{"a":{"s":"#","n":"#","b":"#","z":"#","o":"#","l":"#"}}"##
        );
    }

    #[test]
    fn keep_last_counts_characters_and_never_reveals_short_strings() {
        let event = r#"{"a":"ñandú-1234","b":"abc","c":"abcd","d":7}"#;
        let config = r#"{"mask":["/a","/b","/c","/d"],"keep_last":4}"#;
        assert_eq!(
            body(event, config),
            r#"{"a":"***1234","b":"***","c":"***","d":"[REDACTED]"}"#
        );
        let config = r#"{"mask":["/a"],"keep_last":6}"#;
        assert_eq!(
            body(event, config),
            r#"{"a":"***ú-1234","b":"abc","c":"abcd","d":7}"#
        );
    }

    #[test]
    fn wildcards_cover_objects_arrays_and_nesting() {
        let event = r#"{"rooms":{"r1":{"guests":[{"email":"a@x"},{"email":"b@x","vip":true}]},"r2":{"guests":[]},"r3":5}}"#;
        let config = r#"{"remove":["/rooms/*/guests/*/vip"],"mask":["/rooms/*/guests/*/email"]}"#;
        assert_eq!(
            body(event, config),
            r#"{"rooms":{"r1":{"guests":[{"email":"[REDACTED]"},{"email":"[REDACTED]"}]},"r2":{"guests":[]},"r3":5}}"#
        );
        // A final `*` removes every member / element.
        let config = r#"{"remove":["/rooms/r1/guests/*","/rooms/*"]}"#;
        assert_eq!(body(event, config), r#"{"rooms":{}}"#);
        let config = r#"{"remove":["/rooms/r1/guests/*"]}"#;
        assert_eq!(
            body(event, config),
            r#"{"rooms":{"r1":{"guests":[]},"r2":{"guests":[]},"r3":5}}"#
        );
    }

    #[test]
    fn array_indexes_and_escapes() {
        let event = r#"{"l":["a","b","c"],"a/b":{"m~n":1,"0":2}}"#;
        // Pointers apply in order, like JSON Patch: after removing /l/0,
        // the old /l/2 is /l/1.
        let config =
            r#"{"remove":["/l/0","/l/1","/l/01","/l/-","/l/9"],"mask":["/a~1b/m~0n","/a~1b/0"]}"#;
        assert_eq!(
            body(event, config),
            r#"{"l":["b"],"a/b":{"m~n":"[REDACTED]","0":"[REDACTED]"}}"#
        );
    }

    #[test]
    fn absent_paths_are_ignored() {
        let config = r#"{"remove":["/data/nope","/data/customer/phone/deeper","/id/x","/data/travelers/7"],"mask":["/data/none/*","/data/travelers/*/visa","/type/0"]}"#;
        let expected = body(BOOKING, "");
        assert_eq!(body(BOOKING, config), expected);
        assert_eq!(redact(BOOKING, config).unwrap().1, 0);
        assert_eq!(redact(BOOKING, config).unwrap().2, 0);
    }

    #[test]
    fn remove_wins_over_mask() {
        let config = r#"{"mask":["/data/customer/*"],"remove":["/data/customer/phone"]}"#;
        let (body, removed, masked) = redact(BOOKING, config).unwrap();
        assert!(
            body.contains(r#""customer":{"name":"[REDACTED]","email":"[REDACTED]"}"#),
            "{body}"
        );
        assert_eq!((removed, masked), (1, 2));
    }

    #[test]
    fn bad_configs_are_errors() {
        for (config, needle) in [
            ("{", "config is not valid JSON"),
            ("[]", "config must be a JSON object"),
            (r#"{"remove":"/a"}"#, "`remove` must be an array"),
            (
                r#"{"mask":[1]}"#,
                "`mask` must be an array of JSON pointer strings, found 1",
            ),
            (r#"{"mask":[""]}"#, "`mask`: \"\" is not a JSON pointer"),
            (
                r#"{"remove":["a/b"]}"#,
                "`remove`: \"a/b\" is not a JSON pointer",
            ),
            (r#"{"remove":["/a~"]}"#, "invalid escape"),
            (r#"{"mask_with":null}"#, "`mask_with` must be a string"),
            (
                r#"{"keep_last":-1}"#,
                "`keep_last` must be a non-negative integer",
            ),
            (r#"{"keep_last":1.5}"#, "`keep_last`"),
            (r#"{"keep_last":"4"}"#, "`keep_last`"),
            (r#"{"masks":[]}"#, "unknown config key `masks`"),
        ] {
            let error = transform(BOOKING, config).unwrap_err();
            assert!(error.contains(needle), "{config}: {error}");
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let error = transform("{\"a\":", "").unwrap_err();
        assert!(error.contains("payload is not valid JSON"), "{error}");
    }
}
