//! One attempt: load what it needs, sign, send, record the outcome, and
//! decide the next step from the retry schedule (docs/product.md, "Retries").

use bytes::Bytes;
use chrono::Utc;

use std::sync::Arc;

use super::RetrySchedule;
use super::operational::Notice;
use super::sender::{Outcome, Sender};
use crate::model::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::model::endpoint::{Endpoint, EndpointStatus, LastDelivery};
use crate::model::event::Event;
use crate::model::event_type::is_operational;
use crate::model::ids::{AttemptId, EndpointId};
use crate::model::tenant::Tenant;
use crate::plugins::{ChainOutcome, Plugins, Prepared};
use crate::signing;
use crate::store::{QueueEntry, QueueKey, Store, StoreError};

/// What an attempt needs: the records, the plugins, the HTTP client and the
/// retry schedule. The engine owns one and decides when attempts run.
pub(super) struct Attempter {
    pub store: Store,
    pub sender: Sender,
    pub plugins: Arc<Plugins>,
    pub schedule: RetrySchedule,
    /// Random spread of retry delays, as a fraction.
    pub jitter: f64,
    /// Publishes the operational events attempts give rise to, and keeps
    /// the queue's count.
    pub announcer: super::operational::Announcer,
    /// The last outcome this process wrote on each endpoint's record, so
    /// attempts running at once write one repeat between them, not one
    /// each (see [`note_on_endpoint`]).
    pub noted: std::sync::Mutex<std::collections::HashMap<EndpointId, LastDelivery>>,
}

/// Runs the endpoint's plugin chain, if it has one.
async fn prepare(
    inner: &Attempter,
    tenant: &Tenant,
    endpoint: &Endpoint,
    event: &Event,
) -> ChainOutcome {
    if endpoint.plugins.is_empty() {
        return ChainOutcome::Deliver(Prepared::of(event));
    }
    let endpoint_id = endpoint.id.to_string();
    inner
        .plugins
        .run_chain(tenant, &endpoint_id, &endpoint.plugins, event)
        .await
}

/// Signs the prepared body for `endpoint` and sends it.
async fn send_signed(
    inner: &Attempter,
    tenant: &Tenant,
    endpoint: &Endpoint,
    delivery: &Delivery,
    prepared: Prepared,
) -> Outcome {
    let now = Utc::now();
    let body = Bytes::from(prepared.body);
    let mut headers = signing::headers(
        &tenant.headers,
        &delivery.id.to_string(),
        &delivery.event_type,
        &endpoint.signing_secrets(now),
        now.timestamp(),
        &body,
    );
    // The endpoint's static headers, unless the gateway's own or a plugin's
    // (which may change them per delivery) have the name; then `auth`,
    // which nothing else may set.
    for (name, value) in &endpoint.headers {
        let taken =
            |list: &[(String, String)]| list.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !taken(&headers) && !taken(&prepared.headers) {
            headers.push((name.clone(), value.clone()));
        }
    }
    headers.extend(prepared.headers);
    if let Some(auth) = &endpoint.auth {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        headers.push(("Authorization".into(), auth.header_value()));
    }
    let content_type = prepared
        .content_type
        .as_deref()
        .unwrap_or("application/json");
    inner
        .sender
        .send(
            &endpoint.url,
            &headers,
            content_type,
            body,
            endpoint.tls_client.as_ref(),
        )
        .await
}

/// What an attempt came to before any retry is decided.
enum Made {
    /// A request was sent: the receiver's answer, or why there was none.
    Tried(Outcome),
    /// The gateway could not send it now (its plugins were too busy): a
    /// failed attempt, as a network error is, but none of the receiver's
    /// doing.
    Busy(Outcome),
    /// The chain ended it without a request: this log status and reason.
    NotSent(DeliveryStatus, String),
}

/// Runs the endpoint's chain and, unless it ended the delivery, signs and
/// sends what it prepared.
async fn make(
    inner: &Attempter,
    tenant: &Tenant,
    endpoint: &Endpoint,
    delivery: &Delivery,
    event: &Event,
) -> Made {
    match prepare(inner, tenant, endpoint, event).await {
        ChainOutcome::Deliver(prepared) => {
            Made::Tried(send_signed(inner, tenant, endpoint, delivery, prepared).await)
        }
        ChainOutcome::Unavailable(reason) => Made::Busy(Outcome {
            success: false,
            response_code: None,
            response_time_ms: 0,
            response_body: None,
            error: Some(format!("not sent, the gateway was busy: {reason}")),
            retry_after: None,
        }),
        ChainOutcome::Filtered(reason) => Made::NotSent(DeliveryStatus::Filtered, reason),
        ChainOutcome::Failed(reason) => Made::NotSent(DeliveryStatus::PluginFailed, reason),
    }
}

