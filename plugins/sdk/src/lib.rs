//! Write a hookgate plugin as one plain Rust function.
//!
//! A plugin reshapes, filters or enriches each delivery of an endpoint. With
//! this crate it is a function from the [`Event`] and the endpoint's config
//! to an [`Outcome`], and one line that exports it:
//!
//! ```
//! use hookgate_plugin::{export, Event, Outcome};
//! use serde_json::{json, Value};
//!
//! fn transform(event: Event, config: Value) -> Result<Outcome, String> {
//!     if !event.event_type.starts_with("booking.") {
//!         return Ok(Outcome::drop(format!("not a booking: {}", event.event_type)));
//!     }
//!     let body = json!({"booking": event.data["booking"]["id"], "team": config["team"]});
//!     Ok(Outcome::json(&body)?.header("X-Source", "hookgate"))
//! }
//!
//! export!(transform);
//! # fn main() {
//! #     let out = hookgate_plugin::call(transform, r#"{"id":"evt_1","type":"booking.created","data":{"booking":{"id":"bk_1"}}}"#, r#"{"team":"ops"}"#);
//! #     assert_eq!(out.unwrap(), Outcome::text(r#"{"booking":"bk_1","team":"ops"}"#).header("X-Source", "hookgate"));
//! # }
//! ```
//!
//! Built for `wasm32-wasip2`, [`export!`] makes the crate a component of
//! hookgate's `transformer` world (`wit/plugin.wit`), ready to upload. On any
//! other target it only checks the function's signature, so the same crate
//! is an ordinary library for tests, and [`call`] runs the function the way
//! the gateway does.
//!
//! # What the function gets
//!
//! - `event: Event<T>`: the event's id, type, time and endpoint, the headers
//!   earlier plugins of the chain added, the body about to be sent
//!   (`payload`: the envelope `{"id","type","created_at","data"}`, or what the
//!   previous plugin returned), and the envelope's `data` member read as `T`
//!   with serde (`serde_json::Value` by default; a struct of yours to have
//!   it typed; [`Ignored`] when the function reads `payload` itself).
//! - `config: C`: the JSON config the endpoint gives the plugin (`{}` when
//!   none), read as `C` with serde (`serde_json::Value`, or a struct).
//!
//! A payload that is not JSON, a `data` that does not fit `T`, or a config
//! that is not JSON or does not fit `C`, is an error before the function
//! runs: the delivery is `plugin_failed`, with the reason.
//!
//! # What it returns
//!
//! - `Ok(Outcome::json(&value)?)`: deliver `value` as compact JSON (any
//!   `Serialize`); `Ok(Outcome::text(s))`: deliver `s` exactly as it is;
//!   either with `.header(name, value)` and `.content_type(...)`
//!   (`application/json` when not set).
//! - `Ok(Outcome::drop(reason))`: send nothing; the delivery log says
//!   `filtered`, with the reason.
//! - `Err(message)`: a plugin failure; the delivery log says
//!   `plugin_failed`, with the message, and nothing is sent.
//!
//! Every call also logs one debug line to the gateway (the plugin's package
//! name, the event id and what happened), shown in dry runs.

use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transformer",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_transformer",
    });
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<T = Value> {
    /// The event id: `evt_...`, or the producer's own id.
    pub id: String,
    /// The event type, such as `booking.created` (the envelope's `type`).
    pub event_type: String,
    /// When the event was published, RFC 3339 (UTC).
    pub created_at: String,
    /// The endpoint this delivery goes to (`wh_...`).
    pub endpoint_id: String,
    /// The `data` member of the payload, read as `T` (from `null` when the
    /// payload has none, or is not an object).
    pub data: T,
    /// Headers added by the previous plugins of the chain.
    pub headers: Vec<(String, String)>,
    /// The body about to be sent, as text: the envelope
    /// `{"id","type","created_at","data"}`, or what the previous plugin
    /// returned.
    pub payload: String,
}

impl<T: DeserializeOwned> Event<T> {
    /// The event a plugin gets from its parts, reading `data` from
    /// `payload`. An error when `payload` is not JSON or its `data` does
    /// not fit `T`.
    pub fn new(
        id: String,
        event_type: String,
        created_at: String,
        endpoint_id: String,
        payload: String,
        headers: Vec<(String, String)>,
    ) -> Result<Event<T>, String> {
        let parsed = Envelope::<T>::parse(&payload)?;
        Ok(Event {
            id,
            event_type,
            created_at,
            endpoint_id,
            data: parsed.data,
            headers,
            payload,
        })
    }

