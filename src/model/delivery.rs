//! Deliveries (docs/product.md, "Deliveries"): one per event and endpoint,
//! with its attempts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{AttemptId, DeliveryId, EndpointId};

/// How much of a receiver's answer is kept per attempt.
pub const MAX_RESPONSE_BODY: usize = 4096;
/// Attempts kept per delivery (the oldest are dropped past this).
pub const MAX_ATTEMPTS_KEPT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not attempted yet.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// The last attempt failed; `next_retry` says whether another is scheduled.
    Failed,
    /// A plugin dropped the event.
    Filtered,
    /// A plugin failed; the receiver was not called.
    PluginFailed,
    /// Not sent: the endpoint was paused or disabled when it came due.
    Skipped,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Filtered => "filtered",
            DeliveryStatus::PluginFailed => "plugin_failed",
            DeliveryStatus::Skipped => "skipped",
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub id: AttemptId,
    pub at: DateTime<Utc>,
    pub success: bool,
    pub response_code: Option<u16>,
    pub response_time_ms: u64,
    /// The first 4 KiB of the receiver's answer.
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// Whether a person asked for it (retry button) rather than the schedule.
    #[serde(default)]
    pub manual: bool,
}

/// A delivery log entry: one event to one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub response_code: Option<u16>,
    pub response_time_ms: Option<u64>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Failed attempts so far.
    pub retry_count: u32,
    pub next_retry: Option<DateTime<Utc>>,
    /// Sent by "Send test" rather than by a publish.
    #[serde(default)]
    pub test: bool,
    /// In its endpoint's FIFO line (`store/lines.rs`), from fan-out until it
    /// ends. Only the line's head is queued; the others wait with no
    /// `next_retry`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fifo: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: Vec<Attempt>,
}

impl Delivery {
    pub fn new(
        endpoint_id: EndpointId,
        event_id: &str,
        event_type: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: DeliveryId::generate(),
            endpoint_id,
            event_id: event_id.into(),
            event_type: event_type.into(),
            status: DeliveryStatus::Pending,
            response_code: None,
            response_time_ms: None,
            delivered_at: None,
            error: None,
            retry_count: 0,
            next_retry: None,
            test: false,
            fifo: false,
            created_at: at,
            updated_at: at,
            attempts: Vec::new(),
        }
    }

    /// Attempts made by the schedule (not by a person), which decide the
    /// next delay.
    pub fn scheduled_attempts(&self) -> usize {
        self.attempts.iter().filter(|a| !a.manual).count()
    }

    /// Records an attempt's outcome on the entry.
    pub fn record(&mut self, attempt: Attempt) {
        self.response_code = attempt.response_code;
        self.response_time_ms = Some(attempt.response_time_ms);
        self.error = attempt.error.clone();
        self.updated_at = attempt.at;
        if attempt.success {
            self.status = DeliveryStatus::Delivered;
            self.delivered_at = Some(attempt.at);
            self.next_retry = None;
        } else {
            self.status = DeliveryStatus::Failed;
            self.retry_count += 1;
        }
        self.attempts.push(attempt);
        if self.attempts.len() > MAX_ATTEMPTS_KEPT {
            self.attempts.remove(0);
        }
    }
}

/// Cuts a response body to [`MAX_RESPONSE_BODY`] bytes on a char boundary.
pub fn truncate_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_RESPONSE_BODY)]);
    text.trim_end_matches('\u{FFFD}').to_string()
}

/// What an endpoint's deliveries came to in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourStats {
    /// The hour's start.
    pub start: DateTime<Utc>,
    /// Attempts answered 2xx in the hour.
    pub delivered: u32,
    /// Attempts that failed in the hour.
    pub failed: u32,
    /// The median time to a 2xx answer, when there was one.
    pub latency_p50_ms: Option<u64>,
}

/// The attempts of `deliveries` made from `since` to `now`, hour by hour
/// (the hour of `since` first), oldest first.
pub fn hourly<'a>(
    deliveries: impl IntoIterator<Item = &'a Delivery>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<HourStats> {
    use chrono::{DurationRound, TimeDelta};
    let hour = TimeDelta::hours(1);
    let first = since.duration_trunc(hour).unwrap_or(since);
    let count = ((now - first).num_hours() + 1).max(1) as usize;
    let mut hours: Vec<(HourStats, Vec<u64>)> = (0..count)
        .map(|i| {
            let stats = HourStats {
                start: first + hour * i as i32,
                delivered: 0,
                failed: 0,
                latency_p50_ms: None,
            };
            (stats, Vec::new())
        })
        .collect();
    for attempt in deliveries.into_iter().flat_map(|d| &d.attempts) {
        if attempt.at < since || attempt.at > now {
            continue;
        }
        let i = ((attempt.at - first).num_hours() as usize).min(count - 1);
        let (stats, latencies) = &mut hours[i];
        if attempt.success {
            stats.delivered += 1;
            latencies.push(attempt.response_time_ms);
        } else {
            stats.failed += 1;
        }
    }
    hours
        .into_iter()
        .map(|(mut stats, mut latencies)| {
            latencies.sort_unstable();
            stats.latency_p50_ms = latencies
                .get(latencies.len().saturating_sub(1) / 2)
                .copied();
            stats
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_in_their_hour() {
        let now: DateTime<Utc> = "2026-12-06T12:30:00Z".parse().unwrap();
        let since = now - chrono::Duration::hours(24);
        let mut d = Delivery::new(EndpointId::generate(), "evt_1", "a.b", since);
        let attempt = |at: &str, success: bool, ms: u64| Attempt {
            id: AttemptId::generate(),
            at: at.parse().unwrap(),
            success,
            response_code: Some(if success { 200 } else { 500 }),
            response_time_ms: ms,
            response_body: None,
            error: None,
            manual: false,
        };
        d.attempts = vec![
            attempt("2026-12-05T10:00:00Z", true, 1), // before the window
            attempt("2026-12-06T11:05:00Z", false, 9),
            attempt("2026-12-06T11:10:00Z", true, 30),
            attempt("2026-12-06T11:50:00Z", true, 10),
            attempt("2026-12-06T11:55:00Z", true, 20),
            attempt("2026-12-06T12:29:00Z", true, 5),
        ];
        let hours = hourly([&d], since, now);
        assert_eq!(hours.len(), 25);
        assert_eq!(
            hours[0].start,
            "2026-12-05T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let eleven = &hours[23];
        assert_eq!((eleven.delivered, eleven.failed), (3, 1));
        assert_eq!(eleven.latency_p50_ms, Some(20));
        assert_eq!(hours[24].delivered, 1);
        assert_eq!(hours[10].latency_p50_ms, None);
        let total: u32 = hours.iter().map(|h| h.delivered + h.failed).sum();
        assert_eq!(total, 5);
    }
}
