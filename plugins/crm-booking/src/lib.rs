//! `crm-booking`: reshapes `booking.*` events into a CRM contact + deal.
//!
//! The logic is the pure function [`transform`], usable natively (tests,
//! benchmarks); the `component` module (wasm32 only) wires it to the
//! `hookgate:plugin/transformer` world.
//!
//! Speed matters: the gateway runs the plugin in a fresh sandbox for every
//! delivery, and reading the envelope is most of the work. So the envelope is
//! not parsed into a `serde_json::Value` tree: one pass keeps only the members
//! the output needs, borrowing their strings from the input, and checks and
//! skips the rest (a long `travelers` list costs no allocation). The output
//! is written from plain structs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Number;

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
/// Strings borrow from the config text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config<'a> {
    stage_map: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    pipeline: Option<Cow<'a, str>>,
}

impl Default for Config<'_> {
    fn default() -> Self {
        let stage_map = [("confirmed", "won"), ("cancelled", "lost")]
            .into_iter()
            .map(|(status, stage)| (Cow::Borrowed(status), Cow::Borrowed(stage)))
            .collect();
        Config {
            stage_map,
            pipeline: None,
        }
    }
}

/// The stage of a booking whose status is in no map entry.
const DEFAULT_STAGE: &str = "open";

fn parse_config(config: &str) -> Result<Config<'_>, String> {
    let mut parsed = Config::default();
    let config = config.trim();
    if config.is_empty() {
        return Ok(parsed);
    }
    let value: Json =
        serde_json::from_str(config).map_err(|e| format!("config is not valid JSON: {e}"))?;
    let Json::Object(members) = value else {
        return Err("config must be a JSON object".to_owned());
    };
    for (key, value) in members {
        match &*key {
            "stage_map" => {
                let Json::Object(entries) = value else {
                    return Err(
                        "config key `stage_map` must be an object mapping statuses to stages"
                            .to_owned(),
                    );
                };
                for (status, stage) in entries {
                    let Json::String(stage) = stage else {
                        return Err(format!(
                            "config key `stage_map` entry `{status}` must be a string"
                        ));
                    };
                    parsed.stage_map.insert(status, stage);
                }
            }
            "pipeline" => {
                parsed.pipeline = match value {
                    Json::String(pipeline) => Some(pipeline),
                    Json::Null => None,
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

// ---------------------------------------------------------------------------
// Input: the parts of the envelope the output needs.
// ---------------------------------------------------------------------------

/// The envelope members read (`{"id","type","created_at","data"}`).
#[derive(Default)]
struct Envelope<'a> {
    id: Json<'a>,
    kind: Json<'a>,
    created_at: Json<'a>,
    data: Object<Data<'a>>,
}

/// `data`: only `booking` is read. `None`: there is no `booking` member.
#[derive(Default)]
struct Data<'a> {
    booking: Option<Object<Booking<'a>>>,
}

#[derive(Default)]
struct Booking<'a> {
    id: Json<'a>,
    status: Json<'a>,
    total: Json<'a>,
    currency: Json<'a>,
    customer: Object<Customer<'a>>,
    trip: Object<Trip<'a>>,
}

#[derive(Default)]
struct Customer<'a> {
    email: Json<'a>,
    name: Json<'a>,
    phone: Json<'a>,
}

#[derive(Default)]
struct Trip<'a> {
    name: Json<'a>,
    start_date: Json<'a>,
}

impl<'de> Members<'de> for Envelope<'de> {
    const KEYS: &'static [&'static str] = &["id", "type", "created_at", "data"];

    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "id" => self.id = map.next_value()?,
            "type" => self.kind = map.next_value()?,
            "created_at" => self.created_at = map.next_value()?,
            "data" => self.data = map.next_value()?,
            _ => skip_value(map)?,
        }
        Ok(())
    }
}

