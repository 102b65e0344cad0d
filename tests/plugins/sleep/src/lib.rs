//! `hostile-sleep`: `transform` waits on a WASI clock and never returns. A
//! waiting call uses no CPU time, so only a wall-clock deadline ends it.
//!
//! Config `{"mode":"sleep"}` (the default) sleeps an hour through the
//! standard library; `{"mode":"pollable"}` blocks on a monotonic-clock
//! pollable of `u64::MAX` nanoseconds.

/// How the call waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `std::thread::sleep` for an hour.
    Sleep,
    /// `subscribe-duration(u64::MAX)`, then `block`.
    Pollable,
}

/// The mode named by the endpoint's config.
pub fn mode(config: &str) -> Result<Mode, String> {
    let config: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?;
    match config.get("mode").and_then(|m| m.as_str()) {
        None | Some("sleep") => Ok(Mode::Sleep),
        Some("pollable") => Ok(Mode::Pollable),
        Some(other) => Err(format!("unknown mode {other:?}")),
    }
}

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../../wit" });

    use std::time::Duration;

    use super::Mode;

    struct Sleep;

    impl Guest for Sleep {
        fn transform(_event: Event, config: String) -> Result<Outcome, String> {
            match super::mode(&config)? {
                Mode::Sleep => std::thread::sleep(Duration::from_secs(3600)),
                Mode::Pollable => {
                    wasip2::clocks::monotonic_clock::subscribe_duration(u64::MAX).block()
                }
            }
            Err("hostile-sleep woke up".into())
        }
    }

    export!(Sleep);
}

#[cfg(test)]
mod tests {
    use super::{Mode, mode};

    #[test]
    fn config_picks_the_wait() {
        assert_eq!(mode("{}"), Ok(Mode::Sleep));
        assert_eq!(mode(r#"{"mode":"sleep"}"#), Ok(Mode::Sleep));
        assert_eq!(mode(r#"{"mode":"pollable"}"#), Ok(Mode::Pollable));
        assert!(mode(r#"{"mode":"nap"}"#).is_err());
    }
}
