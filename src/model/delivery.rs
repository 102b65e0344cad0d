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