/// Ends an attempt made without an HTTP request: the entry gets `status` and
/// `reason`, and no further attempt is scheduled.
async fn settle(
    store: &Store,
    key: &QueueKey,
    entry: &QueueEntry,
    status: DeliveryStatus,
    reason: &str,
) -> Result<(), StoreError> {
    let at = crate::time::now();
    let reason = reason.to_string();
    store
        .finish_attempt(key, entry, move |d| {
            d.status = status;
            d.error = Some(reason.clone());
            d.next_retry = None;
            d.updated_at = at;
            None
        })
        .await?;
    metrics::counter!("hookgate_attempts_total", "outcome" => status.as_str()).increment(1);
    Ok(())
}

/// The shortest and longest delay a receiver's `Retry-After` may set.
const RETRY_AFTER_MIN: std::time::Duration = std::time::Duration::from_secs(1);
const RETRY_AFTER_MAX: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn attempt_of(outcome: Outcome, manual: bool) -> Attempt {
    let attempt = Attempt {
        id: AttemptId::generate(),
        at: crate::time::now(),
        success: outcome.success,
        response_code: outcome.response_code,
        response_time_ms: outcome.response_time_ms,
        response_body: outcome.response_body,
        error: outcome.error,
        manual,
    };
    let result = if attempt.success {
        "success"
    } else {
        "failure"
    };
    metrics::counter!("hookgate_attempts_total", "outcome" => result).increment(1);
    metrics::histogram!("hookgate_attempt_duration_seconds")
        .record(attempt.response_time_ms as f64 / 1000.0);
    attempt
}

/// What the receiver's answer says of its health, for the endpoint's
/// in-flight limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Answer {
    /// It answered 2xx after this long.
    Healthy(std::time::Duration),
    /// It failed: no answer in time, no connection, or not 2xx.
    Failing,
    /// No request was sent (a plugin ended the delivery, the gateway was
    /// busy, the endpoint is paused): nothing learnt.
    Unknown,
}

impl Answer {
    fn of(made: &Made) -> Self {
        match made {
            Made::Tried(o) if o.success => {
                Self::Healthy(std::time::Duration::from_millis(o.response_time_ms))
            }
            Made::Tried(_) => Self::Failing,
            Made::Busy(_) | Made::NotSent(..) => Self::Unknown,
        }
    }
}

/// Told once, as soon as the receiver has answered and before the result
/// is made durable, so the endpoint's slot is free for its next attempt
/// while this one's write waits for its group. An attempt that ends
/// without telling tells [`Answer::Unknown`] when it is dropped.
pub(super) struct Answered(Option<Tell>);

/// Tells the answer, with the endpoint's own `max_in_flight`.
type Tell = Box<dyn FnOnce(Answer, Option<usize>) + Send>;

impl Answered {
    pub(super) fn new(tell: impl FnOnce(Answer, Option<usize>) + Send + 'static) -> Self {
        Self(Some(Box::new(tell)))
    }

    /// Tells the answer, with the endpoint's own `max_in_flight`.
    fn tell(mut self, answer: Answer, max_in_flight: Option<usize>) {
        if let Some(tell) = self.0.take() {
            tell(answer, max_in_flight);
        }
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        if let Some(tell) = self.0.take() {
            tell(Answer::Unknown, None);
        }
    }
}