    /// The event the gateway gives a plugin whose payload is `envelope`:
    /// `id`, `type` and `created_at` are the envelope's (empty when it has
    /// no such string member), no endpoint id, no headers. For tests, and
    /// for running a plugin outside the gateway.
    pub fn from_envelope(envelope: impl Into<String>) -> Result<Event<T>, String> {
        let payload = envelope.into();
        let parsed = Envelope::<T>::parse(&payload)?;
        Ok(Event {
            id: parsed.id.unwrap_or_default(),
            event_type: parsed.event_type.unwrap_or_default(),
            created_at: parsed.created_at.unwrap_or_default(),
            endpoint_id: String::new(),
            data: parsed.data,
            headers: Vec::new(),
            payload,
        })
    }
}

impl<T> Event<T> {
    /// The whole payload read as `U` (a `serde_json::Value`, or a struct):
    /// for plugins that work on the body as a whole.
    pub fn payload_json<U: DeserializeOwned>(&self) -> Result<U, String> {
        serde_json::from_str(&self.payload).map_err(payload_error)
    }
}

/// What the plugin decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this request instead.
    Deliver {
        /// The new body; hookgate signs exactly these bytes.
        body: String,
        /// Headers to add. Names hookgate sets itself (signatures, ids,
        /// content-type, host, ...) are refused by the gateway.
        headers: Vec<(String, String)>,
        /// The body's media type; `application/json` when `None`.
        content_type: Option<String>,
    },
    /// Send nothing: the delivery log says `filtered`, with this reason.
    Drop(String),
}

impl Outcome {
    /// Deliver `body` written as compact JSON. An error only when `body`
    /// cannot be written as JSON (a map with keys that are not strings).
    pub fn json<B: Serialize + ?Sized>(body: &B) -> Result<Outcome, String> {
        let body =
            serde_json::to_string(body).map_err(|e| format!("cannot write the body: {e}"))?;
        Ok(Outcome::text(body))
    }

    /// Deliver `body` exactly as it is.
    pub fn text(body: impl Into<String>) -> Outcome {
        Outcome::Deliver {
            body: body.into(),
            headers: Vec::new(),
            content_type: None,
        }
    }

    /// Deliver nothing; `reason` goes to the delivery log.
    pub fn drop(reason: impl Into<String>) -> Outcome {
        Outcome::Drop(reason.into())
    }

    /// Adds a header to a delivery (a dropped outcome stays as it is).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Outcome {
        if let Outcome::Deliver { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// Sets a delivery's media type (a dropped outcome stays as it is).
    pub fn content_type(mut self, media_type: impl Into<String>) -> Outcome {
        if let Outcome::Deliver { content_type, .. } = &mut self {
            *content_type = Some(media_type.into());
        }
        self
    }
}

/// Reads the config text as `C`: empty (or only whitespace) is `{}`.
pub fn parse_config<C: DeserializeOwned>(config: &str) -> Result<C, String> {
    let config = config.trim();
    let config = if config.is_empty() { "{}" } else { config };
    serde_json::from_str(config).map_err(|e| {
        if e.is_data() {
            format!("config is invalid: {e}")
        } else {
            format!("config is not valid JSON: {e}")
        }
    })
}

/// Runs `transform` as the gateway does on a payload and config text: the
/// config is read first, then the event (with [`Event::from_envelope`]).
/// For tests, benchmarks and native tools.
pub fn call<T, C>(
    transform: impl FnOnce(Event<T>, C) -> Result<Outcome, String>,
    envelope: &str,
    config: &str,
) -> Result<Outcome, String>
where
    T: DeserializeOwned,
    C: DeserializeOwned,
{
    let config = parse_config(config)?;
    transform(Event::from_envelope(envelope)?, config)
}

/// A `data` the plugin does not read: checked to be JSON like the rest of
/// the payload, but not kept. Take `Event<Ignored>` when the function reads
/// `event.payload` itself, so the body is not read into values twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Not `serde::de::IgnoredAny`: serde_json skips that with a
        // syntax-only scan that lets through what a `Value` refuses (`1e999`,
        // a lone `\ud800`, nesting past 128). Through `deserialize_any` the
        // same checks run, so a payload is refused whatever `T` is.
        deserializer.deserialize_any(IgnoredVisitor)
    }
}

