//! `redact`: removes or masks personal data at JSON pointers (with `*`
//! wildcards) before an event leaves the gateway.
//!
//! [`transform`] is the whole plugin (see the README): the payload is read
//! into a `serde_json::Value`, edited, and written back as compact JSON
//! (member order kept). `export!` makes it the component's `transform` when
//! built for wasm32.

use hookgate_plugin::{Event, Ignored, Outcome, export};
use serde_json::Value;

/// The default replacement of a masked value.
pub const DEFAULT_MASK: &str = "[REDACTED]";

/// What a masked string keeps in front of its last `keep_last` characters.
const PARTIAL_MASK: &str = "***";

/// One reference token of a pointer.
enum Segment {
    /// `*`: every element of an array, every member of an object.
    Any,
    /// A member name, or an array index when it is one.
    Key(String),
}

/// The configuration; see the README.
struct Config {
    remove: Vec<Vec<Segment>>,
    mask: Vec<Vec<Segment>>,
    mask_with: String,
    keep_last: usize,
}

fn read_config(config: Value) -> Result<Config, String> {
    let Value::Object(members) = config else {
        return Err("config must be a JSON object".to_owned());
    };
    let mut config = Config {
        remove: Vec::new(),
        mask: Vec::new(),
        mask_with: DEFAULT_MASK.to_owned(),
        keep_last: 0,
    };
    for (key, value) in members {
        match (key.as_str(), value) {
            ("remove", value) => config.remove = parse_pointers("remove", value)?,
            ("mask", value) => config.mask = parse_pointers("mask", value)?,
            ("mask_with", Value::String(mask)) => config.mask_with = mask,
            ("mask_with", _) => return Err("config key `mask_with` must be a string".into()),
            ("keep_last", value) => {
                config.keep_last = value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("config key `keep_last` must be a non-negative integer")?
            }
            (other, _) => {
                return Err(format!(
                    "unknown config key `{other}` (expected `remove`, `mask`, `mask_with`, `keep_last`)"
                ));
            }
        }
    }
    Ok(config)
}

fn parse_pointers(key: &str, value: Value) -> Result<Vec<Vec<Segment>>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "config key `{key}` must be an array of JSON pointer strings"
        ));
    };
    let pointer = |item| match item {
        Value::String(pointer) => parse_pointer(key, &pointer),
        other => Err(format!(
            "config key `{key}` must be an array of JSON pointer strings, found {other}"
        )),
    };
    items.into_iter().map(pointer).collect()
}

/// An RFC 6901 pointer to a member (it starts with `/`), in which a `*`
/// token is a wildcard.
fn parse_pointer(key: &str, pointer: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "config key `{key}`: {pointer:?} is not a JSON pointer to a member (it must start with `/`)"
        ));
    };
    let segment = |token: &str| {
        if token
            .split('~')
            .skip(1)
            .any(|rest| !rest.starts_with(['0', '1']))
        {
            return Err(format!(
                "config key `{key}`: {pointer:?} has an invalid escape (`~` must be followed by 0 or 1)"
            ));
        }
        Ok(match token {
            "*" => Segment::Any,
            _ => Segment::Key(token.replace("~1", "/").replace("~0", "~")),
        })
    };
    rest.split('/').map(segment).collect()
}

/// An RFC 6901 array index: `0`, or digits without a leading zero.
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = token.len() > 1 && token.starts_with('0');
    (digits && !leading_zero)
        .then(|| token.parse().ok())
        .flatten()
}

