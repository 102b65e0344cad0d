//! How each record is laid out as a value in its tree.
//!
//! Most records are serde JSON: they are written seldom, and JSON keeps
//! them readable and lets fields be added with a default. The records
//! written several times per delivery (the delivery row, its queue entry,
//! an event's list of deliveries) are compact binary instead, postcard over
//! a layout kept here: ids as their 128-bit ULID, times as seconds and
//! nanoseconds, no field names. A delivered row is about a third of its JSON
//! size, and every insert copies its neighbours in a sled leaf, so the
//! smaller value makes each write, page-cache miss and decode cheaper
//! (BENCHMARKS.md, "Less written per delivery").
//!
//! A compact value starts with a tag byte naming its layout ([`BINARY`]).
//! Layouts are positional: a field cannot be added in between, only in a
//! new layout with its own tag. Data dirs of layout version 5 and before
//! held these rows as JSON too; `migrations.rs` rewrites them.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::rows::QueueEntry;
use super::{Result, StoreError};
use crate::model::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::model::endpoint::Endpoint;
use crate::model::event::Event;
use crate::model::event_type::EventType;
use crate::model::ids::{AttemptId, DeliveryId, EndpointId, TenantId};
use crate::model::plugin::Plugin;
use crate::model::tenant::Tenant;

/// The first byte of a compact value, layout 1.
const BINARY: u8 = 0x01;

/// A value stored in a tree. JSON unless the type lays itself out.
pub(super) trait Record: Sized {
    fn to_value(&self) -> Vec<u8>;
    fn from_value(bytes: &[u8]) -> Result<Self>;
}

/// Records kept as serde JSON.
macro_rules! json_records {
    ($($ty:ty),* $(,)?) => {
        $(impl $crate::store::record::Record for $ty {
            fn to_value(&self) -> Vec<u8> {
                serde_json::to_vec(self).expect("store records always serialise")
            }
            fn from_value(bytes: &[u8]) -> $crate::store::Result<Self> {
                Ok(serde_json::from_slice(bytes)?)
            }
        })*
    };
}
pub(super) use json_records;

json_records!(
    Tenant,
    crate::model::tenant::ApiKey,
    EventType,
    Endpoint,
    Event,
    Plugin,
    u32,
    // A version 1 record, taken apart by its migration.
    serde_json::Value,
    // A fan-out's marker: its tenant and deliveries, kept until written.
    (TenantId, Cow<'_, [Delivery]>),
);

/// The layout behind the tag of a compact value.
fn untagged(bytes: &[u8]) -> Result<&[u8]> {
    match bytes.split_first() {
        Some((&BINARY, rest)) => Ok(rest),
        Some((tag, _)) => Err(StoreError::Corrupt(format!(
            "a compact record has the unknown layout tag {tag}"
        ))),
        None => Err(StoreError::Corrupt("a compact record is empty".into())),
    }
}

/// Whether `value` is already compact (a migration's test).
pub(super) fn is_compact(value: &[u8]) -> bool {
    value.first() == Some(&BINARY)
}

fn compact<T: Serialize>(layout: &T) -> Vec<u8> {
    let mut out = vec![BINARY];
    postcard::to_io(layout, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// An id's ULID, as its 16 bytes (a `u128` would be a 19-byte varint).
type Id = [u8; 16];

fn id(ulid: Ulid) -> Id {
    ulid.to_bytes()
}

fn ulid(bytes: Id) -> Ulid {
    Ulid::from_bytes(bytes)
}

/// A time as whole seconds and nanoseconds, exact for every `DateTime`.
#[derive(Serialize, Deserialize)]
struct Time(i64, u32);

impl From<DateTime<Utc>> for Time {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t.timestamp(), t.timestamp_subsec_nanos())
    }
}

impl TryFrom<Time> for DateTime<Utc> {
    type Error = StoreError;

    fn try_from(Time(secs, nanos): Time) -> Result<Self> {
        DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| StoreError::Corrupt(format!("a stored time is out of range: {secs}")))
    }
}

fn time(t: Option<Time>) -> Result<Option<DateTime<Utc>>> {
    t.map(DateTime::try_from).transpose()
}