struct IgnoredVisitor;

impl<'de> Visitor<'de> for IgnoredVisitor {
    type Value = Ignored;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Ignored, E> {
        Ok(Ignored)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Ignored, E> {
        Ok(Ignored)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Ignored, E> {
        Ok(Ignored)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Ignored, E> {
        Ok(Ignored)
    }
    fn visit_str<E>(self, _: &str) -> Result<Ignored, E> {
        Ok(Ignored)
    }
    fn visit_unit<E>(self) -> Result<Ignored, E> {
        Ok(Ignored)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ignored, A::Error> {
        while seq.next_element::<Ignored>()?.is_some() {}
        Ok(Ignored)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ignored, A::Error> {
        while map.next_entry::<Ignored, Ignored>()?.is_some() {}
        Ok(Ignored)
    }
}

fn payload_error(e: serde_json::Error) -> String {
    if e.is_data() {
        format!("payload does not fit: {e}")
    } else {
        format!("payload is not valid JSON: {e}")
    }
}

/// What one pass over the payload reads: the envelope's string `id`,
/// `type`, `created_at`, and `data` as `T`. The rest is checked and skipped.
struct Envelope<T> {
    id: Option<String>,
    event_type: Option<String>,
    created_at: Option<String>,
    data: T,
}

impl<T: DeserializeOwned> Envelope<T> {
    fn parse(payload: &str) -> Result<Envelope<T>, String> {
        let mut deserializer = serde_json::Deserializer::from_str(payload);
        let found = EnvelopeSeed::<T>(std::marker::PhantomData)
            .deserialize(&mut deserializer)
            .and_then(|found| deserializer.end().map(|()| found))
            .map_err(payload_error)?;
        let data = match found.data {
            Some(data) => data,
            None => T::deserialize(Value::Null)
                .map_err(|e| format!("payload has no `data` member, and `data` is needed: {e}"))?,
        };
        Ok(Envelope {
            id: found.id,
            event_type: found.event_type,
            created_at: found.created_at,
            data,
        })
    }
}

struct Found<T> {
    id: Option<String>,
    event_type: Option<String>,
    created_at: Option<String>,
    data: Option<T>,
}

struct EnvelopeSeed<T>(std::marker::PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for EnvelopeSeed<T> {
    type Value = Found<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Found<T>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<T> EnvelopeSeed<T> {
    fn nothing(self) -> Found<T> {
        Found {
            id: None,
            event_type: None,
            created_at: None,
            data: None,
        }
    }
}

/// A member read as a string when it is one; anything else is checked and
/// dropped.
fn string_member<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<String>, A::Error> {
    Ok(match map.next_value::<Value>()? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

impl<'de, T: DeserializeOwned> Visitor<'de> for EnvelopeSeed<T> {
    type Value = Found<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<T>, A::Error> {
        let mut found = self.nothing();
        // A repeated member counts once, with its last value (as in a
        // `Value`).
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "id" => found.id = string_member(&mut map)?,
                "type" => found.event_type = string_member(&mut map)?,
                "created_at" => found.created_at = string_member(&mut map)?,
                "data" => found.data = Some(map.next_value()?),
                _ => {
                    map.next_value::<Ignored>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Found<T>, A::Error> {
        IgnoredVisitor.visit_seq(seq)?;
        Ok(self.nothing())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Found<T>, E> {
        Ok(self.nothing())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Found<T>, E> {
        Ok(self.nothing())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Found<T>, E> {
        Ok(self.nothing())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Found<T>, E> {
        Ok(self.nothing())
    }
    fn visit_str<E>(self, _: &str) -> Result<Found<T>, E> {
        Ok(self.nothing())
    }
    fn visit_unit<E>(self) -> Result<Found<T>, E> {
        Ok(self.nothing())
    }
}

/// One line of the plugin's summary, logged at debug level after each call.
#[cfg(any(test, target_arch = "wasm32"))]
fn summary(plugin: &str, id: &str, result: &Result<Outcome, String>) -> String {
    match result {
        Ok(Outcome::Deliver { body, .. }) => {
            format!("{plugin}: event {id}: deliver {} bytes", body.len())
        }
        Ok(Outcome::Drop(reason)) => format!("{plugin}: event {id}: dropped: {reason}"),
        Err(error) => format!("{plugin}: event {id}: error: {error}"),
    }
}

/// Writes a line to the gateway's log (shown in dry runs); outside the
/// gateway, to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use bindings::hookgate::plugin::log as host;
        let level = match level {
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?}: {message}");
}

/// The level of a [`log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// The component's `transform`, for [`export!`]: reads the config and the
/// event, runs the function, logs a summary and answers in WIT terms.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub fn __run<T, C>(
    plugin: &str,
    event: bindings::hookgate::plugin::types::Event,
    config: String,
    transform: impl FnOnce(Event<T>, C) -> Result<Outcome, String>,
) -> Result<bindings::hookgate::plugin::types::Outcome, String>
where
    T: DeserializeOwned,
    C: DeserializeOwned,
{
    use bindings::hookgate::plugin::types as wit;
    let id = event.id.clone();
    let result = parse_config(&config).and_then(|config| {
        let event = Event::new(
            event.id,
            event.event_type,
            event.created_at,
            event.endpoint_id,
            event.payload,
            event
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
        )?;
        transform(event, config)
    });
    log(Level::Debug, &summary(plugin, &id, &result));
    result.map(|outcome| match outcome {
        Outcome::Deliver {
            body,
            headers,
            content_type,
        } => wit::Outcome::Deliver(wit::Delivery {
            body,
            headers: headers
                .into_iter()
                .map(|(name, value)| wit::Header { name, value })
                .collect(),
            content_type,
        }),
        Outcome::Drop(reason) => wit::Outcome::Drop(reason),
    })
}

/// Checks a function's signature for [`export!`] on targets other than
/// wasm32, where nothing is exported.
#[doc(hidden)]
pub fn __check<T, C>(_: impl FnOnce(Event<T>, C) -> Result<Outcome, String>)
where
    T: DeserializeOwned,
    C: DeserializeOwned,
{
}

/// Exports `fn(Event<T>, C) -> Result<Outcome, String>` as the plugin's
/// `transform` (`T`, `C`: any serde `DeserializeOwned`, such as
/// `serde_json::Value`). Once per crate, at its root.
#[macro_export]
macro_rules! export {
    ($transform:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct HookgatePlugin;

            impl $crate::bindings::Guest for HookgatePlugin {
                fn transform(
                    event: $crate::bindings::hookgate::plugin::types::Event,
                    config: ::std::string::String,
                ) -> ::std::result::Result<
                    $crate::bindings::hookgate::plugin::types::Outcome,
                    ::std::string::String,
                > {
                    $crate::__run(env!("CARGO_PKG_NAME"), event, config, $transform)
                }
            }

    $crate::bindings::__export_transformer!(HookgatePlugin with_types_in $crate::bindings);
        };

        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        #[allow(dead_code)]
        fn __hookgate_plugin_check() {
            $crate::__check($transform)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Booking {
        id: String,
        total: f64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Data {
        booking: Booking,
    }

    const ENVELOPE: &str = r#"{"id":"evt_1","type":"booking.created","created_at":"2026-11-23T10:30:00.000Z","data":{"booking":{"id":"bk_1","total":12.5}}}"#;

    #[test]
    fn reads_the_envelope_as_values_or_types() {
        let event = Event::<Value>::from_envelope(ENVELOPE).unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.event_type, "booking.created");
        assert_eq!(event.created_at, "2026-11-23T10:30:00.000Z");
        assert_eq!(
            event.data,
            json!({"booking": {"id": "bk_1", "total": 12.5}})
        );
        assert_eq!(event.payload, ENVELOPE);
        let typed = Event::<Data>::from_envelope(ENVELOPE).unwrap();
        assert_eq!(
            typed.data.booking,
            Booking {
                id: "bk_1".into(),
                total: 12.5
            }
        );
        assert!(Event::<Ignored>::from_envelope(ENVELOPE).is_ok());
    }

    #[test]
    fn the_parts_win_over_the_envelope() {
        let event = Event::<Value>::new(
            "evt_2".into(),
            "a.b".into(),
            "t".into(),
            "wh_1".into(),
            ENVELOPE.into(),
            vec![("X-A".into(), "1".into())],
        )
        .unwrap();
        assert_eq!(
            (&*event.id, &*event.event_type, &*event.endpoint_id),
            ("evt_2", "a.b", "wh_1")
        );
        assert_eq!(event.data["booking"]["id"], "bk_1");
        assert_eq!(event.headers, vec![("X-A".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn payloads_that_are_not_envelopes() {
        for payload in ["[1,2]", "3", r#""x""#, "null", r#"{"deal":{}}"#] {
            let event = Event::<Value>::from_envelope(payload).unwrap();
            assert_eq!(event.data, Value::Null, "{payload}");
            assert_eq!(event.id, "");
        }
        let error = Event::<Data>::from_envelope("[1]").unwrap_err();
        assert!(error.starts_with("payload has no `data` member"), "{error}");
        let error = Event::<Data>::from_envelope(r#"{"data":{"booking":{"id":1}}}"#).unwrap_err();
        assert!(
            error.starts_with("payload does not fit: invalid type"),
            "{error}"
        );
        // A repeated member: the last one.
        let event =
            Event::<Value>::from_envelope(r#"{"type":"a","data":1,"type":"b","data":2}"#).unwrap();
        assert_eq!((&*event.event_type, event.data), ("b", json!(2)));
        // Not strings: left empty.
        let event = Event::<Value>::from_envelope(r#"{"id":12,"type":null}"#).unwrap();
        assert_eq!((&*event.id, &*event.event_type), ("", ""));
    }

    #[test]
    fn every_part_of_the_payload_is_checked_as_a_value_would_be() {
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        for payload in [
            "",
            "nope",
            r#"{"data":1"#,
            r#"{"data":1} x"#,
            r#"{"x":1e400,"data":1}"#,
            r#"{"x":"\ud800","data":1}"#,
            r#"{"data":[1,]}"#,
            deep.as_str(),
        ] {
            let expected = serde_json::from_str::<Value>(payload).unwrap_err();
            for error in [
                Event::<Value>::from_envelope(payload).unwrap_err(),
                Event::<Ignored>::from_envelope(payload).unwrap_err(),
            ] {
                assert_eq!(error, format!("payload is not valid JSON: {expected}"));
            }
        }
        let data_only = r#"{"data":[1e400]}"#;
        assert!(Event::<Ignored>::from_envelope(data_only).is_err());
    }

    #[test]
    fn configs_are_read_with_clear_errors() {
        assert_eq!(parse_config::<Value>("").unwrap(), json!({}));
        assert_eq!(parse_config::<Value>(" \n").unwrap(), json!({}));
        assert_eq!(
            parse_config::<Value>(r#"{"a":1}"#).unwrap(),
            json!({"a": 1})
        );
        let error = parse_config::<Value>("{").unwrap_err();
        assert!(error.starts_with("config is not valid JSON: "), "{error}");

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Config {
            team: String,
        }
        let error = parse_config::<Config>(r#"{"tema":"x"}"#).unwrap_err();
        assert!(
            error.starts_with("config is invalid: unknown field `tema`"),
            "{error}"
        );
        assert_eq!(
            call(
                |_: Event, c: Config| Ok(Outcome::text(c.team)),
                ENVELOPE,
                "{}"
            )
            .unwrap_err(),
            "config is invalid: missing field `team` at line 1 column 2"
        );
    }

    #[test]
    fn outcomes() {
        let out = Outcome::json(&json!({"b": 1, "a": [true]}))
            .unwrap()
            .header("X-A", "1")
            .content_type("application/vnd.x+json");
        assert_eq!(
            out,
            Outcome::Deliver {
                body: r#"{"b":1,"a":[true]}"#.into(),
                headers: vec![("X-A".into(), "1".into())],
                content_type: Some("application/vnd.x+json".into()),
            }
        );
        assert_eq!(
            Outcome::drop("no").header("X-A", "1"),
            Outcome::Drop("no".into())
        );
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1], 2);
        assert!(
            Outcome::json(&bad)
                .unwrap_err()
                .starts_with("cannot write the body")
        );
        assert_eq!(
            summary("p", "evt_1", &Ok(Outcome::text("abc"))),
            "p: event evt_1: deliver 3 bytes"
        );
    }

    #[test]
    fn call_reads_the_config_before_the_event() {
        let error = call(|_: Event, _: Value| Ok(Outcome::text("")), "nope", "{").unwrap_err();
        assert!(error.starts_with("config"), "{error}");
        let out = call(
            |e: Event, c: Value| Ok(Outcome::text(format!("{}{}", e.data, c["k"]))),
            ENVELOPE,
            r#"{"k":"v"}"#,
        );
        assert_eq!(
            out.unwrap(),
            Outcome::text(r#"{"booking":{"id":"bk_1","total":12.5}}"v""#)
        );
    }
}