impl<'de> Members<'de> for Data<'de> {
    const KEYS: &'static [&'static str] = &["booking"];

    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "booking" => self.booking = Some(map.next_value()?),
            _ => skip_value(map)?,
        }
        Ok(())
    }
}

impl<'de> Members<'de> for Booking<'de> {
    const KEYS: &'static [&'static str] =
        &["id", "status", "total", "currency", "customer", "trip"];

    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "id" => self.id = map.next_value()?,
            "status" => self.status = map.next_value()?,
            "total" => self.total = map.next_value()?,
            "currency" => self.currency = map.next_value()?,
            "customer" => self.customer = map.next_value()?,
            "trip" => self.trip = map.next_value()?,
            _ => skip_value(map)?,
        }
        Ok(())
    }
}

impl<'de> Members<'de> for Customer<'de> {
    const KEYS: &'static [&'static str] = &["email", "name", "phone"];

    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "email" => self.email = map.next_value()?,
            "name" => self.name = map.next_value()?,
            "phone" => self.phone = map.next_value()?,
            _ => skip_value(map)?,
        }
        Ok(())
    }
}

impl<'de> Members<'de> for Trip<'de> {
    const KEYS: &'static [&'static str] = &["name", "start_date"];

    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "name" => self.name = map.next_value()?,
            "start_date" => self.start_date = map.next_value()?,
            _ => skip_value(map)?,
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Output: members in this order.
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct Output<'a> {
    contact: Contact<'a>,
    deal: Deal<'a>,
    source: Source<'a>,
}

#[derive(Serialize)]
struct Contact<'a> {
    email: Json<'a>,
    name: Json<'a>,
    phone: Json<'a>,
}

#[derive(Serialize)]
struct Deal<'a> {
    external_id: Json<'a>,
    title: String,
    amount: Json<'a>,
    currency: Json<'a>,
    stage: &'a str,
    #[serde(skip_serializing_if = "Json::is_null")]
    close_date: Json<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<&'a str>,
}

#[derive(Serialize)]
struct Source<'a> {
    event_id: Json<'a>,
    event_type: Cow<'a, str>,
    occurred_at: Json<'a>,
}

