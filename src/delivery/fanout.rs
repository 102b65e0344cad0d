//! Fan-out: which endpoints get a delivery of a published event.

use super::RetrySchedule;
use crate::model::delivery::{Delivery, DeliveryStatus};
use crate::model::endpoint::{Endpoint, EndpointStatus};
use crate::model::event::Event;
use crate::model::event_type::subscribed;

/// The endpoints among `endpoints` that get a delivery of an event of type
/// `event_type`.
fn subscribers<'a, 'e>(
    event_type: &'e str,
    endpoints: impl IntoIterator<Item = &'a Endpoint> + 'e,
) -> impl Iterator<Item = &'a Endpoint> + 'e {
    endpoints
        .into_iter()
        .filter(move |e| subscribed(&e.events, event_type))
}

/// How many of `endpoints` get a delivery of an event of type `event_type`.
pub fn count<'a>(event_type: &str, endpoints: impl IntoIterator<Item = &'a Endpoint>) -> usize {
    subscribers(event_type, endpoints).count()
}

/// One delivery per endpoint subscribed to the event's type. Active endpoints'
/// deliveries are scheduled for the first attempt; paused and disabled ones
/// get a `skipped` log entry and are never sent, not even after they resume
/// (docs/product.md, "Delivery").
pub fn deliveries_for<'a>(
    event: &Event,
    endpoints: impl IntoIterator<Item = &'a Endpoint>,
    schedule: &RetrySchedule,
) -> Vec<Delivery> {
    let first_delay = schedule.delay_before(0).unwrap_or_default();
    let first_attempt =
        event.created_at + chrono::Duration::from_std(first_delay).unwrap_or(chrono::Duration::MAX);
    subscribers(&event.event_type, endpoints)
        .map(|e| {
            let mut d = Delivery::new(e.id, &event.id, &event.event_type, event.created_at);
            match e.status {
                EndpointStatus::Active => {
                    d.next_retry = Some(first_attempt);
                    d.fifo = e.ordering.is_fifo();
                }
                EndpointStatus::Paused | EndpointStatus::Disabled => {
                    d.status = DeliveryStatus::Skipped;
                    d.error = Some(format!(
                        "endpoint {} when the event was published",
                        if e.status == EndpointStatus::Paused {
                            "paused"
                        } else {
                            "disabled"
                        }
                    ));
                }
            }
            d
        })
        .collect()
}
