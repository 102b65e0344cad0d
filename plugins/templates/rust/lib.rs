//! The `__NAME__` hookgate plugin: `transform` runs once per delivery.

use hookgate_plugin::{Event, Outcome, export};
use serde::Deserialize;
use serde_json::json;

/// The endpoint's config for this plugin (`{}` when none); a key not
/// listed here is refused, naming it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Only events whose type starts with this are delivered.
    #[serde(default)]
    pub prefix: String,
}

pub fn transform(event: Event, config: Config) -> Result<Outcome, String> {
    if !event.event_type.starts_with(&config.prefix) {
        return Ok(Outcome::drop(format!(
            "not a {} event: {}",
            config.prefix, event.event_type
        )));
    }
    let body = json!({"event": event.id, "type": event.event_type, "data": event.data});
    Ok(Outcome::json(&body)?.header("X-Plugin", "__NAME__"))
}

export!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &str = r#"{"id":"evt_1","type":"booking.created","created_at":"2026-11-23T10:30:00.000Z","data":{"booking":{"id":"bk_1"}}}"#;

    #[test]
    fn delivers_matching_events() {
        let out = hookgate_plugin::call(transform, ENVELOPE, r#"{"prefix":"booking."}"#);
        let expected = r#"{"event":"evt_1","type":"booking.created","data":{"booking":{"id":"bk_1"}}}"#;
        assert_eq!(out, Ok(Outcome::text(expected).header("X-Plugin", "__NAME__")));
    }

    #[test]
    fn drops_the_others() {
        let out = hookgate_plugin::call(transform, ENVELOPE, r#"{"prefix":"trip."}"#);
        assert_eq!(out, Ok(Outcome::drop("not a trip. event: booking.created")));
    }
}