/// Reshapes one `booking.*` envelope into a CRM contact + deal.
///
/// `envelope` is the JSON body about to be sent (`{"id","type","created_at",
/// "data"}`); `config` is the endpoint's JSON configuration (`""` or `"{}"`:
/// the defaults). Events whose type does not start with `booking.` are
/// dropped; a booking event without a `data.booking` object is an error.
pub fn transform(envelope: &str, config: &str) -> Result<Verdict, String> {
    let config = parse_config(config)?;
    // The whole payload is still checked (syntax, nesting, number range), as
    // strictly as a `serde_json::Value` parse would.
    let Object(envelope) = serde_json::from_str::<Object<Envelope>>(envelope)
        .map_err(|e| format!("payload is not valid JSON: {e}"))?;
    let Some(envelope) = envelope else {
        return Err("payload must be a JSON object".to_owned());
    };
    let Json::String(event_type) = envelope.kind else {
        return Err("payload has no string `type`".to_owned());
    };
    if !event_type.starts_with("booking.") {
        return Ok(Verdict::Drop(format!("not a booking event: {event_type}")));
    }
    let booking = match envelope.data {
        Object(Some(Data {
            booking: Some(Object(Some(booking))),
        })) => booking,
        Object(Some(Data {
            booking: Some(Object(None)),
        })) => {
            let event_name = envelope.id.text();
            let event_name = event_name.as_deref().unwrap_or("without id");
            return Err(format!(
                "event {event_name} ({event_type}): `data.booking` must be an object"
            ));
        }
        _ => {
            let event_name = envelope.id.text();
            let event_name = event_name.as_deref().unwrap_or("without id");
            return Err(format!(
                "event {event_name} ({event_type}) has no `data.booking` object"
            ));
        }
    };
    let customer = booking.customer.0.unwrap_or_default();
    let trip = booking.trip.0.unwrap_or_default();

    let title = [trip.name.text(), Some("booking".into()), booking.id.text()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let stage = match &booking.status {
        Json::String(status) => config.stage_map.get(&**status).map(|stage| &**stage),
        _ => None,
    }
    .unwrap_or(DEFAULT_STAGE);

    let output = Output {
        contact: Contact {
            email: customer.email,
            name: customer.name,
            phone: customer.phone,
        },
        deal: Deal {
            external_id: booking.id,
            title,
            amount: booking.total,
            currency: booking.currency,
            stage,
            close_date: trip.start_date,
            pipeline: config.pipeline.as_deref(),
        },
        source: Source {
            event_id: envelope.id,
            event_type,
            occurred_at: envelope.created_at,
        },
    };
    let body = serde_json::to_string(&output).map_err(|e| format!("cannot write the deal: {e}"))?;

    Ok(Verdict::Deliver {
        body,
        headers: vec![(OBJECT_HEADER.0.to_owned(), OBJECT_HEADER.1.to_owned())],
        content_type: None,
    })
}

// ---------------------------------------------------------------------------
// JSON plumbing. Everything here goes through `deserialize_any`, like a
// `serde_json::Value` parse, so the same inputs are accepted or rejected with
// the same errors; only what is kept differs.
// ---------------------------------------------------------------------------

/// A JSON value copied to the output. Strings borrow from the input unless
/// they had escapes. Object members keep document order, and a repeated key
/// keeps its first place and its last value: it is written back exactly as a
/// `serde_json::Value` with `preserve_order` would be (numbers included,
/// e.g. `1250.5`).
#[derive(Debug, Default, Clone, PartialEq)]
enum Json<'a> {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// A string or a number as text; `None` for anything else.
    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Json::String(s) => Some(Cow::Borrowed(s)),
            Json::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => serializer.collect_seq(items),
            Json::Object(members) => serializer.collect_map(members.iter().map(|(k, v)| (k, v))),
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some((Key(key), value)) = map.next_entry()? {
            members.push((key, value));
        }
        merge_repeated_keys(&mut members);
        Ok(Json::Object(members))
    }
}

/// Gives a repeated key its first place and its last value (what inserting
/// into an `IndexMap` does), in O(n log n) even for a hostile object.
fn merge_repeated_keys(members: &mut Vec<(Cow<str>, Json)>) {
    if members.len() < 2 {
        return;
    }
    // Sorted by key; the sort is stable, so equal keys stay in input order.
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| members[a].0.cmp(&members[b].0));
    let mut keep = vec![true; members.len()];
    let mut repeated = false;
    let mut i = 0;
    while i < order.len() {
        let first = order[i];
        let mut j = i + 1;
        while j < order.len() && members[order[j]].0 == members[first].0 {
            keep[order[j]] = false;
            j += 1;
        }
        if j > i + 1 {
            repeated = true;
            members[first].1 = std::mem::take(&mut members[order[j - 1]].1);
        }
        i = j;
    }
    if repeated {
        let mut keep = keep.into_iter();
        members.retain(|_| keep.next().unwrap_or(true));
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The members of an object that a struct reads: `read` is called, in input
/// order, for each member named in `KEYS` (a repeated one overwrites); the
/// others are skipped.
trait Members<'de>: Default {
    const KEYS: &'static [&'static str];

    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// `T` read from a JSON object, or `None` when the value is something else
/// (which is skipped, whatever it is: callers decide whether that is an
/// error).
struct Object<T>(Option<T>);

impl<T> Default for Object<T> {
    fn default() -> Self {
        Object(None)
    }
}

