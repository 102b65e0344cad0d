//! An endpoint's chain: each plugin gets the previous one's output; the
//! first drop or failure ends it (ARCHITECTURE.md, "Plugin isolation").

use super::error::PluginError;
use super::wit::{Header, Outcome, WitEvent};
use crate::model::event::Event;

/// The request a delivery will send, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
}

/// What a chain decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOutcome {
    /// Send this.
    Deliver(Prepared),
    /// A plugin dropped the event (log status `filtered`).
    Filtered(String),
    /// A plugin failed (log status `plugin_failed`); nothing is sent and the
    /// receiver is not blamed.
    Failed(String),
    /// The gateway could not run the chain now (no plugin slot, a store
    /// error): nothing is sent, and the attempt counts as failed and is
    /// retried, as after a network error.
    Unavailable(String),
}

impl Prepared {
    /// The event as published: its envelope, no extra headers.
    pub fn of(event: &Event) -> Self {
        Self {
            body: event.body.clone(),
            headers: Vec::new(),
            content_type: None,
        }
    }

    pub fn to_wit(&self, event: &Event, endpoint_id: &str) -> WitEvent {
        WitEvent {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            created_at: event
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            endpoint_id: endpoint_id.to_string(),
            payload: self.body.clone(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }

    /// Takes in one plugin's checked result: `Ok(None)` to go on,
    /// `Ok(Some(reason))` when it dropped the event.
    pub(super) fn apply(
        &mut self,
        result: Result<Outcome, PluginError>,
    ) -> Result<Option<String>, PluginError> {
        match result? {
            Outcome::Drop(reason) => Ok(Some(reason)),
            Outcome::Deliver(delivery) => {
                self.body = delivery.body;
                self.headers
                    .extend(delivery.headers.into_iter().map(|h| (h.name, h.value)));
                if delivery.content_type.is_some() {
                    self.content_type = delivery.content_type;
                }
                Ok(None)
            }
        }
    }
}