/// The values `segment` names inside `node`.
fn children<'a>(node: &'a mut Value, segment: &Segment) -> Vec<&'a mut Value> {
    match (node, segment) {
        (Value::Object(members), Segment::Any) => members.values_mut().collect(),
        (Value::Array(items), Segment::Any) => items.iter_mut().collect(),
        (Value::Object(members), Segment::Key(name)) => members.get_mut(name).into_iter().collect(),
        (Value::Array(items), Segment::Key(token)) => array_index(token)
            .and_then(|i| items.get_mut(i))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// Removes what `path` points to inside `node`; returns how many values.
fn remove(node: &mut Value, path: &[Segment]) -> usize {
    match path {
        [] => 0,
        [last] => match (node, last) {
            (Value::Object(members), Segment::Any) => std::mem::take(members).len(),
            (Value::Array(items), Segment::Any) => std::mem::take(items).len(),
            (Value::Object(members), Segment::Key(name)) => {
                usize::from(members.shift_remove(name).is_some())
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
        [first, rest @ ..] => children(node, first)
            .into_iter()
            .map(|c| remove(c, rest))
            .sum(),
    }
}

/// Masks what `path` points to inside `node`; returns how many values.
fn mask(node: &mut Value, path: &[Segment], config: &Config) -> usize {
    let Some((first, rest)) = path.split_first() else {
        *node = match &*node {
            Value::String(text) if config.keep_last > 0 => {
                let count = text.chars().count();
                let tail = text.chars().skip(count.saturating_sub(config.keep_last));
                // Keeping every character would mask nothing.
                let tail: String = if count <= config.keep_last {
                    "".into()
                } else {
                    tail.collect()
                };
                Value::String(format!("{PARTIAL_MASK}{tail}"))
            }
            _ => Value::String(config.mask_with.clone()),
        };
        return 1;
    };
    let children = children(node, first).into_iter();
    children.map(|child| mask(child, rest, config)).sum()
}

/// Applies every `remove` pointer in order, then every `mask` pointer;
/// returns how many values were removed and masked.
fn redact(document: &mut Value, config: &Config) -> (usize, usize) {
    let removed = config
        .remove
        .iter()
        .map(|path| remove(document, path))
        .sum();
    let masked = config
        .mask
        .iter()
        .map(|path| mask(document, path, config))
        .sum();
    (removed, masked)
}

/// Redacts one event: always delivered, as compact JSON, with no headers.
pub fn transform(event: Event<Ignored>, config: Value) -> Result<Outcome, String> {
    let config = read_config(config)?;
    let mut payload: Value = event.payload_json()?;
    redact(&mut payload, &config);
    Outcome::json(&payload)
}

export!(transform);

#[cfg(test)]
mod tests {
    use super::{DEFAULT_MASK, read_config};
    use hookgate_plugin::Outcome as Verdict;
    use serde_json::Value;

    /// The plugin run as the gateway runs it, on an envelope and a config.
    fn transform(envelope: &str, config: &str) -> Result<Verdict, String> {
        hookgate_plugin::call(super::transform, envelope, config)
    }

    /// The body, and how many values were removed and masked.
    fn redact(envelope: &str, config: &str) -> Result<(String, usize, usize), String> {
        let config = read_config(hookgate_plugin::parse_config(config)?)?;
        let mut document: Value = serde_json::from_str(envelope).map_err(|e| e.to_string())?;
        let (removed, masked) = super::redact(&mut document, &config);
        Ok((document.to_string(), removed, masked))
    }

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

    // What the text-level rewrite could get wrong, checked against what
    // parsing into a `serde_json::Value` and printing it gives.

    /// The body serde_json itself gives for `envelope` (nothing redacted).
    fn reprinted(envelope: &str) -> String {
        serde_json::from_str::<Value>(envelope).unwrap().to_string()
    }

    #[test]
    fn escaped_keys_match_their_unescaped_name() {
        let event = r#"{"ph\u006fne":"x","a\/b":{"m~n":1,"k":2},"q\"":"\"quoted\""}"#;
        let config = r#"{"remove":["/phone"],"mask":["/a~1b/m~0n","/q\""]}"#;
        assert_eq!(
            redact(event, config).unwrap(),
            (
                r#"{"a/b":{"m~n":"[REDACTED]","k":2},"q\"":"[REDACTED]"}"#.to_owned(),
                1,
                2
            )
        );
    }

    #[test]
    fn nested_wildcards() {
        let event = r#"{"a":[{"b":{"x":1,"y":2}},{"b":[{"x":3},5]},7],"c":{"d":{"x":4},"e":[]}}"#;
        let config = r#"{"mask":["/*/*/*/x","/*/*/b/*/x","/*/*/x"]}"#;
        assert_eq!(
            redact(event, config).unwrap(),
            (
                r#"{"a":[{"b":{"x":"[REDACTED]","y":2}},{"b":[{"x":"[REDACTED]"},5]},7],"c":{"d":{"x":"[REDACTED]"},"e":[]}}"#.to_owned(),
                0,
                3
            )
        );
        let config = r#"{"remove":["/*/*/b/*","/c/*/*"]}"#;
        assert_eq!(
            redact(event, config).unwrap(),
            (
                r#"{"a":[{"b":{}},{"b":[]},7],"c":{"d":{},"e":[]}}"#.to_owned(),
                5,
                0
            )
        );
    }

    #[test]
    fn remove_and_mask_on_the_same_path() {
        let config = r#"{"remove":["/data/customer/phone"],"mask":["/data/customer/phone"]}"#;
        let (body, removed, masked) = redact(BOOKING, config).unwrap();
        assert!(!body.contains("phone"), "{body}");
        assert_eq!((removed, masked), (1, 0));
        // Masking twice masks the first mask: with `keep_last`, its tail.
        let config = r#"{"mask":["/a","/a"],"keep_last":5}"#;
        assert_eq!(
            redact(r#"{"a":"ñandú-1234"}"#, config).unwrap(),
            (r#"{"a":"***-1234"}"#.to_owned(), 0, 2)
        );
        let config = r#"{"mask":["/a","/a"],"keep_last":2,"mask_with":"<hidden>"}"#;
        assert_eq!(
            redact(r#"{"a":7}"#, config).unwrap(),
            (r#"{"a":"***n>"}"#.to_owned(), 0, 2)
        );
    }

    #[test]
    fn pretty_input_is_compacted_but_not_inside_strings() {
        let event = "\r\n { \"a\" :\t[ 1 , \"x  y\\n\" , { } ] ,\n  \"b\" : { \"c\" : \" \" } } \n";
        let compact = r#"{"a":[1,"x  y\n",{}],"b":{"c":" "}}"#;
        assert_eq!(body(event, ""), compact);
        assert_eq!(body(event, r#"{"mask":["/nothing"]}"#), compact);
        assert_eq!(
            body(event, r#"{"mask":["/a/1"],"remove":["/b/c"]}"#),
            r#"{"a":[1,"[REDACTED]",{}],"b":{}}"#
        );
    }

    #[test]
    fn unicode_keys_and_values() {
        let event = r#"{"ключ":"значение","emoji":"\ud83d\ude00 ok 😀","é":{"ü":"ß"}}"#;
        let config = r#"{"mask":["/ключ","/emoji"],"keep_last":3}"#;
        assert_eq!(
            body(event, config),
            r#"{"ключ":"***ние","emoji":"***ok 😀"}"#.replace("ok 😀\"}", "k 😀\"")
                + r#","é":{"ü":"ß"}}"#
        );
        assert_eq!(
            body(event, r#"{"remove":["/é/ü"]}"#),
            r#"{"ключ":"значение","emoji":"😀 ok 😀","é":{}}"#
        );
    }

    #[test]
    fn numbers_and_escapes_are_written_as_serde_json_writes_them() {
        let event = r#"{"n":[1E2,-0,1.50,12345678901234567890,123456789012345678901,0.1,-7,1e-400],"s":"\u00e9\/\u001F\t\u2028\""}"#;
        let expected = r#"{"n":[100.0,-0.0,1.5,12345678901234567890,1.2345678901234567e+20,0.1,-7,0.0],"s":"é/\u001f\t\u{2028}\""}"#
            .replace("\\u{2028}", "\u{2028}");
        assert_eq!(body(event, ""), expected);
        assert_eq!(body(event, ""), reprinted(event));
        assert_eq!(body(event, r#"{"mask":["/n/9"]}"#), expected);
        assert_eq!(
            body(event, r#"{"mask":["/n/0"]}"#),
            expected.replace("100.0", "\"[REDACTED]\"")
        );
    }

    #[test]
    fn duplicate_members() {
        // The last value wins, in the first one's place (as serde_json's
        // map has it): no duplicate escapes a pointer.
        let event = r#"{"p":"xx","a":1,"p":"yz","o":{"k":1,"k":2}}"#;
        assert_eq!(
            redact(event, r#"{"remove":["/p"]}"#).unwrap(),
            (r#"{"a":1,"o":{"k":2}}"#.to_owned(), 1, 0)
        );
        assert_eq!(
            redact(event, r#"{"mask":["/p"],"keep_last":1}"#).unwrap(),
            (r#"{"p":"***z","a":1,"o":{"k":2}}"#.to_owned(), 0, 1)
        );
        assert_eq!(
            redact(event, r#"{"mask":["/*"]}"#).unwrap().2,
            3,
            "one per name"
        );
        // Elsewhere too, as serde_json reads them.
        assert_eq!(body(event, ""), reprinted(event));
        assert_eq!(
            body(event, r#"{"remove":["/o/k"]}"#),
            r#"{"p":"yz","a":1,"o":{}}"#
        );
        // Large objects take another path.
        let members: Vec<String> = (0..40).map(|i| format!(r#""k{}":{i}"#, i % 25)).collect();
        let event = format!("{{{}}}", members.join(","));
        let (body, removed, _) = redact(&event, r#"{"remove":["/k3"]}"#).unwrap();
        let expected: Value = serde_json::from_str(&event).unwrap();
        let mut expected = expected.as_object().unwrap().clone();
        expected.shift_remove("k3");
        assert_eq!(body, Value::Object(expected).to_string());
        assert_eq!(removed, 1);
    }

    #[test]
    fn valid_payloads_of_every_shape() {
        let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
        let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(127), "}".repeat(127));
        for event in [
            r#""just a string""#,
            " 5 ",
            "-1.5e3",
            "true",
            "null",
            "[]",
            "{}",
            r#"[{"a":[]},{},[[]],"x",0]"#,
            &deep,
            &deep_objects,
        ] {
            assert_eq!(body(event, ""), reprinted(event), "{event}");
            assert_eq!(
                body(event, r#"{"remove":["/a","/0/a"],"mask":["/1"]}"#),
                redact_old_way(event),
                "{event}"
            );
        }
    }

    /// What `{"remove":["/a","/0/a"],"mask":["/1"]}` does, on a `Value`.
    fn redact_old_way(event: &str) -> String {
        let mut value: Value = serde_json::from_str(event).unwrap();
        if let Some(map) = value.as_object_mut() {
            map.shift_remove("a");
        }
        if let Some(Value::Object(map)) = value.get_mut(0) {
            map.shift_remove("a");
        }
        match &mut value {
            Value::Object(map) => {
                if let Some(v) = map.get_mut("1") {
                    *v = Value::from(DEFAULT_MASK);
                }
            }
            Value::Array(items) => {
                if let Some(v) = items.get_mut(1) {
                    *v = Value::from(DEFAULT_MASK);
                }
            }
            _ => {}
        }
        value.to_string()
    }

    #[test]
    fn payload_errors_are_serde_jsons() {
        let too_deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        let too_deep_objects = format!("{}1{}", r#"{"a":"#.repeat(128), "}".repeat(128));
        for event in [
            "",
            "  ",
            "{",
            "[1,]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "{1:2}",
            "[01]",
            "[-]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1e]",
            "tru",
            "nul",
            "[1 2]",
            "1 2",
            "[1]]",
            "NaN",
            r#""\q""#,
            r#"["\u12"]"#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            "\"a\u{1}b\"",
            "\"a\tb\"",
            "[1e400]",
            "-1e400",
            "\u{feff}{}",
            "\"abc",
            &too_deep,
            &too_deep_objects,
        ] {
            let expected = serde_json::from_str::<Value>(event).unwrap_err();
            for config in ["", r#"{"mask":["/0","/a"]}"#] {
                assert_eq!(
                    transform(event, config).unwrap_err(),
                    format!("payload is not valid JSON: {expected}"),
                    "{event:?}"
                );
            }
        }
        // Every truncation of an envelope is an error.
        let compact = body(BOOKING, "");
        let config = r#"{"remove":["/data/customer/phone"],"mask":["/data/travelers/*/passport"]}"#;
        for end in (0..compact.len()).filter(|&end| compact.is_char_boundary(end)) {
            let error = transform(&compact[..end], config).unwrap_err();
            assert!(error.starts_with("payload is not valid JSON: "), "{error}");
        }
    }
}