/// Makes the attempt a queue entry stands for and records it; `true` when
/// it put the entry back in the queue for a later attempt. `answered` is
/// told when the request is over, before the result is recorded.
pub(super) async fn scheduled(
    inner: &Attempter,
    key: &QueueKey,
    entry: &QueueEntry,
    answered: Answered,
) -> Result<bool, StoreError> {
    let store = &inner.store;
    let endpoint = store
        .recent_endpoint(&entry.tenant, &entry.endpoint)
        .await?;
    let delivery = store
        .get_delivery(&entry.tenant, &entry.endpoint, &entry.delivery)
        .await?;
    let tenant = store.recent_tenant(&entry.tenant).await?;
    let (Some(endpoint), Some(delivery), Some(tenant)) = (endpoint, delivery, tenant) else {
        // Deleted meanwhile: nothing more is sent.
        store.finish_attempt(key, entry, |_| None).await?;
        return Ok(false);
    };
    if delivery.status == DeliveryStatus::Delivered {
        // A manual retry got there first.
        store
            .finish_attempt(key, entry, |d| {
                d.next_retry = None;
                None
            })
            .await?;
        return Ok(false);
    }
    if endpoint.status != EndpointStatus::Active {
        let reason = match endpoint.status {
            EndpointStatus::Paused => "endpoint paused",
            _ => "endpoint disabled",
        };
        return settle(store, key, entry, DeliveryStatus::Skipped, reason)
            .await
            .map(|_| false);
    }
    let Some(event) = store
        .recent_event(&entry.tenant, &delivery.event_id)
        .await?
    else {
        let reason = "the event is no longer stored (retention)";
        return settle(store, key, entry, DeliveryStatus::Failed, reason)
            .await
            .map(|_| false);
    };
    if delivery.fifo {
        // Its turn came when the delivery before it ended, in a write that
        // may not be durable yet: sent before it is, a crash could bring
        // back the older one after this.
        store.flush().await?;
    }
    let made = make(inner, &tenant, &endpoint, &delivery, &event).await;
    answered.tell(
        Answer::of(&made),
        endpoint.max_in_flight.map(|m| m as usize),
    );
    // A receiver that answered 410 Gone wants nothing more; one that asked
    // to be left alone (429 or 503 with Retry-After) sets the next delay.
    let (gone, retry_after) = match &made {
        Made::Tried(o) => (
            o.response_code == Some(410),
            o.retry_after
                .map(|d| d.clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX)),
        ),
        _ => (false, None),
    };
    let attempt = match made {
        Made::Tried(outcome) | Made::Busy(outcome) => {
            let attempt = attempt_of(outcome, false);
            let second = attempt.at.timestamp().max(0) as u64;
            inner
                .announcer
                .queued
                .recent
                .record(second, attempt.success);
            attempt
        }
        Made::NotSent(status, reason) => {
            return settle(store, key, entry, status, &reason)
                .await
                .map(|_| false);
        }
    };
    let schedule = inner.schedule.clone();
    let attempts = schedule.attempts();
    let spread = jitter_factor(inner.jitter);
    let recorded = attempt.clone();
    let change = move |d: &mut Delivery| {
        let attempt = &recorded;
        d.record(attempt.clone());
        if attempt.success {
            return None;
        }
        if gone {
            d.next_retry = None;
            return None;
        }
        // Retry-After takes the schedule's place for this retry, which
        // still counts against the schedule's attempts.
        match schedule.delay_before(d.scheduled_attempts()) {
            Some(delay) => {
                let delay = retry_after.unwrap_or_else(|| delay.mul_f64(spread));
                let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                let due = attempt.at + delay;
                d.next_retry = Some(due);
                Some(due.timestamp_millis())
            }
            None => {
                d.next_retry = None;
                None
            }
        }
    };
    let Some(updated) = store.finish_attempt(key, entry, change).await? else {
        return Ok(false);
    };
    let exhausted = !attempt.success && updated.next_retry.is_none();
    let disable = if gone {
        tracing::warn!(delivery = %updated.id, endpoint = %endpoint.id, "the receiver answered 410 Gone: endpoint disabled");
        Some("the receiver answered 410 Gone; resume the endpoint to re-enable it".to_string())
    } else if exhausted {
        tracing::warn!(delivery = %updated.id, endpoint = %endpoint.id, "delivery failed after its last attempt");
        let times = match attempts {
            1 => "its only attempt".to_string(),
            n => format!("{n} times in a row"),
        };
        Some(format!(
            "a delivery failed {times} (last error: {}); resume the endpoint to re-enable it",
            attempt.error.as_deref().unwrap_or("unknown")
        ))
    } else {
        None
    };
    let disabled = note_on_endpoint(inner, &endpoint, &attempt, disable.as_deref()).await?;
    // The gateway's own events about it; a failed delivery of one of them
    // announces nothing more, so it cannot feed itself.
    if exhausted && !is_operational(&updated.event_type) {
        inner
            .announcer
            .announce(Notice::failed(&endpoint, &updated))
            .await;
    }
    if disabled && let Some(reason) = &disable {
        inner
            .announcer
            .announce(Notice::disabled(&endpoint, &updated, reason))
            .await;
    }
    Ok(updated.next_retry.is_some())
}

/// A multiplier in `[1 - jitter, 1 + jitter]`.
fn jitter_factor(jitter: f64) -> f64 {
    if jitter <= 0.0 {
        return 1.0;
    }
    let j = jitter.min(1.0);
    1.0 - j + rand::random::<f64>() * 2.0 * j
}