impl<'de, T: Members<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Members<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<T>, A::Error> {
        let mut value = T::default();
        while let Some(key) = map.next_key_seed(KnownKey(T::KEYS))? {
            match key {
                Some(key) => value.read(key, &mut map)?,
                None => skip_value(&mut map)?,
            }
        }
        Ok(Object(Some(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Object<T>, A::Error> {
        SkipVisitor.visit_seq(seq).map(|Skip| Object(None))
    }

    fn visit_unit<E>(self) -> Result<Object<T>, E> {
        Ok(Object(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Object<T>, E> {
        Ok(Object(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Object<T>, E> {
        Ok(Object(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Object<T>, E> {
        Ok(Object(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Object<T>, E> {
        Ok(Object(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<Object<T>, E> {
        Ok(Object(None))
    }
}

/// A key as one of `KEYS` (`None`: another key), without allocating.
struct KnownKey(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KnownKey {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KnownKey {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|&key| key == v))
    }
}

fn skip_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<Skip>().map(|Skip| ())
}

/// Any JSON value, checked but not kept. (`serde::de::IgnoredAny` would be a
/// little faster but laxer than a `Value` parse: no nesting limit, no number
/// range check, lone surrogates accepted; this keeps the old errors.)
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while let Some(Skip) = seq.next_element()? {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while let Some((Skip, Skip)) = map.next_entry()? {}
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
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

    // The envelope is read without building a `serde_json::Value`; these pin
    // down that the output is still exactly what a `Value` round trip gives.

    #[test]
    fn copied_strings_are_rewritten_with_standard_escapes() {
        let event = r#"{"id":"evt_\"5\"","type":"booking.created","data":{"booking":{"id":"bk_\u0031","customer":{"name":"Ana \"Nana\" Souza\u00e9","email":"a\/b@example.com","phone":"tab\there"},"trip":{"name":"Caf\u00e9 \ud83d\ude00 tour","start_date":"2027-05-14"}}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":"a/b@example.com","name":"Ana \"Nana\" Souzaé","phone":"tab\there"},"deal":{"external_id":"bk_1","title":"Café 😀 tour booking bk_1","amount":null,"currency":null,"stage":"open","close_date":"2027-05-14"},"source":{"event_id":"evt_\"5\"","event_type":"booking.created","occurred_at":null}}"#
        );
    }

    #[test]
    fn numbers_and_other_values_are_copied_as_json_numbers() {
        let event = r#"{"id":12,"type":"booking.created","created_at":1.50,"data":{"booking":{"id":4.0e1,"total":-0,"currency":12345678901234567890123,"status":"confirmed","trip":{"name":7,"start_date":false}}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":null,"name":null,"phone":null},"deal":{"external_id":40.0,"title":"7 booking 40.0","amount":-0.0,"currency":1.2345678901234568e+22,"stage":"won","close_date":false},"source":{"event_id":12,"event_type":"booking.created","occurred_at":1.5}}"#
        );
    }

    #[test]
    fn copied_objects_keep_member_order_and_the_last_repeated_value() {
        let event = r#"{"type":"booking.created","data":{"booking":{"customer":{"email":{"b":1,"a":[true,{"y":null,"x":2}],"b":3}},"trip":{"start_date":[]}}}}"#;
        let (body, _, _) = deliver(transform(event, "").unwrap());
        assert_eq!(
            body,
            r#"{"contact":{"email":{"b":3,"a":[true,{"y":null,"x":2}]},"name":null,"phone":null},"deal":{"external_id":null,"title":"booking","amount":null,"currency":null,"stage":"open","close_date":[]},"source":{"event_id":null,"event_type":"booking.created","occurred_at":null}}"#
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
            r#"{"contact":{"email":null,"name":null,"phone":null},"deal":{"external_id":2,"title":"booking 2","amount":null,"currency":null,"stage":"open"},"source":{"event_id":null,"event_type":"booking.created","occurred_at":null}}"#
        );
    }

    #[test]
    fn booking_errors_name_the_event() {
        for (event, error) in [
            (
                r#"{"id":12,"type":"booking.created","data":{}}"#,
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
                r#"{"id":1.5,"type":"booking.created","data":{"booking":[]}}"#,
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
