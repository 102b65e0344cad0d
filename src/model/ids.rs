//! Prefixed, time-sortable identifiers (`wh_`, `evt_`, `ten_`, ...;
//! docs/product.md, "Identifiers").
//!
//! Every resource id is a type prefix followed by a ULID in Crockford base32,
//! so ids sort by creation time both as strings and as sled keys. Each id kind
//! is its own type, so a tenant id can never be passed where an endpoint id is
//! expected, and parsing at the API boundary names the prefix it wanted.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::{Generator, Ulid};

/// The length of the ULID part of every id.
const ULID_LEN: usize = 26;

/// One process-wide generator, so ids made within the same millisecond still
/// sort in creation order (ULID monotonic mode).
static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

fn next_ulid() -> Ulid {
    let mut guard = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let generator = guard.get_or_insert_with(Generator::new);
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh one.
    generator.generate().unwrap_or_else(|_| Ulid::new())
}

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{value}' is not a valid {kind} id: expected '{prefix}' followed by a {ULID_LEN}-character ULID"
)]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        prefixed_id!($(#[$doc])* $name, $prefix, $kind, formerly $prefix);
    };
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal, formerly $former:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id, later than every id made before it in this process.
            pub fn generate() -> Self {
                Self(next_ulid())
            }

            pub fn ulid(&self) -> Ulid {
                self.0
            }

            pub fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            /// The creation time embedded in the id, in milliseconds since the epoch.
            pub fn timestamp_ms(&self) -> u64 {
                self.0.timestamp_ms()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                let err = || IdError { kind: $kind, prefix: $prefix, value: s.to_string() };
                let rest = s
                    .strip_prefix($prefix)
                    .or_else(|| s.strip_prefix($former))
                    .ok_or_else(err)?;
                if rest.len() != ULID_LEN {
                    return Err(err());
                }
                Ulid::from_string(rest).map(Self).map_err(|_| err())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A tenant: the unit of isolation.
    TenantId, "ten_", "tenant"
);
prefixed_id!(
    /// A tenant API key.
    KeyId, "key_", "API key"
);
prefixed_id!(
    /// A webhook endpoint.
    EndpointId, "wh_", "webhook"
);
prefixed_id!(
    /// A published event.
    EventId, "evt_", "event"
);
prefixed_id!(
    /// One delivery of one event to one endpoint, stable across retries.
    /// Written `msg_` before schema version 3; those ids still parse.
    DeliveryId, "dlv_", "delivery", formerly "msg_"
);
prefixed_id!(
    /// One HTTP attempt of a delivery. Written `log_` before schema
    /// version 3; those ids still parse.
    AttemptId, "att_", "attempt", formerly "log_"
);
prefixed_id!(
    /// A stored plugin version.
    PluginId, "plg_", "plugin"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_string_and_json() {
        let id = EndpointId::generate();
        let s = id.to_string();
        assert!(s.starts_with("wh_") && s.len() == 3 + ULID_LEN);
        assert_eq!(s.parse::<EndpointId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<EndpointId>(&json).unwrap(), id);
    }

    #[test]
    fn ids_sort_by_creation_even_within_one_millisecond() {
        let ids: Vec<String> = (0..1000)
            .map(|_| TenantId::generate().to_string())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn refuses_wrong_prefix_and_bad_ulid() {
        let ulid = Ulid::new().to_string();
        let err = format!("ten_{ulid}").parse::<EndpointId>().unwrap_err();
        assert_eq!(err.prefix, "wh_");
        assert!(err.to_string().contains("webhook id"));
        assert!("wh_short".parse::<EndpointId>().is_err());
        assert!(
            "wh_UUUUUUUUUUUUUUUUUUUUUUUUUU"
                .parse::<EndpointId>()
                .is_err()
        );
        assert!(format!("wh_{ulid}x").parse::<EndpointId>().is_err());
    }

    /// Deliveries and attempts were `msg_` and `log_` before they took
    /// their own names: ids stored or linked to then still parse, as the
    /// same ids, and are written with the new prefix.
    #[test]
    fn former_prefixes_still_parse() {
        let ulid = Ulid::new();
        let delivery: DeliveryId = format!("msg_{ulid}").parse().unwrap();
        assert_eq!(delivery, DeliveryId::from_ulid(ulid));
        assert_eq!(delivery.to_string(), format!("dlv_{ulid}"));
        let json = format!("\"log_{ulid}\"");
        let attempt: AttemptId = serde_json::from_str(&json).unwrap();
        assert_eq!(attempt.to_string(), format!("att_{ulid}"));
        let err = format!("log_{ulid}").parse::<DeliveryId>().unwrap_err();
        assert_eq!(
            err.prefix, "dlv_",
            "a former prefix of another kind is refused"
        );
    }
}