/// [`DeliveryStatus`] by number: appended to, never renumbered.
fn status_code(status: DeliveryStatus) -> u8 {
    match status {
        DeliveryStatus::Pending => 0,
        DeliveryStatus::Delivered => 1,
        DeliveryStatus::Failed => 2,
        DeliveryStatus::Filtered => 3,
        DeliveryStatus::PluginFailed => 4,
        DeliveryStatus::Skipped => 5,
    }
}

fn status_of(code: u8) -> Result<DeliveryStatus> {
    Ok(match code {
        0 => DeliveryStatus::Pending,
        1 => DeliveryStatus::Delivered,
        2 => DeliveryStatus::Failed,
        3 => DeliveryStatus::Filtered,
        4 => DeliveryStatus::PluginFailed,
        5 => DeliveryStatus::Skipped,
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown delivery status {other}"
            )));
        }
    })
}

/// Layout 1 of a delivery row.
#[derive(Serialize, Deserialize)]
struct DeliveryLayout<'a> {
    id: Id,
    endpoint: Id,
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    status: u8,
    response_code: Option<u16>,
    response_time_ms: Option<u64>,
    delivered_at: Option<Time>,
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
    retry_count: u32,
    next_retry: Option<Time>,
    test: bool,
    fifo: bool,
    created_at: Time,
    updated_at: Time,
    #[serde(borrow)]
    attempts: Vec<AttemptLayout<'a>>,
}

/// Layout 1 of an attempt, within its delivery row.
#[derive(Serialize, Deserialize)]
struct AttemptLayout<'a> {
    id: Id,
    at: Time,
    success: bool,
    response_code: Option<u16>,
    response_time_ms: u64,
    #[serde(borrow)]
    response_body: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
    manual: bool,
}