/// Keeps the endpoint's `last_delivery` current, and disables it with the
/// reason `disable` gives (a delivery ran out of attempts, the receiver is
/// gone); `true` when this disabled it. Unchanged outcomes within a second
/// are not rewritten, so a busy endpoint's record is not a point of
/// contention.
async fn note_on_endpoint(
    inner: &Attempter,
    endpoint: &Endpoint,
    attempt: &Attempt,
    disable: Option<&str>,
) -> Result<bool, StoreError> {
    let store = &inner.store;
    let last = LastDelivery {
        at: attempt.at,
        response_code: attempt.response_code,
        error: attempt.error.clone(),
        success: attempt.success,
    };
    if disable.is_none() {
        let mut noted = inner.noted.lock().unwrap();
        // The newer of what this process last wrote and what the record
        // said when the attempt read it.
        let seen = [noted.get(&endpoint.id), endpoint.last_delivery.as_ref()]
            .into_iter()
            .flatten()
            .max_by_key(|l| l.at);
        if seen.is_some_and(|l| last.repeats(l)) {
            return Ok(false);
        }
        noted.insert(endpoint.id, last.clone());
    }
    let mut disabled = false;
    let result = store
        .modify_endpoint(&endpoint.tenant_id, &endpoint.id, |e| {
            e.last_delivery = Some(last.clone());
            // May run again (compare-and-swap): the last run's answer counts.
            disabled = false;
            if let Some(reason) = disable
                && e.status == EndpointStatus::Active
            {
                e.status = EndpointStatus::Disabled;
                e.disabled_reason = Some(reason.to_string());
                e.updated_at = last.at;
                disabled = true;
            }
            Ok::<_, StoreError>(())
        })
        .await;
    match result {
        Ok(_) => Ok(disabled),
        Err(StoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

impl Attempter {
    /// "Send test": a synthetic event sent at once, even when the endpoint is
    /// paused, logged like any delivery, with the receiver's answer returned.
    pub(super) async fn send_test(
        &self,
        tenant: &Tenant,
        endpoint: &Endpoint,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<Delivery, StoreError> {
        let inner = self;
        let event = Event::new(tenant.id, None, event_type, data);
        inner.store.put_event(&event).await?;
        let mut delivery = Delivery::new(endpoint.id, &event.id, event_type, event.created_at);
        delivery.test = true;
        match make(inner, tenant, endpoint, &delivery, &event).await {
            Made::NotSent(status, reason) => {
                delivery.status = status;
                delivery.error = Some(reason);
            }
            Made::Tried(outcome) | Made::Busy(outcome) => {
                let attempt = attempt_of(outcome, true);
                delivery.record(attempt.clone());
                note_on_endpoint(inner, endpoint, &attempt, None).await?;
            }
        }
        inner.store.insert_delivery(&tenant.id, &delivery).await?;
        Ok(delivery)
    }

    /// "Retry": one attempt now, outside the schedule, answered
    /// synchronously; with whether it took the delivery off the queue.
    pub(super) async fn retry_now(
        &self,
        tenant: &Tenant,
        endpoint: &Endpoint,
        delivery: &Delivery,
    ) -> Result<(Delivery, bool), StoreError> {
        let inner = self;
        let event = inner
            .store
            .get_event(&tenant.id, &delivery.event_id)
            .await?
            .ok_or(StoreError::NotFound("event"))?;
        let attempt = match make(inner, tenant, endpoint, delivery, &event).await {
            Made::Tried(outcome) | Made::Busy(outcome) => attempt_of(outcome, true),
            Made::NotSent(status, reason) => {
                let settled = inner
                    .store
                    .settle_delivery(&tenant.id, &endpoint.id, &delivery.id, status, &reason)
                    .await?
                    .ok_or(StoreError::NotFound("delivery"))?;
                return Ok((settled, false));
            }
        };
        let (updated, unqueued) = inner
            .store
            .record_manual_attempt(&tenant.id, &endpoint.id, &delivery.id, &attempt)
            .await?
            .ok_or(StoreError::NotFound("delivery"))?;
        note_on_endpoint(inner, endpoint, &attempt, None).await?;
        Ok((updated, unqueued))
    }
}

#[cfg(test)]
mod tests {
    use super::jitter_factor;

    #[test]
    fn jitter_stays_within_its_spread() {
        assert_eq!(jitter_factor(0.0), 1.0);
        for _ in 0..1000 {
            let f = jitter_factor(0.2);
            assert!((0.8..=1.2).contains(&f), "{f}");
        }
    }
}