fn borrowed(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

impl Record for Delivery {
    fn to_value(&self) -> Vec<u8> {
        compact(&DeliveryLayout {
            id: id(self.id.ulid()),
            endpoint: id(self.endpoint_id.ulid()),
            event_id: Cow::Borrowed(&self.event_id),
            event_type: Cow::Borrowed(&self.event_type),
            status: status_code(self.status),
            response_code: self.response_code,
            response_time_ms: self.response_time_ms,
            delivered_at: self.delivered_at.map(Time::from),
            error: borrowed(&self.error),
            retry_count: self.retry_count,
            next_retry: self.next_retry.map(Time::from),
            test: self.test,
            fifo: self.fifo,
            created_at: self.created_at.into(),
            updated_at: self.updated_at.into(),
            attempts: self
                .attempts
                .iter()
                .map(|a| AttemptLayout {
                    id: id(a.id.ulid()),
                    at: a.at.into(),
                    success: a.success,
                    response_code: a.response_code,
                    response_time_ms: a.response_time_ms,
                    response_body: borrowed(&a.response_body),
                    error: borrowed(&a.error),
                    manual: a.manual,
                })
                .collect(),
        })
    }

    fn from_value(bytes: &[u8]) -> Result<Self> {
        let d: DeliveryLayout<'_> = postcard::from_bytes(untagged(bytes)?)?;
        Ok(Delivery {
            id: DeliveryId::from_ulid(ulid(d.id)),
            endpoint_id: EndpointId::from_ulid(ulid(d.endpoint)),
            event_id: d.event_id.into_owned(),
            event_type: d.event_type.into_owned(),
            status: status_of(d.status)?,
            response_code: d.response_code,
            response_time_ms: d.response_time_ms,
            delivered_at: time(d.delivered_at)?,
            error: owned(d.error),
            retry_count: d.retry_count,
            next_retry: time(d.next_retry)?,
            test: d.test,
            fifo: d.fifo,
            created_at: d.created_at.try_into()?,
            updated_at: d.updated_at.try_into()?,
            attempts: d
                .attempts
                .into_iter()
                .map(|a| {
                    Ok(Attempt {
                        id: AttemptId::from_ulid(ulid(a.id)),
                        at: a.at.try_into()?,
                        success: a.success,
                        response_code: a.response_code,
                        response_time_ms: a.response_time_ms,
                        response_body: owned(a.response_body),
                        error: owned(a.error),
                        manual: a.manual,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// Layout 1 of a queue entry.
#[derive(Serialize, Deserialize)]
struct EntryLayout {
    tenant: Id,
    endpoint: Id,
    delivery: Id,
    fifo: bool,
}

impl Record for QueueEntry {
    fn to_value(&self) -> Vec<u8> {
        compact(&EntryLayout {
            tenant: id(self.tenant.ulid()),
            endpoint: id(self.endpoint.ulid()),
            delivery: id(self.delivery.ulid()),
            fifo: self.fifo,
        })
    }

    fn from_value(bytes: &[u8]) -> Result<Self> {
        let e: EntryLayout = postcard::from_bytes(untagged(bytes)?)?;
        Ok(QueueEntry {
            tenant: TenantId::from_ulid(ulid(e.tenant)),
            endpoint: EndpointId::from_ulid(ulid(e.endpoint)),
            delivery: DeliveryId::from_ulid(ulid(e.delivery)),
            fifo: e.fifo,
        })
    }
}

/// An event's deliveries, `(endpoint, delivery)` in fan-out order.
impl Record for Vec<(EndpointId, DeliveryId)> {
    fn to_value(&self) -> Vec<u8> {
        let pairs: Vec<(Id, Id)> = self
            .iter()
            .map(|(e, d)| (id(e.ulid()), id(d.ulid())))
            .collect();
        compact(&pairs)
    }

    fn from_value(bytes: &[u8]) -> Result<Self> {
        let pairs: Vec<(Id, Id)> = postcard::from_bytes(untagged(bytes)?)?;
        Ok(pairs
            .into_iter()
            .map(|(e, d)| {
                (
                    EndpointId::from_ulid(ulid(e)),
                    DeliveryId::from_ulid(ulid(d)),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::delivery::Attempt;

    fn delivered() -> Delivery {
        let at = Utc::now();
        let mut d = Delivery::new(EndpointId::generate(), "ord_1", "order.paid", at);
        d.fifo = true;
        d.record(Attempt {
            id: AttemptId::generate(),
            at,
            success: false,
            response_code: Some(503),
            response_time_ms: 12,
            response_body: Some("busy ✓".into()),
            error: Some("receiver answered 503".into()),
            manual: false,
        });
        d.next_retry = Some(at + chrono::Duration::seconds(5));
        d
    }

    fn json(d: &Delivery) -> serde_json::Value {
        serde_json::to_value(d).unwrap()
    }

    #[test]
    fn a_delivery_row_reads_back_as_written() {
        let d = delivered();
        let value = d.to_value();
        assert_eq!(value[0], BINARY);
        assert_eq!(json(&Delivery::from_value(&value).unwrap()), json(&d));
        let json_size = serde_json::to_vec(&d).unwrap().len();
        assert!(
            value.len() * 2 < json_size,
            "{} vs {json_size}",
            value.len()
        );
    }

    #[test]
    fn a_json_row_is_not_taken_for_a_compact_one() {
        let old = serde_json::to_vec(&delivered()).unwrap();
        assert!(!is_compact(&old));
        assert!(matches!(
            Delivery::from_value(&old),
            Err(StoreError::Corrupt(m)) if m.contains("layout tag")
        ));
    }

    #[test]
    fn entries_and_lists_read_back_as_written() {
        let d = delivered();
        let tenant = TenantId::generate();
        let entry = QueueEntry::of(tenant, &d);
        let read = QueueEntry::from_value(&entry.to_value()).unwrap();
        assert_eq!(
            (read.tenant, read.endpoint, read.delivery, read.fifo),
            (tenant, d.endpoint_id, d.id, true)
        );
        let list = vec![(d.endpoint_id, d.id), (EndpointId::generate(), d.id)];
        assert_eq!(Vec::from_value(&list.to_value()).unwrap(), list);
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let value = delivered().to_value();
        for cut in [1, 5, value.len() / 2, value.len() - 1] {
            assert!(matches!(
                Delivery::from_value(&value[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut layout: DeliveryLayout<'_> = postcard::from_bytes(&value[1..]).unwrap();
        layout.status = 9;
        assert!(matches!(
            Delivery::from_value(&compact(&layout)),
            Err(StoreError::Corrupt(m)) if m.contains("status 9")
        ));
    }
}
